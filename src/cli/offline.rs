//! Commands on a stopped gateway's store, and the config schema: `migrate`, `restore`,
//! `schema`. The store's file lock keeps them off a store a running gateway has open.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::store::{self, RedbStore, SCHEMA_VERSION};

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

pub fn restore(config_path: &Path, backup: &Path) -> ExitCode {
    let Some(c) = load(config_path) else {
        return ExitCode::FAILURE;
    };
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
