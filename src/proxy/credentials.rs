//! Upstream credentials set by ops (`[upstream.credential]`): a static secret from the
//! environment in a header (API key, bearer, basic); an OAuth 2 client-credentials token; or
//! a service account an administrator connected once in the browser (`authgate admin
//! connect`), whose refresh token is kept sealed (AES-256-GCM under the gateway's key) in the
//! store. Tokens are cached and refreshed before they expire, one fetch at a time per
//! credential however many requests wait for it. The client's own value of that header never
//! reaches the upstream, and no MCP client ever sees the credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use serde::{Deserialize, Serialize};

use crate::config::{ClientCredentials, Config, UpstreamCredential};
use crate::crypto::{random_secret, sha256_b64url};
use crate::metrics::metrics;
use crate::oauth::Authority;
use crate::store::Store;
use crate::web::Reply;

/// Without `expires_in`, a token is taken to live this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is refreshed once this share of its lifetime has passed (or a minute before it
/// ends, whichever comes first).
const REFRESH_AT: f64 = 0.8;

/// How long an administrator has to finish connecting an account.
const CONNECT_WAIT: Duration = Duration::from_secs(600);
const SEAL_PURPOSE: &str = "connected-account";

/// A connected service account as stored (sealed): what refreshes its access tokens.
#[derive(Clone, Serialize, Deserialize)]
struct Connection {
    refresh_token: String,
    connected_as: String,
    connected_at: u64,
}

fn secret_name(upstream: &str) -> String {
    format!("connected_account:{upstream}")
}

/// What `authgate admin connections` shows for one upstream.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    pub upstream: String,
    pub connected_as: Option<String>,
    pub connected_at: Option<u64>,
}

