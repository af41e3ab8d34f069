//! An upstream's replicas: `url` and `replicas` of one MCP server. Requests are balanced
//! round robin over the healthy ones; a Streamable HTTP session stays on the replica that
//! created it without any shared state or load-balancer stickiness: the `Mcp-Session-Id` a
//! replica issues reaches the client as `<tag>.<id>`, where the tag names the replica, and the
//! tag is stripped before the request is forwarded. Any authgate replica routes it the same
//! way, since the tag depends only on the config. Requests without a session (the
//! initialization, or a stateless 2026-07-28 request) go to any healthy replica.
//!
//! Health: each replica is probed every `health_check_interval` (a TCP connection within
//! `connect_timeout`) by [`HealthChecks`], and a connection that fails marks it down at once.
//! A session whose replica is down is answered 404, which tells MCP clients to start a new
//! session (on a healthy replica).
//!
//! An upstream with a single URL is untouched: its session ids pass through as they are.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use async_trait::async_trait;
use base64::Engine;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::{HttpPeer, Peer};
use sha2::{Digest, Sha256};

use super::router::Lookup;
use super::Snapshot;
use crate::config::{Upstream, UpstreamUrl};

/// How long a tag is (base64url of 6 bytes of a hash of the upstream and the URL).
const TAG_LEN: usize = 8;

pub struct Replicas {
    list: Vec<Arc<Replica>>,
    next: AtomicUsize,
}

pub struct Replica {
    pub url: UpstreamUrl,
    /// Prefixes the session ids this replica issues (`<tag>.<id>`).
    pub tag: String,
    upstream: Arc<Upstream>,
    lookup: Lookup,
    /// The last resolution: a peer (address, TLS, SNI, timeouts) cloned per request.
    resolved: ArcSwapOption<Resolved>,
    /// One re-resolution at a time.
    refreshing: AtomicBool,
    healthy: AtomicBool,
    /// When the last probe started (ms since `born`).
    probed: AtomicU64,
    born: Instant,
}

struct Resolved {
    peer: HttpPeer,
    at: Instant,
}

/// Where one request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    Replica {
        index: usize,
        /// The session id to forward (the client's, without its tag), when it had one.
        session: Option<String>,
    },
    /// The session's replica is down: answer 404 so the client starts a new session.
    SessionGone,
}

impl Replicas {
    pub fn new(u: &Upstream, lookup: Lookup) -> Self {
        let upstream = Arc::new(u.clone());
        let list = std::iter::once(&u.url)
            .chain(&u.replicas)
            .map(|url| {
                let replica = Replica {
                    url: url.clone(),
                    tag: tag_of(u, url),
                    upstream: upstream.clone(),
                    lookup: lookup.clone(),
                    resolved: ArcSwapOption::empty(),
                    refreshing: AtomicBool::new(false),
                    healthy: AtomicBool::new(true),
                    probed: AtomicU64::new(0),
                    born: Instant::now(),
                };
                if let Some(ip) = replica.ip_literal() {
                    replica.store(SocketAddr::new(ip, url.port));
                }
                Arc::new(replica)
            })
            .collect();
        Self {
            list,
            next: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// More than one replica: sessions are tagged and health is checked.
    pub fn balanced(&self) -> bool {
        self.list.len() > 1
    }

    pub fn get(&self, index: usize) -> &Replica {
        &self.list[index]
    }

    /// Where a request with this `Mcp-Session-Id` (if any) goes.
    pub fn choose(&self, session: Option<&str>) -> Choice {
        if !self.balanced() {
            return Choice::Replica {
                index: 0,
                session: session.map(str::to_string),
            };
        }
        let Some(id) = session else {
            return Choice::Replica {
                index: self.next_healthy(&[]).unwrap_or(0),
                session: None,
            };
        };
        let tagged = id.split_once('.').and_then(|(tag, rest)| {
            if tag.len() != TAG_LEN {
                return None;
            }
            let index = self.list.iter().position(|r| r.tag == tag)?;
            Some((index, rest))
        });
        match tagged {
            Some((index, _)) if !self.list[index].healthy() => Choice::SessionGone,
            Some((index, rest)) => Choice::Replica {
                index,
                session: Some(rest.to_string()),
            },
            // Not one of ours (issued before this upstream had replicas, or made up): the
            // first replica, unchanged; it answers for sessions it does not know.
            None => Choice::Replica {
                index: 0,
                session: Some(id.to_string()),
            },
        }
    }

    /// The next healthy replica round robin, skipping `except` (replicas that just failed);
    /// when none is healthy, any not in `except` (a probe may be behind).
    pub fn next_healthy(&self, except: &[usize]) -> Option<usize> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !except.contains(i));
        let mut fallback = None;
        for i in candidates {
            if self.list[i].healthy() {
                return Some(i);
            }
            fallback.get_or_insert(i);
        }
        fallback
    }

