//! `POST /token`: the authorization code grant (single-use codes, PKCE S256, the redirect URI
//! and resource of the authorization) and the refresh token grant (rotation on every use; a
//! retry within `refresh_grace` gets the same answer; reuse after it revokes the grant).

use crate::audit;
use crate::diagnose::Step;
use crate::metrics::metrics;
use serde_json::json;

use super::client_auth::{authenticate, read_form};
use super::flow::UPSTREAM_CREDENTIAL;
use super::{pkce, Authority, ClientInfo, OAuthError};
use crate::config::Config;
use crate::crypto::tokens::Shape;
use crate::crypto::Sealer;
use crate::store::{GrantRecord, NewTokens, Rotation, SealedSuccessor, Store, TakenCode};
use crate::vocab::{canonical_resource, ScopeSet, Secret, SecretHash};
use crate::web::{Params, Reply, Request};

/// A token request, read on its `grant_type`: an unsupported grant fails here.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRequest {
    /// RFC 6749 §4.1.3 with RFC 7636's verifier and RFC 8707's resource.
    AuthorizationCode {
        code: Secret,
        code_verifier: Secret,
        redirect_uri: Option<String>,
        resource: Option<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        refresh_token: Secret,
        scope: Option<String>,
        resource: Option<String>,
    },
}

impl TokenRequest {
    pub fn parse(form: &Params) -> Result<Self, OAuthError> {
        let required = |k: &str, why: &str| {
            form.get(k)
                .map(|v| Secret::new(v.to_string()))
                .ok_or_else(|| OAuthError::invalid_request(format!("{k} is required{why}")))
        };
        let optional = |k: &str| form.get(k).map(str::to_string);
        match form.get("grant_type") {
            Some("authorization_code") => Ok(Self::AuthorizationCode {
                code: required("code", "")?,
                code_verifier: required("code_verifier", " (PKCE)")?,
                redirect_uri: optional("redirect_uri"),
                resource: optional("resource"),
            }),
            Some("refresh_token") => Ok(Self::RefreshToken {
                refresh_token: required("refresh_token", "")?,
                scope: optional("scope"),
                resource: optional("resource"),
            }),
            Some(other) => Err(OAuthError::unsupported_grant_type(format!(
                "grant_type `{other}` is not supported"
            ))),
            None => Err(OAuthError::invalid_request("grant_type is required")),
        }
    }
}

pub async fn handle(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let result = async {
        let form = read_form(req)?;
        let client = authenticate(auth, config, req, &form).await?;
        match TokenRequest::parse(&form)? {
            TokenRequest::AuthorizationCode {
                code,
                code_verifier,
                redirect_uri,
                resource,
            } => {
                let presented = Presented {
                    redirect_uri: redirect_uri.as_deref(),
                    resource: resource.as_deref(),
                };
                exchange_code(auth, config, &client, &code, &code_verifier, presented, now).await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resource,
            } => {
                refresh(
                    auth,
                    config,
                    &client,
                    &refresh_token,
                    scope.as_deref(),
                    resource.as_deref(),
                    now,
                )
                .await
            }
        }
    }
    .await;
    let client_id = req.form().get("client_id").map(str::to_string);
    let note = |outcome| {
        auth.diagnostics
            .note(req.client_ip, client_id.as_deref(), Step::Token, outcome)
    };
    match result {
        Ok(body) => {
            note(Ok(()));
            token_reply(body)
        }
        Err(e) => {
            note(Err(format!("{}: {}", e.code.as_str(), e.description)));
            e.reply()
        }
    }
}

/// What the token request repeats of the authorization request, to be checked against it.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub redirect_uri: Option<&'a str>,
    pub resource: Option<&'a str>,
}

pub const ACCESS_PREFIX: &str = "ag_at_";
pub const REFRESH_PREFIX: &str = "ag_rt_";

/// A new access token, and a refresh token when the client is registered for that grant.
fn mint(
    auth: &Authority,
    config: &Config,
    refresh: bool,
    now: u64,
) -> (String, Option<String>, NewTokens) {
    let access = auth.tokens.mint(ACCESS_PREFIX);
    let refresh = refresh.then(|| auth.tokens.mint(REFRESH_PREFIX));
    let tokens = NewTokens {
        access: SecretHash::of(&access),
        access_expires_at: now + config.auth.access_token_ttl.as_secs(),
        refresh: refresh.as_deref().map(SecretHash::of),
        refresh_expires_at: now + config.auth.refresh_token_ttl.as_secs(),
        successor: None,
    };
    (access, refresh, tokens)
}

/// The token response (RFC 6749 §5.1), as bytes: a retry in the grace window gets exactly
/// these bytes again.
fn token_body(config: &Config, access: &str, refresh: Option<&str>, scopes: &ScopeSet) -> Vec<u8> {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": config.auth.access_token_ttl.as_secs(),
        "scope": scopes.to_string(),
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    serde_json::to_vec(&body).expect("JSON encodes")
}

