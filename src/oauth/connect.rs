//! Upstream accounts connected through authgate, kept sealed (AES-256-GCM under the
//! gateway's key) in the store's secrets: a service account an administrator connects once
//! (`kind = "connected_account"`), or each person's own account at the service
//! (`kind = "user_account"`), connected during their MCP authorization, after sign-in and
//! before consent, so the client sees one sign-in. This module names, seals and reads the
//! connections and starts a person's; the proxy's credentials module exchanges the codes and
//! refreshes, caches and sends the access tokens.

use serde::{Deserialize, Serialize};

use super::flow::{ErrorView, Flow, Outcome};
use super::Authority;
use crate::config::{ClientCredentials, Config};
use crate::crypto::{random_secret, sha256_b64url};
use crate::store::Store;
use crate::vocab::Identity;

/// The sealing purpose of a stored connection.
pub const SEALED_CONNECTION: &str = "connected-account";
/// The sealing purpose of a person's connection in progress (the `state` the service sends
/// back).
pub const PERSON_STATE: &str = "person-connect";
/// How long a person has to finish connecting.
const CONNECT_WAIT: u64 = 600;

/// A connected account as stored (sealed): what refreshes its access tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct Connection {
    /// Empty for a service whose tokens do not expire (then `access_token` is kept).
    pub refresh_token: String,
    /// The token itself, from a service that issues tokens that never expire and no
    /// refresh token (a GitHub OAuth app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    pub connected_as: String,
    pub connected_at: u64,
}

/// Whose account a connection is.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// The upstream's service account (`connected_account`).
    Service,
    /// A person's own account (`user_account`), by their user id.
    Person(&'a str),
}

/// Secret names of connections start with these.
pub const SECRET_PREFIXES: [&str; 2] = ["connected_account:", "user_account:"];

/// The people who connected their own account for `upstream`, by user id.
pub async fn people(auth: &Authority, upstream: &str) -> Result<Vec<String>, Unreadable> {
    let prefix = format!("user_account:{upstream}\u{1f}");
    let names = auth
        .store
        .secret_names()
        .await
        .map_err(|e| Unreadable(e.to_string()))?;
    Ok(names
        .into_iter()
        .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
        .collect())
}

