//! A pending authorization ([`Flow`]) and where it goes next ([`Outcome`]). The flow travels
//! sealed (AES-GCM, bound to its purpose and expiring) in the `flow` parameter, so no server
//! state exists for abandoned logins and several flows can run side by side in one browser.
//! Every handler of the authorization's pages returns an [`Answer`]; [`Answer::render`] is
//! the one place it becomes HTTP.

use crate::audit;
use crate::diagnose::Step;
use serde::{Deserialize, Serialize};

use super::{Authority, OAuthError};
use crate::config::Config;
use crate::crypto::random_secret;
use crate::store::{CodeRecord, Store, Terms};
use crate::vocab::{ClientId, GrantId, Identity, RedirectUri, ScopeSet, SecretHash, UpstreamName};
use crate::web::{pages, Reply};

/// The parameter (and sealing purpose) of a sealed flow.
pub const FLOW: &str = "flow";

/// An authorization request that passed validation, waiting for sign-in and consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Random; what form tokens are bound to and what makes the flow single-use.
    pub id: String,
    pub client_id: ClientId,
    pub client_name: String,
    /// Where the code goes: the URI the request presented (a loopback port may differ from
    /// the registered one).
    pub redirect_uri: RedirectUri,
    pub state: Option<String>,
    pub code_challenge: String,
    pub upstream: UpstreamName,
    pub resource: String,
    pub scopes: ScopeSet,
    /// Skips consent (a `trusted` client).
    pub trusted: bool,
    /// The redirect proves the client's identity, so remembered consent may skip the page.
    pub assured: bool,
    pub expires_at: u64,
}

impl Flow {
    pub fn seal(&self, auth: &Authority) -> String {
        auth.sealer.seal_json(FLOW, self)
    }

    /// The flow sealed in `raw`, if authentic and not expired (with `raw` itself, to pass on).
    pub fn open(auth: &Authority, raw: Option<&str>, now: u64) -> Option<(Flow, String)> {
        let raw = raw?;
        let flow: Flow = auth.sealer.open_json(FLOW, raw)?;
        (flow.expires_at > now).then(|| (flow, raw.to_string()))
    }

    /// What the person allows when the code is issued.
    pub fn terms(&self, identity: &Identity) -> Terms {
        Terms {
            client_id: self.client_id.clone(),
            identity: identity.clone(),
            scopes: self.scopes.clone(),
            upstream: self.upstream.clone(),
            resource: self.resource.clone(),
        }
    }
}

/// An error page: what happened and what to do. Nothing is sent to the client from here
/// (its identity or redirect may be unknown, or the link was tampered with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorView {
    pub status: u16,
    pub title: &'static str,
    pub message: String,
    pub advice: &'static str,
}

impl ErrorView {
    pub fn new(status: u16, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            advice: pages::START_AGAIN,
        }
    }

    pub fn advising(mut self, advice: &'static str) -> Self {
        self.advice = advice;
        self
    }

    pub fn expired() -> Self {
        Self::new(
            400,
            "This sign-in link has expired",
            "The sign-in took too long, or the link was changed on the way.",
        )
    }

    /// A form post whose token does not belong to this browser and flow (or that came from
    /// another site): nothing was done.
    pub fn form_refused() -> Self {
        Self::new(
            403,
            "This form could not be accepted",
            "authgate could not confirm that this form was sent from its own sign-in page in this browser, so nothing was done. This happens when cookies are blocked for this site, or when the form was sent from another site.",
        )
        .advising("Allow cookies for this site, then start the connection again from your application.")
    }

    pub fn already_complete() -> Self {
        Self::new(
            400,
            "This sign-in is already complete",
            "Your application already received its answer for this sign-in; the same answer is never given twice.",
        )
    }

    pub fn server(e: &OAuthError) -> Self {
        Self::new(500, "Server error", e.description.clone()).advising(
            "Try again in a moment; if it keeps happening, tell the people who run this server.",
        )
    }

    pub fn unknown_provider() -> Self {
        Self::new(
            404,
            "Unknown sign-in method",
            "This sign-in method is not configured on this server.",
        )
    }
}

/// Where the browser goes next.
#[derive(Debug)]
pub enum Outcome {
    Error(ErrorView),
    /// Back to the client with an error (RFC 6749 §4.1.2.1), `state` and `iss` (RFC 9207).
    ClientError {
        redirect_uri: RedirectUri,
        state: Option<String>,
        error: OAuthError,
    },
    /// Back to the client with the code, `state` and `iss`.
    Code {
        redirect_uri: RedirectUri,
        code: String,
        state: Option<String>,
    },
    /// On to sign in (the sealed flow): the chooser, or the only provider.
    SignIn(String),
    /// On to the consent page (the sealed flow).
    Consent(String),
    /// On to the upstream's service to connect the person's own account there (its
    /// authorization URL); the service sends them back to `/connect/callback`.
    Connect(String),
    /// A page of its own (the chooser, a login form, the consent page).
    Page(Reply),
}

