//! Upstream OAuth discovered automatically (`kind = "upstream_oauth"`): the upstream is itself
//! a protected MCP server, so where its people connect is found from the upstream, as an MCP
//! client finds it. authgate probes the upstream (a 401 with `resource_metadata`, else the
//! RFC 9728 well-known URLs), reads its protected resource metadata, then its authorization
//! server's metadata (RFC 8414, else OpenID discovery), refuses one without PKCE S256, and
//! registers itself there: a client ID metadata document (its own URL, when the server
//! supports them and authgate is on https), else dynamic client registration (RFC 7591).
//! The registration is kept sealed in the store, so a restart does not register again (a
//! changed upstream URL or configured scopes discover again); each person then connects as
//! with `user_account`, for the upstream's resource (RFC 8707).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connect::Account;
use super::Authority;
use crate::config::{ClientCredentials, Config, Upstream};
use crate::store::Store;
use crate::vocab::Secret;

pub const SEALED_REGISTRATION: &str = "upstream-oauth-registration";
/// Secret names of registrations start with this.
pub const SECRET_PREFIX: &str = "upstream_oauth:";

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{0} could not be reached: {1}")]
    Unreachable(String, String),
    #[error("the upstream does not say where its authorization server is: {0}")]
    NotProtected(String),
    #[error("unusable metadata at {0}: {1}")]
    Metadata(String, String),
    #[error("the authorization server {0} offers no way to register authgate (neither client ID metadata documents on https nor dynamic client registration): use kind = \"user_account\" with a client registered there")]
    NoRegistration(String),
    #[error("registering at {0} failed: {1}")]
    Registration(String, String),
    #[error("the stored registration cannot be kept: {0}")]
    Stored(String),
}

/// authgate's registration at an upstream's authorization server, as stored (sealed).
#[derive(Clone, Serialize, Deserialize)]
struct Registered {
    /// The upstream URL it was discovered for: a config pointing elsewhere discovers again.
    upstream_url: String,
    issuer: String,
    authorize_url: String,
    token_url: String,
    client_id: String,
    /// `None` for a public client (a client ID metadata document, or DCR without a secret).
    client_secret: Option<String>,
    resource: String,
    scopes: Vec<String>,
    /// The configured `scopes` it was discovered with: a change discovers again.
    #[serde(default)]
    configured_scopes: Vec<String>,
}

impl Registered {
    fn account(&self) -> Account {
        Account {
            authorize_url: self.authorize_url.clone(),
            grant: ClientCredentials {
                token_url: self.token_url.clone(),
                client_id: self.client_id.clone(),
                client_secret: Secret::new(self.client_secret.clone().unwrap_or_default()),
                scopes: self.scopes.clone(),
                resource: Some(self.resource.clone()),
            },
        }
    }
}

/// What has been discovered, by upstream; one discovery at a time.
pub struct Discovery {
    found: Mutex<HashMap<String, Arc<Account>>>,
    flight: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            found: Mutex::default(),
            flight: tokio::sync::Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
        }
    }
}

/// The URL requests to `upstream` go to (its root path).
pub fn upstream_url(u: &Upstream) -> String {
    let scheme = if u.url.tls { "https" } else { "http" };
    format!("{scheme}://{}{}", u.url.authority, u.url.rewrite(""))
}

fn secret_name(upstream: &str) -> String {
    format!("{SECRET_PREFIX}{upstream}")
}

impl Discovery {
    /// Where `upstream`'s people connect, discovered once (then from memory, or from the
    /// store after a restart).
    pub async fn account(
        &self,
        auth: &Authority,
        config: &Config,
        upstream: &Upstream,
        extra_scopes: &[String],
    ) -> Result<Arc<Account>, DiscoveryError> {
        let name = upstream.name.as_str();
        let url = upstream_url(upstream);
        let cached = |d: &Self| d.found.lock().expect("discovery").get(name).cloned();
        if let Some(a) = cached(self) {
            return Ok(a);
        }
        let _flight = self.flight.lock().await;
        if let Some(a) = cached(self) {
            return Ok(a);
        }
        let registered = match self.stored(auth, name).await? {
            Some(r) if r.upstream_url == url && r.configured_scopes == extra_scopes => r,
            _ => {
                let r = self.discover(config, &url, extra_scopes).await?;
                let sealed = auth.sealer.seal_json(SEALED_REGISTRATION, &r);
                auth.store
                    .put_secret(&secret_name(name), sealed.into_bytes())
                    .await
                    .map_err(|e| DiscoveryError::Stored(e.to_string()))?;
                tracing::info!(upstream = name, issuer = %r.issuer, client_id = %r.client_id, "registered at the upstream's authorization server");
                r
            }
        };
        let account = Arc::new(registered.account());
        self.found
            .lock()
            .expect("discovery")
            .insert(name.to_string(), account.clone());
        Ok(account)
    }

