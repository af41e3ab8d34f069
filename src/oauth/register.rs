//! Dynamic client registration (RFC 7591). Open by default for public clients (MCP clients
//! depend on it); `auth.registration` can require an initial access token or turn it off.
//! Each client address may register `auth.registration_rate_limit` times a minute (a GCRA
//! limiter from `governor`: a steady rate with that burst, no doubled burst at window edges).

use crate::audit;
use crate::metrics::metrics;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::Quota;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{Authority, OAuthError};
use crate::config::{Config, Registration};
use crate::crypto::{random_id, random_secret};
use crate::store::{ClientRecord, Store};
use crate::vocab::{check_display_name, ClientId, ErrorCode, RedirectUri, SecretHash};
use crate::web::authorization::{credentials, Credentials};
use crate::web::{Reply, Request};

const MAX_REDIRECT_URIS: usize = 10;
const MAX_NAME: usize = 200;
/// Addresses the limiter remembers before it forgets those idle long enough to be full again.
const MAX_TRACKED: usize = 100_000;

type Gcra<C> = governor::RateLimiter<
    IpAddr,
    HashMapStateStore<IpAddr>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// Registrations per client address per minute: MCP clients such as Claude register anew on
/// every connection, so the endpoint stays open, but one address cannot flood the store.
pub struct RateLimiter<C: Clock = DefaultClock> {
    clock: C,
    /// The limiter for the current limit (rebuilt when a new config changes it).
    current: Mutex<Option<(u32, Arc<Gcra<C>>)>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    pub fn with_clock(clock: C) -> Self {
        Self {
            clock,
            current: Mutex::new(None),
        }
    }

