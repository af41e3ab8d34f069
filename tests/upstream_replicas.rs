//! Upstream replicas (`[[upstream]] replicas`): two instances of the unmodified server-everything
//! (which keeps each Streamable HTTP session in its own memory) behind one route, and two
//! authgate processes in front with the same config and no shared state between them. An SDK
//! client's session hops between the authgate processes and always reaches the instance that
//! created it; new sessions are spread over both instances; when one instance dies, new
//! sessions go to the other at once and the dead one's sessions get 404 (MCP clients then
//! start a new session).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::{run_node_json, start_everything, Gateway, DEADLINE};
use serde_json::{json, Value};

fn config(first: &str, second: &str) -> String {
    TestConfig::new()
        .upstream(
            "everything",
            "/mcp",
            first,
            &format!("auth = \"none\"\nreplicas = [\"{second}\"]\nhealth_check_interval = \"500ms\"\nconnect_timeout = \"1s\""),
        )
        .build()
}

/// POSTs one JSON-RPC message (with `session`, if any); the status, the session id the
/// answer carries, and the body.
async fn post(
    gw: &Gateway,
    session: Option<&str>,
    message: Value,
) -> (u16, Option<String>, String) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&message);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let id = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    (status, id, r.text().await.unwrap())
}

/// A new session through `gw`: its id as the client sees it (`<tag>.<id>`).
async fn initialize(gw: &Gateway) -> String {
    let (status, id, body) = post(
        gw,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "replica-test", "version": "1"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = id.expect("a session id");
    let (tag, rest) = id.split_once('.').expect("a tagged session id");
    assert_eq!(tag.len(), 8, "{id}");
    assert!(!rest.is_empty());
    assert!(
        id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "visible ASCII only: {id}"
    );
    id
}

fn tag(id: &str) -> &str {
    id.split_once('.').unwrap().0
}

#[tokio::test]
async fn sessions_stay_on_their_replica_across_gateways_and_survive_a_replica_dying() {
    let (first, first_url) = start_everything().await;
    let (_second, second_url) = start_everything().await;
    let config = config(&first_url, &second_url);
    let a = Gateway::start(&config).await;
    let b = Gateway::start(&config).await;

    // The SDK client's session hops A, B, A, … and every call reaches its replica.
    let (ok, out, stderr) =
        run_node_json("session-hop.mjs", &[&a.url("/mcp"), &b.url("/mcp"), "6"]);
    assert!(ok, "{stderr}\n{}\n{}", a.logs(), b.logs());
    let session = out["sessionId"].as_str().unwrap();
    assert_eq!(tag(session).len(), 8, "{out}");
    assert!(out["tools"].as_u64().unwrap() > 5, "{out}");
    let echoes = out["echoes"].as_array().unwrap();
    assert_eq!(echoes.len(), 6);
    for (i, e) in echoes.iter().enumerate() {
        assert_eq!(e["text"], format!("Echo: hop {}", i + 1), "{out}");
        assert_eq!(e["session"], session);
    }
    assert_eq!(out["terminated"], true);

    // New sessions are spread over both replicas, whichever gateway opens them.
    let mut sessions = Vec::new();
    for i in 0..8 {
        let gw = if i % 2 == 0 { &a } else { &b };
        sessions.push(initialize(gw).await);
    }
    let tags: HashSet<&str> = sessions.iter().map(|s| tag(s)).collect();
    assert_eq!(tags.len(), 2, "both replicas got sessions: {sessions:?}");
    // Each session works through the other gateway too.
    for (i, s) in sessions.iter().enumerate() {
        let gw = if i % 2 == 0 { &b } else { &a };
        let (status, _, body) = post(
            gw,
            Some(s),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
        assert_eq!(status, 200, "{s}: {body}");
        assert!(body.contains("\"echo\""), "{body}");
    }

    // The first replica dies. New sessions go to the second at once (a failed connection
    // is retried there), from both gateways.
    drop(first);
    let mut after = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &a } else { &b };
        after.push(initialize(gw).await);
    }
    let survivors: HashSet<&str> = after.iter().map(|s| tag(s)).collect();
    assert_eq!(survivors.len(), 1, "{after:?}");
    let alive = *survivors.iter().next().unwrap();
    let dead = *tags.iter().find(|t| **t != alive).unwrap();
    // Sessions on the dead replica answer 404 (a JSON-RPC error body), through both
    // gateways, once their health checks see it down (at most one interval).
    let on_dead = sessions.iter().find(|s| tag(s) == dead).unwrap();
    for gw in [&a, &b] {
        let started = Instant::now();
        loop {
            let (status, _, body) = post(
                gw,
                Some(on_dead),
                json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
            )
            .await;
            if status == 404 {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["error"]["code"], -32001, "{body}");
                break;
            }
            assert!(started.elapsed() < DEADLINE, "{status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            gw.logs().contains("upstream replica is down"),
            "{}",
            gw.logs()
        );
    }
    // Sessions on the live replica are untouched.
    let on_alive = sessions.iter().find(|s| tag(s) == alive).unwrap();
    let (status, _, body) = post(
        &a,
        Some(on_alive),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // No request failed with a 5xx along the way.
    for gw in [&a, &b] {
        let fives: Vec<_> = gw
            .access_log()
            .into_iter()
            .filter(|l| l["status"].as_u64().is_some_and(|s| s >= 500))
            .collect();
        assert!(fives.is_empty(), "{fives:?}");
    }
}