    /// Forgets `upstream`'s registration as `client_id` (memory and store): the next
    /// connection discovers and registers again. A registration made since (by a request
    /// that raced this one) is kept.
    pub async fn forget(
        &self,
        auth: &Authority,
        upstream: &Upstream,
        client_id: &str,
    ) -> Result<(), DiscoveryError> {
        let name = upstream.name.as_str();
        let _flight = self.flight.lock().await;
        let cached = self.found.lock().expect("discovery").get(name).cloned();
        let current = match cached {
            Some(a) => Some(a.grant.client_id.clone()),
            None => self.stored(auth, name).await?.map(|r| r.client_id),
        };
        if current.as_deref() != Some(client_id) {
            return Ok(());
        }
        self.found.lock().expect("discovery").remove(name);
        auth.store
            .put_secret(&secret_name(name), Vec::new())
            .await
            .map_err(|e| DiscoveryError::Stored(e.to_string()))
    }

    async fn stored(
        &self,
        auth: &Authority,
        upstream: &str,
    ) -> Result<Option<Registered>, DiscoveryError> {
        let raw = auth
            .store
            .get_secret(&secret_name(upstream))
            .await
            .map_err(|e| DiscoveryError::Stored(e.to_string()))?;
        Ok(raw
            .filter(|r| !r.is_empty())
            .and_then(|r| String::from_utf8(r).ok())
            .and_then(|s| auth.sealer.open_json(SEALED_REGISTRATION, &s)))
    }

    async fn discover(
        &self,
        config: &Config,
        upstream_url: &str,
        extra_scopes: &[String],
    ) -> Result<Registered, DiscoveryError> {
        let (prm, challenge_scope) = self.protected_resource(upstream_url).await?;
        let issuer = prm["authorization_servers"][0]
            .as_str()
            .ok_or_else(|| DiscoveryError::NotProtected("no authorization_servers".into()))?
            .to_string();
        // What the upstream names is fetched from here: https, or a loopback host, only.
        if !usable_endpoint(&issuer) {
            return Err(DiscoveryError::Metadata(
                upstream_url.into(),
                format!(
                    "its authorization server {issuer} is neither https nor on a loopback host"
                ),
            ));
        }
        let resource = prm["resource"].as_str().unwrap_or(upstream_url).to_string();
        if origin(&resource) != origin(upstream_url) {
            return Err(DiscoveryError::Metadata(
                upstream_url.into(),
                format!("its metadata names another resource, {resource}"),
            ));
        }
        let meta = self.server_metadata(&issuer).await?;
        let endpoint = |key: &str| -> Result<String, DiscoveryError> {
            meta[key]
                .as_str()
                .filter(|u| usable_endpoint(u))
                .map(str::to_string)
                .ok_or_else(|| DiscoveryError::Metadata(issuer.clone(), format!("no usable {key}")))
        };
        let (authorize_url, token_url) = (
            endpoint("authorization_endpoint")?,
            endpoint("token_endpoint")?,
        );
        let s256 = meta["code_challenge_methods_supported"]
            .as_array()
            .is_some_and(|m| m.iter().any(|v| v == "S256"));
        if !s256 {
            return Err(DiscoveryError::Metadata(
                issuer,
                "it does not support PKCE S256 (MCP requires it)".into(),
            ));
        }
        let mut scopes: Vec<String> = match challenge_scope {
            Some(s) => s.split_whitespace().map(str::to_string).collect(),
            None => strings(&prm["scopes_supported"]),
        };
        scopes.extend(extra_scopes.iter().cloned());
        if strings(&meta["scopes_supported"])
            .iter()
            .any(|s| s == "offline_access")
        {
            scopes.push("offline_access".into());
        }
        let mut seen = std::collections::HashSet::new();
        scopes.retain(|s| seen.insert(s.clone()));
        let redirect_uri = super::connect::redirect_uri(config);
        let cimd = meta["client_id_metadata_document_supported"] == Value::Bool(true)
            && config.server.public_url.scheme() == "https";
        let (client_id, client_secret) = if cimd {
            (client_metadata_url(config), None)
        } else if let Some(registration) = meta["registration_endpoint"].as_str() {
            self.register(config, registration, &redirect_uri).await?
        } else {
            return Err(DiscoveryError::NoRegistration(issuer));
        };
        Ok(Registered {
            upstream_url: upstream_url.to_string(),
            issuer,
            authorize_url,
            token_url,
            client_id,
            client_secret,
            resource,
            scopes,
            configured_scopes: extra_scopes.to_vec(),
        })
    }

