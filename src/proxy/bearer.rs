//! The protected-resource side: a bearer token on every request to an OAuth route, checked
//! with one hash and one cache lookup, bound to exactly one upstream (RFC 8707). Failures
//! answer with the challenge MCP clients discover the authorization server from (RFC 6750
//! §3, RFC 9728 §5.1).

use std::sync::Arc;

use http::HeaderMap;

use crate::config::{Config, Upstream};
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
    /// Unknown, expired, revoked, or issued for another upstream.
    Invalid,
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

pub async fn authenticate(
    store: &Cached,
    headers: &HeaderMap,
    upstream: &Upstream,
    now: u64,
) -> Result<Arc<AccessRecord>, Denied> {
    let token = SecretHash::of(bearer(headers)?);
    let record = match store.authenticate(token, now).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Denied::Invalid),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            return Err(Denied::Invalid);
        }
    };
    if record.upstream != upstream.name {
        return Err(Denied::Invalid);
    }
    if !upstream.scopes.is_subset(&record.scopes) {
        return Err(Denied::InsufficientScope(record.scopes.clone()));
    }
    Ok(record)
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
        Denied::Invalid => (
            ErrorCode::InvalidToken,
            "the access token is invalid, expired or not for this server",
        ),
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
