//! What the store keeps. Plain typed data; the OAuth layer gives it meaning. Times are Unix
//! seconds. The JSON shape is the store's format: fields keep their names across versions.

use serde::{Deserialize, Serialize};

use crate::vocab::{ClientId, GrantId, Identity, RedirectUri, ScopeSet, SecretHash, UpstreamName};

/// A dynamically registered client (pre-registered ones live in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: ClientId,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<RedirectUri>,
    /// sha256 of the client secret; `None` for public clients.
    pub secret_sha256: Option<SecretHash>,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub application_type: Option<String>,
    pub created_at: u64,
    /// When a grant was first issued to it; registrations never used are swept.
    #[serde(default)]
    pub first_used_at: Option<u64>,
}

impl ClientRecord {
    /// Registered for the `refresh_token` grant.
    pub fn refreshes(&self) -> bool {
        self.grant_types.iter().any(|g| g == "refresh_token")
    }
}

/// What a person allowed a client: the terms every record of one authorization carries, from
/// the pending flow to the code, the grant and its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    pub client_id: ClientId,
    pub identity: Identity,
    pub scopes: ScopeSet,
    pub upstream: UpstreamName,
    /// The canonical resource URL of the upstream (RFC 8707).
    pub resource: String,
}

/// An issued, not yet redeemed authorization code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The grant this code creates when redeemed (known in advance, so a replay can revoke it).
    pub grant_id: GrantId,
    #[serde(flatten)]
    pub terms: Terms,
    pub redirect_uri: RedirectUri,
    pub code_challenge: String,
    pub expires_at: u64,
    /// The provider credential for re-verification, sealed by the gateway's key.
    #[serde(default)]
    pub upstream_credential: Option<String>,
}

pub enum TakenCode {
    Fresh(Box<CodeRecord>),
    /// Used before; the grant it created (if any) should be revoked.
    Replayed {
        grant_id: GrantId,
    },
    Unknown,
}

/// One authorization: a client acting for a person at one upstream with some scopes. All its
/// tokens form a family that is revoked together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub grant_id: GrantId,
    #[serde(flatten)]
    pub terms: Terms,
    pub created_at: u64,
    /// When the person was last confirmed at their provider (login or re-verification).
    #[serde(default)]
    pub verified_at: u64,
    /// The provider credential for re-verification, sealed by the gateway's key.
    #[serde(default)]
    pub upstream_credential: Option<String>,
    /// Whether this grant issues refresh tokens (its client is registered for the grant).
    #[serde(default = "yes")]
    pub refresh: bool,
}

fn yes() -> bool {
    true
}

/// What a bearer token stands for: everything the proxy needs, denormalised for one lookup.
/// `repr(C)` with the fields every request reads first: a cached record's reference count,
/// expiry and check memo share its first cache line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[repr(C)]
pub struct AccessRecord {
    pub expires_at: u64,
    /// The upstream (by its `check_key`) this record last passed every config check for.
    #[serde(skip)]
    pub passed: CheckMemo,
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub identity: Identity,
    pub scopes: ScopeSet,
    pub upstream: UpstreamName,
}

/// The `check_key` of the upstream a cached record last passed the bearer check's config
/// checks for (binding, provider, scopes); 0 for none. Those depend only on the record and on
/// one loaded config, and a key is never reused across loads, so a match skips them.
#[derive(Debug, Default)]
pub struct CheckMemo(std::sync::atomic::AtomicU64);

impl CheckMemo {
    pub fn passed(&self, key: u64) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) == key
    }
    pub fn set(&self, key: u64) {
        self.0.store(key, std::sync::atomic::Ordering::Relaxed)
    }
}

