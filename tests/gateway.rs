//! The gateway core against a real upstream written here: routing, path rewriting, header
//! passthrough, streaming, and the gateway's own answers. Each test runs the real binary.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use common::{Gateway, TestConfig};

#[derive(Clone, Default)]
struct Upstream {
    /// The SSE handler waits on this between its first and second event.
    release: Arc<Notify>,
}

fn sse_response(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap()
}

/// POST answered with an SSE stream: one event, then waits for the test to say it has seen
/// that event, then a second event and the end. A buffering proxy deadlocks this.
async fn sse(State(up): State<Upstream>) -> Response {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let _ = tx.send(Ok(Bytes::from("id: 1\ndata: {\"n\":1}\n\n"))).await;
        up.release.notified().await;
        let _ = tx.send(Ok(Bytes::from("id: 2\ndata: {\"n\":2}\n\n"))).await;
    });
    sse_response(rx)
}

/// GET stream that sends one event and then stays open.
async fn get_stream(headers: HeaderMap) -> Response {
    let (tx, rx) = mpsc::channel(4);
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    tokio::spawn(async move {
        let _ = tx
            .send(Ok(Bytes::from(format!(
                "data: {{\"resumed_after\":\"{last}\"}}\n\n"
            ))))
            .await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(tx);
    });
    sse_response(rx)
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "too late"
}

async fn not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [("allow", "POST")], "").into_response()
}

/// Starts the upstream; returns its base URL and its state.
async fn start_upstream() -> (String, Upstream) {
    let up = Upstream::default();
    let app = Router::new()
        .route("/mcp/sse", post(sse))
        .route("/mcp/slow", any(slow))
        .route("/mcp/stream", axum::routing::get(get_stream))
        .route(
            "/mcp/no-get",
            axum::routing::get(not_allowed).post(common::echo),
        )
        .fallback(any(common::echo))
        .with_state(up.clone());
    (format!("http://{}", common::serve(app).await), up)
}

/// Three routes to `up`: `/mcp` (1s idle timeout), `/tools/v1` rewritten onto `/mcp`, and
/// `/mcp` on host `mcp.example` to `/vhost`; then `extra` sections.
fn config(up: &str, extra: &str) -> String {
    TestConfig::new()
        .server("threads = 2")
        .upstream(
            "main",
            "/mcp",
            &format!("{up}/mcp"),
            "auth = \"none\"\nidle_timeout = \"1s\"",
        )
        .public("renamed", "/tools/v1", &format!("{up}/mcp"))
        .upstream(
            "vhost",
            "/mcp",
            &format!("{up}/vhost"),
            "host = \"mcp.example\"\nauth = \"none\"",
        )
        .raw(extra)
        .build()
}

#[tokio::test]
async fn health_ready_and_unknown_paths() {
    let (up, _up) = start_upstream().await;
    let gw = Gateway::start(&config(&up, "")).await;
    let client = reqwest::Client::new();

    let r = client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = client.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");

    for path in ["/", "/nothing", "/mcpx", "/tools"] {
        let r = client.post(gw.url(path)).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    }
    // Sent raw: HTTP clients normalise dot segments away before sending.
    for path in ["/mcp/%2e%2e/admin", "/mcp/../admin"] {
        let (head, _) = common::raw(
            gw.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
    }
    // The store file exists in the configured data dir.
    assert!(gw.dir.path().join("data/authgate.redb").exists());
}

#[tokio::test]
async fn proxies_with_rewrite_and_mcp_headers_both_ways() {
    let (up, _up) = start_upstream().await;
    let gw = Gateway::start(&config(&up, "")).await;
    let client = reqwest::Client::new();

    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = client
        .post(gw.url("/tools/v1/sub?x=1&code=SECRETCODE"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "client-session-7")
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-forwarded-for", "6.6.6.6")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["mcp-session-id"], "upstream-session-1");
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/mcp/sub");
    assert_eq!(seen["query"], "x=1&code=SECRETCODE");
    assert_eq!(seen["body"], body);
    let h = &seen["headers"];
    assert_eq!(h["mcp-session-id"], "client-session-7");
    assert_eq!(h["mcp-protocol-version"], "2025-11-25");
    assert_eq!(h["host"], up.strip_prefix("http://").unwrap());
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], gw.addr.to_string());

    // The route root maps onto the upstream path itself; DELETE passes with its session id.
    let r = client
        .delete(gw.url("/tools/v1"))
        .header("mcp-session-id", "client-session-7")
        .send()
        .await
        .unwrap();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["method"], "DELETE");
    assert_eq!(seen["path"], "/mcp");
    assert_eq!(seen["headers"]["mcp-session-id"], "client-session-7");

    // Host-specific route wins for its host, the any-host route for others.
    let r = client
        .post(gw.url("/mcp"))
        .header("host", "MCP.example:1234")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["path"], "/vhost");
    let r = client
        .post(gw.url("/mcp/"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["path"], "/mcp/");

    // An upstream 405 with its Allow header reaches the client unchanged.
    let r = client.get(gw.url("/mcp/no-get")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");

    // One access-log line per request, with no query string and no header values.
    gw.wait_for_access("the /tools/v1/sub line", |l| l["path"] == "/tools/v1/sub")
        .await;
    let log = gw.access_log();
    let line = log
        .iter()
        .find(|l| l["path"] == "/tools/v1/sub")
        .unwrap_or_else(|| panic!("no access log line in:\n{}", gw.logs()));
    assert_eq!(line["method"], "POST");
    assert_eq!(line["upstream"], "renamed");
    assert_eq!(line["route"], "/tools/v1");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_f64().is_some());
    let logs = gw.logs();
    assert!(
        !logs.contains("SECRETCODE"),
        "query string leaked into logs:\n{logs}"
    );
    assert!(
        !logs.contains("client-session-7"),
        "header value leaked into logs"
    );
}

