//! Administration of the redb store: people seen and blocked, clients and grants listed and
//! removed, counts, and a consistent copy of the whole store.

use std::path::Path;

use ::redb::{
    Database, Key, MultimapTableDefinition, ReadTransaction, ReadableDatabase,
    ReadableMultimapTable, ReadableTable, ReadableTableMetadata, TableDefinition, Value,
    WriteTransaction,
};

use super::redb::{dec, enc};
use super::redb_schema::*;
use super::redb_tokens::revoke_grant_in;
use super::*;

pub(super) fn record_login(
    txn: &WriteTransaction,
    identity: &Identity,
    at: u64,
) -> Result<(), StoreError> {
    let mut users = txn.open_table(USERS)?;
    let id = identity.user_id();
    let before: Option<UserRecord> = match users.get(id.as_str())? {
        Some(raw) => Some(dec(raw.value())?),
        None => None,
    };
    let rec = UserRecord::after_login(before, identity, at);
    users.insert(id.as_str(), enc(&rec).as_slice())?;
    Ok(())
}

/// Every value of a JSON-record table.
pub(super) fn all<T: serde::de::DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, StoreError> {
    let txn = db.begin_read()?;
    let t = txn.open_table(table)?;
    let mut out = Vec::new();
    for entry in t.iter()? {
        out.push(dec(entry?.1.value())?);
    }
    Ok(out)
}

pub(super) fn delete_client(
    txn: &WriteTransaction,
    client_id: &ClientId,
) -> Result<Option<Vec<SecretHash>>, StoreError> {
    let existed = txn
        .open_table(CLIENTS)?
        .remove(client_id.as_str())?
        .is_some();
    if !existed {
        return Ok(None);
    }
    let grants: Vec<String> = {
        let t = txn.open_table(GRANTS)?;
        let mut ids = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            let g: GrantRecord = dec(v.value())?;
            if g.terms.client_id == *client_id {
                ids.push(k.value().to_string());
            }
        }
        ids
    };
    let mut revoked = Vec::new();
    for g in grants {
        revoked.extend(revoke_grant_in(txn, &g)?);
    }
    Ok(Some(revoked))
}

pub(super) fn set_blocked(
    txn: &WriteTransaction,
    user_id: &str,
    since: Option<u64>,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(BLOCKED)?;
    match since {
        Some(at) => t.insert(user_id, at)?,
        None => t.remove(user_id)?,
    };
    Ok(())
}

pub(super) fn blocked(db: &Database) -> Result<Vec<(String, u64)>, StoreError> {
    let txn = db.begin_read()?;
    let t = txn.open_table(BLOCKED)?;
    let mut out = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        out.push((k.value().to_string(), v.value()));
    }
    Ok(out)
}

pub(super) fn stats(db: &Database, path: &Path) -> Result<StoreStats, StoreError> {
    let txn = db.begin_read()?;
    Ok(StoreStats {
        clients: txn.open_table(CLIENTS)?.len()?,
        grants: txn.open_table(GRANTS)?.len()?,
        access_tokens: txn.open_table(ACCESS)?.len()?,
        refresh_tokens: txn.open_table(REFRESH)?.len()?,
        codes: txn.open_table(CODES)?.len()?,
        consents: txn.open_table(CONSENTS)?.len()?,
        users: txn.open_table(USERS)?.len()?,
        blocked_users: txn.open_table(BLOCKED)?.len()?,
        file_bytes: std::fs::metadata(path).ok().map(|m| m.len()),
    })
}

fn copy<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let src = from.open_table(def)?;
    let mut dst = to.open_table(def)?;
    for entry in src.iter()? {
        let (k, v) = entry?;
        dst.insert(k.value(), v.value())?;
    }
    Ok(())
}

fn copy_multimap<K: Key + 'static, V: Key + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: MultimapTableDefinition<K, V>,
) -> Result<(), StoreError> {
    let src = from.open_multimap_table(def)?;
    let mut dst = to.open_multimap_table(def)?;
    for entry in src.iter()? {
        let (k, values) = entry?;
        for v in values {
            dst.insert(k.value(), v?.value())?;
        }
    }
    Ok(())
}

