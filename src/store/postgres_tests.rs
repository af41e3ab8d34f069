//! What only a shared store must do: hold its guarantees when several replicas (here, several
//! pools on one database, as separate processes would be) race, tell every replica what was
//! revoked, and ride out a database outage.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::contract_tests::{code, grant, pg_server, postgres_store, tokens};
use crate::store::RedbStore;

/// Two "replicas" on one fresh database.
async fn two() -> (Arc<PostgresStore>, Arc<PostgresStore>) {
    let url = pg_server::shared_url();
    let a = postgres_store(&url).await;
    let b = postgres_store(&url).await;
    (Arc::new(a), Arc::new(b))
}

#[tokio::test]
async fn replicas_starting_together_migrate_once_and_share_the_tag_key() {
    let url = pg_server::shared_url();
    let opened = futures_util::future::join_all((0..4).map(|_| postgres_store(&url))).await;
    let mut keys = Vec::new();
    for s in &opened {
        keys.push(s.token_tags().await.unwrap());
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "one tag key for all");
    let applied = postgres_schema::applied(&opened[0]).await.unwrap();
    assert_eq!(applied, vec![1]);
}

#[tokio::test]
async fn a_code_redeemed_on_several_replicas_at_once_is_fresh_exactly_once() {
    let (a, b) = two().await;
    for round in 0..5 {
        let h = SecretHash::of(&format!("code-{round}"));
        a.put_code(h, code(&format!("g{round}"), 10_000))
            .await
            .unwrap();
        let takes = (0..8).map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move { s.take_code(h, 100).await.unwrap() }
        });
        let results = futures_util::future::join_all(takes).await;
        let fresh = results
            .iter()
            .filter(|r| matches!(r, TakenCode::Fresh(_)))
            .count();
        let replayed = results
            .iter()
            .filter(|r| matches!(r, TakenCode::Replayed { .. }))
            .count();
        assert_eq!((fresh, replayed), (1, 7), "round {round}");
    }
}

#[tokio::test]
async fn a_refresh_token_rotated_on_two_replicas_at_once_rotates_once() {
    let (a, b) = two().await;
    for round in 0..5 {
        let g = format!("g{round}");
        let r = format!("r{round}");
        a.issue(grant(&g), tokens(&format!("a{round}"), &r))
            .await
            .unwrap();
        let rotations = (0..6).map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            let r = r.clone();
            async move {
                let mut next = tokens(&format!("a{round}-{i}"), &format!("r{round}-{i}"));
                next.successor = Some(SealedSuccessor {
                    sealed: format!("answer-{i}"),
                    until: 700,
                });
                s.rotate_refresh(SecretHash::of(&r), &ClientId::new("c1"), next, 600)
                    .await
                    .unwrap()
            }
        });
        let results = futures_util::future::join_all(rotations).await;
        let rotated = results
            .iter()
            .filter(|r| matches!(r, Rotation::Rotated(_)))
            .count();
        let sealed: Vec<&String> = results
            .iter()
            .filter_map(|r| match r {
                Rotation::Retried { sealed } => Some(sealed),
                _ => None,
            })
            .collect();
        assert_eq!(rotated, 1, "round {round}");
        assert_eq!(
            sealed.len(),
            5,
            "the others get the first answer, round {round}"
        );
        assert!(sealed.windows(2).all(|w| w[0] == w[1]), "one answer");
    }
}

/// The next change `rx` hears, within 5 s.
async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Invalidation>) -> Invalidation {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification within 5 s")
        .expect("the listener runs")
}

