//! The embedded store: one redb file in the data directory. redb commits are durable
//! (fsync'd) before `commit()` returns, so an acknowledged write survives `kill -9`.
//! Keys of secret-bearing tables are sha256 hashes; the file never holds a usable secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::*;

/// The schema this build writes. Bump it, with a migration, whenever a table changes shape.
pub const SCHEMA_VERSION: u32 = 1;

const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");
const CODES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("codes");
/// Redeemed codes → the grant they created, to detect replays.
const USED_CODES: TableDefinition<&[u8; 32], (&str, u64)> = TableDefinition::new("used_codes");
const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants");
const ACCESS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("access_tokens");
const REFRESH: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("refresh_tokens");
/// grant id → hashes of every access and refresh token it issued.
const GRANT_TOKENS: MultimapTableDefinition<&str, &[u8; 32]> =
    MultimapTableDefinition::new("grant_tokens");
const CONSENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("consents");
/// Single-use claims (hash of the claimed key) → when the claim may be forgotten.
const CLAIMS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("claims");

pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| io(format!("corrupt record: {e}")))
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
            // Create every table up front so read transactions never meet a missing one.
            txn.open_table(CLIENTS).map_err(io)?;
            txn.open_table(CODES).map_err(io)?;
            txn.open_table(USED_CODES).map_err(io)?;
            txn.open_table(GRANTS).map_err(io)?;
            txn.open_table(ACCESS).map_err(io)?;
            txn.open_table(REFRESH).map_err(io)?;
            txn.open_multimap_table(GRANT_TOKENS).map_err(io)?;
            txn.open_table(CONSENTS).map_err(io)?;
            txn.open_table(CLAIMS).map_err(io)?;
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

    /// Bulk-inserts access tokens in one transaction (benchmarks and admin tooling).
    pub fn insert_access_bulk(
        &self,
        records: impl IntoIterator<Item = (SecretHash, AccessRecord)>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut access = txn.open_table(ACCESS).map_err(io)?;
            for (h, rec) in records {
                access.insert(&h.0, enc(&rec).as_slice()).map_err(io)?;
            }
        }
        txn.commit().map_err(io)
    }

    /// Runs `f` on a blocking thread (redb is synchronous and its commits fsync).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io)?
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(io)?;
            let out = f(&txn)?;
            txn.commit().map_err(io)?;
            Ok(out)
        })
        .await
    }
}

/// Deletes a grant and all its tokens inside `txn`; returns the access-token hashes removed.
fn revoke_grant_in(txn: &WriteTransaction, grant_id: &str) -> Result<Vec<SecretHash>, StoreError> {
    let mut grants = txn.open_table(GRANTS).map_err(io)?;
    let mut access = txn.open_table(ACCESS).map_err(io)?;
    let mut refresh = txn.open_table(REFRESH).map_err(io)?;
    let mut links = txn.open_multimap_table(GRANT_TOKENS).map_err(io)?;
    grants.remove(grant_id).map_err(io)?;
    let mut removed = Vec::new();
    let hashes: Vec<[u8; 32]> = links
        .remove_all(grant_id)
        .map_err(io)?
        .map(|h| h.map(|h| *h.value()).map_err(io))
        .collect::<Result<_, _>>()?;
    for h in hashes {
        if access.remove(&h).map_err(io)?.is_some() {
            removed.push(SecretHash(h));
        }
        refresh.remove(&h).map_err(io)?;
    }
    Ok(removed)
}

fn insert_tokens(
    txn: &WriteTransaction,
    grant: &GrantRecord,
    t: &NewTokens,
) -> Result<(), StoreError> {
    let mut access = txn.open_table(ACCESS).map_err(io)?;
    let mut refresh = txn.open_table(REFRESH).map_err(io)?;
    let mut links = txn.open_multimap_table(GRANT_TOKENS).map_err(io)?;
    let a = AccessRecord {
        grant_id: grant.grant_id.clone(),
        client_id: grant.client_id.clone(),
        identity: grant.identity.clone(),
        scopes: grant.scopes.clone(),
        upstream: grant.upstream.clone(),
        expires_at: t.access_expires_at,
    };
    access.insert(&t.access.0, enc(&a).as_slice()).map_err(io)?;
    links
        .insert(grant.grant_id.as_str(), &t.access.0)
        .map_err(io)?;
    if let Some(hash) = &t.refresh {
        let r = RefreshRecord {
            grant_id: grant.grant_id.clone(),
            expires_at: t.refresh_expires_at,
            rotated_at: None,
            successor: None,
        };
        refresh.insert(&hash.0, enc(&r).as_slice()).map_err(io)?;
        links.insert(grant.grant_id.as_str(), &hash.0).map_err(io)?;
    }
    Ok(())
}

