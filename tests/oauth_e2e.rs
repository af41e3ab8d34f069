//! The whole MCP authorization story with real third-party software: the official MCP
//! TypeScript SDK client (its OAuth provider, with a loopback redirect server), headless
//! Chromium as the person's browser (real pages, real clicks: chooser, login form, consent),
//! authgate, the unmodified server-everything, and `oidc-provider` as the upstream identity
//! provider. 401 → PRM → AS metadata → DCR → authorize → chooser → login → consent → code →
//! token → tools/call → refresh → call again → revoke → 401.

mod common;

use serde_json::Value;

use common::{run_node_json, start_everything, start_oidc_provider, Gateway, TestConfig};

fn config(mcp_url: &str, issuer: &str) -> String {
    TestConfig::new()
        // The scenario checks that reusing a rotated refresh token is refused at once.
        .auth("refresh_grace = \"0s\"")
        .scope("mcp:tools")
        .upstream("everything", "/mcp", mcp_url, "scopes = [\"mcp:tools\"]")
        .raw(&format!(
            r#"[[provider]]
id = "corp"
kind = "oidc"
display_name = "Corp SSO"
issuer = "{issuer}"
client_id = "authgate"
client_secret = "${{CORP_SECRET}}"
# Re-check people at the IdP (with the refresh token it issued at login) on refreshes.
reverify_every = "1s"
# Groups from a nested claim (Keycloak's realm roles); the policy below admits corp people
# only with the role, so the scenario's tool calls prove the claim was read.
groups_claim = "realm_access.roles"

[policy]
files = ["policy.toml"]"#
        ))
        .alice("email = \"alice@example.test\"")
        .build()
}

/// bob signs in at corp with the role `bob-role` in `realm_access.roles`; alice is local.
const POLICY: &str = r#"
[[rule]]
name = "corp people with their role"
effect = "allow"
upstreams = ["everything"]
providers = ["corp"]
groups = ["bob-role"]

[[rule]]
name = "local accounts"
effect = "allow"
upstreams = ["everything"]
providers = ["local"]
"#;

