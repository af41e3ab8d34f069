//! The OAuth flow over plain HTTP, for tests that assert on exact requests and answers (the
//! browser-level flow runs in Chromium: tests/e2e/chromium.mjs). Cookies are kept, redirects
//! are not followed: each `Location` is read.

use std::collections::HashMap;

use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::Gateway;

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT: &str = "http://127.0.0.1:41234/callback";

/// A browser: cookies kept, redirects not followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The value of the hidden (or any) input `name` in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in:\n{html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn register(gw: &Gateway, body: Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// A dynamically registered public client with [`REDIRECT`].
pub async fn public_client(gw: &Gateway) -> String {
    let (s, v) = register(
        gw,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "Test client"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["client_id"].as_str().unwrap().to_string()
}

pub fn authorize_url(
    gw: &Gateway,
    client_id: &str,
    resource: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "st-1"),
        ("resource", resource),
    ];
    params.extend_from_slice(extra);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(params);
    format!("{}?{}", gw.url("/authorize"), q.finish())
}

/// A form post from the gateway's own page, with an `Origin` when given.
pub async fn post_form(
    b: &reqwest::Client,
    url: &str,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = b.post(url).form(form);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap()
}

/// The gateway's page at `path`, as text.
pub async fn page(b: &reqwest::Client, gw: &Gateway, path: &str) -> String {
    b.get(gw.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Submits the form on `page` (its hidden `flow` and `csrf`, and `fields`) to `action`;
/// expects a 303 and returns where it leads.
pub async fn submit(
    b: &reqwest::Client,
    gw: &Gateway,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> String {
    let (flow, csrf) = (hidden(page, "flow"), hidden(page, "csrf"));
    let mut form = vec![("flow", flow.as_str()), ("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = post_form(b, &gw.url(action), None, &form).await;
    assert_eq!(r.status(), 303, "{action}");
    location(&r)
}

/// Signs in as alice (password "pw") at `url` (an authorize URL) and approves consent or
/// continues when asked; returns the final redirect to the client.
pub async fn login_and_approve(gw: &Gateway, b: &reqwest::Client, url: &str) -> String {
    let r = b.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let mut next = location(&r);
    if next.starts_with("/login/") {
        let login = page(b, gw, &next).await;
        let fields = [("username", "alice"), ("password", "pw")];
        next = submit(b, gw, &login, "/login/local", &fields).await;
    }
    if next.starts_with("/consent") {
        let consent = page(b, gw, &next).await;
        next = submit(b, gw, &consent, "/consent", &[("decision", "approve")]).await;
    }
    next
}

/// A token endpoint call; every answer must be `no-store`.
pub async fn token(gw: &Gateway, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.url("/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(r.headers()["cache-control"], "no-store");
    (status, r.json().await.unwrap())
}

/// Signs in with `client` and returns the code issued for `resource`.
pub async fn code_for_client(gw: &Gateway, client: &str, resource: &str) -> String {
    let back = login_and_approve(gw, &browser(), &authorize_url(gw, client, resource, &[])).await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], gw.url(""));
    q["code"].clone()
}

/// A public client's tokens for `resource`: (client_id, token response).
pub async fn tokens_for(gw: &Gateway, resource: &str) -> (String, Value) {
    let client = public_client(gw).await;
    let code = code_for_client(gw, &client, resource).await;
    let (s, v) = token(
        gw,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("redirect_uri", REDIRECT),
            ("resource", resource),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    (client, v)
}

/// One authorization for the route at `resource_path`, by a new public client, in a fresh
/// headless Chromium (tests/e2e/browse.mjs) that fills in `fill` wherever asked (see
/// chromium.mjs) and approves. The token answer (with the `client_id` added) and every URL
/// the browser went to, redirects included, in order.
pub async fn authorize_in_chromium(
    gw: &Gateway,
    resource_path: &str,
    fill: Value,
) -> (Value, Vec<String>) {
    let client = public_client(gw).await;
    let app = axum::Router::new().fallback(axum::routing::any(|| async { "signed in" }));
    let redirect = format!("http://{}/callback", super::serve(app).await);
    let resource = gw.url(resource_path);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs([
        ("response_type", "code"),
        ("client_id", client.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "st-1"),
        ("resource", resource.as_str()),
    ]);
    let start = format!("{}?{}", gw.url("/authorize"), q.finish());
    let args = [start, redirect.clone(), fill.to_string()];
    let (ok, v, stderr) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        super::run_node_json("browse.mjs", &args)
    })
    .await
    .unwrap();
    assert!(ok, "{v}\n{stderr}\n{}", gw.logs());
    let trail = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap().to_string())
        .collect();
    let back = query_of(v["url"].as_str().unwrap());
    assert_eq!(back["state"], "st-1", "{v}");
    let (status, mut tokens) = token(
        gw,
        &[
            ("grant_type", "authorization_code"),
            ("code", &back["code"]),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("resource", &resource),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens["client_id"] = client.into();
    (tokens, trail)
}
