//! Process signals: SIGTERM/SIGINT end the daemon cleanly (a second one at once); SIGHUP
//! reloads the configuration (`pushrelay reload` sends it through the pid file in `state_dir`).

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
                })
            })();
            Signals { unix }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Resolves on the next SIGTERM or SIGINT.
    async fn stop(&mut self) {
        #[cfg(unix)]
        if let Some(u) = self.unix.as_mut() {
            tokio::select! {
                _ = u.term.recv() => return,
                _ = u.int.recv() => return,
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Re-reads the configuration at `path` on every SIGHUP and hands a valid one to the daemon
/// (`reloads`). A bad one is refused with its `file:line:column` errors in the log (and
/// `pushrelay_config_last_reload_successful` 0); the running configuration goes on. The
/// handler is installed when this is called, so a SIGHUP right after start-up never kills
/// the daemon.
pub fn reload_on_hangup(
    path: std::path::PathBuf,
    reloads: tokio::sync::mpsc::Sender<crate::config::Config>,
    env: crate::relay::Env,
) -> impl Future<Output = ()> {
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        #[cfg(unix)]
        reload_loop(hup, path, reloads, env).await;
        #[cfg(not(unix))]
        let _ = (path, reloads, env);
    }
}

#[cfg(unix)]
async fn reload_loop(
    hup: std::io::Result<tokio::signal::unix::Signal>,
    path: std::path::PathBuf,
    reloads: tokio::sync::mpsc::Sender<crate::config::Config>,
    env: crate::relay::Env,
) {
    {
        let Ok(mut hup) = hup else {
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
