//! Client ID Metadata Documents: a `client_id` that is an https URL names a JSON document
//! describing the client, which authgate fetches. The fetch is an SSRF surface, so: https
//! only, every address the host resolves to must be public (checked by the HTTP client's
//! own resolver, so the connection goes to a vetted address, whatever DNS says next), no
//! redirects, a short timeout, a small size cap, JSON only. Documents are cached within
//! bounds of their `Cache-Control`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use super::ClientInfo;
use crate::config::CimdConfig;
use crate::vocab::{check_display_name, ClientId, RedirectUri};

const MAX_DOCUMENT: usize = 8 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_CACHE: Duration = Duration::from_secs(60);
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_CACHE: Duration = Duration::from_secs(300);
const MAX_CACHED: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CimdError {
    #[error("client metadata documents are not accepted here")]
    Disabled,
    #[error("the client_id is not a valid metadata document URL: {0}")]
    BadUrl(String),
    #[error("clients from `{0}` are not allowed")]
    HostNotAllowed(String),
    #[error("`{0}` resolves to a non-public address")]
    NonPublicAddress(String),
    #[error("the metadata document could not be fetched: {0}")]
    Fetch(String),
    #[error("the metadata document is invalid: {0}")]
    Invalid(String),
}

/// Whether `client_id` is shaped like a metadata document URL (and not a plain id).
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Fetched documents, and the two HTTP clients that fetch them: one whose resolver accepts
/// only public addresses, one that also accepts loopback (`cimd.allow_loopback_http`).
pub struct DocumentCache {
    entries: Mutex<HashMap<String, (ClientInfo, Instant)>>,
    public_only: reqwest::Client,
    loopback_too: reqwest::Client,
}

