//! The validated config: plain values that know nothing of TOML or Pingora. Everything the
//! gateway needs is resolved here once (URLs parsed, paths absolute, durations typed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::vocab::{
    is_loopback_host, ClientId, RedirectUri, Scope, ScopeSet, Secret, SecretHash, UpstreamName,
};

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub upstreams: Vec<Upstream>,
    pub auth: AuthConfig,
    pub scopes: Vec<ScopeDef>,
    pub providers: Vec<Provider>,
    pub clients: Vec<Client>,
    pub cimd: CimdConfig,
    /// The metrics and admin listener; `None` without an `[admin]` table.
    pub admin: Option<AdminConfig>,
    pub audit: AuditConfig,
    /// Who may reach which upstream and call what there (`[policy] files`).
    pub policy: std::sync::Arc<crate::policy::PolicySet>,
    pub store: StoreConfig,
}

/// Where grants and tokens are kept.
#[derive(Debug, Clone, Default)]
pub enum StoreConfig {
    /// `authgate.redb` in `server.data_dir`: one gateway process (and its binary upgrades).
    #[default]
    Redb,
    /// A PostgreSQL database shared by every replica.
    Postgres(crate::store::PgSettings),
}

/// Metrics and the admin API, on a listener of their own (loopback by default).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// sha256 of the admin API's bearer token; without one only `/metrics` is served.
    pub token: Option<SecretHash>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// A file that receives the security events as JSON lines (they also go to the log).
    pub file: Option<PathBuf>,
}

/// Which Client ID Metadata Document clients are accepted.
#[derive(Debug, Clone)]
pub struct CimdConfig {
    pub enabled: bool,
    /// Hosts whose documents are accepted; empty: any public host.
    pub allowed_hosts: Vec<String>,
    pub denied_hosts: Vec<String>,
    /// Hosts whose clients skip the consent page.
    pub trusted_hosts: Vec<String>,
    /// Development only: fetch `http://` documents from loopback addresses.
    pub allow_loopback_http: bool,
}

impl Config {
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name.as_str() == name)
    }

    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    pub fn scope(&self, name: &str) -> Option<&ScopeDef> {
        self.scopes.iter().find(|s| s.name.as_str() == name)
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// The upstreams that require OAuth tokens.
    pub fn protected_upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.upstreams
            .iter()
            .filter(|u| u.auth == UpstreamAuth::OAuth)
    }

    /// The upstream a token is for when a client names none: `auth.default_upstream`, else
    /// the only OAuth upstream.
    pub fn default_oauth_upstream(&self) -> Option<&Upstream> {
        if let Some(name) = &self.auth.default_upstream {
            return self.upstream(name.as_str());
        }
        let mut it = self.protected_upstreams();
        match (it.next(), it.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// The canonical resource URL of an upstream (RFC 8707 / RFC 9728 `resource`).
    pub fn resource_url(&self, upstream: &Upstream) -> String {
        match upstream.path.as_str() {
            "/" => self.server.public_url.as_str().to_string(),
            p => self.server.public_url.join(p),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// AES-256-GCM key for cookies and flow state; `None`: generated once into the data dir.
    pub session_key: Option<[u8; 32]>,
    /// Keys rotated out that still open what they sealed.
    pub previous_session_keys: Vec<[u8; 32]>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// After a rotation, the old refresh token still gets the same answer for this long
    /// (retries, several processes of one client); zero turns it off.
    pub refresh_grace: Duration,
    pub code_ttl: Duration,
    pub session_ttl: Duration,
    /// How long a person has to finish login and consent.
    pub login_ttl: Duration,
    pub registration: Registration,
    /// Registrations one client address may make per minute (0: unlimited).
    pub registration_rate_limit: u32,
    /// Dynamic registrations that never got a grant are deleted after this long.
    pub unused_registration_ttl: Duration,
    /// Accept private-use redirect schemes (`cursor://…`) at dynamic registration.
    pub allow_custom_scheme_redirects: bool,
    /// The upstream a token is for when a client names no `resource`.
    pub default_upstream: Option<UpstreamName>,
    /// How long the body of a request to the authorization server may take to arrive.
    pub body_timeout: Duration,
}

/// Who may use dynamic client registration (RFC 7591).
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    Open,
    /// Requires `Authorization: Bearer <initial access token>`; the sha256 of it.
    Token(SecretHash),
    Off,
}

#[derive(Debug, Clone)]
pub struct ScopeDef {
    pub name: Scope,
    pub description: String,
}

/// A configured upstream login.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Used in URLs (`/login/<id>`, `/callback/<id>`) and as the identity's provider.
    pub id: String,
    pub display_name: String,
    pub kind: ProviderKind,
    /// Re-check people at the provider this often (on refresh); `None`: never.
    pub reverify_every: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// Any OpenID Connect issuer (Google and Microsoft Entra are presets of this).
    Oidc(OidcSettings),
    GitHub(GitHubSettings),
    Local {
        users: Vec<LocalUser>,
    },
}

/// An OpenID Connect relying party, resolved once from the config.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Without a trailing slash.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    /// `<public_url>/callback/<provider id>`.
    pub redirect_uri: String,
    /// The claim holding the person's groups, as a dotted path (`groups` by default).
    pub groups_claim: String,
}

