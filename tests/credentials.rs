//! Upstream credentials set by ops: a static API key from the environment and an OAuth 2
//! client-credentials token, injected into what a recording upstream receives (never the
//! client's token), refreshed before expiry with one fetch however many requests wait, and a
//! token endpoint that fails answered 502 rather than sending the request without it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::flow::tokens_for;
use common::{start_echo_upstream, Gateway, TestConfig};
use serde_json::{json, Value};

#[derive(Default)]
struct TokenServer {
    fetches: AtomicUsize,
    failing: AtomicBool,
}

/// A token endpoint for client `svc` / `svc-secret` (HTTP Basic): each answer is a new token
/// `cc-<n>` living 4 s (refreshed after 2 s), given after 300 ms so that concurrent requests pile up behind it.
async fn token_server(state: Arc<TokenServer>) -> String {
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: http::HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let basic = headers["authorization"].to_str().unwrap_or_default().to_string();
                // base64("svc:svc-secret")
                assert_eq!(basic, "Basic c3ZjOnN2Yy1zZWNyZXQ=");
                assert!(body.contains("grant_type=client_credentials"), "{body}");
                assert!(body.contains("scope=repo+read"), "{body}");
                tokio::time::sleep(Duration::from_millis(300)).await;
                if state.failing.load(Ordering::SeqCst) {
                    return (http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": "server_error"})))
                        .into_response();
                }
                let n = state.fetches.fetch_add(1, Ordering::SeqCst) + 1;
                axum::Json(json!({"access_token": format!("cc-{n}"), "token_type": "Bearer", "expires_in": 4}))
                    .into_response()
            }
        }),
    );
    format!("http://{}/token", common::serve(app).await)
}

async fn seen(gw: &Gateway, path: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(token)
        .header("x-api-key", "the-client-s-own")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn upstream_credentials_are_injected_refreshed_single_flight_and_never_leak() {
    let echo = start_echo_upstream().await;
    let state = Arc::new(TokenServer::default());
    let token_url = token_server(state.clone()).await;
    let config = TestConfig::new()
        .scope("mcp")
        .upstream(
            "keyed",
            "/keyed",
            &echo,
            "scopes = [\"mcp\"]\n[upstream.credential]\nkind = \"header\"\nheader = \"X-Api-Key\"\nvalue = \"${UPSTREAM_API_KEY}\"",
        )
        .upstream(
            "service",
            "/service",
            &echo,
            &format!("scopes = [\"mcp\"]\n[upstream.credential]\nkind = \"client_credentials\"\ntoken_url = \"{token_url}\"\nclient_id = \"svc\"\nclient_secret = \"${{SVC_SECRET}}\"\nscopes = [\"repo\", \"read\"]"),
        )
        .alice("")
        .build();
    let gw = Gateway::start_with_env(
        &config,
        &[
            ("UPSTREAM_API_KEY", "key-from-the-environment"),
            ("SVC_SECRET", "svc-secret"),
        ],
    )
    .await;

    // A static key from the environment replaces whatever the client sent in its header.
    let (_, keyed) = tokens_for(&gw, &gw.url("/keyed")).await;
    let keyed = keyed["access_token"].as_str().unwrap().to_string();
    let (status, v) = seen(&gw, "/keyed", &keyed).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["headers"]["x-api-key"], "key-from-the-environment", "{v}");
    assert!(v["headers"].get("authorization").is_none(), "{v}");

    // Client credentials: 50 requests at once wait for one fetch, and each carries its token
    // (never the client's), with the caller's identity alongside.
    let (_, service) = tokens_for(&gw, &gw.url("/service")).await;
    let service = service["access_token"].as_str().unwrap().to_string();
    let burst = |expect: &'static str| {
        let gw_url = gw.url("/service");
        let token = service.clone();
        async move {
            let client = reqwest::Client::new();
            let calls = (0..50).map(|_| {
                let (client, url, token) = (client.clone(), gw_url.clone(), token.clone());
                async move {
                    let r = client
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.json::<Value>().await.unwrap()
                }
            });
            for v in futures_util::future::join_all(calls).await {
                assert_eq!(v["headers"]["authorization"], expect, "{v}");
                assert_eq!(v["headers"]["x-authgate-user"], "local:alice", "{v}");
            }
        }
    };
    burst("Bearer cc-1").await;
    assert_eq!(
        state.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for 50 requests"
    );

    // Refreshed before it expires (4 s lifetime, refreshed after 2 s): again one fetch.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    burst("Bearer cc-2").await;
    assert_eq!(state.fetches.load(Ordering::SeqCst), 2);

    // The token endpoint fails: the still-valid token is used meanwhile; once it has
    // expired, the request is answered 502 instead of going out without its credential.
    state.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, v) = seen(&gw, "/service", &service).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["headers"]["authorization"], "Bearer cc-2");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let r = reqwest::Client::new()
        .post(gw.url("/service"))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "upstream_unavailable", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("credentials"),
        "{v}"
    );

    // Neither secret reaches the logs.
    let logs = gw.logs();
    for secret in ["key-from-the-environment", "svc-secret", "cc-1", "cc-2"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}
