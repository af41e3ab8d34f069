//! Persistent state behind one trait, so the embedded redb backend and a shared database for
//! several replicas can serve the same gateway code. Records and methods are named in
//! protocol words; backends decide how to keep them.

mod redb;

use async_trait::async_trait;

pub use self::redb::RedbStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O: {0}")]
    Io(String),
    #[error("store schema version {found} is newer than this authgate understands ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap proof that the store answers reads (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}
