//! The authorization request's rules (RFC 6749 §4.1.1, §4.1.2.1; RFC 7636; RFC 8707; MCP),
//! table-driven, without a server.

use super::*;
use crate::testing::{config, CHALLENGE};
use crate::vocab::{SecretHash, UpstreamName};

const NOW: u64 = 1_000;

fn client(redirects: &[&str]) -> ClientInfo {
    ClientInfo {
        client_id: ClientId::new("agc_1"),
        name: "Test client".into(),
        redirect_uris: redirects
            .iter()
            .map(|r| RedirectUri::parse_registered(r, true).unwrap())
            .collect(),
        secret: None,
        allowed_scopes: None,
        allowed_upstreams: None,
        trusted: false,
        refresh_allowed: true,
        document_host: None,
    }
}

/// A valid request; `edit` changes it.
fn request(edit: impl FnOnce(&mut AuthorizeRequest)) -> AuthorizeRequest {
    let mut q = AuthorizeRequest::parse(&format!(
        "response_type=code&client_id=agc_1&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=s%2B1\
         &resource=http%3A%2F%2F127.0.0.1%3A8080%2Fmcp"
    ));
    edit(&mut q);
    q
}

fn run(
    client: Result<Option<ClientInfo>, OAuthError>,
    q: &AuthorizeRequest,
) -> Result<Flow, Outcome> {
    validate(&config(""), client, q, "flow-1".into(), NOW)
}

fn page_title(r: Result<Flow, Outcome>) -> (u16, &'static str) {
    match r {
        Err(Outcome::Error(e)) => (e.status, e.title),
        other => panic!("expected an error page, got {other:?}"),
    }
}

fn client_error(r: Result<Flow, Outcome>) -> (ErrorCode, String, Option<String>) {
    match r {
        Err(Outcome::ClientError {
            redirect_uri,
            state,
            error,
        }) => (error.code, redirect_uri.as_str().to_string(), state),
        other => panic!("expected a redirect with an error, got {other:?}"),
    }
}

#[test]
fn a_valid_request_becomes_a_flow() {
    let flow = run(Ok(Some(client(&["http://127.0.0.1/cb"]))), &request(|_| {})).unwrap();
    assert_eq!(flow.id, "flow-1");
    assert_eq!(flow.client_id, "agc_1");
    assert_eq!(
        flow.redirect_uri.as_str(),
        "http://127.0.0.1:5000/cb",
        "the presented loopback port is where the code goes"
    );
    assert_eq!(flow.state.as_deref(), Some("s+1"), "state is kept verbatim");
    assert_eq!(flow.code_challenge, CHALLENGE);
    assert_eq!(flow.upstream, UpstreamName::parse("mcp").unwrap());
    assert_eq!(flow.resource, "http://127.0.0.1:8080/mcp");
    assert_eq!(
        flow.scopes.to_string(),
        "mcp:tools",
        "no scope: the route's"
    );
    assert_eq!(flow.expires_at, NOW + 600);
    assert!(!flow.assured, "a public client on loopback proves nothing");
    assert!(!flow.trusted);
}

#[test]
fn errors_before_the_client_and_redirect_are_known_are_pages() {
    let c = || Ok(Some(client(&["http://127.0.0.1/cb"])));
    assert_eq!(
        page_title(run(c(), &request(|q| q.client_id = None))),
        (400, "Invalid request")
    );
    assert_eq!(
        page_title(run(Ok(None), &request(|_| {}))),
        (400, "Unknown application")
    );
    assert_eq!(
        page_title(run(
            Err(OAuthError::invalid_client("bad document")),
            &request(|_| {})
        )),
        (400, "This application cannot be used")
    );
    assert_eq!(
        page_title(run(
            Err(OAuthError::server_error("store down")),
            &request(|_| {})
        )),
        (500, "Server error")
    );
    for uri in [
        "https://evil.example/cb",
        "http://127.0.0.1:5000/cb/",
        "http://localhost:5000/cb",
        "http://127.0.0.1:5000/cb?x=1",
    ] {
        let q = request(|q| q.redirect_uri = Some(uri.into()));
        assert_eq!(page_title(run(c(), &q)), (400, "Invalid redirect"), "{uri}");
    }
    let two = || {
        Ok(Some(client(&[
            "http://127.0.0.1/cb",
            "https://app.example/cb",
        ])))
    };
    assert_eq!(
        page_title(run(two(), &request(|q| q.redirect_uri = None))),
        (400, "Invalid request"),
        "no redirect_uri and several registered"
    );
    let q = AuthorizeRequest::parse(&format!(
        "client_id=agc_1&state=a&state=b&code_challenge={CHALLENGE}"
    ));
    assert_eq!(q.repeated.as_deref(), Some("state"));
    assert_eq!(page_title(run(c(), &q)), (400, "Invalid request"));
}

#[test]
fn the_only_registered_redirect_is_used_when_none_is_sent() {
    let flow = run(
        Ok(Some(client(&["https://app.example/cb"]))),
        &request(|q| q.redirect_uri = None),
    )
    .unwrap();
    assert_eq!(flow.redirect_uri.as_str(), "https://app.example/cb");
}

