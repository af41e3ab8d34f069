//! The config file as written: serde structs that mirror the TOML one to one. Unknown keys are
//! errors; values that are checked later keep their span so the check can point at them.
//! Required keys are `Option`s too: the validator reports a missing one at its table, so one
//! missing key never hides the other errors. Nothing here is used past `validate`, which
//! turns it into [`super::Config`].

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::model::UpstreamAuth;

pub type Text = Spanned<String>;

/// `[[provider]] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindName {
    Oidc,
    Google,
    Microsoft,
    Github,
    Local,
}

/// `[auth] registration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Token,
    Off,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[schemars(with = "Option<ServerSection>")]
    pub server: Option<Spanned<ServerSection>>,
    #[serde(default, rename = "upstream")]
    #[schemars(with = "Vec<UpstreamSection>")]
    pub upstreams: Vec<Spanned<UpstreamSection>>,
    #[serde(default)]
    #[schemars(with = "Option<AuthSection>")]
    pub auth: Option<Spanned<AuthSection>>,
    #[serde(default, rename = "scope")]
    #[schemars(with = "Vec<ScopeSection>")]
    pub scopes: Vec<Spanned<ScopeSection>>,
    #[serde(default, rename = "provider")]
    #[schemars(with = "Vec<ProviderSection>")]
    pub providers: Vec<Spanned<ProviderSection>>,
    #[serde(default, rename = "client")]
    #[schemars(with = "Vec<ClientSection>")]
    pub clients: Vec<Spanned<ClientSection>>,
    #[serde(default)]
    #[schemars(with = "Option<CimdSection>")]
    pub cimd: Option<Spanned<CimdSection>>,
    #[serde(default)]
    #[schemars(with = "Option<AdminSection>")]
    pub admin: Option<Spanned<AdminSection>>,
    #[serde(default)]
    #[schemars(with = "Option<AuditSection>")]
    pub audit: Option<Spanned<AuditSection>>,
    #[serde(default)]
    #[schemars(with = "Option<PolicySection>")]
    pub policy: Option<Spanned<PolicySection>>,
    #[serde(default)]
    #[schemars(with = "Option<StoreSection>")]
    pub store: Option<Spanned<StoreSection>>,
}

/// `[store] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKindName {
    Redb,
    Postgres,
}

/// `[store]`: where grants and tokens are kept (the embedded redb file by default; a
/// PostgreSQL database shared by several replicas).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    #[schemars(with = "Option<StoreKindName>")]
    pub kind: Option<Spanned<StoreKindName>>,
    /// The connection string (URL or `key=value` pairs); usually `${DATABASE_URL}`.
    #[schemars(with = "Option<String>")]
    pub url: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub schema: Option<Text>,
    #[schemars(with = "Option<u32>")]
    pub pool_size: Option<Spanned<u32>>,
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Text>,
}

/// `[admin]`: the listener for metrics and the admin API.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[schemars(with = "Option<String>")]
    pub listen: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub token: Option<Text>,
}

