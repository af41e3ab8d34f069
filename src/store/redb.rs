//! The embedded store: one redb file in the data directory. redb commits are durable
//! (fsync'd) before `commit()` returns, so an acknowledged write survives `kill -9`.
//! Keys of secret-bearing tables are sha256 hashes; the file never holds a usable secret.

use std::path::Path;
use std::sync::Arc;

use ::redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::redb_admin as admin;
use super::redb_file::DbFile;
pub(super) use super::redb_schema::*;
pub(super) use super::redb_tokens::*;
use super::*;

pub struct RedbStore {
    file: Arc<DbFile>,
}

/// redb's errors, kept whole as the source of a backend error.
macro_rules! backend_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Backend(Box::new(e))
            }
        }
    )*};
}
backend_errors!(
    ::redb::Error,
    ::redb::DatabaseError,
    ::redb::TransactionError,
    ::redb::TableError,
    ::redb::StorageError,
    ::redb::CommitError,
    tokio::task::JoinError
);

pub(super) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

pub(super) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|source| StoreError::Corrupt {
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("record"),
        source: Box::new(source),
    })
}

impl RedbStore {
    /// Opens (creating if needed) `<data_dir>/authgate.redb`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, super::redb_file::file_opener())
    }

    /// Opens beside a running authgate (a binary upgrade): the same file, shared, and never
    /// migrated under it.
    pub fn open_shared(data_dir: &Path) -> Result<Self, StoreError> {
        let file = DbFile::open(data_dir, super::redb_file::file_opener(), |db, path| {
            init_schema(db, path, false)
        })?;
        Ok(Self {
            file: Arc::new(file),
        })
    }

    /// Opens through `opener` (tests use a storage backend that fails on demand).
    pub fn open_with(data_dir: &Path, opener: super::Opener) -> Result<Self, StoreError> {
        let file = DbFile::open(data_dir, opener, |db, path| init_schema(db, path, true))?;
        Ok(Self {
            file: Arc::new(file),
        })
    }

    /// The token tag key and since when tokens are tagged, read now (at start, before the
    /// async runtime).
    pub fn token_tags_now(&self) -> Result<([u8; 16], u64), StoreError> {
        admin::token_tags(&*self.file.database()?)
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The open database (for the store's own modules: export).
    pub(super) fn file_database(&self) -> Result<Arc<Database>, StoreError> {
        self.file.database()
    }

    /// Bulk-inserts access tokens in one transaction (benchmarks and admin tooling).
    pub fn insert_access_bulk(
        &self,
        records: impl IntoIterator<Item = (SecretHash, AccessRecord)>,
    ) -> Result<(), StoreError> {
        let txn = self.file.database()?.begin_write()?;
        {
            let mut access = txn.open_table(ACCESS)?;
            for (h, rec) in records {
                access.insert(&h.0, enc_access(&rec).as_slice())?;
            }
        }
        Ok(txn.commit()?)
    }

    /// The floor of a cold token lookup: the same read transaction and get as `find_access`,
    /// without decoding the record (its length). For benches/hot_path.rs.
    #[doc(hidden)]
    pub fn raw_access_len(&self, token: &SecretHash) -> Result<Option<usize>, StoreError> {
        let txn = self.file.open_database()?.begin_read()?;
        let t = txn.open_table(ACCESS)?;
        Ok(t.get(&token.0)?.map(|raw| raw.value().len()))
    }

    /// Runs `f` on a blocking thread (redb is synchronous and its commits fsync).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(false, f).await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(true, move |db| {
            let txn = db.begin_write()?;
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        })
        .await
    }

    /// `f` on the database (reopened first if an I/O error closed it), its outcome noted.
    async fn run<T: Send + 'static>(
        &self,
        wrote: bool,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = file.database().and_then(|db| f(&db));
            if wrote {
                crate::metrics::metrics()
                    .store_writes
                    .observe(started.elapsed().as_secs_f64());
            }
            file.observe(&result, wrote);
            result
        })
        .await?
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if let Some(failure) = self.file.failure() {
            // Writes were failing: only a write shows they work again.
            let probe = self
                .write(|txn| {
                    let mut meta = txn.open_table(META)?;
                    meta.insert("probe", crate::vocab::unix_now() as u32)?;
                    Ok(())
                })
                .await;
            return probe.map_err(|e| match e {
                StoreError::Unavailable(why) => StoreError::Unavailable(why),
                e => StoreError::Unavailable(format!("writes fail: {e} (first: {failure})")),
            });
        }
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            meta.get("schema_version")?;
            Ok(())
        })
        .await
    }

    async fn put_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(CLIENTS)?;
            t.insert(client.client_id.as_str(), enc(&client).as_slice())?;
            Ok(())
        })
        .await
    }

    async fn get_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        let id = client_id.clone();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(CLIENTS)?;
            t.get(id.as_str())?.map(|v| dec(v.value())).transpose()
        })
        .await
    }

    async fn put_code(&self, code: SecretHash, record: CodeRecord) -> Result<(), StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(CODES)?;
            t.insert(&code.0, enc(&record).as_slice())?;
            Ok(())
        })
        .await
    }

    async fn take_code(&self, code: SecretHash, now: u64) -> Result<TakenCode, StoreError> {
        self.write(move |txn| {
            let mut codes = txn.open_table(CODES)?;
            let mut used = txn.open_table(USED_CODES)?;
            if let Some(prev) = used.get(&code.0)? {
                return Ok(TakenCode::Replayed {
                    grant_id: GrantId::new(prev.value().0),
                });
            }
            let Some(raw) = codes.remove(&code.0)? else {
                return Ok(TakenCode::Unknown);
            };
            let record: CodeRecord = dec(raw.value())?;
            drop(raw);
            used.insert(&code.0, (record.grant_id.as_str(), record.expires_at))?;
            if record.expires_at <= now {
                return Ok(TakenCode::Unknown);
            }
            Ok(TakenCode::Fresh(Box::new(record)))
        })
        .await
    }

    async fn issue(&self, grant: GrantRecord, tokens: NewTokens) -> Result<(), StoreError> {
        self.write(move |txn| {
            {
                let mut grants = txn.open_table(GRANTS)?;
                grants.insert(grant.grant_id.as_str(), enc(&grant).as_slice())?;
                // A registration that got a grant is in use: keep it from the sweeper.
                let mut clients = txn.open_table(CLIENTS)?;
                let unused = match clients.get(grant.terms.client_id.as_str())? {
                    Some(raw) => Some(dec::<ClientRecord>(raw.value())?)
                        .filter(|c| c.first_used_at.is_none()),
                    None => None,
                };
                if let Some(mut c) = unused {
                    c.first_used_at = Some(grant.created_at);
                    clients.insert(c.client_id.as_str(), enc(&c).as_slice())?;
                }
            }
            insert_tokens(txn, &grant, &tokens)
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
        let client_id = client_id.clone();
        self.write(move |txn| rotate_in(txn, old, &client_id, tokens, now))
            .await
    }

    async fn find_access(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError> {
        // The hot path's cache miss: a redb read with a warm page cache costs a few µs, less
        // than a trip through the blocking pool, so it runs on the worker thread (and leaves
        // reopening a failed store to the blocking operations).
        let txn = self.file.open_database()?.begin_read()?;
        let t = txn.open_table(ACCESS)?;
        let Some(raw) = t.get(&token.0)? else {
            return Ok(None);
        };
        let rec = dec_access(raw.value())?;
        Ok((rec.expires_at > now).then_some(rec))
    }

    async fn find_refresh(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let refresh = txn.open_table(REFRESH)?;
            let Some(raw) = refresh.get(&token.0)? else {
                return Ok(None);
            };
            let rec: RefreshRecord = dec(raw.value())?;
            if rec.expires_at <= now || rec.rotated_at.is_some() {
                return Ok(None);
            }
            let grants = txn.open_table(GRANTS)?;
            let Some(g) = grants.get(rec.grant_id.as_str())? else {
                return Ok(None);
            };
            Ok(Some((rec, dec(g.value())?)))
        })
        .await
    }

    async fn revoke_grant(&self, grant_id: &GrantId) -> Result<Vec<SecretHash>, StoreError> {
        let id = grant_id.clone();
        self.write(move |txn| revoke_grant_in(txn, id.as_str()))
            .await
    }

    async fn revoke_token(&self, token: SecretHash) -> Result<Vec<SecretHash>, StoreError> {
        self.write(move |txn| {
            let grant_of_refresh = {
                let refresh = txn.open_table(REFRESH)?;
                let found = refresh.get(&token.0)?;
                match found {
                    Some(raw) => Some(dec::<RefreshRecord>(raw.value())?.grant_id),
                    None => None,
                }
            };
            if let Some(grant_id) = grant_of_refresh {
                return revoke_grant_in(txn, grant_id.as_str());
            }
            let mut access = txn.open_table(ACCESS)?;
            let removed = access.remove(&token.0)?;
            Ok(match removed {
                Some(_) => vec![token],
                None => Vec::new(),
            })
        })
        .await
    }

    async fn grant_verified(
        &self,
        grant_id: &GrantId,
        verified_at: u64,
        upstream_credential: Option<String>,
    ) -> Result<(), StoreError> {
        let id = grant_id.clone();
        self.write(move |txn| {
            let mut grants = txn.open_table(GRANTS)?;
            let found = match grants.get(id.as_str())? {
                Some(raw) => Some(dec::<GrantRecord>(raw.value())?),
                None => None,
            };
            if let Some(mut g) = found {
                g.verified_at = verified_at;
                if upstream_credential.is_some() {
                    g.upstream_credential = upstream_credential;
                }
                grants.insert(id.as_str(), enc(&g).as_slice())?;
            }
            Ok(())
        })
        .await
    }

    async fn claim_once(&self, key: SecretHash, expires_at: u64) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let mut claims = txn.open_table(CLAIMS)?;
            if claims.get(&key.0)?.is_some() {
                return Ok(false);
            }
            claims.insert(&key.0, expires_at)?;
            Ok(true)
        })
        .await
    }

    async fn get_consent(&self, key: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(CONSENTS)?;
            t.get(key.as_str())?.map(|v| dec(v.value())).transpose()
        })
        .await
    }

    async fn sweep(&self, now: u64, unused_clients_before: u64) -> Result<Swept, StoreError> {
        self.write(move |txn| super::redb_sweep::sweep_in(txn, now, unused_clients_before))
            .await
    }

    fn close(&self) {
        self.file.close()
    }

    async fn record_login(&self, identity: &Identity, at: u64) -> Result<(), StoreError> {
        let identity = identity.clone();
        self.write(move |txn| admin::record_login(txn, &identity, at))
            .await
    }
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.blocking(|db| admin::all(db, USERS)).await
    }
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.blocking(|db| admin::all(db, CLIENTS)).await
    }
    async fn delete_client(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<Vec<SecretHash>>, StoreError> {
        let id = client_id.clone();
        self.write(move |txn| admin::delete_client(txn, &id)).await
    }
    async fn list_grants(&self) -> Result<Vec<GrantRecord>, StoreError> {
        self.blocking(|db| admin::all(db, GRANTS)).await
    }
    async fn set_blocked(&self, user_id: &str, since: Option<u64>) -> Result<(), StoreError> {
        let id = user_id.to_string();
        self.write(move |txn| admin::set_blocked(txn, &id, since))
            .await
    }
    async fn blocked(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.blocking(admin::blocked).await
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let path = self.path().to_path_buf();
        self.blocking(move |db| admin::stats(db, &path)).await
    }
    async fn backup(&self, to: &Path) -> Result<StoreStats, StoreError> {
        let to = to.to_path_buf();
        self.blocking(move |db| {
            admin::backup(db, &to)?;
            admin::stats(db, &to)
        })
        .await
    }

    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(SECRETS)?;
            Ok(t.get(name.as_str())?.map(|v| v.value().to_vec()))
        })
        .await
    }
    async fn put_secret(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            txn.open_table(SECRETS)?
                .insert(name.as_str(), value.as_slice())?;
            Ok(())
        })
        .await
    }
    async fn insert_secret(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let mut t = txn.open_table(SECRETS)?;
            if t.get(name.as_str())?.is_some() {
                return Ok(false);
            }
            t.insert(name.as_str(), value.as_slice())?;
            Ok(true)
        })
        .await
    }
    async fn secret_names(&self) -> Result<Vec<String>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let t = txn.open_table(SECRETS)?;
            let mut names = Vec::new();
            for entry in t.iter()? {
                names.push(entry?.0.value().to_string());
            }
            Ok(names)
        })
        .await
    }
    async fn put_api_key(&self, key: ApiKeyRecord) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(API_KEYS)?;
            if t.get(key.name.as_str())?.is_some() {
                return Ok(false);
            }
            t.insert(key.name.as_str(), enc(&key).as_slice())?;
            Ok(true)
        })
        .await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.blocking(|db| admin::all(db, API_KEYS)).await
    }
    async fn delete_api_key(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |txn| Ok(txn.open_table(API_KEYS)?.remove(name.as_str())?.is_some()))
            .await
    }
    async fn touch_api_key(&self, name: &str, at: u64) -> Result<(), StoreError> {
        let name = name.to_string();
        self.write(move |txn| {
            let mut t = txn.open_table(API_KEYS)?;
            let found: Option<ApiKeyRecord> = match t.get(name.as_str())? {
                Some(raw) => Some(dec(raw.value())?),
                None => None,
            };
            if let Some(mut rec) = found {
                rec.last_used_at = Some(at);
                t.insert(name.as_str(), enc(&rec).as_slice())?;
            }
            Ok(())
        })
        .await
    }
    async fn put_consent(&self, key: &str, record: ConsentRecord) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write(move |txn| {
            let mut t = txn.open_table(CONSENTS)?;
            t.insert(key.as_str(), enc(&record).as_slice())?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
#[path = "redb_tests.rs"]
mod tests;
