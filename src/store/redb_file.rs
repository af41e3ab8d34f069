//! The redb file itself: opened safely, and reopened after an I/O error.
//!
//! - The data directory is created 0700 and the file 0600 (it holds people's emails and
//!   groups); an existing one readable by others gets a warning.
//! - An existing empty file is refused (redb would silently start an empty store in it, every
//!   grant gone), and so is a damaged one, naming the file and what to do: redb's integrity
//!   check runs at every open, and a panic inside redb on a bad file is caught here.
//! - After an I/O error (a full disk, EROFS), redb refuses every later operation until the
//!   database is closed and opened again. The handle is dropped at the first such error and
//!   reopened with backoff on the next use; meanwhile operations answer `Unavailable` and
//!   readiness says why, until a write succeeds again.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ::redb::backends::FileBackend;
use ::redb::{
    Builder, CommitError, ConcurrencyMode, Database, DatabaseError, StorageError, TableError,
    TransactionError,
};

use super::StoreError;

/// Opens the database in a file with the builder given: production on disk, tests through a
/// backend that can fail on demand.
pub type Opener = Box<dyn Fn(File, &Builder) -> Result<Database, DatabaseError> + Send + Sync>;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

pub(super) struct DbFile {
    path: PathBuf,
    opener: Opener,
    /// `None` between an I/O error and a successful reopen.
    db: RwLock<Option<Arc<Database>>>,
    health: Mutex<Health>,
    /// Mirrors `health.failure.is_some()` so the hot path reads one atomic.
    failing: AtomicBool,
}

struct Health {
    failure: Option<String>,
    retry_at: Instant,
    backoff: Duration,
}

