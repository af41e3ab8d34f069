//! `[[upstream]]`: routes (name, host, path), where they go, timeouts, auth and scopes, and
//! the identity header names each upstream receives.

use std::collections::HashMap;
use std::time::Duration;

use toml::Spanned;

use super::{bare_host, Validator};
use crate::config::file::{
    CredentialKind, CredentialSection, IdentityHeadersSection, SignedIdentitySection, Text,
    UpstreamSection,
};
use crate::config::model::{
    IdentityHeaders, RoutePath, ScopeDef, Upstream, UpstreamAuth, UpstreamUrl,
};
use crate::config::{ClientCredentials, SignedIdentity, UpstreamCredential};
use crate::vocab::{paths, UpstreamName};

/// Shorter than the keep-alive timeout of common upstream servers (Node.js and uvicorn close
/// idle connections after 5 s), so a pooled connection is rarely one the upstream just closed.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(4);
/// The largest request body forwarded by default: MCP messages are small; uploads are not.
pub const DEFAULT_MAX_BODY_SIZE: usize = 4 * 1024 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
/// How often each replica of an upstream is checked.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Headers that carry something else and can never carry identity.
const NOT_IDENTITY: &[&str] = &[
    "authorization",
    "host",
    "cookie",
    "content-length",
    "transfer-encoding",
];

