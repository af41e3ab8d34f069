//! The config file as written: serde structs that mirror the TOML one to one. Unknown keys are
//! errors; values that are checked later keep their span so the check can point at them.
//! Required keys are `Option`s too: the validator reports a missing one at its table, so one
//! missing key never hides the other errors. Nothing here is used past `validate`, which
//! turns it into [`super::Config`].

use serde::Deserialize;
use toml::Spanned;

use super::model::UpstreamAuth;

pub type Text = Spanned<String>;

/// `[[provider]] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindName {
    Oidc,
    Google,
    Microsoft,
    Github,
    Local,
}

/// `[auth] registration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Token,
    Off,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<Spanned<ServerSection>>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<Spanned<UpstreamSection>>,
    #[serde(default)]
    pub auth: Option<Spanned<AuthSection>>,
    #[serde(default, rename = "scope")]
    pub scopes: Vec<Spanned<ScopeSection>>,
    #[serde(default, rename = "provider")]
    pub providers: Vec<Spanned<ProviderSection>>,
    #[serde(default, rename = "client")]
    pub clients: Vec<Spanned<ClientSection>>,
    #[serde(default)]
    pub cimd: Option<Spanned<CimdSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CimdSection {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub allowed_hosts: Vec<Text>,
    #[serde(default)]
    pub denied_hosts: Vec<Text>,
    #[serde(default)]
    pub trusted_hosts: Vec<Text>,
    #[serde(default)]
    pub allow_loopback_http: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub session_key: Option<Text>,
    pub access_token_ttl: Option<Text>,
    pub refresh_token_ttl: Option<Text>,
    pub refresh_grace: Option<Text>,
    pub code_ttl: Option<Text>,
    pub session_ttl: Option<Text>,
    pub login_ttl: Option<Text>,
    pub registration: Option<Spanned<RegistrationMode>>,
    pub registration_token: Option<Text>,
    pub registration_rate_limit: Option<Spanned<u32>>,
    pub unused_registration_ttl: Option<Text>,
    #[serde(default)]
    pub allow_custom_scheme_redirects: bool,
    pub default_upstream: Option<Text>,
    /// How long a request body to the authorization server's endpoints may take to arrive.
    pub body_timeout: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSection {
    pub name: Option<Text>,
    pub description: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    pub id: Option<Text>,
    pub kind: Option<Spanned<ProviderKindName>>,
    pub display_name: Option<Text>,
    pub issuer: Option<Text>,
    pub tenant: Option<Text>,
    pub client_id: Option<Text>,
    pub client_secret: Option<Text>,
    pub scopes: Option<Vec<Text>>,
    pub reverify_every: Option<Text>,
    #[serde(default)]
    pub users: Vec<Spanned<UserSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub username: Option<Text>,
    pub password_hash: Option<Text>,
    pub email: Option<Text>,
    pub name: Option<Text>,
    #[serde(default)]
    pub groups: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    pub client_id: Option<Text>,
    pub name: Option<Text>,
    pub secret: Option<Text>,
    pub redirect_uris: Option<Spanned<Vec<Text>>>,
    pub scopes: Option<Vec<Text>>,
    pub upstreams: Option<Vec<Text>>,
    #[serde(default)]
    pub trusted: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersSection {
    pub user: Option<Text>,
    pub email: Option<Text>,
    pub name: Option<Text>,
    pub groups: Option<Text>,
    pub client_id: Option<Text>,
    pub scopes: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Socket addresses to listen on.
    #[serde(default)]
    pub listen: Option<Spanned<Vec<Text>>>,
    /// The URL clients use to reach the gateway; the OAuth issuer and every resource URL derive
    /// from it, never from request headers.
    pub public_url: Option<Text>,
    pub data_dir: Option<Text>,
    pub threads: Option<Spanned<usize>>,
    /// Allow a plain-http public URL on a non-loopback host (a TLS proxy in front does not
    /// count: set public_url to the https URL it serves).
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub allowed_origins: Option<Vec<Text>>,
    /// Request header limits (bytes, bytes, count); past them: 431.
    pub max_header_line: Option<Spanned<usize>>,
    pub max_header_size: Option<Spanned<usize>>,
    pub max_headers: Option<Spanned<usize>>,
    /// On SIGTERM, how long requests in flight (streams included) may take to finish.
    pub shutdown_grace: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub name: Option<Text>,
    pub path: Option<Text>,
    pub host: Option<Text>,
    pub url: Option<Text>,
    pub dns_refresh: Option<Text>,
    pub connect_timeout: Option<Text>,
    pub idle_timeout: Option<Text>,
    #[serde(default)]
    pub preserve_host: bool,
    pub auth: Option<UpstreamAuth>,
    #[serde(default)]
    pub scopes: Vec<Text>,
    #[serde(default)]
    pub identity_headers: Option<Spanned<IdentityHeadersSection>>,
    pub strip_common_identity_headers: Option<bool>,
    /// Largest request body (bytes) forwarded; past it: 413.
    pub max_body_size: Option<Spanned<usize>>,
}
