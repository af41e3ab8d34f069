//! Test harness: runs the real `authgate` binary on a loopback port with its own temp dir,
//! waits for it to answer, and kills it on drop. Also picks free ports for upstreams.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `url` until it answers 2xx, or panics after `deadline`.
pub async fn wait_http_ok(url: &str, deadline: Duration, what: &str) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            start.elapsed() < deadline,
            "{what} did not become ready at {url} within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts authgate with `config` (a TOML text in which `{port}` is replaced by the
    /// gateway's port and `{data}` by a fresh data dir), waits for `/healthz`.
    pub async fn start(config: &str) -> Self {
        Self::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), config, env).await
    }

    /// Starts on a port chosen by the caller (when the config of another process, such as an
    /// identity provider's redirect URI, must name it first).
    pub async fn start_on(port: u16, config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config
            .replace("{port}", &port.to_string())
            .replace("{data}", &dir.path().join("data").display().to_string());
        let path = dir.path().join("authgate.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
        cmd.args(["--log-format", "json", "run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn authgate");
        let mut gw = Self { child, port, dir };
        let start = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(gw.url("/healthz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("authgate exited early with {status}:\n{}", gw.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "authgate did not start:\n{}",
                gw.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        gw
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("authgate.toml")
    }

    /// Everything authgate wrote to stderr so far.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("stderr.log")) {
            f.read_to_string(&mut s).ok();
        }
        s
    }

    /// The JSON log lines with `target == authgate::access`.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "authgate::access")
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop (node servers and the like).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The e2e npm packages; panics with how to install them when absent (tests must not skip).
pub fn e2e_dir() -> PathBuf {
    let dir = repo_root().join("tests/e2e");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "the e2e npm packages are missing: run `npm ci --prefix tests/e2e` (tests/run.sh does)"
    );
    dir
}

/// Starts the unmodified server-everything (Streamable HTTP) on a free loopback port, the way
/// the demo does (bound to 127.0.0.1 by `examples/loopback-only.mjs`).
pub async fn start_everything() -> (ChildGuard, u16) {
    let dir = e2e_dir();
    let port = free_port();
    let child = Command::new("node")
        .arg("--import")
        .arg(repo_root().join("examples/loopback-only.mjs"))
        .arg(dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node (is Node.js installed?)");
    let guard = ChildGuard(child);
    let client = reqwest::Client::new();
    let start = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{port}/mcp"))
        .send()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server-everything did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (guard, port)
}

/// Starts the real `oidc-provider` (npm) as the upstream identity provider; returns the
/// guard and its issuer URL once it printed READY.
pub fn start_oidc_provider(
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
) -> (ChildGuard, String) {
    use std::io::BufRead;
    let port = free_port();
    let mut child = Command::new("node")
        .arg(e2e_dir().join("oidc-provider.mjs"))
        .args([
            "--port",
            &port.to_string(),
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
        ])
        .args(["--redirect-uri", redirect_uri])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let issuer = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("oidc-provider did not start: {line:?}"))
        .to_string();
    (guard, issuer)
}

/// Runs a node script from tests/e2e and parses the one JSON object it prints.
pub fn run_node_json(script: &str, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new("node")
        .arg(e2e_dir().join(script))
        .args(args)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!("{script} printed no JSON.\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    (out.status.success(), json, stderr)
}

/// Echoes what the upstream received, so tests can assert on it through the gateway.
pub async fn echo(req: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    use serde_json::{json, Value};
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                json!(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let seen = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    (
        [
            ("mcp-session-id", "upstream-session-1"),
            ("content-type", "application/json"),
        ],
        seen.to_string(),
    )
        .into_response()
}

/// An upstream that answers every request with [`echo`]; returns its port.
pub async fn start_echo_upstream() -> u16 {
    let app = axum::Router::new().fallback(axum::routing::any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}
