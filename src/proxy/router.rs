//! Which part of the gateway answers a request: one of its own endpoints, an upstream route
//! (longest path prefix, host-specific routes before any-host ones), or nobody (404).
//! Built once per config version; lookups are a short scan over a prefix-sorted table.

use std::net::ToSocketAddrs;
use std::sync::Arc;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{Config, Upstream};

/// An upstream route with its connector settings resolved.
pub struct Route {
    pub upstream: Upstream,
    /// Cloned per request; carries address, TLS, SNI and timeouts.
    pub peer: HttpPeer,
}

/// Where a request goes.
pub enum Target<'r> {
    Health,
    Ready,
    /// An upstream route, with the request path below the route prefix (`""` or `/...`).
    Upstream(&'r Arc<Route>, &'r str),
    NotFound,
}

pub struct Router {
    /// Longest prefix first; at equal prefixes, host-specific before any-host.
    routes: Vec<Arc<Route>>,
}

impl Router {
    /// Resolves every upstream address (DNS happens here, once per config version).
    pub fn new(config: &Config) -> Result<Self, String> {
        let mut routes = Vec::with_capacity(config.upstreams.len());
        for u in &config.upstreams {
            let addr =
                resolve(&u.url.address()).map_err(|e| format!("upstream `{}`: {e}", u.name))?;
            let mut peer = HttpPeer::new(
                addr,
                u.url.tls,
                u.url.host.trim_matches(['[', ']']).to_string(),
            );
            peer.options.connection_timeout = Some(u.connect_timeout);
            peer.options.total_connection_timeout = Some(u.connect_timeout);
            peer.options.read_timeout = Some(u.idle_timeout);
            peer.options.write_timeout = Some(u.idle_timeout);
            peer.options.idle_timeout = Some(std::time::Duration::from_secs(60));
            routes.push(Arc::new(Route {
                upstream: u.clone(),
                peer,
            }));
        }
        routes.sort_by(|a, b| {
            let (a, b) = (&a.upstream, &b.upstream);
            b.path
                .as_str()
                .len()
                .cmp(&a.path.as_str().len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        Ok(Self { routes })
    }

    /// `host` is the request's host without port, any case; `path` has no query.
    pub fn classify<'r>(&'r self, host: Option<&str>, path: &'r str) -> Target<'r> {
        match path {
            "/healthz" => return Target::Health,
            "/readyz" => return Target::Ready,
            _ => {}
        }
        for route in &self.routes {
            if let Some(want) = &route.upstream.host {
                if !host.is_some_and(|h| h.eq_ignore_ascii_case(want)) {
                    continue;
                }
            }
            if let Some(rest) = route.upstream.path.strip(path) {
                return Target::Upstream(route, rest);
            }
        }
        Target::NotFound
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

/// First address for `host:port`, IPv4 preferred (`localhost` dev servers often bind 127.0.0.1
/// only, while the resolver lists `::1` first).
fn resolve(address: &str) -> Result<std::net::SocketAddr, String> {
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{address}`: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{address}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router(upstreams: &str) -> Router {
        let text = format!("[server]\npublic_url = \"http://127.0.0.1:8080\"\n{upstreams}");
        let config = crate::config::parse(Path::new("t.toml"), &text, |_| None).unwrap();
        Router::new(&config).unwrap()
    }

    fn target_name(r: &Router, host: Option<&str>, path: &str) -> String {
        match r.classify(host, path) {
            Target::Health => "health".into(),
            Target::Ready => "ready".into(),
            Target::Upstream(route, rest) => format!("{}:{rest}", route.upstream.name),
            Target::NotFound => "404".into(),
        }
    }

    #[test]
    fn longest_prefix_and_host_win() {
        let r = router(
            "[[upstream]]\nname = \"root\"\npath = \"/\"\nurl = \"http://127.0.0.1:1\"\nauth = \"none\"\n\
             [[upstream]]\nname = \"a\"\npath = \"/a\"\nurl = \"http://127.0.0.1:2\"\nauth = \"none\"\n\
             [[upstream]]\nname = \"ab\"\npath = \"/a/b\"\nurl = \"http://127.0.0.1:3\"\nauth = \"none\"\n\
             [[upstream]]\nname = \"ahost\"\npath = \"/a\"\nhost = \"h.example\"\nurl = \"http://127.0.0.1:4\"\nauth = \"none\"\n",
        );
        assert_eq!(target_name(&r, None, "/a"), "a:");
        assert_eq!(target_name(&r, None, "/a/x"), "a:/x");
        assert_eq!(target_name(&r, None, "/a/b/c"), "ab:/c");
        assert_eq!(target_name(&r, None, "/ab"), "root:/ab");
        assert_eq!(target_name(&r, Some("H.Example"), "/a/x"), "ahost:/x");
        assert_eq!(target_name(&r, Some("other"), "/a"), "a:");
        assert_eq!(target_name(&r, None, "/healthz"), "health");
        assert_eq!(target_name(&r, None, "/readyz"), "ready");
    }

    #[test]
    fn unknown_paths_and_hosts_are_not_found() {
        let r = router(
            "[[upstream]]\nname = \"a\"\npath = \"/mcp\"\nurl = \"http://127.0.0.1:2\"\nauth = \"none\"\n\
             [[upstream]]\nname = \"h\"\npath = \"/only\"\nhost = \"h.example\"\nurl = \"http://127.0.0.1:3\"\nauth = \"none\"\n",
        );
        assert_eq!(target_name(&r, None, "/mcpx"), "404");
        assert_eq!(target_name(&r, None, "/"), "404");
        assert_eq!(target_name(&r, None, "/only"), "404");
        assert_eq!(target_name(&r, Some("h.example"), "/only/x"), "h:/x");
    }
}
