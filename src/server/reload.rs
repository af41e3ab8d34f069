//! Config reload: SIGHUP, `authgate reload` (the admin API), or a change of the file when
//! `server.watch_config` is set. The file is validated with exactly what `check` runs; a good
//! one is swapped in whole (requests keep the snapshot they started with), a bad one is
//! refused with `check`'s messages and the running config stays. What cannot change without a
//! restart (listen addresses, data directory, threads, the session key, the drain grace, the
//! admin listener, the audit file) keeps its running value, with a warning naming it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::config::{self, Config};
use crate::metrics::metrics;
use crate::proxy::Snapshot;

pub struct Reloader {
    path: PathBuf,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The TLS listeners' certificate: a reload reads the files again and swaps it.
    certificate: Option<Arc<crate::crypto::tls::Certificate>>,
    /// One reload at a time.
    running: Mutex<()>,
}

/// What a reload did, as `authgate reload` prints it.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    /// `check`'s messages for a refused file.
    pub errors: Vec<String>,
    /// Keys whose new value waits for a restart.
    pub warnings: Vec<String>,
    /// What the new config changes (routes, providers, clients, scopes, other settings).
    pub changes: Vec<String>,
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        snapshot: Arc<ArcSwap<Snapshot>>,
        certificate: Option<Arc<crate::crypto::tls::Certificate>>,
    ) -> Self {
        Self {
            path,
            snapshot,
            certificate,
            running: Mutex::new(()),
        }
    }

    /// Re-reads the file and swaps it in if it is good; `cause` is for the log.
    pub fn reload(&self, cause: &str) -> Report {
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = Report::default();
        let mut new = match config::load(&self.path) {
            Ok(c) => c,
            Err(errors) => {
                report.errors = errors.0.iter().map(|e| e.to_string()).collect();
                for e in &report.errors {
                    tracing::error!(cause, "reload refused: {e}");
                }
                metrics().reloads.with_label_values(&["refused"]).inc();
                crate::audit::refused("config_reload")
                    .reason(format_args!(
                        "{} error(s); the running config stays",
                        report.errors.len()
                    ))
                    .emit();
                return report;
            }
        };
        let old = self.snapshot.load_full();
        report.warnings = keep_fixed(&old.config, &mut new);
        report.changes = changes(&old.config, &new);
        for w in &report.warnings {
            tracing::warn!(cause, "reload: {w}");
        }
        if let (Some(certificate), Some(tls)) = (&self.certificate, &new.server.tls) {
            certificate.swap(tls.certified.clone());
        }
        self.snapshot.store(Arc::new(Snapshot::new(new)));
        report.ok = true;
        metrics().reloads.with_label_values(&["ok"]).inc();
        tracing::info!(cause, changes = ?report.changes, "config reloaded");
        crate::audit::success("config_reload")
            .reason(if report.changes.is_empty() {
                "no change".to_string()
            } else {
                report.changes.join("; ")
            })
            .emit();
        report
    }

    /// Reloads whenever the file's modification time changes (checked every two seconds),
    /// on a thread of its own.
    pub fn watch(self: Arc<Self>) {
        std::thread::spawn(move || {
            let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let mut last: Option<SystemTime> = mtime(&self.path);
            loop {
                std::thread::sleep(Duration::from_secs(2));
                let now = mtime(&self.path);
                if now.is_some() && now != last {
                    last = now;
                    self.reload("the config file changed");
                }
            }
        });
    }
}

/// Puts back the values only a restart can change; says which ones differed.
/// What identifies the store a config opens (its connection is made once, at start).
fn store_key(
    store: &crate::config::StoreConfig,
) -> Option<(String, String, usize, Option<std::path::PathBuf>)> {
    match store {
        crate::config::StoreConfig::Redb => None,
        crate::config::StoreConfig::Postgres(pg) => Some((
            pg.url.clone(),
            pg.schema.clone(),
            pg.pool_size,
            pg.ca_file.clone(),
        )),
    }
}

