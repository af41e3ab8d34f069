//! How the real binary stops, starts and holds up: SIGTERM drains requests in flight (an
//! open stream finishes; at the end of the grace period what is left is cut and logged),
//! a damaged store is refused at start with the file named, request bodies are capped per
//! route, and the authorization server does not wait long for a stalled body.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::any;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use common::{Gateway, TestConfig};

/// An upstream whose responses are SSE streams: one event at once, the second and the end
/// when `release` is notified.
async fn held_stream_upstream() -> (String, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let app = axum::Router::new().fallback(any(move || {
        let release = r.clone();
        async move {
            let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(4);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from("data: first\n\n"))).await;
                release.notified().await;
                let _ = tx.send(Ok(Bytes::from("data: last\n\n"))).await;
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(ReceiverStream::new(rx)))
                .unwrap()
        }
    }));
    (format!("http://{}", common::serve(app).await), release)
}

/// Opens a stream through the gateway and waits for its first event.
async fn open_stream(gw: &Gateway) -> impl futures_util::Stream<Item = reqwest::Result<Bytes>> {
    let r = reqwest::Client::new()
        .get(gw.url("/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let first = tokio::time::timeout(common::DEADLINE, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));
    stream
}

#[tokio::test]
async fn sigterm_stops_accepting_lets_an_open_stream_finish_then_exits() {
    let (up, release) = held_stream_upstream().await;
    let config = TestConfig::new()
        .server("shutdown_grace = \"30s\"")
        .public("events", "/events", &up)
        .build();
    let mut gw = Gateway::start(&config).await;
    let mut stream = open_stream(&gw).await;
    common::signal(gw.child.id(), "-TERM");
    gw.wait_for_log("\"message\":\"draining\"").await;
    // No new connections, while the stream stays open.
    common::eventually("the listener closing", || {
        std::net::TcpStream::connect(gw.addr).is_err().then_some(())
    })
    .await;
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "exited with a stream open"
    );
    release.notify_one();
    let mut rest = String::new();
    while let Some(chunk) = tokio::time::timeout(common::DEADLINE, stream.next())
        .await
        .unwrap()
    {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.contains("data: last"), "the stream was cut: {rest:?}");
    let status = common::eventually("authgate exiting once drained", || {
        gw.child.try_wait().unwrap()
    })
    .await;
    assert!(status.success(), "{status}");
    let logs = gw.logs();
    assert!(logs.contains("drained: no request in flight"), "{logs}");
    assert!(logs.contains("store closed"), "{logs}");
}

#[tokio::test]
async fn streams_left_at_the_end_of_the_grace_period_are_cut_and_logged() {
    let (up, _never) = held_stream_upstream().await;
    let config = TestConfig::new()
        .server("shutdown_grace = \"1s\"")
        .public("events", "/events", &up)
        .build();
    let mut gw = Gateway::start(&config).await;
    let _stream = open_stream(&gw).await;
    common::signal(gw.child.id(), "-TERM");
    common::eventually("authgate exiting after the grace period", || {
        gw.child.try_wait().unwrap()
    })
    .await;
    let logs = gw.logs();
    assert!(
        logs.contains("at the end of the shutdown grace period were cut")
            && logs.contains("\"cut\":1"),
        "{logs}"
    );
    let line = gw
        .access_log()
        .into_iter()
        .find(|l| l["path"] == "/events")
        .unwrap_or_else(|| panic!("no access line for the cut stream:\n{logs}"));
    assert_eq!(line["error"], "cut_by_shutdown");
    assert_eq!(line["status"], 200);
}

#[tokio::test]
async fn a_damaged_store_stops_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(authgate::store::RedbStore::open(&data).unwrap());
    let path = data.join("authgate.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid - 32 * 1024..mid + 32 * 1024].fill(0xA5);
    std::fs::write(&path, bytes).unwrap();
    let config = dir.path().join("authgate.toml");
    std::fs::write(
        &config,
        TestConfig::new()
            .public("a", "/a", "http://127.0.0.1:9/mcp")
            .build()
            .replace("{addr}", "127.0.0.1:0")
            .replace("{data}", &data.display().to_string()),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["run", "--config"]).arg(&config);
    let out = common::output_within(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started on a damaged store:\n{stderr}"
    );
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("damaged"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_store_readable_by_others_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let config = TestConfig::new()
        .public("a", "/a", "http://127.0.0.1:9/mcp")
        .build();
    let gw = Gateway::start(&config).await;
    let data = gw.dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("authgate.redb")), 0o600);
    assert_eq!(mode(&data.join("session.key")), 0o600);
    let store = data.join("authgate.redb");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gw = gw.restart(&config, &[]).await;
    gw.wait_for_log("the store is readable by other users")
        .await;
}

#[tokio::test]
async fn bodies_over_the_route_cap_get_413_before_the_upstream_sees_them() {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(any(move |req: axum::extract::Request| {
        let h = h.clone();
        async move {
            // Counts bodies that arrived whole.
            if axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .is_ok()
            {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            "ok"
        }
    }));
    let up = format!("http://{}", common::serve(app).await);
    let config = TestConfig::new()
        .upstream(
            "small",
            "/small",
            &up,
            "auth = \"none\"\nmax_body_size = 100000",
        )
        .public("default", "/default", &up)
        .build();
    let gw = Gateway::start(&config).await;
    let client = reqwest::Client::new();
    let post = |path: &str, len: usize| client.post(gw.url(path)).body(vec![b'x'; len]).send();
    assert_eq!(post("/small", 100_000).await.unwrap().status(), 200);
    let r = post("/small", 100_001).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    // The default cap is 4 MiB.
    assert_eq!(post("/default", 4 << 20).await.unwrap().status(), 200);
    assert_eq!(post("/default", (4 << 20) + 1).await.unwrap().status(), 413);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Chunked, with no length announced: refused once the count passes the cap (the upstream
    // has then seen the start of it, and the request is aborted: it never gets it whole).
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'y'; 10_000]))),
    );
    let r = client
        .post(gw.url("/small"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    gw.wait_for_access("a refusal logged with its reason", |l| {
        l["status"] == 413 && l["reason"] == "body_too_large"
    })
    .await;
}

#[tokio::test]
async fn a_stalled_body_to_the_authorization_server_is_answered_in_seconds() {
    let config = TestConfig::new()
        .auth("body_timeout = \"1s\"")
        .public("a", "/a", "http://127.0.0.1:9/mcp")
        .build();
    let gw = Gateway::start(&config).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // A chunked body that never ends.
    s.write_all(
        b"POST /token HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ngrant",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        use tokio::io::AsyncReadExt;
        s.read_to_end(&mut out).await
    })
    .await;
    assert!(read.is_ok(), "the connection was held open");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
