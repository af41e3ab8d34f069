//! Upstream credentials (`[upstream.credential]`): a static secret from the environment in a
//! header (API key, bearer, basic); an OAuth 2 client-credentials token; a service account an
//! administrator connected once in the browser (`authgate admin connect`); or each person's
//! own account at the service, connected during their authorization (see
//! [`crate::oauth::connect`], which keeps the refresh tokens sealed in the store). Tokens are
//! cached and refreshed before they expire, one fetch at a time per credential (and person)
//! however many requests wait for it. The client's own value of that header never reaches
//! the upstream, and no MCP client ever sees the credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use serde::Serialize;

use crate::config::{ClientCredentials, Config, Upstream, UpstreamCredential};
use crate::crypto::random_secret;
use crate::login::session;
use crate::metrics::metrics;
use crate::oauth::connect::{self, Connection, Owner, PersonConnect};
use crate::oauth::flow::{after_sign_in, Answer, ErrorView, Flow, Outcome};
use crate::oauth::{Authority, OAuthError};
use crate::store::AccessRecord;
use crate::web::request::Params;
use crate::web::{Reply, Request};

/// Without `expires_in`, a token is taken to live this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is refreshed once this share of its lifetime has passed (or a minute before it
/// ends, whichever comes first).
const REFRESH_AT: f64 = 0.8;

/// How often a connection's token that does not expire is read again from the store.
const LASTING_RECHECK: Duration = Duration::from_secs(300);

/// How long an administrator has to finish connecting an account.
const CONNECT_WAIT: Duration = Duration::from_secs(600);