impl DbFile {
    /// Opens (creating if needed) `<data_dir>/authgate.redb`; `init` prepares the schema.
    pub fn open(
        data_dir: &Path,
        opener: Opener,
        init: impl FnOnce(&Database, &Path) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let path = data_dir.join("authgate.redb");
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source,
        };
        prepare_dir(data_dir).map_err(|e| StoreError::Open {
            path: data_dir.to_path_buf(),
            source: Box::new(e),
        })?;
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.len() == 0 {
                return Err(failed(
                    "the file is empty: it is not a store authgate wrote (a failed copy or restore?). \
                     Restore it from a backup, or delete it to start with an empty store"
                        .into(),
                ));
            }
            if meta.mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.mode() & 0o777), "the store is readable by other users: chmod 600 it");
            }
        }
        let db = open_file(&path, &opener).map_err(|e| failed(e.into()))?;
        init(&db, &path)?;
        Ok(Self {
            path,
            opener,
            db: RwLock::new(Some(Arc::new(db))),
            health: Mutex::new(Health {
                failure: None,
                retry_at: Instant::now(),
                backoff: FIRST_RETRY,
            }),
            failing: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database, reopening it first when an I/O error closed it and the backoff has
    /// passed. Blocking: call from a blocking thread, or where a failed store is acceptable.
    pub fn database(&self) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = self.db.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(db.clone());
        }
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let why = health.failure.clone().unwrap_or_default();
        if Instant::now() < health.retry_at {
            return Err(StoreError::Unavailable(why));
        }
        match open_file(&self.path, &self.opener) {
            Ok(db) => {
                tracing::info!(path = %self.path.display(), "store reopened after an I/O error");
                let db = Arc::new(db);
                *slot = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                health.retry_at = Instant::now() + health.backoff;
                health.backoff = (health.backoff * 2).min(LAST_RETRY);
                tracing::warn!(path = %self.path.display(), error = %e, retry_in = ?health.backoff, "store still cannot be reopened");
                Err(StoreError::Unavailable(format!(
                    "{why}; reopening failed: {e}"
                )))
            }
        }
    }

    /// The open database without trying to reopen it (for reads on a worker thread).
    pub fn open_database(&self) -> Result<Arc<Database>, StoreError> {
        match self.db.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(db) => Ok(db.clone()),
            None => Err(StoreError::Unavailable(self.failure().unwrap_or_default())),
        }
    }

    /// Closes the database once the operations holding it finish (up to two seconds); later
    /// operations get `Unavailable`, as after an I/O error, but no reopen is tried.
    pub fn close(&self) {
        let taken = self.db.write().unwrap_or_else(|e| e.into_inner()).take();
        {
            let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
            health.failure = Some("the store is closed: authgate is stopping".into());
            health.retry_at = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        }
        self.failing.store(true, Ordering::Relaxed);
        let Some(mut db) = taken else { return };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    drop(db);
                    tracing::info!(path = %self.path.display(), "store closed");
                    return;
                }
                Err(shared) if Instant::now() < deadline => {
                    db = shared;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => {
                    tracing::warn!(path = %self.path.display(), "store still in use at exit; it is checked at the next start");
                    return;
                }
            }
        }
    }

    /// Whether writes are failing, and why (for readiness).
    pub fn failure(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failure
            .clone()
    }

    /// Notes how an operation went: an I/O error closes the database (to be reopened), a
    /// successful write clears a failure.
    pub fn observe<T>(&self, result: &Result<T, StoreError>, wrote: bool) {
        match result {
            Err(e) if is_io(e) => {
                crate::metrics::metrics().store_failures.inc();
                let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
                if health.failure.is_none() {
                    tracing::error!(path = %self.path.display(), error = %e, "store I/O error: writes fail until the database is reopened");
                    health.backoff = FIRST_RETRY;
                }
                health.failure = Some(e.to_string());
                health.retry_at = Instant::now();
                self.failing.store(true, Ordering::Relaxed);
                // Dropped here; closed once the operations still holding it finish.
                self.db.write().unwrap_or_else(|e| e.into_inner()).take();
            }
            Ok(_) if wrote && self.failing.load(Ordering::Relaxed) => {
                let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
                if health.failure.take().is_some() {
                    tracing::info!(path = %self.path.display(), "store writes work again");
                }
                health.backoff = FIRST_RETRY;
                self.failing.store(false, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    } else if let Ok(meta) = std::fs::metadata(dir) {
        if meta.mode() & 0o077 != 0 {
            tracing::warn!(path = %dir.display(), mode = format!("{:o}", meta.mode() & 0o777), "the data directory is open to other users: chmod 700 it");
        }
    }
    Ok(())
}

/// Opens the file (created 0600) with a panic inside redb turned into an error, after the full
/// integrity check.
fn open_file(path: &Path, opener: &Opener) -> Result<Database, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| e.to_string())?;
    let damaged = |what: String| {
        format!(
            "{what}. The file is damaged: restore it from a backup (see the README), or move it \
             away to start with an empty store"
        )
    };
    // Every page's checksum is verified at open: a file altered outside redb is refused, not
    // served (a plain open trusts a cleanly closed file and may panic on it later). redb runs
    // that check as a repair whether or not the file was closed cleanly, so its repair
    // callback says nothing about a crash and is not used.
    let started = std::time::Instant::now();
    let mut builder = Database::builder();
    builder
        .set_check_integrity_on_open(true)
        // Two authgate processes share the file during a binary upgrade (the server's
        // instance lock keeps a second one out otherwise).
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        // redb caches up to 1 GiB by default; pages beyond this come from the OS page cache.
        .set_cache_size(64 << 20);
    match catch_unwind(AssertUnwindSafe(|| opener(file, &builder))) {
        Ok(Ok(db)) => {
            tracing::debug!(path = %path.display(), elapsed = ?started.elapsed(), "store verified");
            Ok(db)
        }
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(
            "another process has this store open (is authgate already running with this data_dir?)"
                .into(),
        ),
        Ok(Err(e @ DatabaseError::UpgradeRequired(_))) => Err(e.to_string()),
        // Corrupted pages, a bad header, a file that is not a redb database at all.
        Ok(Err(e)) => Err(damaged(e.to_string())),
        Err(_) => Err(damaged("reading it made the storage library fail".into())),
    }
}

/// Opens on disk.
pub fn file_opener() -> Opener {
    Box::new(|file, builder| builder.create_with_backend(FileBackend::new(file)?))
}

/// Whether an error means the database must be reopened: redb's I/O errors, and the
/// "previous I/O error" it answers everything with afterwards.
fn is_io(e: &StoreError) -> bool {
    let StoreError::Backend(source) = e else {
        return false;
    };
    let storage = |s: &StorageError| matches!(s, StorageError::Io(_) | StorageError::PreviousIo);
    if let Some(s) = source.downcast_ref::<StorageError>() {
        return storage(s);
    }
    if let Some(CommitError::Storage(s)) = source.downcast_ref::<CommitError>() {
        return storage(s);
    }
    if let Some(TransactionError::Storage(s)) = source.downcast_ref::<TransactionError>() {
        return storage(s);
    }
    if let Some(TableError::Storage(s)) = source.downcast_ref::<TableError>() {
        return storage(s);
    }
    if let Some(DatabaseError::Storage(s)) = source.downcast_ref::<DatabaseError>() {
        return storage(s);
    }
    matches!(
        source.downcast_ref::<::redb::Error>(),
        Some(::redb::Error::Io(_) | ::redb::Error::PreviousIo)
    )
}

#[cfg(test)]
#[path = "redb_file_tests.rs"]
mod tests;
