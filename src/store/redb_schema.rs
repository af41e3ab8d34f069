//! The redb schema: its version, tables and migrations. Keys of secret-bearing tables are
//! sha256 hashes; values are the records of `records.rs`.
//!
//! A store written by an older authgate is migrated when it opens: the file is first copied
//! beside itself (`authgate.redb.v<N>-backup-<time>`), then every step from its version to
//! [`SCHEMA_VERSION`] runs in one write transaction, so a failed migration changes nothing.
//! Each step is described in `migrations/<version>.md`.

use std::path::{Path, PathBuf};

use ::redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

use super::{AccessRecord, GrantRecord, StoreError, UserRecord, TAGGED_SINCE, TOKEN_TAG_KEY};

/// The schema this build writes. Bump it, with a migration, whenever a table changes shape.
pub const SCHEMA_VERSION: u32 = 4;

pub(super) const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
pub(super) const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");
pub(super) const CODES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("codes");
/// Redeemed codes → the grant they created, to detect replays.
pub(super) const USED_CODES: TableDefinition<&[u8; 32], (&str, u64)> =
    TableDefinition::new("used_codes");
pub(super) const GRANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("grants");
pub(super) const ACCESS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("access_tokens");
pub(super) const REFRESH: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("refresh_tokens");
/// grant id → hashes of every access and refresh token it issued.
pub(super) const GRANT_TOKENS: MultimapTableDefinition<&str, &[u8; 32]> =
    MultimapTableDefinition::new("grant_tokens");
pub(super) const CONSENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("consents");
/// Single-use claims (hash of the claimed key) → when the claim may be forgotten.
pub(super) const CLAIMS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("claims");
/// `provider:subject` → [`UserRecord`] (since version 2).
pub(super) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// `provider:subject` → when the person was blocked (since version 2).
pub(super) const BLOCKED: TableDefinition<&str, u64> = TableDefinition::new("blocked_users");
/// Secrets the store keeps for every process using it (since version 3): the key of token
/// tags and since when tokens are tagged.
pub(super) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// API key name → [`super::ApiKeyRecord`] (since version 4).
pub(super) const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

/// Access records are postcard behind this first byte (since version 3; JSON, which starts
/// with `{`, before): the hot path's cache miss decodes them, and JSON was most of its cost.
const ACCESS_POSTCARD: u8 = 1;

pub(super) fn enc_access(rec: &AccessRecord) -> Vec<u8> {
    let mut out = vec![ACCESS_POSTCARD];
    postcard::to_io(rec, &mut out).expect("records serialize");
    out
}

pub(super) fn dec_access(bytes: &[u8]) -> Result<AccessRecord, StoreError> {
    match bytes.split_first() {
        Some((&ACCESS_POSTCARD, rest)) => {
            postcard::from_bytes(rest).map_err(|e| StoreError::Corrupt {
                what: "AccessRecord",
                source: Box::new(e),
            })
        }
        _ => super::redb::dec(bytes),
    }
}

/// One step from `from` to `from + 1`.
pub struct Migration {
    pub from: u32,
    /// What changes and why (the long form is `migrations/<from + 1>.md`).
    pub description: &'static str,
    apply: fn(&WriteTransaction) -> Result<(), StoreError>,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        description: "adds the `users` table (people seen, for the admin API), filled from the \
                      identities of existing grants, and the `blocked_users` table",
        apply: v1_to_v2,
    },
    Migration {
        from: 2,
        description: "re-encodes access-token records from JSON to postcard (the hot path's \
                      cache miss decodes them) and adds the `secrets` table with the key of \
                      token tags (tokens issued before keep working)",
        apply: v2_to_v3,
    },
    Migration {
        from: 3,
        description: "adds the `api_keys` table (keys for machines, stored as sha256)",
        apply: v3_to_v4,
    },
];

fn v3_to_v4(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(API_KEYS)?;
    Ok(())
}

fn v2_to_v3(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut access = txn.open_table(ACCESS)?;
    let mut rows: Vec<([u8; 32], AccessRecord)> = Vec::new();
    for entry in access.iter()? {
        let (k, v) = entry?;
        rows.push((*k.value(), dec_access(v.value())?));
    }
    for (k, rec) in rows {
        access.insert(&k, enc_access(&rec).as_slice())?;
    }
    Ok(())
}

