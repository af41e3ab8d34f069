//! `authgate check`: a summary and exit 0 for a good file; file:line:key and exit 1 otherwise.

mod common;

use std::process::Command;

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["check", "--config"])
        .arg(&path)
        .env_remove("AUTHGATE_TEST_UNSET_SECRET");
    let out = common::output_within(cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_summarises_a_good_config() {
    let (ok, stdout, _) = check(
        "[server]\npublic_url = \"https://gw.example.com\"\n[[upstream]]\nname = \"a\"\npath = \"/a\"\nurl = \"http://127.0.0.1:3001/mcp\"\nauth = \"none\"\n\
         [[upstream]]\nname = \"b\"\npath = \"/b\"\nhost = \"b.example\"\nurl = \"https://b.internal\"\nauth = \"none\"\n",
    );
    assert!(ok);
    assert!(stdout.contains("gw.toml: ok"), "{stdout}");
    assert!(stdout.contains("routes      2"), "{stdout}");
    assert!(stdout.contains("https://gw.example.com/a"), "{stdout}");
    assert!(
        stdout.contains("-> http://127.0.0.1:3001/mcp  [a]"),
        "{stdout}"
    );
    assert!(stdout.contains("(host b.example)"), "{stdout}");
}

#[test]
fn check_reports_every_error_with_place_and_fails() {
    let (ok, stdout, stderr) = check(
        "[server]\npublic_url = \"http://127.0.0.1:8080\"\nlisten = [\"x\"]\n[[upstream]]\nname = \"a\"\npath = \"a\"\nurl = \"http://127.0.0.1:1\"\nauth = \"none\"\n",
    );
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("gw.toml:3:11: server.listen[0]:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gw.toml:6:8: upstream[0].path: must start with `/`"),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

#[test]
fn check_on_the_shipped_demo_config() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.toml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["check", "--config"]).arg(&path);
    let out = common::output_within(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_reports_every_error_at_once_in_file_order() {
    // The same file the config parser's unit test reads (src/config/tests.rs).
    let (ok, _, stderr) = check(include_str!("fixtures/every-error.toml"));
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 8, "{stderr}");
    assert!(
        lines[0].contains("gw.toml:3:11: server.threads:"),
        "{stderr}"
    );
    assert!(
        lines[1].contains("gw.toml:4:1: server.colour: unknown field `colour`"),
        "{stderr}"
    );
    assert!(
        lines[2].contains("gw.toml:8:8: upstream[0].path:"),
        "{stderr}"
    );
    assert!(
        lines[5].contains("gw.toml:21:17: provider[0].client_secret: environment variable `AUTHGATE_TEST_UNSET_SECRET` is not set"),
        "{stderr}"
    );
    assert!(lines[7].ends_with("gw.toml: 7 error(s)"), "{stderr}");
    assert!(
        !stderr.contains("at least one [[provider]]"),
        "a consequence was reported: {stderr}"
    );
}

#[test]
fn check_prints_providers_scopes_clients_and_warns_about_names_that_do_not_resolve() {
    let (ok, stdout, stderr) = check(
        r#"[server]
public_url = "https://gw.example.com"
[[scope]]
name = "mcp:tools"
description = "Use tools"
[[upstream]]
name = "later"
path = "/mcp"
url = "http://upstream-not-yet.invalid:3001/mcp"
scopes = ["mcp:tools"]
[[provider]]
id = "corp"
kind = "oidc"
display_name = "Corp SSO"
issuer = "https://idp.example"
client_id = "gw"
client_secret = "s"
[[provider]]
id = "gh"
kind = "github"
client_id = "x"
client_secret = "y"
[[client]]
client_id = "team-cli"
redirect_uris = ["http://127.0.0.1/callback"]
trusted = true
"#,
    );
    assert!(ok, "{stderr}");
    for want in [
        "providers   2",
        "corp             oidc, issuer https://idp.example  \"Corp SSO\"",
        "gh               github  \"GitHub\"",
        "scopes      1",
        "mcp:tools        Use tools",
        "clients     1",
        "team-cli         public, trusted, redirects http://127.0.0.1/callback",
        "[later] oauth, scopes mcp:tools",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    assert!(
        stderr.contains("warning: upstream `later`:")
            && stderr.contains("answers 502 on this route until the name resolves"),
        "{stderr}"
    );
}

#[test]
fn run_creates_nothing_on_disk_when_it_cannot_start() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        format!("[server]\nlisten = [\"127.0.0.1:{port}\"]\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"state\"\n[[upstream]]\nname = \"a\"\npath = \"/a\"\nurl = \"http://upstream-not-yet.invalid:1\"\nauth = \"none\"\n"),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.args(["run", "--config"]).arg(&path);
    let out = common::output_within(cmd);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "the data dir was created"
    );
}

#[test]
fn schema_describes_every_table_and_refuses_unknown_keys() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authgate"));
    cmd.arg("schema");
    let out = common::output_within(cmd);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = &schema["properties"];
    for table in [
        "server", "upstream", "auth", "scope", "provider", "client", "cimd", "admin", "audit",
    ] {
        assert!(top.get(table).is_some(), "no `{table}` in the schema");
    }
    assert_eq!(schema["additionalProperties"], false);
    // Every key the annotated example config uses is in the schema.
    let text = std::fs::read_to_string(common::repo_root().join("config/authgate.toml")).unwrap();
    let server = &schema["$defs"]["ServerSection"]["properties"];
    for key in [
        "listen",
        "public_url",
        "data_dir",
        "shutdown_grace",
        "watch_config",
        "trusted_proxies",
    ] {
        assert!(server.get(key).is_some(), "server.{key}");
    }
    let example: toml::Table = text.parse().unwrap();
    for (table, value) in &example {
        let def = match table.as_str() {
            "server" => "ServerSection",
            "auth" => "AuthSection",
            "cimd" => "CimdSection",
            "upstream" => "UpstreamSection",
            "scope" => "ScopeSection",
            "provider" => "ProviderSection",
            "client" => "ClientSection",
            "admin" => "AdminSection",
            "audit" => "AuditSection",
            other => panic!("unexpected table {other}"),
        };
        let props = &schema["$defs"][def]["properties"];
        let first = match value {
            toml::Value::Array(a) => a[0].as_table().unwrap(),
            v => v.as_table().unwrap(),
        };
        for key in first.keys() {
            assert!(
                props.get(key).is_some(),
                "{table}.{key} is not in the schema"
            );
        }
    }
}
