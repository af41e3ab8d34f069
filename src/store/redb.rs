//! The embedded store: one redb file in the data directory. redb commits are durable
//! (fsync'd) before `commit()` returns, so an acknowledged write survives `kill -9`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError};

/// The schema this build writes. Bump it, with a migration, whenever a table changes shape.
pub const SCHEMA_VERSION: u32 = 1;

const META: TableDefinition<&str, u32> = TableDefinition::new("meta");

pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl RedbStore {
    /// Opens (creating if needed) `<data_dir>/authgate.redb`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| io(format!("creating {}: {e}", data_dir.display())))?;
        let path = data_dir.join("authgate.redb");
        let db =
            Database::create(&path).map_err(|e| io(format!("opening {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(io)?;
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let found = meta.get("schema_version").map_err(io)?.map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::SchemaTooNew {
                        found: v,
                        supported: SCHEMA_VERSION,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION).map_err(io)?;
                }
            }
        }
        txn.commit().map_err(io)?;
        Ok(Self {
            db: Arc::new(db),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(io)?;
            let meta = txn.open_table(META).map_err(io)?;
            meta.get("schema_version").map_err(io)?;
            Ok(())
        })
        .await
        .map_err(io)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_twice_and_answers_ping() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            s.ping().await.unwrap();
            assert!(s.path().exists());
        }
        let s = RedbStore::open(dir.path()).unwrap();
        s.ping().await.unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join("authgate.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    }
}
