//! `/token` (authorization code and refresh token grants), `/revoke` (RFC 7009) and
//! `/introspect` (RFC 7662). Client authentication is shared: `client_secret_basic`,
//! `client_secret_post`, or `none` for public clients.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::types::{canonical_resource, ScopeSet};
use super::{pkce, Authority, ClientInfo, OAuthError};
use crate::config::Config;
use crate::crypto::{random_secret, SecretHash};
use crate::store::{GrantRecord, NewTokens, Rotation, SealedSuccessor, Store, TakenCode};
use crate::web::{Params, Reply, Request};

/// Reads and checks the form and the client's credentials.
async fn authenticate_client(
    auth: &Authority,
    config: &Config,
    req: &Request,
    form: &Params,
) -> Result<ClientInfo, OAuthError> {
    let basic = req
        .header(http::header::AUTHORIZATION)
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .map(|b64| {
            let raw = STANDARD
                .decode(b64.trim())
                .map_err(|_| OAuthError::invalid_client("malformed Basic credentials"))?;
            let raw = String::from_utf8(raw)
                .map_err(|_| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = raw
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded.
            let dec = |s: &str| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
                    .ok()
                    .and_then(|v| v.into_iter().next().map(|(_, v)| v))
                    .unwrap_or_default()
            };
            Ok::<_, OAuthError>((dec(id), dec(secret)))
        })
        .transpose()?;
    let (client_id, secret) = match (&basic, form.get("client_id")) {
        (Some((id, secret)), form_id) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id.clone(), Some(secret.clone()))
        }
        (None, Some(id)) => (
            id.to_string(),
            form.get("client_secret").map(str::to_string),
        ),
        (None, None) => {
            return Err(OAuthError::invalid_client(
                "client authentication is required",
            ))
        }
    };
    let client = auth
        .client(config, &client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    if let Some(expected) = &client.secret {
        let ok = secret.is_some_and(|s| SecretHash::of(&s).ct_eq(expected));
        if !ok {
            tracing::info!(target: "authgate::audit", event = "client_auth_failed", client_id = %client_id);
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
    }
    Ok(client)
}

fn read_form(req: &Request) -> Result<Params, OAuthError> {
    if !req.is_form() {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let form = req.form();
    if let Some(dup) = form.repeated() {
        return Err(OAuthError::invalid_request(format!(
            "`{dup}` was sent more than once"
        )));
    }
    Ok(form)
}

/// A new access token, and a refresh token when the client is registered for that grant.
fn mint(config: &Config, refresh: bool, now: u64) -> (String, Option<String>, NewTokens) {
    let access = random_secret("ag_at_");
    let refresh = refresh.then(|| random_secret("ag_rt_"));
    let tokens = NewTokens {
        access: SecretHash::of(&access),
        access_expires_at: now + config.auth.access_token_ttl.as_secs(),
        refresh: refresh.as_deref().map(SecretHash::of),
        refresh_expires_at: now + config.auth.refresh_token_ttl.as_secs(),
        successor: None,
    };
    (access, refresh, tokens)
}

fn token_body(config: &Config, access: &str, refresh: Option<&str>, scopes: &[String]) -> Vec<u8> {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": config.auth.access_token_ttl.as_secs(),
        "scope": scopes.join(" "),
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
    }
    .with_header(http::header::PRAGMA, "no-cache")
    .with_cors()
}

/// The key a rotation's answer is sealed under: derived from the refresh token itself (and
/// distinct from the sha256 the store is keyed by), so only a holder of the old token can
/// read the answer kept for retries.
fn grace_sealer(refresh_token: &str) -> crate::crypto::Sealer {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"authgate refresh grace\0");
    h.update(refresh_token.as_bytes());
    crate::crypto::Sealer::new(&h.finalize().into())
}

const GRACE: &str = "refresh-grace";

pub async fn token(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    match token_inner(auth, config, req, now).await {
        Ok(r) => r,
        Err(e) => e.reply(),
    }
}

