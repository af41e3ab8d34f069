//! Reading the request line safely and preparing the request the upstream sees.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use pingora::http::RequestHeader;

use crate::config::{IdentityHeaders, Upstream};
use crate::store::AccessRecord;

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
    let encoded_separator = path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'e' | b'f') | (b'5', b'c')
            )
    });
    if encoded_separator {
        return true;
    }
    path.split('/').any(|seg| seg == "." || seg == "..")
}

/// Identity header names other gateways and auth proxies set (oauth2-proxy, Authelia,
/// Authentik, Pomerium, Apache's `REMOTE_USER`): an upstream written for one of them may
/// trust these, so a client must never be able to send them through authgate.
const COMMON_IDENTITY: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "remote-user",
    "remote-email",
    "remote-groups",
    "remote-name",
    "x-remote-user",
];
const COMMON_IDENTITY_PREFIXES: &[&str] = &["x-auth-request-", "x-pomerium-"];

/// `name` (lowercase, as `http` keeps it) equals `canonical` with `_` and `-` taken alike:
/// CGI/WSGI-style servers map both to the same variable (`HTTP_X_AUTHGATE_USER`).
fn same_name(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len() && same_prefix(name, canonical)
}

fn same_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

/// Whether a client-sent header could pass for identity at `upstream`.
pub fn is_spoofable(name: &str, upstream: &Upstream) -> bool {
    same_prefix(name, "x-authgate-")
        || upstream
            .identity_headers
            .all()
            .iter()
            .any(|h| same_name(name, h.as_str()))
        || upstream
            .signed_identity
            .as_ref()
            .is_some_and(|s| same_name(name, s.header.as_str()))
        || (upstream.strip_common_identity_headers
            && (COMMON_IDENTITY.iter().any(|c| same_name(name, c))
                || COMMON_IDENTITY_PREFIXES
                    .iter()
                    .any(|p| same_prefix(name, p))))
}

/// An upstream's identity header names as pingora inserts them, made once per route:
/// inserting by `HeaderName` copies the name on every request.
#[derive(Debug, Clone)]
pub struct IdentityNames {
    user: Bytes,
    email: Bytes,
    name: Bytes,
    groups: Bytes,
    client_id: Bytes,
    scopes: Bytes,
}

impl IdentityNames {
    pub fn of(h: &IdentityHeaders) -> Self {
        let b = |n: &HeaderName| Bytes::from(n.as_str().to_owned());
        Self {
            user: b(&h.user),
            email: b(&h.email),
            name: b(&h.name),
            groups: b(&h.groups),
            client_id: b(&h.client_id),
            scopes: b(&h.scopes),
        }
    }
}

/// Removes identity headers a client sent (ours for this upstream, any `X-Authgate-*`, and
/// other gateways' names, with `_` and `-` taken alike), then, for an authenticated request,
/// sets them from the token's grant. Also drops the client's credentials: the upstream never
/// sees the gateway's token or cookies.
pub fn identity_for_upstream(
    req: &mut RequestHeader,
    upstream: &Upstream,
    names: &IdentityNames,
    record: Option<&AccessRecord>,
) -> pingora::Result<()> {
    // One pass; the list is only allocated when a client did send such a header.
    let mut spoofed: Vec<HeaderName> = Vec::new();
    for name in req.headers.keys() {
        if is_spoofable(name.as_str(), upstream) {
            spoofed.push(name.clone());
        }
    }
    for name in spoofed {
        req.remove_header(&name);
    }
    let Some(rec) = record else {
        return Ok(());
    };
    req.remove_header(&http::header::AUTHORIZATION);
    req.remove_header(&http::header::COOKIE);
    // Values are made per request rather than kept with the cached record: that would
    // cost every cached token a few hundred bytes to save well under a microsecond here.
    // `header_safe` leaves only visible ASCII, always a valid value, taken without a copy.
    let value = |s: String| HeaderValue::from_maybe_shared(Bytes::from(s));
    let invalid =
        |e| pingora::Error::because(pingora::ErrorType::InvalidHTTPHeader, "identity header", e);
    let id = &rec.identity;
    let mut set = |name: &Bytes, v: String| -> pingora::Result<()> {
        req.insert_header(name.clone(), value(v).map_err(invalid)?)
    };
    set(&names.user, header_safe(&id.user_id(), b""))?;
    if let Some(email) = &id.email {
        set(&names.email, header_safe(email, b""))?;
    }
    if let Some(name) = &id.name {
        set(&names.name, header_safe(name, b""))?;
    }
    if !id.groups.is_empty() {
        set(&names.groups, group_list(&id.groups))?;
    }
    set(&names.client_id, header_safe(rec.client_id.as_str(), b""))?;
    set(&names.scopes, header_safe(&rec.scopes.to_string(), b""))?;
    Ok(())
}

