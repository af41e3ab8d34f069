//! Builds the Pingora server from a loaded config: the store, the gateway service and its
//! listeners. Everything that can fail does so here, before a port is bound.

use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

use crate::config::Config;
use crate::crypto::Sealer;
use crate::login::Logins;
use crate::oauth::Authority;
use crate::proxy::{Gateway, Snapshot};
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

    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(10),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let sweep_store = authority.store.clone();
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let live = snapshot.clone();
    let gateway = Gateway {
        snapshot,
        authority,
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
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(Signals),
    });
    Ok(())
}

/// The signals authgate answers. Pingora's default watcher treats SIGQUIT as "hand the
/// listening sockets to a new process", which hangs when none is waiting, and leaves SIGHUP
/// to its default action (the process dies); an operator used to nginx sends both.
/// Until reload and binary upgrade exist, both are logged and ignored.
struct Signals;

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for Signals {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
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
