//! Signed identity end to end: `examples/verify-assertion.mjs` (Node.js alone) verifies the
//! assertion authgate sends, against the JWKS authgate publishes; a tampered one fails, a
//! spoofed one never arrives, a key rotation keeps assertions working, and once the old key's
//! last assertion has expired neither remains.

mod common;

use std::process::Command;
use std::time::Duration;

use common::flow::tokens_for;
use common::{start_echo_upstream, Gateway, TestConfig};
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-for-the-signing-tests-0123";

#[tokio::test]
async fn upstreams_verify_the_assertion_at_the_published_jwks_across_a_rotation() {
    let echo = start_echo_upstream().await;
    let (addr, guard) = common::reserve_addr();
    let issuer = format!("http://{addr}");
    let audience = format!("{issuer}/signed");
    let listener = common::listener();
    let verifier = format!("http://{}", listener.local_addr().unwrap());
    let mut cmd = Command::new("node");
    cmd.arg(common::repo_root().join("examples/verify-assertion.mjs"))
        .env("ISSUER", &issuer)
        .env("AUDIENCE", &audience)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _verifier = common::spawn_listening(cmd, listener);
    let config = TestConfig::new()
        .scope("mcp")
        .upstream(
            "signed",
            "/signed",
            &verifier,
            "scopes = [\"mcp\"]\n[upstream.signed_identity]\nlifetime = \"10s\"",
        )
        // The echo upstream shows the test what arrives; same audience, so its assertion is
        // one the verifier accepts too.
        .upstream(
            "echo",
            "/echo",
            &echo,
            &format!("scopes = [\"mcp\"]\n[upstream.signed_identity]\nlifetime = \"10s\"\naudience = \"{audience}\""),
        )
        .raw(&format!("[admin]\nlisten = \"{{admin}}\"\ntoken = \"{ADMIN_TOKEN}\""))
        .alice("email = \"alice@example.test\"\ngroups = [\"eng\"]")
        .build();
    let gw = Gateway::start_at(addr, guard, tempfile::tempdir().unwrap(), &config, &[]).await;
    let http = reqwest::Client::new();
    let (_, tokens) = tokens_for(&gw, &gw.url("/signed")).await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let (_, echo_tokens) = tokens_for(&gw, &gw.url("/echo")).await;
    let echo_token = echo_tokens["access_token"].as_str().unwrap().to_string();

    // Through the gateway: verified, with who is calling; a client's own assertion header
    // is replaced, not passed on.
    let through = |path: &'static str, token: String| {
        let http = http.clone();
        let url = gw.url(path);
        async move {
            let r = http
                .get(url)
                .bearer_auth(token)
                .header(
                    "x-authgate-assertion",
                    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.",
                )
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = through("/signed", token.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["claims"]["sub"], "local:alice", "{v}");
    assert_eq!(v["claims"]["email"], "alice@example.test");
    assert_eq!(v["claims"]["groups"], serde_json::json!(["eng"]));
    assert_eq!(v["claims"]["aud"], audience.as_str());
    assert_eq!(v["claims"]["scope"], "mcp");
    assert!(v["claims"]["jti"].is_string() && v["claims"]["client_id"].is_string());

    // An assertion as an upstream receives it, presented to the verifier directly.
    let (_, seen) = through("/echo", echo_token.clone()).await;
    let assertion = seen["headers"]["x-authgate-assertion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !assertion.starts_with("eyJhbGciOiJub25l"),
        "the client's header was replaced"
    );
    let direct = |jwt: String| {
        let http = http.clone();
        let url = verifier.clone();
        async move {
            let r = http
                .get(url)
                .header("x-authgate-assertion", jwt)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(direct(assertion.clone()).await.0, 200);
    // Tampered (another subject, the signature kept): refused.
    let parts: Vec<&str> = assertion.split('.').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "local:mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let (status, v) = direct(forged).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"], "bad signature");

    // Rotation: new assertions carry the new key and verify (the verifier fetches the JWKS
    // again for the unknown key); the old assertion still verifies while it lives.
    let (ok, out, err) =
        common::admin_cli(&gw, ADMIN_TOKEN, &["admin", "--json", "rotate-signing-key"]);
    assert!(ok, "{err}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    let published_until = rotated["previous_published_until"].as_u64().unwrap();
    let jwks: Value = common::get_json(&gw.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    let (status, v) = through("/signed", token.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(direct(assertion.clone()).await.0, 200);

    // Past the old key's last assertion: the assertion is refused, the key unpublished.
    let exp = claims["exp"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The old key is published for one lifetime after the rotation, which came after `exp`
    // was set: wait for both.
    assert!(published_until >= exp, "{rotated}");
    tokio::time::sleep(Duration::from_secs(
        published_until.max(exp).saturating_sub(now) + 1,
    ))
    .await;
    let (status, v) = direct(assertion).await;
    assert_eq!(status, 401, "{v}");
    let jwks: Value = common::get_json(&gw.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    let (status, v) = through("/signed", token).await;
    assert_eq!(status, 200, "{v}");
}