impl<E: Fn(&str) -> Option<String>> Validator<'_, E> {
    pub(super) fn upstreams(
        &mut self,
        sections: &[Spanned<UpstreamSection>],
        scopes: &[ScopeDef],
    ) -> Vec<Upstream> {
        let mut out = Vec::new();
        let mut names: HashMap<UpstreamName, usize> = HashMap::new();
        let mut routes: HashMap<(Option<String>, RoutePath), usize> = HashMap::new();
        if sections.is_empty() {
            self.src.push(
                0..0,
                "upstream",
                "no [[upstream]] is configured; the gateway would have nothing to serve",
            );
        }
        for (i, section) in sections.iter().enumerate() {
            let u = section.get_ref();
            let key = |k: &str| format!("upstream[{i}].{k}");
            let at = section.span();
            let raw_name = self.present(&u.name, &key("name"), at.clone());
            let raw_path = self.present(&u.path, &key("path"), at.clone());
            let raw_url = self.present(&u.url, &key("url"), at.clone());
            let name = raw_name.and_then(|n| self.parsed(n, &key("name"), UpstreamName::parse));
            if let (Some(n), Some(raw)) = (&name, raw_name) {
                if let Some(first) = names.insert(n.clone(), i) {
                    self.src.push(
                        raw.span(),
                        key("name"),
                        format!("`{n}` is already the name of upstream[{first}]"),
                    );
                }
            }
            let path = raw_path.and_then(|p| self.parsed(p, &key("path"), route_path));
            let host = match &u.host {
                Some(h) => self.parsed(h, &key("host"), bare_host).map(Some),
                None => Some(None),
            };
            let url = raw_url.and_then(|v| self.parsed(v, &key("url"), UpstreamUrl::parse));
            let mut replicas = Vec::new();
            for (j, raw) in u.replicas.iter().enumerate() {
                let Some(r) = self.parsed(raw, &key(&format!("replicas[{j}]")), UpstreamUrl::parse)
                else {
                    continue;
                };
                let same = url.as_ref().is_some_and(|u| *u == r) || replicas.contains(&r);
                if same {
                    self.src.push(
                        raw.span(),
                        key(&format!("replicas[{j}]")),
                        "is listed twice (url and replicas name each replica once)",
                    );
                } else if url.as_ref().is_some_and(|u| u.tls != r.tls) {
                    self.src.push(
                        raw.span(),
                        key(&format!("replicas[{j}]")),
                        "must use the same scheme as url (http or https)",
                    );
                } else {
                    replicas.push(r);
                }
            }
            let health_check_interval = self.duration(
                &u.health_check_interval,
                &key("health_check_interval"),
                DEFAULT_HEALTH_CHECK_INTERVAL,
            );
            let connect_timeout = self.duration(
                &u.connect_timeout,
                &key("connect_timeout"),
                DEFAULT_CONNECT_TIMEOUT,
            );
            let idle_timeout =
                self.duration(&u.idle_timeout, &key("idle_timeout"), DEFAULT_IDLE_TIMEOUT);
            let dns_refresh =
                self.duration(&u.dns_refresh, &key("dns_refresh"), DEFAULT_DNS_REFRESH);
            let upstream_scopes = self.scope_list(&u.scopes, &key("scopes"), scopes);
            let max_body_size = match &u.max_body_size {
                Some(n) if *n.get_ref() < 1024 => {
                    self.src
                        .push(n.span(), key("max_body_size"), "must be at least 1024");
                    DEFAULT_MAX_BODY_SIZE
                }
                Some(n) => *n.get_ref(),
                None => DEFAULT_MAX_BODY_SIZE,
            };
            let identity_headers = self.identity_headers(&u.identity_headers, i);
            let signed_identity = self.signed_identity(&u.signed_identity, i);
            let credential = self.credential(&u.credential, i);
            if let (Some(c), Some(UpstreamAuth::None)) = (&credential, u.auth) {
                if c.per_person() {
                    let at = u.credential.as_ref().map_or(at.clone(), |c| c.span());
                    self.src.push(
                        at,
                        format!("upstream[{i}].credential.kind"),
                        "sends each person's own account, so it needs people signed in: remove auth = \"none\"",
                    );
                }
            }
            let (Some(name), Some(path), Some(host), Some(url)) = (name, path, host, url) else {
                continue;
            };
            if let Some(first) = routes.insert((host.clone(), path.clone()), i) {
                let place = host
                    .as_deref()
                    .map(|h| format!(" on host `{h}`"))
                    .unwrap_or_default();
                self.src.push(
                    raw_path.map_or(at.clone(), |p| p.span()),
                    key("path"),
                    format!(
                        "`{}`{place} is already served by upstream[{first}]",
                        path.as_str()
                    ),
                );
            }
            out.push(Upstream {
                name,
                check_key: next_check_key(),
                host,
                path,
                url,
                replicas,
                health_check_interval,
                connect_timeout,
                idle_timeout,
                preserve_host: u.preserve_host,
                dns_refresh,
                strip_common_identity_headers: u.strip_common_identity_headers.unwrap_or(true),
                auth: u.auth.unwrap_or(UpstreamAuth::OAuth),
                scopes: upstream_scopes,
                identity_headers,
                max_body_size,
                keepalive_timeout: self.duration(
                    &u.keepalive_timeout,
                    &key("keepalive_timeout"),
                    DEFAULT_KEEPALIVE_TIMEOUT,
                ),
                http2: u.http2,
                signed_identity,
                credential,
            });
        }
        out
    }

    fn credential(
        &mut self,
        section: &Option<Spanned<CredentialSection>>,
        i: usize,
    ) -> Option<UpstreamCredential> {
        let section = section.as_ref()?;
        let c = section.get_ref();
        let at = section.span();
        let key = |k: &str| format!("upstream[{i}].credential.{k}");
        let Some(kind) = c.kind.as_ref().map(|k| *k.get_ref()) else {
            self.src.push(
                at,
                key("kind"),
                "is required: \"header\", \"bearer\", \"basic\", \"client_credentials\", \"connected_account\", \"user_account\" or \"upstream_oauth\"",
            );
            return None;
        };
        let why = "for this kind (use \"${ENV_VAR}\" for secrets)";
        let header_value = |v: String, k: &str, src: &mut crate::config::error::Source<'_>| {
            match http::HeaderValue::from_str(&v) {
                Ok(mut h) => {
                    h.set_sensitive(true);
                    Some(h)
                }
                Err(_) => {
                    src.push(at.clone(), key(k), "is not a valid header value");
                    None
                }
            }
        };
        match kind {
            CredentialKind::UpstreamOauth => {
                let scopes = self.parsed_list(&c.scopes, &key("scopes"), |s| Ok(s.to_string()));
                Some(UpstreamCredential::UpstreamOAuth { scopes })
            }
            CredentialKind::Header | CredentialKind::Bearer => {
                let value = self.required(&c.value, &key("value"), at.clone(), why)?;
                let name = match (kind, &c.header) {
                    (CredentialKind::Header, Some(h)) => self.parsed(h, &key("header"), |raw| {
                        http::HeaderName::from_bytes(raw.to_ascii_lowercase().as_bytes())
                            .map_err(|_| format!("`{raw}` is not a valid header name"))
                    })?,
                    (CredentialKind::Header, None) => {
                        self.src.push(
                            at,
                            key("header"),
                            "is required for kind = \"header\" (e.g. \"X-Api-Key\")",
                        );
                        return None;
                    }
                    _ => http::header::AUTHORIZATION,
                };
                let value = match kind {
                    CredentialKind::Bearer => format!("Bearer {value}"),
                    _ => value,
                };
                let value = header_value(value, "value", &mut self.src)?;
                Some(UpstreamCredential::Header { name, value })
            }
            CredentialKind::Basic => {
                let user = self.required(&c.username, &key("username"), at.clone(), why)?;
                let password = self.required(&c.password, &key("password"), at.clone(), why)?;
                use base64::Engine;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let value = header_value(format!("Basic {encoded}"), "password", &mut self.src)?;
                Some(UpstreamCredential::Header {
                    name: http::header::AUTHORIZATION,
                    value,
                })
            }
            CredentialKind::ClientCredentials
            | CredentialKind::ConnectedAccount
            | CredentialKind::UserAccount => {
                let token_url = self.endpoint(&c.token_url, &key("token_url"), &at, why);
                let authorize_url = match kind {
                    CredentialKind::ConnectedAccount | CredentialKind::UserAccount => {
                        Some(self.endpoint(&c.authorize_url, &key("authorize_url"), &at, why))
                    }
                    _ => None,
                };
                let client_id = self.required(&c.client_id, &key("client_id"), at.clone(), why);
                let client_secret =
                    self.required(&c.client_secret, &key("client_secret"), at.clone(), why);
                let scopes = self.parsed_list(&c.scopes, &key("scopes"), |s| Ok(s.to_string()));
                let resource = self.opt_text(&c.resource, &key("resource"));
                let grant = ClientCredentials {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_secret: crate::vocab::Secret::new(client_secret?),
                    scopes,
                    resource,
                };
                Some(match (kind, authorize_url) {
                    (CredentialKind::UserAccount, Some(a)) => UpstreamCredential::UserAccount {
                        authorize_url: a?,
                        grant,
                    },
                    (_, Some(a)) => UpstreamCredential::ConnectedAccount {
                        authorize_url: a?,
                        grant,
                    },
                    (_, None) => UpstreamCredential::ClientCredentials(grant),
                })
            }
        }
    }

    /// A required endpoint URL: https, or http on a loopback host.
    fn endpoint(
        &mut self,
        value: &Option<Text>,
        key: &str,
        at: &std::ops::Range<usize>,
        why: &str,
    ) -> Option<String> {
        let u = self.required(value, key, at.clone(), why)?;
        match url::Url::parse(&u) {
            Ok(p)
                if p.scheme() == "https"
                    || p.host().is_some_and(|h| crate::vocab::is_loopback_host(&h)) =>
            {
                Some(u)
            }
            _ => {
                self.src.push(
                    at.clone(),
                    key,
                    "must be an https URL (http only on loopback)",
                );
                None
            }
        }
    }

    fn signed_identity(
        &mut self,
        section: &Option<Spanned<SignedIdentitySection>>,
        i: usize,
    ) -> Option<SignedIdentity> {
        let s = section.as_ref()?.get_ref();
        let key = |k: &str| format!("upstream[{i}].signed_identity.{k}");
        let header = match &s.header {
            Some(v) => self.parsed(v, &key("header"), |raw| {
                let name = http::HeaderName::from_bytes(raw.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("`{raw}` is not a valid header name"))?;
                if NOT_IDENTITY.contains(&name.as_str()) {
                    return Err(format!("`{name}` cannot carry identity"));
                }
                Ok(name)
            })?,
            None => http::HeaderName::from_static("x-authgate-assertion"),
        };
        let lifetime = self.duration(&s.lifetime, &key("lifetime"), Duration::from_secs(300));
        if lifetime > Duration::from_secs(3600) || lifetime < Duration::from_secs(10) {
            let at = s.lifetime.as_ref().map_or(0..0, |v| v.span());
            self.src
                .push(at, key("lifetime"), "must be between 10s and 1h");
        }
        let audience = self
            .opt_text(&s.audience, &key("audience"))
            .unwrap_or_default();
        Some(SignedIdentity {
            header,
            lifetime,
            audience,
        })
    }

    fn identity_headers(
        &mut self,
        section: &Option<Spanned<IdentityHeadersSection>>,
        i: usize,
    ) -> IdentityHeaders {
        let mut h = IdentityHeaders::default();
        let Some(section) = section else { return h };
        let s = section.get_ref();
        let fields: [(&Option<Text>, &str, &mut http::HeaderName); 6] = [
            (&s.user, "user", &mut h.user),
            (&s.email, "email", &mut h.email),
            (&s.name, "name", &mut h.name),
            (&s.groups, "groups", &mut h.groups),
            (&s.client_id, "client_id", &mut h.client_id),
            (&s.scopes, "scopes", &mut h.scopes),
        ];
        for (value, field, slot) in fields {
            let Some(v) = value else { continue };
            let key = format!("upstream[{i}].identity_headers.{field}");
            let parsed = self.parsed(v, &key, |raw| {
                let name = http::HeaderName::from_bytes(raw.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("`{raw}` is not a valid header name"))?;
                if NOT_IDENTITY.contains(&name.as_str()) {
                    return Err(format!("`{name}` cannot carry identity"));
                }
                Ok(name)
            });
            if let Some(name) = parsed {
                *slot = name;
            }
        }
        h
    }
}

/// A route path that does not claim any of the gateway's own paths.
fn route_path(s: &str) -> Result<RoutePath, String> {
    let p = RoutePath::parse(s)?;
    if p.as_str() != "/" {
        if let Some(reserved) = paths::RESERVED
            .iter()
            .find(|r| p.as_str() == **r || p.as_str().starts_with(&format!("{r}/")))
        {
            return Err(format!("`{reserved}` is answered by the gateway itself"));
        }
    }
    Ok(p)
}

/// A fresh [`Upstream::check_key`].
fn next_check_key() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
