//! The protected-resource side: a bearer token on every request to an OAuth route, checked
//! with one hash and one cache lookup, bound to exactly one upstream (RFC 8707). Failures
//! answer with the challenge MCP clients discover the authorization server from (RFC 6750
//! §3, RFC 9728 §5.1).

use std::sync::Arc;

use http::HeaderMap;

use crate::config::{Config, Upstream};
use crate::crypto::tokens::Shape;
use crate::oauth::api_keys::{Lookup, API_KEY_PREFIX};
use crate::oauth::metadata::protected_resource_url;
use crate::oauth::token::ACCESS_PREFIX;
use crate::oauth::Authority;
use crate::store::{AccessRecord, Store, StoreError};
use crate::vocab::{ErrorCode, ScopeSet, SecretHash};
use crate::web::authorization::{credentials, Credentials};
use crate::web::Reply;

#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credentials: the client should start OAuth.
    Missing,
    /// Malformed `Authorization` (not Bearer, or several of them).
    Malformed,
    /// Unknown, expired or revoked.
    Invalid,
    /// Issued for another upstream.
    WrongUpstream,
    /// Its person is blocked (admin API).
    Blocked,
    /// Its person signed in at a provider the config no longer has.
    ProviderRemoved,
    /// Valid here but without every scope the route needs; the scopes it holds.
    InsufficientScope(ScopeSet),
    /// Valid, but the upstream needs the person's own account at its service, and it is not
    /// connected (or the service no longer honours it): authorize again to connect it.
    NotConnected,
    /// Not cached here and the store cannot be reached (a database outage): not the
    /// token's fault, so 503 and `Retry-After`, never a 401 that makes clients start over.
    StoreUnavailable,
}

impl Denied {
    /// A short reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Malformed => "malformed",
            Denied::Invalid => "invalid",
            Denied::WrongUpstream => "wrong_upstream",
            Denied::Blocked => "blocked",
            Denied::ProviderRemoved => "provider_removed",
            Denied::InsufficientScope(_) => "scope",
            Denied::NotConnected => "not_connected",
            Denied::StoreUnavailable => "store_unavailable",
        }
    }
}

/// The token from the one `Authorization: Bearer` header. A token in the query string is
/// never looked at (MCP forbids it).
pub fn bearer(headers: &HeaderMap) -> Result<&str, Denied> {
    match credentials(headers) {
        Ok(Some(Credentials::Bearer(token))) => Ok(token),
        Ok(None) => Err(Denied::Missing),
        Ok(Some(Credentials::Basic { .. })) | Err(_) => Err(Denied::Malformed),
    }
}

/// A token that passed: its record, and whether this was its first use in this process.
pub struct Checked {
    pub record: Arc<AccessRecord>,
    pub first_use: bool,
}

/// Checks the request's bearer token for `upstream`, counting the decision (in `counted`,
/// the route's series). Only store reads are timed (`token_validation_seconds`): a cache hit
/// costs less than reading the clock twice.
pub async fn authenticate(
    auth: &Authority,
    config: &Config,
    headers: &HeaderMap,
    upstream: &Upstream,
    counted: &crate::metrics::UpstreamMetrics,
    now: u64,
) -> Result<Checked, Denied> {
    let token = match bearer(headers) {
        Ok(token) => token,
        Err(denied) => {
            counted.auth_decision(Some(denied.reason()));
            return Err(denied);
        }
    };
    authenticate_token(auth, config, token, upstream, counted, now).await
}

/// [`authenticate`] once the token is read from its header.
pub async fn authenticate_token(
    auth: &Authority,
    config: &Config,
    token: &str,
    upstream: &Upstream,
    counted: &crate::metrics::UpstreamMetrics,
    now: u64,
) -> Result<Checked, Denied> {
    let decision = check(auth, config, token, upstream, now).await;
    counted.auth_decision(decision.as_ref().err().map(Denied::reason));
    decision
}

async fn check(
    auth: &Authority,
    config: &Config,
    token: &str,
    upstream: &Upstream,
    now: u64,
) -> Result<Checked, Denied> {
    if token.starts_with(API_KEY_PREFIX) {
        return check_key(auth, token, upstream, now);
    }
    let store = &auth.store;
    // A token that is not authgate's by its shape and tag never reaches the store.
    let may_exist = || match auth.tokens.shape(ACCESS_PREFIX, token) {
        Shape::Tagged => true,
        Shape::Legacy => auth.legacy_access_allowed(config, now),
        Shape::Forged => false,
    };
    let (record, first_use) = match store.lookup(SecretHash::of(token), now, may_exist).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Denied::Invalid),
        Err(StoreError::Unavailable(why)) => {
            tracing::warn!(error = %why, "token lookup: the store is unavailable");
            return Err(Denied::StoreUnavailable);
        }
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            return Err(Denied::Invalid);
        }
    };
    // The config checks (binding, provider, scopes) are remembered per cached record and
    // upstream for as long as this config is loaded; being blocked is checked every time.
    let passed = record.passed.passed(upstream.check_key);
    if !passed && record.upstream != upstream.name {
        return Err(Denied::WrongUpstream);
    }
    if store.is_blocked(&record.identity) {
        return Err(Denied::Blocked);
    }
    if !passed {
        // A provider removed from the config ends its people's access at once (a reload
        // that drops a compromised identity provider must not leave its tokens working).
        if config.provider(&record.identity.provider).is_none() {
            return Err(Denied::ProviderRemoved);
        }
        if !upstream.scopes.is_subset(&record.scopes) {
            return Err(Denied::InsufficientScope(record.scopes.clone()));
        }
        record.passed.set(upstream.check_key);
    }
    Ok(Checked { record, first_use })
}

