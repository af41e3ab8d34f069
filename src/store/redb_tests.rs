use super::*;
use crate::store::contract_tests::{code, grant, tokens};

#[tokio::test]
async fn opens_twice_and_answers_ping() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RedbStore::open(dir.path()).unwrap();
        s.ping().await.unwrap();
        assert!(s.path().exists());
    }
    let s = RedbStore::open(dir.path()).unwrap();
    s.ping().await.unwrap();
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join("authgate.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(dir.path()).err().expect("must refuse");
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
}

#[tokio::test]
async fn the_file_holds_no_usable_secret() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RedbStore::open(dir.path()).unwrap();
        s.issue(
            grant("g1"),
            tokens("ag_at_SECRETACCESS", "ag_rt_SECRETREFRESH"),
        )
        .await
        .unwrap();
        s.put_code(SecretHash::of("ag_code_SECRETCODE"), code("g9", 99))
            .await
            .unwrap();
    }
    let bytes = std::fs::read(dir.path().join("authgate.redb")).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for secret in ["SECRETACCESS", "SECRETREFRESH", "SECRETCODE"] {
        assert!(!text.contains(secret), "{secret} stored in clear");
    }
    // And what was committed is there after reopening (durability across processes).
    let s = RedbStore::open(dir.path()).unwrap();
    assert!(s
        .find_access(SecretHash::of("ag_at_SECRETACCESS"), 1)
        .await
        .unwrap()
        .is_some());
}
