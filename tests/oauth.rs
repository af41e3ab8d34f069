//! The authorization server and protected resource over HTTP against the real binary:
//! every endpoint's happy path and error paths (RFC 6749 JSON errors, never a 500), token
//! binding to one upstream, identity headers, and durability across `kill -9`.

mod common;

use serde_json::{json, Value};

use common::flow::{self, *};
use common::{start_echo_upstream, Gateway, TestConfig};

/// Routes a, b (scope mcp:tools), admin (mcp:admin) and public, alice, a trusted first-party
/// client and a confidential one; `auth` lines go into `[auth]`.
fn config(up: &str, auth: &[&str]) -> String {
    let mut c = TestConfig::new().auth("code_ttl = \"1m\"");
    for line in auth {
        c = c.auth(line);
    }
    c.scope("mcp:tools")
        .scope("mcp:admin")
        .upstream("a", "/a", &format!("{up}/up-a"), "scopes = [\"mcp:tools\"]")
        .upstream("b", "/b", &format!("{up}/up-b"), "scopes = [\"mcp:tools\"]")
        .upstream("admin", "/admin", &format!("{up}/up-admin"), "scopes = [\"mcp:admin\"]")
        .public("public", "/public", &format!("{up}/up-public"))
        .alice("email = \"alice@example.test\"\nname = \"Alice\"\ngroups = [\"eng\", \"ops\", \"cn=admins,ou=groups\"]")
        .raw("[[client]]\nclient_id = \"cli\"\nname = \"First-party CLI\"\nredirect_uris = [\"http://127.0.0.1/callback\"]\ntrusted = true")
        .raw("[[client]]\nclient_id = \"rs\"\nname = \"Resource server\"\nsecret = \"rs-secret\"\nredirect_uris = [\"https://rs.example/cb\"]")
        .build()
}

async fn start(auth: &[&str]) -> (Gateway, String) {
    let up = start_echo_upstream().await;
    let gw = Gateway::start(&config(&up, auth)).await;
    if common::config::backend_database().is_some() {
        assert!(
            gw.logs().contains("store open (PostgreSQL"),
            "{}",
            gw.logs()
        );
    }
    (gw, up)
}

/// Signs in with a fresh public client: (client_id, code) for `resource`.
async fn code_for(gw: &Gateway, resource: &str) -> (String, String) {
    let client = public_client(gw).await;
    let code = code_for_client(gw, &client, resource).await;
    (client, code)
}

