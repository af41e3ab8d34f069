//! `[admin]` and `[audit]`: where metrics, the admin API and the audit trail go.

use std::net::SocketAddr;
use std::path::Path;

use toml::Spanned;

use super::Validator;
use crate::config::file::{AdminSection, AuditSection, AuthSection, StoreKindName, StoreSection};
use crate::config::model::{AdminConfig, AuditConfig, StoreConfig};
use crate::vocab::SecretHash;

pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";

impl<E: Fn(&str) -> Option<String>> Validator<'_, E> {
    pub(super) fn admin(
        &mut self,
        section: Option<&Spanned<AdminSection>>,
        public: Option<&[SocketAddr]>,
    ) -> Option<AdminConfig> {
        let a = section?.get_ref();
        let listen = match &a.listen {
            Some(l) => self.parsed(l, "admin.listen", |s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    format!("`{s}` is not an IP:port socket address (e.g. \"127.0.0.1:9090\")")
                })
            })?,
            None => DEFAULT_ADMIN_LISTEN.parse().expect("the default parses"),
        };
        if public.is_some_and(|p| p.contains(&listen)) {
            let at = a.listen.as_ref().map_or(0..0, |l| l.span());
            self.src.push(
                at,
                "admin.listen",
                "must differ from server.listen: metrics and the admin API stay off the public port",
            );
        }
        let token = match &a.token {
            Some(t) => {
                let t = self.text(t, "admin.token")?;
                if t.len() < 16 {
                    let at = a.token.as_ref().map_or(0..0, |l| l.span());
                    self.src.push(
                        at,
                        "admin.token",
                        "must be at least 16 characters (e.g. `openssl rand -hex 32`)",
                    );
                }
                Some(SecretHash::of(&t))
            }
            None => None,
        };
        Some(AdminConfig { listen, token })
    }

    pub(super) fn audit(
        &mut self,
        section: Option<&Spanned<AuditSection>>,
        config_dir: &Path,
    ) -> AuditConfig {
        let Some(a) = section.map(|s| s.get_ref()) else {
            return AuditConfig::default();
        };
        AuditConfig {
            file: self
                .opt_text(&a.file, "audit.file")
                .map(|f| config_dir.join(f)),
        }
    }

    pub(super) fn store(
        &mut self,
        section: Option<&Spanned<StoreSection>>,
        config_dir: &Path,
        auth: Option<&Spanned<AuthSection>>,
    ) -> StoreConfig {
        let Some(section) = section else {
            return StoreConfig::Redb;
        };
        let s = section.get_ref();
        let kind = s.kind.as_ref().map(|k| *k.get_ref());
        if kind != Some(StoreKindName::Postgres) {
            for (set, key) in [
                (s.url.is_some(), "store.url"),
                (s.schema.is_some(), "store.schema"),
                (s.pool_size.is_some(), "store.pool_size"),
                (s.ca_file.is_some(), "store.ca_file"),
            ] {
                if set {
                    self.src
                        .push(section.span(), key, "only applies to kind = \"postgres\"");
                }
            }
            return StoreConfig::Redb;
        }
        let url = match &s.url {
            // The value may hold a password: the message never repeats it.
            Some(u) => self.parsed(u, "store.url", |u| {
                u.parse::<tokio_postgres::Config>().map(|_| u.to_string()).map_err(|e| {
                    format!("is not a PostgreSQL connection string ({e}); e.g. \"postgres://authgate:${{DB_PASSWORD}}@db.internal/authgate?sslmode=require\"")
                })
            }),
            None => {
                self.src.push(
                    section.span(),
                    "store.url",
                    "kind = \"postgres\" needs url (e.g. url = \"${DATABASE_URL}\")",
                );
                None
            }
        };
        let schema = match &s.schema {
            Some(v) => self.parsed(v, "store.schema", |v| {
                let plain = !v.is_empty()
                    && v.len() <= 40
                    && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && v
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                match plain {
                    true => Ok(v.to_string()),
                    false => Err("must be a plain lower-case SQL identifier of at most 40 characters (letters, digits, `_`)".into()),
                }
            }),
            None => Some("authgate".to_string()),
        };
        let pool_size = match &s.pool_size {
            Some(n) if !(1..=1000).contains(n.get_ref()) => {
                self.src
                    .push(n.span(), "store.pool_size", "must be between 1 and 1000");
                None
            }
            Some(n) => Some(*n.get_ref() as usize),
            None => Some(16),
        };
        let ca_file = self
            .opt_text(&s.ca_file, "store.ca_file")
            .map(|f| config_dir.join(f));
        // Every replica must open what another sealed, and a generated key is per machine.
        let has_key = auth.is_some_and(|a| a.get_ref().session_key.is_some());
        if !has_key {
            self.src.push(
                section.span(),
                "store.kind",
                "a shared store needs auth.session_key, the same on every replica (a generated key would differ on each): set it from the environment, e.g. session_key = \"${AUTHGATE_SESSION_KEY}\" (openssl rand -base64 32)",
            );
        }
        match (url, schema, pool_size) {
            (Some(url), Some(schema), Some(pool_size)) => {
                StoreConfig::Postgres(crate::store::PgSettings {
                    url,
                    schema,
                    pool_size,
                    ca_file,
                })
            }
            _ => StoreConfig::Redb,
        }
    }
}
