//! API keys: long-lived bearer tokens for machines, created by an administrator (the admin
//! API, `authgate admin keys create`), shown once and kept only as sha256. A key has a
//! distinct prefix (`ag_key_`) and a tag like access tokens, so the proxy routes its lookup
//! here without trying the token tables, and a forged one costs no lookup at all.
//!
//! The live set is in memory (loaded at start, replaced whole on every change through the
//! admin API), so a key check is a hash and a map lookup, and a revoked key is refused at
//! once. A key stands for a person the policies and upstreams see as `key:<name>`
//! (provider `key`, which no `[[provider]]` may use), named by its owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::crypto::tokens::{Shape, TokenTags};
use crate::store::{AccessRecord, ApiKeyRecord, CheckMemo, Store, StoreError};
use crate::vocab::{ClientId, GrantId, Identity, ScopeSet, SecretHash, UpstreamName};

pub const API_KEY_PREFIX: &str = "ag_key_";
pub use crate::policy::KEY_PROVIDER;
/// How often a key's `last_used_at` is written, at most.
const TOUCH_EVERY: u64 = 60;

/// One live key: its record, and what the proxy needs per upstream it is good for.
pub struct LiveKey {
    pub record: ApiKeyRecord,
    /// The access record the request carries on each of its upstreams.
    access: HashMap<UpstreamName, Arc<AccessRecord>>,
    last_used: AtomicU64,
}

impl LiveKey {
    fn new(record: ApiKeyRecord) -> Self {
        let identity = Identity {
            provider: KEY_PROVIDER.into(),
            subject: record.name.clone(),
            email: None,
            name: Some(record.owner.clone()),
            groups: Vec::new(),
        };
        let access = record
            .upstreams
            .iter()
            .map(|u| {
                let rec = AccessRecord {
                    expires_at: record.expires_at.unwrap_or(u64::MAX),
                    passed: CheckMemo::default(),
                    grant_id: GrantId::new(format!("key:{}", record.name)),
                    client_id: ClientId::new(format!("key:{}", record.name)),
                    identity: identity.clone(),
                    scopes: record.scopes.clone(),
                    upstream: u.clone(),
                };
                (u.clone(), Arc::new(rec))
            })
            .collect();
        let last_used = AtomicU64::new(record.last_used_at.unwrap_or(0));
        LiveKey {
            record,
            access,
            last_used,
        }
    }

    /// The access record for `upstream`, if the key is good for it.
    pub fn access_for(&self, upstream: &UpstreamName) -> Option<&Arc<AccessRecord>> {
        self.access.get(upstream)
    }

    pub fn expired(&self, now: u64) -> bool {
        self.record.expires_at.is_some_and(|t| now >= t)
    }

