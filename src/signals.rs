//! Process signals: SIGTERM/SIGINT end the daemon cleanly (a second one at once); SIGHUP is
//! caught and logged (reloading the configuration is not supported yet), so it never kills
//! the daemon and the batch it is assembling.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Cancels `cancel` on SIGTERM or SIGINT; a second signal exits at once. The handlers are
/// installed when this is called (not when the future first runs), so a signal arriving
/// right after start-up is already caught.
pub fn cancel_on_signal(cancel: CancellationToken) -> impl Future<Output = ()> {
    let mut signals = Signals::install();
    async move {
        signals.stop().await;
        tracing::info!("signal received; shutting down (a second signal exits at once)");
        cancel.cancel();
        signals.stop().await;
        std::process::exit(130);
    }
}

/// The signal streams the daemon listens to.
struct Signals {
    #[cfg(unix)]
    unix: Option<UnixSignals>,
}

#[cfg(unix)]
struct UnixSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let unix = (|| {
                Some(UnixSignals {
                    term: signal(SignalKind::terminate()).ok()?,
                    int: signal(SignalKind::interrupt()).ok()?,
                    hup: signal(SignalKind::hangup()).ok()?,
                })
            })();
            Signals { unix }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Resolves on the next SIGTERM or SIGINT; logs each SIGHUP meanwhile.
    async fn stop(&mut self) {
        #[cfg(unix)]
        if let Some(u) = self.unix.as_mut() {
            loop {
                tokio::select! {
                    _ = u.term.recv() => return,
                    _ = u.int.recv() => return,
                    _ = u.hup.recv() => tracing::warn!(
                        "SIGHUP received: reloading the configuration is not supported yet; \
                         carrying on with the one loaded at start-up (restart to apply changes)"
                    ),
                }
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
