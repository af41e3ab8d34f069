//! The shared store: PostgreSQL (or a database that speaks its protocol), for several gateway
//! replicas on one set of grants and tokens. Every operation that reads and then writes runs
//! in one SERIALIZABLE transaction, retried when the database reports a serialization failure,
//! so a code is taken once and a refresh token rotates once whichever replicas race for it.
//!
//! Replicas keep their own in-memory token caches: every transaction that revokes a token, or
//! changes the blocked people or the API keys, also sends a notification on the store's
//! channel (delivered when it commits); each replica listens ([`PostgresStore::listen`]) and
//! drops what was revoked. A replica that loses its listening connection flushes its cache
//! when it reconnects, since it may have missed notifications meanwhile.
//!
//! When the database cannot be reached, operations fail with [`StoreError::Unavailable`]
//! (503 and `Retry-After` to clients); tokens already cached keep working; the pool makes new
//! connections once the database answers again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, Transaction};

use super::*;

/// How to reach the database (`[store] kind = "postgres"`).
#[derive(Clone)]
pub struct PgSettings {
    /// A libpq-style connection string (URL or `key=value` pairs); may hold a password, so it
    /// is never logged.
    pub url: String,
    /// The schema authgate's tables live in (created if missing).
    pub schema: String,
    pub pool_size: usize,
    /// A PEM file of extra certificate authorities for TLS to the database.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What a replica must drop from its memory because another one changed the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// These access tokens were revoked.
    Access(Vec<SecretHash>),
    /// The blocked people changed.
    Blocked,
    /// The API keys changed.
    ApiKeys,
    /// A shared secret changed (signing keys after a rotation).
    Secret(String),
    /// Notifications may have been missed (the listening connection was re-established):
    /// forget everything cached.
    All,
}

impl Invalidation {
    /// The notification payloads for this change (a payload holds at most 8000 bytes).
    fn payloads(&self) -> Vec<String> {
        match self {
            Invalidation::Access(hashes) => hashes
                .chunks(100)
                .map(|chunk| {
                    let mut s = String::from("a");
                    for h in chunk {
                        s.push(' ');
                        s.push_str(&hex::encode(h.0));
                    }
                    s
                })
                .collect(),
            Invalidation::Blocked => vec!["b".into()],
            Invalidation::ApiKeys => vec!["k".into()],
            Invalidation::Secret(name) => vec![format!("s {name}")],
            Invalidation::All => vec!["*".into()],
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        let (kind, rest) = payload.split_once(' ').unwrap_or((payload, ""));
        Some(match kind {
            "a" => Invalidation::Access(
                rest.split(' ')
                    .map(|h| {
                        let mut out = [0u8; 32];
                        hex::decode_to_slice(h, &mut out).ok()?;
                        Some(SecretHash(out))
                    })
                    .collect::<Option<_>>()?,
            ),
            "b" => Invalidation::Blocked,
            "k" => Invalidation::ApiKeys,
            "s" => Invalidation::Secret(rest.to_string()),
            "*" => Invalidation::All,
            _ => return None,
        })
    }
}

pub struct PostgresStore {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: Connector,
    /// The notification channel: one per schema, so installations sharing a database do not
    /// hear each other.
    channel: String,
    /// Whether this replica is listening for other replicas' changes right now.
    listening: AtomicBool,
}

/// An error inside a transaction: the database's (perhaps a serialization failure to retry)
/// or the store's own (a record that does not decode).
pub(super) enum TxError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

pub(super) type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, TxError>> + Send + 'a>>;

/// How many times a transaction is retried after a serialization failure.
const RETRIES: u32 = 12;

/// Whether the database asks for the transaction to be run again.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

/// The database's errors as the store's: the ones that mean it cannot be reached are
/// `Unavailable` (503 to clients, `/readyz` not ready), the rest are failures.
pub(super) fn store_error(e: tokio_postgres::Error) -> StoreError {
    let unreachable = match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            // 08: connection exception; 57P0x: the server is shutting down or starting.
            c.starts_with("08") || c.starts_with("57P")
        }
    };
    if unreachable || e.is_closed() {
        StoreError::Unavailable(format!("database: {e}"))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => store_error(e),
        e => StoreError::Unavailable(format!("database: {e}")),
    }
}

impl From<TxError> for StoreError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Db(e) => store_error(e),
            TxError::Store(e) => e,
        }
    }
}

