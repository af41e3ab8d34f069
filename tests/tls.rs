//! TLS on the listeners (`[server.tls]`): a Node.js client that trusts only the test CA
//! (tests/fixtures/tls, made by its make.sh) gets HTTP/1.1 or HTTP/2 by ALPN, the OAuth
//! metadata with the https issuer, and an SSE stream over HTTP/2 as it is written, not
//! buffered; a reload (SIGHUP) serves a replaced certificate without a restart; a key that
//! is not the certificate's is refused by `check` with the file's place; the TypeScript SDK
//! client works over https to server-everything.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::ChildGuard;
use serde_json::Value;

/// An upstream that writes three SSE events 300 ms apart, then ends.
async fn sse_upstream() -> String {
    use axum::body::Body;
    use futures_util::StreamExt;
    let app = axum::Router::new().fallback(axum::routing::any(|| async {
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
            Duration::from_millis(300),
        ))
        .take(3)
        .enumerate()
        .map(|(i, _)| Ok::<_, std::io::Error>(format!("data: event {i}\n\n")));
        (
            [("content-type", "text/event-stream")],
            Body::from_stream(ticks),
        )
    }));
    format!("http://{}", common::serve(app).await)
}

fn fixture(name: &str) -> std::path::PathBuf {
    common::repo_root().join("tests/fixtures/tls").join(name)
}

