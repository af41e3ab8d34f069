//! Browser access to MCP routes: the `Origin` check MCP transports require against DNS
//! rebinding, CORS preflights answered without a token, and CORS headers on proxied
//! responses for allowed origins.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use url::Url;

use crate::config::{is_loopback_host, Config};
use crate::web::Reply;

const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Last-Event-ID";
const EXPOSE_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version";

/// `server.allowed_origins`, or by default the gateway's own origin and loopback origins
/// (local browser clients such as MCP Inspector).
pub fn origin_allowed(config: &Config, origin: &str) -> bool {
    let allowed = &config.server.allowed_origins;
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let Ok(url) = Url::parse(origin) else {
        return false;
    };
    let normalized = url.origin().ascii_serialization();
    let own =
        Url::parse(config.server.public_url.as_str()).map(|u| u.origin().ascii_serialization());
    if own.as_deref() == Ok(normalized.as_str()) || allowed.iter().any(|a| a == &normalized) {
        return true;
    }
    allowed.is_empty() && url.host().as_ref().is_some_and(is_loopback_host)
}

pub fn origin_refused() -> Reply {
    Reply::json(
        403,
        &serde_json::json!({
            "jsonrpc": "2.0",
            "error": {"code": -32600, "message": "Origin not allowed"},
        }),
    )
}

/// The answer to a CORS preflight on an MCP route (no token needed: browsers send none).
pub fn preflight(origin: Option<&str>) -> Reply {
    Reply {
        status: 204,
        headers: vec![
            (ACCESS_CONTROL_ALLOW_ORIGIN, origin.unwrap_or("*").into()),
            (
                ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, DELETE, OPTIONS".into(),
            ),
            (ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS.into()),
            (ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS.into()),
            (ACCESS_CONTROL_MAX_AGE, "86400".into()),
            (VARY, "Origin".into()),
        ],
        body: bytes::Bytes::new(),
    }
}

/// Replaces whatever CORS headers the upstream sent with ours for an allowed origin (two
/// `Access-Control-Allow-Origin` values would make browsers refuse the response).
pub fn apply_to_response(
    resp: &mut pingora::http::ResponseHeader,
    origin: &str,
) -> pingora::Result<()> {
    resp.remove_header(&ACCESS_CONTROL_ALLOW_ORIGIN);
    resp.remove_header(&ACCESS_CONTROL_EXPOSE_HEADERS);
    resp.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, origin)?;
    resp.insert_header(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS)?;
    resp.append_header(VARY, "Origin")?;
    Ok(())
}
