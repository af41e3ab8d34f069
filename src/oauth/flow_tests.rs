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
        Outcome::Connect(_) => "connect",
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

#[tokio::test]
async fn a_person_connects_their_own_account_once_between_sign_in_and_consent() {
    use super::super::connect::{self, Connection, Owner, PersonConnect};
    let auth = authority();
    let cfg = config(
        "[upstream.credential]\nkind = \"user_account\"\nauthorize_url = \"https://svc.example/auth?tenant=1\"\ntoken_url = \"https://svc.example/token\"\nclient_id = \"gw\"\nclient_secret = \"s\"\nscopes = [\"offline_access\"]",
    );
    let f = flow();
    let sealed = f.seal(&auth);
    let next = |who: Identity| {
        let (auth, cfg, f, sealed) = (&auth, &cfg, f.clone(), sealed.clone());
        async move { after_sign_in(auth, cfg, (f, sealed), &who, None, NOW).await }
    };
    let Outcome::Connect(url) = next(identity()).await else {
        panic!("not sent to the service first");
    };
    let url = url::Url::parse(&url).unwrap();
    assert_eq!(url.host_str(), Some("svc.example"));
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["tenant"], "1", "the service's own query is kept");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "gw");
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:8080/connect/callback");
    assert_eq!(q["scope"], "offline_access");
    assert_eq!(q["code_challenge_method"], "S256");
    // The state is sealed: the service learns neither the flow nor the PKCE verifier.
    let person = PersonConnect::open(&auth, &q["state"]).expect("a sealed state");
    assert_eq!(person.user, "local:alice");
    assert_eq!(person.upstream, "mcp");
    assert_eq!(person.flow, sealed);
    assert!(!q["state"].contains(&person.verifier));
    assert_eq!(
        q["code_challenge"],
        crate::crypto::sha256_b64url(person.verifier.as_bytes())
    );
    assert!(PersonConnect::open(&auth, &q["state"][1..]).is_none());

    // Connected: on to consent. Someone else still connects their own.
    let conn = Connection {
        refresh_token: "rt".into(),
        access_token: None,
        connected_as: "alice@svc".into(),
        connected_at: NOW,
    };
    connect::save(&auth, "mcp", Owner::Person("local:alice"), Some(&conn))
        .await
        .unwrap();
    assert_eq!(kind(&next(identity()).await), "consent");
    let bob = Identity {
        subject: "bob".into(),
        ..identity()
    };
    assert_eq!(kind(&next(bob).await), "connect");
    // A service account is another secret: it does not count as the person's.
    connect::save(&auth, "mcp", Owner::Person("local:alice"), None)
        .await
        .unwrap();
    connect::save(&auth, "mcp", Owner::Service, Some(&conn))
        .await
        .unwrap();
    assert_eq!(kind(&next(identity()).await), "connect");
}
