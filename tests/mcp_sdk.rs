//! The unmodified `@modelcontextprotocol/server-everything` (Streamable HTTP) behind the real
//! gateway, driven by the official TypeScript SDK client. Needs `npm ci --prefix tests/e2e`.

mod common;

use std::process::Command;

use common::{e2e_dir, start_everything, Gateway, TestConfig};
use serde_json::Value;

fn run_client(url: &str) -> Value {
    let (ok, out, stderr) = common::run_node_json("mcp-client.mjs", &[url]);
    assert!(ok, "SDK client failed:\n{out}\n{stderr}");
    out
}

#[tokio::test]
async fn sdk_client_through_gateway_to_server_everything() {
    let (_everything, mcp_url) = start_everything().await;
    let gw = Gateway::start(
        &TestConfig::new()
            .public("everything", "/everything", &mcp_url)
            .build(),
    )
    .await;
    common::wait_http_ok(&gw.url("/readyz"), "authgate").await;

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
    gw.wait_for_access("the DELETE line", |l| l["method"] == "DELETE")
        .await;
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

/// Starts the SDK v2 server (2026-07-28) on a listener bound here; returns its `/mcp` URL.
fn start_v2_server() -> (common::ChildGuard, String) {
    let listener = common::listener();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let mut cmd = Command::new("node");
    cmd.arg(e2e_dir().join("mcp-v2-server.mjs"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    (common::spawn_listening(cmd, listener), url)
}

#[tokio::test]
async fn sdk_v2_client_stateless_2026_07_28_and_negotiated_through_gateway() {
    let (_server, upstream) = start_v2_server();
    let gw = Gateway::start(&TestConfig::new().public("v2", "/v2/mcp", &upstream).build()).await;
    let url = gw.url("/v2/mcp");
    for revision in ["2026", "default"] {
        let (ok, out, stderr) = common::run_node_json("mcp-v2-client.mjs", &[&url, revision]);
        assert!(ok, "{revision}: {out}\n{stderr}");
        assert_eq!(out["echo"], "Echo: hi", "{revision}: {out}");
        assert_eq!(out["tools"], serde_json::json!(["echo"]));
        let requests = out["requests"].as_array().unwrap();
        if revision == "2026" {
            // Stateless: every POST carries the revision and the mirrored method, no session.
            assert!(
                requests
                    .iter()
                    .all(|r| r["method"] == "POST" && r["version"] == "2026-07-28"),
                "{out}"
            );
            assert!(
                requests
                    .iter()
                    .all(|r| r["mcpMethod"].is_string() && r["session"].is_null()),
                "{out}"
            );
            assert!(
                requests
                    .iter()
                    .any(|r| r["mcpMethod"] == "tools/call" && r["mcpName"] == "echo"),
                "{out}"
            );
        }
    }
    // authgate validated the mirrored headers against the bodies and logged the call.
    gw.wait_for_access("the tools/call line", |l| l["mcp_method"] == "tools/call")
        .await;
    let log = gw.access_log();
    assert!(
        log.iter().any(|l| l["mcp_method"] == "tools/call"
            && l["mcp_name"] == "echo"
            && l["status"] == 200),
        "{}",
        gw.logs()
    );
    assert!(log.iter().any(|l| l["mcp_method"] == "server/discover"));
}
