//! Upstream OAuth discovered automatically (`kind = "upstream_oauth"`): the upstream is a real
//! MCP server (the TypeScript SDK) protected by its own authorization server (a real
//! `oidc-provider` with dynamic registration, RFC 8707 JWT access tokens and refresh-token
//! rotation with reuse detection). authgate gets nothing but the upstream's URL: it finds the
//! authorization server from the upstream's 401, registers itself, takes each person through
//! that server once inside their MCP authorization (headless Chromium), and calls the
//! upstream with each person's own token, refreshing rotating tokens one at a time.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ChildGuard, Gateway, TestConfig};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-for-the-upstream-oauth-tests";
const ACCESS_TTL: u64 = 4;

/// The upstream's authorization server: DCR open, JWT access tokens for `resource`,
/// rotating refresh tokens.
fn start_authorization_server(listener: TcpListener, resource: &str) -> ChildGuard {
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let mut cmd = Command::new("node");
    cmd.arg(common::e2e_dir().join("oidc-provider.mjs"))
        .args(["--issuer", &issuer])
        .args(["--client-id", "unused", "--client-secret", "unused"])
        .args(["--redirect-uri", "http://127.0.0.1/unused"])
        .args(["--access-ttl", &ACCESS_TTL.to_string()])
        .args(["--resource", resource, "--registration", "--rotate"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::spawn_listening(cmd, listener)
}

fn start_protected_server(listener: TcpListener, issuer: &str, resource: &str) -> ChildGuard {
    let mut cmd = Command::new("node");
    cmd.arg(common::e2e_dir().join("protected-mcp-server.mjs"))
        .args(["--issuer", issuer, "--resource", resource])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::spawn_listening(cmd, listener)
}

/// A JSON-RPC call through the gateway; the result (from JSON or an SSE `data:` line).
async fn rpc(gw: &Gateway, token: &str, method: &str, params: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(gw.url("/remote"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim()
        .to_string();
    (
        status,
        serde_json::from_str(&body).unwrap_or(json!({"raw": text})),
    )
}

/// Who the upstream says the caller is: its `whoami` tool, called through the gateway.
async fn whoami(gw: &Gateway, token: &str) -> Value {
    let (status, v) = rpc(
        gw,
        token,
        "tools/call",
        json!({"name": "whoami", "arguments": {}}),
    )
    .await;
    assert_eq!(status, 200, "{v}\n{}", gw.logs());
    let text = v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|_| panic!("{v}"))
}

async fn authorize(gw: &Gateway, user: &str, login: &str) -> (String, Vec<String>) {
    let fill = json!({"username": user, "password": "pw", "login": login});
    let (tokens, trail) = common::flow::authorize_in_chromium(gw, "/remote", fill).await;
    (tokens["access_token"].as_str().unwrap().to_string(), trail)
}

async fn fetches(gw: &Gateway) -> f64 {
    let labels = [("upstream", "remote"), ("result", "ok")];
    let scraped = common::scrape(gw).await;
    common::metric(
        &scraped,
        "authgate_upstream_credential_fetches_total",
        &labels,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_protected_mcp_server_needs_nothing_but_its_url() {
    let as_listener = common::listener();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let mcp_listener = common::listener();
    let resource = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());
    let as_addr = as_listener.local_addr().unwrap();
    let mut auth_server = start_authorization_server(as_listener, &resource);
    let _mcp = start_protected_server(mcp_listener, &issuer, &resource);
    common::wait_http_ok(
        &format!("{issuer}/.well-known/openid-configuration"),
        "oidc-provider",
    )
    .await;
    let prm = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        resource.trim_end_matches("/mcp")
    );
    common::wait_http_ok(&prm, "the protected MCP server").await;

    let config = TestConfig::new()
        .scope("mcp:tools")
        .upstream(
            "remote",
            "/remote",
            &resource,
            "scopes = [\"mcp:tools\"]\n[upstream.credential]\nkind = \"upstream_oauth\"",
        )
        .alice(&format!(
            "\n[[provider.users]]\nusername = \"bob\"\npassword_hash = \"{}\"",
            common::config::PW_HASH
        ))
        .raw(&format!(
            "[admin]\nlisten = \"{{admin}}\"\ntoken = \"{ADMIN_TOKEN}\""
        ))
        .build();
    let gw = Gateway::start(&config).await;
    // What an authorization server that takes client ID metadata documents would fetch
    // (oidc-provider takes them on https only, so it registers authgate by DCR here).
    let doc = common::get_json(&gw.url("/.well-known/authgate-client.json")).await;
    assert_eq!(
        doc["client_id"],
        gw.url("/.well-known/authgate-client.json")
    );
    assert_eq!(doc["redirect_uris"], json!([gw.url("/connect/callback")]));
    assert_eq!(doc["token_endpoint_auth_method"], "none");

    // Alice: authgate's sign-in, then the upstream's own authorization server (found from the
    // upstream, authgate registered there), then authgate's consent.
    let (alice, trail) = authorize(&gw, "alice", "alice-remote").await;
    assert!(trail.iter().any(|u| u.starts_with(&issuer)), "{trail:?}");
    assert!(
        gw.logs()
            .contains("registered at the upstream's authorization server"),
        "{}",
        gw.logs()
    );
    let (status, init) = rpc(
        &gw,
        &alice,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    )
    .await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(
        init["result"]["serverInfo"]["name"], "protected-whoami",
        "{init}"
    );
    let me = whoami(&gw, &alice).await;
    assert_eq!(me["sub"], "alice-remote", "{me}");
    let first = me["token"].as_str().unwrap().to_string();
    assert!(
        !first.contains(&alice),
        "the upstream never sees authgate's token"
    );

    // Bob gets his own.
    let (bob, _) = authorize(&gw, "bob", "bob-remote").await;
    let him = whoami(&gw, &bob).await;
    assert_eq!(him["sub"], "bob-remote", "{him}");
    assert_eq!(
        him["client_id"], me["client_id"],
        "one registration for the upstream"
    );

    // Rotating refresh tokens: past half the token's life, 50 calls at once make one
    // refresh. Two would present the same refresh token twice, and the authorization
    // server would revoke the whole grant (reuse detection).
    tokio::time::sleep(Duration::from_millis(ACCESS_TTL * 1000 / 2 + 500)).await;
    let before = fetches(&gw).await;
    let calls = (0..50).map(|_| whoami(&gw, &alice));
    let seen = futures_util::future::join_all(calls).await;
    let mut tokens: Vec<&str> = seen.iter().map(|v| v["token"].as_str().unwrap()).collect();
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_ne!(tokens[0], first);
    assert_eq!(fetches(&gw).await - before, 1.0);
    // And again with the rotated refresh token.
    tokio::time::sleep(Duration::from_millis(ACCESS_TTL * 1000 / 2 + 500)).await;
    let again = whoami(&gw, &alice).await;
    assert_eq!(again["sub"], "alice-remote");
    assert_ne!(again["token"].as_str().unwrap(), tokens[0]);

    // Nothing of it in clear in the store.
    let store = common::stored_text(&gw).into_bytes();
    for needle in [&first, tokens[0]] {
        assert!(!store.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }

    // A restart keeps the registration (no second one) and the connections.
    let registrations = |gw: &Gateway| {
        gw.logs()
            .matches("registered at the upstream's authorization server")
            .count()
    };
    assert_eq!(registrations(&gw), 1);
    let gw = gw.restart(&config, &[]).await;
    let after = whoami(&gw, &alice).await;
    assert_eq!(after["sub"], "alice-remote");
    assert_eq!(after["client_id"], me["client_id"]);
    assert_eq!(registrations(&gw), 1, "{}", gw.logs());

    // The upstream's server forgets everything (restarted on its in-memory store): the next
    // refresh is refused as an unknown client, so authgate drops its registration and sends
    // Alice's client a 401; her next authorization registers again and connects again.
    drop(auth_server);
    auth_server = start_authorization_server(TcpListener::bind(as_addr).unwrap(), &resource);
    common::wait_http_ok(
        &format!("{issuer}/.well-known/openid-configuration"),
        "oidc-provider again",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(ACCESS_TTL * 1000 / 2 + 500)).await;
    let (status, refused) = rpc(
        &gw,
        &alice,
        "tools/call",
        json!({"name": "whoami", "arguments": {}}),
    )
    .await;
    assert_eq!(status, 401, "{refused}");
    let (alice, trail) = authorize(&gw, "alice", "alice-remote").await;
    assert!(trail.iter().any(|u| u.starts_with(&issuer)), "{trail:?}");
    assert_eq!(registrations(&gw), 2, "{}", gw.logs());
    let back = whoami(&gw, &alice).await;
    assert_eq!(back["sub"], "alice-remote");
    assert_ne!(back["client_id"], me["client_id"], "a new registration");
    drop(auth_server);
}