    /// The id the client sees for a session replica `index` issued.
    pub fn tag_session(&self, index: usize, id: &str) -> String {
        format!("{}.{id}", self.list[index].tag)
    }

    /// The peer of replica `index` (see [`Replica::peer`]).
    pub async fn peer(&self, index: usize) -> Option<HttpPeer> {
        self.list[index].peer().await
    }

    /// Probes every replica whose last probe is older than the upstream's interval.
    fn probe_due(&self) {
        for r in &self.list {
            let now = r.born.elapsed().as_millis() as u64;
            let last = r.probed.load(Ordering::Relaxed);
            let every = r.upstream.health_check_interval.as_millis() as u64;
            if (last == 0 || now.saturating_sub(last) >= every)
                && r.probed
                    .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                let r = r.clone();
                tokio::spawn(async move { r.probe().await });
            }
        }
    }
}

/// The tag of `url` among `u`'s replicas: a hash of the upstream's name and the URL, so every
/// authgate replica with this config computes the same one, and a reordered list keeps them.
fn tag_of(u: &Upstream, url: &UpstreamUrl) -> String {
    let digest = Sha256::new()
        .chain_update(u.name.as_str())
        .chain_update(b"\n")
        .chain_update(if url.tls { "https://" } else { "http://" })
        .chain_update(&url.authority)
        .chain_update(&url.base_path)
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..6])
}

impl Replica {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Marks this replica down (a connection to it failed) or up, logging the change.
    pub fn set_healthy(&self, up: bool, why: &str) {
        if self.healthy.swap(up, Ordering::Relaxed) != up {
            let url = self.display();
            match up {
                true => {
                    tracing::info!(upstream = %self.upstream.name, replica = %url, "upstream replica is up")
                }
                false => {
                    tracing::warn!(upstream = %self.upstream.name, replica = %url, reason = why, "upstream replica is down; new sessions go to the others")
                }
            }
        }
        crate::metrics::metrics()
            .upstream_replica_up
            .with_label_values(&[self.upstream.name.as_str(), &self.display()])
            .set(if up { 1 } else { 0 });
    }

    /// `scheme://authority/base` (for logs and the metric's label; no credentials in it).
    pub fn display(&self) -> String {
        let scheme = if self.url.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.url.authority, self.url.base_path)
    }

    fn ip_literal(&self) -> Option<IpAddr> {
        self.url.host.trim_matches(['[', ']']).parse().ok()
    }

    fn store(&self, addr: SocketAddr) {
        let u = &self.upstream;
        let mut peer = HttpPeer::new(
            addr,
            self.url.tls,
            self.url.host.trim_matches(['[', ']']).to_string(),
        );
        peer.options.connection_timeout = Some(u.connect_timeout);
        peer.options.total_connection_timeout = Some(u.connect_timeout);
        peer.options.read_timeout = Some(u.idle_timeout);
        peer.options.write_timeout = Some(u.idle_timeout);
        peer.options.idle_timeout = Some(u.keepalive_timeout);
        if u.http2 {
            // h2c needs prior knowledge (nothing to negotiate on plain TCP); over TLS, ALPN
            // offers h2 and falls back to HTTP/1.1.
            let min = if self.url.tls { 1 } else { 2 };
            peer.options.set_http_version(2, min);
        }
        self.resolved.store(Some(Arc::new(Resolved {
            peer,
            at: Instant::now(),
        })));
    }

    /// The peer to connect to. A stale resolution is used while a fresh one is looked up in
    /// the background; only a replica that never resolved waits for DNS (and fails with
    /// `None` while the name does not resolve).
    pub async fn peer(self: &Arc<Self>) -> Option<HttpPeer> {
        let current = self.resolved.load_full();
        if let Some(r) = &current {
            let stale = self.ip_literal().is_none() && r.at.elapsed() >= self.upstream.dns_refresh;
            if stale && !self.refreshing.swap(true, Ordering::AcqRel) {
                let replica = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = replica.resolve().await {
                        // Keep serving the last good address; say why it could not be renewed.
                        tracing::warn!(upstream = %replica.upstream.name, error = %e, "upstream DNS refresh failed; keeping the last address");
                    }
                    replica.refreshing.store(false, Ordering::Release);
                });
            }
            return Some(r.peer.clone());
        }
        match self.resolve().await {
            Ok(()) => self.resolved.load().as_ref().map(|r| r.peer.clone()),
            Err(e) => {
                tracing::warn!(upstream = %self.upstream.name, error = %e, "upstream host does not resolve");
                None
            }
        }
    }

    /// Looks the host up now and keeps the first address (IPv4 preferred: `localhost` dev
    /// servers often bind 127.0.0.1 only, while the resolver lists `::1` first).
    async fn resolve(&self) -> Result<(), String> {
        let address = self.url.address();
        let addrs = (self.lookup)(address.clone())
            .await
            .map_err(|e| format!("cannot resolve `{address}`: {e}"))?;
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| format!("`{address}` resolves to no address"))?;
        self.store(addr);
        Ok(())
    }

    /// One health probe: a TCP connection to the replica within `connect_timeout`.
    async fn probe(self: Arc<Self>) {
        let Some(peer) = self.peer().await else {
            self.set_healthy(false, "its host name does not resolve");
            return;
        };
        let Some(addr) = peer.address().as_inet().copied() else {
            return;
        };
        let timeout = self.upstream.connect_timeout;
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => self.set_healthy(true, ""),
            Ok(Err(_)) => self.set_healthy(false, "connection refused or unreachable"),
            Err(_) => self.set_healthy(false, "connection timed out"),
        }
    }
}

