//! Discovery documents: Authorization Server Metadata (RFC 8414, also served as OpenID-style
//! discovery) and Protected Resource Metadata (RFC 9728) per route. Every URL is built from
//! the configured public URL, never from request headers.

use serde_json::{json, Value};

use crate::config::{Config, Registration, Upstream};
use crate::vocab::paths::{JWKS, PROTECTED_RESOURCE_METADATA as PRM_PREFIX};

pub fn authorization_server(config: &Config) -> Value {
    let issuer = config.server.public_url.as_str();
    let url = |p: &str| config.server.public_url.join(p);
    let mut m = json!({
        "issuer": issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "revocation_endpoint": url("/revoke"),
        "introspection_endpoint": url("/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": config.scopes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        // OpenID-style discovery keys some MCP SDKs require on that document. authgate issues
        // no ID tokens: its key set is empty and subjects are public identifiers.
        "jwks_uri": url(JWKS),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    if config.cimd.enabled {
        m["client_id_metadata_document_supported"] = json!(true);
    }
    if config.auth.registration != Registration::Off {
        m["registration_endpoint"] = json!(url("/register"));
    }
    m
}

pub fn protected_resource(config: &Config, upstream: &Upstream) -> Value {
    json!({
        "resource": config.resource_url(upstream),
        "resource_name": upstream.name.as_str(),
        "authorization_servers": [config.server.public_url.as_str()],
        "scopes_supported": upstream.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
    })
}

/// The PRM URL advertised in a route's 401 challenge.
pub fn protected_resource_url(config: &Config, upstream: &Upstream) -> String {
    match upstream.path.as_str() {
        "/" => config.server.public_url.join(PRM_PREFIX),
        p => config.server.public_url.join(&format!("{PRM_PREFIX}{p}")),
    }
}

/// Which upstream a PRM request is about: `suffix` is the path after the PRM prefix.
/// The bare prefix answers for the root route, else the default upstream, else the only
/// protected one (older clients only ever ask there).
pub fn upstream_for_prm<'c>(config: &'c Config, suffix: &str) -> Option<&'c Upstream> {
    let wanted = suffix.trim_end_matches('/');
    if wanted.is_empty() {
        return config
            .protected_upstreams()
            .find(|u| u.path.as_str() == "/")
            .or_else(|| config.default_oauth_upstream());
    }
    config
        .protected_upstreams()
        .find(|u| u.path.as_str() == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::config;

    #[test]
    fn documents_name_the_issuer_and_routes_exactly() {
        let c =
            config("[[upstream]]\nname = \"b\"\npath = \"/a/b\"\nurl = \"http://127.0.0.1:9/b\"\n");
        let m = authorization_server(&c);
        assert_eq!(m["issuer"], "http://127.0.0.1:8080");
        assert_eq!(
            m["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(m["registration_endpoint"], "http://127.0.0.1:8080/register");
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&"none".into()));
        let b = upstream_for_prm(&c, "/a/b/").unwrap();
        let prm = protected_resource(&c, b);
        assert_eq!(prm["resource"], "http://127.0.0.1:8080/a/b");
        assert_eq!(
            prm["authorization_servers"],
            serde_json::json!(["http://127.0.0.1:8080"])
        );
        assert_eq!(
            protected_resource_url(&c, b),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b"
        );
        assert!(
            upstream_for_prm(&c, "").is_none(),
            "two routes and no default: no bare document"
        );
        let one = config("");
        assert_eq!(
            upstream_for_prm(&one, "").unwrap().name.as_str(),
            "mcp",
            "the only route"
        );
        let off = config("[auth]\nregistration = \"off\"\n[cimd]\nenabled = false");
        let m = authorization_server(&off);
        assert!(
            m.get("registration_endpoint").is_none()
                && m.get("client_id_metadata_document_supported").is_none()
        );
    }
}
