//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! tests/e2e, run on the Node 22 it needs, also from npm): its `authorization` family
//! against authgate's issuer, and its `server` family against server-everything directly,
//! through a public authgate route, and through a protected one with a real token. The
//! counts asserted are the ones the README states: a drop fails, and so does a gain (update
//! the README with it).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use axum::routing::any;
use serde_json::{json, Value};

use common::flow::tokens_for;
use common::{e2e_dir, start_everything, Gateway, TestConfig};

/// The README's figures.
const AUTH_CHECKS: usize = 3;
const SERVER_CHECKS: usize = 65;
const SERVER_DIRECT_PASSES: usize = 45;
const SERVER_THROUGH_PASSES: usize = 46;
/// The one check that passes only through authgate (its Origin check), as scenario / id.
const GAINED: &str = "dns-rebinding-protection";

fn node22() -> std::path::PathBuf {
    let node = e2e_dir().join("node_modules/.bin/node");
    assert!(
        node.exists(),
        "Node 22 from npm is missing: run `npm ci --prefix tests/e2e`"
    );
    node
}

/// `/mcp` protected by scope `mcp:tools`, to `upstream`; alice signs in with "pw".
fn protected(upstream: &str) -> String {
    TestConfig::new()
        .scope("mcp:tools")
        .upstream("everything", "/mcp", upstream, "scopes = [\"mcp:tools\"]")
        .alice("")
        .build()
}

