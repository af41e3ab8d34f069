//! File structs → [`Config`]: interpolates `${VAR}`s, parses every value into its type and
//! checks the whole, collecting every error with its place in the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::error::Source;
use super::file::{
    AuthSection, ClientSection, FileConfig, IdentityHeadersSection, ProviderSection, ScopeSection,
    ServerSection, Text, UpstreamSection,
};
use super::model::*;
use crate::crypto::SecretHash;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(120);
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
pub const DEFAULT_LOGIN_TTL: Duration = Duration::from_secs(600);

/// Paths the gateway answers itself; an upstream may not be routed at or below them.
/// Paths the gateway answers itself besides the authorization server's
/// ([`crate::oauth::PATHS`]); an upstream may not be routed at or below any of them.
pub const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz"];

pub(crate) struct Validator<'a, E> {
    pub src: Source<'a>,
    pub env: E,
}

impl<'a, E: Fn(&str) -> Option<String>> Validator<'a, E> {
    /// The string value with `${VAR}`s replaced, or `None` after recording the error.
    fn text(&mut self, value: &Text, key: &str) -> Option<String> {
        match super::interp::interpolate(value.get_ref(), &self.env) {
            Ok(s) => Some(s),
            Err(msg) => {
                self.src.push(value.span(), key, msg);
                None
            }
        }
    }

