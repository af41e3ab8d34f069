//! `/authorize` and the pages behind it: provider chooser, login, upstream callback and
//! consent. The pending request travels as a sealed `flow` value (AES-GCM, bound to its
//! purpose and expiring), so no server state exists for abandoned logins and several
//! flows can run side by side in one browser.
//!
//! Errors before the client and redirect URI are known show an error page and never
//! redirect (RFC 6749 §4.1.2.1); later errors go back to the client with `error`, `state`
//! and `iss` (RFC 9207).
//!
//! Every form carries a token bound to this browser, the flow and the form
//! ([`crate::web::csrf`]), and a flow mints at most one code, so a replayed post changes
//! nothing. A public client whose redirect cannot prove who it is (loopback, custom scheme)
//! always gets a page that needs a click, even when the person allowed it before.

use serde::{Deserialize, Serialize};

use super::types::{canonical_resource, ScopeSet, IGNORED_SCOPES};
use super::{pkce, Authority, ClientInfo, OAuthError};
use crate::config::{Config, ProviderKind, UpstreamAuth};
use crate::crypto::{random_id, random_secret, SecretHash};
use crate::identity::Identity;
use crate::login::session::{self, LoginState, Session};
use crate::store::{CodeRecord, ConsentRecord, Store};
use crate::web::csrf::{origin_acceptable, Form};
use crate::web::pages::{
    self, ChooserPage, ConsentPage, LocalLoginPage, ProviderButton, ScopeLine,
};
use crate::web::{Reply, Request};

const FLOW: &str = "flow";

/// An authorization request that passed validation, waiting for login and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    /// Random; what form tokens are bound to and what makes the flow single-use.
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub upstream: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub trusted: bool,
    /// The redirect proves the client's identity ([`ClientInfo::identity_assured`]), so
    /// remembered consent may skip the page.
    pub assured: bool,
    pub expires_at: u64,
}

/// Appends `params` to a redirect URI that may already have a query.
pub fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let encoded = serde_urlencoded::to_string(params).expect("string pairs encode");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{encoded}")
}

fn error_redirect(
    config: &Config,
    redirect_uri: &str,
    state: Option<&str>,
    e: &OAuthError,
) -> Reply {
    let mut params = vec![
        ("error", e.code),
        ("error_description", e.description.as_str()),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", config.server.public_url.as_str()));
    Reply::redirect(302, &with_params(redirect_uri, &params))
}

fn expired_page() -> Reply {
    pages::error(
        400,
        "This sign-in link has expired",
        "The sign-in took too long, or the link was changed on the way.",
    )
}

/// A form post whose token does not belong to this browser and flow (or that came from
/// another site): nothing was done.
fn form_refused() -> Reply {
    pages::error_with(
        403,
        "This form could not be accepted",
        "authgate could not confirm that this form was sent from its own sign-in page in this browser, so nothing was done. This happens when cookies are blocked for this site, or when the form was sent from another site.",
        "Allow cookies for this site, then start the connection again from your application.",
    )
}

pub async fn authorize(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let q = req.query_params();
    let Some(client_id) = q.get("client_id").filter(|c| !c.is_empty()) else {
        return pages::error(
            400,
            "Invalid request",
            "The application did not say who it is (no client_id).",
        );
    };
    let client =
        match auth.client(config, client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return pages::error_with(
                400,
                "Unknown application",
                "This application is not registered with this server.",
                "Remove the server from your application and add it again: it will register anew.",
            ),
            Err(e) if e.code == "invalid_client" => {
                return pages::error(400, "This application cannot be used", &e.description)
            }
            Err(e) => return server_error_page(&e),
        };
    let redirect_uri = match q.get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u.matches(r)) => r.to_string(),
        Some(_) => {
            return pages::error_with(
                400,
                "Invalid redirect",
                "The application asked to send you to an address it did not register, so nothing was sent there.",
                "If you did not start this connection yourself, close this window.",
            )
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].0.clone(),
        None => return pages::error(400, "Invalid request", "The application sent no redirect_uri."),
    };
    if let Some(dup) = q.repeated() {
        return pages::error(
            400,
            "Invalid request",
            &format!("The parameter `{dup}` was sent more than once."),
        );
    }
    let state = q.get("state").map(str::to_string);
    match validate(config, &client, &q, now) {
        Ok(mut flow) => {
            flow.assured = client.identity_assured(&redirect_uri);
            flow.redirect_uri = redirect_uri;
            flow.state = state;
            proceed(auth, config, req, flow, now).await
        }
        Err(e) => error_redirect(config, &redirect_uri, state.as_deref(), &e),
    }
}

