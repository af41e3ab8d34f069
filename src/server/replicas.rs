//! What keeps a replica's memory in step with the others on a shared store: the changes
//! every replica announces (revoked tokens, blocked people, API keys, rotated signing keys)
//! are applied here as they arrive. A change that cannot be applied yet (the database is
//! down while the blocked list is re-read) is retried every second until it is.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::oauth::Authority;
use crate::store::{Invalidation, PostgresStore, Store};

pub struct Replication {
    pub store: Arc<PostgresStore>,
    pub authority: Arc<Authority>,
}

#[async_trait]
impl BackgroundService for Replication {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let store = self.store.clone();
        let listener = tokio::spawn(async move { store.listen(tx).await });
        let mut pending: Vec<Invalidation> = Vec::new();
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                change = rx.recv() => {
                    let Some(change) = change else { break };
                    if let Err(e) = self.apply(&change).await {
                        tracing::warn!(error = %e, ?change, "store: a change from another replica could not be applied yet; retrying");
                        pending.push(change);
                    }
                }
                _ = retry.tick(), if !pending.is_empty() => {
                    let mut still = Vec::new();
                    for change in pending.drain(..) {
                        if self.apply(&change).await.is_err() {
                            still.push(change);
                        }
                    }
                    pending = still;
                }
            }
        }
        listener.abort();
    }
}

impl Replication {
    async fn apply(&self, change: &Invalidation) -> Result<(), String> {
        let a = &self.authority;
        a.store
            .invalidate(change)
            .await
            .map_err(|e| e.to_string())?;
        let keys = || async {
            a.api_keys
                .load(&*a.store as &dyn Store)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let signer = || async {
            a.signer
                .reload(&*a.store, &a.sealer)
                .await
                .map_err(|e| e.to_string())
        };
        match change {
            Invalidation::ApiKeys => keys().await,
            Invalidation::Secret(name) if name == crate::crypto::signing::SECRET_NAME => {
                signer().await
            }
            Invalidation::All => {
                keys().await?;
                signer().await
            }
            _ => Ok(()),
        }
    }
}
