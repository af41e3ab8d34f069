//! File structs → [`Config`]: interpolates `${VAR}`s, parses every value into its type and
//! checks the whole, collecting every error with its place in the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::error::Source;
use super::file::{FileConfig, ServerSection, Text, UpstreamSection};
use super::model::{
    Config, PublicUrl, RoutePath, ServerConfig, Upstream, UpstreamName, UpstreamUrl,
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Paths the gateway answers itself; an upstream may not be routed at or below them.
pub const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/.well-known"];

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
        let server = self.server(&file.server, config_dir);
        let upstreams = self.upstreams(&file.upstreams);
        if !self.src.errors.is_empty() {
            return None;
        }
        Some(Config {
            source: self.src.path.to_path_buf(),
            server: server?,
            upstreams,
        })
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
        let public_url = self.parsed(&s.public_url, "server.public_url", PublicUrl::parse);
        if let Some(url) = &public_url {
            if url.scheme() == "http" && !url.is_loopback() && !s.allow_insecure_http {
                self.src.push(
                    s.public_url.span(),
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
        Some(ServerConfig {
            listen,
            public_url: public_url?,
            data_dir: data_dir?,
            threads,
        })
    }

    fn upstreams(&mut self, sections: &[Spanned<UpstreamSection>]) -> Vec<Upstream> {
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
            let name = self.parsed(&u.name, &key("name"), UpstreamName::parse);
            if let Some(n) = &name {
                if let Some(first) = names.insert(n.clone(), i) {
                    self.src.push(
                        u.name.span(),
                        key("name"),
                        format!("`{n}` is already the name of upstream[{first}]"),
                    );
                }
            }
            let path = self.parsed(&u.path, &key("path"), |s| {
                let p = RoutePath::parse(s)?;
                for reserved in RESERVED_PATHS {
                    if p.as_str() != "/"
                        && (p.as_str() == *reserved
                            || p.as_str().starts_with(&format!("{reserved}/")))
                    {
                        return Err(format!("`{reserved}` is answered by the gateway itself"));
                    }
                }
                Ok(p)
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
            let url = self.parsed(&u.url, &key("url"), UpstreamUrl::parse);
            let connect_timeout = self.duration(
                &u.connect_timeout,
                &key("connect_timeout"),
                DEFAULT_CONNECT_TIMEOUT,
            );
            let idle_timeout =
                self.duration(&u.idle_timeout, &key("idle_timeout"), DEFAULT_IDLE_TIMEOUT);
            let (Some(name), Some(path), Some(host), Some(url)) = (name, path, host, url) else {
                continue;
            };
            if let Some(first) = routes.insert((host.clone(), path.clone()), i) {
                let place = host
                    .as_deref()
                    .map(|h| format!(" on host `{h}`"))
                    .unwrap_or_default();
                self.src.push(
                    u.path.span(),
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
            });
        }
        out
    }
}