/// An API key: a map lookup in the live keys (no store read), then the same checks as a
/// token's: upstream, blocked, scopes.
fn check_key(
    auth: &Authority,
    key: &str,
    upstream: &Upstream,
    now: u64,
) -> Result<Checked, Denied> {
    let live = match auth.api_keys.lookup(&auth.tokens, key) {
        Lookup::Found(live) => live,
        Lookup::Forged | Lookup::Unknown => return Err(Denied::Invalid),
    };
    if live.expired(now) {
        return Err(Denied::Invalid);
    }
    let Some(record) = live.access_for(&upstream.name) else {
        return Err(Denied::WrongUpstream);
    };
    if auth.store.is_blocked(&record.identity) {
        return Err(Denied::Blocked);
    }
    if !upstream.scopes.is_subset(&record.scopes) {
        return Err(Denied::InsufficientScope(record.scopes.clone()));
    }
    if live.touch_due(now) {
        let store = auth.store.clone();
        let name = live.record.name.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&name, now).await {
                tracing::debug!(error = %e, key = %name, "could not note the API key's use");
            }
        });
    }
    Ok(Checked {
        record: record.clone(),
        first_use: false,
    })
}

/// 401 (or 403 for scope) with `WWW-Authenticate: Bearer resource_metadata=…, scope=…`. The
/// challenge names no error when no token was sent (RFC 6750 §3.1); the JSON body always
/// carries an RFC 6750 code, as MCP SDK servers answer.
pub fn challenge(config: &Config, upstream: &Upstream, denied: &Denied) -> Reply {
    if *denied == Denied::StoreUnavailable {
        return Reply::error(
            ErrorCode::TemporarilyUnavailable,
            "the gateway cannot check this token right now; try again shortly",
        )
        .with_header(http::header::RETRY_AFTER, "5")
        .with_cors();
    }
    let prm = protected_resource_url(config, upstream);
    let (code, description) = match denied {
        Denied::Missing => (ErrorCode::InvalidToken, "authentication required"),
        Denied::Malformed => (
            ErrorCode::InvalidRequest,
            "send the token as Authorization: Bearer <token>",
        ),
        Denied::Invalid | Denied::WrongUpstream | Denied::ProviderRemoved => (
            ErrorCode::InvalidToken,
            "the access token is invalid, expired or not for this server",
        ),
        Denied::Blocked => (ErrorCode::InvalidToken, "this account is blocked"),
        Denied::InsufficientScope(_) => (
            ErrorCode::InsufficientScope,
            "the access token lacks a scope this server needs",
        ),
        Denied::NotConnected => (
            ErrorCode::InvalidToken,
            "this server needs your account at its service connected again: authorize again",
        ),
        // Answered above; listed so that a new variant must be placed.
        Denied::StoreUnavailable => (ErrorCode::TemporarilyUnavailable, "try again shortly"),
    };
    // Clients step up with what they hold and what is needed (MCP 2025-11-25).
    let scopes = match denied {
        Denied::InsufficientScope(held) => held.union(&upstream.scopes),
        _ => upstream.scopes.clone(),
    };
    let mut value = String::from("Bearer ");
    if *denied != Denied::Missing {
        value.push_str(&format!(
            "error=\"{code}\", error_description=\"{description}\", "
        ));
    }
    value.push_str(&format!("resource_metadata=\"{prm}\""));
    if !scopes.is_empty() {
        value.push_str(&format!(", scope=\"{scopes}\""));
    }
    let status = if matches!(denied, Denied::InsufficientScope(_)) {
        403
    } else {
        401
    };
    Reply::error(code, description)
        .with_status(status)
        .with_header(http::header::WWW_AUTHENTICATE, value)
        .with_cors()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exactly_one_bearer() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Err(Denied::Missing));
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Ok("abc"));
        h.insert("authorization", "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Ok("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), Err(Denied::Malformed));
        h.insert("authorization", "Bearer a".parse().unwrap());
        h.append("authorization", "Bearer b".parse().unwrap());
        assert_eq!(bearer(&h), Err(Denied::Malformed));
    }
}
