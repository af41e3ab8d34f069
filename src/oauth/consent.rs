//! The consent page (`GET /consent`) and the person's decision (`POST /consent`). When the
//! person allowed this client before, the page is a short "continue?" that still needs a
//! click: it is shown only to clients whose identity is not assured (see
//! [`super::ClientInfo::identity_assured`]); the others went straight back with a code.

use super::flow::{issue_code, remember, remembered, Answer, ErrorView, Flow, Outcome, FLOW};
use super::{Authority, OAuthError};
use crate::audit;
use crate::config::Config;
use crate::login::forms::{origin_acceptable, Form};
use crate::login::session;
use crate::metrics::metrics;
use crate::web::pages::{self, ConsentPage, ScopeLine};
use crate::web::Request;

/// `GET /consent?flow=`: what the client asks for, approve or deny.
pub async fn page(auth: &Authority, config: &Config, req: &Request, now: u64) -> Answer {
    let q = req.query_params();
    let Some((flow, sealed)) = Flow::open(auth, q.get(FLOW), now) else {
        return ErrorView::expired().into();
    };
    let Some(sess) = session::session(config, &auth.sealer, req, now) else {
        return Outcome::SignIn(sealed).into();
    };
    let remembered = match remembered(auth, &sess.identity, &flow).await {
        Ok(r) => r,
        Err(e) => return ErrorView::server(&e).into(),
    };
    let scopes = flow
        .scopes
        .iter()
        .map(|s| ScopeLine {
            name: s.to_string(),
            description: config
                .scope(s.as_str())
                .map_or_else(|| s.to_string(), |d| d.description.clone()),
        })
        .collect();
    let id = &sess.identity;
    let user = id
        .email
        .clone()
        .or_else(|| id.name.clone())
        .unwrap_or_else(|| id.user_id());
    let issued = auth.forms.issue(config, req, &flow.id, Form::Consent);
    crate::metrics::metrics()
        .consent
        .with_label_values(&["shown"])
        .inc();
    auth.diagnostics.note(
        req.client_ip,
        Some(flow.client_id.as_str()),
        crate::diagnose::Step::Consent,
        Ok(()),
    );
    let page = ConsentPage {
        client_name: &flow.client_name,
        client_id: flow.client_id.as_str(),
        redirect_host: &flow.redirect_uri.host(),
        loopback_redirect: flow.redirect_uri.is_loopback(),
        user: &user,
        upstream: flow.upstream.as_str(),
        resource: &flow.resource,
        scopes,
        flow: &sealed,
        csrf: &issued.token,
        remembered,
    };
    Answer::from(Outcome::Page(pages::render(200, &page))).with_cookie(issued.set_cookie)
}

/// `POST /consent`: the person's decision. The form's token must be this browser's for this
/// flow, and a browser-sent Origin must not be another site's.
pub async fn decide(auth: &Authority, config: &Config, req: &Request, now: u64) -> Answer {
    let form = req.form();
    let Some((flow, sealed)) = Flow::open(auth, form.get(FLOW), now) else {
        return ErrorView::expired().into();
    };
    let Some(sess) = session::session(config, &auth.sealer, req, now) else {
        return Outcome::SignIn(sealed).into();
    };
    let token_ok = auth
        .forms
        .verify(config, req, &flow.id, Form::Consent, form.get("csrf"));
    if !token_ok || !origin_acceptable(config, req) {
        audit::refused("form_refused")
            .identity(&sess.identity)
            .client(&flow.client_id)
            .reason("consent form without a valid token or from a foreign origin")
            .remote(req.client_ip)
            .emit();
        return ErrorView::form_refused().into();
    }
    let outcome = if form.get("decision") == Some("approve") {
        match remember(auth, &sess.identity, &flow, now).await {
            Ok(()) => {
                metrics().consent.with_label_values(&["given"]).inc();
                audit::success("consent_given")
                    .identity(&sess.identity)
                    .client(&flow.client_id)
                    .upstream(&flow.upstream)
                    .remote(req.client_ip)
                    .emit();
                let credential = sess.credential.as_deref();
                issue_code(auth, config, &flow, &sess.identity, credential, now).await
            }
            Err(e) => Outcome::client_error(&flow, e),
        }
    } else {
        metrics().consent.with_label_values(&["denied"]).inc();
        auth.diagnostics.note(
            req.client_ip,
            Some(flow.client_id.as_str()),
            crate::diagnose::Step::Consent,
            Err("the person denied access".into()),
        );
        audit::refused("consent_denied")
            .identity(&sess.identity)
            .client(&flow.client_id)
            .upstream(&flow.upstream)
            .remote(req.client_ip)
            .emit();
        Outcome::client_error(&flow, OAuthError::access_denied("the user denied access"))
    };
    Answer::from(outcome).after_post()
}
