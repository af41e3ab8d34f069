use std::path::Path;
use std::time::Duration;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "UPSTREAM_HOST" => Some("127.0.0.1".into()),
        _ => None,
    }
}

fn parse_ok(text: &str) -> Config {
    match parse(Path::new("/etc/authgate/gw.toml"), text, env) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// Parses `text`, expects errors, returns them rendered one per line.
fn parse_err(text: &str) -> Vec<String> {
    match parse(Path::new("gw.toml"), text, env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

const MINIMAL: &str = r#"
[server]
public_url = "http://127.0.0.1:8080"

[[upstream]]
name = "everything"
path = "/mcp"
url = "http://127.0.0.1:3001/mcp"
auth = "none"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = parse_ok(MINIMAL);
    assert_eq!(c.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(c.server.public_url.as_str(), "http://127.0.0.1:8080");
    assert_eq!(c.server.data_dir, Path::new("/etc/authgate/data"));
    assert!(c.server.threads >= 1);
    let u = &c.upstreams[0];
    assert_eq!(u.name.as_str(), "everything");
    assert_eq!(u.path.as_str(), "/mcp");
    assert_eq!(u.url.address(), "127.0.0.1:3001");
    assert_eq!(u.connect_timeout, Duration::from_secs(5));
    assert_eq!(u.idle_timeout, Duration::from_secs(300));
    assert!(!u.preserve_host);
}

#[test]
fn full_config_with_env_interpolation() {
    let c = parse_ok(
        r#"
[server]
listen = ["127.0.0.1:9000", "[::1]:9000"]
public_url = "https://gw.example.com/"
data_dir = "/var/lib/authgate"
threads = 3

[[upstream]]
name = "a"
path = "/a/"
host = "MCP.Example.com"
url = "http://${UPSTREAM_HOST}:4000/mcp"
auth = "none"
connect_timeout = "2s"
idle_timeout = "10m"
preserve_host = true

[[upstream]]
name = "b"
path = "/"
url = "https://b.internal"
auth = "none"
"#,
    );
    assert_eq!(c.server.listen.len(), 2);
    assert_eq!(c.server.public_url.as_str(), "https://gw.example.com");
    assert_eq!(c.server.data_dir, Path::new("/var/lib/authgate"));
    assert_eq!(c.server.threads, 3);
    let a = &c.upstreams[0];
    assert_eq!(a.host.as_deref(), Some("mcp.example.com"));
    assert_eq!(a.path.as_str(), "/a");
    assert_eq!(a.url.address(), "127.0.0.1:4000");
    assert_eq!(a.connect_timeout, Duration::from_secs(2));
    assert_eq!(a.idle_timeout, Duration::from_secs(600));
    assert!(a.preserve_host);
    assert!(c.upstreams[1].url.tls);
}

#[test]
fn bad_toml_names_line() {
    let errs = parse_err("[server]\npublic_url = \"http://127.0.0.1\"\nlisten = [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("gw.toml:"), "{errs:?}");
}

#[test]
fn unknown_key_is_refused_with_its_place() {
    let errs = parse_err(&MINIMAL.replace("path = \"/mcp\"", "path = \"/mcp\"\ntimeout = \"1s\""));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("gw.toml:8:1: upstream[0].timeout: unknown field `timeout`"),
        "{errs:?}"
    );
}

#[test]
fn unknown_section_is_refused() {
    let errs = parse_err(&format!("{MINIMAL}\n[frobnicate]\nx = 1\n"));
    assert!(errs[0].contains("unknown field `frobnicate`"), "{errs:?}");
}

#[test]
fn wrong_type_names_the_key() {
    let errs = parse_err(&MINIMAL.replace("path = \"/mcp\"", "path = 5"));
    assert!(
        errs[0].starts_with("gw.toml:7:8: upstream[0].path:"),
        "{errs:?}"
    );
}

#[test]
fn missing_field_names_it() {
    let errs = parse_err(
        "[server]\npublic_url = \"http://127.0.0.1\"\n[[upstream]]\nname = \"a\"\npath = \"/a\"\n",
    );
    assert_eq!(errs, ["gw.toml:3:1: upstream[0].url: is required"]);
}

#[test]
fn every_error_is_reported_at_once_in_file_order_without_consequences() {
    // The same file `authgate check` is tested with (tests/cli.rs).
    let errs = parse_err(include_str!("../../tests/fixtures/every-error.toml"));
    assert_eq!(
        errs,
        [
            r#"gw.toml:3:11: server.threads: invalid type: string "two", expected usize"#,
            "gw.toml:4:1: server.colour: unknown field `colour`, expected one of `listen`, `public_url`, `data_dir`, `threads`, `tls`, `allow_insecure_http`, `allowed_origins`, `max_header_line`, `max_header_size`, `max_headers`, `shutdown_grace`, `watch_config`, `trusted_proxies`, `token_cache_entries`, `upstream_keepalive_pool`",
            "gw.toml:8:8: upstream[0].path: invalid type: integer `5`, expected a string",
            "gw.toml:12:3: upstream[0].scopes: invalid type: integer `7`, expected a string",
            "gw.toml:14:1: upstream[0].bogus: unknown field `bogus`, expected one of `name`, `path`, `host`, `url`, `replicas`, `health_check_interval`, `dns_refresh`, `connect_timeout`, `idle_timeout`, `preserve_host`, `auth`, `scopes`, `identity_headers`, `strip_common_identity_headers`, `max_body_size`, `keepalive_timeout`, `http2`, `credential`, `signed_identity`",
            "gw.toml:21:17: provider[0].client_secret: environment variable `AUTHGATE_TEST_UNSET_SECRET` is not set",
            "gw.toml:23:2: unknown_table: unknown field `unknown_table`, expected one of `server`, `upstream`, `auth`, `scope`, `provider`, `client`, `cimd`, `admin`, `audit`, `policy`, `store`",
        ],
    );
}

#[test]
fn missing_env_var_names_variable_and_key() {
    let errs = parse_err(&MINIMAL.replace("127.0.0.1:3001", "${NOT_SET_ANYWHERE}:3001"));
    assert_eq!(
        errs,
        vec!["gw.toml:8:7: upstream[0].url: environment variable `NOT_SET_ANYWHERE` is not set"]
    );
}

#[test]
fn duplicate_upstream_name_and_route() {
    let text = format!("{MINIMAL}\n[[upstream]]\nname = \"everything\"\npath = \"/mcp/\"\nurl = \"http://127.0.0.1:3002\"\nauth = \"none\"\n");
    let errs = parse_err(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("upstream[1].name: `everything` is already the name of upstream[0]"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("upstream[1].path: `/mcp` is already served by upstream[0]"),
        "{errs:?}"
    );
}

#[test]
fn same_path_on_different_hosts_and_nested_prefixes_are_fine() {
    let c = parse_ok(&format!(
        "{MINIMAL}\n[[upstream]]\nname = \"b\"\npath = \"/mcp\"\nhost = \"b.example\"\nurl = \"http://127.0.0.1:3002\"\nauth = \"none\"\n\
         [[upstream]]\nname = \"c\"\npath = \"/mcp/deeper\"\nurl = \"http://127.0.0.1:3003\"\nauth = \"none\"\n"
    ));
    assert_eq!(c.upstreams.len(), 3);
}

#[test]
fn every_value_error_is_reported_at_once() {
    let errs = parse_err(
        r#"
[server]
listen = ["nope", "127.0.0.1:1", "127.0.0.1:1"]
public_url = "ftp://x"
threads = 0

[[upstream]]
name = "Bad Name"
path = "mcp"
url = "gopher://x"
auth = "none"
connect_timeout = "soon"
idle_timeout = "0s"
"#,
    );
    let joined = errs.join("\n");
    for want in [
        "gw.toml:3:11: server.listen[0]: `nope` is not an IP:port",
        "server.listen[2]: `127.0.0.1:1` is listed twice",
        "gw.toml:4:14: server.public_url: must be an http or https URL",
        "server.threads: must be between 1 and 1024",
        "upstream[0].name: may contain only",
        "upstream[0].path: must start with `/`",
        "upstream[0].url: scheme `gopher` is not supported",
        "upstream[0].connect_timeout: not a duration",
        "upstream[0].idle_timeout: must be greater than zero",
    ] {
        assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
    }
}

#[test]
fn insecure_public_url_needs_opt_in() {
    let remote = MINIMAL.replace("http://127.0.0.1:8080", "http://gw.example.com");
    let errs = parse_err(&remote);
    assert!(
        errs[0].contains("server.public_url: plain http is only allowed on a loopback host"),
        "{errs:?}"
    );
    let allowed = remote.replace("[server]", "[server]\nallow_insecure_http = true");
    parse_ok(&allowed);
}

#[test]
fn reserved_paths_cannot_be_routed() {
    let errs = parse_err(&MINIMAL.replace("path = \"/mcp\"", "path = \"/.well-known/x\""));
    assert!(
        errs[0].contains("`/.well-known` is answered by the gateway itself"),
        "{errs:?}"
    );
    let errs = parse_err(&MINIMAL.replace("path = \"/mcp\"", "path = \"/healthz\""));
    assert!(
        errs[0].contains("`/healthz` is answered by the gateway itself"),
        "{errs:?}"
    );
}

#[test]
fn no_upstream_is_an_error() {
    let errs = parse_err("[server]\npublic_url = \"http://127.0.0.1:8080\"\n");
    assert!(
        errs[0].contains("upstream: no [[upstream]] is configured"),
        "{errs:?}"
    );
}

#[test]
fn shipped_examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    let entries = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("examples/replicas")).unwrap())
        .chain(std::fs::read_dir(root.join("config")).unwrap());
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let any_env = |name: &str| {
                Some(if name.ends_with("_KEY") {
                    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()
                } else if name.ends_with("_HASH") {
                    crate::testing::DEMO_HASH.to_string()
                } else if name.ends_with("_TOKEN") {
                    "an-example-token-of-some-length".to_string()
                } else if name == "DATABASE_URL" {
                    "postgres://authgate:pw@db.internal/authgate".to_string()
                } else {
                    "example-value".to_string()
                })
            };
            if let Err(e) = parse(&path, &text, any_env) {
                panic!("{} does not parse:\n{e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "example configs missing");
}

#[test]
fn per_person_credentials_need_people_signed_in() {
    for kind in [
        "kind = \"upstream_oauth\"",
        "kind = \"user_account\"\nauthorize_url = \"https://svc.example/a\"\ntoken_url = \"https://svc.example/t\"\nclient_id = \"c\"\nclient_secret = \"s\"",
    ] {
        let errors = parse_err(&format!("{MINIMAL}[upstream.credential]\n{kind}\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("upstream[0].credential.kind")
                && errors[0].contains("remove auth = \"none\""),
            "{errors:?}"
        );
        let ok = parse_ok(&format!(
            "{}[upstream.credential]\n{kind}\n\n[[provider]]\nid = \"gh\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
            MINIMAL.replace("auth = \"none\"\n", "")
        ));
        assert!(ok.upstreams[0].credential.as_ref().unwrap().per_person());
    }
}

#[test]
fn a_shared_store_is_checked_without_repeating_its_url() {
    let key = "session_key = \"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\"";
    let ok = parse_ok(&format!(
        "{MINIMAL}\n[auth]\n{key}\n\n[store]\nkind = \"postgres\"\nurl = \"postgres://authgate:hunter2@db.internal/authgate?sslmode=require\"\npool_size = 4\n"
    ));
    match &ok.store {
        StoreConfig::Postgres(pg) => {
            assert_eq!((pg.schema.as_str(), pg.pool_size), ("authgate", 4));
            assert!(
                !format!("{pg:?}").contains("hunter2"),
                "Debug redacts the url"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse_ok(MINIMAL).store, StoreConfig::Redb));

    let errors = parse_err(&format!(
        "{MINIMAL}\n[store]\nkind = \"postgres\"\nurl = \"postgres://authgate:hunter2@db:notaport/x\"\nschema = \"Auth-Gate\"\n"
    ));
    let all = errors.join("\n");
    assert!(
        !all.contains("hunter2"),
        "the password is never echoed:\n{all}"
    );
    assert!(
        all.contains("store.url: is not a PostgreSQL connection string"),
        "{all}"
    );
    assert!(
        all.contains("store.schema: must be a plain lower-case SQL identifier"),
        "{all}"
    );
    assert!(
        all.contains("store.kind: a shared store needs auth.session_key"),
        "{all}"
    );
    assert!(errors.iter().all(|e| e.starts_with("gw.toml:")), "{all}");

    let errors = parse_err(&format!("{MINIMAL}\n[store]\nurl = \"postgres://db/x\"\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("store.url: only applies to kind = \"postgres\""),
        "{errors:?}"
    );
}