/// A connection started by an administrator, waiting for the browser to come back.
struct Pending {
    upstream: String,
    verifier: String,
    expires: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token endpoint refused: {0}")]
    Refused(String),
    #[error("the upstream's account is not connected: run `authgate admin connect {0}`")]
    NotConnected(String),
    #[error("the connected account cannot be read: {0}")]
    Stored(String),
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
    pending: Mutex<HashMap<String, Pending>>,
    http: reqwest::Client,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            entries: Mutex::default(),
            pending: Mutex::default(),
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
        auth: &Authority,
        upstream: &str,
        credential: &UpstreamCredential,
    ) -> Result<HeaderValue, CredentialError> {
        match credential {
            UpstreamCredential::Header { value, .. } => Ok(value.clone()),
            UpstreamCredential::ClientCredentials(cc) => {
                self.bearer(upstream, cc, self.fetch(cc, &[])).await
            }
            UpstreamCredential::ConnectedAccount { grant, .. } => {
                self.bearer(
                    upstream,
                    grant,
                    self.refresh_connected(auth, upstream, grant),
                )
                .await
            }
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

    /// The cached token, or one from `fetch` (awaited by one request at a time).
    async fn bearer(
        &self,
        upstream: &str,
        cc: &ClientCredentials,
        fetch: impl std::future::Future<Output = Result<Token, CredentialError>>,
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
        match fetch.await {
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

    /// A token from `cc`'s token endpoint: the client-credentials grant, or the grant given
    /// in `grant` (form fields) instead.
    async fn fetch(
        &self,
        cc: &ClientCredentials,
        grant: &[(&'static str, String)],
    ) -> Result<Token, CredentialError> {
        self.token_request(cc, grant).await.map(|(t, _)| t)
    }

    /// Posts to the token endpoint; the token and the whole answer.
    async fn token_request(
        &self,
        cc: &ClientCredentials,
        grant: &[(&'static str, String)],
    ) -> Result<(Token, serde_json::Value), CredentialError> {
        let mut form: Vec<(&str, String)> = match grant.is_empty() {
            true => {
                let mut f = vec![("grant_type", "client_credentials".to_string())];
                if !cc.scopes.is_empty() {
                    f.push(("scope", cc.scopes.join(" ")));
                }
                f
            }
            false => grant.to_vec(),
        };
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
        let token = Token {
            value,
            refresh_at: started + early,
            expires_at: started + lifetime,
        };
        Ok((token, body))
    }

    /// A fresh access token for a connected account, from its stored refresh token; a
    /// rotated refresh token is stored at once (sealed).
    async fn refresh_connected(
        &self,
        auth: &Authority,
        upstream: &str,
        grant: &ClientCredentials,
    ) -> Result<Token, CredentialError> {
        let conn = load_connection(auth, upstream)
            .await?
            .ok_or_else(|| CredentialError::NotConnected(upstream.to_string()))?;
        let form = [
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", conn.refresh_token.clone()),
        ];
        let (token, body) = self.token_request(grant, &form).await?;
        if let Some(rotated) = body["refresh_token"].as_str() {
            if rotated != conn.refresh_token {
                let next = Connection {
                    refresh_token: rotated.to_string(),
                    ..conn
                };
                store_connection(auth, upstream, Some(&next)).await?;
            }
        }
        Ok(token)
    }

    /// Starts connecting `upstream`'s service account: the URL an administrator opens.
    pub fn start_connect(&self, config: &Config, upstream: &str) -> Result<String, String> {
        let Some(UpstreamCredential::ConnectedAccount {
            authorize_url,
            grant,
        }) = config
            .upstream(upstream)
            .and_then(|u| u.credential.as_ref())
        else {
            return Err(format!(
                "upstream `{upstream}` has no [upstream.credential] with kind = \"connected_account\""
            ));
        };
        let state = random_secret("");
        let verifier = random_secret("");
        let mut pending = self.pending.lock().expect("pending connections");
        pending.retain(|_, p| p.expires > Instant::now());
        pending.insert(
            state.clone(),
            Pending {
                upstream: upstream.to_string(),
                verifier: verifier.clone(),
                expires: Instant::now() + CONNECT_WAIT,
            },
        );
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &grant.client_id)
            .append_pair("redirect_uri", &redirect_uri(config))
            .append_pair("state", &state)
            .append_pair("code_challenge", &sha256_b64url(verifier.as_bytes()))
            .append_pair("code_challenge_method", "S256");
        if !grant.scopes.is_empty() {
            q.append_pair("scope", &grant.scopes.join(" "));
        }
        if let Some(r) = &grant.resource {
            q.append_pair("resource", r);
        }
        let sep = if authorize_url.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{authorize_url}{sep}{}", q.finish()))
    }

    /// The browser back at `/connect/callback`: the code exchanged, the refresh token stored
    /// sealed, a page saying who is connected.
    pub async fn finish_connect(&self, auth: &Authority, config: &Config, query: &str) -> Reply {
        use crate::web::pages;
        let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let pending = params
            .get("state")
            .and_then(|s| self.pending.lock().expect("pending connections").remove(s))
            .filter(|p| p.expires > Instant::now());
        let Some(pending) = pending else {
            return pages::error_with(400, "Connection expired", "This connection was not started here, was already finished, or took longer than ten minutes.", "Run `authgate admin connect` again.");
        };
        if let Some(e) = params.get("error") {
            return pages::error_with(
                400,
                "Connection refused",
                &format!("The service refused the connection ({e})."),
                "Run `authgate admin connect` again.",
            );
        }
        let Some(UpstreamCredential::ConnectedAccount { grant, .. }) = config
            .upstream(&pending.upstream)
            .and_then(|u| u.credential.as_ref())
        else {
            return pages::error(
                400,
                "Not connectable",
                "This upstream no longer has a connected account in the config.",
            );
        };
        let form = [
            ("grant_type", "authorization_code".to_string()),
            ("code", params.get("code").cloned().unwrap_or_default()),
            ("redirect_uri", redirect_uri(config)),
            ("code_verifier", pending.verifier.clone()),
        ];
        let (token, body) = match self.token_request(grant, &form).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(upstream = %pending.upstream, error = %e, "connecting the upstream's account failed");
                return pages::error_with(
                    502,
                    "Connection failed",
                    "The service did not exchange the authorization code.",
                    "See authgate's log, then run `authgate admin connect` again.",
                );
            }
        };
        let Some(refresh) = body["refresh_token"].as_str() else {
            return pages::error_with(502, "No refresh token", "The service issued no refresh token, so authgate could not keep the connection.", "Ask the service for offline access (often the scope offline_access), then connect again.");
        };
        let connection = Connection {
            refresh_token: refresh.to_string(),
            connected_as: who(&body),
            connected_at: crate::vocab::unix_now(),
        };
        if let Err(e) = store_connection(auth, &pending.upstream, Some(&connection)).await {
            tracing::error!(error = %e, "storing the connected account failed");
            return pages::error(
                503,
                "Not stored",
                "The connection could not be stored; try again.",
            );
        }
        self.entry(&pending.upstream, grant)
            .current
            .store(Some(Arc::new(token)));
        crate::audit::success("account_connected")
            .upstream(&pending.upstream)
            .reason(format_args!("connected as {}", connection.connected_as))
            .emit();
        pages::error_with(
            200,
            "Connected",
            &format!(
                "{} now uses the account {}.",
                pending.upstream, connection.connected_as
            ),
            "You can close this window.",
        )
    }

    /// Every upstream with a connected account, and who it is connected as.
    pub async fn connections(
        &self,
        auth: &Authority,
        config: &Config,
    ) -> Result<Vec<ConnectionView>, CredentialError> {
        let mut out = Vec::new();
        for u in &config.upstreams {
            if let Some(UpstreamCredential::ConnectedAccount { .. }) = &u.credential {
                let conn = load_connection(auth, u.name.as_str()).await?;
                out.push(ConnectionView {
                    upstream: u.name.to_string(),
                    connected_as: conn.as_ref().map(|c| c.connected_as.clone()),
                    connected_at: conn.map(|c| c.connected_at),
                });
            }
        }
        Ok(out)
    }

    /// Forgets `upstream`'s connected account; requests get 502 until it is connected again.
    pub async fn disconnect(
        &self,
        auth: &Authority,
        config: &Config,
        upstream: &str,
    ) -> Result<(), CredentialError> {
        store_connection(auth, upstream, None).await?;
        if let Some(UpstreamCredential::ConnectedAccount { grant, .. }) = config
            .upstream(upstream)
            .and_then(|u| u.credential.as_ref())
        {
            self.entry(upstream, grant).current.store(None);
        }
        Ok(())
    }
}

fn redirect_uri(config: &Config) -> String {
    config
        .server
        .public_url
        .join(crate::vocab::paths::CONNECT_CALLBACK)
}

/// Who the service says the account is: the ID token's email, name or subject (shown to
/// administrators only; the token came straight from the service's token endpoint).
fn who(answer: &serde_json::Value) -> String {
    use base64::Engine;
    let claims: serde_json::Value = answer["id_token"]
        .as_str()
        .and_then(|jwt| jwt.split('.').nth(1))
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    ["email", "preferred_username", "sub"]
        .iter()
        .find_map(|k| claims[*k].as_str().map(str::to_string))
        .unwrap_or_else(|| "an account the service did not name".into())
}

async fn load_connection(
    auth: &Authority,
    upstream: &str,
) -> Result<Option<Connection>, CredentialError> {
    let raw = auth
        .store
        .get_secret(&secret_name(upstream))
        .await
        .map_err(|e| CredentialError::Stored(e.to_string()))?;
    match raw.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(sealed) => {
            let sealed = String::from_utf8(sealed)
                .map_err(|_| CredentialError::Stored("not sealed text".into()))?;
            auth.sealer
                .open_json::<Connection>(SEAL_PURPOSE, &sealed)
                .map(Some)
                .ok_or_else(|| {
                    CredentialError::Stored(
                        "it does not open with this gateway's key (was auth.session_key changed?)"
                            .into(),
                    )
                })
        }
    }
}

async fn store_connection(
    auth: &Authority,
    upstream: &str,
    conn: Option<&Connection>,
) -> Result<(), CredentialError> {
    let value = conn
        .map(|c| auth.sealer.seal_json(SEAL_PURPOSE, c).into_bytes())
        .unwrap_or_default();
    auth.store
        .put_secret(&secret_name(upstream), value)
        .await
        .map_err(|e| CredentialError::Stored(e.to_string()))
}
