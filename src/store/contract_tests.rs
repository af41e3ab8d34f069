//! The `Store` contract: every backend must pass these, run here on redb and on a real
//! PostgreSQL server (see `tests/common/postgres.rs`; `tests/run.sh` starts one for the run).
//! Backend-specific behaviour (files, schema versions, concurrency across processes) is
//! tested beside each backend.

use std::sync::Arc;

use super::*;
use crate::testing::terms;
use crate::vocab::RedirectUri;

#[path = "../../tests/common/postgres.rs"]
pub(super) mod pg_server;

/// Each contract test, once per backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_redb {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::super::RedbStore::open(dir.path()).unwrap();
                    super::$name(std::sync::Arc::new(store)).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::postgres().await).await
                }
            )*
        }
    };
}

/// A PostgreSQL store in a fresh, empty database.
pub(super) async fn postgres() -> Arc<dyn Store> {
    Arc::new(postgres_store(&pg_server::shared_url()).await)
}

pub(super) async fn postgres_store(url: &str) -> PostgresStore {
    PostgresStore::open(&PgSettings {
        url: url.to_string(),
        schema: "authgate".into(),
        pool_size: 8,
        ca_file: None,
    })
    .await
    .expect("the test database opens")
}

contract!(
    codes_are_single_use_and_replays_name_the_grant,
    rotation_and_reuse_revokes_the_family,
    revoking_tokens,
    sweep_removes_only_what_expired,
    grants_without_refresh_tokens_end_with_their_access_token,
    claims_succeed_once_until_they_expire,
    a_rotated_token_within_its_grace_window_gets_the_sealed_answer,
    registrations_that_never_got_a_grant_are_swept,
    times_past_any_database_range_are_kept,
);

pub(super) fn gid(id: &str) -> GrantId {
    GrantId::new(id)
}

pub(super) fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        grant_id: gid(id),
        terms: terms("c1"),
        created_at: 100,
        verified_at: 100,
        upstream_credential: None,
        refresh: true,
    }
}

pub(super) fn tokens(a: &str, r: &str) -> NewTokens {
    NewTokens {
        access: SecretHash::of(a),
        access_expires_at: 1000,
        refresh: Some(SecretHash::of(r)),
        refresh_expires_at: 5000,
        successor: None,
    }
}

pub(super) fn code(grant_id: &str, expires_at: u64) -> CodeRecord {
    CodeRecord {
        grant_id: gid(grant_id),
        terms: terms("c1"),
        redirect_uri: RedirectUri::parse_registered("http://127.0.0.1/cb", false).unwrap(),
        code_challenge: "x".into(),
        expires_at,
        upstream_credential: None,
    }
}

async fn codes_are_single_use_and_replays_name_the_grant(store: Arc<dyn Store>) {
    let s = store;
    let h = SecretHash::of("code-1");
    s.put_code(h, code("g1", 200)).await.unwrap();
    assert!(
        matches!(s.take_code(h, 150).await.unwrap(), TakenCode::Fresh(c) if c.grant_id == "g1")
    );
    assert!(
        matches!(s.take_code(h, 150).await.unwrap(), TakenCode::Replayed { grant_id } if grant_id == "g1")
    );
    assert!(matches!(
        s.take_code(SecretHash::of("nope"), 150).await.unwrap(),
        TakenCode::Unknown
    ));
    let expired = SecretHash::of("code-2");
    s.put_code(expired, code("g2", 200)).await.unwrap();
    assert!(matches!(
        s.take_code(expired, 200).await.unwrap(),
        TakenCode::Unknown
    ));
}

