//! People signing in: at upstream providers (generic OIDC with Google and Microsoft Entra
//! presets, GitHub) or as local users from the config, and the browser state that carries
//! them through it (sealed cookies in `session`, form tokens in `forms`). The result of a
//! login is an [`Identity`].

pub mod forms;
pub mod github;
pub mod local;
pub mod oidc;
pub mod session;

use std::time::Duration;

use crate::config::{Provider, ProviderKind};
use crate::vocab::{Identity, Secret};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The provider could not be used (unreachable, misconfigured): try again later.
    #[error("login provider unavailable: {0}")]
    Provider(String),
    /// The provider answered, but the login is not valid.
    #[error("login refused: {0}")]
    Refused(String),
}

/// Long-lived login machinery: one HTTP client (no redirects: SSRF) and the OIDC clients
/// built from discovery documents.
pub struct Logins {
    pub http: reqwest::Client,
    pub oidc: oidc::MetadataCache,
    /// Local users' password checks, bounded in number and memory.
    pub passwords: local::PasswordChecks,
}

/// Where an upstream login sends the person, and the state to keep for its callback.
pub struct Redirect {
    pub url: String,
    pub state: Secret,
    pub nonce: Secret,
    pub pkce_verifier: Secret,
}

impl Logins {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("authgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building the HTTP client");
        Self {
            http,
            oidc: oidc::MetadataCache::default(),
            passwords: local::PasswordChecks::default(),
        }
    }

    /// Begins a login at a remote provider (not for local users, who get a form).
    pub async fn start(&self, provider: &Provider) -> Result<Redirect, LoginError> {
        match &provider.kind {
            ProviderKind::Oidc(s) => {
                let st = oidc::start(&self.oidc, &self.http, s).await?;
                Ok(Redirect {
                    url: st.url,
                    state: st.state,
                    nonce: st.nonce,
                    pkce_verifier: st.pkce_verifier,
                })
            }
            ProviderKind::GitHub(s) => {
                let st = github::start(s)?;
                Ok(Redirect {
                    url: st.url,
                    state: st.state,
                    nonce: Secret::new(String::new()),
                    pkce_verifier: st.pkce_verifier,
                })
            }
            ProviderKind::Local { .. } => Err(LoginError::Provider(
                "local users log in with a form".into(),
            )),
        }
    }

    /// Completes a remote login from its callback's `code`: the identity and the
    /// provider's credential to re-verify with later (refresh token or GitHub token).
    pub async fn finish(
        &self,
        provider: &Provider,
        code: &str,
        state: &session::LoginState,
    ) -> Result<(Identity, Option<String>), LoginError> {
        match &provider.kind {
            ProviderKind::Oidc(s) => {
                oidc::finish(
                    &self.oidc,
                    &self.http,
                    s,
                    &provider.id,
                    code,
                    &state.nonce,
                    &state.pkce_verifier,
                )
                .await
            }
            ProviderKind::GitHub(s) => {
                github::finish(&self.http, &provider.id, s, code, &state.pkce_verifier).await
            }
            ProviderKind::Local { .. } => Err(LoginError::Provider(
                "local users log in with a form".into(),
            )),
        }
    }

    /// Re-checks a person at their provider (`reverify_every`). `Ok(Some)` carries a rotated
    /// credential to keep. Only `Refused` may end a grant.
    pub async fn reverify(
        &self,
        provider: &Provider,
        subject: &str,
        credential: Option<&str>,
    ) -> Result<Option<String>, LoginError> {
        match &provider.kind {
            ProviderKind::Local { users } => match users.iter().any(|u| u.username == subject) {
                true => Ok(None),
                false => Err(LoginError::Refused(
                    "the local user no longer exists".into(),
                )),
            },
            ProviderKind::Oidc(s) => {
                let Some(refresh) = credential else {
                    return Err(LoginError::Provider(
                        "no refresh token was issued at login".into(),
                    ));
                };
                oidc::reverify(&self.oidc, &self.http, s, refresh).await
            }
            ProviderKind::GitHub(_) => {
                let Some(token) = credential else {
                    return Err(LoginError::Provider(
                        "no GitHub token was kept at login".into(),
                    ));
                };
                github::reverify(&self.http, token).await.map(|()| None)
            }
        }
    }
}

impl Default for Logins {
    fn default() -> Self {
        Self::new()
    }
}