fn keep_fixed(old: &Config, new: &mut Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut keep = |key: &str, differs: bool| {
        if differs {
            warnings.push(format!("{key} changed; it applies after a restart"));
        }
    };
    keep("server.listen", new.server.listen != old.server.listen);
    keep(
        "server.data_dir",
        new.server.data_dir != old.server.data_dir,
    );
    keep("server.threads", new.server.threads != old.server.threads);
    keep(
        "server.shutdown_grace",
        new.server.shutdown_grace != old.server.shutdown_grace,
    );
    keep(
        "server.token_cache_entries",
        new.server.token_cache_entries != old.server.token_cache_entries,
    );
    keep(
        "server.upstream_keepalive_pool",
        new.server.upstream_keepalive_pool != old.server.upstream_keepalive_pool,
    );
    keep(
        "auth.session_key",
        new.auth.session_key != old.auth.session_key,
    );
    keep(
        "auth.previous_session_keys",
        new.auth.previous_session_keys != old.auth.previous_session_keys,
    );
    // The certificate itself is read again (new handshakes get it); TLS on or off is not.
    let tls_toggled = new.server.tls.is_some() != old.server.tls.is_some();
    keep("server.tls (on or off)", tls_toggled);
    keep(
        "admin",
        new.admin.as_ref().map(|a| a.listen) != old.admin.as_ref().map(|a| a.listen),
    );
    keep("audit.file", new.audit.file != old.audit.file);
    keep("store", store_key(&new.store) != store_key(&old.store));
    new.store = old.store.clone();
    new.server.listen = old.server.listen.clone();
    new.server.data_dir = old.server.data_dir.clone();
    new.server.threads = old.server.threads;
    new.server.shutdown_grace = old.server.shutdown_grace;
    new.server.token_cache_entries = old.server.token_cache_entries;
    new.server.upstream_keepalive_pool = old.server.upstream_keepalive_pool;
    new.auth.session_key = old.auth.session_key;
    new.auth.previous_session_keys = old.auth.previous_session_keys.clone();
    if tls_toggled {
        new.server.tls = old.server.tls.clone();
    }
    match (&mut new.admin, &old.admin) {
        (Some(n), Some(o)) => n.listen = o.listen,
        (n, o) => *n = o.clone(),
    }
    new.audit = old.audit.clone();
    warnings
}

/// A short account of what differs, by name.
fn changes(old: &Config, new: &Config) -> Vec<String> {
    type Named = Vec<(String, String)>;
    fn diff(what: &str, old: Named, new: Named) -> Vec<String> {
        let old: std::collections::BTreeMap<_, _> = old.into_iter().collect();
        let new: std::collections::BTreeMap<_, _> = new.into_iter().collect();
        let mut out = Vec::new();
        for (name, v) in &new {
            match old.get(name) {
                None => out.push(format!("{what} `{name}` added")),
                Some(o) if o != v => out.push(format!("{what} `{name}` changed")),
                _ => {}
            }
        }
        for name in old.keys().filter(|n| !new.contains_key(*n)) {
            out.push(format!("{what} `{name}` removed"));
        }
        out
    }
    // Compared by their debug form: secrets in it are redacted, so a changed secret alone is
    // applied but not listed.
    fn named<T: std::fmt::Debug>(items: &[T], name: impl Fn(&T) -> String) -> Named {
        items.iter().map(|i| (name(i), format!("{i:?}"))).collect()
    }
    let mut out = diff(
        "upstream",
        named(&old.upstreams, |u| u.name.to_string()),
        named(&new.upstreams, |u| u.name.to_string()),
    );
    out.extend(diff(
        "provider",
        named(&old.providers, |p| p.id.clone()),
        named(&new.providers, |p| p.id.clone()),
    ));
    out.extend(diff(
        "client",
        named(&old.clients, |c| c.client_id.to_string()),
        named(&new.clients, |c| c.client_id.to_string()),
    ));
    out.extend(diff(
        "scope",
        named(&old.scopes, |s| s.name.to_string()),
        named(&new.scopes, |s| s.name.to_string()),
    ));
    if format!("{:?}", old.auth) != format!("{:?}", new.auth) {
        out.push("[auth] changed".into());
    }
    if format!("{:?}", old.cimd) != format!("{:?}", new.cimd) {
        out.push("[cimd] changed".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_store_waits_for_a_restart() {
        let key = "[auth]\nsession_key = \"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\"\n";
        let old = crate::testing::config("");
        let mut new = crate::testing::config(&format!(
            "{key}[store]\nkind = \"postgres\"\nurl = \"postgres://db/x\"\n"
        ));
        let warnings = keep_fixed(&old, &mut new);
        assert!(
            warnings
                .iter()
                .any(|w| w == "store changed; it applies after a restart"),
            "{warnings:?}"
        );
        assert!(matches!(new.store, crate::config::StoreConfig::Redb));
        let mut same = crate::testing::config("");
        assert!(keep_fixed(&old, &mut same).is_empty());
    }
}