fn token_reply(body: Vec<u8>) -> Reply {
    Reply {
        status: 200,
        headers: vec![(http::header::CONTENT_TYPE, "application/json".into())],
        body: body.into(),
        reason: None,
    }
    .with_header(http::header::PRAGMA, "no-cache")
    .with_cors()
}

/// The authorization code grant: the code is taken once (a replay revokes what it issued),
/// and must belong to this client, its redirect URI, PKCE verifier and resource.
pub async fn exchange_code(
    auth: &Authority,
    config: &Config,
    client: &ClientInfo,
    code: &Secret,
    verifier: &Secret,
    presented: Presented<'_>,
    now: u64,
) -> Result<Vec<u8>, OAuthError> {
    let record = match auth
        .store
        .take_code(SecretHash::of(code.expose()), now)
        .await?
    {
        TakenCode::Fresh(r) => *r,
        TakenCode::Replayed { grant_id } => {
            let revoked = auth.store.revoke_grant(&grant_id).await?;
            metrics().codes.with_label_values(&["replayed"]).inc();
            audit::refused("code_replayed")
                .client(&client.client_id)
                .grant(&grant_id)
                .reason("an authorization code was presented again: its grant is revoked")
                .count(revoked.len())
                .emit();
            return Err(OAuthError::invalid_grant(
                "the code was already used; the tokens it issued are revoked",
            ));
        }
        TakenCode::Unknown => {
            return Err(OAuthError::invalid_grant("the code is invalid or expired"))
        }
    };
    if record.terms.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if presented
        .redirect_uri
        .is_some_and(|r| r != record.redirect_uri.as_str())
    {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    if !pkce::verify(verifier.expose(), &record.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if let Some(r) = presented.resource {
        if canonical_resource(r) != canonical_resource(&record.terms.resource) {
            return Err(OAuthError::invalid_target(
                "resource differs from the authorization request",
            ));
        }
    }
    let (access, refresh, tokens) = mint(auth, config, client.refresh_allowed, now);
    let grant = GrantRecord {
        grant_id: record.grant_id,
        terms: record.terms,
        created_at: now,
        verified_at: now,
        upstream_credential: record.upstream_credential,
        refresh: client.refresh_allowed,
    };
    let body = token_body(config, &access, refresh.as_deref(), &grant.terms.scopes);
    auth.store.issue(grant.clone(), tokens).await?;
    metrics().codes.with_label_values(&["redeemed"]).inc();
    metrics()
        .tokens_issued
        .with_label_values(&["authorization_code"])
        .inc();
    audit::success("token_issued")
        .identity(&grant.terms.identity)
        .client(&grant.terms.client_id)
        .upstream(&grant.terms.upstream)
        .grant(&grant.grant_id)
        .reason("authorization_code")
        .emit();
    Ok(body)
}

/// The key a rotation's answer is sealed under: derived from the refresh token itself (and
/// distinct from the sha256 the store is keyed by), so only a holder of the old token can
/// read the answer kept for retries.
fn grace_sealer(refresh_token: &str) -> Sealer {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"authgate refresh grace\0");
    h.update(refresh_token.as_bytes());
    Sealer::new(&h.finalize().into())
}

const GRACE: &str = "refresh-grace";

/// The refresh token grant. Scope and resource are checked before rotating, so a refused
/// request changes nothing.
pub async fn refresh(
    auth: &Authority,
    config: &Config,
    client: &ClientInfo,
    presented: &Secret,
    scope: Option<&str>,
    resource: Option<&str>,
    now: u64,
) -> Result<Vec<u8>, OAuthError> {
    if !client.refresh_allowed {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the refresh_token grant",
        ));
    }
    if auth.tokens.shape(REFRESH_PREFIX, presented.expose()) == Shape::Forged {
        metrics().refreshes.with_label_values(&["refused"]).inc();
        return Err(OAuthError::invalid_grant(
            "the refresh token is invalid, expired or revoked",
        ));
    }
    let hash = SecretHash::of(presented.expose());
    let current = auth.store.find_refresh(hash, now).await?;
    if let Some((_, grant)) = &current {
        if grant.terms.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        let identity = &grant.terms.identity;
        if auth.store.is_blocked(identity) {
            audit::refused("refresh")
                .identity(identity)
                .client(&client.client_id)
                .reason("the account is blocked")
                .emit();
            return Err(OAuthError::invalid_grant("the account is blocked"));
        }
        if config.provider(&identity.provider).is_none() {
            audit::refused("refresh")
                .identity(identity)
                .client(&client.client_id)
                .reason("its sign-in provider was removed from the config")
                .emit();
            return Err(OAuthError::invalid_grant(
                "the sign-in provider of this grant is gone; authorize again",
            ));
        }
        if let Some(s) = scope {
            let asked = ScopeSet::parse(s)
                .map_err(|e| OAuthError::invalid_scope(format!("scope {e}")))?
                .without_ignored();
            if !asked.is_subset(&grant.terms.scopes) {
                return Err(OAuthError::invalid_scope(
                    "a refresh cannot add scopes; authorize again",
                ));
            }
        }
        if let Some(r) = resource {
            if canonical_resource(r) != canonical_resource(&grant.terms.resource) {
                return Err(OAuthError::invalid_target(
                    "resource differs from the grant",
                ));
            }
        }
        reverify_if_due(auth, config, grant, now).await?;
    }
    let (access, refresh, mut tokens) = mint(auth, config, true, now);
    let grace = config.auth.refresh_grace.as_secs();
    let body = current
        .as_ref()
        .map(|(_, grant)| token_body(config, &access, refresh.as_deref(), &grant.terms.scopes));
    if let (Some(body), true) = (&body, grace > 0) {
        tokens.successor = Some(SealedSuccessor {
            sealed: grace_sealer(presented.expose()).seal(GRACE, body),
            until: now + grace,
        });
    }
    match auth
        .store
        .rotate_refresh(hash, &client.client_id, tokens, now)
        .await?
    {
        Rotation::Rotated(grant) => {
            metrics().refreshes.with_label_values(&["rotated"]).inc();
            metrics()
                .tokens_issued
                .with_label_values(&["refresh_token"])
                .inc();
            audit::success("token_refreshed")
                .identity(&grant.terms.identity)
                .client(&grant.terms.client_id)
                .upstream(&grant.terms.upstream)
                .grant(&grant.grant_id)
                .emit();
            Ok(body.unwrap_or_else(|| {
                token_body(config, &access, refresh.as_deref(), &grant.terms.scopes)
            }))
        }
        Rotation::Retried { sealed } => {
            let body = grace_sealer(presented.expose())
                .open(GRACE, &sealed)
                .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
            metrics()
                .refreshes
                .with_label_values(&["grace_replay"])
                .inc();
            audit::success("refresh_retried")
                .client(&client.client_id)
                .reason("the previous refresh token again, within refresh_grace: the same answer")
                .emit();
            Ok(body)
        }
        Rotation::Reused { grant_id, revoked } => {
            metrics()
                .refreshes
                .with_label_values(&["reuse_detected"])
                .inc();
            audit::refused("refresh_reuse")
                .client(&client.client_id)
                .grant(&grant_id)
                .reason("a rotated refresh token was presented again: the grant is revoked")
                .count(revoked.len())
                .emit();
            Err(OAuthError::invalid_grant(
                "the refresh token was already used; the grant is revoked",
            ))
        }
        Rotation::Invalid => {
            metrics().refreshes.with_label_values(&["refused"]).inc();
            Err(OAuthError::invalid_grant(
                "the refresh token is invalid, expired or revoked",
            ))
        }
    }
}