    /// Interpolates then parses with `parse`, recording either error at the value.
    fn parsed<T>(
        &mut self,
        value: &Text,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.text(value, key)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.src.push(value.span(), key, msg);
                None
            }
        }
    }

    fn duration(&mut self, value: &Option<Text>, key: &str, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        self.parsed(v, key, |s| {
            let d = humantime::parse_duration(s)
                .map_err(|e| format!("not a duration ({e}); write e.g. \"30s\" or \"5m\""))?;
            if d.is_zero() {
                return Err("must be greater than zero".into());
            }
            Ok(d)
        })
        .unwrap_or(default)
    }

    pub fn config(&mut self, file: FileConfig, config_dir: &Path) -> Option<Config> {
        let server = match &file.server {
            Some(s) => self.server(s, config_dir),
            None => {
                self.src.push(
                    0..0,
                    "server",
                    "a [server] table with public_url is required",
                );
                None
            }
        };
        let scopes = self.scopes(&file.scopes);
        let scope_names: Vec<String> = scopes.iter().map(|s| s.name.clone()).collect();
        let upstreams = self.upstreams(&file.upstreams, &scope_names);
        let upstream_names: Vec<String> = upstreams.iter().map(|u| u.name.to_string()).collect();
        let auth = self.auth(file.auth.as_ref(), &upstreams);
        let providers = self.providers(&file.providers);
        let clients = self.clients(&file.clients, &scope_names, &upstream_names);
        let cimd = self.cimd(file.cimd.as_ref());
        // Only when no [[provider]] is written at all: a provider with errors of its own has
        // been reported already, and its consequences are not news.
        if file.providers.is_empty() {
            if let (Some(u), Some(section)) = (
                upstreams.iter().find(|u| u.auth == UpstreamAuth::OAuth),
                file.upstreams.iter().find(|s| {
                    s.get_ref().auth.is_none()
                        || s.get_ref()
                            .auth
                            .as_ref()
                            .is_some_and(|a| a.get_ref() == "oauth")
                }),
            ) {
                self.src.push(
                    section.span(),
                    "provider",
                    format!("upstream `{}` requires OAuth (the default), so at least one [[provider]] is needed for people to log in; or set auth = \"none\" on it", u.name),
                );
            }
        }
        if !self.src.errors.is_empty() {
            return None;
        }
        Some(Config {
            source: self.src.path.to_path_buf(),
            server: server?,
            upstreams,
            auth,
            scopes,
            providers,
            clients,
            cimd,
        })
    }

    fn cimd(&mut self, section: Option<&Spanned<super::file::CimdSection>>) -> CimdConfig {
        let Some(section) = section else {
            return CimdConfig {
                enabled: true,
                allowed_hosts: vec![],
                denied_hosts: vec![],
                trusted_hosts: vec![],
                allow_loopback_http: false,
            };
        };
        let c = section.get_ref();
        let mut hosts = |list: &[Text], key: &str| -> Vec<String> {
            list.iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    self.parsed(h, &format!("cimd.{key}[{i}]"), |v| {
                        let v = v.trim().to_ascii_lowercase();
                        if v.is_empty() || v.contains(['/', ':', ' ', '@']) {
                            Err("must be a bare host name".to_string())
                        } else {
                            Ok(v)
                        }
                    })
                })
                .collect()
        };
        let allowed_hosts = hosts(&c.allowed_hosts, "allowed_hosts");
        let denied_hosts = hosts(&c.denied_hosts, "denied_hosts");
        let trusted_hosts = hosts(&c.trusted_hosts, "trusted_hosts");
        CimdConfig {
            enabled: c.enabled.unwrap_or(true),
            allowed_hosts,
            denied_hosts,
            trusted_hosts,
            allow_loopback_http: c.allow_loopback_http,
        }
    }

    /// A required key's raw value, or `None` after reporting it missing at its table `at`.
    fn present<'v>(
        &mut self,
        value: &'v Option<Text>,
        key: &str,
        at: std::ops::Range<usize>,
    ) -> Option<&'v Text> {
        if value.is_none() {
            self.src.push(at, key, "is required");
        }
        value.as_ref()
    }

    fn opt_text(&mut self, value: &Option<Text>, key: &str) -> Option<String> {
        value.as_ref().and_then(|v| self.text(v, key))
    }

    /// A required string: present and non-empty after interpolation.
    fn required(
        &mut self,
        value: &Option<Text>,
        key: &str,
        at: std::ops::Range<usize>,
        why: &str,
    ) -> Option<String> {
        match value {
            Some(v) => {
                let s = self.text(v, key)?;
                if s.trim().is_empty() {
                    self.src.push(v.span(), key, "must not be empty");
                    return None;
                }
                Some(s)
            }
            None => {
                self.src.push(at, key, format!("is required {why}"));
                None
            }
        }
    }

    fn auth(
        &mut self,
        section: Option<&Spanned<AuthSection>>,
        upstreams: &[Upstream],
    ) -> AuthConfig {
        let empty = AuthSection {
            session_key: None,
            access_token_ttl: None,
            refresh_token_ttl: None,
            refresh_grace: None,
            code_ttl: None,
            session_ttl: None,
            login_ttl: None,
            registration: None,
            registration_token: None,
            registration_rate_limit: None,
            unused_registration_ttl: None,
            allow_custom_scheme_redirects: false,
            default_upstream: None,
        };
        let span = section.map_or(0..0, |s| s.span());
        let a = section.map_or(&empty, |s| s.get_ref());
        let session_key = a
            .session_key
            .as_ref()
            .and_then(|k| self.parsed(k, "auth.session_key", crate::crypto::decode_key));
        let registration = match self
            .opt_text(&a.registration, "auth.registration")
            .as_deref()
        {
            None | Some("open") => Registration::Open,
            Some("off") => Registration::Off,
            Some("token") => {
                match self.required(
                    &a.registration_token,
                    "auth.registration_token",
                    span.clone(),
                    "when registration = \"token\"",
                ) {
                    Some(t) => Registration::Token(SecretHash::of(&t)),
                    None => Registration::Off,
                }
            }
            Some(other) => {
                let at = a.registration.as_ref().map_or(span.clone(), |r| r.span());
                self.src.push(
                    at,
                    "auth.registration",
                    format!("`{other}` is not one of \"open\", \"token\", \"off\""),
                );
                Registration::Off
            }
        };
        let default_upstream = a.default_upstream.as_ref().and_then(|d| {
            self.parsed(d, "auth.default_upstream", |s| {
                match upstreams.iter().find(|u| u.name.as_str() == s) {
                    Some(u) if u.auth == UpstreamAuth::OAuth => Ok(s.to_string()),
                    Some(_) => Err(format!(
                        "upstream `{s}` has auth = \"none\"; tokens are not issued for it"
                    )),
                    None => Err(format!("no upstream is named `{s}`")),
                }
            })
        });
        AuthConfig {
            session_key,
            access_token_ttl: self.duration(
                &a.access_token_ttl,
                "auth.access_token_ttl",
                DEFAULT_ACCESS_TOKEN_TTL,
            ),
            refresh_token_ttl: self.duration(
                &a.refresh_token_ttl,
                "auth.refresh_token_ttl",
                DEFAULT_REFRESH_TOKEN_TTL,
            ),
            refresh_grace: match &a.refresh_grace {
                None => DEFAULT_REFRESH_GRACE,
                Some(v) => self
                    .parsed(v, "auth.refresh_grace", |s| {
                        let d = humantime::parse_duration(s).map_err(|e| {
                            format!("not a duration ({e}); write e.g. \"30s\", or \"0s\" for none")
                        })?;
                        if d > Duration::from_secs(600) {
                            return Err(
                                "at most 10 minutes: the old token stays usable that long".into()
                            );
                        }
                        Ok(d)
                    })
                    .unwrap_or(DEFAULT_REFRESH_GRACE),
            },
            code_ttl: self.duration(&a.code_ttl, "auth.code_ttl", DEFAULT_CODE_TTL),
            session_ttl: self.duration(&a.session_ttl, "auth.session_ttl", DEFAULT_SESSION_TTL),
            login_ttl: self.duration(&a.login_ttl, "auth.login_ttl", DEFAULT_LOGIN_TTL),
            registration,
            registration_rate_limit: a
                .registration_rate_limit
                .as_ref()
                .map_or(20, |r| *r.get_ref()),
            unused_registration_ttl: self.duration(
                &a.unused_registration_ttl,
                "auth.unused_registration_ttl",
                Duration::from_secs(24 * 3600),
            ),
            allow_custom_scheme_redirects: a.allow_custom_scheme_redirects,
            default_upstream,
        }
    }

    fn scopes(&mut self, sections: &[Spanned<ScopeSection>]) -> Vec<ScopeDef> {
        let mut out: Vec<ScopeDef> = Vec::new();
        for (i, section) in sections.iter().enumerate() {
            let s = section.get_ref();
            let key = format!("scope[{i}].name");
            let Some(raw) = self.present(&s.name, &key, section.span()) else {
                continue;
            };
            let Some(name) = self.parsed(raw, &key, |n| {
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
                    return Err("must be printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)".into());
                }
                Ok(n.to_string())
            }) else {
                continue;
            };
            if out.iter().any(|d| d.name == name) {
                self.src
                    .push(raw.span(), key, format!("scope `{name}` is defined twice"));
                continue;
            }
            let description = self
                .opt_text(&s.description, &format!("scope[{i}].description"))
                .unwrap_or_else(|| name.clone());
            out.push(ScopeDef { name, description });
        }
        out
    }

    /// Checks that every listed scope is defined in a [[scope]].
    fn scope_list(&mut self, list: &[Text], key: &str, defined: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let k = format!("{key}[{i}]");
            if let Some(name) = self.parsed(s, &k, |n| {
                if defined.iter().any(|d| d == n) {
                    Ok(n.to_string())
                } else {
                    Err(format!("scope `{n}` is not defined in any [[scope]]"))
                }
            }) {
                out.push(name);
            }
        }
        out
    }

    fn providers(&mut self, sections: &[Spanned<ProviderSection>]) -> Vec<Provider> {
        let mut out: Vec<Provider> = Vec::new();
        for (i, section) in sections.iter().enumerate() {
            let p = section.get_ref();
            let key = |k: &str| format!("provider[{i}].{k}");
            let at = section.span();
            let Some(raw_id) = self.present(&p.id, &key("id"), at.clone()) else {
                continue;
            };
            let Some(id) = self.parsed(raw_id, &key("id"), |s| {
                UpstreamName::parse(s).map(|n| n.as_str().to_string())
            }) else {
                continue;
            };
            if out.iter().any(|o| o.id == id) {
                self.src.push(
                    raw_id.span(),
                    key("id"),
                    format!("provider `{id}` is defined twice"),
                );
                continue;
            }
            let Some(raw_kind) = self.present(&p.kind, &key("kind"), at.clone()) else {
                continue;
            };
            let Some(kind_name) = self.text(raw_kind, &key("kind")) else {
                continue;
            };
            let scopes = |v: &mut Self| -> Vec<String> {
                match &p.scopes {
                    Some(list) => list
                        .iter()
                        .enumerate()
                        .filter_map(|(j, s)| v.text(s, &format!("provider[{i}].scopes[{j}]")))
                        .collect(),
                    None => vec!["openid".into(), "email".into(), "profile".into()],
                }
            };
            let (kind, default_name) = match kind_name.as_str() {
                "oidc" | "google" | "microsoft" => {
                    let issuer = match kind_name.as_str() {
                        "google" => Some("https://accounts.google.com".to_string()),
                        "microsoft" => self
                            .required(
                                &p.tenant,
                                &key("tenant"),
                                at.clone(),
                                "for kind = \"microsoft\" (your directory's tenant id)",
                            )
                            .map(|t| format!("https://login.microsoftonline.com/{t}/v2.0")),
                        _ => self
                            .required(&p.issuer, &key("issuer"), at.clone(), "for kind = \"oidc\"")
                            .and_then(|iss| match url::Url::parse(&iss) {
                                Ok(u) if matches!(u.scheme(), "https" | "http") => {
                                    Some(iss.trim_end_matches('/').to_string())
                                }
                                _ => {
                                    self.src.push(
                                        p.issuer.as_ref().map_or(at.clone(), |v| v.span()),
                                        key("issuer"),
                                        "must be an https URL",
                                    );
                                    None
                                }
                            }),
                    };
                    let client_id = self.required(
                        &p.client_id,
                        &key("client_id"),
                        at.clone(),
                        "for OIDC providers",
                    );
                    let client_secret = self.required(
                        &p.client_secret,
                        &key("client_secret"),
                        at.clone(),
                        "for OIDC providers (use \"${ENV_VAR}\")",
                    );
                    let scopes = scopes(self);
                    let default_name = match kind_name.as_str() {
                        "google" => "Google",
                        "microsoft" => "Microsoft",
                        _ => "Single sign-on",
                    };
                    let (Some(issuer), Some(client_id), Some(client_secret)) =
                        (issuer, client_id, client_secret)
                    else {
                        continue;
                    };
                    (
                        ProviderKind::Oidc {
                            issuer,
                            client_id,
                            client_secret,
                            scopes,
                        },
                        default_name,
                    )
                }
                "github" => {
                    let client_id =
                        self.required(&p.client_id, &key("client_id"), at.clone(), "for GitHub");
                    let client_secret = self.required(
                        &p.client_secret,
                        &key("client_secret"),
                        at.clone(),
                        "for GitHub (use \"${ENV_VAR}\")",
                    );
                    let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
                        continue;
                    };
                    (
                        ProviderKind::GitHub {
                            client_id,
                            client_secret,
                        },
                        "GitHub",
                    )
                }
                "local" => {
                    let mut users: Vec<LocalUser> = Vec::new();
                    if p.users.is_empty() {
                        self.src.push(
                            at.clone(),
                            key("users"),
                            "a local provider needs at least one [[provider.users]]",
                        );
                    }
                    for (j, user) in p.users.iter().enumerate() {
                        let u = user.get_ref();
                        let k = |f: &str| format!("provider[{i}].users[{j}].{f}");
                        let (Some(raw_user), Some(raw_hash)) = (
                            self.present(&u.username, &k("username"), user.span()),
                            self.present(&u.password_hash, &k("password_hash"), user.span()),
                        ) else {
                            continue;
                        };
                        let Some(username) = self.text(raw_user, &k("username")) else {
                            continue;
                        };
                        if username.is_empty() || users.iter().any(|x| x.username == username) {
                            self.src.push(
                                raw_user.span(),
                                k("username"),
                                "must be non-empty and unique",
                            );
                            continue;
                        }
                        let Some(password_hash) = self.parsed(raw_hash, &k("password_hash"), |h| {
                            argon2::password_hash::PasswordHash::new(h)
                                .map(|_| h.to_string())
                                .map_err(|_| "not an argon2 PHC hash; create one with `authgate hash-password`".to_string())
                        }) else {
                            continue;
                        };
                        let email = self.opt_text(&u.email, &k("email"));
                        let name = self.opt_text(&u.name, &k("name"));
                        let groups = u
                            .groups
                            .iter()
                            .enumerate()
                            .filter_map(|(g, t)| {
                                self.text(t, &format!("provider[{i}].users[{j}].groups[{g}]"))
                            })
                            .collect();
                        users.push(LocalUser {
                            username,
                            password_hash,
                            email,
                            name,
                            groups,
                        });
                    }
                    (ProviderKind::Local { users }, "Local account")
                }
                other => {
                    self.src.push(raw_kind.span(), key("kind"), format!("`{other}` is not one of \"oidc\", \"google\", \"microsoft\", \"github\", \"local\""));
                    continue;
                }
            };
            let display_name = self
                .opt_text(&p.display_name, &key("display_name"))
                .unwrap_or_else(|| default_name.to_string());
            let reverify_every = p.reverify_every.as_ref().map(|_| {
                self.duration(
                    &p.reverify_every,
                    &key("reverify_every"),
                    Duration::from_secs(3600),
                )
            });
            out.push(Provider {
                id,
                display_name,
                kind,
                reverify_every,
            });
        }
        out
    }

    fn clients(
        &mut self,
        sections: &[Spanned<ClientSection>],
        scopes: &[String],
        upstreams: &[String],
    ) -> Vec<Client> {
        let mut out: Vec<Client> = Vec::new();
        for (i, section) in sections.iter().enumerate() {
            let c = section.get_ref();
            let key = |k: &str| format!("client[{i}].{k}");
            let (Some(raw_id), Some(raw_uris)) = (
                self.present(&c.client_id, &key("client_id"), section.span()),
                c.redirect_uris.as_ref().or_else(|| {
                    self.src.push(
                        section.span(),
                        key("redirect_uris"),
                        "is required (at least one redirect URI)",
                    );
                    None
                }),
            ) else {
                continue;
            };
            let Some(client_id) = self.parsed(raw_id, &key("client_id"), |s| {
                if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                    Err("must be 1 to 255 printable ASCII characters".into())
                } else {
                    Ok(s.to_string())
                }
            }) else {
                continue;
            };
            if out.iter().any(|o| o.client_id == client_id) {
                self.src.push(
                    raw_id.span(),
                    key("client_id"),
                    format!("client `{client_id}` is defined twice"),
                );
                continue;
            }
            let secret = self
                .opt_text(&c.secret, &key("secret"))
                .map(|s| SecretHash::of(&s));
            let mut redirect_uris = Vec::new();
            if raw_uris.get_ref().is_empty() {
                self.src.push(
                    raw_uris.span(),
                    key("redirect_uris"),
                    "must list at least one redirect URI",
                );
            }
            for (j, r) in raw_uris.get_ref().iter().enumerate() {
                if let Some(uri) = self.parsed(r, &format!("client[{i}].redirect_uris[{j}]"), |s| {
                    crate::oauth::types::RedirectUri::parse_registered(s, true).map(|u| u.0)
                }) {
                    redirect_uris.push(uri);
                }
            }
            let client_scopes = c
                .scopes
                .as_ref()
                .map(|l| self.scope_list(l, &key("scopes"), scopes));
            let client_upstreams = c.upstreams.as_ref().map(|l| {
                l.iter()
                    .enumerate()
                    .filter_map(|(j, u)| {
                        self.parsed(u, &format!("client[{i}].upstreams[{j}]"), |s| {
                            if upstreams.iter().any(|n| n == s) {
                                Ok(s.to_string())
                            } else {
                                Err(format!("no upstream is named `{s}`"))
                            }
                        })
                    })
                    .collect()
            });
            let name = self
                .opt_text(&c.name, &key("name"))
                .unwrap_or_else(|| client_id.clone());
            out.push(Client {
                client_id,
                name,
                secret,
                redirect_uris,
                scopes: client_scopes,
                upstreams: client_upstreams,
                trusted: c.trusted,
            });
        }
        out
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
            if let Some(v) = value {
                let key = format!("upstream[{i}].identity_headers.{field}");
                let parsed = match super::interp::interpolate(v.get_ref(), &self.env) {
                    Ok(raw) => http::HeaderName::from_bytes(raw.to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("`{raw}` is not a valid header name")),
                    Err(e) => Err(e),
                };
                match parsed {
                    Ok(name)
                        if matches!(
                            name.as_str(),
                            "authorization"
                                | "host"
                                | "cookie"
                                | "content-length"
                                | "transfer-encoding"
                        ) =>
                    {
                        self.src
                            .push(v.span(), key, format!("`{name}` cannot carry identity"));
                    }
                    Ok(name) => *slot = name,
                    Err(msg) => self.src.push(v.span(), key, msg),
                }
            }
        }
        h
    }

    fn server(
        &mut self,
        section: &Spanned<ServerSection>,
        config_dir: &Path,
    ) -> Option<ServerConfig> {
        let s = section.get_ref();
        let mut listen = Vec::new();
        match &s.listen {
            None => listen.push(
                DEFAULT_LISTEN
                    .parse()
                    .expect("default listen address parses"),
            ),
            Some(list) if list.get_ref().is_empty() => {
                self.src.push(
                    list.span(),
                    "server.listen",
                    "must list at least one address",
                );
            }
            Some(list) => {
                for (i, addr) in list.get_ref().iter().enumerate() {
                    let key = format!("server.listen[{i}]");
                    if let Some(a) = self.parsed(addr, &key, |s| {
                        s.parse::<SocketAddr>().map_err(|_| {
                            format!(
                                "`{s}` is not an IP:port socket address (e.g. \"127.0.0.1:8080\")"
                            )
                        })
                    }) {
                        if listen.contains(&a) {
                            self.src
                                .push(addr.span(), key, format!("`{a}` is listed twice"));
                        } else {
                            listen.push(a);
                        }
                    }
                }
            }
        }
        let raw_url = self.present(&s.public_url, "server.public_url", section.span());
        let public_url =
            raw_url.and_then(|u| self.parsed(u, "server.public_url", PublicUrl::parse));
        if let (Some(url), Some(raw)) = (&public_url, raw_url) {
            if url.scheme() == "http" && !url.is_loopback() && !s.allow_insecure_http {
                self.src.push(
                    raw.span(),
                    "server.public_url",
                    "plain http is only allowed on a loopback host; use https (TLS may end at a proxy in front) or set server.allow_insecure_http = true",
                );
            }
        }
        let data_dir = match &s.data_dir {
            Some(d) => self.text(d, "server.data_dir").map(|d| config_dir.join(d)),
            None => Some(config_dir.join("data")),
        };
        let threads = match &s.threads {
            Some(t) if *t.get_ref() == 0 || *t.get_ref() > 1024 => {
                self.src
                    .push(t.span(), "server.threads", "must be between 1 and 1024");
                1
            }
            Some(t) => *t.get_ref(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut allowed_origins = Vec::new();
        for (i, o) in s.allowed_origins.iter().flatten().enumerate() {
            let key = format!("server.allowed_origins[{i}]");
            if let Some(origin) = self.parsed(o, &key, |v| {
                if v == "*" {
                    return Ok(v.to_string());
                }
                let url = url::Url::parse(v)
                    .map_err(|_| format!("`{v}` is not an origin like https://app.example.com"))?;
                if url.path() != "/"
                    || url.query().is_some()
                    || !matches!(url.scheme(), "http" | "https")
                {
                    return Err(format!(
                        "`{v}` is not an origin (scheme://host[:port], no path)"
                    ));
                }
                Ok(url.origin().ascii_serialization())
            }) {
                allowed_origins.push(origin);
            }
        }
        let mut limit = |v: &Option<Spanned<usize>>, key: &str, default: usize, min: usize| match v
        {
            Some(n) if *n.get_ref() < min => {
                self.src
                    .push(n.span(), key, format!("must be at least {min}"));
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        };
        let header_limits = HeaderLimits {
            max_line: limit(&s.max_header_line, "server.max_header_line", 8 * 1024, 1024),
            max_total: limit(
                &s.max_header_size,
                "server.max_header_size",
                32 * 1024,
                1024,
            ),
            max_count: limit(&s.max_headers, "server.max_headers", 100, 10),
        };
        Some(ServerConfig {
            header_limits,
            allowed_origins,
            listen,
            public_url: public_url?,
            data_dir: data_dir?,
            threads,
        })
    }

    fn upstreams(
        &mut self,
        sections: &[Spanned<UpstreamSection>],
        scopes: &[String],
    ) -> Vec<Upstream> {
        let mut out = Vec::new();
        let mut names: HashMap<UpstreamName, usize> = HashMap::new();
        let mut routes: HashMap<(Option<String>, RoutePath), usize> = HashMap::new();
        if sections.is_empty() {
            self.src.errors.push(self.src.error_at(
                0..0,
                "upstream",
                "no [[upstream]] is configured; the gateway would have nothing to serve",
            ));
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
            let path = raw_path.and_then(|p| {
                self.parsed(p, &key("path"), |s| {
                    let p = RoutePath::parse(s)?;
                    for reserved in RESERVED_PATHS.iter().chain(crate::oauth::PATHS) {
                        if p.as_str() != "/"
                            && (p.as_str() == *reserved
                                || p.as_str().starts_with(&format!("{reserved}/")))
                        {
                            return Err(format!("`{reserved}` is answered by the gateway itself"));
                        }
                    }
                    Ok(p)
                })
            });
            let host = match &u.host {
                Some(h) => self.parsed(h, &key("host"), |s| {
                    let h = s.trim().to_ascii_lowercase();
                    if h.is_empty() || h.contains(['/', ':', ' ', '@']) {
                        return Err("must be a bare host name without scheme, port or path".into());
                    }
                    Ok(Some(h))
                }),
                None => Some(None),
            };
            let url = raw_url.and_then(|v| self.parsed(v, &key("url"), UpstreamUrl::parse));
            let connect_timeout = self.duration(
                &u.connect_timeout,
                &key("connect_timeout"),
                DEFAULT_CONNECT_TIMEOUT,
            );
            let idle_timeout =
                self.duration(&u.idle_timeout, &key("idle_timeout"), DEFAULT_IDLE_TIMEOUT);
            let dns_refresh =
                self.duration(&u.dns_refresh, &key("dns_refresh"), DEFAULT_DNS_REFRESH);
            let auth = match &u.auth {
                None => UpstreamAuth::OAuth,
                Some(a) => match self.text(a, &key("auth")).as_deref() {
                    Some("oauth") | None => UpstreamAuth::OAuth,
                    Some("none") => UpstreamAuth::None,
                    Some(other) => {
                        self.src.push(
                            a.span(),
                            key("auth"),
                            format!("`{other}` is not one of \"oauth\", \"none\""),
                        );
                        UpstreamAuth::OAuth
                    }
                },
            };
            let upstream_scopes = self.scope_list(&u.scopes, &key("scopes"), scopes);
            let identity_headers = self.identity_headers(&u.identity_headers, i);
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
                host,
                path,
                url,
                connect_timeout,
                idle_timeout,
                preserve_host: u.preserve_host,
                dns_refresh,
                strip_common_identity_headers: u.strip_common_identity_headers.unwrap_or(true),
                auth,
                scopes: upstream_scopes,
                identity_headers,
            });
        }
        out
    }
}
