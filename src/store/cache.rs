//! The hot path's memory: access-token records cached in process in front of any backend.
//! Every revocation goes through this decorator, so a revoked token leaves the cache in the
//! same call that removes it from the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::*;

/// Entries kept before the cache starts over (a cold start costs one store read per token).
const MAX_ENTRIES: usize = 1 << 20;

pub struct Cached {
    inner: Arc<dyn Store>,
    access: RwLock<HashMap<SecretHash, Arc<AccessRecord>>>,
    /// People refused everywhere (`provider:subject`), kept in step with the store.
    blocked: arc_swap::ArcSwap<HashSet<String>>,
}

impl Cached {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            access: RwLock::new(HashMap::new()),
            blocked: Default::default(),
        }
    }

    /// Loads the blocked people from the store (at start).
    pub async fn load_blocked(&self) -> Result<(), StoreError> {
        let list = self.inner.blocked().await?;
        self.blocked
            .store(Arc::new(list.into_iter().map(|(id, _)| id).collect()));
        Ok(())
    }

    /// Whether `identity` is blocked: one atomic load while nobody is.
    pub fn is_blocked(&self, identity: &Identity) -> bool {
        let blocked = self.blocked.load();
        !blocked.is_empty() && blocked.contains(&identity.user_id())
    }

    /// The cached record for a token, without touching the store: the hot path's hit.
    pub fn cached(&self, token: &SecretHash, now: u64) -> Option<Arc<AccessRecord>> {
        let map = self.access.read().expect("cache lock");
        map.get(token).filter(|rec| rec.expires_at > now).cloned()
    }

    /// The bearer check: one hash (done by the caller), one map hit; the store on a miss.
    pub async fn authenticate(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<Arc<AccessRecord>>, StoreError> {
        Ok(self.lookup(token, now).await?.map(|(rec, _)| rec))
    }

    /// [`Self::authenticate`], also saying whether the record came from the store (the
    /// token's first use in this process).
    pub async fn lookup(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<(Arc<AccessRecord>, bool)>, StoreError> {
        let lookups = &crate::metrics::metrics().token_cache;
        if let Some(rec) = self.cached(&token, now) {
            lookups.with_label_values(&["hit"]).inc();
            return Ok(Some((rec, false)));
        }
        lookups.with_label_values(&["miss"]).inc();
        let Some(rec) = self.inner.find_access(token, now).await? else {
            return Ok(None);
        };
        let rec = Arc::new(rec);
        let mut map = self.access.write().expect("cache lock");
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(token, rec.clone());
        Ok(Some((rec, true)))
    }

    fn evict(&self, hashes: &[SecretHash]) {
        if hashes.is_empty() {
            return;
        }
        let mut map = self.access.write().expect("cache lock");
        for h in hashes {
            map.remove(h);
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
        self.access
            .write()
            .expect("cache lock")
            .retain(|_, rec| rec.expires_at > now);
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
        let mut next: HashSet<String> = (**self.blocked.load()).clone();
        match since {
            Some(_) => next.insert(user_id.to_string()),
            None => next.remove(user_id),
        };
        self.blocked.store(Arc::new(next));
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
}
