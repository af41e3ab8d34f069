//! Reading the request line safely and preparing the request the upstream sees.

use http::header::{HeaderName, HOST};
use pingora::http::RequestHeader;

use crate::config::Upstream;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The request's host without port, from `Host` (HTTP/1.1) or the URI authority (HTTP/2).
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    let raw = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))?;
    Some(strip_port(raw))
}

fn strip_port(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// True when the path could mean something else after normalisation (`.`/`..` segments, also
/// percent-encoded, or a backslash). Such paths are refused, so that the route chosen here is
/// the one the upstream serves.
pub fn is_ambiguous_path(path: &str) -> bool {
    if path.contains('\\') {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return true;
    }
    path.split('/').any(|seg| seg == "." || seg == "..")
}

/// Rewrites the request for `upstream`: path onto the upstream's base path (query kept),
/// `Host` to the upstream's authority unless `preserve_host`, and forwarding headers set by us
/// alone (client-sent ones are dropped: the gateway is the edge).
pub fn for_upstream(
    req: &mut RequestHeader,
    upstream: &Upstream,
    rest: &str,
    client_ip: Option<String>,
    public_scheme: &str,
) -> pingora::Result<()> {
    let original_host = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.to_string()));

    let path = upstream.url.rewrite(rest);
    let path_and_query = match req.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let uri = http::Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| {
            pingora::Error::because(
                pingora::ErrorType::InvalidHTTPHeader,
                "rewriting the path",
                e,
            )
        })?;
    req.set_uri(uri);

    if !upstream.preserve_host {
        req.insert_header(HOST, upstream.url.authority.as_str())?;
    }
    for name in [
        X_FORWARDED_FOR,
        X_FORWARDED_PROTO,
        X_FORWARDED_HOST,
        FORWARDED,
    ] {
        req.remove_header(&name);
    }
    if let Some(ip) = client_ip {
        req.insert_header(X_FORWARDED_FOR, ip)?;
    }
    req.insert_header(X_FORWARDED_PROTO, public_scheme)?;
    if let Some(h) = original_host {
        req.insert_header(X_FORWARDED_HOST, h)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn upstream(extra: &str) -> Upstream {
        let text = format!(
            "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[[upstream]]\nname = \"u\"\npath = \"/gw\"\nurl = \"http://10.0.0.1:3001/mcp\"\n{extra}"
        );
        crate::config::parse(Path::new("t.toml"), &text, |_| None)
            .unwrap()
            .upstreams
            .remove(0)
    }

    #[test]
    fn rewrites_path_host_and_forwarding_headers() {
        let mut req = RequestHeader::build("POST", b"/gw/sub?x=1", None).unwrap();
        req.insert_header("host", "gw.example:8080").unwrap();
        req.insert_header("x-forwarded-for", "6.6.6.6").unwrap();
        req.insert_header("forwarded", "for=6.6.6.6").unwrap();
        req.insert_header("mcp-session-id", "abc").unwrap();
        for_upstream(
            &mut req,
            &upstream(""),
            "/sub",
            Some("127.0.0.9".into()),
            "https",
        )
        .unwrap();
        assert_eq!(req.uri.to_string(), "/mcp/sub?x=1");
        assert_eq!(req.headers["host"], "10.0.0.1:3001");
        assert_eq!(req.headers["x-forwarded-for"], "127.0.0.9");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert_eq!(req.headers["x-forwarded-host"], "gw.example:8080");
        assert!(req.headers.get("forwarded").is_none());
        assert_eq!(req.headers["mcp-session-id"], "abc");
    }

    #[test]
    fn preserve_host_keeps_the_client_host() {
        let mut req = RequestHeader::build("GET", b"/gw", None).unwrap();
        req.insert_header("host", "gw.example").unwrap();
        for_upstream(
            &mut req,
            &upstream("preserve_host = true"),
            "",
            None,
            "http",
        )
        .unwrap();
        assert_eq!(req.uri.to_string(), "/mcp");
        assert_eq!(req.headers["host"], "gw.example");
    }

    #[test]
    fn host_and_ambiguous_paths() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", "Example.com:443").unwrap();
        assert_eq!(request_host(&req), Some("Example.com"));
        req.insert_header("host", "[::1]:8080").unwrap();
        assert_eq!(request_host(&req), Some("::1"));
        for bad in [
            "/mcp/../admin",
            "/mcp/./x",
            "/mcp/%2e%2e/admin",
            "/mcp/%2F..",
            "/a\\b",
        ] {
            assert!(is_ambiguous_path(bad), "{bad}");
        }
        for good in ["/mcp", "/mcp/", "/mcp/a.b", "/mcp/...x"] {
            assert!(!is_ambiguous_path(good), "{good}");
        }
    }
}