#[tokio::test]
async fn every_replica_hears_what_another_revoked() {
    let (a, b) = two().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = {
        let b = b.clone();
        tokio::spawn(async move { b.listen(tx).await })
    };
    assert_eq!(
        next(&mut rx).await,
        Invalidation::All,
        "a flush when it starts"
    );
    assert!(b.listening());

    a.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    a.revoke_grant(&GrantId::new("g1")).await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        Invalidation::Access(vec![SecretHash::of("a1")])
    );
    a.revoke_token(SecretHash::of("lone")).await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        Invalidation::Access(vec![SecretHash::of("lone")])
    );
    a.set_blocked("local:alice", Some(5)).await.unwrap();
    assert_eq!(next(&mut rx).await, Invalidation::Blocked);
    a.put_secret("identity_signing_keys", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Invalidation::Secret("identity_signing_keys".into())
    );
    // A grant with many tokens: every hash arrives, over several notifications.
    a.issue(grant("g2"), tokens("b0", "q0")).await.unwrap();
    let mut want = vec![SecretHash::of("b0")];
    for i in 1..250 {
        let next = tokens(&format!("b{i}"), &format!("q{i}"));
        let old = SecretHash::of(&format!("q{}", i - 1));
        let r = a
            .rotate_refresh(old, &ClientId::new("c1"), next, 10)
            .await
            .unwrap();
        assert!(matches!(r, Rotation::Rotated(_)));
        want.push(SecretHash::of(&format!("b{i}")));
    }
    a.revoke_grant(&GrantId::new("g2")).await.unwrap();
    let mut heard = Vec::new();
    while heard.len() < want.len() {
        match next(&mut rx).await {
            Invalidation::Access(h) => heard.extend(h),
            other => panic!("unexpected {other:?}"),
        }
    }
    heard.sort_by_key(|h| h.0);
    want.sort_by_key(|h| h.0);
    assert_eq!(heard, want);
    listener.abort();
}

#[tokio::test]
async fn a_revocation_reaches_a_replicas_cache() {
    let (a, b) = two().await;
    let cache_b = Arc::new(Cached::new(b.clone()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = {
        let b = b.clone();
        tokio::spawn(async move { b.listen(tx).await })
    };
    let applier = {
        let cache_b = cache_b.clone();
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                cache_b.invalidate(&change).await.unwrap();
            }
        })
    };
    a.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    let t = SecretHash::of("a1");
    assert!(cache_b.authenticate(t, 10).await.unwrap().is_some());
    assert!(cache_b.cached(&t, 10).is_some(), "B cached it");
    let revoked_at = std::time::Instant::now();
    a.revoke_token(SecretHash::of("r1")).await.unwrap();
    while cache_b.cached(&t, 10).is_some() {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still serves a token A revoked after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(cache_b.authenticate(t, 10).await.unwrap().is_none());
    listener.abort();
    applier.abort();
}

