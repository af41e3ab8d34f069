//! OAuth errors: an RFC code ([`ErrorCode`]) and a description, mapped once to their HTTP
//! answer. Internal failures become `server_error`; the detail goes to the log only.

use crate::store::StoreError;
use crate::vocab::ErrorCode;
use crate::web::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

macro_rules! codes {
    ($($fn:ident => $code:ident),* $(,)?) => {
        impl OAuthError {
            $(pub fn $fn(description: impl Into<String>) -> Self {
                Self { code: ErrorCode::$code, description: description.into() }
            })*
        }
    };
}

codes! {
    invalid_request => InvalidRequest,
    invalid_client => InvalidClient,
    invalid_grant => InvalidGrant,
    unauthorized_client => UnauthorizedClient,
    unsupported_grant_type => UnsupportedGrantType,
    unsupported_response_type => UnsupportedResponseType,
    invalid_scope => InvalidScope,
    invalid_target => InvalidTarget,
    access_denied => AccessDenied,
    server_error => ServerError,
    invalid_redirect_uri => InvalidRedirectUri,
    invalid_client_metadata => InvalidClientMetadata,
    temporarily_unavailable => TemporarilyUnavailable,
}

impl OAuthError {
    /// The JSON error answer of the token, revocation, introspection and registration
    /// endpoints: never cached, readable cross-origin; `invalid_client` carries the Basic
    /// challenge (RFC 6749 §5.2).
    pub fn reply(&self) -> Reply {
        let mut r = Reply::error(self.code, &self.description)
            .with_header(http::header::PRAGMA, "no-cache")
            .with_cors();
        match self.code {
            ErrorCode::InvalidClient => {
                r = r.with_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"authgate\"")
            }
            // The store is reopening after an I/O error: come back shortly.
            ErrorCode::TemporarilyUnavailable => {
                r = r.with_header(http::header::RETRY_AFTER, "5");
            }
            _ => {}
        }
        r
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Unavailable(_) = e {
            return Self::temporarily_unavailable(
                "the authorization server's storage is recovering; try again shortly",
            );
        }
        tracing::error!(error = %e, "store failure");
        Self::server_error("the authorization server could not complete the request")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_the_rfcs() {
        let r = OAuthError::invalid_client("x").reply();
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == http::header::WWW_AUTHENTICATE && v.starts_with("Basic")));
        assert_eq!(OAuthError::server_error("x").reply().status, 500);
        let r = OAuthError::invalid_scope("nope").reply();
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_scope");
        assert_eq!(v["error_description"], "nope");
    }
}
