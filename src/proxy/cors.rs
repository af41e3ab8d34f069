//! Browser access to MCP routes: the `Origin` check MCP transports require against DNS
//! rebinding, CORS preflights answered without a token, and CORS headers on proxied
//! responses for allowed origins.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use url::Url;

use crate::config::Config;
use crate::vocab::is_loopback_host;
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
    // `public_url` is kept as its origin's serialization: one string compare.
    if normalized == config.server.public_url.as_str() || allowed.iter().any(|a| a == &normalized) {
        return true;
    }
    allowed.is_empty() && url.host().as_ref().is_some_and(is_loopback_host)
}

/// A browser Origin not allowed on MCP routes: 403 with a JSON-RPC error (no request id is
/// known yet), as the MCP transport asks.
pub fn origin_refused() -> Reply {
    Reply::jsonrpc_error(403, serde_json::Value::Null, -32600, "Origin not allowed")
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
        reason: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{config, config_with};

    #[test]
    fn origins_allowed_by_default_and_by_list() {
        let default = config("");
        for (origin, ok) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost:6274", true),
            ("http://[::1]:3000", true),
            ("https://evil.example", false),
            ("null", false),
            ("not a url", false),
        ] {
            assert_eq!(origin_allowed(&default, origin), ok, "{origin}");
        }
        let listed = config_with("allowed_origins = [\"https://app.example\"]", "");
        assert!(origin_allowed(&listed, "https://app.example"));
        assert!(origin_allowed(&listed, "https://APP.example:443"));
        assert!(
            !origin_allowed(&listed, "http://localhost:6274"),
            "a list replaces loopback"
        );
        let any = config_with("allowed_origins = [\"*\"]", "");
        assert!(origin_allowed(&any, "https://any.example"));
    }
}