#[tokio::test]
async fn authorization_family_passes_against_authgate() {
    let gw = Gateway::start(&protected("http://127.0.0.1:9/mcp")).await;
    // The suite's callback server listens on a socket bound here on 127.0.0.1 (the host the
    // suite puts in its redirect URI), inherited as fd 3. authgate matches loopback redirect
    // URIs on any port, so the registration names none.
    let callback = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = callback.local_addr().unwrap().port().to_string();
    let (status, reg) = common::flow::register(
        &gw,
        json!({
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
            "client_name": "MCP conformance suite",
        }),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    let mut cmd = Command::new(node22());
    cmd.arg(e2e_dir().join("conformance-auth.mjs"))
        .args(["--issuer", &gw.url(""), "--client-id"])
        .arg(reg["client_id"].as_str().unwrap())
        .args(["--resource", &gw.url("/mcp"), "--port", &port])
        .args(["--fill", r#"{"username":"alice","password":"pw"}"#]);
    common::pass_listener(&mut cmd, &callback);
    let out = common::output_within(cmd);
    drop(callback);
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON from the conformance driver:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = result["checks"].as_array().unwrap();
    for c in checks {
        eprintln!(
            "conformance authorization: {} / {}: {}",
            c["scenario"], c["id"], c["status"]
        );
    }
    let not_passed: Vec<&Value> = checks.iter().filter(|c| c["status"] != "SUCCESS").collect();
    assert!(
        not_passed.is_empty(),
        "checks that did not pass:\n{not_passed:#?}\n{result:#}\nauthgate:\n{}",
        gw.logs()
    );
    assert_eq!(
        checks.len(),
        AUTH_CHECKS,
        "the README says {AUTH_CHECKS}: {result:#}"
    );
    let ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    for expected in [
        "authorization-server-metadata",
        "authorization-server-metadata-cimd",
        "authorization-code-grant",
    ] {
        assert!(ids.contains(&expected), "{expected}: {result:#}");
    }
    assert_eq!(
        result["exitCode"], 0,
        "the suite passed every check but exited with {result:#}"
    );
}

/// One run of the suite's server family: check ("scenario / id / name") → status, and
/// whether the suite exited 0.
struct ServerRun {
    checks: BTreeMap<String, String>,
    exit_ok: bool,
}

impl ServerRun {
    /// Runs the suite on a blocking thread: the shim it may talk to runs on this runtime.
    async fn against(url: String) -> Self {
        tokio::task::spawn_blocking(move || Self::run(&url))
            .await
            .unwrap()
    }

    fn run(url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(node22());
        cmd.arg(e2e_dir().join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
            .args(["server", "--url", url, "--timeout", "15000", "-o"])
            .arg(dir.path());
        let out = common::output_within(cmd);
        let mut checks = BTreeMap::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let scenario = name.split("-20").next().unwrap().to_string();
            let list: Vec<Value> =
                serde_json::from_slice(&std::fs::read(path.join("checks.json")).unwrap()).unwrap();
            for c in list {
                let key = format!(
                    "{scenario} / {} / {}",
                    c["id"].as_str().unwrap_or(""),
                    c["name"].as_str().unwrap_or("")
                );
                checks.insert(key, c["status"].as_str().unwrap_or("").to_string());
            }
        }
        assert!(
            !checks.is_empty(),
            "the suite wrote no results for {url}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            checks,
            exit_ok: out.status.success(),
        }
    }

    fn passed(&self) -> Vec<&String> {
        self.checks
            .iter()
            .filter(|(_, s)| *s == "SUCCESS")
            .map(|(k, _)| k)
            .collect()
    }

    /// Checks with any other status (FAILURE, WARNING, SKIPPED, ...).
    fn not_passed(&self) -> usize {
        self.checks.len() - self.passed().len()
    }

    /// What passes here and not in `other`.
    fn passes_beyond(&self, other: &ServerRun) -> Vec<&String> {
        self.passed()
            .into_iter()
            .filter(|k| other.checks.get(*k).map(String::as_str) != Some("SUCCESS"))
            .collect()
    }

    /// The suite's exit code agrees with its checks: 0 exactly when none failed.
    fn assert_exit_consistent(&self, what: &str) {
        let failed = self.checks.values().any(|s| s == "FAILURE");
        assert_eq!(
            self.exit_ok, !failed,
            "{what}: exit status does not match the checks"
        );
    }
}

/// A forwarding hop on 127.0.0.1 in front of a gateway, streaming bodies both ways, adding
/// `Authorization: Bearer <token>` when given one (the suite itself cannot send a token).
/// Every run through authgate goes through one: the suite's DNS-rebinding scenario only runs
/// against a localhost URL, and test gateways listen on loopback IPs of their own. The hop
/// replaces Host and passes Origin, which is what authgate checks. Returns its `/mcp` URL.
async fn forwarder(target: String, token: Option<String>) -> String {
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(any(move |req: axum::extract::Request| {
        let (client, target, token) = (client.clone(), target.clone(), token.clone());
        async move {
            let (parts, body) = req.into_parts();
            let url = format!(
                "{target}{}",
                parts.uri.path_and_query().map_or("", |p| p.as_str())
            );
            let mut headers = parts.headers.clone();
            headers.remove(axum::http::header::HOST);
            let mut request = client.request(parts.method, url).headers(headers);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let upstream = request
                .body(reqwest::Body::wrap_stream(body.into_data_stream()))
                .send()
                .await
                .unwrap();
            let mut answer = axum::response::Response::builder().status(upstream.status());
            for (k, v) in upstream.headers() {
                if k != "transfer-encoding" && k != "connection" {
                    answer = answer.header(k, v);
                }
            }
            answer
                .body(axum::body::Body::from_stream(upstream.bytes_stream()))
                .unwrap()
        }
    }));
    format!("http://{}/mcp", common::serve(app).await)
}

#[tokio::test]
async fn server_family_through_authgate_matches_direct() {
    let (_everything, mcp_url) = start_everything().await;
    let public = Gateway::start(
        &TestConfig::new()
            .public("everything", "/mcp", &mcp_url)
            .build(),
    )
    .await;
    let guarded = Gateway::start(&protected(&mcp_url)).await;
    let (_, tokens) = tokens_for(&guarded, &guarded.url("/mcp")).await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let to_public = forwarder(public.url(""), None).await;
    let to_guarded = forwarder(guarded.url(""), Some(token)).await;

    let direct = ServerRun::against(mcp_url).await;
    let through = ServerRun::against(to_public).await;
    let with_token = ServerRun::against(to_guarded).await;
    for (name, run) in [
        ("direct", &direct),
        ("public route", &through),
        ("protected route", &with_token),
    ] {
        eprintln!(
            "conformance server family, {name}: {} passed of {}",
            run.passed().len(),
            run.checks.len()
        );
        run.assert_exit_consistent(name);
        assert_eq!(run.checks.len(), SERVER_CHECKS, "{name}: {:#?}", run.checks);
    }
    assert_eq!(
        direct.passed().len(),
        SERVER_DIRECT_PASSES,
        "{:#?}",
        direct.checks
    );
    for (name, run, gw) in [
        ("public route", &through, &public),
        ("protected route", &with_token, &guarded),
    ] {
        let lost = direct.passes_beyond(run);
        assert!(
            lost.is_empty(),
            "{name}: passes directly but not through authgate: {lost:#?}\n{}",
            gw.logs()
        );
        let gained = run.passes_beyond(&direct);
        assert!(
            gained.len() == 1 && gained[0].contains(GAINED),
            "{name}: gained {gained:#?}, the README says only {GAINED}"
        );
        assert_eq!(run.passed().len(), SERVER_THROUGH_PASSES, "{name}");
        assert_eq!(run.not_passed(), direct.not_passed() - 1, "{name}");
    }
    // The protected run really went through the token check: requests were authenticated
    // as alice (the access log names the user), and none was turned away.
    guarded
        .wait_for_access("an MCP request authenticated as alice", |l| {
            l["route"] == "/mcp"
                && l["status"] == 200
                && l["user"].as_str().is_some_and(|u| u.contains("alice"))
        })
        .await;
    assert!(
        !guarded
            .access_log()
            .iter()
            .any(|l| l["route"] == "/mcp" && l["status"] == 401),
        "some suite requests reached the protected route without the token"
    );
}
