//! OAuth errors (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 7009, RFC 8707), mapped once to their
//! HTTP answer. Internal failures become `server_error`; the detail goes to the log only.

use crate::store::StoreError;
use crate::web::Reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC error code on the wire.
    pub code: &'static str,
    pub description: String,
}

macro_rules! codes {
    ($($fn:ident => $code:literal),* $(,)?) => {
        impl OAuthError {
            $(pub fn $fn(description: impl Into<String>) -> Self {
                Self { code: $code, description: description.into() }
            })*
        }
    };
}

codes! {
    invalid_request => "invalid_request",
    invalid_client => "invalid_client",
    invalid_grant => "invalid_grant",
    unauthorized_client => "unauthorized_client",
    unsupported_grant_type => "unsupported_grant_type",
    unsupported_response_type => "unsupported_response_type",
    invalid_scope => "invalid_scope",
    invalid_target => "invalid_target",
    access_denied => "access_denied",
    server_error => "server_error",
    invalid_redirect_uri => "invalid_redirect_uri",
    invalid_client_metadata => "invalid_client_metadata",
    temporarily_unavailable => "temporarily_unavailable",
}

impl OAuthError {
    pub fn status(&self) -> u16 {
        match self.code {
            "invalid_client" => 401,
            "access_denied" => 403,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        }
    }

    /// The JSON error answer of the token, revocation, introspection and registration
    /// endpoints: never cached, readable cross-origin.
    pub fn reply(&self) -> Reply {
        let mut r = Reply::error(self.status(), self.code, &self.description)
            .with_header(http::header::PRAGMA, "no-cache")
            .with_cors();
        if self.code == "invalid_client" {
            r = r.with_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"authgate\"");
        }
        r
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::server_error("the authorization server could not complete the request")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(OAuthError::invalid_grant("x").status(), 400);
        let r = OAuthError::invalid_client("x").reply();
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .iter()
            .any(|(n, _)| n == http::header::WWW_AUTHENTICATE));
        assert_eq!(OAuthError::server_error("x").status(), 500);
        let v: serde_json::Value =
            serde_json::from_slice(&OAuthError::invalid_scope("nope").reply().body).unwrap();
        assert_eq!(v["error"], "invalid_scope");
        assert_eq!(v["error_description"], "nope");
    }
}