/// Checks everything after client and redirect URI; returns the flow without them.
fn validate(
    config: &Config,
    client: &ClientInfo,
    q: &crate::web::Params,
    now: u64,
) -> Result<Flow, OAuthError> {
    match q.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::unsupported_response_type(format!(
                "response_type `{other}` is not supported; use `code`"
            )))
        }
        None => return Err(OAuthError::invalid_request("response_type is required")),
    }
    let challenge = q.get("code_challenge").ok_or_else(|| {
        OAuthError::invalid_request("PKCE is required: send code_challenge with method S256")
    })?;
    match q.get("code_challenge_method") {
        Some("S256") => {}
        _ => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ))
        }
    }
    if !pkce::valid_challenge(challenge) {
        return Err(OAuthError::invalid_request(
            "code_challenge is not a base64url sha256",
        ));
    }

    let upstream = resolve_resource(config, q.get("resource"))?;
    if let Some(allowed) = &client.allowed_upstreams {
        if !allowed.iter().any(|a| a == upstream.name.as_str()) {
            return Err(OAuthError::invalid_target(format!(
                "this client may not access `{}`",
                upstream.name
            )));
        }
    }
    let scopes = select_scopes(
        config,
        client,
        q.get("scope").unwrap_or(""),
        &upstream.scopes,
    )?;
    Ok(Flow {
        id: random_id(),
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri: String::new(),
        state: None,
        code_challenge: challenge.to_string(),
        upstream: upstream.name.to_string(),
        resource: config.resource_url(upstream),
        scopes,
        trusted: client.trusted,
        assured: false,
        expires_at: now + config.auth.login_ttl.as_secs(),
    })
}

/// The upstream a `resource` indicator names (RFC 8707), or the configured default.
pub fn resolve_resource<'c>(
    config: &'c Config,
    resource: Option<&str>,
) -> Result<&'c crate::config::Upstream, OAuthError> {
    let protected = || {
        config
            .upstreams
            .iter()
            .filter(|u| u.auth == UpstreamAuth::OAuth)
    };
    match resource {
        Some(r) => {
            let wanted = canonical_resource(r)
                .ok_or_else(|| OAuthError::invalid_target("resource is not an absolute URI"))?;
            protected()
                .find(|u| {
                    canonical_resource(&config.resource_url(u)).as_deref() == Some(wanted.as_str())
                })
                .ok_or_else(|| {
                    OAuthError::invalid_target(format!(
                        "`{r}` is not a resource this server protects"
                    ))
                })
        }
        None => config.default_oauth_upstream().ok_or_else(|| {
            OAuthError::invalid_target("resource is required: name the MCP server URL")
        }),
    }
}

/// Requested scopes, minus OIDC ones we tolerate; empty means the route's scopes.
fn select_scopes(
    config: &Config,
    client: &ClientInfo,
    raw: &str,
    route: &[String],
) -> Result<Vec<String>, OAuthError> {
    let requested = ScopeSet::parse(raw);
    let mut chosen = Vec::new();
    for s in requested.iter() {
        if IGNORED_SCOPES.contains(&s.as_str()) {
            continue;
        }
        if !config.scopes.iter().any(|d| &d.name == s) {
            return Err(OAuthError::invalid_scope(format!("unknown scope `{s}`")));
        }
        chosen.push(s.clone());
    }
    if chosen.is_empty() {
        chosen = route.to_vec();
    }
    if let Some(allowed) = &client.allowed_scopes {
        if let Some(s) = chosen.iter().find(|s| !allowed.contains(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "this client may not request `{s}`"
            )));
        }
    }
    Ok(chosen)
}