    /// Whether `last_used_at` is due a write (at most once a minute); claims it if so.
    pub fn touch_due(&self, now: u64) -> bool {
        let last = self.last_used.load(Ordering::Relaxed);
        now >= last + TOUCH_EVERY
            && self
                .last_used
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// What a presented key turned out to be.
pub enum Lookup {
    Found(Arc<LiveKey>),
    /// Not authgate's by its tag: refused without a lookup.
    Forged,
    /// Well-formed but unknown (never issued, or revoked).
    Unknown,
}

/// The live keys, by the sha256 of the key.
#[derive(Default)]
pub struct ApiKeys {
    live: ArcSwap<HashMap<SecretHash, Arc<LiveKey>>>,
}

impl ApiKeys {
    /// Reads every key from the store (at start, and after each change).
    pub async fn load(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let keys = store.list_api_keys().await?;
        let n = keys.len();
        let map = keys
            .into_iter()
            .map(|k| (k.hash, Arc::new(LiveKey::new(k))))
            .collect();
        self.live.store(Arc::new(map));
        Ok(n)
    }

    pub fn lookup(&self, tags: &TokenTags, key: &str) -> Lookup {
        if tags.shape(API_KEY_PREFIX, key) != Shape::Tagged {
            return Lookup::Forged;
        }
        match self.live.load().get(&SecretHash::of(key)) {
            Some(k) => Lookup::Found(k.clone()),
            None => Lookup::Unknown,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.live.load().is_empty()
    }
}

/// A new key (shown once) and its record, for `name`.
pub fn mint(
    tags: &TokenTags,
    name: &str,
    owner: &str,
    upstreams: Vec<UpstreamName>,
    scopes: ScopeSet,
    now: u64,
    expires_at: Option<u64>,
) -> (String, ApiKeyRecord) {
    let key = tags.mint(API_KEY_PREFIX);
    let record = ApiKeyRecord {
        name: name.to_string(),
        hash: SecretHash::of(&key),
        owner: owner.to_string(),
        upstreams,
        scopes,
        created_at: now,
        expires_at,
        last_used_at: None,
    };
    (key, record)
}

/// A request for a new key (the admin API's body, the offline command's flags).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub owner: String,
    pub upstreams: Vec<String>,
    /// Space-separated; default: what the upstreams require.
    pub scopes: Option<String>,
    /// A duration, e.g. "90d"; default: until revoked.
    pub expires_in: Option<String>,
}

impl NewKey {
    /// Checks the request against `config` and mints the key: the key (shown once) and its
    /// record.
    pub fn mint(
        &self,
        config: &crate::config::Config,
        tags: &TokenTags,
        now: u64,
    ) -> Result<(String, ApiKeyRecord), String> {
        check_name(&self.name)?;
        let owner = self.owner.trim();
        if owner.is_empty() {
            return Err("owner: who answers for the key (e.g. an email)".into());
        }
        let mut upstreams = Vec::new();
        let mut needed = ScopeSet::default();
        for name in &self.upstreams {
            match config.upstream(name) {
                Some(u) if u.auth == crate::config::UpstreamAuth::OAuth => {
                    needed = needed.union(&u.scopes);
                    upstreams.push(u.name.clone());
                }
                Some(_) => {
                    return Err(format!(
                        "upstream `{name}` has auth = \"none\": it needs no key"
                    ))
                }
                None => return Err(format!("no upstream is named `{name}`")),
            }
        }
        if upstreams.is_empty() {
            return Err("upstreams: name at least one".into());
        }
        let scopes = match &self.scopes {
            None => needed,
            Some(s) => {
                let set = ScopeSet::parse(s).map_err(|e| format!("scopes: {e}"))?;
                if let Some(unknown) = set.iter().find(|s| config.scope(s.as_str()).is_none()) {
                    return Err(format!("scope `{unknown}` is not declared in the config"));
                }
                set
            }
        };
        let expires_at = match self.expires_in.as_deref().map(humantime::parse_duration) {
            None => None,
            Some(Ok(d)) if !d.is_zero() => Some(now + d.as_secs()),
            Some(_) => return Err("expires_in: a duration such as \"90d\"".into()),
        };
        Ok(mint(
            tags, &self.name, owner, upstreams, scopes, now, expires_at,
        ))
    }
}

/// A key name: what policies and logs call it.
pub fn check_name(name: &str) -> Result<(), String> {
    UpstreamName::parse(name)
        .map(|_| ())
        .map_err(|e| format!("a key name {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_found_by_hash_refused_when_forged_and_gone_once_deleted() {
        let t = crate::testing::authority();
        let everything = UpstreamName::parse("everything").unwrap();
        let (key, record) = mint(
            &t.tokens,
            "ci-bot",
            "ops@example.test",
            vec![everything.clone()],
            ScopeSet::parse("mcp").unwrap(),
            100,
            Some(200),
        );
        assert!(key.starts_with(API_KEY_PREFIX));
        assert!(t.store.put_api_key(record.clone()).await.unwrap());
        assert!(
            !t.store.put_api_key(record).await.unwrap(),
            "names are unique"
        );
        let keys = ApiKeys::default();
        assert_eq!(keys.load(&*t.store).await.unwrap(), 1);
        let Lookup::Found(live) = keys.lookup(&t.tokens, &key) else {
            panic!("the key is found");
        };
        let access = live.access_for(&everything).unwrap();
        assert_eq!(access.identity.user_id(), "key:ci-bot");
        assert_eq!(access.identity.name.as_deref(), Some("ops@example.test"));
        assert!(live
            .access_for(&UpstreamName::parse("other").unwrap())
            .is_none());
        assert!(!live.expired(199) && live.expired(200));
        assert!(live.touch_due(1000) && !live.touch_due(1030) && live.touch_due(1060));
        // A tag that does not check out is refused without a lookup; a well-formed unknown
        // key is unknown.
        let mut forged = key.clone();
        forged.pop();
        forged.push(if key.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(keys.lookup(&t.tokens, &forged), Lookup::Forged));
        let other = t.tokens.mint(API_KEY_PREFIX);
        assert!(matches!(keys.lookup(&t.tokens, &other), Lookup::Unknown));
        // Deleted and reloaded: refused.
        assert!(t.store.delete_api_key("ci-bot").await.unwrap());
        keys.load(&*t.store).await.unwrap();
        assert!(matches!(keys.lookup(&t.tokens, &key), Lookup::Unknown));
        // Only the hash is stored.
        let dump = format!("{:?}", t.store.list_api_keys().await.unwrap());
        assert!(!dump.contains(&key));
    }
}
