//! Several replicas on one PostgreSQL store (`[store] kind = "postgres"`): two real authgate
//! processes behind one public URL, as a load balancer would put them, on a real PostgreSQL
//! server (tests/common/postgres.rs). What one replica issues, the other honours; a refresh
//! token rotates once whichever replica sees it; a revocation on one is refused by the other
//! within the documented bound (1 s); a replica killed mid-flow loses nothing; and a database
//! outage degrades (cached tokens work, the rest answers 503) and recovers by itself.

mod common;

use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::flow::*;
use common::postgres::{shared_url, PgServer};
use common::{start_echo_upstream, Gateway, DEADLINE};
use reqwest::StatusCode;
use serde_json::Value;

/// The documented bound for a revocation on one replica to reach the others.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);

const SESSION_KEY: &str = "c2hhcmVkLWtleS1mb3ItZXZlcnktcmVwbGljYS0wMTI=";

fn replica_config(upstream: &str, database: &str) -> String {
    single_config(upstream)
        .raw(&format!(
            "[store]\nkind = \"postgres\"\nurl = \"{database}\"\npool_size = 4"
        ))
        .build()
}

/// One gateway on its embedded store, with the key its replicas will share.
fn single_config(upstream: &str) -> TestConfig {
    TestConfig::new()
        .auth(&format!("session_key = \"{SESSION_KEY}\""))
        .auth("refresh_grace = \"2s\"")
        .scope("mcp:tools")
        .upstream("mcp", "/mcp", upstream, "scopes = [\"mcp:tools\"]")
        .alice("")
}

/// Replica A on its own address, then replica B with A's public URL (one issuer and one
/// resource URL for both, as behind a load balancer).
async fn replicas(upstream: &str, database: &str) -> (Gateway, Gateway) {
    let config = replica_config(upstream, database);
    let a = Gateway::start(&config).await;
    let b_config = config.replace(
        "public_url = \"http://{addr}\"",
        &format!("public_url = \"http://{}\"", a.addr),
    );
    assert_ne!(b_config, config);
    let b = Gateway::start(&b_config).await;
    (a, b)
}

async fn call(gw: &Gateway, token: &str) -> StatusCode {
    reqwest::Client::new()
        .post(gw.url("/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap()
        .status()
}

async fn refresh(
    gw: &Gateway,
    client: &str,
    refresh_token: &str,
    resource: &str,
) -> (StatusCode, Value) {
    token(
        gw,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client),
            ("resource", resource),
        ],
    )
    .await
}

