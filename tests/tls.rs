//! TLS on the listeners (`[server.tls]`): a Node.js client that trusts only the test CA
//! (tests/fixtures/tls, made by its make.sh) gets HTTP/1.1 or HTTP/2 by ALPN, the OAuth
//! metadata with the https issuer, and an SSE stream over HTTP/2 as it is written, not
//! buffered; a reload (SIGHUP) serves a replaced certificate without a restart; a key that
//! is not the certificate's is refused by `check` with the file's place.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http2_streams_sse_and_reloads_its_certificate() {
    let up = sse_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [("server.pem", "cert.pem"), ("server.key", "key.pem")] {
        std::fs::copy(fixture(from), dir.path().join(to)).unwrap();
    }
    let (addr, guard) = common::reserve_addr();
    let base = format!("https://{addr}");
    let config = format!(
        "[server]\nlisten = [\"{addr}\"]\npublic_url = \"{base}\"\n\n[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n[[upstream]]\nname = \"events\"\npath = \"/events\"\nurl = \"{up}/\"\nauth = \"none\"\n"
    );
    let path = dir.path().join("authgate.toml");
    std::fs::write(&path, &config).unwrap();
    let log = dir.path().join("authgate.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let gw = ChildGuard(cmd.spawn().unwrap());
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // The address stays reserved (no other test takes it) until authgate listens on it.
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
    drop(guard);

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
    for (from, to) in [("server2.pem", "cert.pem"), ("server2.key", "key.pem")] {
        std::fs::copy(fixture(from), dir.path().join(to)).unwrap();
    }
    let hup = Command::new("kill")
        .args(["-HUP", &gw.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
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
    let hup = Command::new("kill")
        .args(["-HUP", &gw.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    common::eventually("the refused reload", || {
        logs().contains("reload refused").then_some(())
    })
    .await;
    let third = client(&base);
    assert_eq!(third["h1"]["fingerprint"], second["h1"]["fingerprint"]);
    drop(gw);
}
