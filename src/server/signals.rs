//! The signals authgate answers, and the drain after SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::reload::Reloader;
use crate::proxy::Requests;

/// The signals authgate answers, as an nginx operator expects:
/// - SIGTERM: drain (stop accepting, let requests in flight finish, exit);
/// - SIGINT: stop at once;
/// - SIGHUP: reload the config;
/// - SIGQUIT: hand the listening sockets to a new authgate started with `run --upgrade`,
///   then drain. Pingora would shut down even with no new process waiting; here SIGQUIT is
///   ignored, with a warning, unless one is (its upgrade socket exists).
pub struct Signals {
    pub requests: Arc<Requests>,
    pub grace: Duration,
    pub close_store: Arc<dyn Fn() + Send + Sync>,
    pub reloader: Arc<Reloader>,
    pub upgrade_sock: PathBuf,
}

/// How long Pingora keeps accepting after handing its sockets over (its CLOSE_TIMEOUT).
const UPGRADE_OVERLAP: Duration = Duration::from_secs(5);

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for Signals {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        use pingora::server::ShutdownSignal;
        let signal = self.wait().await;
        let delay = match signal {
            ShutdownSignal::GracefulTerminate => Duration::ZERO,
            ShutdownSignal::GracefulUpgrade => UPGRADE_OVERLAP,
            ShutdownSignal::FastShutdown => return signal,
        };
        let (requests, grace) = (self.requests.clone(), self.grace);
        let close = self.close_store.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            drain(&requests.in_flight, grace, close.as_ref())
        });
        signal
    }
}

impl Signals {
    async fn wait(&self) -> pingora::server::ShutdownSignal {
        use pingora::server::ShutdownSignal;
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return ShutdownSignal::GracefulTerminate,
                _ = int.recv() => return ShutdownSignal::FastShutdown,
                _ = hup.recv() => {
                    let reloader = self.reloader.clone();
                    let _ = tokio::task::spawn_blocking(move || reloader.reload("SIGHUP")).await;
                }
                _ = quit.recv() => {
                    if self.upgrade_sock.exists() {
                        tracing::info!(socket = %self.upgrade_sock.display(), "SIGQUIT: handing the listening sockets to the new authgate, then draining");
                        return ShutdownSignal::GracefulUpgrade;
                    }
                    tracing::warn!(socket = %self.upgrade_sock.display(), "SIGQUIT received but no new authgate is waiting for the sockets (start it with `authgate run --upgrade` first); ignored");
                }
            }
        }
    }
}

/// After SIGTERM (Pingora has stopped accepting; after SIGQUIT, once the new process has
/// taken over): waits until no request is in flight, then
/// closes the store and exits. Otherwise Pingora stops its runtimes at the end of the grace
/// period; the requests cut then write their access lines as they are dropped, and `run`
/// says how many there were.
pub fn drain(in_flight: &AtomicUsize, grace: Duration, close_store: &(dyn Fn() + Send + Sync)) {
    let start = Instant::now();
    tracing::info!(in_flight = in_flight.load(Ordering::Relaxed), grace = ?grace, "draining");
    let mut idle = 0;
    loop {
        let n = in_flight.load(Ordering::Relaxed);
        // Idle three checks in a row: a request read just before the listeners closed has
        // had time to show up.
        idle = if n == 0 { idle + 1 } else { 0 };
        if idle >= 3 {
            tracing::info!(elapsed = ?start.elapsed(), "drained: no request in flight; stopping");
            close_store();
            std::process::exit(0);
        }
        if start.elapsed() >= grace {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
