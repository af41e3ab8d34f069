//! The OAuth 2.1 authorization server for MCP clients, answered by the gateway itself:
//! discovery, registration, authorization (with login and consent), tokens, revocation and
//! introspection. Handlers are functions from a [`Request`] to a [`Reply`]; every one takes
//! `now` so tests fix the clock.

pub mod authorize;
pub mod cimd;
pub mod error;
pub mod metadata;
pub mod pkce;
pub mod register;
pub mod token;
pub mod types;

use std::sync::Arc;

use http::Method;

use crate::config::Config;
use crate::crypto::{Sealer, SecretHash};
use crate::login::Logins;
use crate::store::{Cached, Store};
use crate::web::{Reply, Request};
pub use error::OAuthError;
use types::RedirectUri;

/// Path prefixes the authorization server answers; the router sends these here first.
pub const PATHS: &[&str] = &[
    "/.well-known",
    "/authorize",
    "/token",
    "/register",
    "/revoke",
    "/introspect",
    "/login",
    "/callback",
    "/consent",
];

pub fn is_oauth_path(path: &str) -> bool {
    PATHS.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The long-lived parts of the authorization server; the config comes per request.
pub struct Authority {
    pub store: Arc<Cached>,
    pub sealer: Sealer,
    pub forms: crate::web::csrf::FormTokens,
    pub logins: Logins,
    pub cimd: cimd::DocumentCache,
    pub registrations: register::RateLimiter,
}

/// A client as the authorization server sees it, pre-registered or dynamically registered.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub secret: Option<SecretHash>,
    pub allowed_scopes: Option<Vec<String>>,
    pub allowed_upstreams: Option<Vec<String>>,
    pub trusted: bool,
    /// Registered for the `refresh_token` grant: gets refresh tokens.
    pub refresh_allowed: bool,
    /// For a metadata-document client, the document's host: https redirects there prove
    /// the client is who its `client_id` says.
    pub document_host: Option<String>,
}

impl ClientInfo {
    /// Whether a code sent to `redirect_uri` can only reach this client: a confidential client
    /// (the code is useless without its secret) or a metadata-document client redirecting to
    /// https on its own host. Loopback and custom-scheme redirects of public clients prove
    /// nothing (RFC 8252 §8.6): any local program can claim them.
    pub fn identity_assured(&self, redirect_uri: &str) -> bool {
        if self.secret.is_some() {
            return true;
        }
        let Some(host) = &self.document_host else {
            return false;
        };
        url::Url::parse(redirect_uri)
            .ok()
            .is_some_and(|u| u.scheme() == "https" && u.host_str() == Some(host.as_str()))
    }
}