/// Probes the replicas of every balanced upstream of the running config.
pub struct HealthChecks {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    let snapshot = self.snapshot.load();
                    for route in snapshot.router.routes() {
                        if route.replicas.balanced() {
                            route.replicas.probe_due();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn replicas(extra: &str) -> Replicas {
        let text = format!(
            "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[[upstream]]\nname = \"u\"\npath = \"/mcp\"\nurl = \"http://127.0.0.1:3001/mcp\"\nauth = \"none\"\n{extra}"
        );
        let config = crate::config::parse(Path::new("t.toml"), &text, |_| None).unwrap();
        Replicas::new(&config.upstreams[0], super::super::router::system_lookup())
    }

    #[test]
    fn one_url_passes_session_ids_through() {
        let r = replicas("");
        assert!(!r.balanced());
        assert_eq!(
            r.choose(Some("abc")),
            Choice::Replica {
                index: 0,
                session: Some("abc".into())
            }
        );
    }

    #[test]
    fn sessions_stay_on_their_replica_and_new_ones_are_balanced() {
        let r =
            replicas("replicas = [\"http://127.0.0.2:3001/mcp\", \"http://127.0.0.3:3001/mcp\"]");
        assert_eq!(r.len(), 3);
        let tags: std::collections::HashSet<_> = (0..3).map(|i| r.get(i).tag.clone()).collect();
        assert_eq!(tags.len(), 3, "distinct tags");
        assert!(tags.iter().all(|t| t.len() == TAG_LEN));
        // New sessions: round robin.
        let picks: Vec<_> = (0..6)
            .map(|_| match r.choose(None) {
                Choice::Replica {
                    index,
                    session: None,
                } => index,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        // A tagged id goes back to its replica, untagged.
        let id = r.tag_session(2, "s-123.x");
        assert_eq!(
            r.choose(Some(&id)),
            Choice::Replica {
                index: 2,
                session: Some("s-123.x".into())
            }
        );
        // Down: new sessions skip it, its sessions are gone.
        r.get(2).set_healthy(false, "test");
        assert_eq!(r.choose(Some(&id)), Choice::SessionGone);
        for _ in 0..6 {
            assert!(matches!(
                r.choose(None),
                Choice::Replica { index: 0 | 1, .. }
            ));
        }
        assert_eq!(
            r.next_healthy(&[0, 1]),
            Some(2),
            "a down one before none at all"
        );
        // An id that is not ours goes to the first replica as it is.
        assert_eq!(
            r.choose(Some("plain-id")),
            Choice::Replica {
                index: 0,
                session: Some("plain-id".into())
            }
        );
    }

    #[test]
    fn tags_depend_on_the_url_not_the_order() {
        let a = replicas("replicas = [\"http://127.0.0.2:3001/mcp\"]");
        let b_text = "[server]\npublic_url = \"http://127.0.0.1:8080\"\n[[upstream]]\nname = \"u\"\npath = \"/mcp\"\nurl = \"http://127.0.0.2:3001/mcp\"\nreplicas = [\"http://127.0.0.1:3001/mcp\"]\nauth = \"none\"\n";
        let config = crate::config::parse(Path::new("t.toml"), b_text, |_| None).unwrap();
        let b = Replicas::new(&config.upstreams[0], super::super::router::system_lookup());
        assert_eq!(a.get(0).tag, b.get(1).tag);
        assert_eq!(a.get(1).tag, b.get(0).tag);
    }
}
