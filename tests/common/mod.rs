//! Test harness: runs the real `authgate` binary, real Node.js programs (server-everything,
//! oidc-provider, the SDK clients) and upstreams written in the tests, and kills them on
//! drop. Every wait has a deadline; nothing sleeps to synchronise.
//!
//! Addresses: upstreams written here and Node.js servers get a listener the test bound to
//! 127.0.0.1 port 0 (Node.js programs inherit it as fd 3). authgate binds its own listeners
//! (Pingora has no way to adopt one), so it gets an address on a loopback IP no other test
//! process uses (127.0.0.0/8 is all loopback), picked under a lock this process holds until
//! it listens: no other process or thread can take the port in between.
#![allow(dead_code)]

pub mod config;
pub mod flow;
pub mod postgres;

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use config::TestConfig;

/// How long any one wait may take before the test fails with what it saw.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// This test process's own loopback address: 127.a.b.c from its pid (below 2^22 on Linux).
pub fn loopback_ip() -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        1 + ((pid >> 16) & 0x3f) as u8,
        (pid >> 8) as u8,
        pid as u8,
    )
}

/// Held from choosing a gateway's port until it listens there.
static PORTS: Mutex<()> = Mutex::new(());

/// An address for a gateway: a free port on this process's loopback IP, with the guard that
/// keeps this process from choosing it again until [`Gateway::start_at`] has it listening.
pub fn reserve_addr() -> (SocketAddr, MutexGuard<'static, ()>) {
    let guard = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let addr = TcpListener::bind((loopback_ip(), 0))
        .unwrap()
        .local_addr()
        .unwrap();
    (addr, guard)
}

/// A listener on port 0 of 127.0.0.1, to hand to a server (where servers usually run;
/// gateways use other loopback IPs, so these never collide with them).
pub fn listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

/// A socket bound to a port of 127.0.0.1 but not listening yet: connections to it are
/// refused until the test calls `listen`, and no one else can take the port.
pub fn bound_socket() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    socket
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what} did not happen within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `url` until it answers 2xx.
pub async fn wait_http_ok(url: &str, what: &str) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what} did not become ready at {url}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The admin listener, when the config has `{admin}`.
    pub admin: Option<SocketAddr>,
}

impl Gateway {
    /// Starts authgate with `config` ({addr} and {data} filled in), waits for `/healthz`.
    pub async fn start(config: &str) -> Self {
        Self::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let (addr, guard) = reserve_addr();
        Self::start_at(addr, guard, tempfile::tempdir().unwrap(), config, env).await
    }