/// Asserts every step of the scenario the SDK client reports.
fn assert_scenario(out: &Value, gw: &Gateway) {
    let base = gw.url("");
    let un = &out["unauthenticated"];
    assert_eq!(un["status"], 401, "{out:#}");
    let challenge = un["wwwAuthenticate"].as_str().unwrap();
    assert!(
        challenge.starts_with(&format!(
            "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no error param without a token: {challenge}"
    );

    let d = &out["discovery"];
    assert_eq!(d["issuer"], base.as_str());
    assert_eq!(d["authorizationServer"], base.as_str());
    assert_eq!(d["resource"], format!("{base}/mcp"));
    assert_eq!(d["registrationEndpoint"], format!("{base}/register"));

    assert!(out["registration"]["clientId"]
        .as_str()
        .unwrap()
        .starts_with("agc_"));
    assert_eq!(out["registration"]["hasClientSecret"], false);
    let a = &out["authorize"];
    assert_eq!(a["codeChallengeMethod"], "S256");
    assert_eq!(a["resource"], format!("{base}/mcp"));
    let cb = &out["callback"];
    assert_eq!(cb["hasCode"], true, "{out:#}");
    assert_eq!(cb["stateMatches"], true);
    assert_eq!(
        cb["iss"],
        base.as_str(),
        "RFC 9207 iss in the authorization response"
    );

    let t = &out["token"];
    assert_eq!(t["tokenType"], "Bearer");
    assert_eq!(t["expiresIn"], 3600);
    assert_eq!(t["hasRefresh"], true);
    assert_eq!(t["scope"], "mcp:tools");
    assert_eq!(out["echo"], "Echo: hi");
    assert!(out["mcp"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "echo"));

    let r = &out["refresh"];
    assert_eq!(r["newAccess"], true);
    assert_eq!(r["newRefresh"], true, "refresh tokens rotate");
    assert_eq!(r["echo"], "Echo: hi", "the refreshed token works");
    assert_eq!(r["oldRefreshReuse"]["status"], 400);
    assert_eq!(r["oldRefreshReuse"]["error"], "invalid_grant");

    let v = &out["revoke"];
    assert_eq!(v["before"]["status"], 200);
    assert_eq!(v["status"], 200);
    assert_eq!(v["after"]["status"], 401);
    assert!(v["after"]["wwwAuthenticate"]
        .as_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
}

async fn scenario(fill: &str, extra_args: &[&str]) -> (Value, Gateway, Vec<common::ChildGuard>) {
    let (everything, mcp_url) = start_everything().await;
    // The IdP and authgate name each other: bind the IdP's socket and reserve authgate's
    // address first, then start both.
    let idp_listener = common::listener();
    let issuer = format!("http://{}", idp_listener.local_addr().unwrap());
    let (addr, guard) = common::reserve_addr();
    let redirect = format!("http://{addr}/callback/corp");
    let idp = start_oidc_provider(idp_listener, "authgate", "corp-secret-for-tests", &redirect);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let gw = Gateway::start_at(
        addr,
        guard,
        dir,
        &config(&mcp_url, &issuer),
        &[("CORP_SECRET", "corp-secret-for-tests")],
    )
    .await;
    let server = gw.url("/mcp");
    let mut args = vec!["--server", server.as_str(), "--fill", fill];
    args.extend_from_slice(extra_args);
    let (ok, out, stderr) = run_node_json("oauth-flow.mjs", &args);
    assert!(
        ok,
        "the SDK OAuth flow failed:\n{out:#}\n{stderr}\nauthgate:\n{}",
        gw.logs()
    );
    (out, gw, vec![everything, idp])
}

#[tokio::test]
async fn sdk_client_logs_in_through_an_upstream_oidc_provider() {
    // The refresh comes after reverify_every: authgate re-checks bob at the IdP first.
    let (out, gw, _children) = scenario(
        r#"{"__provider":"Corp SSO","login":"bob","password":"anything"}"#,
        &["--refresh-delay-ms", "2100"],
    )
    .await;
    assert_scenario(&out, &gw);
    assert_pages(&out, &["Sign in", "provider Corp SSO"]);
    // The browser went through the chooser, the IdP and back to our callback and consent.
    let urls: Vec<&str> = out["browser"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["url"].as_str())
        .collect();
    assert!(urls.iter().any(|u| u.ends_with("/login")), "{urls:?}");
    assert!(
        urls.iter().any(|u| u.ends_with("/callback/corp")),
        "{urls:?}"
    );
    assert!(urls.iter().any(|u| u.ends_with("/consent")), "{urls:?}");
    // The identity came from the IdP's ID token / userinfo.
    let logs = gw.logs();
    assert!(
        logs.contains("corp:bob"),
        "login of corp:bob not in the audit log"
    );
    // The refresh came after reverify_every (the client waited 2.1 s): bob was re-checked
    // at the IdP with the refresh token it issued at login.
    assert!(
        logs.lines()
            .any(|l| l.contains("\"event\":\"reverified\"") && l.contains("corp:bob")),
        "no reverification of corp:bob:\n{logs}"
    );
    // No token or code ever reaches the logs.
    for needle in ["ag_at_", "ag_rt_", "ag_code_", "corp-secret-for-tests"] {
        assert!(!logs.contains(needle), "{needle} leaked into the logs");
    }
}

#[tokio::test]
async fn sdk_client_logs_in_as_a_local_user() {
    let (out, gw, _children) = scenario(
        r#"{"__provider":"Local account","username":"alice","password":"pw"}"#,
        &[],
    )
    .await;
    assert_scenario(&out, &gw);
    assert_pages(&out, &["Sign in", "provider Local account"]);
    let pages = out["pages"].as_array().unwrap();
    assert!(
        pages
            .iter()
            .any(|p| p["url"].as_str().unwrap().ends_with("/login/local")
                && p["action"] == "sign in"),
        "the local login form was filled and sent: {pages:?}"
    );
    assert!(gw.logs().contains("local:alice"));
}

/// The pages Chromium showed: the chooser first (its button clicked as `choice`), the
/// consent page last with Allow clicked, each answered 200, no page refused.
fn assert_pages(out: &Value, [chooser_title, choice]: &[&str; 2]) {
    let pages = out["pages"].as_array().unwrap();
    let first = &pages[0];
    assert!(
        first["url"].as_str().unwrap().ends_with("/login")
            && first["title"].as_str().unwrap().starts_with(chooser_title)
            && first["action"] == *choice,
        "{pages:#?}"
    );
    let consent = &pages[pages.len() - 2];
    assert!(
        consent["url"].as_str().unwrap().ends_with("/consent")
            && consent["action"] == "decision approve",
        "{pages:#?}"
    );
    for p in &pages[..pages.len() - 1] {
        assert_eq!(p["status"], 200, "{pages:#?}");
    }
    let last = &pages[pages.len() - 1];
    assert!(
        last["url"].as_str().unwrap().ends_with("/callback"),
        "{pages:#?}"
    );
}
