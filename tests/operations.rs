//! What an operator does with the real binary: reload a config under load (good, changed,
//! broken), scrape the metrics while a full login-to-revoke flow runs, read the audit trail
//! (and find no secret in it or in the log), administer the store from the CLI (list, revoke,
//! block, back up, restore, diagnose), migrate a store written by an older schema, and
//! replace the binary under load without a failed request.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use reqwest::cookie::CookieStore;
use reqwest::redirect::Policy;
use serde_json::{json, Value};

use common::flow::{self, tokens_for};
use common::{metric, scrape, Gateway, TestConfig};

const ADMIN_TOKEN: &str = "admin-token-for-the-tests-0123456789";

/// An upstream that answers every request with `{"upstream": tag, "path": ...}`. It reads
/// the body first, as a real server does: hyper closes a connection whose request body it
/// left unread, and a gateway that reuses it at that instant answers 502 (seen in CI).
async fn tagged_upstream(tag: &'static str) -> String {
    let app = axum::Router::new().fallback(any(move |req: axum::extract::Request| async move {
        let path = req.uri().path().to_string();
        let _ = axum::body::to_bytes(req.into_body(), 1 << 20).await;
        axum::Json(json!({"upstream": tag, "path": path}))
    }));
    format!("http://{}", common::serve(app).await)
}

/// The gateway the operator runs: an admin listener with a token, an audit file, one
/// protected route `/mcp` to `up`, the local user alice.
fn ops_config(up: &str, extra: &str) -> String {
    TestConfig::new()
        .auth("registration_rate_limit = 0")
        .scope("mcp:tools")
        .upstream("tools", "/mcp", &format!("{up}/mcp"), "scopes = [\"mcp:tools\"]")
        .alice("")
        .raw(&format!("[admin]\nlisten = \"{{admin}}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n[audit]\nfile = \"audit.jsonl\""))
        .raw(extra)
        .build()
}

/// `authgate <args>` against `gw`'s admin API.
fn cli(gw: &Gateway, args: &[&str]) -> (bool, String, String) {
    common::admin_cli(gw, ADMIN_TOKEN, args)
}

/// Requests from `workers` tasks until stopped: (answered 200, anything else).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<Failure>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A request of a [`Load`] that did not get 200.
#[derive(Debug)]
struct Failure {
    sent: std::time::SystemTime,
    /// Whether an HTTP answer came back (otherwise the connection closed or reset first).
    answered: bool,
    what: String,
}

