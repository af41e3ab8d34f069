//! The sign-in pages of an authorization: the provider chooser (`GET /login`), the local
//! login form (`GET`/`POST /login/<id>`), the trip to an upstream provider and its callback
//! (`GET /callback/<id>`). A successful sign-in starts a browser session (a sealed cookie)
//! and continues the flow ([`after_sign_in`]).

use super::flow::{after_sign_in, Answer, ErrorView, Flow, Outcome, FLOW};
use super::{Authority, OAuthError};
use crate::audit;
use crate::config::{Config, ProviderKind};
use crate::diagnose::Step;
use crate::login::forms::{origin_acceptable, Form};
use crate::login::session::{self, LoginState, Session};
use crate::metrics::metrics;
use crate::store::Store;
use crate::vocab::{Identity, SecretHash};
use crate::web::pages::{self, ChooserPage, LocalLoginPage, ProviderButton};
use crate::web::Request;

/// `GET /login?flow=`: one button per provider.
pub fn chooser(auth: &Authority, config: &Config, req: &Request, now: u64) -> Answer {
    let q = req.query_params();
    let Some((flow, sealed)) = Flow::open(auth, q.get(FLOW), now) else {
        return ErrorView::expired().into();
    };
    let providers = config
        .providers
        .iter()
        .map(|p| ProviderButton {
            action: format!("/login/{}", p.id),
            name: p.display_name.clone(),
        })
        .collect();
    let page = ChooserPage {
        client_name: &flow.client_name,
        flow: &sealed,
        providers,
    };
    Outcome::Page(pages::render(200, &page)).into()
}

/// The local login form, with its token (and the browser's token cookie, when new); 401
/// when it comes back with an error.
fn login_form(
    auth: &Authority,
    config: &Config,
    req: &Request,
    provider_id: &str,
    (flow, sealed): (&Flow, &str),
    username: &str,
    error: Option<&str>,
) -> Answer {
    let action = format!("/login/{provider_id}");
    let issued = auth.forms.issue(config, req, &flow.id, Form::Login);
    let page = LocalLoginPage {
        action: &action,
        flow: sealed,
        client_name: &flow.client_name,
        username,
        error,
        csrf: &issued.token,
    };
    let status = if error.is_some() { 401 } else { 200 };
    Answer::from(Outcome::Page(pages::render(status, &page))).with_cookie(issued.set_cookie)
}

/// `GET /login/<id>?flow=`: a local login form, or off to the upstream provider.
pub async fn start(auth: &Authority, config: &Config, req: &Request, id: &str, now: u64) -> Answer {
    let q = req.query_params();
    let Some((flow, sealed)) = Flow::open(auth, q.get(FLOW), now) else {
        return ErrorView::expired().into();
    };
    let Some(provider) = config.provider(id) else {
        return ErrorView::unknown_provider().into();
    };
    if let ProviderKind::Local { .. } = provider.kind {
        return login_form(auth, config, req, &provider.id, (&flow, &sealed), "", None);
    }
    match auth.logins.start(provider).await {
        Ok(redirect) => {
            let state = LoginState {
                provider: provider.id.clone(),
                state: redirect.state,
                nonce: redirect.nonce,
                pkce_verifier: redirect.pkce_verifier,
                flow: sealed,
                expires_at: now + config.auth.login_ttl.as_secs(),
            };
            let cookie = session::set_cookie(
                config,
                session::LOGIN,
                &auth.sealer.seal_json(session::LOGIN, &state),
                config.auth.login_ttl.as_secs(),
            );
            Answer::from(Outcome::Page(crate::web::Reply::redirect(
                302,
                &redirect.url,
            )))
            .with_cookie(Some(cookie))
        }
        Err(e) => {
            tracing::error!(provider = %provider.id, error = %e, "could not start login");
            ErrorView::new(502, "Sign-in is unavailable", "The sign-in provider could not be reached.")
                .advising("Try again in a moment; if it keeps happening, tell the people who run this server.")
                .into()
        }
    }
}

fn start_session(
    auth: &Authority,
    config: &Config,
    identity: Identity,
    credential: Option<String>,
    now: u64,
) -> String {
    let ttl = config.auth.session_ttl.as_secs();
    let sess = Session {
        identity,
        expires_at: now + ttl,
        credential,
    };
    session::set_cookie(
        config,
        session::SESSION,
        &auth.sealer.seal_json(session::SESSION, &sess),
        ttl,
    )
}

/// `POST /login/<id>`: a local user's username and password.
pub async fn local(auth: &Authority, config: &Config, req: &Request, id: &str, now: u64) -> Answer {
    let form = req.form();
    let Some((flow, sealed)) = Flow::open(auth, form.get(FLOW), now) else {
        return ErrorView::expired().into();
    };
    let token_ok = auth
        .forms
        .verify(config, req, &flow.id, Form::Login, form.get("csrf"));
    if !token_ok || !origin_acceptable(config, req) {
        tracing::info!(target: "authgate::audit", event = "form_refused", form = "login", client_id = %flow.client_id);
        return ErrorView::form_refused().into();
    }
    let Some(provider) = config.provider(id) else {
        return ErrorView::unknown_provider().into();
    };
    let ProviderKind::Local { users } = &provider.kind else {
        return ErrorView::new(
            405,
            "Invalid request",
            "This sign-in method does not take a password here.",
        )
        .into();
    };
    let username = form.get("username").unwrap_or("").to_string();
    let password = form.get("password").unwrap_or("").to_string();
    let identity = auth
        .logins
        .passwords
        .verify(&provider.id, users, &username, password)
        .await;
    let Some(identity) = identity else {
        let user = format!("{}:{username}", provider.id);
        let why = "wrong username or password";
        sign_in_refused(auth, req, &flow, &provider.id, Some(user), "failed", why);
        let wrong = Some("Wrong username or password.");
        return login_form(
            auth,
            config,
            req,
            &provider.id,
            (&flow, &sealed),
            &username,
            wrong,
        );
    };
    if let Err(refused) = signed_in(auth, req, &identity, &flow, now).await {
        return refused;
    }
    let cookie = start_session(auth, config, identity.clone(), None, now);
    let next = after_sign_in(auth, config, (flow, sealed), &identity, None, now).await;
    Answer::from(next).with_cookie(Some(cookie)).after_post()
}

