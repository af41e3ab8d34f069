//! The token endpoint's rules (RFC 6749 §4.1.3, §5.2, §6; RFC 7636 §4.6; RFC 8707; OAuth 2.1
//! refresh rotation) on a temporary store with a fixed clock.

use super::*;
use crate::oauth::flow::{issue_code, Flow, Outcome};
use crate::testing::{authority, config, identity, TestAuthority, VERIFIER};
use crate::vocab::{ClientId, ErrorCode};

const NOW: u64 = 10_000;

fn client(id: &str, refresh_allowed: bool) -> ClientInfo {
    ClientInfo {
        client_id: ClientId::new(id),
        name: id.into(),
        redirect_uris: vec![],
        secret: None,
        allowed_scopes: None,
        allowed_upstreams: None,
        trusted: false,
        refresh_allowed,
        document_host: None,
    }
}

fn flow(id: &str) -> Flow {
    crate::testing::flow(id, NOW + 600)
}

async fn code(auth: &TestAuthority, cfg: &Config, flow_id: &str) -> Secret {
    match issue_code(auth, cfg, &flow(flow_id), &identity(), None, NOW).await {
        Outcome::Code { code, .. } => Secret::new(code),
        other => panic!("{other:?}"),
    }
}

const AS_SENT: Presented<'static> = Presented {
    redirect_uri: Some("http://127.0.0.1:5000/cb"),
    resource: Some("http://127.0.0.1:8080/mcp"),
};

fn body(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

async fn tokens(auth: &TestAuthority, cfg: &Config, refresh: bool) -> serde_json::Value {
    let c = code(auth, cfg, "f").await;
    let v = Secret::new(VERIFIER.into());
    let out = exchange_code(auth, cfg, &client("c1", refresh), &c, &v, AS_SENT, NOW).await;
    body(&out.unwrap())
}

#[test]
fn requests_are_read_on_their_grant_type() {
    let parse = |pairs: &[(&str, &str)]| {
        TokenRequest::parse(&crate::testing::post_form("/token", pairs).form())
    };
    assert!(matches!(
        parse(&[
            ("grant_type", "authorization_code"),
            ("code", "c"),
            ("code_verifier", "v")
        ]),
        Ok(TokenRequest::AuthorizationCode {
            redirect_uri: None,
            ..
        })
    ));
    assert!(matches!(
        parse(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "r"),
            ("scope", "a")
        ]),
        Ok(TokenRequest::RefreshToken { .. })
    ));
    for (pairs, want) in [
        (
            vec![("grant_type", "password")],
            ErrorCode::UnsupportedGrantType,
        ),
        (
            vec![("grant_type", "client_credentials")],
            ErrorCode::UnsupportedGrantType,
        ),
        (vec![], ErrorCode::InvalidRequest),
        (
            vec![("grant_type", "authorization_code"), ("code", "c")],
            ErrorCode::InvalidRequest,
        ),
        (
            vec![("grant_type", "refresh_token")],
            ErrorCode::InvalidRequest,
        ),
    ] {
        assert_eq!(parse(&pairs).unwrap_err().code, want, "{pairs:?}");
    }
}

#[tokio::test]
async fn a_code_is_exchanged_once_for_its_client_redirect_verifier_and_resource() {
    let auth = authority();
    let cfg = config("");
    let v = Secret::new(VERIFIER.into());
    let c1 = client("c1", true);
    let bad = |redirect_uri, resource| Presented {
        redirect_uri,
        resource,
    };
    for (who, presented, verifier, want) in [
        (
            client("c2", true),
            AS_SENT,
            VERIFIER,
            ErrorCode::InvalidGrant,
        ),
        (
            c1.clone(),
            bad(Some("http://127.0.0.1:5000/other"), None),
            VERIFIER,
            ErrorCode::InvalidGrant,
        ),
        (
            c1.clone(),
            AS_SENT,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
            ErrorCode::InvalidGrant,
        ),
        (
            c1.clone(),
            bad(None, Some("http://127.0.0.1:8080/other")),
            VERIFIER,
            ErrorCode::InvalidTarget,
        ),
    ] {
        // Each refused attempt used up its code: a fresh one per case.
        let c = code(&auth, &cfg, &format!("f-{}", crate::crypto::random_id())).await;
        let err = exchange_code(
            &auth,
            &cfg,
            &who,
            &c,
            &Secret::new(verifier.into()),
            presented,
            NOW,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, want, "{presented:?}");
    }
    let c = code(&auth, &cfg, "ok").await;
    let t = body(
        &exchange_code(&auth, &cfg, &c1, &c, &v, bad(None, None), NOW)
            .await
            .unwrap(),
    );
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "mcp:tools");
    let access = SecretHash::of(t["access_token"].as_str().unwrap());
    assert!(auth.store.find_access(access, NOW).await.unwrap().is_some());
    // The same code again: refused, and what it issued is revoked.
    let err = exchange_code(&auth, &cfg, &c1, &c, &v, AS_SENT, NOW)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert!(err.description.contains("already used"));
    assert!(auth.store.find_access(access, NOW).await.unwrap().is_none());
    // An expired code.
    let late = code(&auth, &cfg, "late").await;
    let err = exchange_code(&auth, &cfg, &c1, &late, &v, AS_SENT, NOW + 121)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn refresh_rotates_keeps_scope_and_resource_and_detects_reuse() {
    let auth = authority();
    let cfg = config("[auth]\nrefresh_grace = \"30s\"");
    let t = tokens(&auth, &cfg, true).await;
    let c1 = client("c1", true);
    let rt1 = Secret::new(t["refresh_token"].as_str().unwrap().to_string());
    let refresh_at =
        |rt: &Secret, scope: Option<&'static str>, resource: Option<&'static str>, now| {
            let (auth, cfg, c1, rt) = (&auth, &cfg, &c1, rt.clone());
            async move { refresh(auth, cfg, c1, &rt, scope, resource, now).await }
        };
    // Refused requests change nothing.
    let e = refresh_at(&rt1, Some("mcp:tools mcp:admin"), None, NOW)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidScope);
    let e = refresh_at(&rt1, None, Some("http://127.0.0.1:8080/b"), NOW)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidTarget);
    let e = refresh(&auth, &cfg, &client("c2", true), &rt1, None, None, NOW)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    // A narrower scope and OIDC extras are fine.
    let first = refresh_at(&rt1, Some("mcp:tools offline_access"), None, NOW)
        .await
        .unwrap();
    let t2 = body(&first);
    assert_ne!(t2["refresh_token"], t["refresh_token"], "rotated");
    // A retry inside the grace window gets the very same answer.
    assert_eq!(refresh_at(&rt1, None, None, NOW + 30).await.unwrap(), first);
    // After it, reuse revokes the grant, the successor included.
    let e = refresh_at(&rt1, None, None, NOW + 31).await.unwrap_err();
    assert!(e.description.contains("already used"), "{e:?}");
    let rt2 = Secret::new(t2["refresh_token"].as_str().unwrap().to_string());
    assert_eq!(
        refresh_at(&rt2, None, None, NOW + 32)
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn clients_without_the_refresh_grant_get_no_refresh_token_and_cannot_refresh() {
    let auth = authority();
    let cfg = config("");
    let t = tokens(&auth, &cfg, false).await;
    assert!(t.get("refresh_token").is_none(), "{t}");
    let e = refresh(
        &auth,
        &cfg,
        &client("c1", false),
        &Secret::new("ag_rt_x".into()),
        None,
        None,
        NOW,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnauthorizedClient);
}
