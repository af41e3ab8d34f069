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

/// The `groups` claim many providers (Keycloak, Okta, Entra with a groups claim) put in
/// userinfo.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GroupsClaim {
    #[serde(default)]
    groups: Option<Vec<String>>,
}
impl AdditionalClaims for GroupsClaim {}

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
        groups: Vec::new(),
    };
    // Userinfo fills what the ID token left out (code-flow providers often keep profile
    // claims there) and carries `groups`; a failure here does not fail the login.
    if let Ok(request) =
        client.user_info(token.access_token().clone(), Some(claims.subject().clone()))
    {
        match request
            .request_async::<GroupsClaim, _, CoreGenderClaim>(http)
            .await
        {
            Ok(info) => merge_userinfo(&mut identity, &info, verified),
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
    info: &UserInfoClaims<GroupsClaim, CoreGenderClaim>,
    verified: impl Fn(Option<bool>) -> bool,
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
    if let Some(groups) = &info.additional_claims().groups {
        identity.groups = groups.clone();
    }
}
