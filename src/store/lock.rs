//! One authgate per data directory. The store opens shared (two processes use it during a
//! binary upgrade), so this lock file, `authgate.lock`, is what keeps a second gateway, and
//! the offline commands (`migrate`, `restore`, `keys`), away from a store in use.

use std::fs::File;
use std::path::Path;

/// The data directory's lock file, opened (not locked): the directory is created `0700` and
/// the file `0600` when missing, as the gateway makes them.
pub fn lock_file(data_dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(data_dir.join("authgate.lock"))
}

/// The lock, held until the file is dropped, for work on a stopped gateway's store; refused
/// while a gateway runs on it.
pub fn hold_stopped(data_dir: &Path) -> Result<File, String> {
    let place = |e: std::io::Error| format!("{}: {e}", data_dir.join("authgate.lock").display());
    let file = lock_file(data_dir).map_err(place)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "an authgate is running with data_dir {}: stop it first",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(place(e)),
    }
}
