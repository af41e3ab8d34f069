//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! tests/e2e, run on the Node 22 it needs, also from npm): its `authorization` family
//! against authgate's issuer, and its `server` family through authgate in front of
//! server-everything compared with the same suite run directly against server-everything.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};

use common::{e2e_dir, free_port, start_everything, Gateway};

fn node22() -> std::path::PathBuf {
    let node = e2e_dir().join("node_modules/.bin/node");
    assert!(
        node.exists(),
        "Node 22 from npm is missing: run `npm ci --prefix tests/e2e`"
    );
    node
}

#[tokio::test]
async fn authorization_family_passes_against_authgate() {
    let hash = authgate::login::local::hash_password("pw");
    let gw = Gateway::start_with_env(
        r#"
[server]
listen = ["127.0.0.1:{port}"]
public_url = "http://127.0.0.1:{port}"
data_dir = "{data}"

[[scope]]
name = "mcp:tools"

[[upstream]]
name = "everything"
path = "/mcp"
url = "http://127.0.0.1:9/mcp"
scopes = ["mcp:tools"]

[[provider]]
id = "local"
kind = "local"

[[provider.users]]
username = "alice"
password_hash = "${ALICE_HASH}"
"#,
        &[("ALICE_HASH", &hash)],
    )
    .await;
    let port = free_port();
    let reg: Value = reqwest::Client::new()
        .post(gw.url("/register"))
        .json(&json!({
            "redirect_uris": [format!("http://127.0.0.1:{port}/callback")],
            "token_endpoint_auth_method": "none",
            "client_name": "MCP conformance suite",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    let out = Command::new(node22())
        .arg(e2e_dir().join("conformance-auth.mjs"))
        .args(["--issuer", &gw.url(""), "--client-id", &client_id])
        .args(["--resource", &gw.url("/mcp"), "--port", &port.to_string()])
        .args(["--fill", r#"{"username":"alice","password":"pw"}"#])
        .output()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON from the conformance driver:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let scenarios: Vec<&str> = result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["scenario"].as_str())
        .collect();
    assert!(
        scenarios
            .iter()
            .any(|s| s.contains("authorization-code-grant")),
        "{result:#}"
    );
    assert!(
        scenarios.iter().any(|s| s.contains("metadata")),
        "{result:#}"
    );
    assert_eq!(
        result["failed"],
        0,
        "conformance failures:\n{result:#}\nauthgate:\n{}",
        gw.logs()
    );
    assert!(result["passed"].as_u64().unwrap() >= 3, "{result:#}");
    for c in result["checks"].as_array().unwrap() {
        eprintln!(
            "conformance authorization: {} / {}: {}",
            c["scenario"], c["id"], c["status"]
        );
    }
}

/// Runs the suite's server family against `url`; returns check → status.
fn server_family(url: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let suite = e2e_dir().join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let status = Command::new(node22())
        .arg(suite)
        .args(["server", "--url", url, "--timeout", "15000", "-o"])
        .arg(dir.path())
        .output()
        .unwrap();
    let _ = status; // the suite exits non-zero when any check fails; compare the checks instead
    let mut checks = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let scenario = name.split("-20").next().unwrap().to_string();
        let list: Vec<Value> =
            serde_json::from_slice(&std::fs::read(path.join("checks.json")).unwrap()).unwrap();
        for c in list {
            checks.insert(
                format!(
                    "{scenario} / {} / {}",
                    c["id"].as_str().unwrap_or(""),
                    c["name"].as_str().unwrap_or("")
                ),
                c["status"].as_str().unwrap_or("").to_string(),
            );
        }
    }
    checks
}

#[tokio::test]
async fn server_family_through_authgate_matches_direct() {
    let (_everything, mcp_port) = start_everything().await;
    // The suite cannot send a bearer token, so it runs through a public route: what it
    // checks here is the transport passthrough (the authorization family covers auth).
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = ["127.0.0.1:{{port}}"]
public_url = "http://127.0.0.1:{{port}}"
data_dir = "{{data}}"

[[upstream]]
name = "everything"
path = "/mcp"
url = "http://127.0.0.1:{mcp_port}/mcp"
auth = "none"
"#
    ))
    .await;
    let direct = server_family(&format!("http://127.0.0.1:{mcp_port}/mcp"));
    let through = server_family(&gw.url("/mcp"));
    assert!(
        direct.values().filter(|s| *s == "SUCCESS").count() >= 20,
        "{direct:#?}"
    );
    let lost: Vec<&String> = direct
        .iter()
        .filter(|(k, s)| *s == "SUCCESS" && through.get(*k).map(String::as_str) != Some("SUCCESS"))
        .map(|(k, _)| k)
        .collect();
    assert!(
        lost.is_empty(),
        "checks that pass directly but not through authgate: {lost:#?}"
    );
    let gained: Vec<&String> = through
        .iter()
        .filter(|(k, s)| *s == "SUCCESS" && direct.get(*k).map(String::as_str) != Some("SUCCESS"))
        .map(|(k, _)| k)
        .collect();
    eprintln!(
        "conformance server family: direct {} passed of {}, through authgate {} passed of {}; gained through authgate: {gained:?}",
        direct.values().filter(|s| *s == "SUCCESS").count(),
        direct.len(),
        through.values().filter(|s| *s == "SUCCESS").count(),
        through.len(),
    );
}
