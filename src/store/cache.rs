//! The hot path's memory: access-token records cached in process in front of any backend.
//! Every revocation goes through this decorator, so a revoked token leaves the cache in the
//! same call that removes it from the store.
//!
//! The cache is bounded (`server.token_cache_entries`) and sharded, with S3-FIFO eviction
//! (`quick_cache`): a token used once falls out before the ones clients keep using. Keys are
//! sha256 hashes of tokens authgate issued, so their first 8 bytes are already a good hash;
//! a client cannot choose what lands in the table (unknown tokens are never inserted).

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use quick_cache::sync::Cache;
use quick_cache::UnitWeighter;

use super::*;

/// The default number of access tokens cached.
pub const DEFAULT_CACHE_ENTRIES: usize = 1_000_000;

/// Hashes a sha256 key by its first 8 bytes.
#[derive(Clone, Default)]
pub struct PrefixHash;

pub struct PrefixHasher(u64);

impl BuildHasher for PrefixHash {
    type Hasher = PrefixHasher;
    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher(0)
    }
}

impl Hasher for PrefixHasher {
    fn write(&mut self, bytes: &[u8]) {
        match bytes.first_chunk::<8>() {
            Some(head) => self.0 ^= u64::from_le_bytes(*head),
            None => {
                for b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(*b);
                }
            }
        }
    }
    // The slice length written before the bytes adds nothing.
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

type TokenCache = Cache<SecretHash, Arc<AccessRecord>, UnitWeighter, PrefixHash>;

pub struct Cached {
    inner: Arc<dyn Store>,
    access: TokenCache,
    /// People refused everywhere (`provider:subject`), kept in step with the store.
    blocked: arc_swap::ArcSwap<HashSet<String>>,
    /// Whether `blocked` has anyone: the hot path's one relaxed load while nobody is.
    any_blocked: std::sync::atomic::AtomicBool,
    /// One change of `blocked` at a time (a read-copy-update that must not lose a block).
    blocked_changes: std::sync::Mutex<()>,
}

impl Cached {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self::with_capacity(inner, DEFAULT_CACHE_ENTRIES)
    }

    /// A cache of at most `entries` access tokens.
    pub fn with_capacity(inner: Arc<dyn Store>, entries: usize) -> Self {
        let entries = entries.max(16);
        Self {
            inner,
            access: Cache::with(
                entries,
                entries as u64,
                UnitWeighter,
                PrefixHash,
                Default::default(),
            ),
            blocked: Default::default(),
            any_blocked: Default::default(),
            blocked_changes: Default::default(),
        }
    }

    /// Access tokens cached now.
    pub fn cached_entries(&self) -> usize {
        self.access.len()
    }

    /// Loads the blocked people from the store (at start).
    pub async fn load_blocked(&self) -> Result<(), StoreError> {
        let list = self.inner.blocked().await?;
        self.set_blocked_list(list.into_iter().map(|(id, _)| id).collect());
        Ok(())
    }

    fn set_blocked_list(&self, list: HashSet<String>) {
        let any = !list.is_empty();
        self.blocked.store(Arc::new(list));
        self.any_blocked
            .store(any, std::sync::atomic::Ordering::Release);
    }

    /// Whether `identity` is blocked: one atomic load while nobody is.
    pub fn is_blocked(&self, identity: &Identity) -> bool {
        if !self.any_blocked.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        self.blocked.load().contains(&identity.user_id())
    }

    /// The cached record for a token, without touching the store: the hot path's hit.
    pub fn cached(&self, token: &SecretHash, now: u64) -> Option<Arc<AccessRecord>> {
        self.access.get(token).filter(|rec| rec.expires_at > now)
    }

    /// The bearer check: one hash (done by the caller), one map hit; the store on a miss.
    pub async fn authenticate(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<Arc<AccessRecord>>, StoreError> {
        Ok(self.lookup(token, now, || true).await?.map(|(rec, _)| rec))
    }

    /// [`Self::authenticate`], also saying whether the record came from the store (the
    /// token's first use in this process). On a cache miss the store is asked only if
    /// `may_exist` says the token could be one authgate issued (its tag checks out).
    pub async fn lookup(
        &self,
        token: SecretHash,
        now: u64,
        may_exist: impl FnOnce() -> bool,
    ) -> Result<Option<(Arc<AccessRecord>, bool)>, StoreError> {
        let m = crate::metrics::metrics();
        if let Some(rec) = self.cached(&token, now) {
            m.cache_hits.inc();
            return Ok(Some((rec, false)));
        }
        if !may_exist() {
            m.cache_refused.inc();
            return Ok(None);
        }
        m.cache_misses.inc();
        let started = std::time::Instant::now();
        let found = self.inner.find_access(token, now).await;
        m.token_validation.observe(started.elapsed().as_secs_f64());
        let Some(rec) = found? else {
            return Ok(None);
        };
        let rec = Arc::new(rec);
        self.access.insert(token, rec.clone());
        Ok(Some((rec, true)))
    }

    /// Applies a change another replica made (or this one: harmless). A change to the API
    /// keys or a shared secret is the caller's to apply.
    pub async fn invalidate(&self, change: &Invalidation) -> Result<(), StoreError> {
        match change {
            Invalidation::Access(hashes) => self.evict(hashes),
            Invalidation::Blocked => self.load_blocked().await?,
            Invalidation::All => {
                self.access.clear();
                self.load_blocked().await?;
            }
            Invalidation::ApiKeys | Invalidation::Secret(_) => {}
        }
        Ok(())
    }

    fn evict(&self, hashes: &[SecretHash]) {
        if hashes.is_empty() {
            return;
        }
        for h in hashes {
            self.access.remove(h);
        }
    }
}