impl Default for DocumentCache {
    fn default() -> Self {
        let client = |loopback| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(FETCH_TIMEOUT)
                .dns_resolver(Arc::new(VettingResolver { loopback }))
                .user_agent(concat!("authgate/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("building the metadata document client")
        };
        Self {
            entries: Mutex::new(HashMap::new()),
            public_only: client(false),
            loopback_too: client(true),
        }
    }
}

/// Resolves a document host and keeps only the addresses it may connect to; none left is an
/// error the fetch reports as [`CimdError::NonPublicAddress`].
struct VettingResolver {
    loopback: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the host resolves to a non-public address")]
struct NonPublic;

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let loopback = self.loopback;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.is_empty() || !addrs.iter().all(|a| allowed(a.ip(), loopback)) {
                return Err(Box::new(NonPublic) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn allowed(ip: IpAddr, loopback: bool) -> bool {
    is_public(ip) || (loopback && ip.is_loopback())
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    client_name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    client_secret: Option<serde_json::Value>,
    grant_types: Option<Vec<String>>,
}

/// Checks the URL itself (CIMD draft §3): scheme, a path, no fragment, userinfo or dot
/// segments. Returns the host.
fn check_url(client_id: &str, cfg: &CimdConfig) -> Result<Url, CimdError> {
    let url = Url::parse(client_id).map_err(|e| CimdError::BadUrl(e.to_string()))?;
    let loopback_dev = url.scheme() == "http"
        && cfg.allow_loopback_http
        && url
            .host()
            .as_ref()
            .is_some_and(crate::vocab::is_loopback_host);
    if url.scheme() != "https" && !loopback_dev {
        return Err(CimdError::BadUrl("it must be an https URL".into()));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(CimdError::BadUrl(
            "no fragment or credentials allowed".into(),
        ));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(CimdError::BadUrl("it must have a path".into()));
    }
    // The parsed URL must be the string as sent: no normalisation, no dot segments.
    if url.as_str() != client_id || client_id.split('/').any(|s| s == "." || s == "..") {
        return Err(CimdError::BadUrl("it must be in normalised form".into()));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let listed = |list: &[String]| list.iter().any(|h| h.eq_ignore_ascii_case(&host));
    if listed(&cfg.denied_hosts) || (!cfg.allowed_hosts.is_empty() && !listed(&cfg.allowed_hosts)) {
        return Err(CimdError::HostNotAllowed(host));
    }
    Ok(url)
}

/// Public unicast only: no loopback, private, link-local, CGNAT, documentation, benchmark,
/// multicast, unspecified or reserved ranges (v4, v6, and v4 mapped into v6).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Duration {
    let ttl = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|cc| {
            if cc
                .split(',')
                .any(|d| matches!(d.trim(), "no-store" | "no-cache"))
            {
                return Some(Duration::ZERO);
            }
            cc.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
                .map(Duration::from_secs)
        })
        .unwrap_or(DEFAULT_CACHE);
    ttl.clamp(MIN_CACHE, MAX_CACHE)
}

impl DocumentCache {
    /// The client a metadata document describes, from cache or fetched.
    pub async fn client(
        &self,
        client_id: &ClientId,
        cfg: &CimdConfig,
        allow_custom: bool,
    ) -> Result<ClientInfo, CimdError> {
        if !cfg.enabled {
            return Err(CimdError::Disabled);
        }
        let url = check_url(client_id.as_str(), cfg)?;
        if let Some((info, until)) = self
            .entries
            .lock()
            .expect("cimd cache")
            .get(client_id.as_str())
        {
            if *until > Instant::now() {
                return Ok(info.clone());
            }
        }
        let (body, ttl) = self.fetch(&url, cfg).await?;
        let host = url.host_str().unwrap_or_default();
        let info = client_from_document(&body, client_id, host, cfg, allow_custom)?;
        let mut entries = self.entries.lock().expect("cimd cache");
        if entries.len() > MAX_CACHED {
            entries.retain(|_, (_, until)| *until > Instant::now());
        }
        entries.insert(client_id.to_string(), (info.clone(), Instant::now() + ttl));
        Ok(info)
    }

    /// The document's bytes and how long to cache them.
    async fn fetch(&self, url: &Url, cfg: &CimdConfig) -> Result<(Vec<u8>, Duration), CimdError> {
        let host = url.host_str().unwrap_or_default().to_string();
        let dev_loopback = url.scheme() == "http";
        // The resolver vets names; an address literal (`https://[2001:db8::1]/…`) is an
        // address, not a name for DNS, and is vetted here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !allowed(ip, dev_loopback)) {
            return Err(CimdError::NonPublicAddress(host));
        }
        if dev_loopback {
            tracing::warn!(client_id = %url, "fetching a client metadata document over loopback http (cimd.allow_loopback_http is on)");
        }
        let client = if cfg.allow_loopback_http {
            &self.loopback_too
        } else {
            &self.public_only
        };
        let mut resp = client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if source_is::<NonPublic>(&e) {
                    CimdError::NonPublicAddress(host.clone())
                } else {
                    CimdError::Fetch(e.without_url().to_string())
                }
            })?;
        if resp.status().is_redirection() {
            return Err(CimdError::Fetch(
                "the document URL redirects; redirects are not followed".into(),
            ));
        }
        if resp.status() != reqwest::StatusCode::OK {
            return Err(CimdError::Fetch(format!("HTTP {}", resp.status())));
        }
        let json_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct.to_ascii_lowercase();
                ct.starts_with("application/json")
                    || (ct.starts_with("application/") && ct.contains("+json"))
            });
        if !json_type {
            return Err(CimdError::Invalid(
                "it is not served as application/json".into(),
            ));
        }
        let too_large = || CimdError::Invalid(format!("it is larger than {MAX_DOCUMENT} bytes"));
        if resp
            .content_length()
            .is_some_and(|l| l as usize > MAX_DOCUMENT)
        {
            return Err(too_large());
        }
        let ttl = max_age(resp.headers());
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| CimdError::Fetch(e.without_url().to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(too_large());
            }
        }
        Ok((body, ttl))
    }
}