/// Creates the token tag key once (every process on the store then uses it).
fn ensure_secrets(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut secrets = txn.open_table(SECRETS)?;
    if secrets.get(TOKEN_TAG_KEY)?.is_none() {
        let mut key = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        secrets.insert(TOKEN_TAG_KEY, key.as_slice())?;
        let now = crate::vocab::unix_now().to_le_bytes();
        secrets.insert(TAGGED_SINCE, now.as_slice())?;
    }
    Ok(())
}

fn v1_to_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    let grants = txn.open_table(GRANTS)?;
    let mut users = txn.open_table(USERS)?;
    txn.open_table(BLOCKED)?;
    let mut seen: std::collections::BTreeMap<String, UserRecord> = Default::default();
    for entry in grants.iter()? {
        let (_, raw) = entry?;
        let g: GrantRecord = super::redb::dec(raw.value())?;
        let id = &g.terms.identity;
        let rec = seen.entry(id.user_id()).or_insert_with(|| UserRecord {
            user_id: id.user_id(),
            provider: id.provider.clone(),
            email: id.email.clone(),
            name: id.name.clone(),
            first_seen: g.created_at,
            last_login: g.created_at,
            logins: 0,
        });
        rec.first_seen = rec.first_seen.min(g.created_at);
        rec.last_login = rec.last_login.max(g.verified_at.max(g.created_at));
        rec.logins += 1;
    }
    for (id, rec) in seen {
        users.insert(id.as_str(), super::redb::enc(&rec).as_slice())?;
    }
    Ok(())
}

/// The store's schema version (`None` for a new, empty file).
pub fn version_of(db: &impl ReadableDatabase) -> Result<Option<u32>, StoreError> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(::redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(meta.get("schema_version")?.map(|v| v.value()))
}

/// The steps that would bring a store at `version` to [`SCHEMA_VERSION`].
pub fn pending(version: u32) -> Vec<&'static Migration> {
    MIGRATIONS.iter().filter(|m| m.from >= version).collect()
}

/// Checks the schema version (writing it into a new store), migrates an older store after
/// copying its file (at `path`), and creates every table up front so read transactions never
/// meet a missing one.
/// With `migrate` false (a binary upgrade, the old process still running on the store), a
/// store that needs a migration is refused instead.
pub(super) fn init_schema(db: &Database, path: &Path, migrate: bool) -> Result<(), StoreError> {
    let found = version_of(db)?;
    if let Some(v) = found {
        if v > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
    }
    let steps = found.map(pending).unwrap_or_default();
    if !migrate && !steps.is_empty() {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            source: format!(
                "this authgate changes the store's schema (version {} to {SCHEMA_VERSION}), which \
                 cannot happen under a running authgate: stop it and start this one instead of \
                 upgrading in place",
                found.unwrap_or_default()
            )
            .into(),
        });
    }
    if let (Some(v), false) = (found, steps.is_empty()) {
        let backup = backup_path(path, v);
        std::fs::copy(path, &backup).map_err(|e| StoreError::Open {
            path: backup.clone(),
            source: Box::new(e),
        })?;
        tracing::warn!(from = v, to = SCHEMA_VERSION, backup = %backup.display(), "migrating the store; the file before is kept as the backup");
    }
    let txn = db.begin_write()?;
    {
        for step in &steps {
            tracing::info!(
                from = step.from,
                to = step.from + 1,
                "store migration: {}",
                step.description
            );
            (step.apply)(&txn)?;
        }
        txn.open_table(META)?
            .insert("schema_version", SCHEMA_VERSION)?;
        txn.open_table(CLIENTS)?;
        txn.open_table(CODES)?;
        txn.open_table(USED_CODES)?;
        txn.open_table(GRANTS)?;
        txn.open_table(ACCESS)?;
        txn.open_table(REFRESH)?;
        txn.open_multimap_table(GRANT_TOKENS)?;
        txn.open_table(CONSENTS)?;
        txn.open_table(CLAIMS)?;
        txn.open_table(USERS)?;
        txn.open_table(BLOCKED)?;
        txn.open_table(API_KEYS)?;
        ensure_secrets(&txn)?;
    }
    Ok(txn.commit()?)
}

fn backup_path(path: &Path, version: u32) -> PathBuf {
    let name = format!(
        "{}.v{version}-backup-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("authgate.redb"),
        crate::vocab::unix_now()
    );
    path.with_file_name(name)
}
