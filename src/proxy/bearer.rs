//! The protected-resource side: a bearer token on every request to an OAuth route, checked
//! with one hash and one cache lookup, bound to exactly one upstream (RFC 8707). Failures
//! answer with the challenge MCP clients discover the authorization server from (RFC 6750
//! §3, RFC 9728 §5.1).

use std::sync::Arc;

use http::HeaderMap;

use crate::config::{Config, Upstream};
use crate::metrics::metrics;
use crate::oauth::metadata::protected_resource_url;
use crate::store::{AccessRecord, Cached};
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

/// Checks the request's bearer token for `upstream`, counting the decision and its time.
pub async fn authenticate(
    store: &Cached,
    config: &Config,
    headers: &HeaderMap,
    upstream: &Upstream,
    now: u64,
) -> Result<Checked, Denied> {
    let started = std::time::Instant::now();
    let decision = check(store, config, headers, upstream, now).await;
    let m = metrics();
    m.token_validation.observe(started.elapsed().as_secs_f64());
    let (result, reason) = match &decision {
        Ok(_) => ("allowed", "ok"),
        Err(d) => ("denied", d.reason()),
    };
    m.auth_decisions
        .with_label_values(&[upstream.name.as_str(), result, reason])
        .inc();
    decision
}

async fn check(
    store: &Cached,
    config: &Config,
    headers: &HeaderMap,
    upstream: &Upstream,
    now: u64,
) -> Result<Checked, Denied> {
    let token = SecretHash::of(bearer(headers)?);
    let (record, first_use) = match store.lookup(token, now).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Denied::Invalid),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            return Err(Denied::Invalid);
        }
    };
    if record.upstream != upstream.name {
        return Err(Denied::WrongUpstream);
    }
    if store.is_blocked(&record.identity) {
        return Err(Denied::Blocked);
    }
    // A provider removed from the config ends its people's access at once (a reload that
    // drops a compromised identity provider must not leave its tokens working).
    if config.provider(&record.identity.provider).is_none() {
        return Err(Denied::ProviderRemoved);
    }
    if !upstream.scopes.is_subset(&record.scopes) {
        return Err(Denied::InsufficientScope(record.scopes.clone()));
    }
    Ok(Checked { record, first_use })
}

/// 401 (or 403 for scope) with `WWW-Authenticate: Bearer resource_metadata=…, scope=…`. The
/// challenge names no error when no token was sent (RFC 6750 §3.1); the JSON body always
/// carries an RFC 6750 code, as MCP SDK servers answer.
pub fn challenge(config: &Config, upstream: &Upstream, denied: &Denied) -> Reply {
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
