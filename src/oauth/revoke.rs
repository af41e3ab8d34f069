//! `POST /revoke` (RFC 7009) and `POST /introspect` (RFC 7662).

use serde_json::{json, Value};

use super::client_auth::{authenticate, read_form};
use super::{Authority, ClientInfo, OAuthError};
use crate::audit;
use crate::config::Config;
use crate::metrics::metrics;
use crate::store::Store;
use crate::vocab::SecretHash;
use crate::web::{Reply, Request};

/// 200 whether or not the token was known; only the owning client may revoke it. A refresh
/// token takes its whole grant with it.
pub async fn revoke(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let result = async {
        let form = read_form(req)?;
        let client = authenticate(auth, config, req, &form).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        revoke_token(auth, &client, SecretHash::of(token), now).await
    }
    .await;
    match result {
        Ok(()) => Reply {
            status: 200,
            headers: vec![],
            body: bytes::Bytes::new(),
            reason: None,
        }
        .with_cors(),
        Err(e) => e.reply(),
    }
}

pub async fn revoke_token(
    auth: &Authority,
    client: &ClientInfo,
    hash: SecretHash,
    now: u64,
) -> Result<(), OAuthError> {
    let owner = match auth.store.find_access(hash, now).await? {
        Some(a) => Some(a.client_id),
        None => auth
            .store
            .find_refresh(hash, now)
            .await?
            .map(|(_, g)| g.terms.client_id),
    };
    match owner {
        Some(owner) if owner == client.client_id => {
            let revoked = auth.store.revoke_token(hash).await?;
            metrics().revocations.inc();
            audit::success("revoked")
                .client(&client.client_id)
                .count(revoked.len())
                .emit();
        }
        Some(_) => {
            audit::refused("revoke_refused")
                .client(&client.client_id)
                .reason("the token belongs to another client")
                .emit();
        }
        None => {}
    }
    Ok(())
}

/// For confidential clients (resource servers) only.
pub async fn introspect(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    let result = async {
        let form = read_form(req)?;
        let client = authenticate(auth, config, req, &form).await?;
        if client.secret.is_none() {
            return Err(OAuthError::invalid_client(
                "introspection is for confidential clients",
            ));
        }
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        describe(auth, config, SecretHash::of(token), now).await
    }
    .await;
    match result {
        Ok(v) => Reply::json(200, &v).with_cors(),
        Err(e) => e.reply(),
    }
}

/// RFC 7662 §2.2: what a token is, or `{"active": false}`.
pub async fn describe(
    auth: &Authority,
    config: &Config,
    hash: SecretHash,
    now: u64,
) -> Result<Value, OAuthError> {
    let iss = config.server.public_url.as_str();
    if let Some(a) = auth.store.find_access(hash, now).await? {
        let resource = config
            .upstream(a.upstream.as_str())
            .map(|u| config.resource_url(u));
        return Ok(json!({
            "active": true,
            "token_type": "Bearer",
            "scope": a.scopes.to_string(),
            "client_id": a.client_id,
            "sub": a.identity.user_id(),
            "username": a.identity.email.clone().unwrap_or_else(|| a.identity.subject.clone()),
            "aud": resource,
            "iss": iss,
            "exp": a.expires_at,
        }));
    }
    if let Some((r, g)) = auth.store.find_refresh(hash, now).await? {
        return Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": g.terms.scopes.to_string(),
            "client_id": g.terms.client_id,
            "sub": g.terms.identity.user_id(),
            "aud": g.terms.resource,
            "iss": iss,
            "exp": r.expires_at,
        }));
    }
    Ok(json!({"active": false}))
}
