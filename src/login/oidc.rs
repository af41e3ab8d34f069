//! Login at any OpenID Connect issuer (Google and Microsoft Entra are presets) with the
//! `openidconnect` crate: discovery, authorization code + PKCE + nonce, ID token validation,
//! then userinfo for claims the ID token left out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    UserInfoClaims,
};
use serde::{Deserialize, Serialize};

use super::LoginError;
use crate::config::OidcSettings;
use crate::vocab::{Identity, Secret, SecretHash};

/// Discovery documents are re-fetched after this long (key rotation at the provider).
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Relying-party clients built from discovery documents, one per provider settings. The lock
/// is never held across a network call: a slow issuer delays only its own logins.
#[derive(Default)]
pub struct MetadataCache {
    clients: Mutex<HashMap<SecretHash, (Arc<Client>, Instant)>>,
}

/// Every claim userinfo sends beyond the standard ones: the groups claim is configurable
/// (`groups`, Keycloak's `realm_access.roles`, an Entra `roles`...).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

/// The groups at `path` (dotted) in a claims object: an array of strings, or one string.
fn groups_at(claims: &serde_json::Map<String, serde_json::Value>, path: &str) -> Vec<String> {
    let mut parts = path.split('.');
    let first = parts.next().and_then(|p| claims.get(p));
    let value = parts.fold(first, |v, p| v.and_then(|v| v.get(p)));
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The claims of an ID token whose signature, issuer, audience, expiry and nonce were
/// checked already (by `IdToken::claims`): its payload, read for claims the typed view
/// leaves out.
fn id_token_claims(jwt: &str) -> serde_json::Map<String, serde_json::Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Adds groups not there yet, keeping their order.
fn add_groups(identity: &mut Identity, groups: Vec<String>) {
    for g in groups {
        if !identity.groups.contains(&g) {
            identity.groups.push(g);
        }
    }
}

impl MetadataCache {
    /// The client for `s`, from a fresh cached discovery, or discovered now. Settings that
    /// change (a reloaded config) get a client of their own.
    async fn client(
        &self,
        http: &reqwest::Client,
        s: &OidcSettings,
    ) -> Result<Arc<Client>, LoginError> {
        let key = SecretHash::of(&format!(
            "{}\0{}\0{}\0{}",
            s.issuer,
            s.client_id,
            s.client_secret.expose(),
            s.redirect_uri
        ));
        if let Some((client, at)) = self.clients.lock().expect("oidc cache").get(&key) {
            if at.elapsed() < METADATA_TTL {
                return Ok(client.clone());
            }
        }
        let issuer_url = IssuerUrl::new(s.issuer.clone())
            .map_err(|e| LoginError::Provider(format!("issuer: {e}")))?;
        let meta = CoreProviderMetadata::discover_async(issuer_url, http)
            .await
            .map_err(|e| {
                LoginError::Provider(format!("discovery at {} failed: {}", s.issuer, chain(&e)))
            })?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(s.client_id.clone()),
            Some(ClientSecret::new(s.client_secret.expose().clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(s.redirect_uri.clone())
                .map_err(|e| LoginError::Provider(e.to_string()))?,
        );
        let client = Arc::new(client);
        self.clients
            .lock()
            .expect("oidc cache")
            .insert(key, (client.clone(), Instant::now()));
        Ok(client)
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What to send the person to, and what to remember for the callback.
pub struct Start {
    pub url: String,
    pub state: Secret,
    pub nonce: Secret,
    pub pkce_verifier: Secret,
}

type Client = openidconnect::core::CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

pub async fn start(
    cache: &MetadataCache,
    http: &reqwest::Client,
    s: &OidcSettings,
) -> Result<Start, LoginError> {
    let client = cache.client(http, s).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in s.scopes.iter().filter(|s| s.as_str() != "openid") {
        req = req.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = req.url();
    Ok(Start {
        url: url.to_string(),
        state: Secret::new(state.secret().clone()),
        nonce: Secret::new(nonce.secret().clone()),
        pkce_verifier: Secret::new(verifier.secret().clone()),
    })
}

pub async fn finish(
    cache: &MetadataCache,
    http: &reqwest::Client,
    s: &OidcSettings,
    provider_id: &str,
    code: &str,
    nonce: &Secret,
    pkce_verifier: &Secret,
) -> Result<(Identity, Option<String>), LoginError> {
    let client = cache.client(http, s).await?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| LoginError::Provider(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().clone()))
        .request_async(http)
        .await
        .map_err(|e| LoginError::Refused(format!("code exchange failed: {}", chain(&e))))?;
    let id_token = token
        .id_token()
        .ok_or_else(|| LoginError::Refused("the provider returned no ID token".into()))?;
    let claims = id_token
        .claims(
            &client.id_token_verifier(),
            &Nonce::new(nonce.expose().clone()),
        )
        .map_err(|e| LoginError::Refused(format!("ID token rejected: {}", chain(&e))))?;
    let verified = |v: Option<bool>| v != Some(false);
    let mut identity = Identity {
        provider: provider_id.to_string(),
        subject: claims.subject().to_string(),
        email: claims
            .email()
            .filter(|_| verified(claims.email_verified()))
            .map(|e| e.to_string()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        groups: groups_at(&id_token_claims(&id_token.to_string()), &s.groups_claim),
    };
    // Userinfo fills what the ID token left out (code-flow providers often keep profile
    // claims there) and may carry the groups; a failure here does not fail the login.
    if let Ok(request) =
        client.user_info(token.access_token().clone(), Some(claims.subject().clone()))
    {
        match request
            .request_async::<OtherClaims, _, CoreGenderClaim>(http)
            .await
        {
            Ok(info) => merge_userinfo(&mut identity, &info, verified, &s.groups_claim),
            Err(e) => {
                tracing::warn!(provider = provider_id, error = %chain(&e), "userinfo request failed; using ID token claims")
            }
        }
    }
    let refresh = token.refresh_token().map(|t| t.secret().clone());
    Ok((identity, refresh))
}

/// Re-checks a person at the provider with the refresh token kept from their login. The
/// provider refusing the token (`invalid_grant`: user disabled, consent withdrawn) is
/// `Refused`; anything else (network, 5xx) is `Provider` and must not end a grant. Returns
/// the rotated refresh token, if the provider issued one.
pub async fn reverify(
    cache: &MetadataCache,
    http: &reqwest::Client,
    s: &OidcSettings,
    refresh_token: &str,
) -> Result<Option<String>, LoginError> {
    use openidconnect::{RefreshToken, RequestTokenError};
    let client = cache.client(http, s).await?;
    let refresh = RefreshToken::new(refresh_token.to_string());
    let request = client
        .exchange_refresh_token(&refresh)
        .map_err(|e| LoginError::Provider(e.to_string()))?;
    match request.request_async(http).await {
        Ok(token) => Ok(token.refresh_token().map(|t| t.secret().clone())),
        Err(RequestTokenError::ServerResponse(r))
            if matches!(
                r.error(),
                openidconnect::core::CoreErrorResponseType::InvalidGrant
                    | openidconnect::core::CoreErrorResponseType::UnauthorizedClient
            ) =>
        {
            Err(LoginError::Refused(format!(
                "the provider refused the refresh: {}",
                r.error()
            )))
        }
        Err(e) => Err(LoginError::Provider(chain(&e))),
    }
}

fn merge_userinfo(
    identity: &mut Identity,
    info: &UserInfoClaims<OtherClaims, CoreGenderClaim>,
    verified: impl Fn(Option<bool>) -> bool,
    groups_claim: &str,
) {
    if identity.email.is_none() {
        identity.email = info
            .email()
            .filter(|_| verified(info.email_verified()))
            .map(|e| e.to_string());
    }
    if identity.name.is_none() {
        identity.name = info.name().and_then(|n| n.get(None)).map(|n| n.to_string());
    }
    add_groups(
        identity,
        groups_at(&info.additional_claims().claims, groups_claim),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_configured_claim_path() {
        let claims = serde_json::json!({
            "groups": ["eng", "ops"],
            "realm_access": {"roles": ["reader", "admin"]},
            "role": "owner",
            "numbers": [1, "x"],
        });
        let claims = claims.as_object().unwrap();
        assert_eq!(groups_at(claims, "groups"), ["eng", "ops"]);
        assert_eq!(groups_at(claims, "realm_access.roles"), ["reader", "admin"]);
        assert_eq!(groups_at(claims, "role"), ["owner"]);
        assert_eq!(groups_at(claims, "numbers"), ["x"]);
        assert!(groups_at(claims, "realm_access.missing").is_empty());
        assert!(groups_at(claims, "nothing").is_empty());
    }

    #[test]
    fn id_token_payload_claims_are_read() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"bob","realm_access":{"roles":["r1"]}}"#);
        let claims = id_token_claims(&format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig"));
        assert_eq!(groups_at(&claims, "realm_access.roles"), ["r1"]);
        assert!(id_token_claims("garbage").is_empty());
    }
}
