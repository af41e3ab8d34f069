//! One writer for every local answer, so each gets the same framing, `Content-Type` and
//! `Cache-Control: no-store`, and protocol code returns values instead of touching sessions.
//! Errors have two shapes, each written in one place: the RFC 6749 JSON error
//! ([`Reply::error`]) and the JSON-RPC error MCP clients read on MCP routes
//! ([`Reply::jsonrpc_error`]); HTML error pages are `pages::error`.

use bytes::Bytes;
use http::header::{HeaderName, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Serialize;

use crate::vocab::ErrorCode;

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Bytes,
    /// Why authgate refused, for the access log (an RFC 6749 error code, a page's title).
    pub reason: Option<&'static str>,
}

/// The body of a gateway error: the shape of an RFC 6749 error response, so OAuth clients and
/// people with curl read it the same way.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl Reply {
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("serializing a reply cannot fail");
        Self {
            status,
            headers: vec![(CONTENT_TYPE, "application/json".into())],
            body: body.into(),
            reason: None,
        }
    }

    /// `{"error": code, "error_description": description}`, with the code's usual status
    /// (change it with [`Reply::with_status`]).
    pub fn error(code: ErrorCode, description: &str) -> Self {
        Self::json(
            code.status(),
            &ErrorBody {
                error: code.as_str(),
                error_description: description,
            },
        )
        .with_reason(code.as_str())
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// A JSON-RPC 2.0 error response for request `id`, as MCP clients expect on MCP routes.
    pub fn jsonrpc_error(status: u16, id: serde_json::Value, code: i64, message: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": code, "message": message},
            }),
        )
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// A redirect (302 for GET flows, 303 after a form POST).
    pub fn redirect(status: u16, location: &str) -> Self {
        Self {
            status,
            headers: vec![(http::header::LOCATION, location.to_string())],
            body: Bytes::new(),
            reason: None,
        }
    }

    /// A server-rendered page: no scripts, no framing, no referrer leaks of OAuth parameters to
    /// other sites. `same-origin`, not `no-referrer`: under `no-referrer` browsers send
    /// `Origin: null` even on posts to the page's own origin.
    pub fn html(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![
                (CONTENT_TYPE, "text/html; charset=utf-8".into()),
                (
                    HeaderName::from_static("content-security-policy"),
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"
                        .into(),
                ),
                (HeaderName::from_static("x-frame-options"), "DENY".into()),
                (HeaderName::from_static("referrer-policy"), "same-origin".into()),
                (HeaderName::from_static("x-content-type-options"), "nosniff".into()),
            ],
            body: body.into(),
            reason: None,
        }
    }

    pub fn with_cookie(self, cookie: String) -> Self {
        self.with_header(http::header::SET_COOKIE, cookie)
    }

    /// Lets browser-based clients (MCP Inspector) call this endpoint: any origin, no
    /// credentials (bearer tokens and client ids travel in headers and bodies, not cookies).
    pub fn with_cors(self) -> Self {
        self.with_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .with_header(
                http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version",
            )
    }

    /// For a browser request from an allowed origin: CORS headers naming it (replacing the
    /// wildcard of [`Reply::with_cors`], if set).
    pub fn with_origin(mut self, origin: Option<&str>) -> Self {
        let Some(origin) = origin else { return self };
        self.headers.retain(|(n, _)| {
            n != http::header::ACCESS_CONTROL_ALLOW_ORIGIN
                && n != http::header::ACCESS_CONTROL_EXPOSE_HEADERS
        });
        self.with_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin)
            .with_header(
                http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version",
            )
            .with_header(http::header::VARY, "Origin")
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn header(&self) -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(self.status, Some(self.headers.len() + 3))?;
        for (name, value) in &self.headers {
            h.append_header(name.clone(), value.as_str())?;
        }
        if !self.headers.iter().any(|(n, _)| n == CACHE_CONTROL) {
            h.insert_header(CACHE_CONTROL, "no-store")?;
        }
        h.insert_header(CONTENT_LENGTH, self.body.len().to_string())?;
        Ok(h)
    }

    /// Writes the whole reply to the client.
    pub async fn write(self, session: &mut Session) -> pingora::Result<()> {
        let header = self.header()?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(header), head_only || self.body.is_empty())
            .await?;
        if !head_only && !self.body.is_empty() {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_is_rfc6749_shaped_json_and_not_cached() {
        let r = Reply::error(ErrorCode::NotFound, "no route \"x\"");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "not_found");
        assert_eq!(v["error_description"], "no route \"x\"");
        let h = r.header().unwrap();
        assert_eq!(h.status.as_u16(), 404);
        assert_eq!(h.headers["content-type"], "application/json");
        assert_eq!(h.headers["cache-control"], "no-store");
        assert_eq!(
            h.headers["content-length"],
            r.body.len().to_string().as_str()
        );
    }
}