impl Outcome {
    pub fn client_error(flow: &Flow, error: OAuthError) -> Self {
        Self::ClientError {
            redirect_uri: flow.redirect_uri.clone(),
            state: flow.state.clone(),
            error,
        }
    }
}

/// An outcome, the cookies to set with it, and whether it answers a form post (redirects
/// are then 303, so the browser follows with a GET).
#[derive(Debug)]
pub struct Answer {
    pub outcome: Outcome,
    pub cookies: Vec<String>,
    pub after_post: bool,
}

impl From<Outcome> for Answer {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            cookies: Vec::new(),
            after_post: false,
        }
    }
}

impl From<ErrorView> for Answer {
    fn from(e: ErrorView) -> Self {
        Outcome::Error(e).into()
    }
}

impl Answer {
    pub fn with_cookie(mut self, cookie: Option<String>) -> Self {
        self.cookies.extend(cookie);
        self
    }

    pub fn after_post(mut self) -> Self {
        self.after_post = true;
        self
    }

    /// The one place an authorization's answer becomes HTTP.
    pub fn render(self, config: &Config) -> Reply {
        let redirect = if self.after_post { 303 } else { 302 };
        let iss = config.server.public_url.as_str();
        let with_flow = |path: &str, sealed: &str| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair(FLOW, sealed);
            format!("{path}?{}", q.finish())
        };
        let mut reply = match self.outcome {
            Outcome::Error(e) => {
                pages::error_with(e.status, e.title, &e.message, e.advice).with_reason(e.title)
            }
            Outcome::ClientError {
                redirect_uri,
                state,
                error,
            } => {
                let mut params = vec![
                    ("error", error.code.as_str()),
                    ("error_description", error.description.as_str()),
                ];
                params.extend(state.as_deref().map(|s| ("state", s)));
                params.push(("iss", iss));
                Reply::redirect(redirect, &with_params(redirect_uri.as_str(), &params))
            }
            Outcome::Code {
                redirect_uri,
                code,
                state,
            } => {
                let mut params = vec![("code", code.as_str())];
                params.extend(state.as_deref().map(|s| ("state", s)));
                params.push(("iss", iss));
                Reply::redirect(redirect, &with_params(redirect_uri.as_str(), &params))
            }
            Outcome::SignIn(sealed) => match config.providers.as_slice() {
                [only] => Reply::redirect(
                    redirect,
                    &with_flow(&format!("/login/{}", only.id), &sealed),
                ),
                _ => Reply::redirect(redirect, &with_flow("/login", &sealed)),
            },
            Outcome::Consent(sealed) => Reply::redirect(redirect, &with_flow("/consent", &sealed)),
            Outcome::Connect(url) => Reply::redirect(redirect, &url),
            Outcome::Page(reply) => reply,
        };
        for c in self.cookies {
            reply = reply.with_cookie(c);
        }
        reply
    }
}

/// Appends `params` to a redirect URI that may already have a query.
pub fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(params);
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", q.finish())
}

fn consent_key(identity: &Identity, client_id: &ClientId) -> String {
    format!("{}\u{1f}{}", identity.user_id(), client_id)
}

/// Whether this person allowed this client this upstream and these scopes before.
pub async fn remembered(
    auth: &Authority,
    identity: &Identity,
    flow: &Flow,
) -> Result<bool, OAuthError> {
    let record = auth
        .store
        .get_consent(&consent_key(identity, &flow.client_id))
        .await?;
    Ok(record
        .is_some_and(|c| c.upstreams.contains(&flow.upstream) && flow.scopes.is_subset(&c.scopes)))
}

/// Records that this person allows this client the flow's upstream and scopes.
pub async fn remember(
    auth: &Authority,
    identity: &Identity,
    flow: &Flow,
    now: u64,
) -> Result<(), OAuthError> {
    let key = consent_key(identity, &flow.client_id);
    let mut record = auth
        .store
        .get_consent(&key)
        .await?
        .unwrap_or(crate::store::ConsentRecord {
            scopes: ScopeSet::default(),
            upstreams: Vec::new(),
            given_at: now,
        });
    record.scopes = record.scopes.union(&flow.scopes);
    if !record.upstreams.contains(&flow.upstream) {
        record.upstreams.push(flow.upstream.clone());
    }
    record.given_at = now;
    Ok(auth.store.put_consent(&key, record).await?)
}

