use super::*;

#[test]
fn route_path_matches_at_segment_boundaries() {
    let p = RoutePath::parse("/mcp/").unwrap();
    assert_eq!(p.as_str(), "/mcp");
    assert_eq!(p.strip("/mcp"), Some(""));
    assert_eq!(p.strip("/mcp/"), Some("/"));
    assert_eq!(p.strip("/mcp/x/y"), Some("/x/y"));
    assert_eq!(p.strip("/mcpx"), None);
    assert_eq!(p.strip("/other"), None);
    assert_eq!(RoutePath::parse("/").unwrap().strip("/a"), Some("/a"));
    assert!(RoutePath::parse("mcp").is_err());
    assert!(RoutePath::parse("/a/../b").is_err());
    assert!(RoutePath::parse("/a?b").is_err());
}

#[test]
fn upstream_url_rewrites_onto_its_path() {
    let u = UpstreamUrl::parse("http://127.0.0.1:3001/mcp").unwrap();
    assert_eq!(u.address(), "127.0.0.1:3001");
    assert_eq!(u.rewrite(""), "/mcp");
    assert_eq!(u.rewrite("/x"), "/mcp/x");
    let root = UpstreamUrl::parse("https://example.com").unwrap();
    assert!(root.tls);
    assert_eq!(root.port, 443);
    assert_eq!(root.authority, "example.com");
    assert_eq!(root.rewrite(""), "/");
    assert_eq!(root.rewrite("/a"), "/a");
    assert_eq!(
        UpstreamUrl::parse("http://[::1]:9/").unwrap().address(),
        "[::1]:9"
    );
    assert!(UpstreamUrl::parse("ftp://x/").is_err());
    assert!(UpstreamUrl::parse("http://u:p@x/").is_err());
}

#[test]
fn public_url_is_normalised_without_trailing_slash() {
    let p = PublicUrl::parse("HTTPS://GW.example.com/").unwrap();
    assert_eq!(p.as_str(), "https://gw.example.com");
    assert_eq!(
        PublicUrl::parse("https://gw.example.com:443")
            .unwrap()
            .as_str(),
        "https://gw.example.com"
    );
    assert_eq!(
        PublicUrl::parse("http://127.0.0.1:8080/").unwrap().as_str(),
        "http://127.0.0.1:8080"
    );
    assert_eq!(p.join("/mcp"), "https://gw.example.com/mcp");
    assert!(PublicUrl::parse("http://127.0.0.1:8080")
        .unwrap()
        .is_loopback());
    assert!(!p.is_loopback());
    assert!(PublicUrl::parse("https://gw/?x").is_err());
    assert!(PublicUrl::parse("https://gw.example/auth").is_err());
}