async fn rotation_and_reuse_revokes_the_family(store: Arc<dyn Store>) {
    let s = Cached::new(store);
    s.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    assert!(s
        .authenticate(SecretHash::of("a1"), 500)
        .await
        .unwrap()
        .is_some());
    assert!(
        s.authenticate(SecretHash::of("a1"), 1000)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );

    // Another client cannot use it, and the attempt changes nothing.
    let other = s
        .rotate_refresh(
            SecretHash::of("r1"),
            &ClientId::new("c2"),
            tokens("x", "y"),
            600,
        )
        .await
        .unwrap();
    assert!(matches!(other, Rotation::Invalid));
    let rotated = s
        .rotate_refresh(
            SecretHash::of("r1"),
            &ClientId::new("c1"),
            tokens("a2", "r2"),
            600,
        )
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated(g) if g.grant_id == "g1"));
    assert!(s
        .authenticate(SecretHash::of("a2"), 600)
        .await
        .unwrap()
        .is_some());
    assert!(
        s.find_refresh(SecretHash::of("r1"), 600)
            .await
            .unwrap()
            .is_none(),
        "rotated away"
    );
    assert!(s
        .find_refresh(SecretHash::of("r2"), 600)
        .await
        .unwrap()
        .is_some());

    // r1 again: reuse → the whole family is gone, from the cache too.
    let reused = s
        .rotate_refresh(
            SecretHash::of("r1"),
            &ClientId::new("c1"),
            tokens("a3", "r3"),
            700,
        )
        .await
        .unwrap();
    assert!(matches!(reused, Rotation::Reused { ref grant_id, .. } if grant_id == "g1"));
    for a in ["a1", "a2", "a3"] {
        assert!(
            s.authenticate(SecretHash::of(a), 700)
                .await
                .unwrap()
                .is_none(),
            "{a}"
        );
    }
    assert!(matches!(
        s.rotate_refresh(
            SecretHash::of("r2"),
            &ClientId::new("c1"),
            tokens("a4", "r4"),
            700
        )
        .await
        .unwrap(),
        Rotation::Invalid
    ));
}

async fn revoking_tokens(store: Arc<dyn Store>) {
    let s = Cached::new(store);
    s.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    s.issue(grant("g2"), tokens("b1", "q1")).await.unwrap();
    assert!(s
        .authenticate(SecretHash::of("a1"), 1)
        .await
        .unwrap()
        .is_some());
    // Access token alone.
    s.revoke_token(SecretHash::of("a1")).await.unwrap();
    assert!(s
        .authenticate(SecretHash::of("a1"), 1)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .find_refresh(SecretHash::of("r1"), 1)
        .await
        .unwrap()
        .is_some());
    // Refresh token: the whole grant.
    assert!(s
        .authenticate(SecretHash::of("b1"), 1)
        .await
        .unwrap()
        .is_some());
    let removed = s.revoke_token(SecretHash::of("q1")).await.unwrap();
    assert_eq!(removed, vec![SecretHash::of("b1")]);
    assert!(s
        .authenticate(SecretHash::of("b1"), 1)
        .await
        .unwrap()
        .is_none());
    // Unknown tokens are fine.
    assert!(s
        .revoke_token(SecretHash::of("zzz"))
        .await
        .unwrap()
        .is_empty());
}

async fn sweep_removes_only_what_expired(store: Arc<dyn Store>) {
    let s = Cached::new(store);
    // g1: access expires at 1000, refresh at 5000 (see `tokens`).
    s.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    s.put_code(SecretHash::of("c-old"), code("g8", 50))
        .await
        .unwrap();
    s.put_code(SecretHash::of("c-new"), code("g9", 5000))
        .await
        .unwrap();
    assert!(s
        .authenticate(SecretHash::of("a1"), 10)
        .await
        .unwrap()
        .is_some());

    let swept = s.sweep(1500, 0).await.unwrap();
    assert_eq!(
        swept,
        Swept {
            codes: 1,
            access_tokens: 1,
            refresh_tokens: 0,
            grants: 0,
            clients: 0
        }
    );
    assert!(
        s.find_refresh(SecretHash::of("r1"), 1500)
            .await
            .unwrap()
            .is_some(),
        "refresh still valid"
    );
    assert!(matches!(
        s.take_code(SecretHash::of("c-new"), 1500).await.unwrap(),
        TakenCode::Fresh(_)
    ));

    let swept = s.sweep(6000, 0).await.unwrap();
    assert_eq!(swept.refresh_tokens, 1);
    assert_eq!(
        swept.grants, 1,
        "the grant went with its last refresh token"
    );
    assert!(s.revoke_grant(&gid("g1")).await.unwrap().is_empty());
}

async fn grants_without_refresh_tokens_end_with_their_access_token(store: Arc<dyn Store>) {
    let s = Cached::new(store);
    let g = GrantRecord {
        refresh: false,
        ..grant("g2")
    };
    let t = NewTokens {
        refresh: None,
        ..tokens("a2", "unused")
    };
    s.issue(g, t).await.unwrap();
    assert!(s
        .find_refresh(SecretHash::of("unused"), 10)
        .await
        .unwrap()
        .is_none());
    let swept = s.sweep(500, 0).await.unwrap();
    assert_eq!(swept.grants, 0, "the access token is still valid");
    let swept = s.sweep(1500, 0).await.unwrap();
    assert_eq!((swept.access_tokens, swept.grants), (1, 1));
}