impl Authority {
    pub async fn client(
        &self,
        config: &Config,
        client_id: &str,
    ) -> Result<Option<ClientInfo>, OAuthError> {
        if let Some(c) = config.client(client_id) {
            return Ok(Some(ClientInfo {
                client_id: c.client_id.clone(),
                name: c.name.clone(),
                redirect_uris: c
                    .redirect_uris
                    .iter()
                    .map(|u| RedirectUri(u.clone()))
                    .collect(),
                secret: c.secret,
                allowed_scopes: c.scopes.clone(),
                allowed_upstreams: c.upstreams.clone(),
                trusted: c.trusted,
                refresh_allowed: true,
                document_host: None,
            }));
        }
        if cimd::is_document_url(client_id) {
            return match self
                .cimd
                .client(
                    client_id,
                    &config.cimd,
                    config.auth.allow_custom_scheme_redirects,
                )
                .await
            {
                Ok(info) => Ok(Some(info)),
                Err(e) => {
                    tracing::info!(target: "authgate::audit", event = "cimd_refused", client_id, reason = %e);
                    Err(OAuthError::invalid_client(e.to_string()))
                }
            };
        }
        let Some(rec) = self.store.get_client(client_id).await? else {
            return Ok(None);
        };
        let secret = rec.secret_sha256.as_deref().and_then(|h| {
            let bytes: Vec<u8> = (0..h.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                .collect();
            bytes.try_into().ok().map(SecretHash)
        });
        Ok(Some(ClientInfo {
            client_id: rec.client_id.clone(),
            name: rec
                .client_name
                .clone()
                .unwrap_or_else(|| rec.client_id.clone()),
            redirect_uris: rec
                .redirect_uris
                .iter()
                .map(|u| RedirectUri(u.clone()))
                .collect(),
            secret,
            allowed_scopes: None,
            allowed_upstreams: None,
            trusted: false,
            refresh_allowed: rec.grant_types.iter().any(|g| g == "refresh_token"),
            document_host: None,
        }))
    }

    /// Answers a request for one of [`PATHS`].
    pub async fn handle(&self, config: &Config, req: &Request, now: u64) -> Reply {
        let path = req.path.as_str();
        let cors = matches!(path, "/token" | "/register" | "/revoke" | "/introspect")
            || path.starts_with("/.well-known");
        if req.method == Method::OPTIONS && cors {
            return preflight();
        }
        let get = req.method == Method::GET || req.method == Method::HEAD;
        let post = req.method == Method::POST;
        match path {
            "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration"
                if get =>
            {
                Reply::json(200, &metadata::authorization_server(config))
                    .with_header(http::header::CACHE_CONTROL, "public, max-age=300")
                    .with_cors()
            }
            "/.well-known/jwks.json" if get => {
                Reply::json(200, &serde_json::json!({"keys": []})).with_cors()
            }
            p if get
                && (p == metadata::PRM_PREFIX
                    || p.starts_with(&format!("{}/", metadata::PRM_PREFIX))) =>
            {
                let suffix = &p[metadata::PRM_PREFIX.len()..];
                match metadata::upstream_for_prm(config, suffix) {
                    Some(u) => Reply::json(200, &metadata::protected_resource(config, u))
                        .with_header(http::header::CACHE_CONTROL, "public, max-age=300")
                        .with_cors(),
                    None => Reply::error(404, "not_found", "no protected resource at this path")
                        .with_cors(),
                }
            }
            "/register" if post => register::register(self, config, req, now).await,
            "/authorize" if get => authorize::authorize(self, config, req, now).await,
            "/login" if get => authorize::chooser(self, config, req, now),
            "/consent" if get => authorize::consent_page(self, config, req, now).await,
            "/consent" if post => authorize::consent_decision(self, config, req, now).await,
            "/token" if post => token::token(self, config, req, now).await,
            "/revoke" if post => token::revoke(self, config, req, now).await,
            "/introspect" if post => token::introspect(self, config, req, now).await,
            p if p.starts_with("/login/") && get => {
                authorize::login_start(self, config, req, &p[7..], now).await
            }
            p if p.starts_with("/login/") && post => {
                authorize::local_login(self, config, req, &p[7..], now).await
            }
            p if p.starts_with("/callback/") && get => {
                authorize::callback(self, config, req, &p[10..], now).await
            }
            p if p.starts_with("/.well-known/") => {
                Reply::error(404, "not_found", "unknown metadata document").with_cors()
            }
            "/token" | "/register" | "/revoke" | "/introspect" => {
                Reply::error(405, "invalid_request", "use POST")
                    .with_header(http::header::ALLOW, "POST")
                    .with_cors()
            }
            "/authorize" | "/login" => Reply::error(405, "invalid_request", "use GET")
                .with_header(http::header::ALLOW, "GET"),
            _ => Reply::error(404, "not_found", "no such endpoint"),
        }
    }
}

fn preflight() -> Reply {
    Reply {
        status: 204,
        headers: vec![
            (http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".into()),
            (
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, OPTIONS".into(),
            ),
            (
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, Accept, MCP-Protocol-Version".into(),
            ),
            (http::header::ACCESS_CONTROL_MAX_AGE, "86400".into()),
        ],
        body: bytes::Bytes::new(),
    }
}
