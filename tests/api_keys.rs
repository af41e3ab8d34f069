//! API keys end to end: created with the CLI through the admin API, used by the official SDK
//! client against server-everything, seen by an upstream as `key:<name>`, refused on other
//! upstreams, by policy, and at once after revocation.

mod common;

use common::{start_echo_upstream, start_everything, Gateway, TestConfig};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "admin-token-for-the-key-tests-0123456789";

fn cli(gw: &Gateway, args: &[&str]) -> (bool, String, String) {
    common::admin_cli(gw, ADMIN_TOKEN, args)
}

async fn get(gw: &Gateway, path: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(key)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn api_keys_reach_their_upstreams_only_and_die_with_revocation() {
    let (_everything, everything) = start_everything().await;
    let echo = start_echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"the CI bot does not read the environment\"\neffect = \"deny\"\nupstreams = [\"everything\"]\napi_keys = [\"ci-bot\"]\ntools = [\"get-env\"]\n",
    )
    .unwrap();
    let config = TestConfig::new()
        .scope("mcp")
        .upstream("everything", "/everything", &everything, "scopes = [\"mcp\"]")
        .upstream("echo", "/echo", &echo, "scopes = [\"mcp\"]")
        .upstream("other", "/other", &echo, "scopes = [\"mcp\"]")
        .raw(&format!(
            "[admin]\nlisten = \"{{admin}}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n[policy]\nfiles = [\"{}\"]",
            policy.display()
        ))
        .alice("")
        .build();
    let gw = Gateway::start(&config).await;

    let (ok, out, err) = cli(
        &gw,
        &[
            "admin",
            "keys",
            "create",
            "--name",
            "ci-bot",
            "--owner",
            "ops@example.test",
            "--upstream",
            "everything",
            "--upstream",
            "echo",
            "--expires-in",
            "30d",
        ],
    );
    assert!(ok, "{out}\n{err}");
    let key = out.trim().to_string();
    assert!(key.starts_with("ag_key_"), "{out}");
    assert!(err.contains("shown this once"), "{err}");
    // Names are unique.
    let (ok, _, err) = cli(
        &gw,
        &[
            "admin",
            "keys",
            "create",
            "--name",
            "ci-bot",
            "--owner",
            "x",
            "--upstream",
            "echo",
        ],
    );
    assert!(!ok && err.contains("exists"), "{err}");

    // The SDK client with the key as its bearer token: tools, a call, and the tool a policy
    // naming the key denies it.
    let (ok, v, stderr) = common::run_node_json(
        "policy-client.mjs",
        &[&gw.url("/everything"), &key, "echo", "get-env"],
    );
    assert!(ok, "{v}\n{stderr}");
    assert_eq!(v["first"]["text"], "Echo: hi", "{v}");
    assert_eq!(v["denied"]["code"], -32003, "{v}");
    let tools = v["tools"].as_array().unwrap();
    assert!(!tools.contains(&json!("get-env")), "{v}");

    // The upstream sees who the key stands for, never the key.
    let r = get(&gw, "/echo", &key).await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    let h = &seen["headers"];
    assert_eq!(h["x-authgate-user"], "key:ci-bot", "{seen}");
    assert_eq!(h["x-authgate-name"], "ops@example.test", "{seen}");
    assert!(h.get("authorization").is_none(), "{seen}");
    assert!(!seen.to_string().contains(&key));

    // Not on an upstream it was not made for; a forged key is refused the same way.
    let r = get(&gw, "/other", &key).await;
    assert_eq!(r.status(), 401);
    let mut forged = key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(get(&gw, "/echo", &forged).await.status(), 401);

    // Listed with its last use, never with the key or its hash.
    let (ok, out, _) = cli(&gw, &["admin", "keys", "list"]);
    assert!(ok);
    assert!(
        out.contains("1 API key(s)") && out.contains("ci-bot") && out.contains("ops@example.test"),
        "{out}"
    );
    assert!(!out.contains("last used never"), "{out}");
    let (ok, json_out, _) = cli(&gw, &["admin", "--json", "keys", "list"]);
    assert!(ok, "{json_out}");
    assert!(
        !json_out.contains(&key) && !json_out.contains("hash"),
        "{json_out}"
    );

    // Revoked: refused from the next request on.
    let (ok, out, err) = cli(&gw, &["admin", "keys", "revoke", "ci-bot"]);
    assert!(ok, "{out}{err}");
    let r = get(&gw, "/echo", &key).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));

    // The store file holds no key.
    let store = common::stored_text(&gw).into_bytes();
    let needle = key.as_bytes();
    assert!(!store.windows(needle.len()).any(|w| w == needle));
}

/// Without an admin API (no `[admin]`), keys are made on the stopped gateway's store; while
/// it runs, the store is locked and the command says to use the admin API.
#[tokio::test]
async fn api_keys_are_made_offline_on_a_stopped_gateways_store() {
    let echo = start_echo_upstream().await;
    let config = TestConfig::new()
        .scope("mcp")
        .upstream("echo", "/echo", &echo, "scopes = [\"mcp\"]")
        .alice("")
        .build();
    let dir = tempfile::tempdir().unwrap();
    let (addr, guard) = common::reserve_addr();
    let written = config
        .replace("{addr}", &addr.to_string())
        .replace("{data}", &dir.path().join("data").display().to_string());
    let path = dir.path().join("authgate.toml");
    std::fs::write(&path, &written).unwrap();
    let offline = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"));
        cmd.arg("keys").arg("--config").arg(&path).args(args);
        let out = common::output_within(cmd);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, key, err) = offline(&[
        "create",
        "--name",
        "nightly",
        "--owner",
        "ops@example.test",
        "--upstream",
        "echo",
    ]);
    assert!(ok && key.starts_with("ag_key_"), "{key}\n{err}");
    let (ok, _, err) = offline(&[
        "create",
        "--name",
        "x",
        "--owner",
        "o",
        "--upstream",
        "nope",
    ]);
    assert!(!ok && err.contains("no upstream is named `nope`"), "{err}");

    let gw = Gateway::start_at(addr, guard, dir, &config, &[]).await;
    let r = get(&gw, "/echo", &key).await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-authgate-user"], "key:nightly");
    let (ok, _, err) = offline(&["list"]);
    assert!(!ok && err.contains("authgate admin keys"), "{err}");
}
