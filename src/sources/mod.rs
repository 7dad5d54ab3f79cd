//! Sources: what the relay polls. Each yields metric families on its own interval.
//!
//! A source only fetches and translates; the relay adds `job`, `instance`, external labels,
//! `up` and staleness (see [`crate::relay::prepare`]), so every source gets them the same way.

pub mod emqx;
pub mod json;
pub mod linkhub;
pub mod scrape;
pub mod ttn;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::SourceConfig;
use crate::model::Family;

/// A boxed future, so sources can be kept as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why one collection failed. The source is reported down (`up 0`) and polled again next time.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad answer: {0}")]
    Invalid(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Something the relay polls.
pub trait Source: Send {
    /// The configured name: the `job` label of its series.
    fn name(&self) -> &str;
    /// The `instance` label: the `host:port` it polls.
    fn instance(&self) -> &str;
    /// How often to poll.
    fn interval(&self) -> Duration;
    /// The longest one collection may take.
    fn timeout(&self) -> Duration;
    /// Polls once.
    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>>;
    /// A human-readable table of the last poll for `pushrelay check` (`all`: `check --all`),
    /// or `None` for the generic metric/labels/value table.
    fn check_summary(&self, _all: bool) -> Option<String> {
        None
    }
}

/// What a source may need besides its own configuration.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The relay's `state_dir`.
    pub state_dir: PathBuf,
    /// False for one-shot inspection (`print`, `check`): state is read but never written, so
    /// a look at the data cannot disturb a running daemon's carried state.
    pub persist: bool,
    /// `check --all`: the source may fetch rows beyond what it monitors, for its summary.
    pub check_all: bool,
}

impl BuildContext {
    /// The state file of the source called `name`: `<state_dir>/sources/<name>.json`.
    pub fn state_file(&self, name: &str) -> StateFile {
        StateFile {
            path: self.state_dir.join("sources").join(format!("{name}.json")),
            writable: self.persist,
        }
    }
}

/// A source's small persisted state (JSON), replaced atomically (temporary file + rename).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    writable: bool,
}

impl StateFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, or `None` if there is none; an unreadable or corrupt file is logged
    /// once and treated as none (the source starts fresh rather than not at all).
    pub fn load<T: DeserializeOwned>(&self) -> Option<T> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "cannot read source state {}: {e}; starting fresh",
                    self.path.display()
                );
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(
                    "source state {} is corrupt ({e}); starting fresh",
                    self.path.display()
                );
                None
            }
        }
    }

    /// Writes the state (no-op when not writable). Errors are returned for the caller to log;
    /// losing carried state is never a reason to fail a poll.
    pub fn save<T: Serialize>(&self, state: &T) -> std::io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        let dir = self.path.parent().expect("state file has a directory");
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Builds the source a configuration entry describes.
pub fn build(cfg: &SourceConfig, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
    Ok(match cfg {
        SourceConfig::Scrape(c) => Box::new(scrape::ScrapeSource::new(c.clone())?),
        SourceConfig::Ttn(c) => ttn::build(c.clone(), ctx)?,
        SourceConfig::Emqx(c) => emqx::build(c.clone(), ctx)?,
        SourceConfig::Linkhub(c) => linkhub::build(c.clone(), ctx)?,
    })
}

/// `host:port` of a URL, with the scheme's default port when none is given (as Prometheus
/// labels a target's `instance`).
pub fn instance_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_labels() {
        let u = |s| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            instance_of(&u("http://127.0.0.1:9100/metrics")),
            "127.0.0.1:9100"
        );
        assert_eq!(
            instance_of(&u("https://example.org/metrics")),
            "example.org:443"
        );
        assert_eq!(instance_of(&u("http://[::1]:9100/metrics")), "[::1]:9100");
    }
}
