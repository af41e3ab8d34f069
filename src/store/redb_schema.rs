//! The redb schema: its version and tables. Keys of secret-bearing tables are sha256
//! hashes; values are the records of `records.rs`.

use ::redb::{Database, MultimapTableDefinition, ReadableTable, TableDefinition};

use super::StoreError;

/// The schema this build writes. Bump it, with a migration, whenever a table changes shape.
pub const SCHEMA_VERSION: u32 = 1;

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

/// Checks the schema version (writing it into a new store) and creates every table up front,
/// so read transactions never meet a missing one.
pub(super) fn init_schema(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get("schema_version")?.map(|v| v.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                })
            }
            Some(_) => {}
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
            }
        }
        txn.open_table(CLIENTS)?;
        txn.open_table(CODES)?;
        txn.open_table(USED_CODES)?;
        txn.open_table(GRANTS)?;
        txn.open_table(ACCESS)?;
        txn.open_table(REFRESH)?;
        txn.open_multimap_table(GRANT_TOKENS)?;
        txn.open_table(CONSENTS)?;
        txn.open_table(CLAIMS)?;
    }
    Ok(txn.commit()?)
}