    /// Starts on an address reserved first (when another process's config must name it),
    /// with `dir` as its working directory (a restart passes the previous one on).
    ///
    /// The guard is held across awaits on purpose, until authgate listens: each test has its
    /// own thread and runtime, so another test reserving meanwhile only waits. (Starting two
    /// gateways concurrently in one test would deadlock; tests start them one after another.)
    #[allow(clippy::await_holding_lock)]
    pub async fn start_at(
        addr: SocketAddr,
        guard: MutexGuard<'static, ()>,
        dir: tempfile::TempDir,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        // A second address for the admin listener, chosen under the same lock.
        let admin = config.contains("{admin}").then(|| {
            TcpListener::bind((addr.ip(), 0))
                .unwrap()
                .local_addr()
                .unwrap()
        });
        let config = config
            .replace("{addr}", &addr.to_string())
            .replace("{admin}", &admin.map(|a| a.to_string()).unwrap_or_default())
            .replace("{data}", &dir.path().join("data").display().to_string());
        let path = dir.path().join("authgate.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("stderr.log"))
            .unwrap();
        // AUTHGATE_BIN runs a test against another build (e.g. to show a fix fails before).
        let bin = std::env::var("AUTHGATE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_authgate").to_string());
        let mut cmd = Command::new(bin);
        cmd.args(["--log-format", "json", "run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn authgate");
        let mut gw = Self {
            child,
            addr,
            port: addr.port(),
            dir,
            admin,
        };
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
                start.elapsed() < DEADLINE,
                "authgate did not start:\n{}",
                gw.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        drop(guard);
        gw
    }

    /// Stops this gateway (SIGKILL) and starts `config` on the same address and directory.
    pub async fn restart(mut self, config: &str, env: &[(&str, &str)]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let guard = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_at(self.addr, guard, dir, config, env).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.admin.expect("a config with {admin}"),
            path
        )
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

    /// Waits until the log holds `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        eventually(&format!("{needle:?} in the log"), || {
            self.logs().contains(needle).then_some(())
        })
        .await
    }

    /// Waits until an access-log line satisfies `pred` (a request is logged just after its
    /// answer is written, so a client can see the answer first).
    pub async fn wait_for_access(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        eventually(what, || self.access_log().iter().any(&pred).then_some(())).await
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

/// Everything the gateway's store holds, as text, to assert that no secret is stored in
/// clear: the redb file's bytes, or every row of every table on PostgreSQL.
pub fn stored_text(gw: &Gateway) -> String {
    match config::backend_database() {
        Some(url) => {
            let tables = [
                "clients",
                "codes",
                "used_codes",
                "grants",
                "access_tokens",
                "refresh_tokens",
                "claims",
                "consents",
                "users",
                "blocked_users",
                "secrets",
                "api_keys",
            ];
            let sql = tables
                .iter()
                .map(|t| format!("SELECT r::text FROM authgate.{t} r"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let rows = postgres::psql_url(url, &sql);
            assert!(!rows.is_empty(), "the store is empty");
            rows
        }
        None => {
            let bytes = std::fs::read(gw.dir.path().join("data/authgate.redb")).unwrap();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

/// Sends `sig` (`-HUP`, `-QUIT`, `-TERM`…) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
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

/// Makes `listener` the fd 3 of the process `cmd` starts (`LISTEN_FD=3` in its
/// environment): the server listens on a socket the test already bound, so its port is
/// known and cannot be taken. The caller keeps `listener` open until the spawn.
pub fn pass_listener(cmd: &mut Command, listener: &TcpListener) {
    let fd = listener.as_raw_fd();
    cmd.env("LISTEN_FD", "3");
    // SAFETY: only async-signal-safe calls between fork and exec (dup2 clears CLOEXEC on
    // the copy, so fd 3 survives the exec).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Spawns `cmd` with `listener` as its fd 3 (see [`pass_listener`]).
pub fn spawn_listening(mut cmd: Command, listener: TcpListener) -> ChildGuard {
    pass_listener(&mut cmd, &listener);
    let child = cmd.spawn().expect("spawn (is Node.js installed?)");
    drop(listener);
    ChildGuard(child)
}

/// Starts the unmodified server-everything (Streamable HTTP) the way the demo does (behind
/// `examples/loopback-only.mjs`), on a listener bound here; returns its `/mcp` URL.
pub async fn start_everything() -> (ChildGuard, String) {
    let listener = listener();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut cmd = Command::new("node");
    cmd.arg("--import")
        .arg(repo_root().join("examples/loopback-only.mjs"))
        .arg(e2e_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
        .arg("streamableHttp")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let guard = spawn_listening(cmd, listener);
    // The socket already accepts, so one request waits for the program to answer on it (a
    // GET without a session is refused, but answered); if it exits, the socket closes.
    let url = format!("{base}/mcp");
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let answered = client.get(&url).send().await;
    assert!(
        answered.is_ok(),
        "server-everything did not answer: {answered:?}"
    );
    (guard, url)
}

/// The real `oidc-provider` (npm) as the upstream identity provider, on `listener`; its
/// issuer is the listener's address.
pub fn start_oidc_provider(
    listener: TcpListener,
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
) -> ChildGuard {
    let mut cmd = Command::new("node");
    cmd.arg(e2e_dir().join("oidc-provider.mjs"))
        .args([
            "--issuer",
            &format!("http://{}", listener.local_addr().unwrap()),
        ])
        .args(["--client-id", client_id, "--client-secret", client_secret])
        .args(["--redirect-uri", redirect_uri])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    spawn_listening(cmd, listener)
}

/// Runs `cmd` to completion within [`DEADLINE`]; kills it and panics with what it printed
/// when it takes longer.
pub fn output_within(mut cmd: Command) -> Output {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let reader = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).ok();
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE * 4 {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish in {:?}:\n{}\n{}",
                DEADLINE * 4,
                String::from_utf8_lossy(&out.join().unwrap()),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// A GET answered with JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Runs `authgate ARGS` against `gw`'s admin API with `token`: (success, stdout, stderr).
pub fn admin_cli(gw: &Gateway, token: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(args)
        .env("AUTHGATE_ADMIN_URL", gw.admin_url(""))
        .env("AUTHGATE_ADMIN_TOKEN", token);
    let out = output_within(cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a node script from tests/e2e (within the deadline) and parses the one JSON object it
/// prints.
pub fn run_node_json(script: &str, args: &[&str]) -> (bool, serde_json::Value, String) {
    let mut cmd = Command::new("node");
    cmd.arg(e2e_dir().join(script)).args(args);
    let out = output_within(cmd);
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

/// Serves `app` on a listener bound here; returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = listener();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An upstream that answers every request with [`echo`]; returns its base URL.
pub async fn start_echo_upstream() -> String {
    let addr = serve(axum::Router::new().fallback(axum::routing::any(echo))).await;
    format!("http://{addr}")
}

/// Writes `request` raw to `addr`; returns what came back and whether the server closed the
/// connection afterwards (EOF within a second of the last bytes; the first must come within
/// five).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let wait = if out.is_empty() {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(1)
        };
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The status code of a raw HTTP/1 response (0 when there is none).
pub fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The Prometheus text of `/metrics`, as `name{sorted labels}` → value.
pub async fn scrape(gw: &Gateway) -> HashMap<String, f64> {
    let text = reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut labels: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
        labels.sort();
        out.insert(
            format!("{name}{{{}}}", labels.join(",")),
            value.parse().unwrap(),
        );
    }
    out
}

/// The sum of the series of `name` whose labels include all of `labels`.
pub fn metric(m: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
        .filter(|(k, _)| {
            labels
                .iter()
                .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}