/// What `authgate admin connections` shows for one upstream.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    pub upstream: String,
    /// Whose account, for an upstream where each person connects their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
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
    #[error("the person has not connected their account at the upstream's service")]
    PersonNotConnected,
    #[error("the service no longer honours the person's connection: {0}")]
    PersonRevoked(String),
    #[error("the token endpoint refused the refresh token: {0}")]
    InvalidGrant(String),
    #[error("the token endpoint does not know authgate's client: {0}")]
    InvalidClient(String),
    #[error(transparent)]
    Stored(#[from] connect::Unreadable),
    #[error(transparent)]
    Discovery(#[from] crate::oauth::discover::DiscoveryError),
}

impl CredentialError {
    /// The person must connect their account again (through a new authorization): the
    /// client gets a 401 challenge, not a 502.
    pub fn needs_reconnect(&self) -> bool {
        matches!(
            self,
            CredentialError::PersonNotConnected | CredentialError::PersonRevoked(_)
        )
    }
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
    /// The header value to send for `credential` of `upstream`, for the caller `who` (a
    /// person's own account needs to know whose).
    pub async fn value(
        &self,
        auth: &Authority,
        config: &Config,
        route: &Upstream,
        credential: &UpstreamCredential,
        who: Option<&AccessRecord>,
    ) -> Result<HeaderValue, CredentialError> {
        let upstream = route.name.as_str();
        match credential {
            UpstreamCredential::Header { value, .. } => Ok(value.clone()),
            UpstreamCredential::ClientCredentials(cc) => {
                self.bearer(upstream, cc, None, self.fetch(cc, &[])).await
            }
            UpstreamCredential::ConnectedAccount { grant, .. } => {
                let refresh = self.refresh_connected(auth, upstream, grant, Owner::Service);
                self.bearer(upstream, grant, None, refresh).await
            }
            UpstreamCredential::UserAccount { grant, .. } => {
                self.person(auth, upstream, grant, who).await
            }
            UpstreamCredential::UpstreamOAuth { scopes } => {
                let account = auth.discovery.account(auth, config, route, scopes).await?;
                let result = self.person(auth, upstream, &account.grant, who).await;
                if let Err(CredentialError::InvalidClient(why)) = &result {
                    // The upstream's server forgot authgate's registration (and with it
                    // every grant): register again on the next connection, which the
                    // person is sent through.
                    tracing::warn!(upstream, error = %why, "the upstream's authorization server no longer knows authgate's client; it will register again");
                    let client = &account.grant.client_id;
                    auth.discovery.forget(auth, route, client).await?;
                    if let Some(user) = who.map(|r| r.identity.user_id()) {
                        connect::save(auth, upstream, Owner::Person(&user), None).await?;
                    }
                    return Err(CredentialError::PersonRevoked(why.clone()));
                }
                result
            }
        }
    }

    /// The caller's own account's token.
    async fn person(
        &self,
        auth: &Authority,
        upstream: &str,
        grant: &ClientCredentials,
        who: Option<&AccessRecord>,
    ) -> Result<HeaderValue, CredentialError> {
        let user = who
            .map(|r| r.identity.user_id())
            .ok_or(CredentialError::PersonNotConnected)?;
        let refresh = self.refresh_connected(auth, upstream, grant, Owner::Person(&user));
        self.bearer(upstream, grant, Some(&user), refresh).await
    }

    fn entry(&self, upstream: &str, cc: &ClientCredentials, user: Option<&str>) -> Arc<Entry> {
        let key = format!(
            "{upstream}\n{}\n{}\n{}",
            cc.token_url,
            cc.client_id,
            user.unwrap_or("")
        );
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
        user: Option<&str>,
        fetch: impl std::future::Future<Output = Result<Token, CredentialError>>,
    ) -> Result<HeaderValue, CredentialError> {
        let entry = self.entry(upstream, cc, user);
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
                // Refused for good: the token it replaces is not used either.
                if e.needs_reconnect() || matches!(e, CredentialError::InvalidClient(_)) {
                    entry.current.store(None);
                    return Err(e);
                }
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
        let mut request = self
            .http
            .post(&cc.token_url)
            // GitHub answers in form encoding unless asked for JSON.
            .header(http::header::ACCEPT, "application/json");
        // A public client (a client ID metadata document) names itself in the form.
        match cc.client_secret.expose().as_str() {
            "" => form.push(("client_id", cc.client_id.clone())),
            secret => request = request.basic_auth(&cc.client_id, Some(secret)),
        }
        let r = request
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
            let why = body["error_description"]
                .as_str()
                .unwrap_or(error)
                .to_string();
            match error {
                "invalid_grant" => return Err(CredentialError::InvalidGrant(why)),
                "invalid_client" => return Err(CredentialError::InvalidClient(why)),
                _ => {}
            }
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
    /// rotated refresh token is stored at once (sealed). A person's connection the service
    /// no longer honours is forgotten, so their next authorization connects it again.
    async fn refresh_connected(
        &self,
        auth: &Authority,
        upstream: &str,
        grant: &ClientCredentials,
        owner: Owner<'_>,
    ) -> Result<Token, CredentialError> {
        let conn = connect::load(auth, upstream, owner)
            .await?
            .ok_or_else(|| match owner {
                Owner::Service => CredentialError::NotConnected(upstream.to_string()),
                Owner::Person(_) => CredentialError::PersonNotConnected,
            })?;
        if let (true, Some(lasting)) = (conn.refresh_token.is_empty(), &conn.access_token) {
            // A token that does not expire: read again from the store now and then, so a
            // disconnection elsewhere is seen.
            let value = HeaderValue::from_str(&format!("Bearer {lasting}")).map_err(|_| {
                CredentialError::Refused("the stored token is not a header value".into())
            })?;
            let now = Instant::now();
            return Ok(Token {
                value,
                refresh_at: now + LASTING_RECHECK,
                expires_at: now + LASTING_RECHECK,
            });
        }
        let form = [
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", conn.refresh_token.clone()),
        ];
        let (token, body) = match (self.token_request(grant, &form).await, owner) {
            (Ok(answer), _) => answer,
            (Err(CredentialError::InvalidGrant(why)), Owner::Person(user)) => {
                connect::save(auth, upstream, owner, None).await?;
                crate::audit::refused("account_disconnected")
                    .upstream(upstream)
                    .reason(format_args!(
                        "the service refused {user}'s refresh token ({why}); connection forgotten"
                    ))
                    .emit();
                return Err(CredentialError::PersonRevoked(why));
            }
            (Err(e), _) => return Err(e),
        };
        if let Some(rotated) = body["refresh_token"].as_str() {
            if rotated != conn.refresh_token {
                let next = Connection {
                    refresh_token: rotated.to_string(),
                    ..conn
                };
                connect::save(auth, upstream, owner, Some(&next)).await?;
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
        Ok(connect::authorize_url(
            config,
            authorize_url,
            grant,
            &state,
            &verifier,
        ))
    }

    /// The browser back at `/connect/callback`: the code exchanged, the refresh token stored
    /// sealed, a page saying who is connected.
    pub async fn finish_connect(
        &self,
        auth: &Authority,
        config: &Config,
        req: &Request,
        now: u64,
    ) -> Reply {
        let params = req.query_params();
        if let Some(person) = params
            .get("state")
            .and_then(|s| PersonConnect::open(auth, s))
        {
            return self
                .finish_person(auth, config, req, &params, person, now)
                .await;
        }
        self.finish_service(auth, config, &params).await
    }

    /// An administrator's connection of a service account.
    async fn finish_service(&self, auth: &Authority, config: &Config, params: &Params) -> Reply {
        use crate::web::pages;
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
        let now = crate::vocab::unix_now();
        let exchanged = self
            .exchange(
                config,
                grant,
                params,
                &pending.verifier,
                &pending.upstream,
                now,
            )
            .await;
        let (token, connection) = match exchanged {
            Ok(done) => done,
            Err(e) => {
                let advice = "See authgate's log, then run `authgate admin connect` again.";
                return pages::error_with(502, e.title(), e.message(), advice);
            }
        };
        if let Err(e) =
            connect::save(auth, &pending.upstream, Owner::Service, Some(&connection)).await
        {
            tracing::error!(error = %e, "storing the connected account failed");
            return pages::error(
                503,
                "Not stored",
                "The connection could not be stored; try again.",
            );
        }
        self.entry(&pending.upstream, grant, None)
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

    /// The code the service sent back, exchanged (PKCE `verifier`): the first access token,
    /// and the connection to keep.
    async fn exchange(
        &self,
        config: &Config,
        grant: &ClientCredentials,
        params: &Params,
        verifier: &str,
        upstream: &str,
        now: u64,
    ) -> Result<(Token, Connection), ExchangeError> {
        let form = [
            ("grant_type", "authorization_code".to_string()),
            ("code", params.get("code").unwrap_or_default().to_string()),
            ("redirect_uri", connect::redirect_uri(config)),
            ("code_verifier", verifier.to_string()),
        ];
        let (token, body) = self.token_request(grant, &form).await.map_err(|e| {
            tracing::warn!(upstream, error = %e, "exchanging a connection's code failed");
            ExchangeError::Failed
        })?;
        let connection = kept(&body, now).ok_or_else(|| {
            tracing::warn!(upstream, "the service issued an expiring token and no refresh token; ask it for offline access (often the scope offline_access)");
            ExchangeError::NoRefreshToken
        })?;
        Ok((token, connection))
    }

    /// A person back from connecting their own account during an authorization: the code
    /// exchanged, the connection stored sealed, then the authorization goes on (consent, or
    /// straight back to the client) in the same browser session that started it.
    async fn finish_person(
        &self,
        auth: &Authority,
        config: &Config,
        req: &Request,
        params: &Params,
        person: PersonConnect,
        now: u64,
    ) -> Reply {
        let page = |e: ErrorView| Answer::from(e).render(config);
        let Some((flow, sealed)) =
            Flow::open(auth, Some(&person.flow), now).filter(|_| person.expires_at > now)
        else {
            return page(ErrorView::expired());
        };
        let session = session::session(config, &auth.sealer, req, now)
            .filter(|s| s.identity.user_id() == person.user);
        let Some(session) = session else {
            crate::audit::refused("connect_refused")
                .upstream(&person.upstream)
                .reason("the browser finishing a connection is not signed in as the person who started it")
                .remote(req.client_ip)
                .emit();
            return page(ErrorView::form_refused());
        };
        let identity = &session.identity;
        if let Some(e) = params.get("error") {
            crate::audit::refused("account_connect_refused")
                .identity(identity)
                .upstream(&person.upstream)
                .reason(format_args!("the service answered {e}"))
                .emit();
            let why = format!(
                "connecting an account at {}'s service was refused ({e})",
                person.upstream
            );
            return Answer::from(Outcome::client_error(&flow, OAuthError::access_denied(why)))
                .render(config);
        }
        let account = match config.upstream(&person.upstream) {
            Some(u) => connect::account(auth, config, u).await.ok().flatten(),
            None => None,
        };
        let Some(grant) = account.as_ref().map(|a| &a.grant) else {
            return page(ErrorView::new(
                400,
                "Not connectable",
                "This server no longer asks for an account of your own.",
            ));
        };
        let exchanged = self
            .exchange(
                config,
                grant,
                params,
                &person.verifier,
                &person.upstream,
                now,
            )
            .await;
        let (token, connection) = match exchanged {
            Ok(done) => done,
            Err(e) => return page(ErrorView::new(502, e.title(), e.message())),
        };
        let owner = Owner::Person(&person.user);
        if let Err(e) = connect::save(auth, &person.upstream, owner, Some(&connection)).await {
            tracing::error!(error = %e, "storing a person's connected account failed");
            return page(ErrorView::new(
                503,
                "Not stored",
                "The connection could not be stored.",
            ));
        }
        self.entry(&person.upstream, grant, Some(&person.user))
            .current
            .store(Some(Arc::new(token)));
        crate::audit::success("account_connected")
            .identity(identity)
            .upstream(&person.upstream)
            .reason(format_args!("connected as {}", connection.connected_as))
            .emit();
        let credential = session.credential.as_deref();
        let next = after_sign_in(auth, config, (flow, sealed), identity, credential, now).await;
        Answer::from(next).render(config)
    }

    /// `GET`/`POST` [`crate::vocab::paths::CONNECTIONS`]: the signed-in person's own
    /// accounts, one row per upstream that needs one, each with a disconnect button. A
    /// disconnected person's next request gets the 401 that sends their client through the
    /// connection again.
    pub async fn accounts_page(
        &self,
        auth: &Authority,
        config: &Config,
        req: &Request,
        now: u64,
    ) -> Reply {
        use crate::login::forms::{origin_acceptable, Form};
        use crate::web::pages::{self, ConnectionRow, ConnectionsPage};
        let Some(session) = session::session(config, &auth.sealer, req, now) else {
            return pages::error_with(
                401,
                "Not signed in",
                "This page shows the accounts you connected for the servers behind this gateway, once you are signed in here.",
                "Sign in through an application that uses one of these servers, then come back to this page.",
            );
        };
        let identity = &session.identity;
        let user = identity.user_id();
        let binding = format!("accounts\u{1f}{user}");
        let mut done = None;
        if req.method == http::Method::POST {
            let form = req.form();
            let token_ok =
                auth.forms
                    .verify(config, req, &binding, Form::Connections, form.get("csrf"));
            if !token_ok || !origin_acceptable(config, req) {
                return Answer::from(ErrorView::form_refused()).render(config);
            }
            let chosen = match form.get("upstream").and_then(|name| config.upstream(name)) {
                Some(u) => connect::account(auth, config, u)
                    .await
                    .ok()
                    .flatten()
                    .map(|a| (u.name.as_str(), a)),
                None => None,
            };
            let Some((upstream, account)) = chosen else {
                return pages::error(
                    400,
                    "Unknown server",
                    "This server does not use an account of yours.",
                );
            };
            if let Err(e) = connect::save(auth, upstream, Owner::Person(&user), None).await {
                tracing::error!(error = %e, "forgetting a person's connected account failed");
                return pages::error(
                    503,
                    "Not disconnected",
                    "The connection could not be removed; try again.",
                );
            }
            self.entry(upstream, &account.grant, Some(&user))
                .current
                .store(None);
            crate::audit::success("account_disconnected")
                .identity(identity)
                .upstream(upstream)
                .reason("disconnected by the person")
                .remote(req.client_ip)
                .emit();
            let back = format!("{}?done={upstream}", crate::vocab::paths::CONNECTIONS);
            return Reply::redirect(303, &back);
        } else if let Some(u) = req
            .query_params()
            .get("done")
            .and_then(|name| config.upstream(name))
        {
            // Only an upstream's own name is shown back: the query is anyone's to write.
            done = Some(format!("{} is disconnected. The next time an application uses it, you will be asked to connect again.", u.name));
        }
        let mut rows = Vec::new();
        for u in &config.upstreams {
            if !u.credential.as_ref().is_some_and(|c| c.per_person()) {
                continue;
            }
            let conn = match connect::load(auth, u.name.as_str(), Owner::Person(&user)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "reading a person's connected account failed");
                    return pages::error(
                        503,
                        "Unavailable",
                        "Your connections could not be read; try again.",
                    );
                }
            };
            rows.push(ConnectionRow {
                upstream: u.name.to_string(),
                since: conn
                    .as_ref()
                    .map(|c| {
                        let at = std::time::UNIX_EPOCH + Duration::from_secs(c.connected_at);
                        humantime::format_rfc3339_seconds(at).to_string()[..10].to_string()
                    })
                    .unwrap_or_default(),
                connected_as: conn.map(|c| c.connected_as),
            });
        }
        let issued = auth.forms.issue(config, req, &binding, Form::Connections);
        let who = identity.email.clone().unwrap_or_else(|| user.clone());
        let page = ConnectionsPage {
            user: &who,
            rows,
            csrf: &issued.token,
            done,
        };
        let reply = pages::render(200, &page);
        match issued.set_cookie {
            Some(cookie) => reply.with_cookie(cookie),
            None => reply,
        }
    }

    /// Every connected account: an upstream's service account (connected or not), and each
    /// person's own account on upstreams where people connect theirs.
    pub async fn connections(
        &self,
        auth: &Authority,
        config: &Config,
    ) -> Result<Vec<ConnectionView>, CredentialError> {
        let mut out = Vec::new();
        for u in &config.upstreams {
            let name = u.name.as_str();
            let view = |person: Option<String>, conn: Option<Connection>| ConnectionView {
                upstream: name.to_string(),
                person,
                connected_as: conn.as_ref().map(|c| c.connected_as.clone()),
                connected_at: conn.map(|c| c.connected_at),
            };
            match &u.credential {
                Some(UpstreamCredential::ConnectedAccount { .. }) => {
                    let conn = connect::load(auth, name, Owner::Service).await?;
                    out.push(view(None, conn));
                }
                Some(c) if c.per_person() => {
                    for person in connect::people(auth, name).await? {
                        let conn = connect::load(auth, name, Owner::Person(&person)).await?;
                        if conn.is_some() {
                            out.push(view(Some(person), conn));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Forgets `upstream`'s service account (requests get 502 until it is connected again),
    /// or, with `person`, that person's own account (their next request gets the 401 that
    /// sends them through the connection again).
    pub async fn disconnect(
        &self,
        auth: &Authority,
        config: &Config,
        upstream: &str,
        person: Option<&str>,
    ) -> Result<(), CredentialError> {
        let owner = person.map_or(Owner::Service, Owner::Person);
        connect::save(auth, upstream, owner, None).await?;
        if let Some(u) = config.upstream(upstream) {
            let grant = match (&u.credential, person) {
                (Some(UpstreamCredential::ConnectedAccount { grant, .. }), None) => {
                    Some(grant.clone())
                }
                (Some(_), Some(_)) => connect::account(auth, config, u)
                    .await
                    .ok()
                    .flatten()
                    .map(|a| a.grant.clone()),
                _ => None,
            };
            if let Some(grant) = grant {
                self.entry(upstream, &grant, person).current.store(None);
            }
        }
        Ok(())
    }
}

/// Why a connection's code exchange left nothing to keep (the details are logged).
enum ExchangeError {
    Failed,
    NoRefreshToken,
}

impl ExchangeError {
    fn title(&self) -> &'static str {
        match self {
            ExchangeError::Failed => "Connection failed",
            ExchangeError::NoRefreshToken => "No refresh token",
        }
    }
    fn message(&self) -> &'static str {
        match self {
            ExchangeError::Failed => "The service did not exchange the authorization code.",
            ExchangeError::NoRefreshToken => "The service issued an expiring token and no refresh token, so authgate could not keep the connection.",
        }
    }
}

/// What is kept of a token answer: its refresh token; or, from a service whose tokens do not
/// expire and come without one (a GitHub OAuth app), the access token itself. `None` for an
/// expiring token that cannot be refreshed.
fn kept(answer: &serde_json::Value, now: u64) -> Option<Connection> {
    let (refresh_token, access_token) = match answer["refresh_token"].as_str() {
        Some(r) => (r.to_string(), None),
        None if answer["expires_in"].is_null() => (
            String::new(),
            Some(answer["access_token"].as_str()?.to_string()),
        ),
        None => return None,
    };
    Some(Connection {
        refresh_token,
        access_token,
        connected_as: who(answer),
        connected_at: now,
    })
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