    /// Counts one registration from `ip`; `Err` with how long to wait when over `per_minute`
    /// (0: unlimited; no address: not limited).
    pub fn check(&self, ip: Option<IpAddr>, per_minute: u32) -> Result<(), Duration> {
        let (Some(ip), Some(limit)) = (ip, NonZeroU32::new(per_minute)) else {
            return Ok(());
        };
        let gcra = {
            let mut current = self.current.lock().expect("rate limiter lock");
            match &*current {
                Some((l, g)) if *l == per_minute => g.clone(),
                _ => {
                    let g = Arc::new(Gcra::hashmap_with_clock(
                        Quota::per_minute(limit),
                        self.clock.clone(),
                    ));
                    *current = Some((per_minute, g.clone()));
                    g
                }
            }
        };
        if gcra.len() > MAX_TRACKED {
            gcra.retain_recent();
        }
        gcra.check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Client metadata as sent (RFC 7591 §2); fields authgate does not use are accepted and
/// ignored.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    application_type: Option<String>,
    scope: Option<String>,
    #[serde(flatten)]
    _other: Map<String, Value>,
}

pub async fn handle(auth: &Authority, config: &Config, req: &Request) -> Reply {
    let now = crate::vocab::unix_now();
    if let Err(wait) = auth
        .registrations
        .check(req.client_ip, config.auth.registration_rate_limit)
    {
        metrics()
            .rate_limited
            .with_label_values(&["register"])
            .inc();
        return Reply::error(
            ErrorCode::TemporarilyUnavailable,
            "too many registrations from this address; try again later",
        )
        .with_status(429)
        .with_header(http::header::RETRY_AFTER, wait.as_secs().max(1).to_string())
        .with_cors();
    }
    let result: Result<Value, OAuthError> = async {
        allowed(config, req)?;
        let md: Metadata = serde_json::from_slice(&req.body).map_err(|e| {
            OAuthError::invalid_client_metadata(format!(
                "the body is not valid client metadata JSON: {e}"
            ))
        })?;
        let scope = md.scope.clone();
        let (record, secret) = validate(config, md, now)?;
        auth.store.put_client(record.clone()).await?;
        audit::success("client_registered")
            .client(&record.client_id)
            .reason(format_args!(
                "{} client, {}",
                record.token_endpoint_auth_method,
                record.client_name.as_deref().unwrap_or("no name")
            ))
            .remote(req.client_ip)
            .emit();
        Ok(response(&record, secret.as_deref(), scope.as_deref()))
    }
    .await;
    let registrations = &metrics().registrations;
    let step = crate::diagnose::Step::Registration;
    match result {
        Ok(body) => {
            registrations.with_label_values(&["dcr", "ok"]).inc();
            let id = body["client_id"].as_str();
            auth.diagnostics.note(req.client_ip, id, step, Ok(()));
            Reply::json(201, &body).with_cors()
        }
        Err(e) => {
            registrations.with_label_values(&["dcr", "refused"]).inc();
            let why = format!("{}: {}", e.code.as_str(), e.description);
            auth.diagnostics.note(req.client_ip, None, step, Err(why));
            e.reply()
        }
    }
}

/// `auth.registration`: open, behind an initial access token, or off.
fn allowed(config: &Config, req: &Request) -> Result<(), OAuthError> {
    match &config.auth.registration {
        Registration::Open => Ok(()),
        Registration::Off => Err(OAuthError::access_denied(
            "dynamic client registration is disabled",
        )),
        Registration::Token(expected) => match credentials(&req.headers) {
            Ok(Some(Credentials::Bearer(t))) if SecretHash::of(t).ct_eq(expected) => Ok(()),
            _ => Err(OAuthError::invalid_client(
                "an initial access token is required to register",
            )),
        },
    }
}

/// Checks client metadata into the record to keep and, for a confidential client, its new
/// secret (shown once, stored as sha256).
pub fn validate(
    config: &Config,
    md: Metadata,
    now: u64,
) -> Result<(ClientRecord, Option<String>), OAuthError> {
    let uris = md
        .redirect_uris
        .filter(|u| !u.is_empty())
        .ok_or_else(|| OAuthError::invalid_redirect_uri("redirect_uris is required"))?;
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::invalid_redirect_uri(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris"
        )));
    }
    let allow_custom = config.auth.allow_custom_scheme_redirects;
    let redirect_uris = uris
        .iter()
        .map(|u| RedirectUri::parse_registered(u, allow_custom))
        .collect::<Result<Vec<_>, _>>()
        .map_err(OAuthError::invalid_redirect_uri)?;
    let method = md
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_basic" | "client_secret_post"
    ) {
        return Err(OAuthError::invalid_client_metadata(format!(
            "token_endpoint_auth_method `{method}` is not supported"
        )));
    }
    // Without `grant_types`, both grants (MCP clients all refresh); with it, exactly what
    // was asked, so a client registered without `refresh_token` gets no refresh tokens.
    let grant_types = md
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if let Some(g) = grant_types
        .iter()
        .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "grant type `{g}` is not supported (only authorization_code and refresh_token)"
        )));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types must include authorization_code",
        ));
    }
    if let Some(rt) = &md.response_types {
        if rt.iter().any(|r| r != "code") {
            return Err(OAuthError::invalid_client_metadata(
                "only response_types [\"code\"] is supported",
            ));
        }
    }
    if let Some(name) = &md.client_name {
        if name.chars().count() > MAX_NAME {
            return Err(OAuthError::invalid_client_metadata(format!(
                "client_name is longer than {MAX_NAME} characters"
            )));
        }
        check_display_name(name)
            .map_err(|e| OAuthError::invalid_client_metadata(format!("client_name {e}")))?;
    }
    let secret = (method != "none").then(|| random_secret("ag_cs_"));
    let record = ClientRecord {
        client_id: ClientId::new(format!("agc_{}", random_id())),
        client_name: md.client_name,
        redirect_uris,
        secret_sha256: secret.as_deref().map(SecretHash::of),
        token_endpoint_auth_method: method,
        grant_types,
        application_type: md.application_type,
        created_at: now,
        first_used_at: None,
    };
    Ok((record, secret))
}

/// RFC 7591 §3.2.1: the registered metadata, with no `null` values (clients' schemas treat
/// absent and null differently).
fn response(record: &ClientRecord, secret: Option<&str>, scope: Option<&str>) -> Value {
    let mut body = json!({
        "client_id": record.client_id,
        "client_id_issued_at": record.created_at,
        "redirect_uris": record.redirect_uris,
        "token_endpoint_auth_method": record.token_endpoint_auth_method,
        "grant_types": record.grant_types,
        "response_types": ["code"],
    });
    if let Some(n) = &record.client_name {
        body["client_name"] = json!(n);
    }
    if let Some(a) = &record.application_type {
        body["application_type"] = json!(a);
    }
    if let Some(s) = scope {
        body["scope"] = json!(s);
    }
    if let Some(s) = secret {
        body["client_secret"] = json!(s);
        body["client_secret_expires_at"] = json!(0);
    }
    body
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
