//! `authgate check`: a summary and exit 0 for a good file; file:line:key and exit 1 otherwise.

use std::process::Command;

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
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
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