#[derive(Debug, Clone)]
pub struct GitHubSettings {
    pub client_id: String,
    pub client_secret: Secret,
    /// `<public_url>/callback/<provider id>`.
    pub redirect_uri: String,
    /// Organisations and teams become groups (`org`, `org/team`); needs `read:org`.
    pub teams: bool,
}

#[derive(Debug, Clone)]
pub struct LocalUser {
    pub username: String,
    /// Argon2 PHC string (`authgate hash-password`).
    pub password_hash: Secret,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

/// A pre-registered OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: ClientId,
    pub name: String,
    /// sha256 of the secret for confidential clients; `None`: public client.
    pub secret: Option<SecretHash>,
    pub redirect_uris: Vec<RedirectUri>,
    /// Scopes it may get; `None`: any configured scope.
    pub scopes: Option<ScopeSet>,
    /// Upstreams it may get tokens for; `None`: any.
    pub upstreams: Option<Vec<UpstreamName>>,
    /// Skips the consent page (first-party clients).
    pub trusted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamAuth {
    /// Requests need a bearer token authgate issued for this upstream.
    #[serde(rename = "oauth")]
    OAuth,
    /// No authentication: requests pass as they are (identity headers still stripped).
    None,
}

/// Header names the upstream receives identity in.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: http::HeaderName,
    pub email: http::HeaderName,
    pub name: http::HeaderName,
    pub groups: http::HeaderName,
    pub client_id: http::HeaderName,
    pub scopes: http::HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user: http::HeaderName::from_static("x-authgate-user"),
            email: http::HeaderName::from_static("x-authgate-email"),
            name: http::HeaderName::from_static("x-authgate-name"),
            groups: http::HeaderName::from_static("x-authgate-groups"),
            client_id: http::HeaderName::from_static("x-authgate-client-id"),
            scopes: http::HeaderName::from_static("x-authgate-scopes"),
        }
    }
}