/// `reverify_every`: on a refresh, re-check the person at their provider when the last check
/// is old enough. Only a definite refusal ends the grant; an unreachable provider never does.
async fn reverify_if_due(
    auth: &Authority,
    config: &Config,
    grant: &GrantRecord,
    now: u64,
) -> Result<(), OAuthError> {
    let identity = &grant.terms.identity;
    let Some(provider) = config.provider(&identity.provider) else {
        return Ok(());
    };
    let Some(every) = provider.reverify_every else {
        return Ok(());
    };
    if now < grant.verified_at + every.as_secs() {
        return Ok(());
    }
    let credential = grant
        .upstream_credential
        .as_deref()
        .and_then(|c| auth.sealer.open(UPSTREAM_CREDENTIAL, c))
        .and_then(|b| String::from_utf8(b).ok());
    match auth
        .logins
        .reverify(provider, &identity.subject, credential.as_deref())
        .await
    {
        Ok(rotated) => {
            let sealed = rotated.map(|c| auth.sealer.seal(UPSTREAM_CREDENTIAL, c.as_bytes()));
            auth.store
                .grant_verified(&grant.grant_id, now, sealed)
                .await?;
            audit::success("reverified")
                .identity(identity)
                .grant(&grant.grant_id)
                .emit();
            Ok(())
        }
        Err(crate::login::LoginError::Refused(why)) => {
            let revoked = auth.store.revoke_grant(&grant.grant_id).await?;
            audit::refused("reverify_refused")
                .identity(identity)
                .grant(&grant.grant_id)
                .reason(&why)
                .count(revoked.len())
                .emit();
            Err(OAuthError::invalid_grant(
                "the sign-in provider no longer confirms this user; authorize again",
            ))
        }
        Err(e) => {
            tracing::warn!(grant_id = %grant.grant_id, error = %e, "re-verification failed; the grant stays");
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
