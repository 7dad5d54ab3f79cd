//! Process signals: SIGTERM/SIGINT end the daemon cleanly (a second one at once); SIGHUP
//! reloads the configuration (`pushrelay reload` sends it through the pid file in `state_dir`).

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

/// Re-reads the configuration at `path` on every SIGHUP and hands a valid one to the daemon
/// (`reloads`). A bad one is refused with its `file:line:column` errors in the log (and
/// `pushrelay_config_last_reload_successful` 0); the running configuration goes on.
pub async fn reload_on_hangup(
    path: std::path::PathBuf,
    reloads: tokio::sync::mpsc::Sender<crate::config::Config>,
    env: crate::relay::Env,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: reload needs a restart");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading {}", path.display());
            match crate::config::load(&path) {
                Ok(cfg) => {
                    for w in &cfg.warnings {
                        tracing::warn!("{w}");
                    }
                    if reloads.send(cfg).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    for line in e.to_string().lines() {
                        tracing::error!(
                            "reload refused, the running configuration goes on: {line}"
                        );
                    }
                    env.metrics.config_loaded(false, env.clock.now_seconds());
                    env.status.event(
                        env.clock.now_ms(),
                        "relay",
                        "reload refused: bad configuration",
                    );
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, reloads, env);
    }
}

/// Where `run` keeps its process id, for `pushrelay reload`.
pub fn pid_file(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("pushrelay.pid")
}

/// Writes the pid file (private to the relay's user); removed again when dropped.
pub struct PidFile(std::path::PathBuf);

impl PidFile {
    pub fn create(state_dir: &std::path::Path) -> std::io::Result<PidFile> {
        crate::files::create_private_dir(state_dir)?;
        let path = pid_file(state_dir);
        crate::files::replace_atomically(
            &path,
            format!("{}\n", std::process::id()).as_bytes(),
            false,
        )?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends SIGHUP to the daemon whose pid file is in `state_dir`, after checking the process is
/// a pushrelay (a stale file's pid may belong to another program by now).
pub fn signal_reload(state_dir: &std::path::Path) -> Result<u32, String> {
    let path = pid_file(state_dir);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no running pushrelay found ({}: {e})", path.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{} does not hold a process id", path.display()))?;
    #[cfg(target_os = "linux")]
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("pushrelay") {
            return Err(format!(
                "process {pid} (from {}) is not a running pushrelay; is the daemon stopped?",
                path.display()
            ));
        }
    }
    #[cfg(unix)]
    {
        // SAFETY: kill(2) with a pid and a signal number has no memory-safety requirements.
        let r = unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
        if r != 0 {
            return Err(format!(
                "cannot signal process {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(pid)
    }
    #[cfg(not(unix))]
    {
        Err("reload by signal needs a Unix system".into())
    }
}
