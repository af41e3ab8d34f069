//! The OAuth 2.1 authorization server for MCP clients, answered by the gateway itself:
//! discovery, registration, authorization (sign-in and consent), tokens, revocation and
//! introspection. Each endpoint module turns a typed request into an outcome with `now` as
//! an argument, so its rules are unit-tested without a server; [`Authority::handle`] is the
//! one place requests come in and replies go out.
//!
//! - `authorize`: the authorization request, validated into a pending [`flow::Flow`].
//! - `signin`: the provider chooser, the local login form, upstream provider callbacks.
//! - `consent`: the consent (or "continue?") page and the decision.
//! - `flow`: where a flow goes next, and minting its single code.
//! - `token`, `revoke`: the token endpoint; revocation and introspection.
//! - `register`, `cimd`, `client_auth`: who clients are.

pub mod api_keys;
pub mod authorize;
pub mod cimd;
pub mod client_auth;
pub mod connect;
pub mod consent;
pub mod discover;
pub mod error;
pub mod flow;
pub mod metadata;
pub mod pkce;
pub mod register;
pub mod revoke;
pub mod signin;
pub mod token;

use std::sync::Arc;

use http::Method;

use crate::config::Config;
use crate::crypto::Sealer;
use crate::login::forms::FormTokens;
use crate::login::Logins;
use crate::store::{Cached, Store};
use crate::vocab::paths::Endpoint;
use crate::vocab::{ClientId, ErrorCode, RedirectUri, ScopeSet, SecretHash, UpstreamName};
use crate::web::{Reply, Request};
pub use error::OAuthError;

/// The long-lived parts of the authorization server; the config comes per request.
pub struct Authority {
    pub store: Arc<Cached>,
    pub sealer: Sealer,
    pub forms: FormTokens,
    pub logins: Logins,
    pub cimd: cimd::DocumentCache,
    pub registrations: register::RateLimiter,
    /// How far clients got, for `authgate diagnose`.
    pub diagnostics: crate::diagnose::Diagnostics,
    /// Tags access and refresh tokens, so forged ones are refused without a store read.
    pub tokens: crate::crypto::tokens::TokenTags,
    /// Since when tokens are tagged: untagged access tokens are accepted (looked up) only
    /// while one issued before could still be valid.
    pub tagged_since: u64,
    /// The live API keys.
    pub api_keys: api_keys::ApiKeys,
    /// Signs the identity assertions upstreams may ask for; its keys are the JWKS.
    pub signer: crate::crypto::signing::IdentitySigner,
    /// Where the people of `upstream_oauth` upstreams connect, found from the upstreams.
    pub discovery: discover::Discovery,
}

impl Authority {
    /// Whether an untagged ("legacy") access token may still be looked up at `now`.
    pub fn legacy_access_allowed(&self, config: &Config, now: u64) -> bool {
        now < self.tagged_since + config.auth.access_token_ttl.as_secs()
    }
}

/// A client as the authorization server sees it: pre-registered, dynamically registered or
/// described by a metadata document.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: ClientId,
    pub name: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub secret: Option<SecretHash>,
    pub allowed_scopes: Option<ScopeSet>,
    pub allowed_upstreams: Option<Vec<UpstreamName>>,
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
    pub fn identity_assured(&self, redirect_uri: &RedirectUri) -> bool {
        self.secret.is_some()
            || self
                .document_host
                .as_deref()
                .is_some_and(|host| redirect_uri.is_https_on(host))
    }
}

impl Authority {
    /// The client `client_id` names: from the config, a metadata document, or the store.
    pub async fn client(
        &self,
        config: &Config,
        client_id: &ClientId,
    ) -> Result<Option<ClientInfo>, OAuthError> {
        if let Some(c) = config.client(client_id.as_str()) {
            return Ok(Some(ClientInfo {
                client_id: c.client_id.clone(),
                name: c.name.clone(),
                redirect_uris: c.redirect_uris.clone(),
                secret: c.secret,
                allowed_scopes: c.scopes.clone(),
                allowed_upstreams: c.upstreams.clone(),
                trusted: c.trusted,
                refresh_allowed: true,
                document_host: None,
            }));
        }
        if cimd::is_document_url(client_id.as_str()) {
            return match self
                .cimd
                .client(
                    client_id,
                    &config.cimd,
                    config.auth.allow_custom_scheme_redirects,
                )
                .await
            {
                Ok(info) => {
                    crate::metrics::metrics()
                        .registrations
                        .with_label_values(&["cimd", "ok"])
                        .inc();
                    Ok(Some(info))
                }
                Err(e) => {
                    crate::metrics::metrics()
                        .registrations
                        .with_label_values(&["cimd", "refused"])
                        .inc();
                    crate::audit::refused("cimd_refused")
                        .client(client_id)
                        .reason(&e)
                        .emit();
                    Err(OAuthError::invalid_client(e.to_string()))
                }
            };
        }
        let Some(rec) = self.store.get_client(client_id).await? else {
            return Ok(None);
        };
        Ok(Some(ClientInfo {
            name: rec
                .client_name
                .clone()
                .unwrap_or_else(|| rec.client_id.to_string()),
            refresh_allowed: rec.refreshes(),
            client_id: rec.client_id,
            redirect_uris: rec.redirect_uris,
            secret: rec.secret_sha256,
            allowed_scopes: None,
            allowed_upstreams: None,
            trusted: false,
            document_host: None,
        }))
    }

