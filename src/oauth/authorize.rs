//! `GET /authorize`: the authorization request (RFC 6749 §4.1.1 with PKCE S256, RFC 8707
//! `resource`), validated into a pending [`Flow`]. Errors before the client and its redirect
//! URI are known are error pages and never redirect (RFC 6749 §4.1.2.1); later errors go
//! back to the client with `error`, `state` and `iss` (RFC 9207).

use super::flow::{after_sign_in, Answer, ErrorView, Flow, Outcome};
use super::{pkce, Authority, ClientInfo, OAuthError};
use crate::config::{Config, Upstream};
use crate::login::session;
use crate::vocab::{canonical_resource, ClientId, ErrorCode, RedirectUri, ScopeSet};
use crate::web::{Params, Request};

/// The parameters of an authorization request, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
    /// The first parameter sent more than once (an error, RFC 6749 §3.1).
    pub repeated: Option<String>,
}

impl AuthorizeRequest {
    pub fn parse(query: &str) -> Self {
        let q = Params::parse(query);
        let get = |k: &str| q.get(k).map(str::to_string);
        Self {
            client_id: get("client_id").filter(|c| !c.is_empty()),
            redirect_uri: get("redirect_uri"),
            response_type: get("response_type"),
            code_challenge: get("code_challenge"),
            code_challenge_method: get("code_challenge_method"),
            state: get("state"),
            resource: get("resource"),
            scope: get("scope"),
            repeated: q.repeated().map(str::to_string),
        }
    }
}

pub async fn handle(auth: &Authority, config: &Config, req: &Request, now: u64) -> Answer {
    let q = AuthorizeRequest::parse(req.query.as_deref().unwrap_or(""));
    let client = match &q.client_id {
        Some(id) => auth.client(config, &ClientId::new(id.as_str())).await,
        None => Ok(None),
    };
    let note = |result: &'static str, outcome: Result<(), String>| {
        crate::metrics::metrics()
            .authorizations
            .with_label_values(&[result])
            .inc();
        auth.diagnostics.note(
            req.client_ip,
            q.client_id.as_deref(),
            crate::diagnose::Step::Authorize,
            outcome,
        );
    };
    let flow = match validate(config, client, &q, crate::crypto::random_id(), now) {
        Ok(flow) => flow,
        Err(outcome) => {
            let why = match &outcome {
                Outcome::Error(view) => view.title.to_string(),
                Outcome::ClientError { error, .. } => {
                    format!("{}: {}", error.code.as_str(), error.description)
                }
                _ => "refused".to_string(),
            };
            note("error", Err(why));
            return outcome.into();
        }
    };
    note("ok", Ok(()));
    let sealed = flow.seal(auth);
    match session::session(config, &auth.sealer, req, now) {
        Some(sess) => {
            let credential = sess.credential.as_deref();
            after_sign_in(
                auth,
                config,
                (flow, sealed),
                &sess.identity,
                credential,
                now,
            )
            .await
            .into()
        }
        None => Outcome::SignIn(sealed).into(),
    }
}

