//! `[admin]` and `[audit]`: where metrics, the admin API and the audit trail go.

use std::net::SocketAddr;
use std::path::Path;

use toml::Spanned;

use super::Validator;
use crate::config::file::{AdminSection, AuditSection};
use crate::config::model::{AdminConfig, AuditConfig};
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
}