/// After validation or login: straight to the client when consent is not needed, else to
/// consent, else to login.
async fn proceed(auth: &Authority, config: &Config, req: &Request, flow: Flow, now: u64) -> Reply {
    let sealed = auth.sealer.seal_json(FLOW, &flow);
    let Some(sess) = session::session(config, &auth.sealer, req, now) else {
        return to_login(config, &sealed);
    };
    let credential = sess.credential.as_deref();
    continue_with(
        auth,
        config,
        flow,
        &sealed,
        &sess.identity,
        credential,
        now,
        302,
    )
    .await
}

fn to_login(config: &Config, sealed: &str) -> Reply {
    let q = serde_urlencoded::to_string([(FLOW, sealed)]).expect("encodes");
    match config.providers.as_slice() {
        [only] => Reply::redirect(302, &format!("/login/{}?{q}", only.id)),
        _ => Reply::redirect(302, &format!("/login?{q}")),
    }
}

fn consent_key(identity: &Identity, client_id: &str) -> String {
    format!("{}\u{1f}{}", identity.user_id(), client_id)
}

/// Whether this person allowed this client this upstream and these scopes before.
async fn remembered(
    auth: &Authority,
    identity: &Identity,
    flow: &Flow,
) -> Result<bool, OAuthError> {
    Ok(
        match auth
            .store
            .get_consent(&consent_key(identity, &flow.client_id))
            .await?
        {
            Some(c) => {
                c.upstreams.contains(&flow.upstream)
                    && flow.scopes.iter().all(|s| c.scopes.contains(s))
            }
            None => false,
        },
    )
}

fn server_error_page(e: &OAuthError) -> Reply {
    pages::error_with(
        500,
        "Server error",
        &e.description,
        "Try again in a moment; if it keeps happening, tell the people who run this server.",
    )
}

/// Straight to the client for trusted clients, and for remembered consent when the client's
/// identity is assured; otherwise the consent page (which asks a short "continue?" when
/// consent is remembered).
#[allow(clippy::too_many_arguments)]
async fn continue_with(
    auth: &Authority,
    config: &Config,
    flow: Flow,
    sealed: &str,
    identity: &Identity,
    credential: Option<&str>,
    now: u64,
    status: u16,
) -> Reply {
    let skip = flow.trusted
        || (flow.assured
            && match remembered(auth, identity, &flow).await {
                Ok(r) => r,
                Err(e) => return server_error_page(&e),
            });
    if skip {
        return issue_code(auth, config, &flow, identity, credential, now, status).await;
    }
    let q = serde_urlencoded::to_string([(FLOW, sealed)]).expect("encodes");
    Reply::redirect(status, &format!("/consent?{q}"))
}

/// The provider credential kept for `reverify_every`, sealed for the store.
pub const UPSTREAM_CREDENTIAL: &str = "upstream-credential";