/// `[audit]`: where security events also go.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    #[schemars(with = "Option<String>")]
    pub file: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CimdSection {
    pub enabled: Option<bool>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowed_hosts: Vec<Text>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub denied_hosts: Vec<Text>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub trusted_hosts: Vec<Text>,
    #[serde(default)]
    pub allow_loopback_http: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[schemars(with = "Option<String>")]
    pub session_key: Option<Text>,
    /// Keys being rotated out: they still open what they sealed (see `authgate rotate-key`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub previous_session_keys: Vec<Text>,
    #[schemars(with = "Option<String>")]
    pub access_token_ttl: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub refresh_token_ttl: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub refresh_grace: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub code_ttl: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub session_ttl: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub login_ttl: Option<Text>,
    #[schemars(with = "Option<RegistrationMode>")]
    pub registration: Option<Spanned<RegistrationMode>>,
    #[schemars(with = "Option<String>")]
    pub registration_token: Option<Text>,
    #[schemars(with = "Option<u32>")]
    pub registration_rate_limit: Option<Spanned<u32>>,
    #[schemars(with = "Option<String>")]
    pub unused_registration_ttl: Option<Text>,
    #[serde(default)]
    pub allow_custom_scheme_redirects: bool,
    #[schemars(with = "Option<String>")]
    pub default_upstream: Option<Text>,
    /// How long a request body to the authorization server's endpoints may take to arrive.
    #[schemars(with = "Option<String>")]
    pub body_timeout: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeSection {
    #[schemars(with = "Option<String>")]
    pub name: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub description: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    #[schemars(with = "Option<String>")]
    pub id: Option<Text>,
    #[schemars(with = "Option<ProviderKindName>")]
    pub kind: Option<Spanned<ProviderKindName>>,
    #[schemars(with = "Option<String>")]
    pub display_name: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub issuer: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub tenant: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub client_id: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<Text>,
    #[schemars(with = "Option<Vec<String>>")]
    pub scopes: Option<Vec<Text>>,
    #[schemars(with = "Option<String>")]
    pub reverify_every: Option<Text>,
    /// OIDC: the claim (a dotted path, e.g. `realm_access.roles`) holding the person's groups,
    /// read from the ID token and userinfo.
    #[schemars(with = "Option<String>")]
    pub groups_claim: Option<Text>,
    /// GitHub: read the person's organisations and teams as groups (`org`, `org/team`);
    /// asks GitHub for the `read:org` scope.
    #[serde(default)]
    pub teams: bool,
    #[serde(default)]
    #[schemars(with = "Vec<UserSection>")]
    pub users: Vec<Spanned<UserSection>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    #[schemars(with = "Option<String>")]
    pub username: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub password_hash: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub email: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub name: Option<Text>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub groups: Vec<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    #[schemars(with = "Option<String>")]
    pub client_id: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub name: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub secret: Option<Text>,
    #[schemars(with = "Option<Vec<String>>")]
    pub redirect_uris: Option<Spanned<Vec<Text>>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub scopes: Option<Vec<Text>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub upstreams: Option<Vec<Text>>,
    #[serde(default)]
    pub trusted: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersSection {
    #[schemars(with = "Option<String>")]
    pub user: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub email: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub name: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub groups: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub client_id: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub scopes: Option<Text>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Socket addresses to listen on.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub listen: Option<Spanned<Vec<Text>>>,
    /// The URL clients use to reach the gateway; the OAuth issuer and every resource URL derive
    /// from it, never from request headers.
    #[schemars(with = "Option<String>")]
    pub public_url: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub data_dir: Option<Text>,
    #[schemars(with = "Option<usize>")]
    pub threads: Option<Spanned<usize>>,
    /// TLS on every `listen` address, with HTTP/2 to clients that offer it.
    #[schemars(with = "Option<TlsSection>")]
    pub tls: Option<Spanned<TlsSection>>,
    /// Allow a plain-http public URL on a non-loopback host (a TLS proxy in front does not
    /// count: set public_url to the https URL it serves).
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[schemars(with = "Option<Vec<String>>")]
    pub allowed_origins: Option<Vec<Text>>,
    /// Request header limits (bytes, bytes, count); past them: 431.
    #[schemars(with = "Option<usize>")]
    pub max_header_line: Option<Spanned<usize>>,
    #[schemars(with = "Option<usize>")]
    pub max_header_size: Option<Spanned<usize>>,
    #[schemars(with = "Option<usize>")]
    pub max_headers: Option<Spanned<usize>>,
    /// On SIGTERM, how long requests in flight (streams included) may take to finish.
    #[schemars(with = "Option<String>")]
    pub shutdown_grace: Option<Text>,
    /// Reload when the config file changes (checked every two seconds).
    #[serde(default)]
    pub watch_config: bool,
    /// Proxies (CIDRs) whose X-Forwarded-For names the client.
    #[schemars(with = "Option<Vec<String>>")]
    pub trusted_proxies: Option<Vec<Text>>,
    /// Access tokens kept in memory (the hot path's cache).
    #[schemars(with = "Option<usize>")]
    pub token_cache_entries: Option<Spanned<usize>>,
    /// Idle connections to upstreams kept for reuse, in all.
    #[schemars(with = "Option<usize>")]
    pub upstream_keepalive_pool: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    #[schemars(with = "Option<String>")]
    pub name: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub path: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub host: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub url: Option<Text>,
    /// More URLs of the same MCP server (its replicas): requests are balanced over `url`
    /// and these, and each Streamable HTTP session stays on the replica that created it.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub replicas: Vec<Text>,
    /// How often each replica is checked (a TCP connection) when there are replicas.
    #[schemars(with = "Option<String>")]
    pub health_check_interval: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub dns_refresh: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub connect_timeout: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Text>,
    #[serde(default)]
    pub preserve_host: bool,
    pub auth: Option<UpstreamAuth>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub scopes: Vec<Text>,
    #[serde(default)]
    #[schemars(with = "Option<IdentityHeadersSection>")]
    pub identity_headers: Option<Spanned<IdentityHeadersSection>>,
    pub strip_common_identity_headers: Option<bool>,
    /// Largest request body (bytes) forwarded; past it: 413.
    #[schemars(with = "Option<usize>")]
    pub max_body_size: Option<Spanned<usize>>,
    /// How long an idle connection to the upstream is kept for reuse.
    #[schemars(with = "Option<String>")]
    pub keepalive_timeout: Option<Text>,
    /// Speak HTTP/2 to the upstream: h2c (prior knowledge) on http, ALPN on https.
    #[serde(default)]
    pub http2: bool,
    /// A credential of the upstream's own, sent on every request (set by ops).
    #[schemars(with = "Option<CredentialSection>")]
    pub credential: Option<Spanned<CredentialSection>>,
    /// Also send a signed assertion (a JWT the upstream verifies at the issuer's JWKS).
    #[schemars(with = "Option<SignedIdentitySection>")]
    pub signed_identity: Option<Spanned<SignedIdentitySection>>,
}

/// `[upstream.signed_identity]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedIdentitySection {
    /// The header carrying it (default `X-Authgate-Assertion`).
    #[schemars(with = "Option<String>")]
    pub header: Option<Text>,
    /// How long an assertion is valid (default 5m, at most 1h).
    #[schemars(with = "Option<String>")]
    pub lifetime: Option<Text>,
    /// Its `aud` (default: the upstream's resource URL).
    #[schemars(with = "Option<String>")]
    pub audience: Option<Text>,
}

/// `[policy]`: the policy files to load (see `policies/`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Files, or folders whose `*.toml` files (tests `*.test.toml` aside) are all loaded;
    /// relative to this config file.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub files: Vec<Text>,
}