/// Whether an error of type `T` is somewhere in `e`'s source chain.
fn source_is<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<T>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The client a fetched document describes (CIMD draft §4): its `client_id` must be the URL
/// exactly, no secret, `none` authentication, at least one acceptable redirect URI, and a
/// name people can read.
pub fn client_from_document(
    body: &[u8],
    client_id: &ClientId,
    host: &str,
    cfg: &CimdConfig,
    allow_custom: bool,
) -> Result<ClientInfo, CimdError> {
    let doc: Document = serde_json::from_slice(body)
        .map_err(|e| CimdError::Invalid(format!("not valid JSON metadata: {e}")))?;
    if doc.client_id != client_id.as_str() {
        return Err(CimdError::Invalid(
            "its client_id is not the URL it was fetched from".into(),
        ));
    }
    if doc.client_secret.is_some() {
        return Err(CimdError::Invalid("it contains a client_secret".into()));
    }
    match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(other) => {
            return Err(CimdError::Invalid(format!(
                "token_endpoint_auth_method `{other}` is not supported (use none)"
            )))
        }
    }
    let uris = doc
        .redirect_uris
        .filter(|u| !u.is_empty())
        .ok_or_else(|| CimdError::Invalid("redirect_uris is missing".into()))?;
    let redirect_uris = uris
        .iter()
        .map(|u| RedirectUri::parse_registered(u, allow_custom).map_err(CimdError::Invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let name = match doc.client_name.filter(|n| !n.trim().is_empty()) {
        Some(n) => {
            check_display_name(&n).map_err(|e| CimdError::Invalid(format!("client_name {e}")))?;
            n
        }
        None => host.to_string(),
    };
    let host_lc = host.to_ascii_lowercase();
    Ok(ClientInfo {
        client_id: client_id.clone(),
        name,
        redirect_uris,
        secret: None,
        allowed_scopes: None,
        allowed_upstreams: None,
        trusted: cfg
            .trusted_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host_lc)),
        // Documents are static and shared by every client of an app: grant types we do not
        // offer are ignored rather than refused; without the field, both are assumed.
        refresh_allowed: doc
            .grant_types
            .is_none_or(|g| g.iter().any(|t| t == "refresh_token")),
        document_host: Some(host_lc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CimdConfig {
        CimdConfig {
            enabled: true,
            allowed_hosts: vec![],
            denied_hosts: vec!["evil.example".into()],
            trusted_hosts: vec![],
            allow_loopback_http: false,
        }
    }

    #[test]
    fn urls_must_be_https_with_a_path_in_normal_form() {
        assert!(check_url(
            "https://claude.ai/oauth/claude-code-client-metadata",
            &cfg()
        )
        .is_ok());
        for bad in [
            "http://claude.ai/x",
            "https://claude.ai",
            "https://claude.ai/",
            "https://claude.ai/x#frag",
            "https://user@claude.ai/x",
            "https://claude.ai/a/../b",
            "https://CLAUDE.ai/x",
        ] {
            assert!(check_url(bad, &cfg()).is_err(), "{bad}");
        }
        assert_eq!(
            check_url("https://evil.example/x", &cfg()).unwrap_err(),
            CimdError::HostNotAllowed("evil.example".into())
        );
        let mut only = cfg();
        only.allowed_hosts = vec!["claude.ai".into()];
        assert!(check_url("https://vscode.dev/x", &only).is_err());
        let mut dev = cfg();
        dev.allow_loopback_http = true;
        assert!(check_url("http://127.0.0.1:9/client.json", &dev).is_ok());
        assert!(check_url("http://example.com/client.json", &dev).is_err());
    }

    #[tokio::test]
    async fn address_literals_are_vetted_without_dns() {
        for (url, host) in [
            ("https://[::1]/client.json", "[::1]"),
            ("https://[fd00::1]/client.json", "[fd00::1]"),
            ("https://127.0.0.1/client.json", "127.0.0.1"),
        ] {
            let parsed = check_url(url, &cfg()).unwrap();
            let err = DocumentCache::default()
                .fetch(&parsed, &cfg())
                .await
                .err()
                .unwrap();
            assert_eq!(err, CimdError::NonPublicAddress(host.into()), "{url}");
        }
    }

    #[test]
    fn only_public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "140.82.112.3", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