/// `GET /callback/<id>`: the upstream provider sends the person back here. The login state
/// cookie is single use: cleared whatever happens.
pub async fn callback(
    auth: &Authority,
    config: &Config,
    req: &Request,
    id: &str,
    now: u64,
) -> Answer {
    let clear = Some(session::clear_cookie(config, session::LOGIN));
    let answer = |a: Answer| a.with_cookie(clear.clone());
    let q = req.query_params();
    let state: Option<LoginState> = session::read(
        config,
        &auth.sealer,
        req,
        session::LOGIN,
        |s: &LoginState| s.expires_at,
        now,
    );
    let Some(state) = state.filter(|s| s.provider == id) else {
        return answer(ErrorView::expired().into());
    };
    let state_ok = q
        .get("state")
        .is_some_and(|s| SecretHash::of(s).ct_eq(&SecretHash::of(state.state.expose())));
    if !state_ok {
        let e = ErrorView::new(
            400,
            "Sign-in failed",
            "The answer from the sign-in provider did not match this browser.",
        );
        return answer(e.into());
    }
    let Some((flow, sealed)) = Flow::open(auth, Some(&state.flow), now) else {
        return answer(ErrorView::expired().into());
    };
    if let Some(err) = q.get("error") {
        let why = format!("the provider answered {err}");
        sign_in_refused(auth, req, &flow, id, None, "refused_by_provider", &why);
        let e = OAuthError::access_denied("the sign-in was cancelled or refused at the provider");
        return answer(Outcome::client_error(&flow, e).into());
    }
    let (Some(code), Some(provider)) = (q.get("code"), config.provider(id)) else {
        return answer(
            ErrorView::new(400, "Sign-in failed", "The sign-in provider sent no code.").into(),
        );
    };
    match auth.logins.finish(provider, code, &state).await {
        Ok((identity, credential)) => {
            if let Err(refused) = signed_in(auth, req, &identity, &flow, now).await {
                return answer(refused);
            }
            let cookie = start_session(auth, config, identity.clone(), credential.clone(), now);
            let next = after_sign_in(
                auth,
                config,
                (flow, sealed),
                &identity,
                credential.as_deref(),
                now,
            )
            .await;
            answer(Answer::from(next).with_cookie(Some(cookie)).after_post())
        }
        Err(e) => {
            tracing::warn!(provider = %id, error = %e, "upstream login failed");
            answer(
                ErrorView::new(
                    502,
                    "Sign-in failed",
                    "The sign-in provider did not confirm who you are.",
                )
                .into(),
            )
        }
    }
}

/// A person just proved who they are: refused if blocked; otherwise noted (the store's list
/// of people, metrics, the audit trail, diagnostics).
async fn signed_in(
    auth: &Authority,
    req: &Request,
    identity: &Identity,
    flow: &Flow,
    now: u64,
) -> Result<(), Answer> {
    let provider = identity.provider.as_str();
    if auth.store.is_blocked(identity) {
        let why = "the account is blocked";
        sign_in_refused(
            auth,
            req,
            flow,
            provider,
            Some(identity.user_id()),
            "blocked",
            why,
        );
        let page = ErrorView::new(
            403,
            "This account is blocked",
            "An administrator has blocked this account at this gateway. Ask them to lift the block.",
        );
        return Err(page.into());
    }
    if let Err(e) = auth.store.record_login(identity, now).await {
        tracing::warn!(error = %e, "could not record the sign-in in the list of people");
    }
    metrics().logins.with_label_values(&[provider, "ok"]).inc();
    audit::success("login")
        .identity(identity)
        .client(&flow.client_id)
        .remote(req.client_ip)
        .emit();
    auth.diagnostics.note(
        req.client_ip,
        Some(flow.client_id.as_str()),
        Step::SignIn,
        Ok(()),
    );
    Ok(())
}

/// A sign-in that did not go through: counted, audited, noted for `authgate diagnose`.
fn sign_in_refused(
    auth: &Authority,
    req: &Request,
    flow: &Flow,
    provider: &str,
    user: Option<String>,
    result: &'static str,
    why: &str,
) {
    metrics()
        .logins
        .with_label_values(&[provider, result])
        .inc();
    let mut event = audit::refused("login")
        .provider(provider)
        .client(&flow.client_id)
        .reason(why)
        .remote(req.client_ip);
    if let Some(user) = user {
        event = event.user(user);
    }
    event.emit();
    let client = Some(flow.client_id.as_str());
    auth.diagnostics
        .note(req.client_ip, client, Step::SignIn, Err(why.to_string()));
}