/// Polls until `gw` refuses `token`; how long that took.
async fn refused_within(gw: &Gateway, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        match call(gw, token).await {
            StatusCode::UNAUTHORIZED => return started.elapsed(),
            s => assert_eq!(s, 200),
        }
        assert!(started.elapsed() < DEADLINE, "never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn two_replicas_share_every_grant_and_token() {
    let upstream = start_echo_upstream().await;
    let (a, b) = replicas(&upstream, &shared_url()).await;
    let resource = a.url("/mcp");

    // Log in on A, call through B (its cache has never seen the token).
    let (client, t) = tokens_for(&a, &resource).await;
    let access = t["access_token"].as_str().unwrap();
    let refresh_token = t["refresh_token"].as_str().unwrap();
    assert_eq!(call(&b, access).await, 200);
    assert_eq!(call(&a, access).await, 200);

    // Refresh on A; the same refresh token replayed on B inside the grace window gets A's
    // answer (a retry, not reuse); after the window it is reuse: the grant is revoked on both.
    let (s, first) = refresh(&a, &client, refresh_token, &resource).await;
    assert_eq!(s, 200, "{first}");
    let (s, again) = refresh(&b, &client, refresh_token, &resource).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(
        again["access_token"], first["access_token"],
        "the same answer"
    );
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    let rotated_access = first["access_token"].as_str().unwrap();
    assert_eq!(call(&b, rotated_access).await, 200);
    assert_eq!(call(&a, rotated_access).await, 200);
    // (The window is counted in whole seconds: 2 s after a rotation within second N ends with N+2.)
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (s, reuse) = refresh(&b, &client, refresh_token, &resource).await;
    assert_eq!(
        (s, reuse["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let on_a = refused_within(&a, rotated_access).await;
    assert!(
        on_a < REVOCATION_BOUND,
        "A refused the reused family after {on_a:?}"
    );
    assert_eq!(call(&b, rotated_access).await, 401);

    // Revoke on B: A (which has the token cached) refuses it within the bound.
    let (client, t) = tokens_for(&a, &resource).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(call(&a, access).await, 200, "cached on A");
    let r = reqwest::Client::new()
        .post(b.url("/revoke"))
        .form(&[("token", access), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let on_a = refused_within(&a, access).await;
    assert!(
        on_a < REVOCATION_BOUND,
        "A refused a token revoked on B after {on_a:?}"
    );

    // One code redeemed on both replicas at once: exactly one answer has tokens.
    for _ in 0..3 {
        let client = public_client(&a).await;
        let code = code_for_client(&a, &client, &resource).await;
        let form = |gw: &Gateway| {
            let (code, client, resource, url) = (
                code.clone(),
                client.clone(),
                resource.clone(),
                gw.url("/token"),
            );
            async move {
                reqwest::Client::new()
                    .post(url)
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", code.as_str()),
                        ("code_verifier", VERIFIER),
                        ("client_id", client.as_str()),
                        ("redirect_uri", REDIRECT),
                        ("resource", resource.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (on_a, on_b) = tokio::join!(form(&a), form(&b));
        let ok = [on_a, on_b].iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "A answered {on_a}, B answered {on_b}");
    }
}

#[tokio::test]
async fn a_replica_killed_mid_flow_loses_nothing() {
    let upstream = start_echo_upstream().await;
    let (mut a, b) = replicas(&upstream, &shared_url()).await;
    let resource = a.url("/mcp");
    // Sign in and approve on A; A dies (kill -9) before the client redeems the code.
    let client = public_client(&a).await;
    let code = code_for_client(&a, &client, &resource).await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let (s, t) = token(
        &b,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("redirect_uri", REDIRECT),
            ("resource", &resource),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(call(&b, t["access_token"].as_str().unwrap()).await, 200);
    let (s, r) = refresh(&b, &client, t["refresh_token"].as_str().unwrap(), &resource).await;
    assert_eq!(s, 200, "{r}");
}

#[tokio::test]
async fn a_database_outage_degrades_and_recovers_by_itself() {
    let upstream = start_echo_upstream().await;
    let mut db = PgServer::start();
    db.create_database("authgate");
    let (a, b) = replicas(&upstream, &db.url("authgate")).await;
    let resource = a.url("/mcp");
    let (client, t) = tokens_for(&a, &resource).await;
    let cached = t["access_token"].as_str().unwrap();
    assert_eq!(call(&b, cached).await, 200, "B caches it");
    let (_, other) = tokens_for(&a, &resource).await;
    let not_cached_on_b = other["access_token"].as_str().unwrap();
    let ready = |gw: &Gateway| {
        let url = gw.url("/readyz");
        async move { reqwest::get(url).await.unwrap() }
    };
    assert_eq!(ready(&b).await.status(), 200);

    db.stop();
    // Tokens already cached keep working; a token B never saw cannot be checked: 503 with
    // Retry-After, not a 401 that would send the client back to sign in.
    assert_eq!(call(&b, cached).await, 200);
    let r = reqwest::Client::new()
        .post(b.url("/mcp"))
        .bearer_auth(not_cached_on_b)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    // Refreshes and registrations answer 503 temporarily_unavailable with Retry-After.
    let (s, v) = refresh(&b, &client, t["refresh_token"].as_str().unwrap(), &resource).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        ),
        "{v}"
    );
    let (s, v) = register(
        &b,
        serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(s, 503, "{v}");
    let r = ready(&b).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(!b.logs().contains("panicked"), "{}", b.logs());

    // The database returns: no restart, the replicas answer again.
    db.restart();
    let back = Instant::now();
    while ready(&b).await.status() != 200 {
        assert!(
            back.elapsed() < DEADLINE,
            "B never ready again:\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(call(&b, not_cached_on_b).await, 200);
    let (s, v) = refresh(&b, &client, t["refresh_token"].as_str().unwrap(), &resource).await;
    assert_eq!(s, 200, "{v}");
    // And B hears revocations again (its listener reconnected and flushed its cache).
    let r = reqwest::Client::new()
        .post(a.url("/revoke"))
        .form(&[("token", cached), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let on_b = refused_within(&b, cached).await;
    assert!(on_b < Duration::from_secs(12), "B refused after {on_b:?}");
}

#[tokio::test]
async fn one_gateway_grows_into_replicas_without_anyone_signing_in_again() {
    let upstream = start_echo_upstream().await;
    let single = Gateway::start(&single_config(&upstream).build()).await;
    let resource = single.url("/mcp");
    let (client, t) = tokens_for(&single, &resource).await;
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh_token = t["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(call(&single, &access).await, 200);

    // Stopped, copied, restarted on PostgreSQL at the same address (its public URL).
    let mut single = single;
    single.child.kill().unwrap();
    single.child.wait().unwrap();
    let database = shared_url();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["migrate-store", "--config"])
        .arg(single.config_path())
        .env("AUTHGATE_MIGRATE_TO", &database)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("\"grants\":1"), "{printed}");
    assert!(
        !printed.contains(&database),
        "the connection string is not printed"
    );
    let config = replica_config(&upstream, &database);
    let a = single.restart(&config, &[]).await;
    let b = Gateway::start(&config.replace(
        "public_url = \"http://{addr}\"",
        &format!("public_url = \"http://{}\"", a.addr),
    ))
    .await;

    // The token and the refresh token issued before work on both replicas.
    assert_eq!(call(&a, &access).await, 200);
    assert_eq!(call(&b, &access).await, 200);
    let (s, v) = refresh(&b, &client, &refresh_token, &resource).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(call(&a, v["access_token"].as_str().unwrap()).await, 200);
}
