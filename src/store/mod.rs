//! Persistent state behind one trait, so the embedded redb backend and a shared database for
//! several replicas can serve the same OAuth code. Methods are named in protocol words and
//! each is atomic; secrets are only ever passed in as their sha256 ([`SecretHash`]).

mod cache;
pub mod lock;
mod postgres;
mod postgres_schema;
mod records;
mod redb;
mod redb_admin;
mod redb_file;
mod redb_schema;
mod redb_sweep;
mod redb_tokens;
mod sweep;
mod transfer;

use async_trait::async_trait;

pub use self::cache::Cached;
pub use self::postgres::{Invalidation, PgSettings, PostgresStore};
pub use self::postgres_schema::{PG_MIGRATIONS, PG_SCHEMA_VERSION};
pub use self::records::*;
pub use self::redb::RedbStore;
pub use self::redb_admin::{restore, schema_version};
pub use self::redb_file::Opener;
pub use self::redb_schema::{pending as pending_migrations, Migration, MIGRATIONS, SCHEMA_VERSION};
pub use self::sweep::Sweeper;
pub use self::transfer::{Copied, Export};
use crate::vocab::{ClientId, GrantId, Identity, SecretHash};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a transaction, a full disk); the source says how.
    #[error("store: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("a stored {what} record cannot be read: {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("opening the store at {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("store schema version {found} is newer than this authgate understands ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    /// Closed after an I/O error and not reopened yet; nothing was read or written.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap proof that the store answers reads, and that writes are not failing (for
    /// `/readyz`); after a write failure it tries a write.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn put_client(&self, client: ClientRecord) -> Result<(), StoreError>;
    async fn get_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError>;

    async fn put_code(&self, code: SecretHash, record: CodeRecord) -> Result<(), StoreError>;
    /// Removes the code and remembers it was used, in one transaction: a second call for the
    /// same code answers `Replayed` with the grant the first one created.
    async fn take_code(&self, code: SecretHash, now: u64) -> Result<TakenCode, StoreError>;

    /// Creates a grant with its first access token (and refresh token, when the client may
    /// refresh), atomically.
    async fn issue(&self, grant: GrantRecord, tokens: NewTokens) -> Result<(), StoreError>;
    /// Exchanges a refresh token for new tokens of the same grant. A refresh token presented
    /// again after its rotation revokes the whole grant (`Reused`).
    /// Refuses (`Invalid`, nothing changed) when the grant belongs to another client.
    async fn rotate_refresh(
        &self,
        old: SecretHash,
        client_id: &ClientId,
        tokens: NewTokens,
        now: u64,
    ) -> Result<Rotation, StoreError>;

    async fn find_access(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError>;
    async fn find_refresh(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError>;

    /// Revokes a grant and every token it issued; returns the access-token hashes removed.
    async fn revoke_grant(&self, grant_id: &GrantId) -> Result<Vec<SecretHash>, StoreError>;
    /// Revokes one token (RFC 7009): an access token alone, or a refresh token with its grant.
    /// Returns the access-token hashes removed; unknown tokens are not an error.
    async fn revoke_token(&self, token: SecretHash) -> Result<Vec<SecretHash>, StoreError>;

    /// Records a successful re-verification at the provider (and its rotated credential).
    async fn grant_verified(
        &self,
        grant_id: &GrantId,
        verified_at: u64,
        upstream_credential: Option<String>,
    ) -> Result<(), StoreError>;

    /// Records `key` as used until `expires_at`; true the first time, false ever after (until
    /// it expires). What makes a pending authorization mint at most one code, whichever
    /// form or replica sees it again.
    async fn claim_once(&self, key: SecretHash, expires_at: u64) -> Result<bool, StoreError>;

    async fn get_consent(&self, key: &str) -> Result<Option<ConsentRecord>, StoreError>;
    async fn put_consent(&self, key: &str, record: ConsentRecord) -> Result<(), StoreError>;

    /// Deletes what has expired: codes, access and refresh tokens, grants left without a
    /// refresh token (or, for grants that never had one, without an access token), claims,
    /// replay records of codes a day after their expiry, and dynamically
    /// registered clients that never got a grant and were registered before
    /// `unused_clients_before`.
    async fn sweep(&self, now: u64, unused_clients_before: u64) -> Result<Swept, StoreError>;

    /// Closes the store cleanly before the process exits (a redb file then opens without
    /// a repair); later operations fail. Blocking, briefly.
    fn close(&self) {}

    // Administration (the admin API; never on the request path).

    /// Notes a sign-in of `identity` at `at` (the admin API's list of people).
    async fn record_login(&self, identity: &Identity, at: u64) -> Result<(), StoreError>;
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Deletes a dynamically registered client and revokes its grants; returns the access
    /// tokens removed (`None` when there was no such client).
    async fn delete_client(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<Vec<SecretHash>>, StoreError>;
    async fn list_grants(&self) -> Result<Vec<GrantRecord>, StoreError>;
    /// Blocks (`Some(since)`) or unblocks (`None`) a person by `provider:subject`.
    async fn set_blocked(&self, user_id: &str, since: Option<u64>) -> Result<(), StoreError>;
    /// The blocked people and since when.
    async fn blocked(&self) -> Result<Vec<(String, u64)>, StoreError>;
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// A secret the gateway keeps in the store for every process using it (sealed by the
    /// caller where it must not be readable from a copy of the store).
    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put_secret(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Stores a secret only if none has this name; `false` (nothing written) otherwise. What
    /// makes replicas starting together agree on one generated key.
    async fn insert_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError>;
    /// The names of every secret kept (for `authgate rotate-key`).
    async fn secret_names(&self) -> Result<Vec<String>, StoreError>;

    /// Stores a new API key; `false` (nothing written) when its name is taken.
    async fn put_api_key(&self, key: ApiKeyRecord) -> Result<bool, StoreError>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// `false` when no key has this name.
    async fn delete_api_key(&self, name: &str) -> Result<bool, StoreError>;
    /// Notes that the key was used at `at`.
    async fn touch_api_key(&self, name: &str, at: u64) -> Result<(), StoreError>;
    /// Writes a consistent copy of the whole store to a new file at `to`.
    async fn backup(&self, to: &std::path::Path) -> Result<StoreStats, StoreError>;
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub codes: usize,
    pub access_tokens: usize,
    pub refresh_tokens: usize,
    pub grants: usize,
    pub clients: usize,
}

#[cfg(test)]
mod contract_tests;