impl Load {
    /// With `fresh`, every request opens a connection of its own.
    fn start(url: String, token: Option<String>, workers: usize, fresh: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                let (url, token) = (url.clone(), token.clone());
                tokio::spawn(async move {
                    let mut client = reqwest::Client::builder();
                    if fresh {
                        client = client.pool_max_idle_per_host(0);
                    }
                    let client = client.build().unwrap();
                    while !stop.load(Ordering::SeqCst) {
                        let mut req = client.post(&url).body("{}");
                        if let Some(t) = &token {
                            req = req.bearer_auth(t);
                        }
                        let sent = std::time::SystemTime::now();
                        match req.send().await {
                            Ok(r) if r.status() == 200 => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            other => failures.lock().unwrap().push(Failure {
                                sent,
                                answered: other.is_ok(),
                                what: format!("{other:?}"),
                            }),
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failures,
            tasks,
        }
    }

    /// Waits until `n` requests were answered.
    async fn until(&self, n: usize) {
        let ok = &self.ok;
        common::eventually("the load's requests", || {
            (ok.load(Ordering::SeqCst) >= n).then_some(())
        })
        .await
    }

    /// Stops and says how many answered 200 and how many did not, with the last failure.
    async fn stop(self) -> (usize, usize, String) {
        let (ok, failures) = self.stop_with_failures().await;
        let last = failures.last().map(|f| f.what.clone()).unwrap_or_default();
        (ok, failures.len(), last)
    }

    /// Stops and returns how many answered 200, and every failure.
    async fn stop_with_failures(self) -> (usize, Vec<Failure>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

/// What `url` answers with `token`: the tagged upstream's name.
async fn which_upstream(url: &str, token: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["upstream"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_applies_good_files_refuses_broken_ones_and_drops_no_request() {
    let (a, b) = (tagged_upstream("a").await, tagged_upstream("b").await);
    let gw = Gateway::start(&ops_config(&a, "")).await;
    let (_, tokens) = tokens_for(&gw, &gw.url("/mcp")).await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let load = Load::start(gw.url("/mcp"), Some(token.clone()), 4, false);

    // A changed route, a new upstream and a value that needs a restart, through the CLI.
    let running = std::fs::read_to_string(gw.config_path()).unwrap();
    let changed = running
        .replace(&format!("{a}/mcp"), &format!("{b}/mcp"))
        .replace("[server]\n", "[server]\nthreads = 3\n")
        + &format!(
            "\n[[upstream]]\nname = \"new\"\npath = \"/new\"\nauth = \"none\"\nurl = \"{a}/x\"\n"
        );
    std::fs::write(gw.config_path(), &changed).unwrap();
    let (ok, out, err) = cli(&gw, &["reload"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("upstream `tools` changed") && out.contains("upstream `new` added"),
        "{out}"
    );
    assert!(
        out.contains("server.threads changed; it applies after a restart"),
        "{out}"
    );
    assert_eq!(
        which_upstream(&gw.url("/mcp"), &token).await.as_deref(),
        Some("b")
    );
    let r = reqwest::Client::new()
        .post(gw.url("/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the new route after the reload");

    // A broken file by SIGHUP: refused with check's message, counted, the config stays.
    std::fs::write(
        gw.config_path(),
        format!("{changed}\n[[scope]]\nname = 7\n"),
    )
    .unwrap();
    common::signal(gw.child.id(), "-HUP");
    gw.wait_for_log("reload refused").await;
    assert!(
        gw.logs().contains("authgate.toml:"),
        "the refusal names the file and line"
    );
    let (ok, _, err) = cli(&gw, &["reload"]);
    assert!(
        !ok && err.contains("name") && err.contains("reload refused"),
        "{err}"
    );
    assert_eq!(
        which_upstream(&gw.url("/mcp"), &token).await.as_deref(),
        Some("b")
    );

    load.until(100).await;
    let (answered, failed, last) = load.stop().await;
    assert_eq!(failed, 0, "requests failed during the reloads: {last}");
    assert!(answered >= 100, "only {answered} requests");
    let m = scrape(&gw).await;
    assert_eq!(
        metric(&m, "authgate_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "authgate_config_reloads_total",
            &[("result", "refused")]
        ),
        2.0
    );
}

/// A cookie jar the test can read.
fn browser_with_jar() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let b = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .build()
        .unwrap();
    (b, jar)
}

#[tokio::test]
async fn metrics_and_audit_follow_a_full_flow_and_no_secret_is_written() {
    let up = common::start_echo_upstream().await;
    let gw = Gateway::start(&ops_config(&up, "")).await;
    let before = scrape(&gw).await;
    let c = reqwest::Client::new();
    assert_eq!(c.post(gw.url("/mcp")).send().await.unwrap().status(), 401);
    let client = flow::public_client(&gw).await;
    let (b, jar) = browser_with_jar();
    let back = flow::login_and_approve(
        &gw,
        &b,
        &flow::authorize_url(&gw, &client, &gw.url("/mcp"), &[]),
    )
    .await;
    let code = flow::query_of(&back)["code"].clone();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", flow::VERIFIER),
        ("client_id", client.as_str()),
        ("redirect_uri", flow::REDIRECT),
    ];
    let (s, first) = flow::token(&gw, &exchange).await;
    assert_eq!(s, 200, "{first}");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}});
    let access1 = first["access_token"].as_str().unwrap().to_string();
    let r = c
        .post(gw.url("/mcp"))
        .bearer_auth(&access1)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refresh1 = first["refresh_token"].as_str().unwrap().to_string();
    let (s, second) = flow::token(
        &gw,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", &refresh1),
        ],
    )
    .await;
    assert_eq!(s, 200, "{second}");
    let refresh2 = second["refresh_token"].as_str().unwrap().to_string();
    let access2 = second["access_token"].as_str().unwrap().to_string();
    let r = c
        .post(gw.url("/revoke"))
        .form(&[("token", refresh2.as_str()), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(gw.url("/mcp"))
        .bearer_auth(&access2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The code again: a replay.
    let (s, _) = flow::token(&gw, &exchange).await;
    assert_eq!(s, 400);

    // Metrics moved by what happened.
    let after = scrape(&gw).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    for (name, labels, expected) in [
        (
            "authgate_registrations_total",
            vec![("kind", "dcr"), ("result", "ok")],
            1.0,
        ),
        (
            "authgate_logins_total",
            vec![("provider", "local"), ("result", "ok")],
            1.0,
        ),
        ("authgate_consent_total", vec![("event", "shown")], 1.0),
        ("authgate_consent_total", vec![("event", "given")], 1.0),
        (
            "authgate_authorization_codes_total",
            vec![("event", "issued")],
            1.0,
        ),
        (
            "authgate_authorization_codes_total",
            vec![("event", "redeemed")],
            1.0,
        ),
        (
            "authgate_authorization_codes_total",
            vec![("event", "replayed")],
            1.0,
        ),
        (
            "authgate_tokens_issued_total",
            vec![("grant_type", "authorization_code")],
            1.0,
        ),
        (
            "authgate_tokens_issued_total",
            vec![("grant_type", "refresh_token")],
            1.0,
        ),
        ("authgate_refreshes_total", vec![("result", "rotated")], 1.0),
        ("authgate_revocations_total", vec![], 1.0),
        (
            "authgate_auth_decisions_total",
            vec![("result", "allowed")],
            1.0,
        ),
        (
            "authgate_auth_decisions_total",
            vec![("result", "denied"), ("reason", "missing")],
            1.0,
        ),
        (
            "authgate_auth_decisions_total",
            vec![("result", "denied"), ("reason", "invalid")],
            1.0,
        ),
        (
            "authgate_mcp_requests_total",
            vec![
                ("method", "tools/call"),
                ("tool", "echo"),
                ("upstream", "tools"),
            ],
            1.0,
        ),
        (
            "authgate_token_cache_lookups_total",
            vec![("result", "miss")],
            // The first use of each access token, and the revocation's look-up.
            3.0,
        ),
    ] {
        assert_eq!(delta(name, &labels), expected, "{name} {labels:?}");
    }
    assert!(
        delta(
            "authgate_requests_total",
            &[("upstream", "tools"), ("status", "2xx")]
        ) >= 1.0
    );
    assert!(delta("authgate_requests_total", &[("upstream", "authgate")]) >= 6.0);
    assert!(metric(&after, "authgate_token_validation_seconds_count", &[]) >= 3.0);
    assert!(metric(&after, "authgate_store_write_seconds_count", &[]) >= 1.0);
    assert_eq!(
        metric(&after, "authgate_store_entries", &[("kind", "clients")]),
        1.0
    );
    assert_eq!(metric(&after, "authgate_build_info", &[]), 1.0);

    // The audit trail: one JSON line per security event, with the same fields.
    let audit = std::fs::read_to_string(gw.dir.path().join("audit.jsonl")).unwrap();
    let events: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for expected in [
        "client_registered",
        "login",
        "consent_given",
        "code_issued",
        "token_issued",
        "token_refreshed",
        "code_replayed",
        "revoked",
    ] {
        assert!(names.contains(&expected), "no {expected} in {names:?}");
    }
    for e in &events {
        assert!(
            e["timestamp"].is_string() && e["outcome"].is_string(),
            "{e}"
        );
    }
    let login = events.iter().find(|e| e["event"] == "login").unwrap();
    assert_eq!(login["user"], "local:alice");
    assert_eq!(login["provider"], "local");
    assert_eq!(login["client_id"], client.as_str());
    assert!(login["remote_addr"].is_string(), "{login}");
    let replay = events
        .iter()
        .find(|e| e["event"] == "code_replayed")
        .unwrap();
    assert_eq!(replay["outcome"], "refused");

    // No token, code, password or cookie value in the audit trail or the log.
    let cookies = jar
        .cookies(&gw.url("/").parse().unwrap())
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut secrets = vec![access1, refresh1, access2, refresh2, code];
    secrets.extend(
        cookies
            .split("; ")
            .filter_map(|c| c.split_once('='))
            .map(|(_, v)| v.to_string()),
    );
    assert!(secrets.len() >= 6, "{secrets:?}");
    let logs = gw.logs();
    for s in &secrets {
        assert!(
            !audit.contains(s.as_str()),
            "a secret in the audit trail: {s}"
        );
        assert!(!logs.contains(s.as_str()), "a secret in the log: {s}");
    }
    assert!(!audit.contains("\"pw\"") && !logs.contains("password\":\"pw"));

    // Refusals by authgate itself carry their reason in the access log.
    let access = gw.access_log();
    assert!(
        access
            .iter()
            .any(|l| l["path"] == "/token" && l["status"] == 400 && l["reason"] == "invalid_grant"),
        "{access:#?}"
    );
    assert!(access
        .iter()
        .any(|l| l["path"] == "/mcp" && l["status"] == 401 && l["reason"] == "invalid"));

    // Every metric the example Grafana dashboard queries exists.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("examples/grafana-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let families: std::collections::HashSet<String> =
        authgate::metrics::metrics().names().into_iter().collect();
    // What /metrics shows is all declared, and the README lists every metric.
    for key in after.keys() {
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(families.contains(family), "{family} is not declared");
    }
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    for name in &families {
        assert!(
            readme.contains(&format!("`{name}`")),
            "the README does not list {name}"
        );
    }
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("authgate_"))
            {
                queried += 1;
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(
                    families.contains(family),
                    "the dashboard queries {name}, which authgate does not have"
                );
            }
        }
    }
    assert!(queried >= 20);
}

#[tokio::test]
async fn the_admin_cli_lists_revokes_blocks_backs_up_and_diagnoses() {
    let up = tagged_upstream("a").await;
    let gw = Gateway::start(&ops_config(&up, "")).await;
    let (client, tokens) = tokens_for(&gw, &gw.url("/mcp")).await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        which_upstream(&gw.url("/mcp"), &token).await.as_deref(),
        Some("a")
    );

    let (ok, out, err) = cli(&gw, &["admin", "clients"]);
    assert!(ok && out.contains(&client), "{out}{err}");
    let (ok, out, _) = cli(&gw, &["admin", "users"]);
    assert!(
        ok && out.contains("local:alice") && out.contains("(1 logins)"),
        "{out}"
    );
    let (ok, out, _) = cli(&gw, &["admin", "stats"]);
    assert!(
        ok && out.contains("grants") && out.contains("access_tokens"),
        "{out}"
    );
    let (ok, out, _) = cli(&gw, &["diagnose", "--client", &client]);
    assert!(ok, "{out}");
    for step in [
        "registration",
        "authorize",
        "sign in",
        "code",
        "token",
        "call",
    ] {
        assert!(out.contains(step), "diagnose shows no {step}:\n{out}");
    }
    assert!(out.contains("→ connected"), "{out}");

    // Blocking refuses the token already issued, at once; unblocking lets it through again.
    let (ok, out, _) = cli(&gw, &["admin", "block", "local:alice"]);
    assert!(ok && out.contains("blocked local:alice"), "{out}");
    let r = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("blocked"));
    let (ok, _, _) = cli(&gw, &["admin", "unblock", "local:alice"]);
    assert!(ok);
    assert_eq!(
        which_upstream(&gw.url("/mcp"), &token).await.as_deref(),
        Some("a")
    );

    // A backup, then the grant revoked through the CLI: the next request fails.
    let backup = gw.dir.path().join("backup.redb");
    let (ok, out, err) = cli(&gw, &["admin", "backup", backup.to_str().unwrap()]);
    assert!(ok && backup.exists(), "{out}{err}");
    let (ok, out, _) = cli(
        &gw,
        &[
            "--log-format",
            "text",
            "admin",
            "--json",
            "grants",
            "--user",
            "local:alice",
        ],
    );
    assert!(ok, "{out}");
    let grants: Value = serde_json::from_str(&out).unwrap();
    let grant_id = grants[0]["grant_id"].as_str().unwrap().to_string();
    assert!(grants[0].get("upstream_credential").is_none());
    let (ok, out, _) = cli(&gw, &["admin", "revoke", &grant_id]);
    assert!(ok && out.contains("revoked grant"), "{out}");
    let r = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the revoked token still works");
    let audit = std::fs::read_to_string(gw.dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"admin_action\"") && audit.contains("revoked grant"));