/// A call with the token, and every identity header a client could try to slip through:
/// ours, ours with underscores (read as the same variable by CGI/WSGI servers), and other
/// gateways' names.
async fn call(gw: &Gateway, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(token)
        .header("x-authgate-email", "admin@evil.example")
        .header("x-authgate-user", "local:root")
        .header("X_Authgate_User", "local:admin")
        .header("x_authgate_email", "admin@evil.example")
        .header("X_AUTHGATE_GROUPS", "admins")
        .header("x-forwarded-user", "admin")
        .header("X_Forwarded_Email", "admin@evil.example")
        .header("remote-user", "admin")
        .header("x-auth-request-groups", "admins")
        .header("cookie", "authgate_session=stolen")
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_documents() {
    let (gw, _) = start(&[]).await;
    let c = reqwest::Client::new();
    let base = gw.url("");
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let m: Value = r.json().await.unwrap();
        assert_eq!(m["issuer"], base.as_str());
        assert_eq!(m["authorization_endpoint"], format!("{base}/authorize"));
        assert_eq!(m["token_endpoint"], format!("{base}/token"));
        assert_eq!(m["registration_endpoint"], format!("{base}/register"));
        assert_eq!(m["revocation_endpoint"], format!("{base}/revoke"));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none")));
    }
    let prm: Value = c
        .get(gw.url("/.well-known/oauth-protected-resource/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], format!("{base}/a"));
    assert_eq!(prm["authorization_servers"], json!([base]));
    assert_eq!(prm["scopes_supported"], json!(["mcp:tools"]));
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
    // Several protected routes and no default: the bare PRM URL has no single answer.
    let r = c
        .get(gw.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    // A public route has no PRM; unknown well-knowns are fast JSON 404s.
    assert_eq!(
        c.get(gw.url("/.well-known/oauth-protected-resource/public"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(gw.url("/.well-known/oauth-authorization-server/a"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // CORS preflight on the token endpoint; none on pages.
    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/token"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = c
        .get(authorize_url(&gw, "cli", &format!("{base}/a"), &[]))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn protected_routes_challenge_without_a_valid_token() {
    let (gw, _) = start(&[]).await;
    let c = reqwest::Client::new();
    let prm = gw.url("/.well-known/oauth-protected-resource/a");
    for (method, path) in [
        ("POST", "/a"),
        ("GET", "/a"),
        ("DELETE", "/a"),
        ("POST", "/a/"),
        ("POST", "/a/x/y"),
    ] {
        let r = c
            .request(method.parse().unwrap(), gw.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        let h: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
        assert_eq!(h.len(), 1);
        assert_eq!(
            h[0].to_str().unwrap(),
            format!("Bearer resource_metadata=\"{prm}\", scope=\"mcp:tools\"")
        );
        assert!(r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("WWW-Authenticate"));
    }
    let r = call(&gw, "/a", "junk").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    let r = c
        .post(gw.url("/a"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_request\""));
    // The public route needs nothing, and still never sees spoofed identity headers.
    let r = c
        .post(gw.url("/public"))
        .header("x-authgate-user", "local:root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert!(seen["headers"].get("x-authgate-user").is_none());
}

#[tokio::test]
async fn tokens_reach_only_their_upstream_with_identity_headers() {
    let (gw, _) = start(&[]).await;
    let (_, t) = tokens_for(&gw, &gw.url("/a")).await;
    let access = t["access_token"].as_str().unwrap();
    assert!(access.starts_with("ag_at_") && access.len() >= 6 + 43);
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "mcp:tools");

    let r = call(&gw, "/a/tools?x=1", access).await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["path"], "/up-a/tools");
    let h = &seen["headers"];
    assert_eq!(h["x-authgate-user"], "local:alice");
    assert_eq!(h["x-authgate-email"], "alice@example.test");
    assert_eq!(h["x-authgate-name"], "Alice");
    // A group with a comma arrives as one item, percent-encoded.
    assert_eq!(h["x-authgate-groups"], "eng,ops,cn=admins%2Cou=groups");
    assert_eq!(h["x-authgate-scopes"], "mcp:tools");
    let names: Vec<&String> = h.as_object().unwrap().keys().collect();
    for spoofed in [
        "x_authgate_user",
        "x_authgate_email",
        "x_authgate_groups",
        "x-forwarded-user",
        "x_forwarded_email",
        "remote-user",
        "x-auth-request-groups",
    ] {
        assert!(
            !names.iter().any(|n| n.as_str() == spoofed),
            "{spoofed} reached the upstream: {names:?}"
        );
    }
    for value in [
        "evil.example",
        "local:admin",
        "local:root",
        "\"admin\"",
        "\"admins\"",
    ] {
        assert!(
            !seen.to_string().contains(value),
            "{value} reached the upstream: {seen}"
        );
    }
    assert!(h["x-authgate-client-id"]
        .as_str()
        .unwrap()
        .starts_with("agc_"));
    assert!(
        h.get("authorization").is_none(),
        "the client's token reached the upstream"
    );
    assert!(h.get("cookie").is_none());
    assert!(!seen.to_string().contains(access));

    // RFC 8707: the token is for /a only.
    let r = call(&gw, "/b", access).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // A query-string token is never accepted.
    let r = reqwest::Client::new()
        .post(format!("{}?access_token={access}", gw.url("/a")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn authorize_errors_are_pages_before_the_client_is_known_and_redirects_after() {
    let (gw, _) = start(&[]).await;
    let client = public_client(&gw).await;
    let b = browser();
    let res = gw.url("/a");

    // Unknown client, unregistered redirect: an error page, never a redirect.
    let r = b
        .get(authorize_url(&gw, "nobody", &res, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let bad_redirect = authorize_url(&gw, &client, &res, &[]).replace("41234", "41234%2Fevil");
    let r = b.get(bad_redirect).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());

    // Loopback redirect URIs match on any port.
    let other_port = authorize_url(&gw, &client, &res, &[]).replace("41234", "50000");
    let r = b.get(other_port).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/login/local?flow="));

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "")], "invalid_request"),
        (
            vec![("resource", "https://evil.example/mcp")],
            "invalid_target",
        ),
        (vec![("scope", "mcp:tools root")], "invalid_scope"),
    ];
    for (overrides, expected) in cases {
        let mut url = url::Url::parse(&authorize_url(&gw, &client, &res, &[])).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .into_owned()
            .map(|(k, v)| {
                let v = overrides
                    .iter()
                    .find(|(o, _)| *o == k)
                    .map_or(v, |(_, nv)| nv.to_string());
                (k, v)
            })
            .chain(
                overrides
                    .iter()
                    .filter(|(k, _)| *k == "scope")
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        let r = b.get(url.as_str()).send().await.unwrap();
        assert_eq!(r.status(), 302, "{expected}");
        let loc = location(&r);
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let q = query_of(&loc);
        assert_eq!(q["error"], expected, "{loc}");
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["iss"], gw.url(""));
    }
    // OIDC scopes and prompt=consent are tolerated.
    let r = b
        .get(authorize_url(
            &gw,
            &client,
            &res,
            &[("scope", " offline_access openid"), ("prompt", "consent")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/login/"));
}

#[tokio::test]
async fn login_and_consent_forms_are_csrf_protected_single_use_and_deniable() {
    let (gw, _) = start(&[]).await;
    let client = public_client(&gw).await;
    let b = browser();
    let url = authorize_url(&gw, &client, &gw.url("/a"), &[]);
    let r = b.get(&url).send().await.unwrap();
    let login = b.get(gw.url(&location(&r))).send().await.unwrap();
    let csrf_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        csrf_cookie.starts_with("authgate_csrf=")
            && csrf_cookie.contains("HttpOnly")
            && csrf_cookie.contains("SameSite=Lax"),
        "{csrf_cookie}"
    );
    assert_eq!(login.headers()["referrer-policy"], "same-origin");
    let page = login.text().await.unwrap();
    let (flow, token) = (hidden(&page, "flow"), hidden(&page, "csrf"));
    let login_url = gw.url("/login/local");
    let login = |b: reqwest::Client, csrf: String, password: &'static str, origin| {
        let (url, flow) = (login_url.clone(), flow.clone());
        async move {
            let form = [
                ("flow", flow.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "alice"),
                ("password", password),
            ];
            post_form(&b, &url, origin, &form).await
        }
    };
    let r = login(b.clone(), token.clone(), "nope", None).await;
    assert_eq!(r.status(), 401, "wrong password");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Wrong username or password."));
    let r = login(b.clone(), "forged".into(), "pw", None).await;
    assert_eq!(r.status(), 403, "a token that is not this browser's");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("could not confirm that this form was sent from its own sign-in page"),
        "{body}"
    );
    let r = login(b.clone(), token.clone(), "pw", Some("https://evil.example")).await;
    assert_eq!(r.status(), 403, "login CSRF from another origin");
    let r = login(browser(), token.clone(), "pw", None).await;
    assert_eq!(r.status(), 403, "the token belongs to another browser");
    // What Chromium sends under a no-referrer policy: `Origin: null`, with a good token.
    let r = login(b.clone(), token.clone(), "pw", Some("null")).await;
    assert_eq!(r.status(), 303);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let consent = b.get(gw.url(&location(&r))).send().await.unwrap();
    assert_eq!(consent.headers()["x-frame-options"], "DENY");
    let html = consent.text().await.unwrap();
    assert!(
        html.contains("Allow Test client?")
            && html.contains("127.0.0.1")
            && html.contains("mcp:tools")
    );
    let flow = hidden(&html, "flow");
    let csrf = hidden(&html, "csrf");
    assert_ne!(csrf, token, "tokens are per form");
    let consent_url = gw.url("/consent");

    // Without the token, with the login form's token, or from another origin: refused.
    for (form, origin) in [
        (vec![("flow", flow.as_str()), ("decision", "approve")], None),
        (
            vec![
                ("flow", flow.as_str()),
                ("csrf", token.as_str()),
                ("decision", "approve"),
            ],
            None,
        ),
        (
            vec![
                ("flow", flow.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
            ],
            Some("https://evil.example"),
        ),
    ] {
        let r = post_form(&b, &consent_url, origin, &form).await;
        assert_eq!(r.status(), 403);
    }
    // Approve with `Origin: null` and a good token: a code. The same post again mints nothing.
    let approve = [
        ("flow", flow.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let r = post_form(&b, &consent_url, Some("null"), &approve).await;
    assert_eq!(r.status(), 303);
    assert!(query_of(&location(&r)).contains_key("code"));
    let r = post_form(&b, &consent_url, Some("null"), &approve).await;
    assert_eq!(r.status(), 400, "a replayed consent post");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("This sign-in is already complete"));

    // A new authorization: remembered consent, but this public client's loopback redirect
    // proves nothing, so a short page asks for a click every time.
    let r = b.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let next = location(&r);
    assert!(next.starts_with("/consent?"), "{next}");
    let html = flow::page(&b, &gw, &next).await;
    assert!(html.contains("Continue to Test client?"), "{html}");
    assert!(html.contains("Continue</button>"), "{html}");
    let deny = [
        ("flow", hidden(&html, "flow")),
        ("csrf", hidden(&html, "csrf")),
        ("decision", "deny".to_string()),
    ];
    let deny: Vec<(&str, &str)> = deny.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = post_form(&b, &consent_url, None, &deny).await;
    let q = query_of(&location(&r));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-1");

    // A confidential client with remembered consent goes straight back with a code.
    let rs_url = authorize_url(&gw, "rs", &gw.url("/a"), &[])
        .replace(&urlencode(REDIRECT), &urlencode("https://rs.example/cb"));
    let back = login_and_approve(&gw, &b, &rs_url).await;
    assert!(back.starts_with("https://rs.example/cb?code="), "{back}");
    let r = b.get(&rs_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        location(&r).starts_with("https://rs.example/cb?code="),
        "remembered consent of a confidential client needs no page"
    );

    // A trusted pre-registered client never sees consent.
    let b2 = browser();
    let mut trusted = authorize_url(&gw, "cli", &gw.url("/a"), &[]);
    trusted = trusted.replace("41234%2Fcallback", "9%2Fcallback");
    let back = login_and_approve(&gw, &b2, &trusted).await;
    assert!(
        back.starts_with("http://127.0.0.1:9/callback?code="),
        "{back}"
    );
}

#[tokio::test]
async fn token_endpoint_errors() {
    let (gw, _) = start(&[]).await;
    let res = gw.url("/a");
    let (client, code) = code_for(&gw, &res).await;
    let base = |code: &str| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("code_verifier".to_string(), VERIFIER.to_string()),
            ("client_id".to_string(), client.clone()),
            ("redirect_uri".to_string(), REDIRECT.to_string()),
        ]
    };
    let with = |code: &str, k: &str, v: &str| {
        let mut f = base(code);
        f.retain(|(key, _)| key != k);
        f.push((k.to_string(), v.to_string()));
        f
    };
    let post = |form: Vec<(String, String)>| {
        let gw_url = gw.url("/token");
        async move {
            let r = reqwest::Client::new()
                .post(gw_url)
                .form(&form)
                .send()
                .await
                .unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    // A wrong verifier burns the code (it is single-use) and fails.
    let (s, v) = post(with(&code, "code_verifier", "x".repeat(43).as_str())).await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );

    let (client2, code2) = code_for(&gw, &res).await;
    let _ = client2;
    let (s, v) = post(with(&code2, "client_id", &client)).await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str().unwrap()),
        (400, "invalid_grant"),
        "{v}"
    );

    let (client3, code3) = code_for(&gw, &res).await;
    let mut f = with(&code3, "client_id", &client3);
    f.push(("resource".into(), gw.url("/b")));
    let (s, v) = post(f).await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str().unwrap()),
        (400, "invalid_target")
    );

    let (s, v) = post(with("whatever", "grant_type", "password")).await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str().unwrap()),
        (400, "unsupported_grant_type")
    );
    let (s, v) = post(with("x", "client_id", "nobody")).await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    let r = reqwest::Client::new()
        .post(gw.url("/token"))
        .json(&json!({"grant_type": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    // Replaying a redeemed code fails and revokes what the first redemption issued.
    let (client4, code4) = code_for(&gw, &res).await;
    let (s, first) = post(with(&code4, "client_id", &client4)).await;
    assert_eq!(s, 200);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(call(&gw, "/a", access).await.status(), 200);
    let (s, v) = post(with(&code4, "client_id", &client4)).await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str().unwrap()),
        (400, "invalid_grant")
    );
    assert_eq!(
        call(&gw, "/a", access).await.status(),
        401,
        "replay did not revoke"
    );
}

#[tokio::test]
async fn clients_registered_without_the_refresh_grant_get_no_refresh_tokens() {
    let (gw, _) = start(&[]).await;
    let (s, v) = register(
        &gw,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["grant_types"], json!(["authorization_code"]));
    let client = v["client_id"].as_str().unwrap().to_string();
    let res = gw.url("/a");
    let code = code_for_client(&gw, &client, &res).await;
    let (s, v) = token(
        &gw,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("refresh_token").is_none(), "{v}");
    let access = v["access_token"].as_str().unwrap();
    assert_eq!(call(&gw, "/a", access).await.status(), 200);
    let (s, v) = token(
        &gw,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "ag_rt_anything"),
            ("client_id", &client),
        ],
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn refresh_rotation_reuse_and_scope() {
    let (gw, _) = start(&["refresh_grace = \"1s\""]).await;
    let (client, t) = tokens_for(&gw, &gw.url("/a")).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String, extra: Vec<(&'static str, String)>| {
        let url = gw.url("/token");
        let client = client.clone();
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", rt),
                ("client_id", client),
            ];
            form.extend(extra);
            let r = reqwest::Client::new()
                .post(url)
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = refresh(rt1.clone(), vec![("scope", "mcp:tools mcp:admin".into())]).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_scope"));
    let (s, v) = refresh(rt1.clone(), vec![("resource", gw.url("/b"))]).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_target"));
    // Refused requests changed nothing: the token still rotates.
    let (s, t2) = refresh(rt1.clone(), vec![("resource", gw.url("/a"))]).await;
    assert_eq!(s, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    let at2 = t2["access_token"].as_str().unwrap().to_string();
    assert_eq!(call(&gw, "/a", &at2).await.status(), 200);
    // A retry within the grace window (a lost response, a second process) gets the same
    // answer, and nothing is revoked.
    let (s, again) = refresh(rt1.clone(), vec![]).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again, t2, "the same answer, not new tokens");
    assert_eq!(call(&gw, "/a", &at2).await.status(), 200);
    // The store holds nothing that answers a refresh by itself: no token in clear.
    let store = common::stored_text(&gw);
    assert!(
        !store.contains(&rt2) && !store.contains(&at2),
        "a successor token is stored in clear"
    );
    // After the window (1 s), reusing rt1 revokes the family: rt2 and at2 die too. Until
    // then every retry gets the same answer, so polling changes nothing.
    let start = std::time::Instant::now();
    let v = loop {
        let (s, v) = refresh(rt1.clone(), vec![]).await;
        if s == 400 {
            break v;
        }
        assert_eq!(v, t2, "inside the window: the same answer");
        assert!(
            start.elapsed() < common::DEADLINE,
            "the grace window never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(call(&gw, "/a", &at2).await.status(), 401);
    let (s, _) = refresh(rt2, vec![]).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn scope_shortfall_is_403_with_the_union_of_scopes() {
    let (gw, _) = start(&[]).await;
    // Ask for /admin but only mcp:tools: allowed to authorize, refused at the route.
    let client = public_client(&gw).await;
    let url = authorize_url(&gw, &client, &gw.url("/admin"), &[("scope", "mcp:tools")]);
    let back = login_and_approve(&gw, &browser(), &url).await;
    let code = query_of(&back)["code"].clone();
    let (s, t) = token(
        &gw,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let r = call(&gw, "/admin", t["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 403);
    let h = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(h.contains("error=\"insufficient_scope\""), "{h}");
    // Held and needed, so a client that steps up keeps what it had (MCP 2025-11-25).
    assert!(h.contains("scope=\"mcp:admin mcp:tools\""), "{h}");
}

#[tokio::test]
async fn registration_rules() {
    let (gw, _) = start(&[]).await;
    for (body, err) in [
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "grant_types": ["authorization_code", "password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "grant_types": ["authorization_code", "implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "client_name": "Claude \u{202E}edoC"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://ok.example/cb"], "client_name": "Cl\u{200B}aude"}),
            "invalid_client_metadata",
        ),
        (json!("not an object"), "invalid_client_metadata"),
    ] {
        let (s, v) = register(&gw, body.clone()).await;
        assert_eq!(
            (s.as_u16(), v["error"].as_str().unwrap()),
            (400, err),
            "{body}"
        );
    }
    // VS Code's registration body (extra fields, several redirect URIs) is accepted. It sends
    // the grant types it supports filtered by ours (`grant_types_supported`).
    let (s, v) = register(
        &gw,
        json!({
            "client_name": "Visual Studio Code", "client_uri": "https://code.visualstudio.com",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"],
            "token_endpoint_auth_method": "none", "application_type": "native", "scope": ""
        }),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("client_secret").is_none());
    assert!(
        v.as_object().unwrap().values().all(|x| !x.is_null()),
        "no nulls: {v}"
    );
    // Omitted auth method: client_secret_basic with a secret, echoed.
    let (s, v) = register(&gw, json!({"redirect_uris": ["https://app.example/cb"]})).await;
    assert_eq!(s, 201);
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(v["client_secret_expires_at"], 0);
    let secret = v["client_secret"].as_str().unwrap();
    let id = v["client_id"].as_str().unwrap();
    // Its secret is required at the token endpoint.
    let r = reqwest::Client::new()
        .post(gw.url("/token"))
        .basic_auth(id, Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .post(gw.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "authenticated; the refresh token itself is what is wrong"
    );
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn registration_can_require_a_token_or_be_off() {
    let (gw, _) = start(&[
        "registration = \"token\"",
        "registration_token = \"let-me-in\"",
    ])
    .await;
    let body =
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
    let (s, v) = register(&gw, body.clone()).await;
    assert_eq!(
        (s.as_u16(), v["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    let r = reqwest::Client::new()
        .post(gw.url("/register"))
        .bearer_auth("let-me-in")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(gw);

    let (gw, _) = start(&["registration = \"off\""]).await;
    let (s, _) = register(&gw, body).await;
    assert_eq!(s, 403);
    let m: Value = reqwest::get(gw.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(m.get("registration_endpoint").is_none());
}

#[tokio::test]
async fn revocation_and_introspection() {
    let (gw, _) = start(&[]).await;
    let (client, t) = tokens_for(&gw, &gw.url("/a")).await;
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    let c = reqwest::Client::new();
    let introspect = |token: &str| {
        let req = c
            .post(gw.url("/introspect"))
            .basic_auth("rs", Some("rs-secret"))
            .form(&[("token", token)]);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // Public clients may not introspect.
    let r = c
        .post(gw.url("/introspect"))
        .form(&[("token", access), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v = introspect(access).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], "local:alice");
    assert_eq!(v["aud"], gw.url("/a"));
    assert_eq!(v["scope"], "mcp:tools");
    assert_eq!(introspect(refresh).await["token_type"], "refresh_token");
    assert_eq!(introspect("ag_at_unknown").await, json!({"active": false}));

    // Another client cannot revoke it; unknown tokens are a 200 no-op.
    let other = public_client(&gw).await;
    let r = c
        .post(gw.url("/revoke"))
        .form(&[("token", access), ("client_id", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(access).await["active"], true);
    let r = c
        .post(gw.url("/revoke"))
        .form(&[("token", "nonsense"), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Revoking the refresh token ends the grant, access token included, at once.
    let r = c
        .post(gw.url("/revoke"))
        .form(&[("token", refresh), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(access).await["active"], false);
    assert_eq!(call(&gw, "/a", access).await.status(), 401);
}

#[tokio::test]
async fn acknowledged_grants_survive_kill_9() {
    let (gw, _) = start(&[]).await;
    let (_, t) = tokens_for(&gw, &gw.url("/a")).await;
    let access = t["access_token"].as_str().unwrap().to_string();
    // SIGKILL right after the token response: no shutdown path runs. Then the same config
    // (same data dir, same upstream) in a new process.
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let gw2 = gw.restart(&config, &[]).await;
    assert_eq!(
        call(&gw2, "/a", &access).await.status(),
        200,
        "{}",
        gw2.logs()
    );
    // And the store file never held the token itself.
    assert!(!common::stored_text(&gw2).contains(&access));
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let (gw, _) = start(&["registration_rate_limit = 3"]).await;
    let body =
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
    for _ in 0..3 {
        assert_eq!(register(&gw, body.clone()).await.0, 201);
    }
    let r = reqwest::Client::new()
        .post(gw.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // 3 a minute: the next one is allowed within 20 seconds (a steady rate, not a window).
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
}

#[tokio::test]
async fn reverification_ends_the_grants_of_people_who_are_gone() {
    let up = start_echo_upstream().await;
    let text = config(&up, &[]).replacen(
        "kind = \"local\"",
        "kind = \"local\"\nreverify_every = \"1s\"",
        1,
    );
    let gw = Gateway::start(&text).await;
    let (client, t) = tokens_for(&gw, &gw.url("/a")).await;
    // Refreshes until `done` says the answer is the one awaited: before the check is due
    // (the first second), a refresh just rotates. Returns that answer and the last tokens.
    async fn refresh_until(
        gw: &Gateway,
        client: &str,
        mut last: Value,
        done: impl Fn(u16, &Value) -> bool,
    ) -> (u16, Value, Value) {
        let start = std::time::Instant::now();
        loop {
            let rt = last["refresh_token"].as_str().unwrap().to_string();
            let r = reqwest::Client::new()
                .post(gw.url("/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                    ("client_id", client),
                ])
                .send()
                .await
                .unwrap();
            let (s, v) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
            if done(s, &v) {
                return (s, v, last);
            }
            assert_eq!(s, 200, "{v}");
            last = v;
            assert!(
                start.elapsed() < common::DEADLINE,
                "never became due:\n{}",
                gw.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    // Due and still configured: re-verified, refreshed.
    let (_, t2, _) =
        refresh_until(&gw, &client, t, |_, _| gw.logs().contains("\"reverified\"")).await;
    // The same store under a config where alice is gone: the next due refresh ends the grant.
    let without_alice = std::fs::read_to_string(gw.config_path())
        .unwrap()
        .replace("username = \"alice\"", "username = \"carol\"");
    let gw2 = gw.restart(&without_alice, &[]).await;
    let (s, v, last) = refresh_until(&gw2, &client, t2, |s, _| s == 400).await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (400, "invalid_grant"),
        "{v}"
    );
    let access = last["access_token"].as_str().unwrap();
    assert_eq!(
        call(&gw2, "/a", access).await.status(),
        401,
        "the grant's tokens end with it"
    );
    assert!(gw2.logs().contains("reverify_refused"));
}
