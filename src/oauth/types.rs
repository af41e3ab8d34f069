//! Protocol values as types, so a redirect URI is never compared like a free string and a
//! scope list is never parsed twice.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::is_loopback_host;

/// An OAuth client identifier (pre-registered, dynamically registered or a metadata URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A redirect URI as registered. Matching is exact string equality, except that loopback
/// `http` URIs match on any port (RFC 8252 §7.3): scheme, host, path and query still exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectUri(pub String);

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

    pub fn as_str(&self) -> &str {
        &self.0
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

/// A set of scope names, kept sorted so equal sets print and compare equally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSet(pub BTreeSet<String>);

impl ScopeSet {
    /// Space-separated, tolerating repeated and leading spaces (`scope=+offline_access`).
    pub fn parse(raw: &str) -> Self {
        Self(
            raw.split([' ', '+'])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Without the scopes that only concern OIDC or token lifetime ([`IGNORED_SCOPES`]).
    pub fn without_ignored(self) -> Self {
        Self(
            self.0
                .into_iter()
                .filter(|s| !IGNORED_SCOPES.contains(&s.as_str()))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

impl FromIterator<String> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = String>>(it: I) -> Self {
        Self(it.into_iter().collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// Checks a client name people will read on the consent page: no control characters, no
/// bidirectional overrides or isolates (U+202E can make `evil.exe` read `exe.live`), no
/// zero-width or other invisible characters that let one name pass for another.
pub fn check_display_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    match name.chars().find(|&c| is_hidden(c)) {
        Some(c) => Err(format!(
            "contains the invisible or control character U+{:04X}",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Control characters (Cc), format characters (Cf: bidi controls, zero-width joiners, soft
/// hyphen, tags…), line and paragraph separators, and the blank fillers that render as
/// nothing.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180E
            | 0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890 | 0x0891 | 0x08E2
            | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F
            | 0x2800 | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB
            | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF)
}

/// Scopes clients send that belong to OpenID Connect or token lifetime, not to our
/// upstreams; tolerated and dropped rather than refused (several MCP clients send them).
pub const IGNORED_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

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
    fn scopes_parse_leniently() {
        let s = ScopeSet::parse(" mcp:tools  offline_access+mcp:read");
        assert_eq!(s.to_string(), "mcp:read mcp:tools offline_access");
        assert!(ScopeSet::parse("").is_empty());
    }

    #[test]
    fn display_names_refuse_invisible_characters() {
        assert!(check_display_name("Claude Code").is_ok());
        assert!(check_display_name("Überwachung 日本 🙂").is_ok());
        for bad in [
            "evil\u{202E}exe.txt",
            "a\u{200B}b",
            "x\u{2066}y\u{2069}",
            "tab\there",
            "line\nbreak",
            "\u{FEFF}bom",
            "   ",
            "tag\u{E0041}",
            "fill\u{3164}er",
        ] {
            assert!(check_display_name(bad).is_err(), "{bad:?}");
        }
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
