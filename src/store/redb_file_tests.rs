//! The store's file under faults: writes failing (a full disk, injected through a storage
//! backend), then working again without a restart; empty and damaged files refused.

use std::io;
use std::ops::Bound;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ::redb::backends::FileBackend;
use ::redb::{BackendError, StorageBackend};

use crate::store::{ClientRecord, RedbStore, Store, StoreError};
use crate::vocab::ClientId;

/// The file, with writes failing while `full` is set (as on a full disk).
#[derive(Debug)]
struct Faulty {
    inner: FileBackend,
    full: Arc<AtomicBool>,
}

impl Faulty {
    fn check(&self) -> io::Result<()> {
        match self.full.load(Ordering::SeqCst) {
            true => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            )),
            false => Ok(()),
        }
    }
}

impl StorageBackend for Faulty {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(s, e)
    }
}

fn faulty_store(dir: &std::path::Path) -> (RedbStore, Arc<AtomicBool>) {
    let full = Arc::new(AtomicBool::new(false));
    let flag = full.clone();
    let opener: super::Opener = Box::new(move |file, builder| {
        builder.create_with_backend(Faulty {
            inner: FileBackend::new(file)?,
            full: flag.clone(),
        })
    });
    (RedbStore::open_with(dir, opener).unwrap(), full)
}

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: ClientId::new(id),
        client_name: None,
        redirect_uris: vec![],
        secret_sha256: None,
        token_endpoint_auth_method: "none".into(),
        grant_types: vec![],
        application_type: None,
        created_at: 1,
        first_used_at: None,
    }
}

#[tokio::test]
async fn writes_work_again_once_the_disk_has_space_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, full) = faulty_store(dir.path());
    store.put_client(client("before")).await.unwrap();
    store.ping().await.unwrap();

    full.store(true, Ordering::SeqCst);
    assert!(store.put_client(client("during")).await.is_err());
    // Ready no more, and says why; the next writes fail fast while the disk stays full.
    let not_ready = store.ping().await.unwrap_err();
    assert!(
        matches!(not_ready, StoreError::Unavailable(_)),
        "{not_ready}"
    );
    assert!(
        not_ready.to_string().contains("no space left"),
        "{not_ready}"
    );
    assert!(store.put_client(client("during")).await.is_err());

    full.store(false, Ordering::SeqCst);
    // Reopened (after the backoff) by the next operation that tries: readiness probes with a
    // write, so it recovers by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.put_client(client("after")).await.unwrap();
    for id in ["before", "after"] {
        let found = store.get_client(&ClientId::new(id)).await.unwrap();
        assert!(found.is_some(), "{id} lost");
    }
    assert!(store
        .get_client(&ClientId::new("during"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_closed_store_refuses_operations_and_opens_cleanly_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    store.put_client(client("kept")).await.unwrap();
    store.close();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    // The file lock is released: the next process opens it.
    let again = RedbStore::open(dir.path()).unwrap();
    assert!(again
        .get_client(&ClientId::new("kept"))
        .await
        .unwrap()
        .is_some());
}

fn open_error(dir: &std::path::Path) -> String {
    match RedbStore::open(dir) {
        Ok(_) => panic!("a bad store file was opened"),
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

#[test]
fn an_empty_file_is_refused_not_taken_for_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("authgate.redb"), b"").unwrap();
    let e = open_error(dir.path());
    assert!(e.contains("authgate.redb") && e.contains("empty"), "{e}");
    assert!(e.contains("backup"), "{e}");
}

#[test]
fn damaged_files_are_refused_with_the_file_named_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    let path = dir.path().join("authgate.redb");
    let good = std::fs::read(&path).unwrap();
    let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 + 13) as u8).collect();
    let mut middle = good.clone();
    let at = good.len() / 2 - garbage.len() / 2;
    middle[at..at + garbage.len()].copy_from_slice(&garbage);
    let cases = [
        ("garbage in the middle", middle),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("garbage only", garbage.clone()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let e = open_error(dir.path());
        assert!(e.contains("authgate.redb"), "{what}: {e}");
        assert!(
            e.contains("damaged") || e.contains("not a valid") || e.contains("corrupt"),
            "{what}: {e}"
        );
    }
}

#[test]
fn the_store_is_private_to_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(RedbStore::open(&data).unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("authgate.redb")), 0o600);
}
