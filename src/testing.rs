//! Fixtures for the unit tests: a config from TOML text, an authorization server on a
//! temporary store, requests, and the values records carry. Handlers take `now`, so tests
//! pick their own clock.

use std::sync::Arc;

use crate::config::Config;
use crate::oauth::flow::Flow;
use crate::oauth::Authority;
use crate::store::{Cached, RedbStore, Terms};
use crate::vocab::{ClientId, Identity, RedirectUri, ScopeSet, UpstreamName};
use crate::web::Request;

/// argon2 of "demo" (the demo's user), so tests need not hash.
pub const DEMO_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$GZ5bcwe5pUpGzcs1vS7Ltw$lPZ6MxMfx6x/k9pOXl9gvMd1kUzYdZHgd4r+9c9mLII";

/// A gateway on `http://127.0.0.1:8080` with one OAuth route `/mcp` (scope `mcp:tools`), a
/// local provider with `alice` (password `demo`), and `extra` TOML after it.
pub fn config(extra: &str) -> Config {
    config_with("", extra)
}

/// [`config`] with `server` lines added to its `[server]` table.
pub fn config_with(server: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[server]
public_url = "http://127.0.0.1:8080"
{server}

[[scope]]
name = "mcp:tools"

[[scope]]
name = "mcp:admin"

[[upstream]]
name = "mcp"
path = "/mcp"
url = "http://127.0.0.1:9/mcp"
scopes = ["mcp:tools"]

[[provider]]
id = "local"
kind = "local"

[[provider.users]]
username = "alice"
password_hash = "{DEMO_HASH}"
email = "alice@example.test"
{extra}
"#
    );
    match crate::config::parse(std::path::Path::new("/t/gw.toml"), &text, |_| None) {
        Ok(c) => c,
        Err(e) => panic!("test config:\n{e}"),
    }
}

/// An authorization server on a store in a temporary directory (kept while it lives).
pub struct TestAuthority {
    pub auth: Authority,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestAuthority {
    type Target = Authority;
    fn deref(&self) -> &Authority {
        &self.auth
    }
}

pub fn authority() -> TestAuthority {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let (tag_key, tagged_since) = store.token_tags_now().unwrap();
    let key = [9u8; 32];
    TestAuthority {
        auth: Authority {
            store: Arc::new(Cached::new(Arc::new(store))),
            sealer: crate::crypto::Sealer::new(&key),
            forms: crate::login::forms::FormTokens::new(&key),
            logins: Default::default(),
            cimd: Default::default(),
            registrations: Default::default(),
            diagnostics: Default::default(),
            tokens: crate::crypto::tokens::TokenTags::new(tag_key),
            tagged_since,
            api_keys: Default::default(),
            signer: crate::crypto::signing::IdentitySigner::ephemeral(&crate::crypto::Sealer::new(
                &key,
            )),
            discovery: Default::default(),
        },
        _dir: dir,
    }
}

pub fn identity() -> Identity {
    Identity {
        provider: "local".into(),
        subject: "alice".into(),
        email: Some("alice@example.test".into()),
        name: None,
        groups: vec![],
    }
}

pub fn terms(client: &str) -> Terms {
    Terms {
        client_id: ClientId::new(client),
        identity: identity(),
        scopes: ScopeSet::parse("mcp:tools").unwrap(),
        upstream: UpstreamName::parse("mcp").unwrap(),
        resource: "http://127.0.0.1:8080/mcp".into(),
    }
}

/// The PKCE pair of RFC 7636's appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// An authorization flow of public client `c1` for `/mcp`, redirecting to
/// `http://127.0.0.1:5000/cb`, with [`CHALLENGE`].
pub fn flow(id: &str, expires_at: u64) -> Flow {
    Flow {
        id: id.into(),
        client_id: ClientId::new("c1"),
        client_name: "C".into(),
        redirect_uri: RedirectUri::parse_registered("http://127.0.0.1:5000/cb", false).unwrap(),
        state: None,
        code_challenge: CHALLENGE.into(),
        upstream: UpstreamName::parse("mcp").unwrap(),
        resource: "http://127.0.0.1:8080/mcp".into(),
        scopes: ScopeSet::parse("mcp:tools").unwrap(),
        trusted: false,
        assured: false,
        expires_at,
    }
}

pub fn get(path_and_query: &str) -> Request {
    Request::new(http::Method::GET, path_and_query)
}

pub fn post_form(path: &str, form: &[(&str, &str)]) -> Request {
    let mut r = Request::new(http::Method::POST, path);
    r.headers.insert(
        http::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(form);
    r.body = body.finish().into_bytes().into();
    r
}

/// An access record of alice's for upstream `everything`.
pub fn access_record() -> crate::store::AccessRecord {
    crate::store::AccessRecord {
        expires_at: u64::MAX,
        passed: Default::default(),
        grant_id: crate::vocab::GrantId::new("grant-1"),
        client_id: crate::vocab::ClientId::new("agc_test"),
        identity: identity(),
        scopes: crate::vocab::ScopeSet::parse("mcp").unwrap(),
        upstream: crate::vocab::UpstreamName::parse("everything").unwrap(),
    }
}
