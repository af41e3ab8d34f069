//! The validated config: plain values that know nothing of TOML or Pingora. Everything the
//! gateway needs is resolved here once (URLs parsed, paths absolute, durations typed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub upstreams: Vec<Upstream>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub public_url: PublicUrl,
    /// Absolute; relative paths in the file are taken from the config file's folder.
    pub data_dir: PathBuf,
    pub threads: usize,
}

/// The gateway's public base URL, without a trailing slash: `https://gw.example.com` or
/// `https://example.com/auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".into());
        }
        if url.host_str().is_none() {
            return Err("must have a host".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        let s = url.as_str().trim_end_matches('/').to_string();
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("http", |(s, _)| s)
    }

    /// `public_url` + `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }

    pub fn is_loopback(&self) -> bool {
        Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host().map(|h| is_loopback_host(&h)))
            .unwrap_or(false)
    }
}

pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// A name an upstream is known by in logs, metrics and (later) policies: `[a-z0-9_-]+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamName(String);

impl UpstreamName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err("may contain only a-z, 0-9, `-` and `_`".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A route's path prefix: starts with `/`, no trailing slash (except the root `/`), no dot
/// segments, query or fragment. Matches itself and anything below it at a `/` boundary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePath(String);

impl RoutePath {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err("must start with `/`".into());
        }
        if raw.contains(['?', '#', '%', ' ']) {
            return Err("must not contain `?`, `#`, `%` or spaces".into());
        }
        let trimmed = if raw == "/" {
            raw
        } else {
            raw.trim_end_matches('/')
        };
        if trimmed.is_empty() {
            return Ok(Self("/".into()));
        }
        if trimmed.split('/').any(|seg| seg == "." || seg == "..") || trimmed.contains("//") {
            return Err("must not contain empty, `.` or `..` segments".into());
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part of `path` below this prefix (`""` or starting with `/`), if it is below it.
    pub fn strip<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.0 == "/" {
            return Some(path);
        }
        let rest = path.strip_prefix(self.0.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: UpstreamName,
    /// Lowercase host (no port) this route is served under; any host when `None`.
    pub host: Option<String>,
    pub path: RoutePath,
    pub url: UpstreamUrl,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Send the client's `Host` upstream instead of the upstream URL's authority.
    pub preserve_host: bool,
}

/// Where an upstream lives, split the way a connector needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub tls: bool,
    /// Host as written (for SNI and the `Host` header).
    pub host: String,
    pub port: u16,
    /// Path prefix requests are rewritten onto; `""` for the root.
    pub base_path: String,
    /// `host[:port]` as it goes into the `Host` header.
    pub authority: String,
}

impl UpstreamUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(format!(
                    "scheme `{other}` is not supported (use http or https)"
                ))
            }
        };
        let host = url.host_str().ok_or("must have a host")?.to_string();
        let port = url.port_or_known_default().ok_or("must have a port")?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        let base_path = url.path().trim_end_matches('/').to_string();
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        Ok(Self {
            tls,
            host,
            port,
            base_path,
            authority,
        })
    }

    /// `host:port` for the connector.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The upstream path for a request whose path below the route prefix is `rest`.
    pub fn rewrite(&self, rest: &str) -> String {
        match (self.base_path.is_empty(), rest.is_empty()) {
            (true, true) => "/".into(),
            (true, false) => rest.into(),
            (false, _) => format!("{}{}", self.base_path, rest),
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(p.join("/mcp"), "https://gw.example.com/mcp");
        assert!(PublicUrl::parse("http://127.0.0.1:8080")
            .unwrap()
            .is_loopback());
        assert!(!p.is_loopback());
        assert!(PublicUrl::parse("https://gw/?x").is_err());
    }
}