/// Copies every table, as one read transaction sees them, into a new store file at `to`
/// (created 0600; an existing file is refused).
pub(super) fn backup(db: &Database, to: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
        path: to.to_path_buf(),
        source: e,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| failed(Box::new(e)))?;
    let copy_db = Database::builder()
        .create_with_backend(
            ::redb::backends::FileBackend::new(file).map_err(|e| failed(e.into()))?,
        )
        .map_err(|e| failed(e.into()))?;
    let from = db.begin_read()?;
    let to_txn = copy_db.begin_write()?;
    copy(&from, &to_txn, META)?;
    copy(&from, &to_txn, CLIENTS)?;
    copy(&from, &to_txn, CODES)?;
    copy(&from, &to_txn, USED_CODES)?;
    copy(&from, &to_txn, GRANTS)?;
    copy(&from, &to_txn, ACCESS)?;
    copy(&from, &to_txn, REFRESH)?;
    copy_multimap(&from, &to_txn, GRANT_TOKENS)?;
    copy(&from, &to_txn, CONSENTS)?;
    copy(&from, &to_txn, CLAIMS)?;
    copy(&from, &to_txn, USERS)?;
    copy(&from, &to_txn, BLOCKED)?;
    copy(&from, &to_txn, SECRETS)?;
    to_txn.commit()?;
    Ok(())
}

/// The schema version of the store file at `path` (read-only; fails while a running gateway
/// has it open in another mode).
pub fn schema_version(path: &Path) -> Result<u32, StoreError> {
    let db = Database::builder()
        .set_concurrency_mode(::redb::ConcurrencyMode::MultiWriter)
        .open_read_only(path)?;
    Ok(version_of(&db)?.unwrap_or(SCHEMA_VERSION))
}

/// Puts `backup` in place of the store in `data_dir` (the gateway stopped): the backup is
/// copied in and checked (integrity, and migrated if it is older) before anything is
/// replaced; the store it replaces is kept beside it. Returns that file's path.
pub fn restore(data_dir: &Path, backup: &Path) -> Result<Option<std::path::PathBuf>, StoreError> {
    let failed = |what: &Path, e: std::io::Error| StoreError::Open {
        path: what.to_path_buf(),
        source: Box::new(e),
    };
    let live = data_dir.join("authgate.redb");
    // Refused while a gateway has it open; held until the restore is done.
    let _lock = super::lock::hold_stopped(data_dir).map_err(|why| StoreError::Open {
        path: live.clone(),
        source: why.into(),
    })?;
    let staging = tempfile_in(data_dir)?;
    std::fs::copy(backup, staging.join("authgate.redb")).map_err(|e| failed(backup, e))?;
    // Opening checks every page and migrates an older backup.
    super::RedbStore::open(&staging)?.close();
    let previous = if live.exists() {
        let kept = data_dir.join(format!(
            "authgate.redb.before-restore-{}",
            crate::vocab::unix_now()
        ));
        std::fs::rename(&live, &kept).map_err(|e| failed(&live, e))?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(staging.join("authgate.redb"), &live).map_err(|e| failed(&live, e))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(previous)
}

/// A fresh private directory inside `dir`, on the same filesystem (renames stay atomic).
fn tempfile_in(dir: &Path) -> Result<std::path::PathBuf, StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    let path = dir.join(format!(".restore-{}", crate::crypto::random_id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&path)
        .map_err(|e| StoreError::Open {
            path: path.clone(),
            source: Box::new(e),
        })?;
    Ok(path)
}

pub(super) fn token_tags(db: &Database) -> Result<([u8; 16], u64), StoreError> {
    let txn = db.begin_read()?;
    let secrets = txn.open_table(SECRETS)?;
    let key = secrets.get(TOKEN_TAG_KEY)?;
    let since = secrets.get(TAGGED_SINCE)?;
    token_tags_of(
        key.as_ref().map(|v| v.value()),
        since.as_ref().map(|v| v.value()),
    )
}