#[tokio::test]
async fn sse_reaches_the_client_event_by_event() {
    let (base, up) = start_upstream().await;
    let gw = Gateway::start(&config(&base, "")).await;
    let client = reqwest::Client::new();

    let r = client
        .post(gw.url("/mcp/sse"))
        .header("accept", "text/event-stream")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut stream = r.bytes_stream();
    let mut got = String::new();
    // The upstream will not send (or finish) until we have seen event 1 through the gateway.
    while !got.contains("\"n\":1") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect(
                "first event did not arrive while the upstream stream was still open: buffered?",
            )
            .expect("stream ended early")
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!got.contains("\"n\":2"));
    up.release.notify_one();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
    {
        got.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(got.contains("id: 2\ndata: {\"n\":2}"), "{got}");
}

#[tokio::test]
async fn get_stream_is_held_open_and_resumption_header_passes() {
    let (up, _up) = start_upstream().await;
    // The stream idles longer than `main`'s 1s idle timeout would allow, so use `renamed`.
    let gw = Gateway::start(&config(&up, "")).await;
    let client = reqwest::Client::new();
    let r = client
        .get(gw.url("/tools/v1/stream"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "ev-41")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"resumed_after\":\"ev-41\""));
    // Still open: nothing more, and no end of stream, for a while.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), stream.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unreachable_and_slow_upstreams_get_json_errors() {
    let (up, _up) = start_upstream().await;
    // Bound and never listening: connections to it are refused, and nothing else takes it.
    let dead = common::bound_socket();
    let extra = format!(
        "[[upstream]]\nname = \"dead\"\npath = \"/dead\"\nurl = \"http://{}/mcp\"\nauth = \"none\"\n",
        dead.local_addr().unwrap()
    );
    let gw = Gateway::start(&config(&up, &extra)).await;
    let client = reqwest::Client::new();

    let r = client
        .post(gw.url("/dead"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "upstream_unavailable"
    );

    let started = std::time::Instant::now();
    let r = client
        .post(gw.url("/mcp/slow"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "upstream_timeout"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the 1s idle timeout did not apply"
    );

    // The gateway is still healthy afterwards.
    assert_eq!(
        client
            .get(gw.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\npublic_url = \"http://127.0.0.1:1\"\n[[upstream]]\nname = \"a\"\npath = \"/a\"\nurl = \"${AUTHGATE_TEST_UNSET}\"\nauth = \"none\"\n").unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["run", "--config"])
        .arg(&path)
        .env_remove("AUTHGATE_TEST_UNSET");
    let out = common::output_within(cmd);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "bad.toml:6:7: upstream[0].url: environment variable `AUTHGATE_TEST_UNSET` is not set"
        ),
        "{stderr}"
    );
}

/// Counts requests whose body reached the upstream complete, to prove refused ones never
/// did; answers with the body it got.
async fn start_counting_upstream() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(any(move |req: axum::extract::Request| {
        let h = h.clone();
        async move {
            match axum::body::to_bytes(req.into_body(), 1 << 24).await {
                Ok(body) => {
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap()
                }
                Err(_) => StatusCode::BAD_REQUEST.into_response(),
            }
        }
    }));
    (format!("http://{}", common::serve(app).await), hits)
}