fn client(base: &str) -> Value {
    let mut cmd = Command::new("node");
    cmd.arg(common::e2e_dir().join("tls-client.mjs")).args([
        base,
        fixture("ca.pem").to_str().unwrap(),
        "/events",
    ]);
    let out = common::output_within(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Starts authgate on `addr` with TLS (the certificate files `cert.pem`/`key.pem` in `dir`)
/// and `upstreams` (TOML); returns it once it accepts, and its log file.
fn start_tls_gateway(
    dir: &std::path::Path,
    addr: std::net::SocketAddr,
    public_url: &str,
    upstreams: &str,
) -> (ChildGuard, std::path::PathBuf) {
    let config = format!(
        "[server]\nlisten = [\"{addr}\"]\npublic_url = \"{public_url}\"\n\n[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n{upstreams}"
    );
    let path = dir.join("authgate.toml");
    std::fs::write(&path, &config).unwrap();
    let log = dir.join("authgate.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let gw = ChildGuard(cmd.spawn().unwrap());
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while !logs()
        .lines()
        .any(|l| l.contains("authgate listening") && l.contains("\"tls\":true"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not listening:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // (It says so just before Pingora binds.)
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "not accepting:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (gw, log)
}

/// A directory with the test certificate (it names localhost and 127.0.0.1), a port on
/// 127.0.0.1 free a moment ago, and the https base URL by the certificate's name.
fn localhost_tls() -> (tempfile::TempDir, std::net::SocketAddr, String) {
    let dir = tempfile::tempdir().unwrap();
    install_certificate(dir.path(), "server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (
        dir,
        ([127, 0, 0, 1], port).into(),
        format!("https://localhost:{port}"),
    )
}

/// The test certificate into `dir` as cert.pem/key.pem (`which`: "server" or "server2").
fn install_certificate(dir: &std::path::Path, which: &str) {
    std::fs::copy(fixture(&format!("{which}.pem")), dir.join("cert.pem")).unwrap();
    std::fs::copy(fixture(&format!("{which}.key")), dir.join("key.pem")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http2_streams_sse_and_reloads_its_certificate() {
    let up = sse_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    install_certificate(dir.path(), "server");
    let (addr, guard) = common::reserve_addr();
    let base = format!("https://{addr}");
    let upstream = format!(
        "[[upstream]]\nname = \"events\"\npath = \"/events\"\nurl = \"{up}/\"\nauth = \"none\"\n"
    );
    let (gw, log) = start_tls_gateway(dir.path(), addr, &base, &upstream);
    drop(guard);
    let path = dir.path().join("authgate.toml");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    let first = client(&base);
    assert_eq!(first["h1"]["status"], 200, "{first}");
    assert_eq!(first["h1"]["alpn"], "http/1.1", "{first}");
    let h2 = &first["h2"];
    assert_eq!(h2["alpn"], "h2", "{first}");
    assert_eq!(h2["metadata"]["status"], 200, "{first}");
    assert_eq!(h2["metadata"]["body"]["issuer"], base, "{first}");
    // The stream over HTTP/2: every event, the first well before the stream ends.
    let sse = &h2["sse"];
    assert_eq!(sse["status"], 200, "{first}");
    assert_eq!(sse["events"].as_array().unwrap().len(), 3, "{first}");
    let (first_at, ended_at) = (
        sse["firstAt"].as_u64().unwrap(),
        sse["endedAt"].as_u64().unwrap(),
    );
    assert!(ended_at >= first_at + 400, "buffered? {sse}");

    // Another certificate in the same files, then SIGHUP: new handshakes get it.
    install_certificate(dir.path(), "server2");
    common::signal(gw.0.id(), "-HUP");
    common::eventually("the reload", || {
        logs().contains("config reloaded").then_some(())
    })
    .await;
    let second = client(&base);
    assert_eq!(second["h1"]["status"], 200, "{second}");
    assert_ne!(
        second["h1"]["fingerprint"], first["h1"]["fingerprint"],
        "the reloaded certificate is served"
    );

    // A key that is not the certificate's: refused by `check`, naming the file's place.
    std::fs::copy(fixture("server.key"), dir.path().join("key.pem")).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_authgate"));
    check.args(["check", "--config"]).arg(&path);
    let out = common::output_within(check);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("authgate.toml:5:1: server.tls") && err.contains("does not belong"),
        "{err}"
    );
    // ...and by a reload, which keeps serving the last good certificate.
    common::signal(gw.0.id(), "-HUP");
    common::eventually("the refused reload", || {
        logs().contains("reload refused").then_some(())
    })
    .await;
    let third = client(&base);
    assert_eq!(third["h1"]["fingerprint"], second["h1"]["fingerprint"]);
    drop(gw);
}

/// The official TypeScript SDK client over https (trusting the test CA through
/// `NODE_EXTRA_CA_CERTS`, as a user would) to the unmodified server-everything behind a TLS
/// listener: a session, tools, and a streamed call with progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_client_works_over_https() {
    let (_everything, mcp_url) = common::start_everything().await;
    let (dir, addr, base) = localhost_tls();
    let upstream = format!(
        "[[upstream]]\nname = \"everything\"\npath = \"/everything\"\nurl = \"{mcp_url}\"\nauth = \"none\"\n"
    );
    let (_gw, log) = start_tls_gateway(dir.path(), addr, &base, &upstream);
    let mut cmd = Command::new("node");
    cmd.arg(common::e2e_dir().join("mcp-client.mjs"))
        .arg(format!("{base}/everything"))
        .env("NODE_EXTRA_CA_CERTS", fixture("ca.pem"));
    let out = common::output_within(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        v["sessionId"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    assert!(
        v["tools"].as_array().unwrap().iter().any(|t| t == "echo"),
        "{v}"
    );
    assert_eq!(v["echo"], "Echo: hello through authgate", "{v}");
    // The streamed call: all four progress notifications, the first long before the result.
    let long = &v["long"];
    let progress = long["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 4, "{v}");
    let first = progress[0]["at"].as_f64().unwrap();
    assert!(
        long["doneAt"].as_f64().unwrap() - first > 750.0,
        "buffered? {v}"
    );
}

/// `http2 = true` on an upstream: HTTP/2 with prior knowledge (h2c) to a plain-http
/// upstream, which sees HTTP/2 requests; its SSE stream still arrives event by event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_can_be_spoken_to_in_http2() {
    use axum::body::Body;
    use futures_util::StreamExt;
    let app = axum::Router::new().fallback(axum::routing::any(
        |req: axum::extract::Request| async move {
            let version = format!("{:?}", req.version());
            let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
                Duration::from_millis(300),
            ))
            .take(3)
            .enumerate()
            .map(move |(i, _)| Ok::<_, std::io::Error>(format!("data: {version} {i}\n\n")));
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(ticks),
            )
        },
    ));
    let up = format!("http://{}", common::serve(app).await);
    let config = common::TestConfig::new()
        .public("h1", "/h1", &format!("{up}/"))
        .upstream(
            "h2",
            "/h2",
            &format!("{up}/"),
            "auth = \"none\"\nhttp2 = true",
        )
        .build();
    let gw = common::Gateway::start(&config).await;
    for (path, version) in [("/h1", "HTTP/1.1"), ("/h2", "HTTP/2.0")] {
        let started = std::time::Instant::now();
        let r = reqwest::get(gw.url(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let mut body = r.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        let first_at = started.elapsed();
        let mut text = String::from_utf8_lossy(&first).into_owned();
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        let ended_at = started.elapsed();
        assert_eq!(
            text.matches(&format!("data: {version} ")).count(),
            3,
            "{path}: {text}"
        );
        assert!(
            ended_at >= first_at + Duration::from_millis(400),
            "{path} buffered: first {first_at:?}, end {ended_at:?}"
        );
    }
}

/// The whole MCP authorization over https, as people run it: the TypeScript SDK's OAuth
/// client (trusting the test CA) and headless Chromium as the person's browser (trusting
/// exactly the test certificate's key), signing in and consenting on authgate's pages over
/// TLS, then tools, a refresh and a revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_a_real_browser_over_https() {
    let (_everything, mcp_url) = common::start_everything().await;
    let (dir, addr, base) = localhost_tls();
    let rest = format!(
        "[[scope]]\nname = \"mcp:tools\"\n\n[[upstream]]\nname = \"everything\"\npath = \"/mcp\"\nurl = \"{mcp_url}\"\nscopes = [\"mcp:tools\"]\n\n[[provider]]\nid = \"local\"\nkind = \"local\"\ndisplay_name = \"Local account\"\n\n[[provider.users]]\nusername = \"alice\"\npassword_hash = \"{}\"\n",
        common::config::PW_HASH
    );
    let (_gw, log) = start_tls_gateway(dir.path(), addr, &base, &rest);
    let spki = std::fs::read_to_string(fixture("server.spki")).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(common::e2e_dir().join("oauth-flow.mjs"))
        .args(["--server", &format!("{base}/mcp"), "--fill"])
        .arg(r#"{"__provider":"Local account","username":"alice","password":"pw"}"#)
        .env("NODE_EXTRA_CA_CERTS", fixture("ca.pem"))
        .env("CHROMIUM_TRUST_SPKI", spki.trim());
    let out = common::output_within(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["discovery"]["issuer"], base.as_str(), "{v:#}");
    assert_eq!(v["discovery"]["resource"], format!("{base}/mcp"));
    // Every page the browser loaded from authgate came over https.
    let browser = v["browser"].as_array().unwrap();
    let ours: Vec<&str> = browser
        .iter()
        .filter_map(|r| r["url"].as_str())
        .filter(|u| u.contains(&format!(":{}", addr.port())))
        .collect();
    assert!(ours.iter().any(|u| u.ends_with("/consent")), "{ours:?}");
    assert!(ours.iter().all(|u| u.starts_with("https://")), "{ours:?}");
    assert_eq!(v["callback"]["hasCode"], true, "{v:#}");
    assert_eq!(v["echo"], "Echo: hi", "{v:#}");
    assert_eq!(v["refresh"]["echo"], "Echo: hi", "{v:#}");
    assert_eq!(v["revoke"]["after"]["status"], 401, "{v:#}");
}

/// A binary upgrade (`run --upgrade`, then SIGQUIT to the old process) with TLS listeners:
/// the new process takes the listening socket over and answers https on it, with the same
/// certificate, while the old one exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_upgrade_hands_tls_listeners_over() {
    let upstream = common::start_echo_upstream().await;
    let (dir, addr, base) = localhost_tls();
    let routes = format!(
        "[[upstream]]\nname = \"open\"\npath = \"/open\"\nurl = \"{upstream}\"\nauth = \"none\"\n"
    );
    let (mut old, _log) = start_tls_gateway(dir.path(), addr, &base, &routes);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(fixture("ca.pem")).unwrap()).unwrap();
    // A fresh TLS connection per request: each handshake shows who holds the socket.
    let get = || {
        let client = reqwest::Client::builder()
            .add_root_certificate(ca.clone())
            .resolve("localhost", addr)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let url = format!("{base}/open");
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(get().await.unwrap(), 200);

    let new_log = dir.path().join("new.log");
    let mut new = Command::new(env!("CARGO_BIN_EXE_authgate"));
    new.args(["--log-format", "json", "run", "--upgrade", "--config"])
        .arg(dir.path().join("authgate.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&new_log).unwrap());
    let _new = ChildGuard(new.spawn().unwrap());
    let sock = dir.path().join("data/upgrade.sock");
    common::eventually("the new process waiting for the sockets", || {
        sock.exists().then_some(())
    })
    .await;
    common::signal(old.0.id(), "-QUIT");
    let status = common::eventually("the old process exiting after the handover", || {
        old.0.try_wait().unwrap()
    })
    .await;
    assert!(status.success(), "{status}");
    // The old process is gone: whatever answers now is the new one, over TLS.
    for _ in 0..5 {
        assert_eq!(get().await.unwrap(), 200);
    }
    // (Each request is logged just after its answer is written.)
    let served = || {
        std::fs::read_to_string(&new_log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("authgate::access") && l.contains("\"status\":200"))
            .count()
    };
    common::eventually("the new process's access lines", || {
        (served() >= 5).then_some(())
    })
    .await;
}
