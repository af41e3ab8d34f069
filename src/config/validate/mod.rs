//! File structs → [`Config`]: interpolates `${VAR}`s, parses every value into its type and
//! checks the whole, collecting every error with its place in the file. One file per
//! section; this one holds the shared helpers and puts the sections together.

mod auth;
mod client;
mod ops;
mod policy;
mod provider;
mod server;
mod upstream;

use std::path::Path;
use std::time::Duration;

use super::error::Source;
use super::file::{FileConfig, Text};
use super::model::*;

pub(crate) struct Validator<'a, E> {
    pub src: Source<'a>,
    pub env: E,
}

type Span = std::ops::Range<usize>;

impl<'a, E: Fn(&str) -> Option<String>> Validator<'a, E> {
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
        let upstreams = self.upstreams(&file.upstreams, &scopes);
        let auth = self.auth(file.auth.as_ref(), &upstreams);
        let public_url = server.as_ref().map(|s| &s.public_url);
        let providers = self.providers(&file.providers, public_url);
        let clients = self.clients(&file.clients, &scopes, &upstreams);
        let cimd = self.cimd(file.cimd.as_ref());
        let admin = self.admin(file.admin.as_ref(), server.as_ref().map(|s| &s.listen[..]));
        let audit = self.audit(file.audit.as_ref(), config_dir);
        let store = self.store(file.store.as_ref(), config_dir, file.auth.as_ref());
        let policy = self.policy(
            file.policy.as_ref(),
            config_dir,
            &upstreams,
            &providers,
            &scopes,
        );
        // Only when no [[provider]] is written at all: a provider with errors of its own has
        // been reported already, and its consequences are not news.
        if file.providers.is_empty() {
            let oauth = |s: &toml::Spanned<super::file::UpstreamSection>| {
                s.get_ref().auth.unwrap_or(UpstreamAuth::OAuth) == UpstreamAuth::OAuth
            };
            if let (Some(u), Some(section)) = (
                upstreams.iter().find(|u| u.auth == UpstreamAuth::OAuth),
                file.upstreams.iter().find(|s| oauth(s)),
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
        let mut config = Config {
            source: self.src.path.to_path_buf(),
            server: server?,
            upstreams,
            auth,
            scopes,
            providers,
            clients,
            cimd,
            admin,
            audit,
            policy: std::sync::Arc::new(policy),
            store,
        };
        // A signed assertion's audience defaults to the upstream's resource URL.
        for i in 0..config.upstreams.len() {
            let resource = config.resource_url(&config.upstreams[i]);
            if let Some(s) = config.upstreams[i].signed_identity.as_mut() {
                if s.audience.is_empty() {
                    s.audience = resource;
                }
            }
        }
        Some(config)
    }

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

    fn opt_text(&mut self, value: &Option<Text>, key: &str) -> Option<String> {
        value.as_ref().and_then(|v| self.text(v, key))
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

    /// A list of values each parsed with `parse`; the bad ones are reported and left out.
    fn parsed_list<T>(
        &mut self,
        list: &[Text],
        key: &str,
        mut parse: impl FnMut(&str) -> Result<T, String>,
    ) -> Vec<T> {
        list.iter()
            .enumerate()
            .filter_map(|(i, v)| self.parsed(v, &format!("{key}[{i}]"), &mut parse))
            .collect()
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

    /// A duration that may be zero, up to `max`.
    fn duration_within(
        &mut self,
        value: &Option<Text>,
        key: &str,
        default: Duration,
        max: Duration,
    ) -> Duration {
        let Some(v) = value else { return default };
        self.parsed(v, key, |s| {
            let d = humantime::parse_duration(s).map_err(|e| {
                format!("not a duration ({e}); write e.g. \"30s\", or \"0s\" for none")
            })?;
            if d > max {
                return Err(format!("at most {}", humantime::format_duration(max)));
            }
            Ok(d)
        })
        .unwrap_or(default)
    }

    /// A count of at least `min`; a smaller one is reported and `default` used.
    fn at_least(
        &mut self,
        value: &Option<toml::Spanned<usize>>,
        key: &str,
        default: usize,
        min: usize,
    ) -> usize {
        match value {
            Some(n) if *n.get_ref() < min => {
                self.src
                    .push(n.span(), key, format!("must be at least {min}"));
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        }
    }

    /// A required key's raw value, or `None` after reporting it missing at its table `at`.
    fn present<'v>(&mut self, value: &'v Option<Text>, key: &str, at: Span) -> Option<&'v Text> {
        if value.is_none() {
            self.src.push(at, key, "is required");
        }
        value.as_ref()
    }

    /// A required string: present and non-empty after interpolation.
    fn required(&mut self, value: &Option<Text>, key: &str, at: Span, why: &str) -> Option<String> {
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
}

/// A bare host name (lowercased): no scheme, port, path or credentials.
fn bare_host(v: &str) -> Result<String, String> {
    let v = v.trim().to_ascii_lowercase();
    if v.is_empty() || v.contains(['/', ':', ' ', '@']) {
        return Err("must be a bare host name without scheme, port or path".into());
    }
    Ok(v)
}
