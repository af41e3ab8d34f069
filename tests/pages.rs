//! Every page people see, in headless Chromium against the real binary (tests/e2e/pages.mjs):
//! what each says, that no sentence appears twice, that the chooser's buttons span the card,
//! and a screenshot of each. `AUTHGATE_SCREENSHOTS=docs/screenshots cargo test --test pages`
//! refreshes the pictures in docs/.

mod common;

use serde_json::{json, Value};

use common::{run_node_json, start_echo_upstream, Gateway};

fn config(up: u16) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:{{port}}"]
public_url = "http://127.0.0.1:{{port}}"
data_dir = "{{data}}"

[[scope]]
name = "mcp:tools"
description = "Use the tools of this MCP server"

[[upstream]]
name = "everything"
path = "/mcp"
url = "http://127.0.0.1:{up}/mcp"
scopes = ["mcp:tools"]

[[provider]]
id = "corp"
kind = "oidc"
display_name = "Company SSO"
issuer = "https://sso.example.com"
client_id = "authgate"
client_secret = "never-used-here"

[[provider]]
id = "github"
kind = "github"
client_id = "never-used-here"
client_secret = "never-used-here"

[[provider]]
id = "local"
kind = "local"

[[provider.users]]
username = "alice"
password_hash = "${{ALICE_HASH}}"
email = "alice@example.com"
"#
    )
}

#[tokio::test]
async fn every_page_reads_well_in_chromium() {
    let up = start_echo_upstream().await;
    let hash = authgate::login::local::hash_password("correct horse");
    let gw = Gateway::start_with_env(&config(up), &[("ALICE_HASH", &hash)]).await;
    let reg: Value = reqwest::Client::new()
        .post(gw.url("/register"))
        .json(&json!({
            "client_name": "Example MCP client",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = std::env::var("AUTHGATE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let (ok, result, stderr) = run_node_json(
        "pages.mjs",
        &[
            "--gateway",
            &gw.url(""),
            "--client-id",
            client_id,
            "--resource",
            &gw.url("/mcp"),
            "--password",
            "correct horse",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{result:#}\n{stderr}\n{}", gw.logs());
    let pages = result["pages"].as_array().unwrap();
    let page = |name: &str| -> &Value {
        pages
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no page {name}: {pages:#?}"))
    };
    let expect = [
        ("chooser", 200, "Sign in", ""),
        ("login", 200, "Sign in", "to continue to Example MCP client"),
        (
            "login-wrong-password",
            401,
            "Sign in",
            "Wrong username or password.",
        ),
        (
            "consent",
            200,
            "Allow Example MCP client?",
            "Use the tools of this MCP server",
        ),
        (
            "consent-continue",
            200,
            "Continue to Example MCP client?",
            "before",
        ),
        (
            "error-already-complete",
            400,
            "This sign-in is already complete",
            "never given twice",
        ),
        (
            "error-form-refused",
            403,
            "This form could not be accepted",
            "Allow cookies for this site",
        ),
        (
            "error-unknown-application",
            400,
            "Unknown application",
            "register anew",
        ),
        (
            "error-invalid-redirect",
            400,
            "Invalid redirect",
            "nothing was sent there",
        ),
        (
            "error-expired-link",
            400,
            "This sign-in link has expired",
            "start the connection again",
        ),
    ];
    for (name, status, heading, says) in expect {
        let p = page(name);
        assert_eq!(p["status"], status, "{name}: {p:#}");
        assert_eq!(p["heading"], heading, "{name}: {p:#}");
        assert!(
            p["text"].as_str().unwrap().contains(says),
            "{name} lacks {says:?}: {p:#}"
        );
        assert_eq!(p["duplicates"], json!([]), "{name} repeats itself: {p:#}");
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 2000,
            "{name}.png"
        );
    }
    // The chooser: one full-width button per provider, with its name.
    let buttons = page("chooser")["buttons"].as_array().unwrap().clone();
    let names: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Company SSO", "GitHub", "Local account"]);
    for b in &buttons {
        assert!(
            b["width"].as_f64().unwrap() >= 0.95,
            "not full width: {buttons:?}"
        );
    }
    let names = |p: &str| -> Vec<String> {
        page(p)["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("consent"), ["Deny", "Allow"]);
    assert_eq!(names("consent-continue"), ["Cancel", "Continue"]);
}