/// Mints the flow's code, once: a second attempt (a replayed form, a double click, the back
/// button) finds the flow claimed and mints nothing.
async fn issue_code(
    auth: &Authority,
    config: &Config,
    flow: &Flow,
    identity: &Identity,
    credential: Option<&str>,
    now: u64,
    status: u16,
) -> Reply {
    let claim = SecretHash::of(&format!("flow\u{1f}{}", flow.id));
    match auth.store.claim_once(claim, flow.expires_at).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(target: "authgate::audit", event = "flow_replayed", client_id = %flow.client_id, user = %identity.user_id());
            return pages::error(
                400,
                "This sign-in is already complete",
                "Your application already received its answer for this sign-in; the same answer is never given twice.",
            );
        }
        Err(e) => {
            let e = OAuthError::from(e);
            return error_redirect(config, &flow.redirect_uri, flow.state.as_deref(), &e);
        }
    }
    let code = random_secret("ag_code_");
    let record = CodeRecord {
        grant_id: random_id(),
        client_id: flow.client_id.clone(),
        redirect_uri: flow.redirect_uri.clone(),
        code_challenge: flow.code_challenge.clone(),
        upstream: flow.upstream.clone(),
        resource: flow.resource.clone(),
        scopes: flow.scopes.clone(),
        identity: identity.clone(),
        expires_at: now + config.auth.code_ttl.as_secs(),
        upstream_credential: credential
            .map(|c| auth.sealer.seal(UPSTREAM_CREDENTIAL, c.as_bytes())),
    };
    if let Err(e) = auth.store.put_code(SecretHash::of(&code), record).await {
        let e = OAuthError::from(e);
        return error_redirect(config, &flow.redirect_uri, flow.state.as_deref(), &e);
    }
    tracing::info!(
        target: "authgate::audit",
        event = "code_issued",
        client_id = %flow.client_id,
        user = %identity.user_id(),
        upstream = %flow.upstream,
        scopes = %flow.scopes.join(" "),
    );
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &flow.state {
        params.push(("state", s));
    }
    params.push(("iss", config.server.public_url.as_str()));
    Reply::redirect(status, &with_params(&flow.redirect_uri, &params))
}

fn open_flow(auth: &Authority, raw: Option<&str>, now: u64) -> Option<(Flow, String)> {
    let raw = raw?;
    let flow: Flow = auth.sealer.open_json(FLOW, raw)?;
    (flow.expires_at > now).then(|| (flow, raw.to_string()))
}

/// `GET /login?flow=`: the provider chooser, one button per provider.
pub fn chooser(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let q = req.query_params();
    let Some((flow, sealed)) = open_flow(auth, q.get(FLOW), now) else {
        return expired_page();
    };
    let providers = config
        .providers
        .iter()
        .map(|p| ProviderButton {
            action: format!("/login/{}", p.id),
            name: p.display_name.clone(),
        })
        .collect();
    pages::render(
        200,
        &ChooserPage {
            client_name: &flow.client_name,
            flow: &sealed,
            providers,
        },
    )
}

fn unknown_provider() -> Reply {
    pages::error(
        404,
        "Unknown sign-in method",
        "This sign-in method is not configured on this server.",
    )
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
) -> Reply {
    let action = format!("/login/{provider_id}");
    let issued = auth.forms.issue(config, req, &flow.id, Form::Login);
    let reply = pages::render(
        if error.is_some() { 401 } else { 200 },
        &LocalLoginPage {
            action: &action,
            flow: sealed,
            client_name: &flow.client_name,
            username,
            error,
            csrf: &issued.token,
        },
    );
    match issued.set_cookie {
        Some(c) => reply.with_cookie(c),
        None => reply,
    }
}