#[async_trait]
impl Store for Cached {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn put_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        self.inner.put_client(client).await
    }
    async fn get_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        self.inner.get_client(client_id).await
    }
    async fn put_code(&self, code: SecretHash, record: CodeRecord) -> Result<(), StoreError> {
        self.inner.put_code(code, record).await
    }
    async fn take_code(&self, code: SecretHash, now: u64) -> Result<TakenCode, StoreError> {
        self.inner.take_code(code, now).await
    }
    async fn issue(&self, grant: GrantRecord, tokens: NewTokens) -> Result<(), StoreError> {
        self.inner.issue(grant, tokens).await
    }
    async fn rotate_refresh(
        &self,
        old: SecretHash,
        client_id: &ClientId,
        tokens: NewTokens,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let out = self
            .inner
            .rotate_refresh(old, client_id, tokens, now)
            .await?;
        if let Rotation::Reused { revoked, .. } = &out {
            self.evict(revoked);
        }
        Ok(out)
    }
    async fn find_access(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError> {
        Ok(self.authenticate(token, now).await?.map(|r| (*r).clone()))
    }
    async fn find_refresh(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        self.inner.find_refresh(token, now).await
    }
    async fn revoke_grant(&self, grant_id: &GrantId) -> Result<Vec<SecretHash>, StoreError> {
        let removed = self.inner.revoke_grant(grant_id).await?;
        self.evict(&removed);
        Ok(removed)
    }
    async fn revoke_token(&self, token: SecretHash) -> Result<Vec<SecretHash>, StoreError> {
        let removed = self.inner.revoke_token(token).await?;
        self.evict(&removed);
        // The token itself may be cached even if the backend no longer knew it.
        self.evict(&[token]);
        Ok(removed)
    }
    async fn grant_verified(
        &self,
        grant_id: &GrantId,
        verified_at: u64,
        upstream_credential: Option<String>,
    ) -> Result<(), StoreError> {
        self.inner
            .grant_verified(grant_id, verified_at, upstream_credential)
            .await
    }
    async fn claim_once(&self, key: SecretHash, expires_at: u64) -> Result<bool, StoreError> {
        self.inner.claim_once(key, expires_at).await
    }
    async fn get_consent(&self, key: &str) -> Result<Option<ConsentRecord>, StoreError> {
        self.inner.get_consent(key).await
    }
    async fn put_consent(&self, key: &str, record: ConsentRecord) -> Result<(), StoreError> {
        self.inner.put_consent(key, record).await
    }
    async fn sweep(&self, now: u64, unused_clients_before: u64) -> Result<Swept, StoreError> {
        let swept = self.inner.sweep(now, unused_clients_before).await?;
        self.access.retain(|_, rec| rec.expires_at > now);
        Ok(swept)
    }
    fn close(&self) {
        self.inner.close()
    }

    async fn record_login(&self, identity: &Identity, at: u64) -> Result<(), StoreError> {
        self.inner.record_login(identity, at).await
    }
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.inner.list_users().await
    }
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.inner.list_clients().await
    }
    async fn delete_client(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<Vec<SecretHash>>, StoreError> {
        let removed = self.inner.delete_client(client_id).await?;
        if let Some(r) = &removed {
            self.evict(r);
        }
        Ok(removed)
    }
    async fn list_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        self.inner.list_grants().await
    }
    async fn set_blocked(&self, user_id: &str, since: Option<u64>) -> Result<(), StoreError> {
        self.inner.set_blocked(user_id, since).await?;
        let _one_at_a_time = self
            .blocked_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut next: HashSet<String> = (**self.blocked.load()).clone();
        match since {
            Some(_) => next.insert(user_id.to_string()),
            None => next.remove(user_id),
        };
        self.set_blocked_list(next);
        Ok(())
    }
    async fn blocked(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.blocked().await
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats().await
    }
    async fn backup(&self, to: &std::path::Path) -> Result<StoreStats, StoreError> {
        self.inner.backup(to).await
    }
    async fn put_api_key(&self, key: ApiKeyRecord) -> Result<bool, StoreError> {
        self.inner.put_api_key(key).await
    }
    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_secret(name).await
    }
    async fn put_secret(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put_secret(name, value).await
    }
    async fn insert_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        self.inner.insert_secret(name, value).await
    }
    async fn secret_names(&self) -> Result<Vec<String>, StoreError> {
        self.inner.secret_names().await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.inner.list_api_keys().await
    }
    async fn delete_api_key(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.delete_api_key(name).await
    }
    async fn touch_api_key(&self, name: &str, at: u64) -> Result<(), StoreError> {
        self.inner.touch_api_key(name, at).await
    }
}
