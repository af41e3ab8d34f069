//! `authgate login`, `token` and `logout` against the real gateway: discovery from the 401,
//! the browser step (driven by the test as a person's browser would go: sign-in form, then
//! the redirect to the CLI's loopback port), tokens kept 0600, concurrent `token` calls that
//! refresh one at a time (with reuse detection on, a second refresh of the same token would
//! revoke the grant), and logout revoking the grant.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::flow::{browser, login_and_approve};
use common::{start_everything, Gateway, TestConfig};

fn authgate(tokens: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.env("AUTHGATE_TOKENS", tokens).env("BROWSER", "true");
    cmd
}

fn token(tokens: &std::path::Path, url: &str, min_valid: &str) -> (bool, String, String) {
    let out = common::output_within({
        let mut c = authgate(tokens);
        c.args(["token", url, "--min-valid", min_valid]);
        c
    });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn status_with(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn login_token_and_logout_from_the_terminal() {
    let (_everything, mcp_url) = start_everything().await;
    let config = TestConfig::new()
        // Reuse of a rotated refresh token revokes the grant at once: racing refreshes show.
        .auth("refresh_grace = \"0s\"")
        .scope("mcp:tools")
        .upstream("everything", "/mcp", &mcp_url, "scopes = [\"mcp:tools\"]")
        .raw("[[client]]\nclient_id = \"authgate-cli\"\nname = \"authgate CLI\"\nredirect_uris = [\"http://127.0.0.1/callback\"]\ntrusted = true")
        .alice("")
        .build();
    let gw = Gateway::start(&config).await;
    let url = gw.url("/mcp");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("conf/authgate/tokens.json");

    // login: it prints the authorize URL and waits for the browser on a loopback port.
    let mut login = authgate(&tokens)
        .args(["login", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(login.stderr.take().unwrap()).lines();
    let authorize = loop {
        let line = lines.next().expect("login printed the URL").unwrap();
        if let Some(u) = line.trim().strip_prefix(&gw.url("/authorize?")) {
            break format!("{}{u}", gw.url("/authorize?"));
        }
    };
    assert!(authorize.contains("client_id=authgate-cli"), "{authorize}");
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("scope=mcp%3Atools"), "{authorize}");
    let back = login_and_approve(&gw, &browser(), &authorize).await;
    assert!(
        back.starts_with("http://127.0.0.1:") && back.contains("/callback?code="),
        "{back}"
    );
    let page = reqwest::get(&back).await.unwrap().text().await.unwrap();
    assert!(page.contains("Signed in"), "{page}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(login.wait().unwrap().success(), "{rest:?}");

    // The tokens file: 0600 in a 0700 folder, the URL's tokens in it.
    let mode = std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let folder = std::fs::metadata(tokens.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(folder, 0o700);

    // token: the saved access token, accepted by the gateway (the upstream answers).
    let (ok, first, err) = token(&tokens, &url, "60");
    assert!(ok && first.starts_with("ag_at_"), "{first}\n{err}");
    assert_ne!(status_with(&url, &first).await, 401);

    // Five scripts at once, each wanting a token valid for an hour (longer than the access
    // TTL, so each refreshes): the file lock puts the refreshes one after another, each with
    // the latest refresh token; racing ones would reuse one and revoke the grant.
    let children: Vec<_> = (0..5)
        .map(|_| {
            let mut c = authgate(&tokens);
            c.args(["token", &url, "--min-valid", "3600"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut printed = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    printed.sort();
    printed.dedup();
    assert_eq!(
        printed.len(),
        5,
        "each refreshed once, in turn: {printed:?}"
    );
    let (ok, last, _) = token(&tokens, &url, "60");
    assert!(ok);
    assert!(!printed.contains(&first) && printed.contains(&last));
    assert_ne!(status_with(&url, &last).await, 401, "the grant survived");

    // logout: the grant is revoked, the tokens forgotten.
    let out = common::output_within({
        let mut c = authgate(&tokens);
        c.args(["logout", &url]);
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status_with(&url, &last).await, 401);
    let (ok, _, err) = token(&tokens, &url, "60");
    assert!(!ok && err.contains("authgate login"), "{err}");
}