    /// Answers a request for one of the gateway's OAuth endpoints.
    pub async fn handle(
        &self,
        config: &Config,
        endpoint: Endpoint<'_>,
        req: &Request,
        now: u64,
    ) -> Reply {
        use Endpoint::*;
        // Endpoints browser-based clients (MCP Inspector) call with fetch: CORS, any origin.
        let cors = matches!(
            endpoint,
            Token
                | Register
                | Revoke
                | Introspect
                | AuthorizationServerMetadata
                | Jwks
                | ClientMetadata
                | ProtectedResourceMetadata(_)
                | UnknownWellKnown
        );
        if req.method == Method::OPTIONS && cors {
            return preflight();
        }
        let get = req.method == Method::GET || req.method == Method::HEAD;
        let post = req.method == Method::POST;
        let discovery = match endpoint {
            ProtectedResourceMetadata(_) => Some(crate::diagnose::Step::ResourceMetadata),
            AuthorizationServerMetadata => Some(crate::diagnose::Step::ServerMetadata),
            _ => None,
        };
        if let (Some(step), true) = (discovery, get) {
            self.diagnostics.note(req.client_ip, None, step, Ok(()));
        }
        match endpoint {
            AuthorizationServerMetadata if get => {
                Reply::json(200, &metadata::authorization_server(config))
                    .with_header(http::header::CACHE_CONTROL, "public, max-age=300")
                    .with_cors()
            }
            Jwks if get => Reply::json(200, &self.signer.jwks(now)).with_cors(),
            ClientMetadata if get => Reply::json(200, &discover::client_metadata(config))
                .with_header(http::header::CACHE_CONTROL, "public, max-age=300")
                .with_cors(),
            ProtectedResourceMetadata(suffix) if get => {
                match metadata::upstream_for_prm(config, suffix) {
                    Some(u) => Reply::json(200, &metadata::protected_resource(config, u))
                        .with_header(http::header::CACHE_CONTROL, "public, max-age=300")
                        .with_cors(),
                    None => Reply::error(ErrorCode::NotFound, "no protected resource at this path")
                        .with_cors(),
                }
            }
            Register if post => register::handle(self, config, req).await,
            Authorize if get => authorize::handle(self, config, req, now)
                .await
                .render(config),
            Chooser if get => signin::chooser(self, config, req, now).render(config),
            Login(id) if get => signin::start(self, config, req, id, now)
                .await
                .render(config),
            Login(id) if post => signin::local(self, config, req, id, now)
                .await
                .render(config),
            Callback(id) if get => signin::callback(self, config, req, id, now)
                .await
                .render(config),
            Consent if get => consent::page(self, config, req, now).await.render(config),
            Consent if post => consent::decide(self, config, req, now).await.render(config),
            Token if post => token::handle(self, config, req, now).await,
            Revoke if post => revoke::revoke(self, config, req, now).await,
            Introspect if post => revoke::introspect(self, config, req, now).await,
            UnknownWellKnown
            | AuthorizationServerMetadata
            | Jwks
            | ClientMetadata
            | ProtectedResourceMetadata(_)
                if !get =>
            {
                method_not_allowed("GET").with_cors()
            }
            UnknownWellKnown => {
                Reply::error(ErrorCode::NotFound, "unknown metadata document").with_cors()
            }
            Token | Register | Revoke | Introspect => method_not_allowed("POST").with_cors(),
            Authorize | Chooser | Callback(_) => method_not_allowed("GET"),
            Login(_) | Consent => method_not_allowed("GET, POST"),
            _ => Reply::error(ErrorCode::NotFound, "no such endpoint"),
        }
    }
}

fn method_not_allowed(allow: &'static str) -> Reply {
    Reply::error(ErrorCode::InvalidRequest, &format!("use {allow}"))
        .with_status(405)
        .with_header(http::header::ALLOW, allow)
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
        reason: None,
    }
}
