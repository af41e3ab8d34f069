//! Which upstream route serves a request: the longest path prefix, host-specific routes
//! before any-host ones (the gateway's own endpoints are `vocab::paths`, matched first).
//! Built once per config version; lookups are a short scan over a prefix-sorted table.
//! Upstream host names are resolved on use and re-resolved every `dns_refresh`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{Config, Upstream};

/// An upstream route with its connector settings. The upstream's host name is resolved when
/// requests need it, not when the config loads: a container that starts after the gateway, or
/// a DNS change, never needs a restart.
pub struct Route {
    pub upstream: Upstream,
    /// This route's metric series, resolved once.
    pub metrics: crate::metrics::UpstreamMetrics,
    /// Its identity header names, ready to insert.
    pub identity_names: super::headers::IdentityNames,
    /// Where requests go: `url` and its replicas, each resolved and health-checked.
    pub replicas: super::replicas::Replicas,
}

/// Resolves `host:port` to addresses: the system resolver, or a stand-in in tests.
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The system resolver (getaddrinfo on a blocking thread, through tokio).
pub fn system_lookup() -> Lookup {
    Arc::new(|address: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host(address).await?.collect()) })
    })
}

pub struct Router {
    /// Longest prefix first; at equal prefixes, host-specific before any-host.
    routes: Vec<Arc<Route>>,
}

impl Router {
    /// Builds the table; IP-literal upstreams get their peer at once, named ones on first use.
    pub fn new(config: &Config) -> Self {
        Self::with_lookup(config, system_lookup())
    }

    pub fn with_lookup(config: &Config, lookup: Lookup) -> Self {
        let mut routes = Vec::with_capacity(config.upstreams.len());
        for u in &config.upstreams {
            let route = Route {
                metrics: crate::metrics::UpstreamMetrics::new(u.name.as_str()),
                identity_names: super::headers::IdentityNames::of(&u.identity_headers),
                replicas: super::replicas::Replicas::new(u, lookup.clone()),
                upstream: u.clone(),
            };
            routes.push(Arc::new(route));
        }
        routes.sort_by(|a, b| {
            let (a, b) = (&a.upstream, &b.upstream);
            b.path
                .as_str()
                .len()
                .cmp(&a.path.as_str().len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        Self { routes }
    }

    /// The route serving `path` on `host`, with the path below the route prefix (`""` or
    /// `/...`). `host` is the request's host without port, any case; `path` has no query.
    pub fn route<'r>(
        &'r self,
        host: Option<&str>,
        path: &'r str,
    ) -> Option<(&'r Arc<Route>, &'r str)> {
        self.routes.iter().find_map(|route| {
            if let Some(want) = &route.upstream.host {
                if !host.is_some_and(|h| h.eq_ignore_ascii_case(want)) {
                    return None;
                }
            }
            route.upstream.path.strip(path).map(|rest| (route, rest))
        })
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

impl Route {
    /// The peer of replica `index` (0: `url`, the only one without replicas).
    pub async fn peer(&self, index: usize) -> Option<HttpPeer> {
        self.replicas.peer(index).await
    }
}

/// For `check`: the upstreams whose host does not resolve right now (the gateway still
/// starts; their requests get 502 until the name resolves).
pub fn unresolvable(config: &Config) -> Vec<(String, String)> {
    use std::net::ToSocketAddrs;
    config
        .upstreams
        .iter()
        .filter(|u| {
            u.url
                .host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_err()
        })
        .filter_map(|u| match u.url.address().to_socket_addrs() {
            Ok(it) if it.len() > 0 => None,
            Ok(_) => Some((u.name.to_string(), "resolves to no address".to_string())),
            Err(e) => Some((u.name.to_string(), e.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::upstreams::peer::Peer;
    use std::path::Path;
    use std::sync::atomic::Ordering;

    fn router(upstreams: &str) -> Router {
        let text = format!("[server]\npublic_url = \"http://127.0.0.1:8080\"\n{upstreams}");
        let config = crate::config::parse(Path::new("t.toml"), &text, |_| None).unwrap();
        Router::new(&config)
    }

    fn target_name(r: &Router, host: Option<&str>, path: &str) -> String {
        match r.route(host, path) {
            Some((route, rest)) => format!("{}:{rest}", route.upstream.name),
            None => "404".into(),
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
    }

    /// A resolver whose answer the test changes, counting lookups.
    fn fake_dns() -> (
        Lookup,
        Arc<std::sync::Mutex<Vec<SocketAddr>>>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let answer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, c) = (answer.clone(), count.clone());
        let lookup: Lookup = Arc::new(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            let found = a.lock().unwrap().clone();
            Box::pin(async move {
                if found.is_empty() {
                    Err(std::io::Error::other("no such host"))
                } else {
                    Ok(found)
                }
            })
        });
        (lookup, answer, count)
    }

    #[tokio::test]
    async fn names_resolve_on_use_and_follow_dns_changes() {
        let text = "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[[upstream]]\nname = \"svc\"\npath = \"/\"\nurl = \"http://svc.internal:9000\"\nauth = \"none\"\ndns_refresh = \"50ms\"\n";
        let config = crate::config::parse(Path::new("t.toml"), text, |_| None).unwrap();
        let (lookup, answer, count) = fake_dns();
        let r = Router::with_lookup(&config, lookup);
        assert_eq!(
            count.load(Ordering::SeqCst),
            0,
            "nothing is resolved at load"
        );
        let route = r.routes()[0].clone();
        assert!(
            route.peer(0).await.is_none(),
            "not resolvable yet: no peer (502)"
        );
        let first: SocketAddr = "10.0.0.1:9000".parse().unwrap();
        *answer.lock().unwrap() = vec!["[fd00::1]:9000".parse().unwrap(), first];
        let peer = route.peer(0).await.unwrap();
        assert_eq!(
            peer.address().to_string(),
            first.to_string(),
            "IPv4 preferred"
        );
        assert_eq!(Peer::sni(&peer), "svc.internal");
        let second: SocketAddr = "10.0.0.2:9000".parse().unwrap();
        *answer.lock().unwrap() = vec![second];
        let before = count.load(Ordering::SeqCst);
        let peer = route.peer(0).await.unwrap();
        assert_eq!(
            peer.address().to_string(),
            first.to_string(),
            "fresh: no lookup"
        );
        assert_eq!(count.load(Ordering::SeqCst), before);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let peer = route.peer(0).await.unwrap();
        assert_eq!(
            peer.address().to_string(),
            first.to_string(),
            "stale is served while refreshing"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let peer = route.peer(0).await.unwrap();
            if peer.address().to_string() == second.to_string() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the new address was never used"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The name stops resolving: the last good address is kept.
        answer.lock().unwrap().clear();
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        for _ in 0..5 {
            assert_eq!(
                route.peer(0).await.unwrap().address().to_string(),
                second.to_string()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn address_literals_never_touch_dns() {
        let text = "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[[upstream]]\nname = \"v6\"\npath = \"/\"\nurl = \"http://[::1]:9000\"\nauth = \"none\"\n";
        let config = crate::config::parse(Path::new("t.toml"), text, |_| None).unwrap();
        let (lookup, _answer, count) = fake_dns();
        let r = Router::with_lookup(&config, lookup);
        let peer = r.routes()[0].peer(0).await.unwrap();
        assert_eq!(peer.address().to_string(), "[::1]:9000");
        assert_eq!(count.load(Ordering::SeqCst), 0);
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