impl IdentityHeaders {
    pub fn all(&self) -> [&http::HeaderName; 6] {
        [
            &self.user,
            &self.email,
            &self.name,
            &self.groups,
            &self.client_id,
            &self.scopes,
        ]
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub public_url: PublicUrl,
    /// Absolute; relative paths in the file are taken from the config file's folder.
    pub data_dir: PathBuf,
    pub threads: usize,
    /// Browser origins allowed on MCP routes (`*` for any); empty: the gateway's own origin
    /// and loopback origins.
    pub allowed_origins: Vec<String>,
    pub header_limits: HeaderLimits,
    /// On SIGTERM: how long requests in flight may take to finish before they are cut.
    pub shutdown_grace: Duration,
    pub watch_config: bool,
    /// Proxies whose `X-Forwarded-For` is believed for the client address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Access tokens kept in memory.
    pub token_cache_entries: usize,
    /// Idle upstream connections kept for reuse, in all.
    pub upstream_keepalive_pool: usize,
    /// TLS on the listeners (`[server.tls]`); `None`: plain HTTP (TLS may end in front).
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`, read: a reload reads the files again.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub certified: std::sync::Arc<pingora::tls::sign::CertifiedKey>,
}

/// Request header limits, checked before any other work (nginx-like defaults: 8 KiB per
/// line, 32 KiB in all, 100 headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Bytes of one header line (`name: value`), and of the request line.
    pub max_line: usize,
    /// Bytes of all header lines together.
    pub max_total: usize,
    /// Number of header lines.
    pub max_count: usize,
}

/// The gateway's public base URL: an origin such as `https://mcp.example.com` (the OAuth
/// issuer; the gateway's endpoints sit at its root). Parsed once, kept as the string clients
/// see (its origin, without a trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    text: String,
    https: bool,
    loopback: bool,
}

impl PublicUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".into());
        }
        if url.host_str().is_none() {
            return Err("must have a host".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        // The issuer is the origin: the gateway serves its endpoints and well-known documents
        // at the root, which is what MCP clients look for first.
        if url.path() != "/" {
            return Err("must be an origin without a path (e.g. https://mcp.example.com); serve authgate at the root of its host".into());
        }
        Ok(Self {
            text: url.origin().ascii_serialization(),
            https: url.scheme() == "https",
            loopback: url.host().as_ref().is_some_and(is_loopback_host),
        })
    }

    /// `https://host[:port]`, as published.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `public_url` + `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.text, path)
    }

    pub fn is_loopback(&self) -> bool {
        self.loopback
    }
}

/// A route's path prefix: starts with `/`, no trailing slash (except the root `/`), no dot
/// segments, query or fragment. Matches itself and anything below it at a `/` boundary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePath(String);

impl RoutePath {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err("must start with `/`".into());
        }
        if raw.contains(['?', '#', '%', ' ']) {
            return Err("must not contain `?`, `#`, `%` or spaces".into());
        }
        let trimmed = if raw == "/" {
            raw
        } else {
            raw.trim_end_matches('/')
        };
        if trimmed.is_empty() {
            return Ok(Self("/".into()));
        }
        if trimmed.split('/').any(|seg| seg == "." || seg == "..") || trimmed.contains("//") {
            return Err("must not contain empty, `.` or `..` segments".into());
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part of `path` below this prefix (`""` or starting with `/`), if it is below it.
    pub fn strip<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.0 == "/" {
            return Some(path);
        }
        let rest = path.strip_prefix(self.0.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: UpstreamName,
    /// Unique to this upstream in this loaded config (never 0, never reused): the bearer
    /// check remembers per cached token which key it last passed for.
    pub check_key: u64,
    /// Lowercase host (no port) this route is served under; any host when `None`.
    pub host: Option<String>,
    pub path: RoutePath,
    pub url: UpstreamUrl,
    /// Further replicas of the same server, balanced with `url` (`proxy::replicas`).
    pub replicas: Vec<UpstreamUrl>,
    /// How often each replica's health is checked (only with `replicas`).
    pub health_check_interval: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Send the client's `Host` upstream instead of the upstream URL's authority.
    pub preserve_host: bool,
    /// How often the upstream's host name is resolved again (DNS changes are followed).
    pub dns_refresh: Duration,
    /// Also remove identity headers other gateways use (`X-Forwarded-User`, `Remote-User`,
    /// `X-Auth-Request-*`…) from client requests.
    pub strip_common_identity_headers: bool,
    pub auth: UpstreamAuth,
    /// Scopes a token needs here; also what clients are told to ask for.
    pub scopes: ScopeSet,
    pub identity_headers: IdentityHeaders,
    /// Largest request body forwarded (bytes); larger ones get 413.
    pub max_body_size: usize,
    /// How long an idle connection to the upstream is kept for reuse.
    pub keepalive_timeout: Duration,
    /// HTTP/2 to the upstream (h2c on http, offered by ALPN on https).
    pub http2: bool,
    /// A signed assertion of who is calling, besides the plain identity headers.
    pub signed_identity: Option<SignedIdentity>,
    /// The upstream's own credential, sent on every request.
    pub credential: Option<UpstreamCredential>,
}

/// `[upstream.credential]`.
#[derive(Debug, Clone)]
pub enum UpstreamCredential {
    /// A static value (API key, `Bearer …`, `Basic …`), from the environment.
    Header {
        name: http::HeaderName,
        value: http::HeaderValue,
    },
    ClientCredentials(ClientCredentials),
    /// A service account connected by an administrator (`authgate admin connect`): the
    /// grant's settings; `authorize_url` is where the administrator signs in.
    ConnectedAccount {
        authorize_url: String,
        grant: ClientCredentials,
    },
    /// Each person's own account at the service, connected during their authorization: the
    /// same settings as [`Self::ConnectedAccount`], one connection per person.
    UserAccount {
        authorize_url: String,
        grant: ClientCredentials,
    },
    /// The upstream is itself a protected MCP server: where to connect each person is
    /// discovered from it (`oauth::discover`); `scopes` are asked for besides those its
    /// metadata names.
    UpstreamOAuth {
        scopes: Vec<String>,
    },
}

impl UpstreamCredential {
    /// Whether each person connects their own account (`user_account`, `upstream_oauth`).
    pub fn per_person(&self) -> bool {
        matches!(
            self,
            UpstreamCredential::UserAccount { .. } | UpstreamCredential::UpstreamOAuth { .. }
        )
    }

    /// The authorize URL and grant of a configured per-person account, if this is one.
    pub fn user_account(&self) -> Option<(&str, &ClientCredentials)> {
        match self {
            UpstreamCredential::UserAccount {
                authorize_url,
                grant,
            } => Some((authorize_url, grant)),
            _ => None,
        }
    }

    pub fn header(&self) -> http::HeaderName {
        match self {
            UpstreamCredential::Header { name, .. } => name.clone(),
            UpstreamCredential::ClientCredentials(_)
            | UpstreamCredential::ConnectedAccount { .. }
            | UpstreamCredential::UserAccount { .. }
            | UpstreamCredential::UpstreamOAuth { .. } => http::header::AUTHORIZATION,
        }
    }
}

/// An OAuth 2 client-credentials grant at the upstream's authorization server.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
}

