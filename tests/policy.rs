//! Policies end to end: the real binary with policy files in front of real MCP servers (the
//! unmodified server-everything answering in SSE, the SDK v2 server answering 2026-07-28
//! requests), driven by the official SDK client and by raw requests.

mod common;

use std::process::Command;

use common::flow::{self, tokens_for};
use common::{e2e_dir, start_everything, Gateway, TestConfig};
use serde_json::{json, Value};

const POLICY: &str = r#"
[[group]]
name = "eng"
provider_groups = ["engineering"]

[[rule]]
name = "nobody reads the environment"
effect = "deny"
upstreams = ["everything", "v2"]
tools = ["get-env"]

[[rule]]
name = "eng uses echo and sums"
effect = "allow"
upstreams = ["everything"]
groups = ["eng"]
tools = ["echo", "get-sum", "toggle-*"]

[[rule]]
name = "operators only"
effect = "allow"
upstreams = ["ops"]
emails = ["ops@example.test"]

[[rule]]
name = "no echo on v2"
effect = "deny"
upstreams = ["v2"]
tools = ["echo"]

[[tool_scopes]]
upstreams = ["everything"]
tools = ["toggle-*"]
scopes = ["admin"]
"#;

/// A gateway with alice (group engineering) and the policy above; the policy file lives in
/// `dir`.
async fn gateway(dir: &tempfile::TempDir, everything: &str, v2: &str) -> Gateway {
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let config = TestConfig::new()
        .scope("mcp")
        .scope("admin")
        .upstream(
            "everything",
            "/everything",
            everything,
            "scopes = [\"mcp\"]",
        )
        .upstream("ops", "/ops", everything, "scopes = [\"mcp\"]")
        .upstream("v2", "/v2", v2, "scopes = [\"mcp\"]")
        .raw(&format!("[policy]\nfiles = [\"{}\"]", policy.display()))
        .alice("email = \"alice@example.test\"\ngroups = [\"engineering\"]")
        .build();
    Gateway::start(&config).await
}

fn start_v2_server() -> (common::ChildGuard, String) {
    let listener = common::listener();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let mut cmd = Command::new("node");
    cmd.arg(e2e_dir().join("mcp-v2-server.mjs"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    (common::spawn_listening(cmd, listener), url)
}

async fn post(
    gw: &Gateway,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn policies_decide_upstreams_tools_and_lists_end_to_end() {
    let (_everything, everything_url) = start_everything().await;
    let (_v2, v2_url) = start_v2_server();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&dir, &everything_url, &v2_url).await;

    // Allowed on `everything`; refused on `ops` (an allow-list of emails she is not on) at
    // sign-in already: a page says so and no code is issued.
    let everything = gw.url("/everything");
    let (_, tokens) = tokens_for(&gw, &everything).await;
    let token = tokens["access_token"].as_str().unwrap();
    let b = flow::browser();
    let client = flow::public_client(&gw).await;
    let r = b
        .get(flow::authorize_url(&gw, &client, &gw.url("/ops"), &[]))
        .send()
        .await
        .unwrap();
    let login = flow::page(&b, &gw, &flow::location(&r)).await;
    let (flow_id, csrf) = (flow::hidden(&login, "flow"), flow::hidden(&login, "csrf"));
    let form = [
        ("flow", flow_id.as_str()),
        ("csrf", csrf.as_str()),
        ("username", "alice"),
        ("password", "pw"),
    ];
    let r = flow::post_form(&b, &gw.url("/login/local"), None, &form).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Not allowed here") && page.contains("ops"),
        "{page}"
    );

    // The SDK client: the tool list (SSE from server-everything) holds only what she may
    // call; a denied call is a JSON-RPC error and the session goes on.
    let (ok, out, stderr) = common::run_node_json(
        "policy-client.mjs",
        &[&everything, token, "echo", "get-env"],
    );
    assert!(ok, "{out}\n{stderr}");
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"get-sum"),
        "{out}"
    );
    assert!(
        !tools.contains(&"get-env"),
        "a denied tool is not offered: {out}"
    );
    assert!(
        !tools.contains(&"get-tiny-image"),
        "no allow rule: not offered: {out}"
    );
    assert_eq!(out["first"]["text"], "Echo: hi", "{out}");
    assert_eq!(out["denied"]["ok"], false, "{out}");
    assert_eq!(out["denied"]["code"], -32003, "{out}");
    assert!(
        out["denied"]["message"]
            .as_str()
            .unwrap()
            .contains("get-env"),
        "{out}"
    );
    assert_eq!(
        out["again"]["text"], "Echo: hi",
        "the session survives: {out}"
    );
    assert_eq!(out["sessionAfter"], out["sessionId"]);
    // The denied call never reached server-everything: its line is authgate's own answer.
    gw.wait_for_access("the refused call", |l| l["reason"] == "policy")
        .await;

    // Step-up: a toggle tool needs `admin`; the 403 names what the token holds plus that.
    let r = post(&gw, "/everything", token, &[("mcp-protocol-version", "2025-06-18")], json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"toggle-simulated-logging","arguments":{}}})).await;
    assert_eq!(r.status(), 403);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"admin mcp\""), "{challenge}");

    // 2026-07-28 (stateless, JSON): `Mcp-Name` naming a denied tool is refused before the
    // upstream; the list is filtered and marked private.
    let (_, v2_tokens) = tokens_for(&gw, &gw.url("/v2")).await;
    let v2_token = v2_tokens["access_token"].as_str().unwrap();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": {}});
    let v2_headers = |method: &'static str, name: Option<&'static str>| {
        let mut h = vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
        ];
        if let Some(n) = name {
            h.push(("mcp-name", n));
        }
        h
    };
    let r = post(&gw, "/v2", v2_token, &v2_headers("tools/call", Some("echo")), json!({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"echo","arguments":{"message":"x"},"_meta": meta}})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], "c1", "{v}");
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let r = post(
        &gw,
        "/v2",
        v2_token,
        &v2_headers("tools/list", None),
        json!({"jsonrpc":"2.0","id":"l1","method":"tools/list","params":{"_meta": meta}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    // The SDK v2 server answers 2026-07-28 requests as plain JSON (server-everything above
    // answered SSE): both shapes are filtered.
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert!(
        r.headers().get("content-length").is_none(),
        "a filtered body is sent chunked"
    );
    let text = r.text().await.unwrap();
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&text);
    let v: Value = serde_json::from_str(data).unwrap_or_else(|_| panic!("{content_type}: {text}"));
    assert_eq!(v["id"], "l1", "{v}");
    assert_eq!(v["result"]["tools"], json!([]), "echo is not offered: {v}");
    assert_eq!(v["result"]["cacheScope"], "private", "{v}");
    // A header naming an allowed tool over a body calling a denied one is still a mismatch.
    let r = post(&gw, "/v2", v2_token, &v2_headers("tools/call", Some("get-sum")), json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}})).await;
    assert_eq!(r.status(), 400);

    // Policies reload with the config: a rule added by SIGHUP closes `everything` to alice,
    // and her token, valid a moment ago, is refused at once.
    let closed = format!(
        "{POLICY}\n[[rule]]\nname = \"alice is away\"\neffect = \"deny\"\nupstreams = [\"everything\"]\nemails = [\"alice@example.test\"]\n"
    );
    std::fs::write(dir.path().join("policy.toml"), closed).unwrap();
    common::signal(gw.child.id(), "-HUP");
    gw.wait_for_log("config reloaded").await;
    let ping = json!({"jsonrpc":"2.0","id":9,"method":"ping"});
    let r = post(&gw, "/everything", token, &[], ping).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "access_denied", "{body}");

    let metrics_lines: Vec<String> = gw
        .logs()
        .lines()
        .filter(|l| l.contains("policy: call denied"))
        .map(str::to_string)
        .collect();
    assert!(
        metrics_lines
            .iter()
            .any(|l| l.contains("nobody reads the environment")),
        "the log names the deciding rule: {metrics_lines:?}"
    );
}

