//! `[auth]` (lifetimes, sealing key, registration, the default upstream) and `[cimd]`.

use std::time::Duration;

use toml::Spanned;

use super::{bare_host, Validator};
use crate::config::file::{AuthSection, CimdSection, RegistrationMode};
use crate::config::model::{AuthConfig, CimdConfig, Registration, Upstream, UpstreamAuth};
use crate::vocab::{SecretHash, UpstreamName};

pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(120);
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
pub const DEFAULT_LOGIN_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_UNUSED_REGISTRATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// The authorization server's bodies are a few hundred bytes: seconds are plenty.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `refresh_grace`: the old refresh token stays usable that long.
const MAX_REFRESH_GRACE: Duration = Duration::from_secs(600);

impl<E: Fn(&str) -> Option<String>> Validator<'_, E> {
    pub(super) fn auth(
        &mut self,
        section: Option<&Spanned<AuthSection>>,
        upstreams: &[Upstream],
    ) -> AuthConfig {
        let empty = AuthSection::default();
        let span = section.map_or(0..0, |s| s.span());
        let a = section.map_or(&empty, |s| s.get_ref());
        let session_key = a
            .session_key
            .as_ref()
            .and_then(|k| self.parsed(k, "auth.session_key", crate::crypto::decode_key));
        let previous_session_keys = self.parsed_list(
            &a.previous_session_keys,
            "auth.previous_session_keys",
            crate::crypto::decode_key,
        );
        if !previous_session_keys.is_empty() && session_key.is_none() && a.session_key.is_none() {
            self.src.push(
                span.clone(),
                "auth.previous_session_keys",
                "needs auth.session_key: the key values are sealed with from now on",
            );
        }
        let registration = match a.registration.as_ref().map(|r| *r.get_ref()) {
            None | Some(RegistrationMode::Open) => Registration::Open,
            Some(RegistrationMode::Off) => Registration::Off,
            Some(RegistrationMode::Token) => match self.required(
                &a.registration_token,
                "auth.registration_token",
                span.clone(),
                "when registration = \"token\"",
            ) {
                Some(t) => Registration::Token(SecretHash::of(&t)),
                None => Registration::Off,
            },
        };
        let default_upstream = a.default_upstream.as_ref().and_then(|d| {
            self.parsed(d, "auth.default_upstream", |s| {
                match upstreams.iter().find(|u| u.name.as_str() == s) {
                    Some(u) if u.auth == UpstreamAuth::OAuth => UpstreamName::parse(s),
                    Some(_) => Err(format!(
                        "upstream `{s}` has auth = \"none\"; tokens are not issued for it"
                    )),
                    None => Err(format!("no upstream is named `{s}`")),
                }
            })
        });
        let refresh_grace = self.duration_within(
            &a.refresh_grace,
            "auth.refresh_grace",
            DEFAULT_REFRESH_GRACE,
            MAX_REFRESH_GRACE,
        );
        AuthConfig {
            session_key,
            previous_session_keys,
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
            refresh_grace,
            body_timeout: self.duration(&a.body_timeout, "auth.body_timeout", DEFAULT_BODY_TIMEOUT),
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
                DEFAULT_UNUSED_REGISTRATION_TTL,
            ),
            allow_custom_scheme_redirects: a.allow_custom_scheme_redirects,
            default_upstream,
        }
    }

    pub(super) fn cimd(&mut self, section: Option<&Spanned<CimdSection>>) -> CimdConfig {
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
        CimdConfig {
            enabled: c.enabled.unwrap_or(true),
            allowed_hosts: self.parsed_list(&c.allowed_hosts, "cimd.allowed_hosts", bare_host),
            denied_hosts: self.parsed_list(&c.denied_hosts, "cimd.denied_hosts", bare_host),
            trusted_hosts: self.parsed_list(&c.trusted_hosts, "cimd.trusted_hosts", bare_host),
            allow_loopback_http: c.allow_loopback_http,
        }
    }
}
