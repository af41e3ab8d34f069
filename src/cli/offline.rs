//! Commands on a stopped gateway's store, and the config schema: `migrate`, `restore`,
//! `schema`. The store's file lock keeps them off a store a running gateway has open.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::store::{self, RedbStore, SCHEMA_VERSION};

/// A stopped gateway's store, with its instance lock (held while the file lives); `None`
/// after saying why (`hint` added to a lock failure).
fn open_stopped(c: &config::Config, hint: &str) -> Option<(std::fs::File, RedbStore)> {
    if let config::StoreConfig::Postgres(_) = c.store {
        eprintln!("{}: this command works on the embedded store (store.kind = \"redb\"); with a PostgreSQL store use the admin API of a running replica (`authgate admin ...`)", c.source.display());
        return None;
    }
    let lock = store::lock::hold_stopped(&c.server.data_dir)
        .map_err(|e| eprintln!("{e}{hint}"))
        .ok()?;
    let store = RedbStore::open(&c.server.data_dir)
        .map_err(|e| eprintln!("{e}"))
        .ok()?;
    Some((lock, store))
}

fn load(config_path: &Path) -> Option<config::Config> {
    match config::load(config_path) {
        Ok(c) => Some(c),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

pub fn migrate(config_path: &Path, dry_run: bool) -> ExitCode {
    let Some(c) = load(config_path) else {
        return ExitCode::FAILURE;
    };
    if let config::StoreConfig::Postgres(pg) = &c.store {
        return migrate_postgres(pg, dry_run);
    }
    let path = c.server.data_dir.join("authgate.redb");
    if !path.exists() {
        println!(
            "{}: no store yet; the first start creates it at version {SCHEMA_VERSION}",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    let version = match store::schema_version(&path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let steps = store::pending_migrations(version);
    println!(
        "{}: schema version {version}; this authgate writes {SCHEMA_VERSION}",
        path.display()
    );
    if steps.is_empty() {
        println!("nothing to migrate");
        return ExitCode::SUCCESS;
    }
    for m in &steps {
        println!("  {} → {}: {}", m.from, m.from + 1, m.description);
    }
    if dry_run {
        println!("dry run: nothing changed (run without --dry-run, or just start authgate, to migrate; the file is copied first)");
        return ExitCode::SUCCESS;
    }
    let _lock = match store::lock::hold_stopped(&c.server.data_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match RedbStore::open(&c.server.data_dir) {
        Ok(_) => {
            println!("migrated to version {SCHEMA_VERSION} (the file before is kept beside it as a backup)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `migrate` on a PostgreSQL store: the SQL files not applied yet, applied unless `dry_run`
/// (a replica starting does the same).
fn migrate_postgres(pg: &store::PgSettings, dry_run: bool) -> ExitCode {
    let run = async {
        if dry_run {
            let applied = store::PostgresStore::applied_versions(pg).await?;
            let pending: Vec<_> = store::PG_MIGRATIONS
                .iter()
                .filter(|(v, _, _)| !applied.contains(v))
                .collect();
            println!(
                "PostgreSQL schema {}: versions applied {applied:?}; this authgate writes {}",
                pg.schema,
                store::PG_SCHEMA_VERSION
            );
            for (v, name, _) in &pending {
                println!("  {v}: migrations/postgres/{name}");
            }
            println!(
                "{}",
                match pending.is_empty() {
                    true => "nothing to migrate",
                    false => "dry run: nothing changed",
                }
            );
        } else {
            store::PostgresStore::open(pg).await?;
            println!(
                "PostgreSQL schema {} is at version {}",
                pg.schema,
                store::PG_SCHEMA_VERSION
            );
        }
        Ok::<(), store::StoreError>(())
    };
    match super::block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `authgate migrate-store`: the stopped gateway's redb store into an empty PostgreSQL one.
pub fn migrate_store(config_path: &Path, to: String, schema: String) -> ExitCode {
    let Some(c) = load(config_path) else {
        return ExitCode::FAILURE;
    };
    if c.auth.session_key.is_none() {
        eprintln!("{}: set auth.session_key first (the value in {}, if this gateway generated its key, works): the replicas must share it, and the values sealed in the store were sealed with it", config_path.display(), c.server.data_dir.join("session.key").display());
        return ExitCode::FAILURE;
    }
    let Some((_lock, source)) = open_stopped(&c, "") else {
        return ExitCode::FAILURE;
    };
    let export = match source.export() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("reading {}: {e}", source.path().display());
            return ExitCode::FAILURE;
        }
    };
    let settings = store::PgSettings {
        url: to,
        schema,
        pool_size: 2,
        ca_file: None,
    };
    let copy = async {
        let target = store::PostgresStore::open(&settings).await?;
        target.import(&export).await
    };
    match super::block_on(copy) {
        Ok(copied) => {
            println!(
                "copied {} into PostgreSQL schema {}: {}",
                source.path().display(),
                settings.schema,
                serde_json::to_string(&copied).unwrap_or_default()
            );
            println!("now set [store] kind = \"postgres\" (same url and schema) and the same auth.session_key on every replica; the redb file is left as it was");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate-store failed, nothing was written: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn restore(config_path: &Path, backup: &Path) -> ExitCode {
    let Some(c) = load(config_path) else {
        return ExitCode::FAILURE;
    };
    if let config::StoreConfig::Postgres(_) = c.store {
        eprintln!("{}: restore is for the embedded store; restore a PostgreSQL store with the database's tools (pg_restore)", config_path.display());
        return ExitCode::FAILURE;
    }
    match store::restore(&c.server.data_dir, backup) {
        Ok(previous) => {
            println!(
                "restored {} into {}",
                backup.display(),
                c.server.data_dir.join("authgate.redb").display()
            );
            if let Some(p) = previous {
                println!("the store it replaced is kept as {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restore failed, nothing changed: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn schema() -> ExitCode {
    println!("{}", config::json_schema());
    ExitCode::SUCCESS
}

/// `authgate keys …`: API keys on a stopped gateway's store (a running one has the store
/// locked: use `authgate admin keys`, through its admin API, then).
pub fn keys(config_path: &Path, command: &super::admin::KeysCommand) -> ExitCode {
    use super::admin::KeysCommand;
    use crate::store::Store;
    let Some(c) = load(config_path) else {
        return ExitCode::FAILURE;
    };
    let hint = ", or use `authgate admin keys` through its admin API";
    let Some((_lock, store)) = open_stopped(&c, hint) else {
        return ExitCode::FAILURE;
    };
    let tags = match store.token_tags_now() {
        Ok((key, _)) => crate::crypto::tokens::TokenTags::new(key),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = super::block_on(async {
        match command {
            KeysCommand::List => {
                let keys = store.list_api_keys().await.map_err(|e| e.to_string())?;
                println!("{} API key(s)", keys.len());
                let when = |t: Option<u64>| {
                    t.map_or("never".to_string(), |s| {
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
                        )
                        .to_string()
                    })
                };
                for k in keys {
                    let upstreams: Vec<&str> = k.upstreams.iter().map(|u| u.as_str()).collect();
                    println!(
                        "  {:<20} {:<28} {:<20} {:<16} expires {}  last used {}",
                        k.name,
                        k.owner,
                        upstreams.join(","),
                        k.scopes.to_string(),
                        when(k.expires_at),
                        when(k.last_used_at)
                    );
                }
                Ok(())
            }
            KeysCommand::Create {
                name,
                owner,
                upstreams,
                scopes,
                expires_in,
            } => {
                let request = crate::oauth::api_keys::NewKey {
                    name: name.clone(),
                    owner: owner.clone(),
                    upstreams: upstreams.clone(),
                    scopes: scopes.clone(),
                    expires_in: expires_in.clone(),
                };
                let (key, record) = request.mint(&c, &tags, crate::vocab::unix_now())?;
                if !store.put_api_key(record).await.map_err(|e| e.to_string())? {
                    return Err(format!(
                        "an API key named `{name}` exists: revoke it first, or choose another name"
                    ));
                }
                println!("{key}");
                eprintln!("API key `{name}` created; it is shown this once (authgate keeps only its sha256). Send it as Authorization: Bearer <key>.");
                Ok(())
            }
            KeysCommand::Revoke { name } => {
                match store
                    .delete_api_key(name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    true => {
                        println!("revoked API key {name}");
                        Ok(())
                    }
                    false => Err(format!("no API key `{name}`")),
                }
            }
        }
    });
    store.close();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `authgate rotate-key`: every sealed value in the store sealed again with the current key.
pub fn rotate_key(config_path: &Path) -> ExitCode {
    let Some(c) = load(config_path) else {
        return ExitCode::FAILURE;
    };
    let Some(key) = c.auth.session_key else {
        eprintln!("{}: rotate-key needs auth.session_key (the new key), with the old one in auth.previous_session_keys", config_path.display());
        return ExitCode::FAILURE;
    };
    let sealer = crate::crypto::Sealer::with_previous(&key, &c.auth.previous_session_keys);
    // A shared store is resealed while its replicas run: they hold both keys meanwhile
    // (auth.previous_session_keys), and each hears the signing keys change.
    let resealed = match &c.store {
        config::StoreConfig::Postgres(pg) => super::block_on(async {
            let store = store::PostgresStore::open(pg)
                .await
                .map_err(crate::server::keys::KeyError::Store)?;
            let n = crate::server::keys::reseal_store(&store, &sealer).await?;
            Ok::<_, crate::server::keys::KeyError>((n, format!("PostgreSQL schema {}", pg.schema)))
        }),
        config::StoreConfig::Redb => {
            let Some((_lock, store)) = open_stopped(&c, "") else {
                return ExitCode::FAILURE;
            };
            super::block_on(crate::server::keys::reseal_store(&store, &sealer))
                .map(|n| (n, store.path().display().to_string()))
        }
    };
    match resealed {
        Ok((n, place)) => {
            println!(
                "{n} sealed value(s) in {place} now sealed with key {}.",
                sealer.key_id()
            );
            println!("Keep the previous keys in auth.previous_session_keys until sessions sealed with them have expired (auth.session_ttl), then remove them.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}; nothing was changed");
            ExitCode::FAILURE
        }
    }
}
