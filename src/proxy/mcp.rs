//! MCP 2026-07-28 request metadata: `Mcp-Method` and `Mcp-Name` mirror the JSON-RPC body so
//! intermediaries can route and log without parsing it. authgate reads them (logs, and later
//! per-tool policy), so it checks them against the body first: a mismatch is refused with
//! 400 and JSON-RPC error -32020 (HeaderMismatch) before the upstream sees the request.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{HeaderMap, HeaderName};
use serde_json::Value;

use crate::web::Reply;

pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
pub const HEADER_MISMATCH: i64 = -32020;

/// What a validated request calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCall {
    pub method: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub id: Value,
    pub message: String,
}

impl Mismatch {
    pub fn reply(&self) -> Reply {
        Reply::jsonrpc_error(400, self.id.clone(), HEADER_MISMATCH, &self.message).with_cors()
    }
}

/// Whether the request carries mirrored headers that must be checked against its body.
pub fn has_mirrored_headers(headers: &HeaderMap) -> bool {
    headers.contains_key(MCP_METHOD) || headers.contains_key(MCP_NAME)
}

/// `=?base64?…?=` values decoded (the spec's encoding for non-ASCII names and URIs).
fn decode_header(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    match s
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(STANDARD.decode(b64).ok()?).ok(),
        None => Some(s.to_string()),
    }
}

/// The body field `Mcp-Name` mirrors for `method`, if any.
fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Checks the mirrored headers against a JSON-RPC request body.
pub fn check(headers: &HeaderMap, body: &[u8]) -> Result<McpCall, Mismatch> {
    let fail = |id: &Value, message: String| Mismatch {
        id: id.clone(),
        message: format!("Header mismatch: {message}"),
    };
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let id = parsed.get("id").cloned().unwrap_or(Value::Null);
    let Some(body_method) = parsed.get("method").and_then(Value::as_str) else {
        return Err(fail(
            &id,
            "the body is not a single JSON-RPC request".into(),
        ));
    };
    let header_method = match headers.get(MCP_METHOD) {
        None => return Err(fail(&id, "Mcp-Method header is missing".into())),
        Some(v) => decode_header(v.as_bytes())
            .ok_or_else(|| fail(&id, "Mcp-Method is not valid".into()))?,
    };
    if header_method != body_method {
        return Err(fail(
            &id,
            format!("Mcp-Method header value '{header_method}' does not match body value '{body_method}'"),
        ));
    }
    let header_name = match headers.get(MCP_NAME) {
        None => None,
        Some(v) => Some(
            decode_header(v.as_bytes()).ok_or_else(|| fail(&id, "Mcp-Name is not valid".into()))?,
        ),
    };
    let body_name = name_field(body_method).and_then(|f| {
        parsed
            .get("params")
            .and_then(|p| p.get(f))
            .and_then(Value::as_str)
    });
    match (header_name, body_name) {
        (Some(h), Some(b)) if h == b => Ok(McpCall {
            method: body_method.to_string(),
            name: Some(h),
        }),
        (Some(h), Some(b)) => Err(fail(
            &id,
            format!("Mcp-Name header value '{h}' does not match body value '{b}'"),
        )),
        (None, Some(_)) => Err(fail(
            &id,
            format!("Mcp-Name header is required for {body_method}"),
        )),
        (Some(h), None) => Err(fail(
            &id,
            format!("Mcp-Name header value '{h}' has no counterpart in the body"),
        )),
        (None, None) => Ok(McpCall {
            method: body_method.to_string(),
            name: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(method: Option<&str>, name: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(m) = method {
            h.insert(MCP_METHOD, m.parse().unwrap());
        }
        if let Some(n) = name {
            h.insert(MCP_NAME, n.parse().unwrap());
        }
        h
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather","arguments":{}}}"#;

    #[test]
    fn matching_headers_pass() {
        let call = check(
            &headers(Some("tools/call"), Some("get_weather")),
            CALL.as_bytes(),
        )
        .unwrap();
        assert_eq!(call.name.as_deref(), Some("get_weather"));
        let read = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///ü.txt"}}"#;
        let encoded = format!("=?base64?{}?=", STANDARD.encode("file:///ü.txt"));
        assert!(check(
            &headers(Some("resources/read"), Some(&encoded)),
            read.as_bytes()
        )
        .is_ok());
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        assert!(check(&headers(Some("tools/list"), None), list.as_bytes()).is_ok());
    }

    #[test]
    fn mismatches_are_refused_with_the_request_id() {
        let e = check(
            &headers(Some("tools/call"), Some("safe_tool")),
            CALL.as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.id, json!(7));
        assert!(
            e.message
                .contains("'safe_tool' does not match body value 'get_weather'"),
            "{}",
            e.message
        );
        assert!(check(
            &headers(Some("tools/list"), Some("get_weather")),
            CALL.as_bytes()
        )
        .is_err());
        assert!(check(&headers(Some("tools/call"), None), CALL.as_bytes()).is_err());
        assert!(check(&headers(None, Some("get_weather")), CALL.as_bytes()).is_err());
        assert!(check(&headers(Some("tools/call"), Some("x")), b"[1,2]").is_err());
        let reply = e.reply();
        assert_eq!(reply.status, 400);
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["error"]["code"], -32020);
    }
}