fn secret_name(upstream: &str, owner: Owner<'_>) -> String {
    match owner {
        Owner::Service => format!("connected_account:{upstream}"),
        Owner::Person(user) => format!("user_account:{upstream}\u{1f}{user}"),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the connected account cannot be read: {0}")]
pub struct Unreadable(pub String);

/// The connection stored for `upstream` and `owner`, opened.
pub async fn load(
    auth: &Authority,
    upstream: &str,
    owner: Owner<'_>,
) -> Result<Option<Connection>, Unreadable> {
    let raw = auth
        .store
        .get_secret(&secret_name(upstream, owner))
        .await
        .map_err(|e| Unreadable(e.to_string()))?;
    let Some(sealed) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let sealed = String::from_utf8(sealed).map_err(|_| Unreadable("not sealed text".into()))?;
    auth.sealer
        .open_json::<Connection>(SEALED_CONNECTION, &sealed)
        .map(Some)
        .ok_or_else(|| {
            Unreadable(
                "it does not open with this gateway's key (was auth.session_key changed?)".into(),
            )
        })
}

/// Stores (sealed) or, with `None`, forgets the connection of `upstream` and `owner`.
pub async fn save(
    auth: &Authority,
    upstream: &str,
    owner: Owner<'_>,
    conn: Option<&Connection>,
) -> Result<(), Unreadable> {
    let value = conn
        .map(|c| auth.sealer.seal_json(SEALED_CONNECTION, c).into_bytes())
        .unwrap_or_default();
    auth.store
        .put_secret(&secret_name(upstream, owner), value)
        .await
        .map_err(|e| Unreadable(e.to_string()))
}

/// Where the service sends the browser back, for both kinds.
pub fn redirect_uri(config: &Config) -> String {
    config
        .server
        .public_url
        .join(crate::vocab::paths::CONNECT_CALLBACK)
}

/// The service's authorization URL: code flow with PKCE (S256) for `verifier`.
pub fn authorize_url(
    config: &Config,
    authorize_url: &str,
    grant: &ClientCredentials,
    state: &str,
    verifier: &str,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &grant.client_id)
        .append_pair("redirect_uri", &redirect_uri(config))
        .append_pair("state", state)
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
    format!("{authorize_url}{sep}{}", q.finish())
}

/// A person's connection in progress, sealed into the `state` the service sends back: the
/// authorization it belongs to, and the PKCE verifier (the service never sees it in clear).
#[derive(Debug, Serialize, Deserialize)]
pub struct PersonConnect {
    pub upstream: String,
    /// Whose connection: the callback refuses a browser signed in as someone else, so a
    /// link started by one person cannot attach another's account to it.
    pub user: String,
    pub verifier: String,
    /// The sealed flow to continue.
    pub flow: String,
    pub expires_at: u64,
}

impl PersonConnect {
    /// The connection sealed in `state`, if authentic (expired or not: the callback says
    /// which).
    pub fn open(auth: &Authority, state: &str) -> Option<Self> {
        auth.sealer.open_json::<Self>(PERSON_STATE, state)
    }
}

/// Where a person connects their account for an upstream, and the grant that refreshes it.
#[derive(Debug, Clone)]
pub struct Account {
    pub authorize_url: String,
    pub grant: ClientCredentials,
}

/// The per-person account settings of `upstream`: configured (`user_account`) or
/// discovered from the upstream (`upstream_oauth`); `None` for other upstreams.
pub async fn account(
    auth: &Authority,
    config: &Config,
    upstream: &crate::config::Upstream,
) -> Result<Option<std::sync::Arc<Account>>, super::discover::DiscoveryError> {
    use crate::config::UpstreamCredential;
    match upstream.credential.as_ref() {
        Some(UpstreamCredential::UserAccount {
            authorize_url,
            grant,
        }) => Ok(Some(std::sync::Arc::new(Account {
            authorize_url: authorize_url.clone(),
            grant: grant.clone(),
        }))),
        Some(UpstreamCredential::UpstreamOAuth { scopes }) => Ok(Some(
            auth.discovery
                .account(auth, config, upstream, scopes)
                .await?,
        )),
        _ => Ok(None),
    }
}

/// The connection step of an authorization: a person without a connection to an upstream
/// that needs their own account is sent to the service first.
pub async fn step(
    auth: &Authority,
    config: &Config,
    (flow, sealed): (&Flow, &str),
    identity: &Identity,
    now: u64,
) -> Option<Outcome> {
    let upstream = config.upstream(flow.upstream.as_str())?;
    if !upstream.credential.as_ref()?.per_person() {
        return None;
    }
    let account = match account(auth, config, upstream).await {
        Ok(a) => a?,
        Err(e) => {
            tracing::error!(upstream = %upstream.name, error = %e, "finding where people connect for this upstream failed");
            return Some(Outcome::Error(ErrorView::new(
                502,
                "Connection unavailable",
                "authgate could not find where to connect your account for this server.",
            )));
        }
    };
    let user = identity.user_id();
    match load(auth, upstream.name.as_str(), Owner::Person(&user)).await {
        Ok(Some(_)) => return None,
        Ok(None) => {}
        Err(e) => {
            tracing::error!(upstream = %upstream.name, error = %e, "reading a person's connected account failed");
            return Some(Outcome::Error(ErrorView::new(
                503,
                "Connection unavailable",
                "authgate could not read your connection to this server's service.",
            )));
        }
    }
    let verifier = random_secret("");
    let state = auth.sealer.seal_json(
        PERSON_STATE,
        &PersonConnect {
            upstream: upstream.name.to_string(),
            user,
            verifier: verifier.clone(),
            flow: sealed.to_string(),
            expires_at: now + CONNECT_WAIT,
        },
    );
    Some(Outcome::Connect(authorize_url(
        config,
        &account.authorize_url,
        &account.grant,
        &state,
        &verifier,
    )))
}
