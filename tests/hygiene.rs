//! What authgate refuses or tolerates before anything else reads a request, and how the
//! process behaves around it, against the real binary: header limits (431), ambiguous
//! framing (400, connection closed), upstreams whose name does not resolve yet, signals an
//! nginx operator sends, and logs of clients that leave.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{Gateway, TestConfig};

/// Counts the requests that reached it; echoes what it got. Returns its base URL.
async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(any(move |req: axum::extract::Request| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            common::echo(req).await
        }
    }));
    (format!("http://{}", common::serve(app).await), hits)
}

/// A public route `/open` and a protected one `/mcp`, both to `up`; `server` lines added.
fn config(up: &str, server: &str) -> String {
    TestConfig::new()
        .server(server)
        .scope("mcp:tools")
        .public("open", "/open", &format!("{up}/mcp"))
        .upstream(
            "guarded",
            "/mcp",
            &format!("{up}/mcp"),
            "scopes = [\"mcp:tools\"]",
        )
        .alice("")
        .build()
}

#[tokio::test]
async fn oversized_headers_get_431_before_any_auth_work() {
    let (up, hits) = counting_upstream().await;
    let gw = Gateway::start(&config(&up, "max_headers = 20")).await;
    let client = reqwest::Client::new();
    // On the protected route without a token: 431, not the 401 challenge.
    let r = client
        .post(gw.url("/mcp"))
        .header("x-big", "a".repeat(9 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    assert!(
        v["error_description"].as_str().unwrap().contains("`x-big`"),
        "{v}"
    );
    // Many headers, each small, over the configured count.
    let mut req = client.get(gw.url("/open/x"));
    for i in 0..25 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    // Many lines under the count but over 32 KiB in all.
    let mut req = client.get(gw.url("/open/x"));
    for i in 0..5 {
        req = req.header(format!("x-part{i}"), "b".repeat(7 * 1024));
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    // A request line longer than a header line may be: 414.
    let long = gw.url(&format!("/open/{}", "p".repeat(9 * 1024)));
    assert_eq!(client.get(long).send().await.unwrap().status(), 414);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
    // Within the limits, the same route works.
    assert_eq!(
        client.get(gw.url("/open/x")).send().await.unwrap().status(),
        200
    );
    let refused: Vec<_> = gw
        .access_log()
        .into_iter()
        .filter(|l| l["status"] == 431)
        .collect();
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|l| l["reason"] == "headers_too_large"));
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_the_connection_closed() {
    let (up, hits) = counting_upstream().await;
    let gw = Gateway::start(&config(&up, "")).await;
    let head = |te_or_cl: &str| format!("POST /open/x HTTP/1.1\r\nHost: gw\r\n{te_or_cl}\r\n\r\n");
    for (framing, body) in [
        ("Content-Length: 5, 5", "hello"),
        ("Content-Length: 5\r\nContent-Length: 5", "hello"),
        ("Content-Length: +5", "hello"),
        (
            "Transfer-Encoding: chunked, chunked",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: identity, chunked",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        // A bare CR inside a chunk extension.
        (
            "Transfer-Encoding: chunked",
            "5;a=b\rc\r\nhello\r\n0\r\n\r\n",
        ),
    ] {
        let mut request = head(framing).into_bytes();
        request.extend_from_slice(body.as_bytes());
        // A second request pipelined behind: it must never be answered.
        request.extend_from_slice(b"GET /open/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n");
        let (response, closed) = common::raw(gw.addr, &request).await;
        assert_eq!(common::status_of(&response), 400, "{framing:?}: {response}");
        assert!(closed, "{framing:?}: the connection must close");
        assert_eq!(
            response.matches("HTTP/1.1").count(),
            1,
            "{framing:?}: {response}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "no refused request reached the upstream"
    );
    // Plain framing still works, on a kept-alive connection.
    let (response, closed) = common::raw(
        gw.addr,
        b"POST /open/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(common::status_of(&response), 200, "{response}");
    assert!(!closed);
}

#[tokio::test]
async fn a_bare_lf_in_a_chunk_extension_is_reframed_not_passed_through() {
    // Pingora's chunked parser (httparse) reads a bare LF inside an extension as part of it;
    // authgate re-frames the body, so the upstream sees one clean chunked body and no second
    // request can hide in the extension.
    let (up, hits) = counting_upstream().await;
    let gw = Gateway::start(&config(&up, "")).await;
    let (response, _) = common::raw(
        gw.addr,
        b"POST /open/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nGET /x HTTP/1.1\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(common::status_of(&response), 200, "{response}");
    assert!(response.contains(r#""body":"hello""#), "{response}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_upstream_name_that_does_not_resolve_yet_gets_502_and_the_gateway_runs() {
    // A port for an upstream that is not there yet: bound now (so nothing else takes it),
    // listening only later; until then connections are refused.
    let socket = common::bound_socket();
    let addr = socket.local_addr().unwrap();
    let (ip, port) = (addr.ip(), addr.port());
    let gw = Gateway::start(
        &TestConfig::new()
            .public(
                "later",
                "/later",
                &format!("http://upstream-not-yet.invalid:{port}/mcp"),
            )
            .public("local", "/local", &format!("http://{ip}:{port}/mcp"))
            .build(),
    )
    .await;
    let client = reqwest::Client::new();
    let r = client.post(gw.url("/later")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "upstream_unavailable");
    // The other route's upstream starts after the gateway: it is reached without a restart.
    assert_eq!(
        client.post(gw.url("/local")).send().await.unwrap().status(),
        502
    );
    let listener = socket.listen(64).unwrap();
    let app = axum::Router::new().fallback(any(common::echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = client.post(gw.url("/local")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(gw.logs().contains("upstream host does not resolve"));
}

#[tokio::test]
async fn sighup_reloads_a_lone_sigquit_is_ignored_and_sigterm_stops() {
    let (up, _) = counting_upstream().await;
    let mut gw = Gateway::start(&config(&up, "")).await;
    common::signal(gw.child.id(), "-HUP");
    gw.wait_for_log("config reloaded").await;
    // No new authgate waits for the sockets: SIGQUIT must not stop this one.
    common::signal(gw.child.id(), "-QUIT");
    gw.wait_for_log("no new authgate is waiting for the sockets")
        .await;
    let r = reqwest::get(gw.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200, "still serving");
    assert!(gw.child.try_wait().unwrap().is_none());
    common::signal(gw.child.id(), "-TERM");
    let status = common::eventually("authgate stopping on SIGTERM", || {
        gw.child.try_wait().unwrap()
    })
    .await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_client_leaving_mid_stream_is_not_an_error_and_durations_are_short() {
    // An upstream that streams forever.
    let app = axum::Router::new().fallback(any(|| async {
        let stream = futures_util::stream::unfold(0u64, |n| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((
                Ok::<_, std::convert::Infallible>(format!("data: {n}\n\n")),
                n + 1,
            ))
        });
        axum::response::Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from_stream(stream))
            .unwrap()
    }));
    let up = format!("http://{}", common::serve(app).await);
    let gw = Gateway::start(&config(&up, "")).await;
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /open/events HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        drop(s);
    }
    common::eventually("three access-log lines", || {
        (gw.access_log().len() >= 3).then_some(())
    })
    .await;
    let logs = gw.logs();
    assert!(
        !logs.lines().any(|l| l.contains("\"level\":\"ERROR\"")),
        "a client leaving was logged as an error:\n{logs}"
    );
    for line in gw.access_log() {
        let d = line["duration_ms"].as_f64().unwrap();
        let printed = line["duration_ms"].to_string();
        let decimals = printed.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 3 && d >= 0.0, "duration_ms {printed}");
    }
}

/// The addresses `pid` listens on, as /proc/net/tcp{,6} print them (hex): its socket inodes
/// from /proc/<pid>/fd matched against the kernel's tables.
fn listening_addresses_of(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                out.push(f[1].to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_demo_upstream_listens_on_loopback_only() {
    // Started exactly as examples/demo.sh does (a port of its own choosing, behind
    // examples/loopback-only.mjs): nothing on the network reaches it around the gateway.
    let mut cmd = std::process::Command::new("node");
    cmd.arg("--import")
        .arg(common::repo_root().join("examples/loopback-only.mjs"))
        .arg(
            common::e2e_dir()
                .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        )
        .arg("streamableHttp")
        .env("PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = common::ChildGuard(cmd.spawn().unwrap());
    let pid = child.0.id();
    let addrs = common::eventually("server-everything listening", || {
        let a = listening_addresses_of(pid);
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(
        addrs[0].starts_with("0100007F:"),
        "server-everything listens on {addrs:?}, not 127.0.0.1 only"
    );
}
