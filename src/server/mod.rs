//! Builds the Pingora server from a loaded config: the store, the gateway service and its
//! listeners, the admin listener, the store sweeper, signals, reload. Everything that can
//! fail does so here, before a port is bound.

mod admin;
pub mod keys;
pub mod reload;
mod replicas;
mod signals;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;

use crate::config::Config;
use crate::config::StoreConfig;
use crate::crypto::Sealer;
use crate::login::Logins;
use crate::oauth::Authority;
use crate::proxy::{Gateway, Requests, Snapshot};
use crate::store::{Cached, PostgresStore, RedbStore, Store, Sweeper};
use reload::Reloader;
use signals::Signals;

/// Starts serving `config` and returns when the server stops (see [`Signals`]). Nothing is
/// created on disk before the listeners are known to bind. With `upgrade`, the listening
/// sockets are taken over from the running authgate instead (binary upgrade).
pub fn run(config: Config, upgrade: bool) -> anyhow::Result<()> {
    let admin_listen = config.admin.as_ref().map(|a| a.listen);
    if !upgrade {
        for addr in config.server.listen.iter().chain(admin_listen.iter()) {
            // Pingora binds lazily and panics on failure; bind-test first for a clean error.
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
        }
    }
    let _instance = instance_lock(&config.server.data_dir, upgrade)?;
    if let Some(repo) = inside_git_work_tree(&config.server.data_dir) {
        tracing::warn!(data_dir = %config.server.data_dir.display(), repository = %repo.display(), "the data directory (tokens, grants, the session key) is inside a git work tree: set server.data_dir outside it, or make sure it is ignored");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (store, shared, tag_key, tagged_since) = open_store(&config, upgrade, &runtime)?;
    let key = match config.auth.session_key {
        Some(k) => k,
        None => load_or_create_key(&config.server.data_dir)?,
    };
    let cached = Cached::with_capacity(store, config.server.token_cache_entries);
    runtime
        .block_on(cached.load_blocked())
        .context("reading the blocked users")?;
    let sealer = Sealer::with_previous(&key, &config.auth.previous_session_keys);
    match runtime.block_on(keys::check(&cached, &sealer)) {
        Ok(keys::KeyCheck::Current) => {}
        Ok(keys::KeyCheck::Previous(id)) => {
            tracing::warn!(sealed_with = %id, current = %sealer.key_id(), "the store's sealed values are sealed with a previous key: stop authgate and run `authgate rotate-key --config FILE`, then remove that key from auth.previous_session_keys once sessions sealed with it have expired");
        }
        Err(e) => {
            let whence = match config.auth.session_key {
                Some(_) => "auth.session_key".to_string(),
                None => format!(
                    "the generated {}",
                    config.server.data_dir.join("session.key").display()
                ),
            };
            return Err(anyhow::anyhow!(e)).context(format!("checking {whence} against the store"));
        }
    }
    let signer = runtime
        .block_on(crate::crypto::signing::IdentitySigner::load_or_create(
            &cached,
            &sealer,
            crate::vocab::unix_now(),
        ))
        .context("reading the identity signing keys")?;
    let authority = Arc::new(Authority {
        store: Arc::new(cached),
        sealer,
        forms: crate::login::forms::FormTokens::new(&key),
        logins: Logins::new(),
        cimd: Default::default(),
        registrations: Default::default(),
        diagnostics: Default::default(),
        tokens: crate::crypto::tokens::TokenTags::new(tag_key),
        tagged_since,
        api_keys: Default::default(),
        signer,
        discovery: Default::default(),
    });
    let keys = runtime
        .block_on(authority.api_keys.load(&*authority.store))
        .context("reading the API keys")?;
    if keys > 0 {
        tracing::info!(keys, "API keys loaded");
    }
    drop(runtime);
    if let Some(pg) = &shared {
        pg.forget_connections();
    }

    let listen = config.server.listen.clone();
    // One certificate for every TLS listener; a reload swaps it for new handshakes.
    let certificate = config
        .server
        .tls
        .as_ref()
        .map(|t| Arc::new(crate::crypto::tls::Certificate::new(t.certified.clone())));
    let threads = config.server.threads;
    let pool = config.server.upstream_keepalive_pool;
    let grace = config.server.shutdown_grace;
    let watch = config.server.watch_config;
    let public_url = config.server.public_url.clone();
    let source = config.source.clone();
    let upgrade_sock = config.server.data_dir.join("upgrade.sock");
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
    // runtimes (which cuts what is still running); the drain ends the wait as soon as
    // nothing is in flight. The shutdown timeout is for blocking store work still running.
    let conf = ServerConf {
        threads,
        upstream_keepalive_pool_size: pool,
        grace_period_seconds: Some(grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(5),
        upgrade_sock: upgrade_sock.display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let sweep_store = authority.store.clone();
    let store = authority.store.clone();
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let live = snapshot.clone();
    let reloader = Arc::new(Reloader::new(source, snapshot.clone(), certificate.clone()));
    if watch {
        reloader.clone().watch();
    }
    let requests = Arc::new(Requests::default());
    let credentials = Arc::new(crate::proxy::credentials::Credentials::default());
    let gateway = Gateway {
        snapshot: snapshot.clone(),
        authority: authority.clone(),
        requests: requests.clone(),
        own_metrics: crate::metrics::UpstreamMetrics::new("authgate"),
        credentials: credentials.clone(),
    };
    let mut service =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "authgate");
    for addr in &listen {
        match &certificate {
            Some(certificate) => {
                let mut tls = pingora::listeners::tls::TlsSettings::intermediate("", "")
                    .map_err(|e| anyhow::anyhow!("TLS settings: {e}"))?;
                tls.set_cert_resolver(certificate.clone());
                tls.enable_h2();
                service.add_tls_with_settings(&addr.to_string(), None, tls);
            }
            None => service.add_tcp(&addr.to_string()),
        }
    }
    server.add_service(service);
    let replication_authority = authority.clone();
    let health_snapshot = snapshot.clone();
    if let Some(addr) = admin_listen {
        let api = admin::AdminApi {
            authority,
            snapshot,
            reloader: reloader.clone(),
            credentials,
        };
        let mut admin =
            pingora::services::listening::Service::new("authgate admin".to_string(), api);
        admin.add_tcp(&addr.to_string());
        server.add_service(admin);
        tracing::info!(%addr, "admin listener (metrics, admin API)");
    }
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
    server.add_service(pingora::services::background::background_service(
        "upstream health",
        crate::proxy::replicas::HealthChecks {
            snapshot: health_snapshot,
        },
    ));
    if let Some(pg) = shared {
        server.add_service(pingora::services::background::background_service(
            "replication",
            replicas::Replication {
                store: pg,
                authority: replication_authority,
            },
        ));
    }
    for addr in &listen {
        let tls = certificate.is_some();
        tracing::info!(%addr, tls, public_url = %public_url.as_str(), "authgate listening");
    }
    let closing = store.clone();
    signals::drain_when_shutdown_starts(
        server.watch_execution_phase(),
        requests.clone(),
        grace,
        Arc::new(move || closing.close()),
    );
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(Signals {
            reloader,
            upgrade_sock,
        }),
    });
    let cut = requests.cut.load(Ordering::Relaxed);
    if cut > 0 {
        tracing::warn!(cut, grace = ?grace, "requests still in flight at the end of the shutdown grace period were cut");
    }
    store.close();
    Ok(())
}

