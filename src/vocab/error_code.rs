//! The `error` codes of the gateway's JSON answers: RFC 6749 §4.1.2.1 and §5.2, RFC 6750
//! §3.1, RFC 7591 §3.2.2 and RFC 8707 §2, plus the gateway's own for what no RFC names
//! (not found, upstream failures). Each knows its wire string and its usual HTTP status.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// RFC 6749: a parameter is missing, repeated, malformed or unsupported.
    InvalidRequest,
    /// RFC 6749: client authentication failed (401 with a `WWW-Authenticate: Basic`).
    InvalidClient,
    /// RFC 6749: the code or refresh token is invalid, expired, revoked or not this client's.
    InvalidGrant,
    /// RFC 6749: this client may not use this grant type.
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 6750: the bearer token is missing, invalid, expired, revoked or for another resource.
    InvalidToken,
    /// RFC 6750: the token lacks a scope the resource needs (403).
    InsufficientScope,
    /// RFC 8707: the resource indicator names nothing this server protects.
    InvalidTarget,
    /// RFC 7591.
    InvalidRedirectUri,
    /// RFC 7591.
    InvalidClientMetadata,
    /// RFC 7009: revocation of this token type is not supported.
    UnsupportedTokenType,
    /// The gateway: no route or document at this path.
    NotFound,
    /// The gateway: the upstream could not be reached.
    UpstreamUnavailable,
    /// The gateway: the upstream did not answer in time.
    UpstreamTimeout,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            UnsupportedResponseType => "unsupported_response_type",
            InvalidScope => "invalid_scope",
            AccessDenied => "access_denied",
            ServerError => "server_error",
            TemporarilyUnavailable => "temporarily_unavailable",
            InvalidToken => "invalid_token",
            InsufficientScope => "insufficient_scope",
            InvalidTarget => "invalid_target",
            InvalidRedirectUri => "invalid_redirect_uri",
            InvalidClientMetadata => "invalid_client_metadata",
            UnsupportedTokenType => "unsupported_token_type",
            NotFound => "not_found",
            UpstreamUnavailable => "upstream_unavailable",
            UpstreamTimeout => "upstream_timeout",
        }
    }

    /// The status an answer with this code has, unless the endpoint says otherwise.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidClient | InvalidToken => 401,
            AccessDenied | InsufficientScope => 403,
            NotFound => 404,
            ServerError => 500,
            UpstreamUnavailable => 502,
            TemporarilyUnavailable => 503,
            UpstreamTimeout => 504,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_rfcs() {
        for (code, wire, status) in [
            (ErrorCode::InvalidRequest, "invalid_request", 400),
            (ErrorCode::InvalidClient, "invalid_client", 401),
            (ErrorCode::InvalidGrant, "invalid_grant", 400),
            (ErrorCode::InvalidToken, "invalid_token", 401),
            (ErrorCode::InsufficientScope, "insufficient_scope", 403),
            (ErrorCode::InvalidTarget, "invalid_target", 400),
            (ErrorCode::ServerError, "server_error", 500),
            (
                ErrorCode::TemporarilyUnavailable,
                "temporarily_unavailable",
                503,
            ),
            (ErrorCode::UpstreamTimeout, "upstream_timeout", 504),
        ] {
            assert_eq!((code.as_str(), code.status()), (wire, status));
        }
    }
}
