//! Builds the Pingora server from a loaded config: the store, the gateway service and its
//! listeners. Everything that can fail does so here, before a port is bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

use crate::config::Config;
use crate::crypto::Sealer;
use crate::login::Logins;
use crate::oauth::Authority;
use crate::proxy::{Gateway, Requests, Snapshot};
use crate::store::{Cached, RedbStore, Store, Sweeper};

/// Starts serving `config` and returns when the server stops (SIGTERM drains, SIGINT stops at
/// once; see [`Signals`]). Nothing is created on disk before the listeners are known to bind.
pub fn run(config: Config) -> anyhow::Result<()> {
    for addr in &config.server.listen {
        // Pingora binds lazily and panics on failure; bind-test first for a clean error.
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    }
    let store = RedbStore::open(&config.server.data_dir).context("opening the store")?;
    tracing::info!(path = %store.path().display(), "store open");
    let store: Arc<dyn Store> = Arc::new(store);
    let key = match config.auth.session_key {
        Some(k) => k,
        None => load_or_create_key(&config.server.data_dir)?,
    };
    let authority = Arc::new(Authority {
        store: Arc::new(Cached::new(store)),
        sealer: Sealer::new(&key),
        forms: crate::login::forms::FormTokens::new(&key),
        logins: Logins::new(),
        cimd: Default::default(),
        registrations: Default::default(),
    });

    let listen = config.server.listen.clone();
    let threads = config.server.threads;
    let grace = config.server.shutdown_grace;
    let public_url = config.server.public_url.clone();
    let snapshot = Snapshot::new(config);
    for route in snapshot.router.routes() {
        let u = &route.upstream;
        tracing::info!(
            upstream = %u.name,
            url = %public_url.join(u.path.as_str()),
            host = u.host.as_deref().unwrap_or("*"),
            to = %format!("{}://{}{}", if u.url.tls { "https" } else { "http" }, u.url.authority, u.url.rewrite("")),
            "route"
        );
    }

    // On SIGTERM Pingora stops accepting, then waits the grace period before stopping its
    // runtimes (which cuts what is still running); `drain` ends the wait as soon as nothing
    // is in flight. The shutdown timeout is for blocking store work still running then.
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let sweep_store = authority.store.clone();
    let store = authority.store.clone();
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let live = snapshot.clone();
    let requests = Arc::new(Requests::default());
    let gateway = Gateway {
        snapshot,
        authority,
        requests: requests.clone(),
    };
    let mut service =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "authgate");
    for addr in &listen {
        service.add_tcp(&addr.to_string());
    }
    server.add_service(service);
    server.add_service(pingora::services::background::background_service(
        "store sweeper",
        Sweeper {
            store: sweep_store,
            every: std::time::Duration::from_secs(300),
            unused_registration_ttl: Box::new(move || {
                live.load().config.auth.unused_registration_ttl
            }),
        },
    ));
    for addr in &listen {
        tracing::info!(%addr, public_url = %public_url.as_str(), "authgate listening");
    }
    let closing = store.clone();
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(Signals {
            requests: requests.clone(),
            grace,
            close_store: Arc::new(move || closing.close()),
        }),
    });
    let cut = requests.cut.load(Ordering::Relaxed);
    if cut > 0 {
        tracing::warn!(cut, grace = ?grace, "requests still in flight at the end of the shutdown grace period were cut");
    }
    store.close();
    Ok(())
}

/// The signals authgate answers. Pingora's default watcher treats SIGQUIT as "hand the
/// listening sockets to a new process", which hangs when none is waiting, and leaves SIGHUP
/// to its default action (the process dies); an operator used to nginx sends both.
/// Until reload and binary upgrade exist, both are logged and ignored. SIGTERM drains.
struct Signals {
    requests: Arc<Requests>,
    grace: Duration,
    close_store: Arc<dyn Fn() + Send + Sync>,
}

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for Signals {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        let signal = self.wait().await;
        if matches!(signal, pingora::server::ShutdownSignal::GracefulTerminate) {
            let (requests, grace) = (self.requests.clone(), self.grace);
            let close = self.close_store.clone();
            std::thread::spawn(move || drain(&requests.in_flight, grace, close.as_ref()));
        }
        signal
    }
}

impl Signals {
    async fn wait(&self) -> pingora::server::ShutdownSignal {
        use pingora::server::ShutdownSignal;
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return ShutdownSignal::GracefulTerminate,
                _ = int.recv() => return ShutdownSignal::FastShutdown,
                _ = hup.recv() => tracing::warn!("SIGHUP received: config reload is not supported yet; ignored (restart to apply a new config)"),
                _ = quit.recv() => tracing::warn!("SIGQUIT received: binary upgrade is not supported yet; ignored"),
            }
        }
    }
}

/// After SIGTERM (Pingora has stopped accepting): waits until no request is in flight, then
/// closes the store and exits. Otherwise Pingora stops its runtimes at the end of the grace
/// period; the requests cut then write their access lines as they are dropped, and `run`
/// says how many there were.
fn drain(in_flight: &AtomicUsize, grace: Duration, close_store: &(dyn Fn() + Send + Sync)) {
    let start = Instant::now();
    tracing::info!(in_flight = in_flight.load(Ordering::Relaxed), grace = ?grace, "SIGTERM: draining");
    let mut idle = 0;
    loop {
        let n = in_flight.load(Ordering::Relaxed);
        // Idle three checks in a row: a request read just before the listeners closed has
        // had time to show up.
        idle = if n == 0 { idle + 1 } else { 0 };
        if idle >= 3 {
            tracing::info!(elapsed = ?start.elapsed(), "drained: no request in flight; stopping");
            close_store();
            std::process::exit(0);
        }
        if start.elapsed() >= grace {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Without `auth.session_key`, a key is generated once and kept in the data dir (mode 0600),
/// so sessions survive restarts; several replicas must share a configured key instead.
fn load_or_create_key(data_dir: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("session.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return crate::crypto::decode_key(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let key = crate::crypto::random_key();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(encoded.as_bytes())?;
        f.sync_all()?;
    }
    tracing::warn!(path = %path.display(), "no auth.session_key configured: generated one in the data dir");
    Ok(key)
}