/// `GET /login/<id>?flow=`: a local login form, or off to the upstream provider.
pub async fn login_start(
    auth: &Authority,
    config: &Config,
    req: &Request,
    id: &str,
    now: u64,
) -> Reply {
    let q = req.query_params();
    let Some((flow, sealed)) = open_flow(auth, q.get(FLOW), now) else {
        return expired_page();
    };
    let Some(provider) = config.provider(id) else {
        return unknown_provider();
    };
    if let ProviderKind::Local { .. } = provider.kind {
        return login_form(auth, config, req, &provider.id, (&flow, &sealed), "", None);
    }
    match auth.logins.start(config, provider).await {
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
            Reply::redirect(302, &redirect.url).with_cookie(cookie)
        }
        Err(e) => {
            tracing::error!(provider = %provider.id, error = %e, "could not start login");
            pages::error_with(
                502,
                "Sign-in is unavailable",
                "The sign-in provider could not be reached.",
                "Try again in a moment; if it keeps happening, tell the people who run this server.",
            )
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
pub async fn local_login(
    auth: &Authority,
    config: &Config,
    req: &Request,
    id: &str,
    now: u64,
) -> Reply {
    let form = req.form();
    let Some((flow, sealed)) = open_flow(auth, form.get(FLOW), now) else {
        return expired_page();
    };
    let token_ok = auth
        .forms
        .verify(config, req, &flow.id, Form::Login, form.get("csrf"));
    if !token_ok || !origin_acceptable(config, req) {
        tracing::info!(target: "authgate::audit", event = "form_refused", form = "login", client_id = %flow.client_id);
        return form_refused();
    }
    let Some(provider) = config.provider(id) else {
        return unknown_provider();
    };
    let ProviderKind::Local { users } = &provider.kind else {
        return pages::error(
            405,
            "Invalid request",
            "This sign-in method does not take a password here.",
        );
    };
    let username = form.get("username").unwrap_or("").to_string();
    let password = form.get("password").unwrap_or("").to_string();
    let (users, pid, name) = (users.clone(), provider.id.clone(), username.clone());
    let identity = tokio::task::spawn_blocking(move || {
        crate::login::local::verify(&pid, &users, &name, &password)
    })
    .await
    .ok()
    .flatten();
    let Some(identity) = identity else {
        tracing::info!(target: "authgate::audit", event = "login_failed", provider = %provider.id, username = %username);
        return login_form(
            auth,
            config,
            req,
            &provider.id,
            (&flow, &sealed),
            &username,
            Some("Wrong username or password."),
        );
    };
    tracing::info!(target: "authgate::audit", event = "login", provider = %provider.id, user = %identity.user_id());
    let cookie = start_session(auth, config, identity.clone(), None, now);
    continue_with(auth, config, flow, &sealed, &identity, None, now, 303)
        .await
        .with_cookie(cookie)
}

/// `GET /callback/<id>`: the upstream provider sends the person back here.
pub async fn callback(
    auth: &Authority,
    config: &Config,
    req: &Request,
    id: &str,
    now: u64,
) -> Reply {
    let q = req.query_params();
    let clear = session::clear_cookie(config, session::LOGIN);
    let state: Option<LoginState> = session::read(
        config,
        &auth.sealer,
        req,
        session::LOGIN,
        |s: &LoginState| s.expires_at,
        now,
    );
    let Some(state) = state.filter(|s| s.provider == id) else {
        return expired_page().with_cookie(clear);
    };
    let state_ok = q
        .get("state")
        .is_some_and(|s| SecretHash::of(s).ct_eq(&SecretHash::of(&state.state)));
    if !state_ok {
        return pages::error(
            400,
            "Sign-in failed",
            "The answer from the sign-in provider did not match this browser.",
        )
        .with_cookie(clear);
    }
    let Some((flow, sealed)) = open_flow(auth, Some(&state.flow), now) else {
        return expired_page().with_cookie(clear);
    };
    if let Some(err) = q.get("error") {
        tracing::info!(target: "authgate::audit", event = "login_refused", provider = %id, error = %err);
        let e = OAuthError::access_denied("the sign-in was cancelled or refused at the provider");
        return error_redirect(config, &flow.redirect_uri, flow.state.as_deref(), &e)
            .with_cookie(clear);
    }
    let (Some(code), Some(provider)) = (q.get("code"), config.provider(id)) else {
        return pages::error(400, "Sign-in failed", "The sign-in provider sent no code.")
            .with_cookie(clear);
    };
    match auth.logins.finish(config, provider, code, &state).await {
        Ok((identity, credential)) => {
            tracing::info!(target: "authgate::audit", event = "login", provider = %id, user = %identity.user_id());
            let cookie = start_session(auth, config, identity.clone(), credential.clone(), now);
            continue_with(
                auth,
                config,
                flow,
                &sealed,
                &identity,
                credential.as_deref(),
                now,
                303,
            )
            .await
            .with_cookie(clear)
            .with_cookie(cookie)
        }
        Err(e) => {
            tracing::warn!(provider = %id, error = %e, "upstream login failed");
            pages::error(
                502,
                "Sign-in failed",
                "The sign-in provider did not confirm who you are.",
            )
            .with_cookie(clear)
        }
    }
}

/// `GET /consent?flow=`: what the client asks for, approve or deny; or, when the person
/// allowed this client before, a short "continue?" page.
pub async fn consent_page(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let q = req.query_params();
    let Some((flow, sealed)) = open_flow(auth, q.get(FLOW), now) else {
        return expired_page();
    };
    let Some(sess) = session::session(config, &auth.sealer, req, now) else {
        return to_login(config, &sealed);
    };
    let remembered = match remembered(auth, &sess.identity, &flow).await {
        Ok(r) => r,
        Err(e) => return server_error_page(&e),
    };
    let redirect = super::types::RedirectUri(flow.redirect_uri.clone());
    let scopes = flow
        .scopes
        .iter()
        .map(|s| ScopeLine {
            name: s.clone(),
            description: config
                .scopes
                .iter()
                .find(|d| &d.name == s)
                .map_or_else(|| s.clone(), |d| d.description.clone()),
        })
        .collect();
    let user = sess
        .identity
        .email
        .clone()
        .or_else(|| sess.identity.name.clone())
        .unwrap_or_else(|| sess.identity.user_id());
    let issued = auth.forms.issue(config, req, &flow.id, Form::Consent);
    let reply = pages::render(
        200,
        &ConsentPage {
            client_name: &flow.client_name,
            client_id: &flow.client_id,
            redirect_host: &redirect.host(),
            loopback_redirect: redirect.is_loopback(),
            user: &user,
            upstream: &flow.upstream,
            resource: &flow.resource,
            scopes,
            flow: &sealed,
            csrf: &issued.token,
            remembered,
        },
    );
    match issued.set_cookie {
        Some(c) => reply.with_cookie(c),
        None => reply,
    }
}

/// `POST /consent`: the person's decision. The form's token must be this browser's for this
/// flow, and a browser-sent Origin must not be another site.
pub async fn consent_decision(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let form = req.form();
    let Some((flow, sealed)) = open_flow(auth, form.get(FLOW), now) else {
        return expired_page();
    };
    let Some(sess) = session::session(config, &auth.sealer, req, now) else {
        return to_login(config, &sealed);
    };
    let token_ok = auth
        .forms
        .verify(config, req, &flow.id, Form::Consent, form.get("csrf"));
    if !token_ok || !origin_acceptable(config, req) {
        tracing::info!(target: "authgate::audit", event = "form_refused", form = "consent", client_id = %flow.client_id, user = %sess.identity.user_id());
        return form_refused();
    }
    match form.get("decision") {
        Some("approve") => {
            let key = consent_key(&sess.identity, &flow.client_id);
            let mut record = match auth.store.get_consent(&key).await {
                Ok(Some(r)) => r,
                _ => ConsentRecord {
                    scopes: Vec::new(),
                    upstreams: Vec::new(),
                    given_at: now,
                },
            };
            for s in &flow.scopes {
                if !record.scopes.contains(s) {
                    record.scopes.push(s.clone());
                }
            }
            if !record.upstreams.contains(&flow.upstream) {
                record.upstreams.push(flow.upstream.clone());
            }
            record.given_at = now;
            if let Err(e) = auth.store.put_consent(&key, record).await {
                let e = OAuthError::from(e);
                return error_redirect(config, &flow.redirect_uri, flow.state.as_deref(), &e);
            }
            tracing::info!(target: "authgate::audit", event = "consent", client_id = %flow.client_id, user = %sess.identity.user_id());
            let credential = sess.credential.as_deref();
            issue_code(auth, config, &flow, &sess.identity, credential, now, 303).await
        }
        _ => {
            tracing::info!(target: "authgate::audit", event = "consent_denied", client_id = %flow.client_id, user = %sess.identity.user_id());
            let e = OAuthError::access_denied("the user denied access");
            let mut r = error_redirect(config, &flow.redirect_uri, flow.state.as_deref(), &e);
            r.status = 303;
            r
        }
    }
}
