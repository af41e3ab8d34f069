//! Redirect URIs (exact matching, loopback on any port: RFC 8252 §7.3) and resource
//! indicators (RFC 8707), compared the way clients produce them.

use serde::{Deserialize, Serialize};
use url::Url;

/// `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// A redirect URI as registered. Matching is exact string equality, except that loopback
/// `http` URIs match on any port (RFC 8252 §7.3): scheme, host, path and query still exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Checks a URI offered at registration: absolute, no fragment, and https, loopback http,
    /// or (when `allow_custom_schemes`) a private-use scheme like `cursor://` of a native app.
    pub fn parse_registered(raw: &str, allow_custom_schemes: bool) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|_| format!("`{raw}` is not an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(format!("`{raw}` must not have a fragment"));
        }
        match url.scheme() {
            "https" => {}
            "http" if url.host().as_ref().is_some_and(is_loopback_host) => {}
            "http" => {
                return Err(format!(
                    "`{raw}`: http is only allowed for loopback addresses"
                ))
            }
            "javascript" | "data" | "file" | "vbscript" | "about" | "blob" => {
                return Err(format!("`{raw}`: scheme `{}` is not allowed", url.scheme()))
            }
            _ if allow_custom_schemes => {}
            s => return Err(format!("`{raw}`: scheme `{s}` is not allowed")),
        }
        Ok(Self(raw.to_string()))
    }

    /// Whether `presented` (from an authorization request) matches this registered URI.
    pub fn matches(&self, presented: &str) -> bool {
        if self.0 == presented {
            return true;
        }
        let (Ok(reg), Ok(got)) = (Url::parse(&self.0), Url::parse(presented)) else {
            return false;
        };
        let loopback =
            |u: &Url| u.scheme() == "http" && u.host().as_ref().is_some_and(is_loopback_host);
        if !loopback(&reg) || !loopback(&got) {
            return false;
        }
        // Same host spelling (localhost ≠ 127.0.0.1), path and query; the port may differ.
        // Compare against the raw strings with the port removed so no normalisation sneaks in.
        strip_port(&self.0) == strip_port(presented)
    }

    /// The URI an authorization request presented, typed, when it matches this registered
    /// one (the presented one is where the code goes: a loopback port may differ).
    pub fn presented(&self, presented: &str) -> Option<RedirectUri> {
        self.matches(presented)
            .then(|| RedirectUri(presented.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https` on exactly `host`.
    pub fn is_https_on(&self, host: &str) -> bool {
        Url::parse(&self.0)
            .ok()
            .is_some_and(|u| u.scheme() == "https" && u.host_str() == Some(host))
    }

    pub fn host(&self) -> String {
        Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| self.0.split("://").next().unwrap_or("").to_string())
    }

    pub fn is_loopback(&self) -> bool {
        Url::parse(&self.0)
            .ok()
            .is_some_and(|u| u.host().as_ref().is_some_and(is_loopback_host))
    }
}

/// `http://host:port/path` → `http://host/path`, on the raw string.
fn strip_port(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or("").to_string()
    };
    let tail = if tail.is_empty() { "/" } else { tail };
    format!("{scheme}://{host}{tail}")
}

/// Compares resource indicators the way RFC 8707 clients produce them: scheme and host
/// case-insensitive, default port dropped, a lone trailing `/` ignored.
pub fn canonical_resource(raw: &str) -> Option<String> {
    let url = Url::parse(raw).ok()?;
    if url.fragment().is_some() {
        return None;
    }
    let mut s = format!("{}://{}", url.scheme(), url.host_str()?);
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    let path = url.path().trim_end_matches('/');
    s.push_str(path);
    if let Some(q) = url.query() {
        s.push('?');
        s.push_str(q);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_any_port_only() {
        let r = RedirectUri::parse_registered("http://127.0.0.1/callback", false).unwrap();
        assert!(r.matches("http://127.0.0.1/callback"));
        assert!(r.matches("http://127.0.0.1:54321/callback"));
        assert!(!r.matches("http://127.0.0.1:54321/callback?x=1"));
        assert!(!r.matches("http://127.0.0.1:54321/other"));
        assert!(!r.matches("http://localhost:54321/callback"));
        let r = RedirectUri::parse_registered("http://localhost:8787/callback", false).unwrap();
        assert!(r.matches("http://localhost:1/callback"));
        let h = RedirectUri::parse_registered("https://app.example/cb", false).unwrap();
        assert!(h.matches("https://app.example/cb"));
        assert!(!h.matches("https://app.example:444/cb"));
        assert!(!h.matches("https://app.example/cb/"));
        assert!(!h.matches("https://APP.example/cb"));
    }

    #[test]
    fn registration_refuses_unsafe_uris() {
        assert!(RedirectUri::parse_registered("http://evil.example/cb", false).is_err());
        assert!(RedirectUri::parse_registered("javascript:alert(1)", true).is_err());
        assert!(RedirectUri::parse_registered("https://a.example/cb#frag", false).is_err());
        assert!(RedirectUri::parse_registered(
            "cursor://anysphere.cursor-mcp/oauth/callback",
            false
        )
        .is_err());
        assert!(RedirectUri::parse_registered(
            "cursor://anysphere.cursor-mcp/oauth/callback",
            true
        )
        .is_ok());
        assert!(RedirectUri::parse_registered("http://[::1]:3000/cb", false).is_ok());
    }

    #[test]
    fn resources_compare_canonically() {
        assert_eq!(
            canonical_resource("HTTPS://GW.Example:443/mcp/").unwrap(),
            "https://gw.example/mcp"
        );
        assert_eq!(
            canonical_resource("https://gw.example/").unwrap(),
            "https://gw.example"
        );
        assert_eq!(
            canonical_resource("http://127.0.0.1:8080/mcp").unwrap(),
            "http://127.0.0.1:8080/mcp"
        );
        assert!(canonical_resource("not a url").is_none());
    }
}
