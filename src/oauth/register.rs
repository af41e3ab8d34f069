//! Dynamic client registration (RFC 7591). Open by default for public clients (MCP clients
//! depend on it); `auth.registration` can require an initial access token or turn it off.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::types::RedirectUri;
use super::{Authority, OAuthError};
use crate::config::{Config, Registration};
use crate::crypto::{random_id, random_secret, SecretHash};
use crate::store::{ClientRecord, Store};
use crate::web::{Reply, Request};

const MAX_REDIRECT_URIS: usize = 10;

/// Registrations per client address per minute: MCP clients such as Claude register anew on
/// every connection, so the endpoint stays open, but one address cannot flood the store.
#[derive(Default)]
pub struct RateLimiter {
    windows: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u64, u32)>>,
}

impl RateLimiter {
    /// Counts one registration from `ip` in the minute of `now`; false when over `limit`.
    pub fn allow(&self, ip: Option<std::net::IpAddr>, limit: u32, now: u64) -> bool {
        let (Some(ip), true) = (ip, limit > 0) else {
            return true;
        };
        let minute = now / 60;
        let mut windows = self.windows.lock().expect("rate limiter lock");
        if windows.len() > 100_000 {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let entry = windows.entry(ip).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }
}
const MAX_NAME: usize = 200;

#[derive(Deserialize)]
struct Metadata {
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

pub async fn register(auth: &Authority, config: &Config, req: &Request, now: u64) -> Reply {
    match register_inner(auth, config, req, now).await {
        Ok(r) => r,
        Err(e) => e.reply(),
    }
}

async fn register_inner(
    auth: &Authority,
    config: &Config,
    req: &Request,
    now: u64,
) -> Result<Reply, OAuthError> {
    if !auth
        .registrations
        .allow(req.client_ip, config.auth.registration_rate_limit, now)
    {
        return Ok(Reply::error(
            429,
            "invalid_request",
            "too many registrations from this address; try again in a minute",
        )
        .with_header(http::header::RETRY_AFTER, "60")
        .with_cors());
    }
    match &config.auth.registration {
        Registration::Open => {}
        Registration::Off => {
            return Err(OAuthError::access_denied(
                "dynamic client registration is disabled",
            ))
        }
        Registration::Token(expected) => {
            let presented = req
                .header(http::header::AUTHORIZATION)
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(SecretHash::of);
            if !presented.is_some_and(|p| p.ct_eq(expected)) {
                return Err(OAuthError::invalid_client(
                    "an initial access token is required to register",
                ));
            }
        }
    }
    let md: Metadata = serde_json::from_slice(&req.body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!(
            "the body is not valid client metadata JSON: {e}"
        ))
    })?;
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
    let mut redirect_uris = Vec::new();
    for u in &uris {
        let parsed = RedirectUri::parse_registered(u, allow_custom)
            .map_err(OAuthError::invalid_redirect_uri)?;
        redirect_uris.push(parsed.0);
    }
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
        super::types::check_display_name(name)
            .map_err(|e| OAuthError::invalid_client_metadata(format!("client_name {e}")))?;
    }
    let client_id = format!("agc_{}", random_id());
    let secret = (method != "none").then(|| random_secret("ag_cs_"));
    let record = ClientRecord {
        client_id: client_id.clone(),
        client_name: md.client_name.clone(),
        redirect_uris: redirect_uris.clone(),
        secret_sha256: secret.as_ref().map(|s| {
            SecretHash::of(s)
                .0
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
        token_endpoint_auth_method: method.clone(),
        grant_types: grant_types.clone(),
        application_type: md.application_type.clone(),
        created_at: now,
        first_used_at: None,
    };
    auth.store.put_client(record).await?;
    tracing::info!(
        target: "authgate::audit",
        event = "client_registered",
        client_id = %client_id,
        client_name = md.client_name.as_deref().unwrap_or("-"),
        auth_method = %method,
    );
    let mut body = json!({
        "client_id": client_id,
        "client_id_issued_at": now,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": grant_types,
        "response_types": ["code"],
    });
    if let Some(n) = md.client_name {
        body["client_name"] = json!(n);
    }
    if let Some(a) = md.application_type {
        body["application_type"] = json!(a);
    }
    if let Some(s) = md.scope {
        body["scope"] = json!(s);
    }
    if let Some(s) = secret {
        body["client_secret"] = json!(s);
        body["client_secret_expires_at"] = json!(0);
    }
    Ok(Reply::json(201, &body).with_cors())
}
