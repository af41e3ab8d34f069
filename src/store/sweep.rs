//! The background task that keeps the store from growing: expired codes, tokens and grants
//! are deleted every few minutes. A Pingora background service, so it stops with the server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::{Cached, Store};

pub struct Sweeper {
    pub store: Arc<Cached>,
    pub every: Duration,
    /// How long a dynamic registration may stay unused (read from the live config).
    pub unused_registration_ttl: Box<dyn Fn() -> Duration + Send + Sync>,
}

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    let now = crate::vocab::unix_now();
                    let cutoff = now.saturating_sub((self.unused_registration_ttl)().as_secs());
                    let m = crate::metrics::metrics();
                    m.sweeps.inc();
                    match self.store.sweep(now, cutoff).await {
                        Ok(s) => {
                            tracing::debug!(?s, "store swept");
                            for (kind, n) in [
                                ("codes", s.codes),
                                ("access_tokens", s.access_tokens),
                                ("refresh_tokens", s.refresh_tokens),
                                ("grants", s.grants),
                                ("clients", s.clients),
                            ] {
                                m.swept.with_label_values(&[kind]).inc_by(n as u64);
                            }
                            if s.clients > 0 {
                                crate::audit::success("clients_swept")
                                    .reason("dynamic registrations never used for a grant")
                                    .count(s.clients)
                                    .emit();
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "store sweep failed"),
                    }
                }
            }
        }
    }
}
