//! An upstream's service account connected by an administrator: `authgate admin connect`
//! prints the URL, a real browser (headless Chromium) signs in at a real OAuth server
//! (`oidc-provider`) and comes back to authgate, which keeps the refresh token sealed in the
//! store and sends the service's access tokens to the upstream, refreshing them itself.

mod common;

use std::time::Duration;

use common::{start_echo_upstream, Gateway, TestConfig};
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-for-the-connect-tests-0123";

async fn upstream_sees(gw: &Gateway) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(gw.url("/crm"))
        .header("authorization", "Bearer the-client-s-own")
        .body("{}")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_admin_connects_a_service_account_once_and_authgate_keeps_it_fresh() {
    let echo = start_echo_upstream().await;
    let idp_listener = common::listener();
    let issuer = format!("http://{}", idp_listener.local_addr().unwrap());
    let (addr, guard) = common::reserve_addr();
    let callback = format!("http://{addr}/connect/callback");
    // Started here rather than with common::start_oidc_provider: its access tokens must live
    // 2 s so the test sees a refresh.
    let mut cmd = std::process::Command::new("node");
    cmd.arg(common::e2e_dir().join("oidc-provider.mjs"))
        .args([
            "--issuer",
            &issuer,
            "--client-id",
            "crm-client",
            "--client-secret",
            "crm-secret",
        ])
        .args(["--redirect-uri", &callback, "--access-ttl", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _idp = common::spawn_listening(cmd, idp_listener);
    let config = TestConfig::new()
        .upstream(
            "crm",
            "/crm",
            &echo,
            &format!("auth = \"none\"\n[upstream.credential]\nkind = \"connected_account\"\nauthorize_url = \"{issuer}/auth\"\ntoken_url = \"{issuer}/token\"\nclient_id = \"crm-client\"\nclient_secret = \"${{CRM_SECRET}}\"\nscopes = [\"openid\", \"email\"]"),
        )
        .raw(&format!("[admin]\nlisten = \"{{admin}}\"\ntoken = \"{ADMIN_TOKEN}\""))
        .build();
    let gw = Gateway::start_at(
        addr,
        guard,
        tempfile::tempdir().unwrap(),
        &config,
        &[("CRM_SECRET", "crm-secret")],
    )
    .await;

    // Not connected yet: the request is not sent without its credential.
    assert_eq!(upstream_sees(&gw).await.0, 502);
    let (ok, out, _) = common::admin_cli(&gw, ADMIN_TOKEN, &["admin", "connections"]);
    assert!(
        ok && out.contains("crm") && out.contains("not connected"),
        "{out}"
    );

    // The administrator connects it in the browser.
    let (ok, url, err) = common::admin_cli(&gw, ADMIN_TOKEN, &["admin", "connect", "crm"]);
    assert!(ok, "{err}");
    let url = url.trim();
    assert!(
        url.starts_with(&format!("{issuer}/auth?")) && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    let (ok, v, stderr) = common::run_node_json("connect-flow.mjs", &[url, &callback, "crmbot"]);
    assert!(ok, "{v}\n{stderr}\n{}", gw.logs());
    let last = v["trail"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], 200, "{v}");
    assert!(
        last["title"].as_str().unwrap().starts_with("Connected"),
        "{v}"
    );
    let (ok, out, _) = common::admin_cli(&gw, ADMIN_TOKEN, &["admin", "connections"]);
    assert!(
        ok && out.contains("connected as crmbot@example.test"),
        "{out}"
    );

    // The upstream gets the service's token, never the client's.
    let (status, seen) = upstream_sees(&gw).await;
    assert_eq!(status, 200, "{seen}");
    let first = seen["headers"]["authorization"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first.starts_with("Bearer ") && !first.contains("the-client-s-own"),
        "{seen}"
    );

    // Its access tokens live 2 s: authgate refreshes with the stored refresh token.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, seen) = upstream_sees(&gw).await;
    assert_eq!(status, 200, "{seen}");
    let second = seen["headers"]["authorization"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        second.starts_with("Bearer ") && second != first,
        "{first} then {second}"
    );

    // The store holds the connection sealed: neither the account nor a token in clear.
    let store = common::stored_text(&gw).into_bytes();
    for needle in ["crmbot@example.test", &first[7..], &second[7..]] {
        assert!(
            !store.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} is in the store file"
        );
    }

    // Disconnected: requests are refused again, not sent without the credential.
    let (ok, _, err) = common::admin_cli(&gw, ADMIN_TOKEN, &["admin", "disconnect", "crm"]);
    assert!(ok, "{err}");
    assert_eq!(upstream_sees(&gw).await.0, 502);
}