/// `[upstream.signed_identity]`: a JWT (EdDSA) the upstream verifies at the issuer's JWKS.
#[derive(Debug, Clone)]
pub struct SignedIdentity {
    pub header: http::HeaderName,
    pub lifetime: Duration,
    pub audience: String,
}

/// Where an upstream lives, split the way a connector needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub tls: bool,
    /// Host as written (for SNI and the `Host` header).
    pub host: String,
    pub port: u16,
    /// Path prefix requests are rewritten onto; `""` for the root.
    pub base_path: String,
    /// `host[:port]` as it goes into the `Host` header.
    pub authority: String,
}

impl UpstreamUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(format!(
                    "scheme `{other}` is not supported (use http or https)"
                ))
            }
        };
        let host = url.host_str().ok_or("must have a host")?.to_string();
        let port = url.port_or_known_default().ok_or("must have a port")?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        let base_path = url.path().trim_end_matches('/').to_string();
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        Ok(Self {
            tls,
            host,
            port,
            base_path,
            authority,
        })
    }

    /// `host:port` for the connector.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The upstream path for a request whose path below the route prefix is `rest`.
    pub fn rewrite(&self, rest: &str) -> String {
        match (self.base_path.is_empty(), rest.is_empty()) {
            (true, true) => "/".into(),
            (true, false) => rest.into(),
            (false, _) => format!("{}{}", self.base_path, rest),
        }
    }

    /// Whether [`Self::rewrite`] of `rest` is `path`, without building it (most routes map
    /// onto the same path upstream, and the proxy then leaves the URI alone).
    pub fn rewrites_to(&self, rest: &str, path: &str) -> bool {
        match (self.base_path.is_empty(), rest.is_empty()) {
            (true, true) => path == "/",
            (true, false) => path == rest,
            (false, _) => {
                path.len() == self.base_path.len() + rest.len()
                    && path.starts_with(self.base_path.as_str())
                    && path.ends_with(rest)
            }
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
