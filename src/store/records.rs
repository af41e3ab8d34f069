//! What the store keeps. Plain data; the OAuth layer gives it meaning. Times are Unix seconds.

use serde::{Deserialize, Serialize};

use crate::crypto::SecretHash;
use crate::identity::Identity;

/// A dynamically registered client (pre-registered ones live in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// sha256 of the client secret, hex; `None` for public clients.
    pub secret_sha256: Option<String>,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub application_type: Option<String>,
    pub created_at: u64,
    /// When a grant was first issued to it; registrations never used are swept.
    #[serde(default)]
    pub first_used_at: Option<u64>,
}

/// An issued, not yet redeemed authorization code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The grant this code creates when redeemed (known in advance, so a replay can revoke it).
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub upstream: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub identity: Identity,
    pub expires_at: u64,
    /// The provider credential for re-verification, sealed by the gateway's key.
    #[serde(default)]
    pub upstream_credential: Option<String>,
}

pub enum TakenCode {
    Fresh(Box<CodeRecord>),
    /// Used before; the grant it created (if any) should be revoked.
    Replayed {
        grant_id: String,
    },
    Unknown,
}

/// One authorization: a client acting for a person at one upstream with some scopes. All its
/// tokens form a family that is revoked together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub grant_id: String,
    pub client_id: String,
    pub identity: Identity,
    pub scopes: Vec<String>,
    pub upstream: String,
    pub resource: String,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub grant_id: String,
    pub client_id: String,
    pub identity: Identity,
    pub scopes: Vec<String>,
    pub upstream: String,
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub grant_id: String,
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
        grant_id: String,
        revoked: Vec<SecretHash>,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Consent a person gave a client: remembered so the page is shown once per scope set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub scopes: Vec<String>,
    pub upstreams: Vec<String>,
    pub given_at: u64,
}