#[async_trait]
impl Store for RedbStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(io)?;
            let meta = txn.open_table(META).map_err(io)?;
            meta.get("schema_version").map_err(io)?;
            Ok(())
        })
        .await
    }

    async fn put_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(CLIENTS).map_err(io)?;
            t.insert(client.client_id.as_str(), enc(&client).as_slice())
                .map_err(io)?;
            Ok(())
        })
        .await
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let id = client_id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let t = txn.open_table(CLIENTS).map_err(io)?;
            t.get(id.as_str())
                .map_err(io)?
                .map(|v| dec(v.value()))
                .transpose()
        })
        .await
    }

    async fn put_code(&self, code: SecretHash, record: CodeRecord) -> Result<(), StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(CODES).map_err(io)?;
            t.insert(&code.0, enc(&record).as_slice()).map_err(io)?;
            Ok(())
        })
        .await
    }

    async fn take_code(&self, code: SecretHash, now: u64) -> Result<TakenCode, StoreError> {
        self.write(move |txn| {
            let mut codes = txn.open_table(CODES).map_err(io)?;
            let mut used = txn.open_table(USED_CODES).map_err(io)?;
            if let Some(prev) = used.get(&code.0).map_err(io)? {
                return Ok(TakenCode::Replayed {
                    grant_id: prev.value().0.to_string(),
                });
            }
            let Some(raw) = codes.remove(&code.0).map_err(io)? else {
                return Ok(TakenCode::Unknown);
            };
            let record: CodeRecord = dec(raw.value())?;
            drop(raw);
            used.insert(&code.0, (record.grant_id.as_str(), record.expires_at))
                .map_err(io)?;
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
                let mut grants = txn.open_table(GRANTS).map_err(io)?;
                grants
                    .insert(grant.grant_id.as_str(), enc(&grant).as_slice())
                    .map_err(io)?;
                // A registration that got a grant is in use: keep it from the sweeper.
                let mut clients = txn.open_table(CLIENTS).map_err(io)?;
                let unused = match clients.get(grant.client_id.as_str()).map_err(io)? {
                    Some(raw) => Some(dec::<ClientRecord>(raw.value())?)
                        .filter(|c| c.first_used_at.is_none()),
                    None => None,
                };
                if let Some(mut c) = unused {
                    c.first_used_at = Some(grant.created_at);
                    clients
                        .insert(c.client_id.as_str(), enc(&c).as_slice())
                        .map_err(io)?;
                }
            }
            insert_tokens(txn, &grant, &tokens)
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        old: SecretHash,
        client_id: &str,
        tokens: NewTokens,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let client_id = client_id.to_string();
        self.write(move |txn| {
            let record: RefreshRecord = {
                let refresh = txn.open_table(REFRESH).map_err(io)?;
                let Some(raw) = refresh.get(&old.0).map_err(io)? else {
                    return Ok(Rotation::Invalid);
                };
                dec(raw.value())?
            };
            let grant: Option<GrantRecord> = {
                let grants = txn.open_table(GRANTS).map_err(io)?;
                let found = grants.get(record.grant_id.as_str()).map_err(io)?;
                match found {
                    Some(raw) => Some(dec(raw.value())?),
                    None => None,
                }
            };
            if record.rotated_at.is_some() {
                if let (Some(successor), Some(grant)) = (&record.successor, &grant) {
                    if successor.until >= now {
                        if grant.client_id != client_id {
                            return Ok(Rotation::Invalid);
                        }
                        return Ok(Rotation::Retried {
                            sealed: successor.sealed.clone(),
                        });
                    }
                }
                let revoked = revoke_grant_in(txn, &record.grant_id)?;
                return Ok(Rotation::Reused {
                    grant_id: record.grant_id,
                    revoked,
                });
            }
            if record.expires_at <= now {
                return Ok(Rotation::Invalid);
            }
            let Some(grant) = grant else {
                return Ok(Rotation::Invalid);
            };
            if grant.client_id != client_id {
                return Ok(Rotation::Invalid);
            }
            {
                let mut refresh = txn.open_table(REFRESH).map_err(io)?;
                let rotated = RefreshRecord {
                    rotated_at: Some(now),
                    successor: tokens.successor.clone(),
                    ..record
                };
                refresh
                    .insert(&old.0, enc(&rotated).as_slice())
                    .map_err(io)?;
            }
            insert_tokens(txn, &grant, &tokens)?;
            Ok(Rotation::Rotated(Box::new(grant)))
        })
        .await
    }

    async fn find_access(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError> {
        // The hot path's cache miss: a redb read with a warm page cache costs a few µs, less
        // than a trip through the blocking pool, so it runs on the worker thread.
        let txn = self.db.begin_read().map_err(io)?;
        let t = txn.open_table(ACCESS).map_err(io)?;
        let Some(raw) = t.get(&token.0).map_err(io)? else {
            return Ok(None);
        };
        let rec: AccessRecord = dec(raw.value())?;
        Ok((rec.expires_at > now).then_some(rec))
    }

    async fn find_refresh(
        &self,
        token: SecretHash,
        now: u64,
    ) -> Result<Option<(RefreshRecord, GrantRecord)>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let refresh = txn.open_table(REFRESH).map_err(io)?;
            let Some(raw) = refresh.get(&token.0).map_err(io)? else {
                return Ok(None);
            };
            let rec: RefreshRecord = dec(raw.value())?;
            if rec.expires_at <= now || rec.rotated_at.is_some() {
                return Ok(None);
            }
            let grants = txn.open_table(GRANTS).map_err(io)?;
            let Some(g) = grants.get(rec.grant_id.as_str()).map_err(io)? else {
                return Ok(None);
            };
            Ok(Some((rec, dec(g.value())?)))
        })
        .await
    }

    async fn revoke_grant(&self, grant_id: &str) -> Result<Vec<SecretHash>, StoreError> {
        let id = grant_id.to_string();
        self.write(move |txn| revoke_grant_in(txn, &id)).await
    }

    async fn revoke_token(&self, token: SecretHash) -> Result<Vec<SecretHash>, StoreError> {
        self.write(move |txn| {
            let grant_of_refresh = {
                let refresh = txn.open_table(REFRESH).map_err(io)?;
                let found = refresh.get(&token.0).map_err(io)?;
                match found {
                    Some(raw) => Some(dec::<RefreshRecord>(raw.value())?.grant_id),
                    None => None,
                }
            };
            if let Some(grant_id) = grant_of_refresh {
                return revoke_grant_in(txn, &grant_id);
            }
            let mut access = txn.open_table(ACCESS).map_err(io)?;
            let removed = access.remove(&token.0).map_err(io)?;
            Ok(match removed {
                Some(_) => vec![token],
                None => Vec::new(),
            })
        })
        .await
    }

    async fn grant_verified(
        &self,
        grant_id: &str,
        verified_at: u64,
        upstream_credential: Option<String>,
    ) -> Result<(), StoreError> {
        let id = grant_id.to_string();
        self.write(move |txn| {
            let mut grants = txn.open_table(GRANTS).map_err(io)?;
            let found = match grants.get(id.as_str()).map_err(io)? {
                Some(raw) => Some(dec::<GrantRecord>(raw.value())?),
                None => None,
            };
            if let Some(mut g) = found {
                g.verified_at = verified_at;
                if upstream_credential.is_some() {
                    g.upstream_credential = upstream_credential;
                }
                grants.insert(id.as_str(), enc(&g).as_slice()).map_err(io)?;
            }
            Ok(())
        })
        .await
    }

    async fn claim_once(&self, key: SecretHash, expires_at: u64) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let mut claims = txn.open_table(CLAIMS).map_err(io)?;
            if claims.get(&key.0).map_err(io)?.is_some() {
                return Ok(false);
            }
            claims.insert(&key.0, expires_at).map_err(io)?;
            Ok(true)
        })
        .await
    }

    async fn get_consent(&self, key: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(io)?;
            let t = txn.open_table(CONSENTS).map_err(io)?;
            t.get(key.as_str())
                .map_err(io)?
                .map(|v| dec(v.value()))
                .transpose()
        })
        .await
    }

    async fn sweep(&self, now: u64, unused_clients_before: u64) -> Result<Swept, StoreError> {
        self.write(move |txn| {
            let mut swept = Swept::default();
            {
                let mut clients = txn.open_table(CLIENTS).map_err(io)?;
                let before = clients.len().map_err(io)?;
                clients
                    .retain(|_, v| {
                        dec::<ClientRecord>(v)
                            .map_or(true, |c| c.first_used_at.is_some() || c.created_at >= unused_clients_before)
                    })
                    .map_err(io)?;
                swept.clients = (before - clients.len().map_err(io)?) as usize;
            }
            {
                let mut codes = txn.open_table(CODES).map_err(io)?;
                let before = codes.len().map_err(io)?;
                codes
                    .retain(|_, v| dec::<CodeRecord>(v).map_or(true, |c| c.expires_at > now))
                    .map_err(io)?;
                swept.codes = (before - codes.len().map_err(io)?) as usize;
                let mut used = txn.open_table(USED_CODES).map_err(io)?;
                used.retain(|_, (_, expires_at)| expires_at + USED_CODE_GRACE > now).map_err(io)?;
                let mut claims = txn.open_table(CLAIMS).map_err(io)?;
                claims.retain(|_, until| until > now).map_err(io)?;
            }
            let expired = |table: TableDefinition<&[u8; 32], &[u8]>| -> Result<Vec<([u8; 32], String)>, StoreError> {
                let t = txn.open_table(table).map_err(io)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(io)? {
                    let (k, v) = row.map_err(io)?;
                    // Both record kinds carry these two fields.
                    #[derive(serde::Deserialize)]
                    struct Expiry {
                        grant_id: String,
                        expires_at: u64,
                    }
                    if let Ok(e) = serde_json::from_slice::<Expiry>(v.value()) {
                        if e.expires_at <= now {
                            out.push((*k.value(), e.grant_id));
                        }
                    }
                }
                Ok(out)
            };
            let expired_access = expired(ACCESS)?;
            let expired_refresh = expired(REFRESH)?;
            {
                let mut access = txn.open_table(ACCESS).map_err(io)?;
                let mut refresh = txn.open_table(REFRESH).map_err(io)?;
                let mut links = txn.open_multimap_table(GRANT_TOKENS).map_err(io)?;
                for (h, grant) in &expired_access {
                    access.remove(h).map_err(io)?;
                    links.remove(grant.as_str(), h).map_err(io)?;
                }
                for (h, grant) in &expired_refresh {
                    refresh.remove(h).map_err(io)?;
                    links.remove(grant.as_str(), h).map_err(io)?;
                }
                swept.access_tokens = expired_access.len();
                swept.refresh_tokens = expired_refresh.len();
            }
            // Sealed retry answers leave with their grace window.
            {
                let mut refresh = txn.open_table(REFRESH).map_err(io)?;
                let mut stale = Vec::new();
                for row in refresh.iter().map_err(io)? {
                    let (k, v) = row.map_err(io)?;
                    if let Ok(rec) = dec::<RefreshRecord>(v.value()) {
                        if rec.successor.as_ref().is_some_and(|s| s.until < now) {
                            stale.push((*k.value(), rec));
                        }
                    }
                }
                for (k, rec) in stale {
                    let cleared = RefreshRecord { successor: None, ..rec };
                    refresh.insert(&k, enc(&cleared).as_slice()).map_err(io)?;
                }
            }
            // A grant that lost its last refresh token can never issue again; one that never
            // had any (a client without the refresh grant) ends with its last access token.
            let mut touched: Vec<String> = expired_access
                .into_iter()
                .chain(expired_refresh)
                .map(|(_, g)| g)
                .collect();
            touched.sort();
            touched.dedup();
            for grant in touched {
                let (any_refresh, any_access) = {
                    let links = txn.open_multimap_table(GRANT_TOKENS).map_err(io)?;
                    let refresh = txn.open_table(REFRESH).map_err(io)?;
                    let access = txn.open_table(ACCESS).map_err(io)?;
                    let (mut r, mut a) = (false, false);
                    for h in links.get(grant.as_str()).map_err(io)? {
                        let h = h.map_err(io)?;
                        r |= refresh.get(h.value()).map_err(io)?.is_some();
                        a |= access.get(h.value()).map_err(io)?.is_some();
                    }
                    (r, a)
                };
                let had_refresh = {
                    let grants = txn.open_table(GRANTS).map_err(io)?;
                    let found = grants.get(grant.as_str()).map_err(io)?;
                    match found {
                        Some(raw) => dec::<GrantRecord>(raw.value())?.refresh,
                        None => continue,
                    }
                };
                if !any_refresh && (had_refresh || !any_access) {
                    revoke_grant_in(txn, &grant)?;
                    swept.grants += 1;
                }
            }
            Ok(swept)
        })
        .await
    }

    async fn put_consent(&self, key: &str, record: ConsentRecord) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write(move |txn| {
            let mut t = txn.open_table(CONSENTS).map_err(io)?;
            t.insert(key.as_str(), enc(&record).as_slice())
                .map_err(io)?;
            Ok(())
        })
        .await
    }
}

/// How long a redeemed code is remembered after its expiry, to detect late replays.
const USED_CODE_GRACE: u64 = 24 * 3600;

#[cfg(test)]
#[path = "redb_tests.rs"]
mod tests;
