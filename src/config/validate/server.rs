//! `[server]`: listeners, the public URL, the data directory, threads, browser origins and
//! request header limits.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::file::ServerSection;
use crate::config::model::{HeaderLimits, PublicUrl, ServerConfig, TlsConfig};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 1_000_000;
/// Pingora keeps 128 idle upstream connections by default: under more concurrent requests
/// than that, every other request opened a new connection (and left one in TIME_WAIT).
pub const DEFAULT_UPSTREAM_KEEPALIVE_POOL: usize = 4096;
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(24 * 3600);

impl<E: Fn(&str) -> Option<String>> Validator<'_, E> {
    pub(super) fn server(
        &mut self,
        section: &Spanned<ServerSection>,
        config_dir: &Path,
    ) -> Option<ServerConfig> {
        let s = section.get_ref();
        let listen = self.listen(s);
        let raw_url = self.present(&s.public_url, "server.public_url", section.span());
        let public_url =
            raw_url.and_then(|u| self.parsed(u, "server.public_url", PublicUrl::parse));
        if let (Some(url), Some(raw)) = (&public_url, raw_url) {
            if !url.is_https() && !url.is_loopback() && !s.allow_insecure_http {
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
        let origins = s.allowed_origins.as_deref().unwrap_or_default();
        let allowed_origins = self.parsed_list(origins, "server.allowed_origins", origin);
        let header_limits = HeaderLimits {
            max_line: self.at_least(&s.max_header_line, "server.max_header_line", 8 * 1024, 1024),
            max_total: self.at_least(
                &s.max_header_size,
                "server.max_header_size",
                32 * 1024,
                1024,
            ),
            max_count: self.at_least(&s.max_headers, "server.max_headers", 100, 10),
        };
        let shutdown_grace = self.duration_within(
            &s.shutdown_grace,
            "server.shutdown_grace",
            DEFAULT_SHUTDOWN_GRACE,
            MAX_SHUTDOWN_GRACE,
        );
        let proxies = s.trusted_proxies.as_deref().unwrap_or_default();
        let trusted_proxies = self.parsed_list(proxies, "server.trusted_proxies", |p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{p}` is not an IP address or CIDR (e.g. \"10.0.0.0/8\")"))
        });
        let token_cache_entries = self.at_least(
            &s.token_cache_entries,
            "server.token_cache_entries",
            DEFAULT_TOKEN_CACHE_ENTRIES,
            16,
        );
        let upstream_keepalive_pool = self.at_least(
            &s.upstream_keepalive_pool,
            "server.upstream_keepalive_pool",
            DEFAULT_UPSTREAM_KEEPALIVE_POOL,
            1,
        );
        let tls = s.tls.as_ref().and_then(|t| {
            let (at, t) = (t.span(), t.get_ref());
            let why = "for TLS on the listeners";
            let cert = self.required(&t.cert, "server.tls.cert", at.clone(), why);
            let key = self.required(&t.key, "server.tls.key", at.clone(), why);
            let (cert, key) = (config_dir.join(cert?), config_dir.join(key?));
            match crate::crypto::tls::load(&cert, &key) {
                Ok(certified) => Some(TlsConfig {
                    cert,
                    key,
                    certified,
                }),
                Err(e) => {
                    self.src.push(at, "server.tls", e);
                    None
                }
            }
        });
        Some(ServerConfig {
            tls,
            token_cache_entries,
            upstream_keepalive_pool,
            watch_config: s.watch_config,
            trusted_proxies,
            shutdown_grace,
            header_limits,
            allowed_origins,
            listen,
            public_url: public_url?,
            data_dir: data_dir?,
            threads,
        })
    }

    fn listen(&mut self, s: &ServerSection) -> Vec<SocketAddr> {
        let Some(list) = &s.listen else {
            return vec![DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses")];
        };
        if list.get_ref().is_empty() {
            self.src.push(
                list.span(),
                "server.listen",
                "must list at least one address",
            );
        }
        let mut listen = Vec::new();
        for (i, addr) in list.get_ref().iter().enumerate() {
            let key = format!("server.listen[{i}]");
            let parsed = self.parsed(addr, &key, |s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    format!("`{s}` is not an IP:port socket address (e.g. \"127.0.0.1:8080\")")
                })
            });
            if let Some(a) = parsed {
                if listen.contains(&a) {
                    self.src
                        .push(addr.span(), key, format!("`{a}` is listed twice"));
                } else {
                    listen.push(a);
                }
            }
        }
        listen
    }
}

/// `*`, or an origin `scheme://host[:port]` in its serialized form.
fn origin(v: &str) -> Result<String, String> {
    if v == "*" {
        return Ok(v.to_string());
    }
    let url = url::Url::parse(v)
        .map_err(|_| format!("`{v}` is not an origin like https://app.example.com"))?;
    if url.path() != "/" || url.query().is_some() || !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{v}` is not an origin (scheme://host[:port], no path)"
        ));
    }
    Ok(url.origin().ascii_serialization())
}
