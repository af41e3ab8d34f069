//! The gateway's own endpoints, in one table: the router answers them before any upstream
//! route, the config refuses upstream paths at or below them, and the authorization server
//! dispatches on them.

/// Path prefixes the gateway answers itself; an upstream route may not sit at or below one
/// (except the root route `/`, which only gets what nothing else matches).
pub const RESERVED: &[&str] = &[
    "/healthz",
    "/readyz",
    "/.well-known",
    "/authorize",
    "/token",
    "/register",
    "/revoke",
    "/introspect",
    "/login",
    "/callback",
    "/consent",
    "/connect",
];

/// Where an upstream's service comes back after an account was connected there (an
/// administrator's service account, or a person's own account during an authorization).
pub const CONNECT_CALLBACK: &str = "/connect/callback";
/// The page where a person lists and disconnects the accounts they connected.
pub const CONNECTIONS: &str = "/connect/accounts";

pub const PROTECTED_RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";
pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub const JWKS: &str = "/.well-known/jwks.json";
/// authgate's own client ID metadata document, for upstreams' authorization servers.
pub const CLIENT_METADATA: &str = "/.well-known/authgate-client.json";

/// One of the gateway's endpoints, with what its path carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'p> {
    Health,
    Ready,
    AuthorizationServerMetadata,
    Jwks,
    /// [`CLIENT_METADATA`].
    ClientMetadata,
    /// RFC 9728 metadata; the route path after the prefix (`""` for the bare prefix).
    ProtectedResourceMetadata(&'p str),
    /// Any other `/.well-known/…` document: 404.
    UnknownWellKnown,
    Authorize,
    Token,
    Register,
    Revoke,
    Introspect,
    /// `/login`: the provider chooser.
    Chooser,
    /// `/login/<provider>`.
    Login(&'p str),
    /// `/callback/<provider>`.
    Callback(&'p str),
    Consent,
    /// [`CONNECT_CALLBACK`]: an upstream's connected account coming back.
    ConnectCallback,
    /// [`CONNECTIONS`]: a person's connected accounts.
    Connections,
    /// Below a reserved prefix but nothing there: 404.
    Unknown,
}

impl<'p> Endpoint<'p> {
    /// The endpoint `path` names, if it is one of the gateway's own.
    pub fn of(path: &'p str) -> Option<Self> {
        use Endpoint::*;
        let below = |prefix: &str| -> Option<&'p str> {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        };
        Some(match path {
            "/healthz" => Health,
            "/readyz" => Ready,
            AUTHORIZATION_SERVER_METADATA | OPENID_CONFIGURATION => AuthorizationServerMetadata,
            JWKS => Jwks,
            CLIENT_METADATA => ClientMetadata,
            "/authorize" => Authorize,
            "/token" => Token,
            "/register" => Register,
            "/revoke" => Revoke,
            "/introspect" => Introspect,
            "/login" => Chooser,
            "/consent" => Consent,
            CONNECT_CALLBACK => ConnectCallback,
            CONNECTIONS => Connections,
            p if p
                .strip_prefix(PROTECTED_RESOURCE_METADATA)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) =>
            {
                ProtectedResourceMetadata(&p[PROTECTED_RESOURCE_METADATA.len()..])
            }
            p if p.starts_with("/.well-known/") => UnknownWellKnown,
            _ => {
                if let Some(id) = below("/login") {
                    Login(id)
                } else if let Some(id) = below("/callback") {
                    Callback(id)
                } else if is_reserved(path) {
                    Unknown
                } else {
                    return None;
                }
            }
        })
    }
}

/// Whether `path` is at or below one of [`RESERVED`].
pub fn is_reserved(path: &str) -> bool {
    RESERVED.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_and_nothing_else() {
        use Endpoint::*;
        for (path, want) in [
            ("/healthz", Some(Health)),
            ("/readyz", Some(Ready)),
            (
                "/.well-known/oauth-authorization-server",
                Some(AuthorizationServerMetadata),
            ),
            (
                "/.well-known/openid-configuration",
                Some(AuthorizationServerMetadata),
            ),
            ("/.well-known/jwks.json", Some(Jwks)),
            ("/connect/callback", Some(ConnectCallback)),
            ("/connect", Some(Unknown)),
            (
                "/.well-known/oauth-protected-resource",
                Some(ProtectedResourceMetadata("")),
            ),
            (
                "/.well-known/oauth-protected-resource/a/mcp",
                Some(ProtectedResourceMetadata("/a/mcp")),
            ),
            (
                "/.well-known/oauth-authorization-server/mcp",
                Some(UnknownWellKnown),
            ),
            ("/authorize", Some(Authorize)),
            ("/login", Some(Chooser)),
            ("/login/corp", Some(Login("corp"))),
            ("/login/corp/x", Some(Unknown)),
            ("/callback/gh", Some(Callback("gh"))),
            ("/callback", Some(Unknown)),
            ("/consent", Some(Consent)),
            ("/token/x", Some(Unknown)),
            ("/tokens", None),
            ("/mcp", None),
            ("/", None),
        ] {
            assert_eq!(Endpoint::of(path), want, "{path}");
        }
    }
}
