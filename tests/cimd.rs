//! Client ID Metadata Documents against the real binary: documents served by the test on
//! loopback (with the development switch on), a full login with a CIMD client, and every
//! refusal: a mismatched client_id, an oversized document, a non-public address, a redirect.

mod common;

use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use common::flow::{self, browser, location, query_of, REDIRECT, VERIFIER};
use common::{start_echo_upstream, Gateway, TestConfig};

/// Serves the documents on 127.0.0.1 (the host the config trusts); returns its port.
async fn start_documents() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let doc = |client_id: String, name: &str| {
        let body = json!({
            "client_id": client_id,
            "client_name": name,
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
        })
        .to_string();
        move || {
            let body = body.clone();
            async move {
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", "max-age=600"),
                    ],
                    body,
                )
            }
        }
    };
    let app = Router::new()
        .route(
            "/good.json",
            get(doc(format!("{base}/good.json"), "Doc Client")),
        )
        .route(
            "/other.json",
            get(doc(format!("{base}/someone-else.json"), "Doc Client")),
        )
        .route(
            "/bidi.json",
            get(doc(format!("{base}/bidi.json"), "Doc \u{202E}tneilC")),
        )
        .route(
            "/big.json",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    format!("{{\"pad\":\"{}\"}}", "x".repeat(20_000)),
                )
            }),
        )
        .route(
            "/moved.json",
            get(|| async { Redirect::temporary("/good.json").into_response() }),
        )
        .route(
            "/html.json",
            get(|| async { ([("content-type", "text/html")], "<html></html>") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

async fn start_gateway(up: &str) -> Gateway {
    let config = TestConfig::new()
        .raw("[cimd]\nallow_loopback_http = true\ntrusted_hosts = [\"127.0.0.1\"]")
        .upstream("a", "/a", &format!("{up}/up"), "")
        .alice("");
    Gateway::start(&config.build()).await
}

fn authorize_url(gw: &Gateway, client_id: &str) -> String {
    flow::authorize_url(gw, client_id, &gw.url("/a"), &[])
}

#[tokio::test]
async fn a_metadata_document_client_logs_in_and_calls_a_tool() {
    let docs = start_documents().await;
    let up = start_echo_upstream().await;
    let gw = start_gateway(&up).await;
    let m: Value = reqwest::get(gw.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert!(m["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("none")));

    let client_id = format!("http://127.0.0.1:{docs}/good.json");
    let b = browser();
    let r = b.get(authorize_url(&gw, &client_id)).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let login = location(&r);
    assert!(login.starts_with("/login/local?flow="));
    let page = flow::page(&b, &gw, &login).await;
    assert!(
        page.contains("Doc Client"),
        "the document's client_name is shown"
    );
    let fields = [("username", "alice"), ("password", "pw")];
    // A trusted host skips consent: straight back to the client with a code.
    let back = flow::submit(&b, &gw, &page, "/login/local", &fields).await;
    let (status, t) = flow::token(
        &gw,
        &[
            ("grant_type", "authorization_code"),
            ("code", &query_of(&back)["code"]),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let r = reqwest::Client::new()
        .post(gw.url("/a"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-authgate-client-id"], client_id.as_str());
}

#[tokio::test]
async fn bad_documents_get_an_error_page_never_a_redirect() {
    let docs = start_documents().await;
    let up = start_echo_upstream().await;
    let gw = start_gateway(&up).await;
    let b = browser();
    for (client_id, expected) in [
        (
            format!("http://127.0.0.1:{docs}/other.json"),
            "client_id is not the URL",
        ),
        (format!("http://127.0.0.1:{docs}/big.json"), "larger than"),
        (format!("http://127.0.0.1:{docs}/moved.json"), "redirects"),
        (
            format!("http://127.0.0.1:{docs}/html.json"),
            "application/json",
        ),
        (format!("http://127.0.0.1:{docs}/missing.json"), "HTTP 404"),
        // https on a loopback address: refused before any connection.
        (
            format!("https://127.0.0.1:{docs}/good.json"),
            "non-public address",
        ),
        // An IPv6 literal is an address, vetted as one (not sent to DNS).
        (
            "https://[::1]/client.json".to_string(),
            "non-public address",
        ),
        (
            "https://[fd12::1]:8443/c.json".to_string(),
            "non-public address",
        ),
        (
            format!("http://127.0.0.1:{docs}/bidi.json"),
            "invisible or control character U+202E",
        ),
        ("https://localhost/".to_string(), "must have a path"),
    ] {
        let r = b.get(authorize_url(&gw, &client_id)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{client_id}");
        assert!(
            r.headers().get("location").is_none(),
            "{client_id} redirected"
        );
        let html = r.text().await.unwrap();
        assert!(
            html.contains(expected),
            "{client_id}: expected {expected:?} in {html}"
        );
    }
}