type Opened = (Arc<dyn Store>, Option<Arc<PostgresStore>>, [u8; 16], u64);

/// The configured store, its token tag key and since when tokens are tagged; for a shared
/// store, also the store itself (its replicas' changes are listened for).
fn open_store(
    config: &Config,
    upgrade: bool,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Opened> {
    match &config.store {
        StoreConfig::Redb => {
            let store = match upgrade {
                false => RedbStore::open(&config.server.data_dir),
                true => RedbStore::open_shared(&config.server.data_dir),
            }
            .context("opening the store")?;
            tracing::info!(path = %store.path().display(), "store open");
            let (tag_key, tagged_since) = store
                .token_tags_now()
                .context("reading the token tag key")?;
            Ok((Arc::new(store), None, tag_key, tagged_since))
        }
        StoreConfig::Postgres(settings) => {
            let store = runtime
                .block_on(PostgresStore::open(settings))
                .context("opening the PostgreSQL store (store.url)")?;
            let (tag_key, tagged_since) = runtime
                .block_on(store.token_tags())
                .context("reading the token tag key")?;
            tracing::info!(schema = %settings.schema, "store open (PostgreSQL, shared by replicas)");
            let store = Arc::new(store);
            Ok((store.clone(), Some(store), tag_key, tagged_since))
        }
    }
}

/// One authgate per data directory: the store is opened shared (for binary upgrades), so this
/// lock is what refuses a second process. A process started with `--upgrade` takes it over
/// once the old one has exited, on a thread of its own. Held until exit.
fn instance_lock(data_dir: &std::path::Path, upgrade: bool) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("authgate.lock");
    let file = crate::store::lock::lock_file(data_dir)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) if upgrade => {
            let waiting = file.try_clone()?;
            std::thread::spawn(move || {
                if waiting.lock().is_ok() {
                    tracing::info!("the previous authgate has exited; this one now holds the data directory");
                    std::mem::forget(waiting);
                }
            });
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another authgate is running with data_dir {} (to replace it without downtime, start this one with `run --upgrade` and send the old one SIGQUIT)",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The git work tree `dir` is in, unless git ignores it: a data directory there is easily
/// committed.
fn inside_git_work_tree(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let repo = dir
        .ancestors()
        .find(|a| a.join(".git").exists())?
        .to_path_buf();
    let ignored = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["check-ignore", "-q"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    (!ignored).then_some(repo)
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
