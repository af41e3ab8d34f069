//! Where a flow goes after sign-in, its single code, and the one renderer.

use super::*;
use crate::testing::{authority, config, identity};

const NOW: u64 = 5_000;

/// A flow whose redirect has a query of its own and whose state needs encoding.
fn flow() -> Flow {
    Flow {
        redirect_uri: RedirectUri::parse_registered("http://127.0.0.1:5000/cb?x=1", false).unwrap(),
        state: Some("s 1".into()),
        ..crate::testing::flow("f1", NOW + 600)
    }
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Error(_) => "error",
        Outcome::ClientError { .. } => "client error",
        Outcome::Code { .. } => "code",
        Outcome::SignIn(_) => "sign in",
        Outcome::Consent(_) => "consent",
        Outcome::Page(_) => "page",
    }
}

#[tokio::test]
async fn after_sign_in_skips_consent_only_when_it_may() {
    let auth = authority();
    let cfg = config("");
    let go = |f: Flow| {
        let (auth, cfg) = (&auth, &cfg);
        async move {
            let sealed = f.seal(auth);
            kind(&after_sign_in(auth, cfg, (f, sealed), &identity(), None, NOW).await)
        }
    };
    let mut f = flow();
    assert_eq!(go(f.clone()).await, "consent", "never asked before");
    remember(&auth, &identity(), &f, NOW).await.unwrap();
    assert_eq!(
        go(f.clone()).await,
        "consent",
        "remembered, but a loopback redirect proves nothing"
    );
    f.assured = true;
    f.id = "f2".into();
    assert_eq!(go(f.clone()).await, "code", "remembered and assured");
    f.scopes = ScopeSet::parse("mcp:tools mcp:admin").unwrap();
    f.id = "f3".into();
    assert_eq!(go(f.clone()).await, "consent", "a new scope asks again");
    let mut t = flow();
    t.trusted = true;
    t.id = "f4".into();
    assert_eq!(go(t).await, "code", "trusted clients never see consent");
}

#[tokio::test]
async fn a_flow_mints_one_code() {
    let auth = authority();
    let cfg = config("");
    let f = flow();
    let first = issue_code(&auth, &cfg, &f, &identity(), None, NOW).await;
    assert_eq!(kind(&first), "code");
    let again = issue_code(&auth, &cfg, &f, &identity(), None, NOW).await;
    match again {
        Outcome::Error(e) => assert_eq!(e.title, "This sign-in is already complete"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn outcomes_render_in_one_place() {
    let cfg = config("");
    let f = flow();
    let code = Answer::from(Outcome::Code {
        redirect_uri: f.redirect_uri.clone(),
        code: "ag_code_1".into(),
        state: f.state.clone(),
    })
    .render(&cfg);
    assert_eq!(code.status, 302);
    let location = |r: &Reply| {
        r.headers
            .iter()
            .find(|(n, _)| n == http::header::LOCATION)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        location(&code),
        "http://127.0.0.1:5000/cb?x=1&code=ag_code_1&state=s+1&iss=http%3A%2F%2F127.0.0.1%3A8080"
    );
    let denied = Answer::from(Outcome::client_error(&f, OAuthError::access_denied("no")))
        .after_post()
        .render(&cfg);
    assert_eq!(denied.status, 303);
    assert!(location(&denied).contains("error=access_denied&error_description=no&state=s+1&iss="));
    let sign_in = Answer::from(Outcome::SignIn("S&=".into())).render(&cfg);
    assert_eq!(
        location(&sign_in),
        "/login/local?flow=S%26%3D",
        "the only provider"
    );
    let two = config(
        "[[provider]]\nid = \"gh\"\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"",
    );
    assert_eq!(
        location(&Answer::from(Outcome::SignIn("S".into())).render(&two)),
        "/login?flow=S"
    );
    let page = Answer::from(ErrorView::expired())
        .with_cookie(Some("a=b".into()))
        .render(&cfg);
    assert_eq!(page.status, 400);
    assert!(page
        .headers
        .iter()
        .any(|(n, v)| n == http::header::SET_COOKIE && v == "a=b"));
}

#[test]
fn sealed_flows_expire_and_cannot_be_altered() {
    let auth = authority();
    let f = flow();
    let sealed = f.seal(&auth);
    assert_eq!(Flow::open(&auth, Some(&sealed), NOW).unwrap().0, f);
    assert!(Flow::open(&auth, Some(&sealed), f.expires_at).is_none());
    assert!(Flow::open(&auth, Some(&sealed[1..]), NOW).is_none());
    assert!(Flow::open(&auth, None, NOW).is_none());
}