/// A copy checks again.
impl Clone for CheckMemo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for CheckMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl AccessRecord {
    /// The record of an access token of `grant` that expires at `expires_at`.
    pub fn of(grant: &GrantRecord, expires_at: u64) -> Self {
        let t = &grant.terms;
        Self {
            grant_id: grant.grant_id.clone(),
            client_id: t.client_id.clone(),
            identity: t.identity.clone(),
            scopes: t.scopes.clone(),
            upstream: t.upstream.clone(),
            expires_at,
            passed: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub grant_id: GrantId,
    pub expires_at: u64,
    /// Set when this token was exchanged; presenting it again is reuse.
    pub rotated_at: Option<u64>,
    /// The answer given when this token was exchanged, kept for the grace window so that a
    /// retry (a lost response, several processes sharing the token) gets the same answer
    /// instead of revoking the grant. Sealed under a key derived from the refresh token
    /// itself, which the store never holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<SealedSuccessor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedSuccessor {
    pub sealed: String,
    /// End of the grace window (Unix seconds).
    pub until: u64,
}

/// Hashes and lifetimes of freshly minted tokens.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access: SecretHash,
    pub access_expires_at: u64,
    /// `None` for clients not registered for the `refresh_token` grant.
    pub refresh: Option<SecretHash>,
    pub refresh_expires_at: u64,
    /// For a rotation: the sealed answer to keep on the old refresh token.
    pub successor: Option<SealedSuccessor>,
}

pub enum Rotation {
    Rotated(Box<GrantRecord>),
    /// Presented again within the grace window: the answer given the first time, sealed.
    Retried {
        sealed: String,
    },
    /// The token had been rotated already: the grant is now revoked.
    Reused {
        grant_id: GrantId,
        revoked: Vec<SecretHash>,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Consent a person gave a client: remembered so the page is shown once per scope set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub scopes: ScopeSet,
    pub upstreams: Vec<UpstreamName>,
    pub given_at: u64,
}

/// A person who signed in at least once (for the admin API), keyed by `provider:subject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: String,
    pub provider: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub first_seen: u64,
    pub last_login: u64,
    pub logins: u64,
}

impl UserRecord {
    /// The record of `identity` after a sign-in at `at`, from its record `before` (if any).
    pub fn after_login(before: Option<UserRecord>, identity: &Identity, at: u64) -> Self {
        UserRecord {
            user_id: identity.user_id(),
            provider: identity.provider.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            first_seen: before.as_ref().map_or(at, |b| b.first_seen),
            last_login: at,
            logins: before.map_or(0, |b| b.logins) + 1,
        }
    }
}

/// A long-lived key for a machine (a CI job, an agent), usable as a bearer token wherever
/// an access token is. Only its sha256 is kept; the key is shown once, when created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Unique; policies name the key by it (`api_keys = ["ci-bot"]`), upstreams see
    /// `key:<name>` as the user.
    pub name: String,
    pub hash: SecretHash,
    /// Who is answerable for it (free text, usually an email); upstreams see it as the name.
    pub owner: String,
    pub upstreams: Vec<UpstreamName>,
    pub scopes: ScopeSet,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    /// Updated at most once a minute.
    #[serde(default)]
    pub last_used_at: Option<u64>,
}

/// Record counts, for `authgate admin stats` and the store gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    pub clients: u64,
    pub grants: u64,
    pub access_tokens: u64,
    pub refresh_tokens: u64,
    pub codes: u64,
    pub consents: u64,
    pub users: u64,
    pub blocked_users: u64,
    /// Size of the store file, where there is one.
    pub file_bytes: Option<u64>,
}

/// The secrets holding the token tag key and since when tokens are tagged, in every backend
/// (made once, when the store is created).
pub(crate) const TOKEN_TAG_KEY: &str = "token_tag_key";
pub(crate) const TAGGED_SINCE: &str = "tagged_since";

/// The token tag key and since when tokens are tagged, from those two secrets' values.
pub(crate) fn token_tags_of(
    key: Option<&[u8]>,
    since: Option<&[u8]>,
) -> Result<([u8; 16], u64), super::StoreError> {
    let corrupt = |what: &str| super::StoreError::Corrupt {
        what: "secret",
        source: format!("{what} is missing or malformed").into(),
    };
    let key: [u8; 16] = key
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| corrupt(TOKEN_TAG_KEY))?;
    let since = since
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt(TAGGED_SINCE))?;
    Ok((key, since))
}