async fn token_inner(
    auth: &Authority,
    config: &Config,
    req: &Request,
    now: u64,
) -> Result<Reply, OAuthError> {
    let form = read_form(req)?;
    let client = authenticate_client(auth, config, req, &form).await?;
    match form.get("grant_type") {
        Some("authorization_code") => authorization_code(auth, config, &client, &form, now).await,
        Some("refresh_token") => refresh(auth, config, &client, &form, now).await,
        Some(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{other}` is not supported"
        ))),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

async fn authorization_code(
    auth: &Authority,
    config: &Config,
    client: &ClientInfo,
    form: &Params,
    now: u64,
) -> Result<Reply, OAuthError> {
    let code = form
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier = form
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    let record = match auth.store.take_code(SecretHash::of(code), now).await? {
        TakenCode::Fresh(r) => r,
        TakenCode::Replayed { grant_id } => {
            let revoked = auth.store.revoke_grant(&grant_id).await?;
            tracing::warn!(
                target: "authgate::audit",
                event = "code_replayed",
                client_id = %client.client_id,
                grant_id = %grant_id,
                revoked_tokens = revoked.len(),
            );
            return Err(OAuthError::invalid_grant(
                "the code was already used; the tokens it issued are revoked",
            ));
        }
        TakenCode::Unknown => {
            return Err(OAuthError::invalid_grant("the code is invalid or expired"))
        }
    };
    if record.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if form
        .get("redirect_uri")
        .is_some_and(|r| r != record.redirect_uri)
    {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    if !pkce::verify(verifier, &record.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if let Some(r) = form.get("resource") {
        if canonical_resource(r) != canonical_resource(&record.resource) {
            return Err(OAuthError::invalid_target(
                "resource differs from the authorization request",
            ));
        }
    }
    let (access, refresh, tokens) = mint(config, client.refresh_allowed, now);
    let record = *record;
    let grant = GrantRecord {
        grant_id: record.grant_id,
        client_id: record.client_id,
        identity: record.identity,
        scopes: record.scopes,
        upstream: record.upstream,
        resource: record.resource,
        created_at: now,
        verified_at: now,
        upstream_credential: record.upstream_credential,
        refresh: client.refresh_allowed,
    };
    auth.store.issue(grant.clone(), tokens).await?;
    tracing::info!(
        target: "authgate::audit",
        event = "tokens_issued",
        grant_id = %grant.grant_id,
        client_id = %grant.client_id,
        user = %grant.identity.user_id(),
        upstream = %grant.upstream,
    );
    Ok(token_reply(token_body(
        config,
        &access,
        refresh.as_deref(),
        &grant.scopes,
    )))
}

async fn refresh(
    auth: &Authority,
    config: &Config,
    client: &ClientInfo,
    form: &Params,
    now: u64,
) -> Result<Reply, OAuthError> {
    if !client.refresh_allowed {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the refresh_token grant",
        ));
    }
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = SecretHash::of(presented);
    // Scope and resource are checked before rotating, so a refused request changes nothing.
    let current = auth.store.find_refresh(hash, now).await?;
    if let Some((_, grant)) = &current {
        if grant.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if let Some(s) = form.get("scope") {
            let held: ScopeSet = grant.scopes.iter().cloned().collect();
            if !ScopeSet::parse(s).without_ignored().is_subset(&held) {
                return Err(OAuthError::invalid_scope(
                    "a refresh cannot add scopes; authorize again",
                ));
            }
        }
        if let Some(r) = form.get("resource") {
            if canonical_resource(r) != canonical_resource(&grant.resource) {
                return Err(OAuthError::invalid_target(
                    "resource differs from the grant",
                ));
            }
        }
    }
    if let Some((_, grant)) = &current {
        reverify_if_due(auth, config, grant, now).await?;
    }
    let (access, refresh, mut tokens) = mint(config, true, now);
    let grace = config.auth.refresh_grace.as_secs();
    let body = current
        .as_ref()
        .map(|(_, grant)| token_body(config, &access, refresh.as_deref(), &grant.scopes));
    if let (Some(body), true) = (&body, grace > 0) {
        tokens.successor = Some(SealedSuccessor {
            sealed: grace_sealer(presented).seal(GRACE, body),
            until: now + grace,
        });
    }
    match auth
        .store
        .rotate_refresh(hash, &client.client_id, tokens, now)
        .await?
    {
        Rotation::Rotated(grant) => {
            tracing::info!(target: "authgate::audit", event = "refreshed", grant_id = %grant.grant_id, client_id = %grant.client_id);
            let body = body
                .unwrap_or_else(|| token_body(config, &access, refresh.as_deref(), &grant.scopes));
            Ok(token_reply(body))
        }
        Rotation::Retried { sealed } => {
            let body = grace_sealer(presented)
                .open(GRACE, &sealed)
                .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
            tracing::info!(target: "authgate::audit", event = "refresh_retried", client_id = %client.client_id);
            Ok(token_reply(body))
        }
        Rotation::Reused { grant_id, revoked } => {
            tracing::warn!(
                target: "authgate::audit",
                event = "refresh_reuse",
                grant_id = %grant_id,
                client_id = %client.client_id,
                revoked_tokens = revoked.len(),
            );
            Err(OAuthError::invalid_grant(
                "the refresh token was already used; the grant is revoked",
            ))
        }
        Rotation::Invalid => Err(OAuthError::invalid_grant(
            "the refresh token is invalid, expired or revoked",
        )),
    }
}

/// RFC 7009: 200 whether or not the token was known; only the owning client may revoke.
pub async fn revoke(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let result: Result<(), OAuthError> = async {
        let form = read_form(req)?;
        let client = authenticate_client(auth, config, req, &form).await?;
        let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let hash = SecretHash::of(token);
        let owner = match auth.store.find_access(hash, now).await? {
            Some(a) => Some(a.client_id),
            None => auth.store.find_refresh(hash, now).await?.map(|(_, g)| g.client_id),
        };
        match owner {
            Some(owner) if owner == client.client_id => {
                let revoked = auth.store.revoke_token(hash).await?;
                tracing::info!(target: "authgate::audit", event = "revoked", client_id = %client.client_id, access_tokens = revoked.len());
            }
            Some(_) => {
                tracing::warn!(target: "authgate::audit", event = "revoke_refused", client_id = %client.client_id, reason = "token of another client");
            }
            None => {}
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Reply {
            status: 200,
            headers: vec![],
            body: bytes::Bytes::new(),
        }
        .with_cors(),
        Err(e) => e.reply(),
    }
}

/// RFC 7662, for confidential clients (resource servers) only.
pub async fn introspect(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let result: Result<Reply, OAuthError> = async {
        let form = read_form(req)?;
        let client = authenticate_client(auth, config, req, &form).await?;
        if client.secret.is_none() {
            return Err(OAuthError::invalid_client("introspection is for confidential clients"));
        }
        let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let hash = SecretHash::of(token);
        if let Some(a) = auth.store.find_access(hash, now).await? {
            let resource = config.upstream(&a.upstream).map(|u| config.resource_url(u));
            return Ok(Reply::json(
                200,
                &json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": a.scopes.join(" "),
                    "client_id": a.client_id,
                    "sub": a.identity.user_id(),
                    "username": a.identity.email.clone().unwrap_or_else(|| a.identity.subject.clone()),
                    "aud": resource,
                    "iss": config.server.public_url.as_str(),
                    "exp": a.expires_at,
                }),
            ));
        }
        if let Some((r, g)) = auth.store.find_refresh(hash, now).await? {
            return Ok(Reply::json(
                200,
                &json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": g.scopes.join(" "),
                    "client_id": g.client_id,
                    "sub": g.identity.user_id(),
                    "aud": g.resource,
                    "iss": config.server.public_url.as_str(),
                    "exp": r.expires_at,
                }),
            ));
        }
        Ok(Reply::json(200, &json!({"active": false})))
    }
    .await;
    match result {
        Ok(r) => r.with_cors(),
        Err(e) => e.reply(),
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
    let Some(provider) = config.provider(&grant.identity.provider) else {
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
        .and_then(|c| auth.sealer.open(super::authorize::UPSTREAM_CREDENTIAL, c))
        .and_then(|b| String::from_utf8(b).ok());
    match auth
        .logins
        .reverify(provider, &grant.identity.subject, credential.as_deref())
        .await
    {
        Ok(rotated) => {
            let sealed = rotated.map(|c| {
                auth.sealer
                    .seal(super::authorize::UPSTREAM_CREDENTIAL, c.as_bytes())
            });
            auth.store
                .grant_verified(&grant.grant_id, now, sealed)
                .await?;
            tracing::info!(target: "authgate::audit", event = "reverified", grant_id = %grant.grant_id, user = %grant.identity.user_id());
            Ok(())
        }
        Err(crate::login::LoginError::Refused(why)) => {
            let revoked = auth.store.revoke_grant(&grant.grant_id).await?;
            tracing::warn!(
                target: "authgate::audit",
                event = "reverify_refused",
                grant_id = %grant.grant_id,
                user = %grant.identity.user_id(),
                reason = %why,
                revoked_tokens = revoked.len(),
            );
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
