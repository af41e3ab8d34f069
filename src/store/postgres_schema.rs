//! The PostgreSQL store's schema: versioned SQL files under `migrations/postgres/`, applied in
//! order, each in one SERIALIZABLE transaction together with the row recording it, so a
//! failed migration changes nothing and replicas starting together apply each file once
//! (the loser of the race retries and finds it applied).

use super::postgres::{store_error, PostgresStore};
use super::{token_tags_of, StoreError, TAGGED_SINCE, TOKEN_TAG_KEY};

/// The SQL migrations, in order: (version, file name, SQL).
pub const PG_MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "001_schema.sql",
    include_str!("../../migrations/postgres/001_schema.sql"),
)];

/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i32 = 1;

/// The schema's versions applied so far (empty for a new database).
pub async fn applied(store: &PostgresStore) -> Result<Vec<i32>, StoreError> {
    let c = store.client().await?;
    let exists = c
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(store_error)?
        .get::<_, bool>(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(store_error)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Applies every migration not applied yet; refuses a database migrated by a newer authgate.
pub(super) async fn migrate(store: &PostgresStore, schema: &str) -> Result<(), StoreError> {
    // The schema itself (its name was checked to be a plain identifier), then the ledger.
    store
        .tx(&schema, |t, schema| {
            Box::pin(async move {
                t.batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}; \
                     CREATE TABLE IF NOT EXISTS schema_migrations \
                     (version INT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
                ))
                .await?;
                Ok(())
            })
        })
        .await
        .or_else(created_concurrently)?;
    let done = applied(store).await?;
    if let Some(newest) = done.iter().max().filter(|v| **v > PG_SCHEMA_VERSION) {
        return Err(StoreError::SchemaTooNew {
            found: *newest as u32,
            supported: PG_SCHEMA_VERSION as u32,
        });
    }
    for (version, name, sql) in PG_MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let now = crate::vocab::unix_now() as i64;
        let key = crate::crypto::random_key();
        let env = (*version, *name, *sql, now, key);
        let applied_now = store
            .tx(&env, |t, (version, name, sql, now, key)| {
                Box::pin(async move {
                    let already = t
                        .query_opt(
                            "SELECT 1 FROM schema_migrations WHERE version = $1",
                            &[version],
                        )
                        .await?;
                    if already.is_some() {
                        return Ok(false);
                    }
                    t.batch_execute(sql).await?;
                    if *version == 1 {
                        // The token tag key every replica shares, made once.
                        t.execute(
                            "INSERT INTO secrets (name, value) VALUES ($1, $2), ($3, $4) \
                             ON CONFLICT (name) DO NOTHING",
                            &[
                                &TOKEN_TAG_KEY,
                                &&key[..16],
                                &TAGGED_SINCE,
                                &&(*now as u64).to_le_bytes()[..],
                            ],
                        )
                        .await?;
                    }
                    t.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) \
                         VALUES ($1, $2, $3)",
                        &[version, name, now],
                    )
                    .await?;
                    Ok(true)
                })
            })
            .await
            .or_else(|e| created_concurrently(e).map(|()| false))?;
        if applied_now {
            tracing::info!(version, file = name, "store: applied PostgreSQL migration");
        }
    }
    Ok(())
}

/// Two replicas creating the same table at once: PostgreSQL may refuse the second with a
/// unique violation on its catalog instead of a serialization failure. The other one won.
fn created_concurrently(e: StoreError) -> Result<(), StoreError> {
    match &e {
        StoreError::Backend(source) => {
            let unique = source
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(|e| e.code())
                .is_some_and(|c| *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
            if unique {
                Ok(())
            } else {
                Err(e)
            }
        }
        _ => Err(e),
    }
}

pub(super) async fn token_tags(store: &PostgresStore) -> Result<([u8; 16], u64), StoreError> {
    let c = store.client().await?;
    let rows = c
        .query(
            "SELECT name, value FROM secrets WHERE name = $1 OR name = $2",
            &[&TOKEN_TAG_KEY, &TAGGED_SINCE],
        )
        .await
        .map_err(store_error)?;
    let get = |name: &str| {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == name)
            .map(|r| r.get::<_, &[u8]>(1))
    };
    token_tags_of(get(TOKEN_TAG_KEY), get(TAGGED_SINCE))
}
