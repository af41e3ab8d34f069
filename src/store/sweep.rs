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
}

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    match self.store.sweep(crate::proxy::unix_now()).await {
                        Ok(s) => tracing::debug!(?s, "store swept"),
                        Err(e) => tracing::error!(error = %e, "store sweep failed"),
                    }
                }
            }
        }
    }
}