/// A policy file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default, rename = "group")]
    pub groups: Vec<Spanned<GroupSection>>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleSection>>,
    #[serde(default)]
    pub tool_scopes: Vec<Spanned<ToolScopesSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: Option<Text>,
    #[serde(default)]
    pub emails: Vec<Text>,
    #[serde(default)]
    pub email_domains: Vec<Text>,
    #[serde(default)]
    pub provider_groups: Vec<Text>,
    #[serde(default)]
    pub admins: Vec<Text>,
    #[serde(default)]
    pub owners: Vec<Text>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectName {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    pub name: Option<Text>,
    pub effect: Option<Spanned<EffectName>>,
    pub upstreams: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub users: Vec<Text>,
    #[serde(default)]
    pub emails: Vec<Text>,
    #[serde(default)]
    pub email_domains: Vec<Text>,
    #[serde(default)]
    pub groups: Vec<Text>,
    #[serde(default)]
    pub providers: Vec<Text>,
    #[serde(default)]
    pub clients: Vec<Text>,
    #[serde(default)]
    pub scopes: Vec<Text>,
    #[serde(default)]
    pub api_keys: Vec<Text>,
    #[serde(default)]
    pub methods: Vec<Text>,
    #[serde(default)]
    pub tools: Vec<Text>,
    #[serde(default)]
    pub prompts: Vec<Text>,
    #[serde(default)]
    pub resources: Vec<Text>,
    pub expires: Option<Spanned<toml::value::Datetime>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolScopesSection {
    pub upstreams: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub tools: Vec<Text>,
    #[serde(default)]
    pub scopes: Vec<Text>,
}

/// `[server.tls]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain, PEM, the leaf first (relative to the config file's folder).
    #[schemars(with = "Option<String>")]
    pub cert: Option<Text>,
    /// Its private key, PEM.
    #[schemars(with = "Option<String>")]
    pub key: Option<Text>,
}

/// `[upstream.credential] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `header` = `value`.
    Header,
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// `Authorization: Basic` of `username` and `password`.
    Basic,
    /// An OAuth 2 client-credentials token from `token_url`, as a bearer token.
    ClientCredentials,
    /// A service account an administrator connects once in the browser (authorization code
    /// + PKCE at `authorize_url`); its refresh token is kept sealed in the store.
    ConnectedAccount,
    /// Each person's own account at the service, connected during their MCP authorization
    /// (after sign-in, before consent); kept sealed per person, sent on their requests only.
    UserAccount,
    /// The upstream is itself a protected MCP server: its authorization server is found from
    /// its protected resource metadata, authgate registers there (CIMD, else DCR), and each
    /// person connects as with `user_account`.
    UpstreamOauth,
}

/// `[upstream.credential]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialSection {
    #[schemars(with = "Option<CredentialKind>")]
    pub kind: Option<Spanned<CredentialKind>>,
    #[schemars(with = "Option<String>")]
    pub header: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub value: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub username: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub password: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub authorize_url: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub token_url: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub client_id: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<Text>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub scopes: Vec<Text>,
    /// RFC 8707 `resource` for the token request.
    #[schemars(with = "Option<String>")]
    pub resource: Option<Text>,
}
