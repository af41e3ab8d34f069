//! Upstream credentials set by ops (`[upstream.credential]`): a static secret from the
//! environment in a header (API key, bearer, basic), or an OAuth 2 client-credentials token
//! fetched from the upstream's token endpoint, cached and refreshed before it expires, one
//! fetch at a time per credential however many requests wait for it. The client's own value
//! of that header never reaches the upstream, and no MCP client ever sees the credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use crate::config::{ClientCredentials, UpstreamCredential};
use crate::metrics::metrics;

/// Without `expires_in`, a token is taken to live this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is refreshed once this share of its lifetime has passed (or a minute before it
/// ends, whichever comes first).
const REFRESH_AT: f64 = 0.8;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token endpoint refused: {0}")]
    Refused(String),
}

struct Token {
    value: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// One client-credentials credential: its current token, and the lock that makes its
/// refreshes single-flight.
#[derive(Default)]
struct Entry {
    current: ArcSwapOption<Token>,
    refresh: tokio::sync::Mutex<()>,
}

/// Every client-credentials token the gateway holds, by upstream and settings (a reload that
/// changes them starts afresh).
pub struct Credentials {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    http: reqwest::Client,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            entries: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
        }
    }
}

impl Credentials {
    /// The header value to send for `credential` of `upstream`.
    pub async fn value(
        &self,
        upstream: &str,
        credential: &UpstreamCredential,
    ) -> Result<HeaderValue, CredentialError> {
        match credential {
            UpstreamCredential::Header { value, .. } => Ok(value.clone()),
            UpstreamCredential::ClientCredentials(cc) => self.bearer(upstream, cc).await,
        }
    }

    fn entry(&self, upstream: &str, cc: &ClientCredentials) -> Arc<Entry> {
        let key = format!("{upstream}\n{}\n{}", cc.token_url, cc.client_id);
        self.entries
            .lock()
            .expect("credentials")
            .entry(key)
            .or_default()
            .clone()
    }

    async fn bearer(
        &self,
        upstream: &str,
        cc: &ClientCredentials,
    ) -> Result<HeaderValue, CredentialError> {
        let entry = self.entry(upstream, cc);
        let fresh = |e: &Entry| {
            e.current
                .load_full()
                .filter(|t| Instant::now() < t.refresh_at)
                .map(|t| t.value.clone())
        };
        if let Some(v) = fresh(&entry) {
            return Ok(v);
        }
        // One fetch at a time: whoever waited here finds the token the first one fetched.
        let _flight = entry.refresh.lock().await;
        if let Some(v) = fresh(&entry) {
            return Ok(v);
        }
        match self.fetch(cc).await {
            Ok(token) => {
                metrics()
                    .credential_fetches
                    .with_label_values(&[upstream, "ok"])
                    .inc();
                let value = token.value.clone();
                entry.current.store(Some(Arc::new(token)));
                Ok(value)
            }
            Err(e) => {
                metrics()
                    .credential_fetches
                    .with_label_values(&[upstream, "failed"])
                    .inc();
                // A token still valid keeps being used while the endpoint is down.
                match entry.current.load_full() {
                    Some(t) if Instant::now() < t.expires_at => {
                        tracing::warn!(upstream, error = %e, "upstream credential refresh failed; the current token is still valid");
                        Ok(t.value.clone())
                    }
                    _ => Err(e),
                }
            }
        }
    }

    async fn fetch(&self, cc: &ClientCredentials) -> Result<Token, CredentialError> {
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if !cc.scopes.is_empty() {
            form.push(("scope", cc.scopes.join(" ")));
        }
        if let Some(r) = &cc.resource {
            form.push(("resource", r.clone()));
        }
        let started = Instant::now();
        let r = self
            .http
            .post(&cc.token_url)
            .basic_auth(&cc.client_id, Some(cc.client_secret.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| CredentialError::Unreachable(e.to_string()))?;
        let status = r.status();
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| CredentialError::Refused(format!("{status}: not JSON: {e}")))?;
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("no error code");
            return Err(CredentialError::Refused(format!("{status}: {error}")));
        }
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| CredentialError::Refused("no access_token in the answer".into()))?;
        let kind = body["token_type"].as_str().unwrap_or("Bearer");
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(CredentialError::Refused(format!(
                "token_type {kind}: only Bearer tokens can be sent"
            )));
        }
        let lifetime = body["expires_in"]
            .as_u64()
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            CredentialError::Refused("the access token is not a header value".into())
        })?;
        let early = lifetime.mul_f64(REFRESH_AT).min(
            lifetime
                .saturating_sub(Duration::from_secs(60))
                .max(lifetime / 2),
        );
        Ok(Token {
            value,
            refresh_at: started + early,
            expires_at: started + lifetime,
        })
    }
}