#[tokio::test]
async fn an_outage_answers_unavailable_and_recovery_needs_no_restart() {
    let mut server = pg_server::PgServer::start();
    server.create_database("authgate");
    let store = postgres_store(&server.url("authgate")).await;
    store.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    let cache = Cached::new(Arc::new(store));
    assert!(cache
        .authenticate(SecretHash::of("a1"), 10)
        .await
        .unwrap()
        .is_some());

    server.stop();
    assert!(matches!(
        cache.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    // What was cached keeps working; what was not answers Unavailable, never "unknown".
    assert!(cache
        .authenticate(SecretHash::of("a1"), 10)
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        cache.authenticate(SecretHash::of("other"), 10).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        cache.take_code(SecretHash::of("c"), 10).await,
        Err(StoreError::Unavailable(_))
    ));

    server.restart();
    let back = std::time::Instant::now();
    loop {
        match cache.ping().await {
            Ok(()) => break,
            Err(e) => assert!(back.elapsed() < Duration::from_secs(10), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cache
        .find_refresh(SecretHash::of("r1"), 10)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_redb_store_moves_into_postgres_whole() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path()).unwrap();
    redb.put_client(crate::store::contract_tests::client("c1", 10))
        .await
        .unwrap();
    redb.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    let mut next = tokens("a2", "r2");
    next.successor = Some(SealedSuccessor {
        sealed: "SEALED".into(),
        until: 700,
    });
    redb.rotate_refresh(SecretHash::of("r1"), &ClientId::new("c1"), next, 600)
        .await
        .unwrap();
    redb.put_code(SecretHash::of("code"), code("g9", 5000))
        .await
        .unwrap();
    redb.put_code(SecretHash::of("used"), code("g8", 5000))
        .await
        .unwrap();
    redb.take_code(SecretHash::of("used"), 10).await.unwrap();
    assert!(redb.claim_once(SecretHash::of("claim"), 900).await.unwrap());
    let consent = ConsentRecord {
        scopes: crate::vocab::ScopeSet::parse("mcp:tools").unwrap(),
        upstreams: vec![],
        given_at: 5,
    };
    redb.put_consent("local:alice|c1", consent.clone())
        .await
        .unwrap();
    redb.record_login(&crate::testing::terms("c1").identity, 7)
        .await
        .unwrap();
    redb.set_blocked("local:mallory", Some(8)).await.unwrap();
    redb.put_secret("identity_signing_keys", b"keys".to_vec())
        .await
        .unwrap();
    let key = ApiKeyRecord {
        name: "ci".into(),
        hash: SecretHash::of("ag_key_x"),
        owner: "ops@example.com".into(),
        upstreams: vec![],
        scopes: crate::vocab::ScopeSet::parse("mcp:tools").unwrap(),
        created_at: 1,
        expires_at: None,
        last_used_at: None,
    };
    redb.put_api_key(key.clone()).await.unwrap();
    let tags = redb.token_tags_now().unwrap();

    let pg = postgres_store(&pg_server::shared_url()).await;
    let export = redb.export().unwrap();
    let copied = pg.import(&export).await.unwrap();
    assert_eq!(
        (
            copied.grants,
            copied.access_tokens,
            copied.refresh_tokens,
            copied.codes
        ),
        (1, 2, 2, 1)
    );
    // Every kind of record answers the same through the trait.
    assert_eq!(
        pg.token_tags().await.unwrap(),
        tags,
        "the tag key came along"
    );
    assert!(pg
        .find_access(SecretHash::of("a1"), 10)
        .await
        .unwrap()
        .is_some());
    assert!(pg
        .find_access(SecretHash::of("a2"), 10)
        .await
        .unwrap()
        .is_some());
    assert!(pg
        .find_refresh(SecretHash::of("r2"), 10)
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        pg.rotate_refresh(SecretHash::of("r1"), &ClientId::new("c1"), tokens("x", "y"), 650)
            .await
            .unwrap(),
        Rotation::Retried { ref sealed } if sealed == "SEALED"
    ));
    assert!(matches!(
        pg.take_code(SecretHash::of("code"), 10).await.unwrap(),
        TakenCode::Fresh(_)
    ));
    assert!(matches!(
        pg.take_code(SecretHash::of("used"), 10).await.unwrap(),
        TakenCode::Replayed { .. }
    ));
    assert!(!pg.claim_once(SecretHash::of("claim"), 900).await.unwrap());
    assert_eq!(
        pg.get_consent("local:alice|c1").await.unwrap(),
        Some(consent)
    );
    assert_eq!(
        pg.list_users().await.unwrap(),
        redb.list_users().await.unwrap()
    );
    assert_eq!(
        pg.blocked().await.unwrap(),
        vec![("local:mallory".into(), 8)]
    );
    assert_eq!(
        pg.get_secret("identity_signing_keys").await.unwrap(),
        Some(b"keys".to_vec())
    );
    assert_eq!(pg.list_api_keys().await.unwrap(), vec![key]);
    assert_eq!(
        pg.list_clients().await.unwrap(),
        redb.list_clients().await.unwrap()
    );
    // A second import into the now full store is refused, changing nothing.
    let again = pg.import(&export).await;
    assert!(matches!(again, Err(StoreError::Backend(_))), "refused");
    assert_eq!(pg.stats().await.unwrap().grants, 1);
}

#[tokio::test]
async fn tls_to_the_database_is_verified_against_the_configured_authority() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let server =
        pg_server::PgServer::start_tls(&fixtures.join("server.pem"), &fixtures.join("server.key"));
    server.create_database("authgate");
    let settings = |url: String, ca_file: Option<std::path::PathBuf>| PgSettings {
        url,
        schema: "authgate".into(),
        pool_size: 2,
        ca_file,
    };
    // Trusting the test CA: the connection is TLS, and the store works over it.
    let store = PostgresStore::open(&settings(
        server.tls_url("authgate"),
        Some(fixtures.join("ca.pem")),
    ))
    .await
    .expect("opens over TLS");
    store.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    assert!(store
        .find_access(SecretHash::of("a1"), 10)
        .await
        .unwrap()
        .is_some());
    let encrypted: bool = store
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the connection is encrypted");
    // Without the CA the certificate is not trusted: refused, saying why.
    let untrusted = PostgresStore::open(&settings(server.tls_url("authgate"), None)).await;
    let err = untrusted
        .err()
        .expect("an unknown certificate authority is refused");
    assert!(format!("{err}").contains("TLS"), "{err}");
    // A CA file without a certificate in it is a configuration error.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let bad = PostgresStore::open(&settings(
        server.tls_url("authgate"),
        Some(empty.path().to_path_buf()),
    ))
    .await;
    assert!(format!("{}", bad.err().unwrap()).contains("no PEM certificate"));
}
