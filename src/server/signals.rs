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
    pub reloader: Arc<Reloader>,
    pub upgrade_sock: PathBuf,
}

/// Starts the drain once Pingora enters its shutdown grace period: after SIGTERM at once,
/// after SIGQUIT once it has stopped accepting (5 s after handing its sockets over). Until
/// then a process handing over its sockets still accepts connections from the shared
/// listening socket, so a drain started earlier could exit under connections it had just
/// accepted (seen in CI: a request on a fresh connection reset during an upgrade).
pub fn drain_when_shutdown_starts(
    mut phases: tokio::sync::broadcast::Receiver<pingora::server::ExecutionPhase>,
    requests: Arc<Requests>,
    grace: Duration,
    close_store: Arc<dyn Fn() + Send + Sync>,
) {
    use pingora::server::ExecutionPhase;
    use tokio::sync::broadcast::error::RecvError;
    std::thread::spawn(move || loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => {
                return drain(&requests.in_flight, grace, close_store.as_ref())
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    });
}

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for Signals {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
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

/// Once Pingora has stopped accepting (after SIGTERM, or SIGQUIT once the new process has
/// taken over): waits until no request is in flight, then closes the store and exits. Otherwise Pingora stops its runtimes at the end of the grace
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
