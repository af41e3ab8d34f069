use super::*;
use crate::testing::terms;
use crate::vocab::RedirectUri;

fn gid(id: &str) -> GrantId {
    GrantId::new(id)
}

fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        grant_id: gid(id),
        terms: terms("c1"),
        created_at: 100,
        verified_at: 100,
        upstream_credential: None,
        refresh: true,
    }
}

fn tokens(a: &str, r: &str) -> NewTokens {
    NewTokens {
        access: SecretHash::of(a),
        access_expires_at: 1000,
        refresh: Some(SecretHash::of(r)),
        refresh_expires_at: 5000,
        successor: None,
    }
}

fn code(grant_id: &str, expires_at: u64) -> CodeRecord {
    CodeRecord {
        grant_id: gid(grant_id),
        terms: terms("c1"),
        redirect_uri: RedirectUri::parse_registered("http://127.0.0.1/cb", false).unwrap(),
        code_challenge: "x".into(),
        expires_at,
        upstream_credential: None,
    }
}

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
