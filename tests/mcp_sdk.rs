//! The unmodified `@modelcontextprotocol/server-everything` (Streamable HTTP) behind the real
//! gateway, driven by the official TypeScript SDK client. Needs `npm ci --prefix tests/e2e`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{e2e_dir, start_everything, wait_http_ok, Gateway};
use serde_json::Value;

fn run_client(url: &str) -> Value {
    let out = Command::new("node")
        .arg(e2e_dir().join("mcp-client.mjs"))
        .arg(url)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "SDK client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client prints JSON")
}

#[tokio::test]
async fn sdk_client_through_gateway_to_server_everything() {
    let (_everything, mcp_port) = start_everything().await;
    let gw = Gateway::start(&format!(
        r#"
[server]
listen = ["127.0.0.1:{{port}}"]
public_url = "http://127.0.0.1:{{port}}"
data_dir = "{{data}}"

[[upstream]]
name = "everything"
path = "/everything"
url = "http://127.0.0.1:{mcp_port}/mcp"
auth = "none"
"#
    ))
    .await;
    wait_http_ok(&gw.url("/readyz"), Duration::from_secs(5), "authgate").await;

    let out = run_client(&gw.url("/everything"));
    assert!(
        out["sessionId"].as_str().is_some_and(|s| !s.is_empty()),
        "{out}"
    );
    assert!(out["serverName"].as_str().is_some(), "{out}");
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"trigger-long-running-operation"),
        "{out}"
    );
    assert_eq!(out["echo"], "Echo: hello through authgate");

    let long = &out["long"];
    assert!(
        long["text"].as_str().unwrap().contains("completed"),
        "{out}"
    );
    let progress = long["progress"].as_array().unwrap();
    assert_eq!(
        progress.len(),
        4,
        "every progress notification arrives: {out}"
    );
    // Streamed, not buffered: the first notification (~0.5 s in) arrives long before the
    // result (~2 s in).
    let first = progress[0]["at"].as_f64().unwrap();
    let done = long["doneAt"].as_f64().unwrap();
    assert!(
        done - first > 0.75 * 1000.0,
        "progress arrived with the result, not before it: {out}"
    );

    // Every request went through the gateway to the upstream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.access_log();
    let methods: Vec<&str> = log
        .iter()
        .filter(|l| l["upstream"] == "everything")
        .filter_map(|l| l["method"].as_str())
        .collect();
    assert!(
        methods.iter().filter(|m| **m == "POST").count() >= 4,
        "{methods:?}"
    );
    assert!(methods.contains(&"DELETE"), "{methods:?}");
}
