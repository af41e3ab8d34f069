//! Every page people see, in headless Chromium against the real binary (tests/e2e/pages.mjs):
//! what each says, that no sentence appears twice, that the chooser's buttons span the card,
//! and a screenshot of each. `AUTHGATE_SCREENSHOTS=docs/screenshots cargo test --test pages`
//! refreshes the pictures in docs/.

mod common;

use serde_json::{json, Value};

use common::{run_node_json, start_echo_upstream, Gateway, TestConfig};

/// A protected route, one that policies (`policy`, a file) keep alice from, and the three
/// kinds of provider on the chooser (only the local one is signed in with here).
fn config(up: &str, policy: &std::path::Path) -> String {
    TestConfig::new()
        .raw("[[scope]]\nname = \"mcp:tools\"\ndescription = \"Use the tools of this MCP server\"")
        .upstream(
            "everything",
            "/mcp",
            &format!("{up}/mcp"),
            "scopes = [\"mcp:tools\"]",
        )
        .upstream(
            "ops",
            "/ops",
            &format!("{up}/ops"),
            "scopes = [\"mcp:tools\"]",
        )
        .upstream(
            "calendar",
            "/calendar",
            &format!("{up}/calendar"),
            "scopes = [\"mcp:tools\"]\n[upstream.credential]\nkind = \"user_account\"\nauthorize_url = \"https://calendar.example/oauth/authorize\"\ntoken_url = \"https://calendar.example/oauth/token\"\nclient_id = \"authgate\"\nclient_secret = \"never-used-here\"",
        )
        .raw(&format!("[policy]\nfiles = [\"{}\"]", policy.display()))
        .raw(
            r#"[[provider]]
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
client_secret = "never-used-here""#,
        )
        .alice("email = \"alice@example.com\"")
        .build()
}

#[tokio::test]
async fn every_page_reads_well_in_chromium() {
    let up = start_echo_upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"operators only\"\neffect = \"allow\"\nupstreams = [\"ops\"]\nemails = [\"ops@example.com\"]\n",
    )
    .unwrap();
    let gw = Gateway::start(&config(&up, &policy)).await;
    let (status, reg) = common::flow::register(
        &gw,
        json!({
            "client_name": "Example MCP client",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    let client_id = reg["client_id"].as_str().unwrap();
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
            "--denied-resource",
            &gw.url("/ops"),
            "--password",
            "pw",
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
        (
            "error-not-allowed",
            403,
            "Not allowed here",
            "Your account may not use ops at this gateway",
        ),
        (
            "connected-accounts",
            200,
            "Connected accounts",
            "Not connected: an application that uses it will ask you to connect.",
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