/// The TLS connector for the database: the system's roots plus `ca_file`. Whether TLS is
/// used is the connection string's `sslmode` (`prefer` by default, `require`, `disable`).
fn tls(ca_file: Option<&std::path::Path>) -> Result<Connector, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(native) = rustls_native_certs::load_native_certs() {
        for cert in native {
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut any = false;
        for cert in rustls_pemfile_certs(&pem) {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            any = true;
        }
        if !any {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector(tokio_postgres_rustls::MakeRustlsConnect::new(
        config,
    )))
}

/// rustls for TCP connections. A unix socket has no host name, which rustls refuses even
/// when TLS is off for it (`sslmode=disable`, set for sockets): it gets a placeholder.
#[derive(Clone)]
pub struct Connector(tokio_postgres_rustls::MakeRustlsConnect);

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for Connector
where
    tokio_postgres_rustls::MakeRustlsConnect: tokio_postgres::tls::MakeTlsConnect<S>,
{
    type Stream = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::TlsConnect;
    type Error =
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let domain = if domain.is_empty() {
            "localhost"
        } else {
            domain
        };
        self.0.make_tls_connect(domain)
    }
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

impl PostgresStore {
    /// Connects, creates the schema if needed and applies pending migrations (in one
    /// transaction each; replicas starting together apply each once).
    pub async fn open(settings: &PgSettings) -> Result<Self, StoreError> {
        let store = Self::connect(settings)?;
        super::postgres_schema::migrate(&store, &settings.schema).await?;
        Ok(store)
    }

    /// The schema versions already applied, without applying any (`migrate --dry-run`).
    pub async fn applied_versions(settings: &PgSettings) -> Result<Vec<i32>, StoreError> {
        let store = Self::connect(settings)?;
        super::postgres_schema::applied(&store).await
    }

    /// The pool, without touching the database yet.
    fn connect(settings: &PgSettings) -> Result<Self, StoreError> {
        let invalid = |why: String| StoreError::Open {
            path: "store.url".into(),
            source: why.into(),
        };
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(e.to_string()))?;
        // libpq never uses TLS on a unix socket; tokio-postgres would try (and fail).
        let local = config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)));
        if local {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        config
            .options(format!("-c search_path={}", settings.schema))
            .application_name("authgate")
            .connect_timeout(Duration::from_secs(3))
            .keepalives_idle(Duration::from_secs(10));
        let tls = tls(settings.ca_file.as_deref()).map_err(invalid)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeouts = deadpool_postgres::Timeouts {
            wait: Some(Duration::from_secs(3)),
            create: Some(Duration::from_secs(3)),
            recycle: Some(Duration::from_secs(3)),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .timeouts(timeouts)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            pool,
            config,
            tls,
            channel: format!("authgate_{}", settings.schema),
            listening: AtomicBool::new(false),
        })
    }

    /// Forgets pooled connections (each one's I/O runs on the runtime that opened it: the
    /// start-up runtime's die with it).
    pub fn forget_connections(&self) {
        self.pool.retain(|_, _| false);
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `f` in a SERIALIZABLE transaction, again from the start after a serialization
    /// failure (with a short random pause, so racing replicas do not collide again).
    pub(super) async fn tx<E: Sync, T: Send>(
        &self,
        env: &E,
        f: for<'a> fn(&'a Transaction<'a>, &'a E) -> TxFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            let mut client = self.client().await?;
            let result = async {
                let t = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .await?;
                let out = f(&t, env).await?;
                t.commit().await?;
                Ok::<T, TxError>(out)
            }
            .await;
            match result {
                Ok(out) => {
                    crate::metrics::metrics()
                        .store_writes
                        .observe(started.elapsed().as_secs_f64());
                    return Ok(out);
                }
                Err(TxError::Db(e)) if retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    let pause = rand::random_range(1..=(5u64 << attempt.min(5)));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends `change` to every replica listening, when the transaction commits.
    pub(super) async fn notify(
        &self,
        t: &Transaction<'_>,
        change: &Invalidation,
    ) -> Result<(), tokio_postgres::Error> {
        for payload in change.payloads() {
            t.execute("SELECT pg_notify($1, $2)", &[&self.channel, &payload])
                .await?;
        }
        Ok(())
    }

    /// Whether this replica hears the other replicas' changes right now.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Listens for the changes replicas make (this one's included) and sends each to `out`,
    /// until `out` is closed. Reconnects with backoff; sends [`Invalidation::All`] each time
    /// it starts listening, since changes made meanwhile were not heard. A connection that
    /// stops answering is noticed within about 10 seconds (a probe every 5).
    pub async fn listen(&self, out: tokio::sync::mpsc::UnboundedSender<Invalidation>) {
        let mut backoff = Duration::from_millis(100);
        let mut ever = false;
        while !out.is_closed() {
            match self.listen_once(&out, &mut ever).await {
                Ok(()) => return,
                Err(e) => {
                    if self.listening.swap(false, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "store: stopped hearing other replicas' changes; reconnecting (the token cache is flushed when it is back)");
                        backoff = Duration::from_millis(100);
                    } else {
                        tracing::debug!(error = %e, "store: listening connection failed");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn listen_once(
        &self,
        out: &tokio::sync::mpsc::UnboundedSender<Invalidation>,
        ever: &mut bool,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (client, mut connection) = self.config.connect(self.tls.clone()).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            return Ok(());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        });
        let _stop_driver = AbortOnDrop(driver.abort_handle());
        client
            .batch_execute(&format!("LISTEN {}", self.channel))
            .await?;
        // Whatever changed while nobody listened is unknown: forget it all.
        if out.send(Invalidation::All).is_err() {
            return Ok(());
        }
        self.listening.store(true, Ordering::Relaxed);
        if *ever {
            tracing::info!("store: hearing other replicas' changes again (token cache flushed)");
        }
        *ever = true;
        let mut probe = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                payload = rx.recv() => {
                    let Some(payload) = payload else {
                        return Err(match (&mut driver).await {
                            Ok(Err(e)) => e.into(),
                            _ => "the listening connection closed".into(),
                        });
                    };
                    match Invalidation::parse(&payload) {
                        Some(change) => {
                            if out.send(change).is_err() {
                                return Ok(());
                            }
                        }
                        None => tracing::warn!(payload = %payload.chars().take(40).collect::<String>(), "store: a notification this authgate does not understand (from a newer replica?)"),
                    }
                }
                _ = probe.tick() => {
                    match tokio::time::timeout(Duration::from_secs(5), client.simple_query("")).await {
                        Ok(answer) => { answer?; }
                        Err(_) => return Err("the database did not answer a probe within 5 s".into()),
                    }
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(store_error)?;
        Ok(())
    }

    async fn put_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        self.tx(&client, |t, c| Box::pin(ops::put_client(t, c)))
            .await
    }
    async fn get_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT record FROM clients WHERE client_id = $1",
                &[&client_id.as_str()],
            )
            .await
            .map_err(store_error)?;
        row.map(|r| dec(r.get::<_, &str>(0))).transpose()
    }
    async fn put_code(&self, code: SecretHash, record: CodeRecord) -> Result<(), StoreError> {
        self.tx(&(code, record), |t, (code, record)| {
            Box::pin(ops::put_code(t, code, record))
        })
        .await
    }
    async fn take_code(&self, code: SecretHash, now: u64) -> Result<TakenCode, StoreError> {
        self.tx(&(code, now), |t, (code, now)| {
            Box::pin(ops::take_code(t, code, *now))
        })
        .await
    }
    async fn issue(&self, grant: GrantRecord, tokens: NewTokens) -> Result<(), StoreError> {
        self.tx(&(grant, tokens), |t, (grant, tokens)| {
            Box::pin(ops::issue(t, grant, tokens))
        })
        .await
    }
    async fn rotate_refresh(
        &self,
        old: SecretHash,
        client_id: &ClientId,
        tokens: NewTokens,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let env = (self, old, client_id.clone(), tokens, now);
        self.tx(&env, |t, (store, old, client_id, tokens, now)| {
            Box::pin(ops::rotate(store, t, old, client_id, tokens, *now))
        })
        .await
    }
    async fn find_access(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT record FROM access_tokens WHERE hash = $1 AND expires_at > $2")
            .await
            .map_err(store_error)?;
        let row = c
            .query_opt(&stmt, &[&&token.0[..], &ts(now)])
            .await
            .map_err(store_error)?;
        row.map(|r| dec(r.get::<_, &str>(0))).transpose()
    }
    async fn find_refresh(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT r.record, g.record FROM refresh_tokens r \
                 JOIN grants g ON g.grant_id = r.grant_id WHERE r.hash = $1",
                &[&&token.0[..]],
            )
            .await
            .map_err(store_error)?;
        let Some(row) = row else { return Ok(None) };
        let rec: RefreshRecord = dec(row.get::<_, &str>(0))?;
        if rec.expires_at <= now || rec.rotated_at.is_some() {
            return Ok(None);
        }
        Ok(Some((rec, dec(row.get::<_, &str>(1))?)))
    }
    async fn revoke_grant(&self, grant_id: &GrantId) -> Result<Vec<SecretHash>, StoreError> {
        let env = (self, grant_id.clone());
        self.tx(&env, |t, (store, id)| {
            Box::pin(ops::revoke_grant(store, t, id.as_str()))
        })
        .await
    }
    async fn revoke_token(&self, token: SecretHash) -> Result<Vec<SecretHash>, StoreError> {
        let env = (self, token);
        self.tx(&env, |t, (store, token)| {
            Box::pin(ops::revoke_token(store, t, token))
        })
        .await
    }
    async fn grant_verified(
        &self,
        grant_id: &GrantId,
        verified_at: u64,
        upstream_credential: Option<String>,
    ) -> Result<(), StoreError> {
        let env = (grant_id.clone(), verified_at, upstream_credential);
        self.tx(&env, |t, (id, at, credential)| {
            Box::pin(ops::grant_verified(t, id, *at, credential))
        })
        .await
    }
    async fn claim_once(&self, key: SecretHash, expires_at: u64) -> Result<bool, StoreError> {
        self.tx(&(key, expires_at), |t, (key, until)| {
            Box::pin(async move {
                let n = t
                    .execute(
                        "INSERT INTO claims (hash, expires_at) VALUES ($1, $2) \
                         ON CONFLICT (hash) DO NOTHING",
                        &[&&key.0[..], &ts(*until)],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }
    async fn get_consent(&self, key: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT record FROM consents WHERE consent_key = $1",
                &[&key],
            )
            .await
            .map_err(store_error)?;
        row.map(|r| dec(r.get::<_, &str>(0))).transpose()
    }
    async fn put_consent(&self, key: &str, record: ConsentRecord) -> Result<(), StoreError> {
        self.tx(&(key, enc(&record)), |t, (key, record)| {
            Box::pin(async move {
                t.execute(
                    "INSERT INTO consents (consent_key, record) VALUES ($1, $2) \
                     ON CONFLICT (consent_key) DO UPDATE SET record = EXCLUDED.record",
                    &[key, record],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
    async fn sweep(&self, now: u64, unused_clients_before: u64) -> Result<Swept, StoreError> {
        let env = (self, now, unused_clients_before);
        self.tx(&env, |t, (store, now, before)| {
            Box::pin(ops::sweep(store, t, *now, *before))
        })
        .await
    }
    fn close(&self) {
        self.pool.close();
        tracing::info!("store closed (PostgreSQL connections released)");
    }

    async fn record_login(&self, identity: &Identity, at: u64) -> Result<(), StoreError> {
        self.tx(&(identity.clone(), at), |t, (identity, at)| {
            Box::pin(ops::record_login(t, identity, *at))
        })
        .await
    }
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.all("SELECT record FROM users ORDER BY user_id").await
    }
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.all("SELECT record FROM clients ORDER BY client_id")
            .await
    }
    async fn delete_client(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<Vec<SecretHash>>, StoreError> {
        let env = (self, client_id.clone());
        self.tx(&env, |t, (store, id)| {
            Box::pin(ops::delete_client(store, t, id))
        })
        .await
    }
    async fn list_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        self.all("SELECT record FROM grants ORDER BY grant_id")
            .await
    }
    async fn set_blocked(&self, user_id: &str, since: Option<u64>) -> Result<(), StoreError> {
        let env = (self, user_id, since);
        self.tx(&env, |t, (store, id, since)| {
            Box::pin(async move {
                match since {
                    Some(at) => {
                        t.execute(
                            "INSERT INTO blocked_users (user_id, since) VALUES ($1, $2) \
                             ON CONFLICT (user_id) DO UPDATE SET since = EXCLUDED.since",
                            &[id, &ts(*at)],
                        )
                        .await?
                    }
                    None => {
                        t.execute("DELETE FROM blocked_users WHERE user_id = $1", &[id])
                            .await?
                    }
                };
                store.notify(t, &Invalidation::Blocked).await?;
                Ok(())
            })
        })
        .await
    }
    async fn blocked(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT user_id, since FROM blocked_users ORDER BY user_id",
                &[],
            )
            .await
            .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect())
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM grants), \
                 (SELECT count(*) FROM access_tokens), (SELECT count(*) FROM refresh_tokens), \
                 (SELECT count(*) FROM codes), (SELECT count(*) FROM consents), \
                 (SELECT count(*) FROM users), (SELECT count(*) FROM blocked_users)",
                &[],
            )
            .await
            .map_err(store_error)?;
        let n = |i: usize| row.get::<_, i64>(i) as u64;
        Ok(StoreStats {
            clients: n(0),
            grants: n(1),
            access_tokens: n(2),
            refresh_tokens: n(3),
            codes: n(4),
            consents: n(5),
            users: n(6),
            blocked_users: n(7),
            file_bytes: None,
        })
    }
    async fn backup(&self, _to: &std::path::Path) -> Result<StoreStats, StoreError> {
        Err(StoreError::Backend(
            "a PostgreSQL store is backed up with the database's own tools (pg_dump, or the \
             provider's snapshots), not by authgate"
                .into(),
        ))
    }

    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT value FROM secrets WHERE name = $1", &[&name])
            .await
            .map_err(store_error)?;
        Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
    }
    async fn put_secret(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let env = (self, name, value);
        self.tx(&env, |t, (store, name, value)| {
            Box::pin(async move {
                t.execute(
                    "INSERT INTO secrets (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                    &[name, value],
                )
                .await?;
                store
                    .notify(t, &Invalidation::Secret(name.to_string()))
                    .await?;
                Ok(())
            })
        })
        .await
    }
    async fn insert_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        self.tx(&(name, value), |t, (name, value)| {
            Box::pin(async move {
                let n = t
                    .execute(
                        "INSERT INTO secrets (name, value) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING",
                        &[name, value],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }
    async fn secret_names(&self) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT name FROM secrets ORDER BY name", &[])
            .await
            .map_err(store_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
    async fn put_api_key(&self, key: ApiKeyRecord) -> Result<bool, StoreError> {
        let env = (self, key.name.clone(), enc(&key));
        self.tx(&env, |t, (store, name, record)| {
            Box::pin(async move {
                let n = t
                    .execute(
                        "INSERT INTO api_keys (name, record) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING",
                        &[name, record],
                    )
                    .await?;
                if n == 1 {
                    store.notify(t, &Invalidation::ApiKeys).await?;
                }
                Ok(n == 1)
            })
        })
        .await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.all("SELECT record FROM api_keys ORDER BY name").await
    }
    async fn delete_api_key(&self, name: &str) -> Result<bool, StoreError> {
        let env = (self, name);
        self.tx(&env, |t, (store, name)| {
            Box::pin(async move {
                let n = t
                    .execute("DELETE FROM api_keys WHERE name = $1", &[name])
                    .await?;
                if n > 0 {
                    store.notify(t, &Invalidation::ApiKeys).await?;
                }
                Ok(n > 0)
            })
        })
        .await
    }
    async fn touch_api_key(&self, name: &str, at: u64) -> Result<(), StoreError> {
        self.tx(&(name, at), |t, (name, at)| {
            Box::pin(async move {
                let row = t
                    .query_opt("SELECT record FROM api_keys WHERE name = $1", &[name])
                    .await?;
                if let Some(row) = row {
                    let mut rec: ApiKeyRecord = dec(row.get::<_, &str>(0))?;
                    rec.last_used_at = Some(*at);
                    t.execute(
                        "UPDATE api_keys SET record = $2 WHERE name = $1",
                        &[name, &enc(&rec)],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }
}

impl PostgresStore {
    /// Every record a query returns (its first column).
    async fn all<T: serde::de::DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        let c = self.client().await?;
        let rows = c.query(sql, &[]).await.map_err(store_error)?;
        rows.iter().map(|r| dec(r.get::<_, &str>(0))).collect()
    }

    /// Bulk-inserts access tokens in one transaction (benchmarks), as `RedbStore`'s does.
    #[doc(hidden)]
    pub async fn insert_access_bulk(
        &self,
        records: Vec<(SecretHash, AccessRecord)>,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(store_error)?;
        let stmt = t
            .prepare(
                "INSERT INTO access_tokens (hash, grant_id, record, expires_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING",
            )
            .await
            .map_err(store_error)?;
        for (h, rec) in &records {
            t.execute(
                &stmt,
                &[
                    &&h.0[..],
                    &rec.grant_id.as_str(),
                    &enc(rec),
                    &ts(rec.expires_at),
                ],
            )
            .await
            .map_err(store_error)?;
        }
        t.commit().await.map_err(store_error)
    }

    /// The token tag key and since when tokens are tagged (made by the first migration).
    pub async fn token_tags(&self) -> Result<([u8; 16], u64), StoreError> {
        super::postgres_schema::token_tags(self).await
    }
}

/// A Unix time as PostgreSQL's BIGINT: times past its range (a key that never expires,
/// `u64::MAX`) are kept as its largest value rather than wrapping to a negative one.
pub(super) fn ts(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn enc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

/// A JSON record from a TEXT column (the same decoding, and error, as redb's records).
pub(super) fn dec<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    super::redb::dec(s.as_bytes())
}

#[path = "postgres_ops.rs"]
mod ops;

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
