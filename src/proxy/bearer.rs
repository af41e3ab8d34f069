//! The protected-resource side: a bearer token on every request to an OAuth route, checked
//! with one hash and one cache lookup, bound to exactly one upstream (RFC 8707). Failures
//! answer with the challenge MCP clients discover the authorization server from.

use std::sync::Arc;

use http::HeaderMap;

use crate::config::{Config, Upstream};
use crate::crypto::SecretHash;
use crate::oauth::metadata::protected_resource_url;
use crate::store::{AccessRecord, Cached};
use crate::web::Reply;

#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credentials: the client should start OAuth.
    Missing,
    /// Malformed `Authorization` (not Bearer, or several of them).
    Malformed,
    /// Unknown, expired, revoked, or issued for another upstream.
    Invalid,
    /// Valid here but without every scope the route needs.
    InsufficientScope,
}

/// The token from the one `Authorization: Bearer` header. A token in the query string is
/// never looked at (MCP forbids it).
pub fn bearer(headers: &HeaderMap) -> Result<&str, Denied> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denied::Missing);
    };
    if values.next().is_some() {
        return Err(Denied::Malformed);
    }
    let value = value.to_str().map_err(|_| Denied::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(Denied::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Denied::Malformed);
    }
    Ok(token.trim())
}

pub async fn authenticate(
    store: &Cached,
    headers: &HeaderMap,
    upstream: &Upstream,
    now: u64,
) -> Result<Arc<AccessRecord>, Denied> {
    let token = SecretHash::of(bearer(headers)?);
    let cached = store.cached(&token, now);
    let found = match cached {
        Some(r) => Ok(Some(r)),
        None => store.authenticate(token, now).await,
    };
    let record = match found {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Denied::Invalid),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            return Err(Denied::Invalid);
        }
    };
    if record.upstream != upstream.name.as_str() {
        return Err(Denied::Invalid);
    }
    if !upstream.scopes.iter().all(|s| record.scopes.contains(s)) {
        return Err(Denied::InsufficientScope);
    }
    Ok(record)
}

/// 401 (or 403 for scope) with `WWW-Authenticate: Bearer resource_metadata=…, scope=…`.
pub fn challenge(
    config: &Config,
    upstream: &Upstream,
    denied: &Denied,
    held: Option<&[String]>,
) -> Reply {
    let prm = protected_resource_url(config, upstream);
    let mut scopes: Vec<String> = held.map(|h| h.to_vec()).unwrap_or_default();
    for s in &upstream.scopes {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    let mut value = String::from("Bearer ");
    let (status, code, description) = match denied {
        Denied::Missing => (401, None, "authentication required"),
        Denied::Malformed => (
            401,
            Some("invalid_request"),
            "send the token as Authorization: Bearer <token>",
        ),
        Denied::Invalid => (
            401,
            Some("invalid_token"),
            "the access token is invalid, expired or not for this server",
        ),
        Denied::InsufficientScope => (
            403,
            Some("insufficient_scope"),
            "the access token lacks a scope this server needs",
        ),
    };
    if let Some(code) = code {
        value.push_str(&format!(
            "error=\"{code}\", error_description=\"{description}\", "
        ));
    }
    value.push_str(&format!("resource_metadata=\"{prm}\""));
    if !scopes.is_empty() {
        value.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
    }
    Reply::error(status, code.unwrap_or("unauthorized"), description)
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