    // A wrong admin token gets nothing.
    let r = reqwest::Client::new()
        .get(gw.admin_url("/admin/stats"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A second authgate on the same data directory (on other ports) is refused while this
    // one runs.
    let other_ports = std::fs::read_to_string(gw.config_path())
        .unwrap()
        .replace(&gw.addr.to_string(), "127.0.0.1:0")
        .replace(&gw.admin.unwrap().to_string(), "127.0.0.2:0");
    let second_config = gw.dir.path().join("second.toml");
    std::fs::write(&second_config, other_ports).unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_authgate"));
    second.args(["run", "--config"]).arg(&second_config);
    let out = common::output_within(second);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("another authgate is running"),
        "{stderr}"
    );

    // Restore the backup on the stopped gateway: the revoked grant is back.
    let config = gw.config_path();
    let dir = gw.dir.path().to_path_buf();
    common::signal(gw.child.id(), "-TERM");
    let mut gw = gw;
    common::eventually("the gateway stopping", || gw.child.try_wait().unwrap()).await;
    let mut restore = Command::new(env!("CARGO_BIN_EXE_authgate"));
    restore
        .args(["restore", "--config"])
        .arg(&config)
        .arg(&backup);
    let out = common::output_within(restore);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept as"));
    let stats = authgate::store::RedbStore::open(&dir.join("data")).unwrap();
    use authgate::store::Store;
    let grants = stats.list_grants().await.unwrap();
    assert!(
        grants.iter().any(|g| g.grant_id.as_str() == grant_id),
        "the backup's grant is back"
    );
}

#[tokio::test]
async fn a_store_of_schema_version_1_is_migrated_and_its_tokens_keep_working() {
    let fixture = common::repo_root().join("tests/fixtures/store-v1");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("tokens.json")).unwrap())
            .unwrap();
    let up = tagged_upstream("migrated").await;
    let (addr, guard) = common::reserve_addr();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["authgate.redb", "session.key"] {
        std::fs::copy(fixture.join(f), data.join(f)).unwrap();
    }
    let store = data.join("authgate.redb");
    assert_eq!(authgate::store::schema_version(&store).unwrap(), 1);
    let config = ops_config(&up, "")
        .replace("{addr}", &addr.to_string())
        .replace("{data}", &data.display().to_string());
    let config_path = dir.path().join("authgate.toml");
    std::fs::write(&config_path, config.replace("{admin}", "127.0.0.1:1")).unwrap();

    // A dry run says what would change and changes nothing.
    let mut dry = Command::new(env!("CARGO_BIN_EXE_authgate"));
    dry.args(["migrate", "--dry-run", "--config"])
        .arg(&config_path);
    let out = common::output_within(dry);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 → 2") && stdout.contains("users"),
        "{stdout}"
    );
    assert_eq!(authgate::store::schema_version(&store).unwrap(), 1);

    // The gateway migrates at start (after a backup of the file) and the old tokens work.
    let gw = Gateway::start_at(addr, guard, dir, &config, &[]).await;
    assert_eq!(
        authgate::store::schema_version(&store).unwrap(),
        authgate::store::SCHEMA_VERSION
    );
    let backups: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("authgate.redb.v1-backup-")
        })
        .collect();
    assert_eq!(backups.len(), 1, "no backup before the migration");
    gw.wait_for_log("store migration").await;
    let access = info["access_token"].as_str().unwrap();
    assert_eq!(
        which_upstream(&gw.url("/mcp"), access).await.as_deref(),
        Some("migrated")
    );
    let (s, refreshed) = flow::token(
        &gw,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", info["client_id"].as_str().unwrap()),
            ("refresh_token", info["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{refreshed}");
    // The migration filled the list of people from the existing grants.
    let (ok, out, _) = cli(&gw, &["admin", "users"]);
    assert!(ok && out.contains("local:alice"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_is_replaced_under_load_and_every_request_read_is_answered() {
    let up = tagged_upstream("a").await;
    let config = TestConfig::new()
        .server("shutdown_grace = \"10s\"")
        .public("open", "/open", &format!("{up}/x"))
        .build();
    let mut old = Gateway::start(&config).await;
    // New connections, and kept-alive ones.
    let fresh = Load::start(old.url("/open"), None, 2, true);
    let kept = Load::start(old.url("/open"), None, 2, false);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The new process waits for the sockets; SIGQUIT to the old one hands them over.
    let log = std::fs::File::create(old.dir.path().join("new.log")).unwrap();
    let mut new = Command::new(env!("CARGO_BIN_EXE_authgate"));
    new.args(["--log-format", "json", "run", "--upgrade", "--config"])
        .arg(old.config_path())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let new = common::ChildGuard(new.spawn().unwrap());
    let sock = old.dir.path().join("data/upgrade.sock");
    common::eventually("the new process waiting for the sockets", || {
        sock.exists().then_some(())
    })
    .await;
    common::signal(old.child.id(), "-QUIT");
    let status = common::eventually("the old process exiting after the handover", || {
        old.child.try_wait().unwrap()
    })
    .await;
    assert!(status.success(), "{status}");
    fresh.until(fresh.ok.load(Ordering::SeqCst) + 50).await;
    let (answered, failures) = fresh.stop_with_failures().await;
    let (kept_answered, kept_failed, kept_last) = kept.stop().await;
    let new_log = std::fs::read_to_string(old.dir.path().join("new.log")).unwrap();
    let old_log = old.logs();
    assert!(
        answered > 100 && kept_answered > 100,
        "{answered} {kept_answered}"
    );
    // Every request either process read was answered 200.
    for (who, log) in [("old", &old_log), ("new", &new_log)] {
        for line in log.lines().filter(|l| l.contains("authgate::access")) {
            assert!(line.contains("\"status\":200"), "{who}: {line}");
        }
    }
    // When the old process stops accepting, Pingora closes the connections it has accepted
    // whose request has not arrived yet (as nginx closes idle ones): a client that opened one
    // in that instant sees it closed unanswered, its request never read. Nothing else fails.
    let stopped = old_log
        .lines()
        .find(|l| l.contains("Broadcasting graceful shutdown"))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| humantime::parse_rfc3339(v["timestamp"].as_str()?).ok())
        .expect("the old process logs when it stops accepting");
    // (The window is generous: on a loaded 2-core machine a client task can sit for a long
    // while between opening its connection and writing its request.)
    for f in &failures {
        let apart = match stopped.duration_since(f.sent) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(
            !f.answered && apart < Duration::from_secs(1),
            "a request on a new connection failed during the upgrade, {apart:?} from the instant \
             the old process stopped accepting: {f:?}\nold:\n{old_log}\nnew:\n{new_log}"
        );
    }
    assert!(failures.len() <= 2, "{failures:?}");
    // Pingora also closes idle kept-alive connections when the old process stops: a request
    // sent on one at that very moment is reset (a client that does not retry sees it). At
    // most one per connection.
    assert!(
        kept_failed <= 2,
        "{kept_failed} requests on kept-alive connections failed: {kept_last}"
    );
    // The new process serves alone now, on the same address.
    assert_eq!(
        reqwest::get(old.url("/healthz")).await.unwrap().status(),
        200
    );
    assert!(new_log.contains("authgate listening"), "{new_log}");
    drop(new);
}