/// After sign-in: first to the upstream's service when it needs the person's own account
/// and they have not connected it; then straight to the client for trusted clients, and for
/// remembered consent when the client's identity is assured; otherwise the consent page
/// (which asks a short "continue?" when consent is remembered).
pub async fn after_sign_in(
    auth: &Authority,
    config: &Config,
    (flow, sealed): (Flow, String),
    identity: &Identity,
    credential: Option<&str>,
    now: u64,
) -> Outcome {
    if let Some(refused) = policy_refusal(config, &flow, identity, now) {
        return refused;
    }
    if let Some(connect) = super::connect::step(auth, config, (&flow, &sealed), identity, now).await
    {
        return connect;
    }
    let skip = flow.trusted
        || (flow.assured
            && match remembered(auth, identity, &flow).await {
                Ok(r) => r,
                Err(e) => return Outcome::Error(ErrorView::server(&e)),
            });
    if skip {
        let why = if flow.trusted {
            "trusted"
        } else {
            "remembered"
        };
        crate::metrics::metrics()
            .consent
            .with_label_values(&[why])
            .inc();
        return issue_code(auth, config, &flow, identity, credential, now).await;
    }
    Outcome::Consent(sealed)
}

/// A person the upstream's access policies refuse gets no code: they learn it on a page
/// now, rather than through a client whose every call would be refused.
fn policy_refusal(config: &Config, flow: &Flow, identity: &Identity, now: u64) -> Option<Outcome> {
    let rules = config.policy.upstream(flow.upstream.as_str())?;
    let who = crate::policy::Subject::new(
        &config.policy,
        identity,
        flow.client_id.as_str(),
        &flow.scopes,
    );
    let decision = rules.access(&who, now);
    if decision.allowed {
        return None;
    }
    audit::refused("authorization")
        .identity(identity)
        .client(&flow.client_id)
        .upstream(&flow.upstream)
        .reason(format_args!("policy: {}", decision.explain()))
        .emit();
    Some(Outcome::Error(ErrorView::new(
        403,
        "Not allowed here",
        format!(
            "Your account may not use {} at this gateway. If you need it, ask an administrator.",
            flow.upstream
        ),
    )))
}

/// The provider credential kept for `reverify_every`, sealed for the store.
pub const UPSTREAM_CREDENTIAL: &str = "upstream-credential";

/// Mints the flow's code, once: a second attempt (a replayed form, a double click, the back
/// button) finds the flow claimed and mints nothing.
pub async fn issue_code(
    auth: &Authority,
    config: &Config,
    flow: &Flow,
    identity: &Identity,
    credential: Option<&str>,
    now: u64,
) -> Outcome {
    if let Some(refused) = policy_refusal(config, flow, identity, now) {
        return refused;
    }
    let claim = SecretHash::of(&format!("flow\u{1f}{}", flow.id));
    match auth.store.claim_once(claim, flow.expires_at).await {
        Ok(true) => {}
        Ok(false) => {
            audit::refused("flow_replayed")
                .identity(identity)
                .client(&flow.client_id)
                .reason("a completed sign-in was submitted again; no second code")
                .emit();
            return Outcome::Error(ErrorView::already_complete());
        }
        Err(e) => return Outcome::client_error(flow, e.into()),
    }
    let code = random_secret("ag_code_");
    let record = CodeRecord {
        grant_id: GrantId::new(crate::crypto::random_id()),
        terms: flow.terms(identity),
        redirect_uri: flow.redirect_uri.clone(),
        code_challenge: flow.code_challenge.clone(),
        expires_at: now + config.auth.code_ttl.as_secs(),
        upstream_credential: credential
            .map(|c| auth.sealer.seal(UPSTREAM_CREDENTIAL, c.as_bytes())),
    };
    if let Err(e) = auth.store.put_code(SecretHash::of(&code), record).await {
        return Outcome::client_error(flow, e.into());
    }
    crate::metrics::metrics()
        .codes
        .with_label_values(&["issued"])
        .inc();
    audit::success("code_issued")
        .identity(identity)
        .client(&flow.client_id)
        .upstream(&flow.upstream)
        .reason(format_args!("scopes {}", flow.scopes))
        .emit();
    auth.diagnostics
        .note(None, Some(flow.client_id.as_str()), Step::Code, Ok(()));
    Outcome::Code {
        redirect_uri: flow.redirect_uri.clone(),
        code,
        state: flow.state.clone(),
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