/// Groups joined by `,`, each percent-encoded with `,` included, so a group such as
/// `cn=x,ou=y` reaches the upstream as one item (`cn=x%2Cou=y`) and decodes back.
fn group_list(groups: &[String]) -> String {
    let mut out = String::new();
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&header_safe(g, b","));
    }
    out
}

/// Header values must be visible ASCII; anything else (names with accents, control
/// characters), `%` itself and the bytes in `also` are percent-encoded as UTF-8, so nothing
/// can split or smuggle a header.
fn header_safe(value: &str, also: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' && !also.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Rewrites the request for `upstream`: path onto the upstream's base path (query kept),
/// `Host` to the upstream's authority unless `preserve_host`, and forwarding headers set by us
/// alone (client-sent ones are dropped: the gateway is the edge).
pub fn for_upstream(
    req: &mut RequestHeader,
    upstream: &Upstream,
    url: &crate::config::UpstreamUrl,
    rest: &str,
    client_ip: Option<String>,
    public_scheme: &str,
) -> pingora::Result<()> {
    // The client's Host as sent (a cheap clone of the parsed value).
    let original_host = match req.headers.get(HOST) {
        Some(h) => Some(h.clone()),
        None => req
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };

    // Most routes map onto the same path upstream (`/mcp` → `/mcp`); leave those URIs alone.
    if !url.rewrites_to(rest, req.uri.path()) || req.uri.authority().is_some() {
        let path = url.rewrite(rest);
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
    }

    if !upstream.preserve_host {
        req.insert_header(HOST, url.authority.as_str())?;
    }
    for name in [
        X_FORWARDED_FOR,
        X_FORWARDED_PROTO,
        X_FORWARDED_HOST,
        FORWARDED,
    ] {
        req.remove_header(&name);
    }
    // Static names: inserting by `HeaderName` would copy a non-standard name first.
    if let Some(ip) = client_ip {
        req.insert_header(Bytes::from_static(b"x-forwarded-for"), ip)?;
    }
    req.insert_header(Bytes::from_static(b"x-forwarded-proto"), public_scheme)?;
    if let Some(h) = original_host {
        req.insert_header(Bytes::from_static(b"x-forwarded-host"), h)?;
    }
    Ok(())
}

/// The client's address: the peer's, or, when the peer is one of `server.trusted_proxies`,
/// the last address in `X-Forwarded-For` that is not a trusted proxy (each proxy appends the
/// address it got the request from, so everything left of the first untrusted one could be
/// forged by the client).
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn identity(req: &mut RequestHeader, up: &Upstream, rec: Option<&AccessRecord>) {
        identity_for_upstream(req, up, &IdentityNames::of(&up.identity_headers), rec).unwrap();
    }

    fn upstream(extra: &str) -> Upstream {
        let text = format!(
            "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[[upstream]]\nname = \"u\"\npath = \"/gw\"\nurl = \"http://10.0.0.1:3001/mcp\"\nauth = \"none\"\n{extra}"
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
        let up = upstream("");
        for_upstream(
            &mut req,
            &up,
            &up.url,
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
        let up = upstream("preserve_host = true");
        for_upstream(&mut req, &up, &up.url, "", None, "http").unwrap();
        assert_eq!(req.uri.to_string(), "/mcp");
        assert_eq!(req.headers["host"], "gw.example");
    }

    #[test]
    fn identity_headers_replace_spoofed_ones() {
        let up = upstream("");
        let mut req = RequestHeader::build("POST", b"/gw", None).unwrap();
        req.insert_header("x-authgate-email", "admin@evil").unwrap();
        req.insert_header("X-Authgate-Anything", "x").unwrap();
        req.insert_header("authorization", "Bearer secret").unwrap();
        req.insert_header("cookie", "authgate_session=x").unwrap();
        identity(&mut req, &up, None);
        assert!(req.headers.get("x-authgate-email").is_none());
        assert!(req.headers.get("x-authgate-anything").is_none());
        let rec = crate::store::AccessRecord {
            grant_id: crate::vocab::GrantId::new("g"),
            client_id: crate::vocab::ClientId::new("c1"),
            identity: crate::vocab::Identity {
                provider: "corp".into(),
                subject: "bob".into(),
                email: Some("bob@example.test".into()),
                name: Some("Bób\r\nX-Evil: 1".into()),
                groups: vec!["a".into(), "cn=x,ou=y".into()],
            },
            scopes: crate::vocab::ScopeSet::parse("mcp:tools").unwrap(),
            upstream: crate::vocab::UpstreamName::parse("u").unwrap(),
            expires_at: 0,
            passed: Default::default(),
        };
        req.insert_header("x-authgate-email", "admin@evil").unwrap();
        identity(&mut req, &up, Some(&rec));
        assert_eq!(req.headers["x-authgate-user"], "corp:bob");
        assert_eq!(req.headers["x-authgate-email"], "bob@example.test");
        assert_eq!(req.headers["x-authgate-name"], "B%C3%B3b%0D%0AX-Evil: 1");
        assert_eq!(req.headers["x-authgate-groups"], "a,cn=x%2Cou=y");
        assert_eq!(req.headers["x-authgate-client-id"], "c1");
        assert_eq!(req.headers["x-authgate-scopes"], "mcp:tools");
        assert!(req.headers.get("authorization").is_none());
        assert!(req.headers.get("cookie").is_none());
    }

    #[test]
    fn underscore_and_foreign_identity_names_are_stripped() {
        let mut up = upstream("");
        up.identity_headers.user = HeaderName::from_static("x-user");
        let mut req = RequestHeader::build("POST", b"/gw", None).unwrap();
        for name in [
            "x_authgate_user",
            "X_Authgate_Email",
            "x_user",
            "x-forwarded-user",
            "X_Forwarded_Email",
            "remote-user",
            "x-auth-request-email",
            "x_auth_request_groups",
            "x-pomerium-claim-email",
            "x-forwarded-for",
            "x-useragent",
            "accept",
        ] {
            req.append_header(name.to_string(), "spoof").unwrap();
        }
        identity(&mut req, &up, None);
        let mut left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-forwarded-for", "x-useragent"]);

        up.strip_common_identity_headers = false;
        let mut req = RequestHeader::build("POST", b"/gw", None).unwrap();
        req.append_header("remote-user", "kept").unwrap();
        req.append_header("x_authgate_user", "gone").unwrap();
        identity(&mut req, &up, None);
        assert_eq!(req.headers["remote-user"], "kept");
        assert!(req.headers.get("x_authgate_user").is_none());
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

    #[test]
    fn the_client_address_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap(),
        );
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        // Behind a trusted proxy: the last untrusted hop (the first could be forged).
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        // From anyone else, or with no proxies configured: the peer.
        assert_eq!(
            client_ip(ip("198.51.100.4"), &h, &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
        // A trusted peer without the header is the client.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &http::HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }
}