/// Checks an authorization request for the client `client` (as looked up) into a flow with
/// id `flow_id`, or says where the browser goes instead.
pub fn validate(
    config: &Config,
    client: Result<Option<ClientInfo>, OAuthError>,
    q: &AuthorizeRequest,
    flow_id: String,
    now: u64,
) -> Result<Flow, Outcome> {
    let page =
        |status, title, message: &str| Outcome::Error(ErrorView::new(status, title, message));
    if q.client_id.is_none() {
        return Err(page(
            400,
            "Invalid request",
            "The application did not say who it is (no client_id).",
        ));
    }
    let client = match client {
        Ok(Some(c)) => c,
        Ok(None) => return Err(Outcome::Error(
            ErrorView::new(
                400,
                "Unknown application",
                "This application is not registered with this server.",
            )
            .advising(
                "Remove the server from your application and add it again: it will register anew.",
            ),
        )),
        Err(e) if e.code == ErrorCode::InvalidClient => {
            return Err(page(400, "This application cannot be used", &e.description))
        }
        Err(e) => return Err(Outcome::Error(ErrorView::server(&e))),
    };
    let redirect_uri: RedirectUri = match &q.redirect_uri {
        Some(r) => match client.redirect_uris.iter().find_map(|u| u.presented(r)) {
            Some(uri) => uri,
            None => {
                return Err(Outcome::Error(
                    ErrorView::new(400, "Invalid redirect", "The application asked to send you to an address it did not register, so nothing was sent there.")
                        .advising("If you did not start this connection yourself, close this window."),
                ))
            }
        },
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(page(400, "Invalid request", "The application sent no redirect_uri.")),
    };
    if let Some(dup) = &q.repeated {
        return Err(page(
            400,
            "Invalid request",
            &format!("The parameter `{dup}` was sent more than once."),
        ));
    }
    let back = |error| Outcome::ClientError {
        redirect_uri: redirect_uri.clone(),
        state: q.state.clone(),
        error,
    };
    let checked = check_request(config, &client, q).map_err(back)?;
    Ok(Flow {
        id: flow_id,
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        assured: client.identity_assured(&redirect_uri),
        redirect_uri,
        state: q.state.clone(),
        code_challenge: checked.challenge,
        upstream: checked.upstream.name.clone(),
        resource: config.resource_url(checked.upstream),
        scopes: checked.scopes,
        trusted: client.trusted,
        expires_at: now + config.auth.login_ttl.as_secs(),
    })
}

struct Checked<'c> {
    challenge: String,
    upstream: &'c Upstream,
    scopes: ScopeSet,
}

/// Everything after client and redirect URI: response type, PKCE, resource, scopes.
fn check_request<'c>(
    config: &'c Config,
    client: &ClientInfo,
    q: &AuthorizeRequest,
) -> Result<Checked<'c>, OAuthError> {
    match q.response_type.as_deref() {
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::unsupported_response_type(format!(
                "response_type `{other}` is not supported; use `code`"
            )))
        }
        None => return Err(OAuthError::invalid_request("response_type is required")),
    }
    let challenge = q.code_challenge.as_deref().ok_or_else(|| {
        OAuthError::invalid_request("PKCE is required: send code_challenge with method S256")
    })?;
    if q.code_challenge_method.as_deref() != Some("S256") {
        return Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        ));
    }
    if !pkce::valid_challenge(challenge) {
        return Err(OAuthError::invalid_request(
            "code_challenge is not a base64url sha256",
        ));
    }
    let upstream = resolve_resource(config, q.resource.as_deref())?;
    if let Some(allowed) = &client.allowed_upstreams {
        if !allowed.contains(&upstream.name) {
            return Err(OAuthError::invalid_target(format!(
                "this client may not access `{}`",
                upstream.name
            )));
        }
    }
    let scopes = select_scopes(
        config,
        client,
        q.scope.as_deref().unwrap_or(""),
        &upstream.scopes,
    )?;
    Ok(Checked {
        challenge: challenge.to_string(),
        upstream,
        scopes,
    })
}

/// The upstream a `resource` indicator names (RFC 8707), or the configured default.
pub fn resolve_resource<'c>(
    config: &'c Config,
    resource: Option<&str>,
) -> Result<&'c Upstream, OAuthError> {
    match resource {
        Some(r) => {
            let wanted = canonical_resource(r)
                .ok_or_else(|| OAuthError::invalid_target("resource is not an absolute URI"))?;
            config
                .protected_upstreams()
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

/// Requested scopes, minus OIDC ones we tolerate; none means the route's scopes.
fn select_scopes(
    config: &Config,
    client: &ClientInfo,
    raw: &str,
    route: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    let requested = ScopeSet::parse(raw)
        .map_err(|e| OAuthError::invalid_scope(format!("scope {e}")))?
        .without_ignored();
    if let Some(s) = requested
        .iter()
        .find(|s| config.scope(s.as_str()).is_none())
    {
        return Err(OAuthError::invalid_scope(format!("unknown scope `{s}`")));
    }
    let chosen = if requested.is_empty() {
        route.clone()
    } else {
        requested
    };
    if let Some(allowed) = &client.allowed_scopes {
        if let Some(s) = chosen.iter().find(|s| !allowed.contains(s.as_str())) {
            return Err(OAuthError::invalid_scope(format!(
                "this client may not request `{s}`"
            )));
        }
    }
    Ok(chosen)
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;