#[tokio::test]
async fn mismatched_mcp_headers_never_reach_the_upstream() {
    use std::sync::atomic::Ordering::SeqCst;
    let (up, hits) = start_counting_upstream().await;
    let gw = Gateway::start(&config(&up, "")).await;
    let client = reqwest::Client::new();
    let call = |name: &str, pad: usize| {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 41, "method": "tools/call",
            "params": {"name": name, "arguments": {"pad": "x".repeat(pad)}}
        })
        .to_string();
        client
            .post(gw.url("/mcp"))
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "safe_tool")
            .body(body)
            .send()
    };
    // A small body is read before the upstream is contacted; a large one is held back until
    // it is complete and checked (the upstream then sees the request head, never the body).
    for pad in [0, 200 * 1024] {
        let r = call("admin_tool", pad).await.unwrap();
        assert_eq!(r.status(), 400, "pad {pad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32020, "{v}");
        assert_eq!(v["id"], 41);
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'safe_tool'"));
    }
    assert_eq!(
        hits.load(SeqCst),
        0,
        "a mismatched request reached the upstream"
    );
    // Matching headers pass, body intact, and the call is logged.
    for pad in [0, 200 * 1024] {
        let r = call("safe_tool", pad).await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["params"]["arguments"]["pad"].as_str().unwrap().len(),
            pad
        );
    }
    assert_eq!(hits.load(SeqCst), 2);
    gw.wait_for_access("the tools/call line", |l| {
        l["mcp_method"] == "tools/call" && l["mcp_name"] == "safe_tool"
    })
    .await;
}

#[tokio::test]
async fn browser_origins_are_checked_and_get_cors() {
    let (up, hits) = start_counting_upstream().await;
    let gw = Gateway::start(&config(&up, "")).await;
    let client = reqwest::Client::new();
    let r = client
        .post(gw.url("/mcp"))
        .header("origin", "https://evil.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Loopback origins (local browser clients) are allowed by default, and the response
    // carries exactly one Access-Control-Allow-Origin naming them.
    let r = client
        .post(gw.url("/mcp"))
        .header("origin", "http://localhost:6274")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let acao: Vec<_> = r
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(acao, vec!["http://localhost:6274"]);
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("Mcp-Session-Id"));
    let r = client
        .request(reqwest::Method::OPTIONS, gw.url("/mcp"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "mcp-method, mcp-name, authorization",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Mcp-Name"));
}

/// Accepts connections for axum, counting them.
struct CountingListener {
    inner: tokio::net::TcpListener,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl axum::serve::Listener for CountingListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let got = axum::serve::Listener::accept(&mut self.inner).await;
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        got
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Upstream connections opened while `clients` clients send 10 requests each through a
/// gateway with `upstream_keepalive_pool = pool`, after a first round that warmed the pool.
async fn upstream_connections(pool: usize, clients: usize) -> usize {
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = common::listener();
    listener.set_nonblocking(true).unwrap();
    let listener = CountingListener {
        inner: tokio::net::TcpListener::from_std(listener).unwrap(),
        accepted: accepted.clone(),
    };
    let up = format!("http://{}", listener.inner.local_addr().unwrap());
    let app = Router::new().fallback(any(|body: String| async move {
        // Long enough for every client to be in flight at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
        body
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = TestConfig::new()
        .server(&format!("upstream_keepalive_pool = {pool}"))
        .public("pooled", "/pooled", &up)
        .build();
    let gw = Gateway::start(&config).await;
    let url = gw.url("/pooled");
    let round = |n: usize| {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    for _ in 0..n {
                        let r = client.post(&url).body("{}").send().await.unwrap();
                        assert_eq!(r.status(), 200);
                    }
                })
            })
            .collect::<Vec<_>>();
        async move {
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    round(3).await;
    let warm = accepted.load(std::sync::atomic::Ordering::SeqCst);
    round(10).await;
    accepted.load(std::sync::atomic::Ordering::SeqCst) - warm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_connections_are_kept_for_reuse_beyond_pingoras_default_pool() {
    // More clients in flight than Pingora's default pool of 128 idle connections.
    let clients = 600;
    let pooled = upstream_connections(4096, clients).await;
    let small = upstream_connections(128, clients).await;
    eprintln!("new upstream connections once warm: pool 4096 → {pooled}, pool 128 → {small}");
    // Once warm, requests reuse the connections they find idle (0-3 new ones on a quiet
    // machine; a busy one has more clients in flight at once than during the warm-up, and
    // each of those opens one more: the bound leaves room for that).
    assert!(
        pooled <= clients / 10,
        "{pooled} new upstream connections for {} requests of {clients} clients",
        clients * 10
    );
    // With Pingora's default, what the pool cannot keep is closed and opened again.
    assert!(
        small >= clients / 10 && small > 3 * pooled,
        "pool 128: {small}, pool 4096: {pooled}"
    );
}