async fn claims_succeed_once_until_they_expire(store: Arc<dyn Store>) {
    let s = store;
    let k = SecretHash::of("flow\u{1f}abc");
    assert!(s.claim_once(k, 600).await.unwrap());
    assert!(!s.claim_once(k, 600).await.unwrap());
    assert!(s.claim_once(SecretHash::of("other"), 600).await.unwrap());
    s.sweep(599, 0).await.unwrap();
    assert!(
        !s.claim_once(k, 600).await.unwrap(),
        "kept until it expires"
    );
    s.sweep(601, 0).await.unwrap();
    assert!(s.claim_once(k, 700).await.unwrap(), "forgotten after");
}

async fn a_rotated_token_within_its_grace_window_gets_the_sealed_answer(store: Arc<dyn Store>) {
    let s = Cached::new(store);
    s.issue(grant("g1"), tokens("a1", "r1")).await.unwrap();
    let mut next = tokens("a2", "r2");
    next.successor = Some(SealedSuccessor {
        sealed: "SEALED".into(),
        until: 630,
    });
    assert!(matches!(
        s.rotate_refresh(SecretHash::of("r1"), &ClientId::new("c1"), next, 600)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    // Within the window: the same answer, nothing revoked; another client gets nothing.
    let again = s
        .rotate_refresh(
            SecretHash::of("r1"),
            &ClientId::new("c1"),
            tokens("a3", "r3"),
            630,
        )
        .await
        .unwrap();
    assert!(matches!(again, Rotation::Retried { ref sealed } if sealed == "SEALED"));
    let other = s
        .rotate_refresh(
            SecretHash::of("r1"),
            &ClientId::new("c2"),
            tokens("a3", "r3"),
            610,
        )
        .await
        .unwrap();
    assert!(matches!(other, Rotation::Invalid));
    assert!(s
        .authenticate(SecretHash::of("a2"), 630)
        .await
        .unwrap()
        .is_some());
    assert!(
        s.authenticate(SecretHash::of("a3"), 630)
            .await
            .unwrap()
            .is_none(),
        "nothing new minted"
    );
    // The sweep drops the sealed answer once the window is over...
    s.sweep(640, 0).await.unwrap();
    // ...and reuse after the window revokes the family.
    let late = s
        .rotate_refresh(
            SecretHash::of("r1"),
            &ClientId::new("c1"),
            tokens("a4", "r4"),
            641,
        )
        .await
        .unwrap();
    assert!(matches!(late, Rotation::Reused { .. }));
    assert!(s
        .authenticate(SecretHash::of("a2"), 641)
        .await
        .unwrap()
        .is_none());
}

pub(super) fn client(id: &str, created_at: u64) -> ClientRecord {
    ClientRecord {
        client_id: ClientId::new(id),
        client_name: None,
        redirect_uris: vec![RedirectUri::parse_registered("http://127.0.0.1/cb", false).unwrap()],
        secret_sha256: None,
        token_endpoint_auth_method: "none".into(),
        grant_types: vec![],
        application_type: None,
        created_at,
        first_used_at: None,
    }
}

async fn registrations_that_never_got_a_grant_are_swept(store: Arc<dyn Store>) {
    let s = store;
    s.put_client(client("c1", 10)).await.unwrap(); // used below
    s.put_client(client("old", 10)).await.unwrap();
    s.put_client(client("new", 500)).await.unwrap();
    s.issue(grant("g1"), tokens("a1", "r1")).await.unwrap(); // grant for c1
    let swept = s.sweep(600, 100).await.unwrap();
    assert_eq!(swept.clients, 1);
    assert!(s
        .get_client(&ClientId::new("c1"))
        .await
        .unwrap()
        .unwrap()
        .first_used_at
        .is_some());
    assert!(s.get_client(&ClientId::new("old")).await.unwrap().is_none());
    assert!(s.get_client(&ClientId::new("new")).await.unwrap().is_some());
}

async fn times_past_any_database_range_are_kept(store: Arc<dyn Store>) {
    let mut t = tokens("forever", "forever-r");
    t.access_expires_at = u64::MAX;
    store.issue(grant("g1"), t).await.unwrap();
    let found = store
        .find_access(SecretHash::of("forever"), 1 << 40)
        .await
        .unwrap();
    assert!(
        found.is_some(),
        "an access token that never expires is never expired"
    );
    assert_eq!(store.sweep(1 << 40, 0).await.unwrap().access_tokens, 0);
}
