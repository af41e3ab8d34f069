//! Each person's own account at an upstream's service (`kind = "user_account"`): connected
//! once, during their MCP authorization, in a real browser (headless Chromium) at a real
//! OAuth server (`oidc-provider`), between authgate's sign-in and its consent page; sent on
//! that person's requests only, refreshed before it expires (one refresh however many
//! requests wait), kept sealed in the store; and a connection the service no longer honours
//! answers the client with a 401 that leads the person back through it.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::flow;
use common::{ChildGuard, Gateway, TestConfig};
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-for-the-user-account-tests";
/// How long the service's access tokens live: authgate refreshes them after half of it.
const ACCESS_TTL: u64 = 4;

/// The service's OAuth server: oidc-provider, its access tokens living [`ACCESS_TTL`].
fn start_service(listener: TcpListener, callback: &str) -> ChildGuard {
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let mut cmd = Command::new("node");
    cmd.arg(common::e2e_dir().join("oidc-provider.mjs"))
        .args(["--issuer", &issuer])
        .args(["--client-id", "cal-client", "--client-secret", "cal-secret"])
        .args(["--redirect-uri", callback])
        .args(["--access-ttl", &ACCESS_TTL.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::spawn_listening(cmd, listener)
}

/// One authorization in a fresh browser: signs in at authgate as `user` ("pw"), at the
/// service as `svc_login` when asked, approves; the client's token answer and every URL the
/// browser went to (redirects included), in order.
async fn authorize(gw: &Gateway, user: &str, svc_login: &str) -> (Value, Vec<String>) {
    let fill = serde_json::json!({"username": user, "password": "pw", "login": svc_login});
    flow::authorize_in_chromium(gw, "/cal", fill).await
}

/// A call with `token`: the status, the upstream's view of the request, the challenge.
async fn call(gw: &Gateway, token: &str) -> (u16, Value, String) {
    let r = reqwest::Client::new()
        .post(gw.url("/cal"))
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, r.json().await.unwrap_or_default(), challenge)
}

/// The service's token the upstream received, checked to be the service's (not authgate's).
fn service_token(seen: &Value, client_token: &str) -> String {
    let sent = seen["headers"]["authorization"]
        .as_str()
        .unwrap_or_default();
    assert!(sent.starts_with("Bearer "), "{seen}");
    assert!(!seen.to_string().contains(client_token), "{seen}");
    sent[7..].to_string()
}

/// Who the service says a token belongs to (its userinfo endpoint).
async fn service_user(issuer: &str, token: &str) -> String {
    let v: Value = reqwest::Client::new()
        .get(format!("{issuer}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["sub"].as_str().unwrap_or_default().to_string()
}

async fn fetches(gw: &Gateway) -> f64 {
    let labels = [("upstream", "cal"), ("result", "ok")];
    let scraped = common::scrape(gw).await;
    common::metric(
        &scraped,
        "authgate_upstream_credential_fetches_total",
        &labels,
    )
}

fn via_service(trail: &[String], issuer: &str) -> bool {
    trail.iter().any(|u| u.starts_with(issuer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_person_connects_their_own_account_once_and_gets_only_their_own() {
    let echo = common::start_echo_upstream().await;
    let svc_listener = common::listener();
    let svc_addr: SocketAddr = svc_listener.local_addr().unwrap();
    let issuer = format!("http://{svc_addr}");
    let (addr, guard) = common::reserve_addr();
    let callback = format!("http://{addr}/connect/callback");
    let mut service = start_service(svc_listener, &callback);
    let config = TestConfig::new()
        .scope("mcp:tools")
        .upstream(
            "cal",
            "/cal",
            &echo,
            &format!("scopes = [\"mcp:tools\"]\n[upstream.credential]\nkind = \"user_account\"\nauthorize_url = \"{issuer}/auth\"\ntoken_url = \"{issuer}/token\"\nclient_id = \"cal-client\"\nclient_secret = \"${{CAL_SECRET}}\"\nscopes = [\"openid\", \"email\"]"),
        )
        .alice(&format!(
            "\n[[provider.users]]\nusername = \"bob\"\npassword_hash = \"{}\"",
            common::config::PW_HASH
        ))
        .raw(&format!("[admin]\nlisten = \"{{admin}}\"\ntoken = \"{ADMIN_TOKEN}\""))
        .build();
    let gw = Gateway::start_at(
        addr,
        guard,
        tempfile::tempdir().unwrap(),
        &config,
        &[("CAL_SECRET", "cal-secret")],
    )
    .await;

    // Alice's first authorization goes through the service, after authgate's sign-in and
    // before its consent page: one sign-in as far as the client can tell.
    let (alice, trail) = authorize(&gw, "alice", "alice-svc").await;
    let at = |p: &str| trail.iter().position(|u| u.starts_with(p));
    let (login, svc, consent) = (
        at(&gw.url("/login/local")),
        at(&issuer),
        at(&gw.url("/consent")),
    );
    assert!(
        login < svc && svc < consent && login.is_some() && consent.is_some(),
        "{trail:?}"
    );
    let alice_token = alice["access_token"].as_str().unwrap().to_string();

    // Her requests carry her account's token at the service, never the client's.
    let (status, seen, _) = call(&gw, &alice_token).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["headers"]["x-authgate-user"], "local:alice", "{seen}");
    let alice_svc = service_token(&seen, &alice_token);
    assert_eq!(service_user(&issuer, &alice_svc).await, "alice-svc");

    // Bob connects his own and gets his own.
    let (bob, trail) = authorize(&gw, "bob", "bob-svc").await;
    assert!(via_service(&trail, &issuer), "{trail:?}");
    let bob_token = bob["access_token"].as_str().unwrap().to_string();
    let (status, seen, _) = call(&gw, &bob_token).await;
    assert_eq!(status, 200, "{seen}");
    let bob_svc = service_token(&seen, &bob_token);
    assert_ne!(bob_svc, alice_svc);
    assert_eq!(service_user(&issuer, &bob_svc).await, "bob-svc");

    // Operators see who connected, and can disconnect one person.
    let admin = |args: &[&str]| common::admin_cli(&gw, ADMIN_TOKEN, args);
    let (ok, out, err) = admin(&["admin", "connections"]);
    assert!(ok, "{err}");
    for (person, account) in [("local:alice", "alice-svc"), ("local:bob", "bob-svc")] {
        let row = out.lines().find(|l| l.contains(person)).unwrap_or_default();
        assert!(
            row.contains("cal") && row.contains(&format!("connected as {account}@example.test")),
            "{out}"
        );
    }
    let (ok, _, err) = admin(&["admin", "disconnect", "cal", "--person", "local:bob"]);
    assert!(ok, "{err}");
    let (status, _, challenge) = call(&gw, &bob_token).await;
    assert_eq!(status, 401, "{challenge}");
    let (_, out, _) = admin(&["admin", "connections"]);
    assert!(
        !out.contains("local:bob") && out.contains("local:alice"),
        "{out}"
    );

    // Connected once: Alice's next authorization (another client, a new browser) signs in at
    // authgate and goes straight to consent.
    let (again, trail) = authorize(&gw, "alice", "never-asked").await;
    assert!(!via_service(&trail, &issuer), "{trail:?}");
    let (status, seen, _) = call(&gw, again["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let svc_token = service_token(&seen, &alice_token);
    assert_eq!(service_user(&issuer, &svc_token).await, "alice-svc");

    // Past half its lifetime her service token is refreshed: 50 requests at once, one
    // refresh, every one of them sent with the new token.
    tokio::time::sleep(Duration::from_millis(ACCESS_TTL * 1000 / 2 + 500)).await;
    let before = fetches(&gw).await;
    let calls = (0..50).map(|_| {
        let (gw, token) = (&gw, alice_token.clone());
        async move { call(gw, &token).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut sent: Vec<String> = answers
        .iter()
        .map(|(s, seen, _)| {
            assert_eq!(*s, 200, "{seen}");
            service_token(seen, &alice_token)
        })
        .collect();
    sent.dedup();
    assert_eq!(sent.len(), 1, "one token for all 50: {sent:?}");
    assert_ne!(sent[0], svc_token, "refreshed before it expired");
    assert_eq!(service_user(&issuer, &sent[0]).await, "alice-svc");
    assert_eq!(
        fetches(&gw).await - before,
        1.0,
        "one refresh for 50 requests"
    );

    // The store holds the connections sealed: no account name, no token in clear.
    let store = common::stored_text(&gw).into_bytes();
    for needle in [
        "alice-svc@example.test",
        "bob-svc@example.test",
        &alice_svc,
        &bob_svc,
        &sent[0],
    ] {
        assert!(
            !store.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} is in the store file"
        );
    }

    // The service forgets every grant (restarted with an in-memory store: as if Alice revoked
    // authgate there). Her next refresh is refused: the client gets a 401 challenge, and its
    // own refresh token no longer works, so it authorizes again...
    drop(service);
    service = start_service(TcpListener::bind(svc_addr).unwrap(), &callback);
    common::wait_http_ok(
        &format!("{issuer}/.well-known/openid-configuration"),
        "the service again",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(ACCESS_TTL * 1000 / 2 + 500)).await;
    let (status, body, challenge) = call(&gw, &alice_token).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata="),
        "{challenge}"
    );
    let (status, v) = flow::token(
        &gw,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", alice["refresh_token"].as_str().unwrap()),
            ("client_id", alice["client_id"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (status.as_u16(), v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // ...which takes her through the service again, and she is back.
    let (back, trail) = authorize(&gw, "alice", "alice-svc").await;
    assert!(via_service(&trail, &issuer), "{trail:?}");
    let back_token = back["access_token"].as_str().unwrap();
    let (status, seen, _) = call(&gw, back_token).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        service_user(&issuer, &service_token(&seen, back_token)).await,
        "alice-svc"
    );

    // Her connected accounts page (a browser session at authgate) shows it and disconnects
    // it; her client's next call is sent back through the connection.
    let b = flow::browser();
    let client = flow::public_client(&gw).await;
    let r = b
        .get(flow::authorize_url(&gw, &client, &gw.url("/cal"), &[]))
        .send()
        .await
        .unwrap();
    let login = flow::page(&b, &gw, &flow::location(&r)).await;
    let fields = [("username", "alice"), ("password", "pw")];
    flow::submit(&b, &gw, &login, "/login/local", &fields).await;
    let page = flow::page(&b, &gw, "/connect/accounts").await;
    assert!(
        page.contains("cal") && page.contains("Connected as alice-svc@example.test"),
        "{page}"
    );
    let csrf = flow::hidden(&page, "csrf");
    let forged = flow::post_form(
        &b,
        &gw.url("/connect/accounts"),
        None,
        &[("upstream", "cal")],
    )
    .await;
    assert_eq!(forged.status(), 403, "no form token, nothing done");
    let form = [("csrf", csrf.as_str()), ("upstream", "cal")];
    let r = flow::post_form(&b, &gw.url("/connect/accounts"), None, &form).await;
    assert_eq!(r.status(), 303);
    let page = flow::page(&b, &gw, &flow::location(&r)).await;
    assert!(
        page.contains("cal is disconnected") && page.contains("Not connected"),
        "{page}"
    );
    // Only an upstream's own name is echoed from that link.
    let spoofed = flow::page(&b, &gw, "/connect/accounts?done=Your+bank").await;
    assert!(!spoofed.contains("Your bank"), "{spoofed}");
    let (status, _, challenge) = call(&gw, back_token).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // Without a session the page says to sign in first.
    let r = reqwest::get(gw.url("/connect/accounts")).await.unwrap();
    assert_eq!(r.status(), 401);

    let audit = gw.logs();
    assert!(audit.contains("account_connected"), "{audit}");
    assert!(audit.contains("account_disconnected"), "{audit}");
    assert!(audit.contains("disconnected by the person"), "{audit}");
    drop(service);
}

/// A service shaped like a GitHub OAuth app, as GitHub documents it: the authorize page
/// sends the person straight back with a code (they approved before), the token endpoint
/// answers form-encoded unless asked for JSON, and its tokens never expire and come with no
/// refresh token. Each code gives its own token.
async fn github_like_service() -> String {
    use axum::extract::{Form, Query};
    use axum::response::{IntoResponse, Redirect};
    use std::collections::HashMap;
    let app = axum::Router::new()
        .route(
            "/login/oauth/authorize",
            axum::routing::get(|Query(q): Query<HashMap<String, String>>| async move {
                let code = format!("code-{}", q["code_challenge"]);
                let back = format!("{}?code={code}&state={}", q["redirect_uri"], flow::urlencode(&q["state"]));
                Redirect::to(&back)
            }),
        )
        .route(
            "/login/oauth/access_token",
            axum::routing::post(
                |headers: axum::http::HeaderMap, Form(f): Form<HashMap<String, String>>| async move {
                    let token = format!("gho_{}", &f["code"][5..21].replace(['-', '_'], "x"));
                    let json = headers.get("accept").is_some_and(|a| a == "application/json");
                    match json {
                        true => axum::Json(serde_json::json!({"access_token": token, "token_type": "bearer", "scope": "repo"})).into_response(),
                        false => format!("access_token={token}&token_type=bearer&scope=repo").into_response(),
                    }
                },
            ),
        );
    format!("http://{}", common::serve(app).await)
}

/// Two gateway keys (base64 of 32 bytes) and their ids, as `authgate` derives them.
const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_that_never_expires_is_kept_sealed_and_survives_a_key_rotation() {
    let echo = common::start_echo_upstream().await;
    let gh = github_like_service().await;
    let config = |auth: &str| {
        TestConfig::new()
            .scope("mcp:tools")
            .auth(auth)
            .upstream(
                "cal",
                "/cal",
                &echo,
                &format!("scopes = [\"mcp:tools\"]\n[upstream.credential]\nkind = \"user_account\"\nauthorize_url = \"{gh}/login/oauth/authorize\"\ntoken_url = \"{gh}/login/oauth/access_token\"\nclient_id = \"Iv1.abc\"\nclient_secret = \"${{GH_SECRET}}\"\nscopes = [\"repo\"]"),
            )
            .alice("")
            .build()
    };
    let key_a = format!("session_key = \"{KEY_A}\"");
    let key_b = format!("session_key = \"{KEY_B}\"");
    let rotating = format!("{key_b}\nprevious_session_keys = [\"{KEY_A}\"]");
    let env = [("GH_SECRET", "gh-secret")];
    let mut gw = Gateway::start_with_env(&config(&key_a), &env).await;
    let (alice, trail) = authorize(&gw, "alice", "").await;
    assert!(via_service(&trail, &gh), "{trail:?}");
    let token = alice["access_token"].as_str().unwrap().to_string();
    let (status, seen, _) = call(&gw, &token).await;
    assert_eq!(status, 200, "{seen}\n{}", gw.logs());
    let gho = service_token(&seen, &token);
    assert!(gho.starts_with("gho_"), "{gho}");
    let store = common::stored_text(&gw).into_bytes();
    assert!(!store.windows(gho.len()).any(|w| w == gho.as_bytes()));

    // Another key alone: refused at start, naming both key ids, rather than starting with
    // connections and signing keys it cannot open.
    let _ = gw.child.kill();
    let _ = gw.child.wait();
    let path = gw.config_path();
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, written.replace(&key_a, &key_b)).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
        cmd.args(args)
            .arg("--config")
            .arg(&path)
            .env("GH_SECRET", "gh-secret");
        common::output_within(cmd)
    };
    let out = run(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("sealed with key") && err.contains("auth.previous_session_keys"),
        "{err}"
    );

    // Rotating: the new key seals, the old one still opens; the connection is still hers.
    let mut gw = gw.restart(&config(&rotating), &env).await;
    let (status, seen, _) = call(&gw, &token).await;
    assert_eq!((status, service_token(&seen, &token)), (200, gho.clone()));
    assert!(
        gw.logs().contains("sealed with a previous key"),
        "{}",
        gw.logs()
    );
    // Stopped, `authgate rotate-key` seals the store's values again with the new key...
    let _ = gw.child.kill();
    let _ = gw.child.wait();
    let out = run(&["rotate-key"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("now sealed with key"), "{said}");
    // ...so the old key can go: the new one alone opens everything, and it is still hers.
    let gw = gw.restart(&config(&key_b), &env).await;
    let (status, seen, _) = call(&gw, &token).await;
    assert_eq!((status, service_token(&seen, &token)), (200, gho));
    let warnings = gw.logs().matches("sealed with a previous key").count();
    assert_eq!(warnings, 1, "only while rotating: {}", gw.logs());
}
