//! Process signals: SIGTERM/SIGINT end the daemon cleanly (a second one at once).

use tokio_util::sync::CancellationToken;

/// Cancels `cancel` on SIGTERM or SIGINT; a second signal exits at once.
pub async fn cancel_on_signal(cancel: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("signal received; shutting down (a second signal exits at once)");
    cancel.cancel();
    wait_for_signal().await;
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