    /// The upstream's protected resource metadata, and the scope its challenge names.
    async fn protected_resource(
        &self,
        upstream_url: &str,
    ) -> Result<(Value, Option<String>), DiscoveryError> {
        // An MCP client's first request, without a token: a protected server answers 401.
        let probe = self
            .http
            .post(upstream_url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .map_err(|e| DiscoveryError::Unreachable(upstream_url.into(), e.to_string()))?;
        let challenge = probe
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let named = challenge_param(&challenge, "resource_metadata")
            .filter(|u| usable_endpoint(u) || origin(u) == origin(upstream_url));
        let mut candidates: Vec<String> = named.into_iter().collect();
        if let Ok(u) = url::Url::parse(upstream_url) {
            let root = format!(
                "{}/.well-known/oauth-protected-resource",
                origin(upstream_url)
            );
            let path = u.path().trim_end_matches('/');
            if !path.is_empty() {
                candidates.push(format!("{root}{path}"));
            }
            candidates.push(root);
        }
        for candidate in candidates {
            if let Some(prm) = self.json(&candidate).await {
                return Ok((prm, challenge_param(&challenge, "scope")));
            }
        }
        Err(DiscoveryError::NotProtected(format!(
            "{upstream_url} answered {} without usable protected resource metadata",
            probe.status()
        )))
    }

    /// RFC 8414 metadata, else OpenID discovery, with the issuer it claims checked.
    async fn server_metadata(&self, issuer: &str) -> Result<Value, DiscoveryError> {
        let parsed = url::Url::parse(issuer)
            .map_err(|e| DiscoveryError::Metadata(issuer.into(), e.to_string()))?;
        let base = origin(issuer);
        let path = parsed.path().trim_end_matches('/');
        let candidates = [
            format!("{base}/.well-known/oauth-authorization-server{path}"),
            format!("{base}/.well-known/openid-configuration{path}"),
            format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
        ];
        for candidate in candidates {
            if let Some(meta) = self.json(&candidate).await {
                if meta["issuer"].as_str().map(|i| i.trim_end_matches('/'))
                    == Some(issuer.trim_end_matches('/'))
                {
                    return Ok(meta);
                }
            }
        }
        Err(DiscoveryError::Metadata(
            issuer.into(),
            "no authorization server metadata for this issuer".into(),
        ))
    }

    /// Dynamic client registration (RFC 7591) as a confidential client when the server
    /// gives a secret.
    async fn register(
        &self,
        config: &Config,
        endpoint: &str,
        redirect_uri: &str,
    ) -> Result<(String, Option<String>), DiscoveryError> {
        let body = serde_json::json!({
            "client_name": format!("authgate ({})", config.server.public_url.as_str()),
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        let r = self
            .http
            .post(endpoint)
            .json(&body)
            .send()
            .await
            .map_err(|e| DiscoveryError::Unreachable(endpoint.into(), e.to_string()))?;
        let status = r.status();
        let answer: Value = r.json().await.unwrap_or_default();
        let Some(client_id) = answer["client_id"].as_str().filter(|_| status.is_success()) else {
            let error = answer["error"].as_str().unwrap_or("no client_id");
            return Err(DiscoveryError::Registration(
                endpoint.into(),
                format!("{status}: {error}"),
            ));
        };
        let secret = answer["client_secret"].as_str().map(str::to_string);
        Ok((client_id.to_string(), secret))
    }

    async fn json(&self, url: &str) -> Option<Value> {
        let r = self.http.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok().filter(Value::is_object)
    }
}

/// authgate's own client ID metadata document, for authorization servers that take them.
pub fn client_metadata_url(config: &Config) -> String {
    config
        .server
        .public_url
        .join(crate::vocab::paths::CLIENT_METADATA)
}

/// The document at [`client_metadata_url`]: a public client (PKCE) whose redirect is the
/// connect callback.
pub fn client_metadata(config: &Config) -> Value {
    serde_json::json!({
        "client_id": client_metadata_url(config),
        "client_name": "authgate",
        "client_uri": config.server.public_url.as_str(),
        "redirect_uris": [super::connect::redirect_uri(config)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// A parameter of a `WWW-Authenticate: Bearer …` challenge (quoted or not).
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[at..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_string())
}

fn origin(u: &str) -> String {
    url::Url::parse(u)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// https, or http on a loopback host (as for configured endpoints).
fn usable_endpoint(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|p| {
        p.scheme() == "https" || p.host().is_some_and(|h| crate::vocab::is_loopback_host(&h))
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_challenge_parameters() {
        let c = r#"Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="files:read files:write""#;
        assert_eq!(
            challenge_param(c, "resource_metadata").as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            challenge_param(c, "scope").as_deref(),
            Some("files:read files:write")
        );
        assert_eq!(
            challenge_param("Bearer realm=x, scope=a", "scope").as_deref(),
            Some("a")
        );
        assert_eq!(challenge_param("Bearer", "scope"), None);
    }

    #[test]
    fn endpoints_must_be_https_or_loopback() {
        assert!(usable_endpoint("https://as.example/token"));
        assert!(usable_endpoint("http://127.0.0.1:9/token"));
        assert!(!usable_endpoint("http://as.example/token"));
        assert!(!usable_endpoint("javascript:alert(1)"));
    }
}