#[test]
fn errors_after_go_back_to_the_client_with_state() {
    let c = || Ok(Some(client(&["http://127.0.0.1/cb"])));
    let table: Vec<(AuthorizeRequest, ErrorCode)> = vec![
        (
            request(|q| q.response_type = Some("token".into())),
            ErrorCode::UnsupportedResponseType,
        ),
        (
            request(|q| q.response_type = None),
            ErrorCode::InvalidRequest,
        ),
        (
            request(|q| q.code_challenge = None),
            ErrorCode::InvalidRequest,
        ),
        (
            request(|q| q.code_challenge_method = Some("plain".into())),
            ErrorCode::InvalidRequest,
        ),
        (
            request(|q| q.code_challenge_method = None),
            ErrorCode::InvalidRequest,
        ),
        (
            request(|q| q.code_challenge = Some("short".into())),
            ErrorCode::InvalidRequest,
        ),
        (
            request(|q| q.resource = Some("https://evil.example/mcp".into())),
            ErrorCode::InvalidTarget,
        ),
        (
            request(|q| q.resource = Some("not a url".into())),
            ErrorCode::InvalidTarget,
        ),
        (
            request(|q| q.scope = Some("mcp:unknown".into())),
            ErrorCode::InvalidScope,
        ),
        (
            request(|q| q.scope = Some("bad\"scope".into())),
            ErrorCode::InvalidScope,
        ),
    ];
    for (q, want) in table {
        let (code, to, state) = client_error(run(c(), &q));
        assert_eq!(code, want, "{q:?}");
        assert_eq!(to, "http://127.0.0.1:5000/cb");
        assert_eq!(state.as_deref(), Some("s+1"));
    }
}

#[test]
fn resources_compare_canonically_and_default_to_the_only_route() {
    let c = || Ok(Some(client(&["http://127.0.0.1/cb"])));
    for r in ["HTTP://127.0.0.1:8080/mcp/", "http://127.0.0.1:8080/mcp"] {
        let flow = run(c(), &request(|q| q.resource = Some(r.into()))).unwrap();
        assert_eq!(flow.resource, "http://127.0.0.1:8080/mcp", "{r}");
    }
    let flow = run(c(), &request(|q| q.resource = None)).unwrap();
    assert_eq!(flow.upstream.as_str(), "mcp");
    // With two OAuth routes and no default, a resource is required.
    let two = config("[[upstream]]\nname = \"b\"\npath = \"/b\"\nurl = \"http://127.0.0.1:9/b\"\n");
    let r = validate(&two, c(), &request(|q| q.resource = None), "f".into(), NOW);
    assert_eq!(client_error(r).0, ErrorCode::InvalidTarget);
}

#[test]
fn scopes_requested_ignored_and_limited() {
    let c = |allowed: Option<&str>| {
        let mut info = client(&["http://127.0.0.1/cb"]);
        info.allowed_scopes = allowed.map(|a| ScopeSet::parse(a).unwrap());
        Ok(Some(info))
    };
    // OIDC scopes are tolerated and dropped; `scope=+offline_access` arrives as " offline_access".
    let q = AuthorizeRequest::parse(&format!(
        "response_type=code&client_id=agc_1&code_challenge={CHALLENGE}&code_challenge_method=S256\
         &scope=+offline_access+openid&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb"
    ));
    assert_eq!(run(c(None), &q).unwrap().scopes.to_string(), "mcp:tools");
    let q = request(|q| q.scope = Some("mcp:admin mcp:tools".into()));
    assert_eq!(
        run(c(None), &q).unwrap().scopes.to_string(),
        "mcp:admin mcp:tools"
    );
    assert_eq!(
        client_error(run(c(Some("mcp:tools")), &q)).0,
        ErrorCode::InvalidScope
    );
    let q = request(|q| q.scope = Some("".into()));
    assert_eq!(
        run(c(Some("mcp:tools")), &q).unwrap().scopes.to_string(),
        "mcp:tools"
    );
}

#[test]
fn clients_limited_to_upstreams_and_trust() {
    let mut info = client(&["http://127.0.0.1/cb"]);
    info.allowed_upstreams = Some(vec![UpstreamName::parse("other").unwrap()]);
    assert_eq!(
        client_error(run(Ok(Some(info.clone())), &request(|_| {}))).0,
        ErrorCode::InvalidTarget
    );
    info.allowed_upstreams = Some(vec![UpstreamName::parse("mcp").unwrap()]);
    info.trusted = true;
    assert!(run(Ok(Some(info)), &request(|_| {})).unwrap().trusted);
}

#[test]
fn only_confidential_and_same_host_document_clients_are_assured() {
    let uri = |s: &str| RedirectUri::parse_registered(s, true).unwrap();
    let mut public = client(&[
        "http://127.0.0.1/cb",
        "cursor://cb",
        "https://app.example/cb",
    ]);
    for r in [
        "http://127.0.0.1:9/cb",
        "cursor://cb",
        "https://app.example/cb",
    ] {
        assert!(!public.identity_assured(&uri(r)), "{r}");
    }
    public.secret = Some(SecretHash::of("s"));
    assert!(
        public.identity_assured(&uri("http://127.0.0.1:9/cb")),
        "confidential"
    );
    let mut doc = client(&["https://claude.ai/cb", "http://127.0.0.1/cb"]);
    doc.document_host = Some("claude.ai".into());
    assert!(doc.identity_assured(&uri("https://claude.ai/cb")));
    assert!(!doc.identity_assured(&uri("http://127.0.0.1:7/cb")));
    assert!(!doc.identity_assured(&uri("https://evil.claude.ai.example/cb")));
    let flow = run(
        Ok(Some(doc)),
        &request(|q| q.redirect_uri = Some("https://claude.ai/cb".into())),
    )
    .unwrap();
    assert!(flow.assured);
}
