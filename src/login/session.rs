//! Browser state, all in AES-GCM sealed cookies: the person's session after login, and the
//! short-lived state of one upstream login (OAuth `state`, OIDC nonce, PKCE verifier).

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::crypto::Sealer;
use crate::vocab::{Identity, Secret};
use crate::web::{cookies, Request};

pub const SESSION: &str = "session";
pub const LOGIN: &str = "login";

/// A logged-in person in this browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub identity: Identity,
    pub expires_at: u64,
    /// The provider's credential from login (refresh token, GitHub token), carried into the
    /// grant for `reverify_every`. The cookie is sealed, so it never shows in clear.
    #[serde(default)]
    pub credential: Option<String>,
}

/// One upstream login in progress; the cookie is cleared on the callback (single use).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginState {
    pub provider: String,
    pub state: Secret,
    pub nonce: Secret,
    pub pkce_verifier: Secret,
    /// The sealed authorization flow to resume.
    pub flow: String,
    pub expires_at: u64,
}

/// `__Host-` cookies need https; on plain-http development setups the prefix is dropped.
pub fn cookie_name(config: &Config, which: &str) -> String {
    if config.server.public_url.is_https() {
        format!("__Host-authgate_{which}")
    } else {
        format!("authgate_{which}")
    }
}

pub fn set_cookie(config: &Config, which: &str, value: &str, max_age_secs: u64) -> String {
    cookies::set(
        &cookie_name(config, which),
        value,
        max_age_secs,
        config.server.public_url.is_https(),
    )
}

pub fn clear_cookie(config: &Config, which: &str) -> String {
    set_cookie(config, which, "", 0)
}

/// The sealed cookie `which` of type `T`, if present, authentic and not expired.
pub fn read<T: serde::de::DeserializeOwned>(
    config: &Config,
    sealer: &Sealer,
    req: &Request,
    which: &str,
    expiry: impl Fn(&T) -> u64,
    now: u64,
) -> Option<T> {
    let raw = req.cookie(&cookie_name(config, which))?;
    let value: T = sealer.open_json(which, &raw)?;
    (expiry(&value) > now).then_some(value)
}

pub fn session(config: &Config, sealer: &Sealer, req: &Request, now: u64) -> Option<Session> {
    read(
        config,
        sealer,
        req,
        SESSION,
        |s: &Session| s.expires_at,
        now,
    )
}