#[tokio::test]
async fn policy_explain_and_test_use_the_files_check_reads() {
    let bin = env!("CARGO_BIN_EXE_authgate");
    let root = common::repo_root();
    let config = root.join("examples/policies.toml");
    let out = Command::new(bin)
        .args(["policy", "test", "--config"])
        .arg(&config)
        .arg(root.join("policies"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");

    let out = Command::new(bin)
        .args(["policy", "explain", "--config"])
        .arg(&config)
        .args([
            "--user",
            "alice@example.test",
            "--upstream",
            "everything",
            "--tool",
            "get-env",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("declared: demo-team (admin)"), "{stdout}");
    assert!(
        stdout.contains("denied by rule \"nobody reads the environment\""),
        "{stdout}"
    );
    assert!(stdout.contains("policies/tools.toml:"), "{stdout}");
    assert!(stdout.trim_end().ends_with("decision     DENY"), "{stdout}");

    // A failing case fails the run, naming the case and why.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wrong.test.toml"),
        "[[case]]\nname = \"expects the impossible\"\nuser = \"mallory@x.example\"\nupstream = \"admin\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["policy", "test", "--config"])
        .arg(&config)
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("FAIL  expects the impossible"), "{stdout}");
    assert!(stdout.contains("expected allow, got deny"), "{stdout}");
}

#[tokio::test]
async fn check_refuses_bad_policies_with_file_line_and_rule() {
    let bin = env!("CARGO_BIN_EXE_authgate");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("bad.toml");
    std::fs::write(
        &policy,
        r#"[[rule]]
name = "typo"
effect = "allow"
upstreams = ["evrything"]

[[rule]]
name = "never"
effect = "deny"
upstreams = ["everything"]
methods = ["prompts/*"]
tools = ["x"]

[[rule]]
name = "role of nothing"
effect = "allow"
upstreams = ["everything"]
groups = ["ghosts:admin"]
"#,
    )
    .unwrap();
    let config = dir.path().join("authgate.toml");
    let text = TestConfig::new()
        .scope("mcp")
        .upstream("everything", "/e", "http://127.0.0.1:9/mcp", "")
        .raw("[policy]\nfiles = [\"bad.toml\"]")
        .alice("")
        .build()
        .replace("{addr}", "127.0.0.1:1")
        .replace("{data}", &dir.path().join("data").display().to_string());
    std::fs::write(&config, text).unwrap();
    let out = Command::new(bin)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let at = policy.display().to_string();
    assert!(
        stderr.contains(&format!("{at}:4:"))
            && stderr.contains("no [[upstream]] is named `evrything`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rule \"never\".tools") && stderr.contains("can never match"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`ghosts` with a role must be declared with [[group]]"),
        "{stderr}"
    );
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}
