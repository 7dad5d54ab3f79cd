//! Sources: what the relay polls. Each yields metric families on its own interval.
//!
//! A source only fetches and translates; the relay adds `job`, `instance`, external labels,
//! `up` and staleness (see [`crate::relay::prepare`]), so every source gets them the same way.
//! Polled sources do their work in `collect`; push-shaped ones follow [`push`].

pub mod emqx;
pub mod json;
pub mod linkhub;
pub mod push;
pub mod scrape;
pub mod ttn;
pub mod ttn_devices;

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use tokio_util::sync::CancellationToken;

use crate::clock::WallClock;
use crate::config::Component;
use crate::model::Family;
use crate::relabel::SeriesRules;

pub use crate::BoxFuture;

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
    /// A failure the source has already logged itself (its own one line per state change,
    /// more specific than the relay's): the relay does not log it again.
    #[error(transparent)]
    Logged(Box<SourceError>),
}

impl SourceError {
    /// Whether the source already logged this failure.
    pub fn is_logged(&self) -> bool {
        matches!(self, SourceError::Logged(_))
    }
}

/// What every source has: the `job`/`instance` of its series and its schedule.
#[derive(Debug, Clone)]
pub struct SourceMeta {
    /// The configured name: the `job` label of its series.
    pub name: String,
    /// The `instance` label: the `host:port` it polls.
    pub instance: String,
    /// How often the relay collects it.
    pub interval: Duration,
    /// The longest one collection may take.
    pub timeout: Duration,
}

impl SourceMeta {
    /// For a source that polls `url`: its `instance` is the URL's `host:port`.
    pub fn for_url(name: &str, url: &reqwest::Url, interval: Duration, timeout: Duration) -> Self {
        SourceMeta {
            name: name.to_string(),
            instance: instance_of(url),
            interval,
            timeout,
        }
    }
}

/// Something the relay collects samples from.
///
/// A *polled* source does its work in [`Source::collect`]: one round of requests each
/// interval. A *push-shaped* source (an MQTT subscription, a webhook) receives data on its own
/// schedule: [`Source::start`] spawns its background task, which keeps an accumulated state
/// (counters, last values, last-seen times) behind a lock; `collect` then only reads a
/// snapshot of that state, and fails (`up 0`) while the subscription is down. One-shot
/// commands (`print`, `check`, `once`) call `start`, then await [`Source::ready`] (bounded by
/// the source's `timeout`) so they do not report an empty first poll. Either way the relay
/// does the rest (labels, `up`, staleness) the same.
pub trait Source: Send {
    /// Name, `instance`, interval and timeout.
    fn meta(&self) -> &SourceMeta;
    /// Starts background work, once, before the first `collect`. The work must end when
    /// `cancel` fires (and should when the source is dropped). Polled sources do nothing.
    fn start(&mut self, _cancel: CancellationToken) {}
    /// Resolves once the source has something worth reporting: a push-shaped source's first
    /// message or first failure. Polled sources are ready at once.
    fn ready(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Polls once (polled), or reads the accumulated state (push-shaped).
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
    /// Wall-clock time for what a source dates itself (last-seen times, `forget_after`).
    pub clock: WallClock,
}

impl BuildContext {
    /// The state file of the source called `name`: `<state_dir>/sources/<name>.json`.
    pub fn state_file(&self, name: &str) -> StateFile {
        StateFile {
            path: self.state_dir.join("sources").join(format!("{name}.json")),
            writable: self.persist,
            last_written: None,
            written_at: None,
            failing: false,
        }
    }
}

/// A source's small persisted state (JSON), replaced atomically (temporary file + rename), and
/// only when it changed, so an unchanged poll costs the SD card nothing.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    writable: bool,
    /// Length and hash of what the last successful save wrote (not the body itself: a
    /// 10,000-client EMQX state is ~8 MB, held for good).
    last_written: Option<(usize, u64)>,
    /// When the last successful write happened (tokio's clock), for [`StateFile::save_bounded`].
    written_at: Option<tokio::time::Instant>,
    /// Whether the last save failed (logged once until a save works again).
    failing: bool,
}

impl StateFile {
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

    /// Writes the state if it differs from what was last written (no-op when not writable). A
    /// failure is logged once until a save works again; losing carried state is never a reason
    /// to fail a poll.
    pub fn save<T: Serialize>(&mut self, state: &T) {
        if !self.writable {
            return;
        }
        let body = match serde_json::to_vec(state) {
            Ok(b) => b,
            Err(e) => return self.failed(&e.to_string()),
        };
        use std::hash::BuildHasher;
        // A fixed seed, so equal bodies hash equal across saves; a collision would only skip
        // rewriting a state that changed until the next change.
        let digest = (
            body.len(),
            foldhash::quality::FixedState::default().hash_one(&body),
        );
        if self.last_written == Some(digest) {
            self.written_at = Some(tokio::time::Instant::now());
            return;
        }
        match self.write(&body) {
            Ok(()) => {
                self.last_written = Some(digest);
                self.written_at = Some(tokio::time::Instant::now());
                self.failing = false;
            }
            Err(e) => self.failed(&e.to_string()),
        }
    }

    /// [`save`](Self::save), but at most once per `every` unless `urgent` (a change a crash must
    /// not lose, such as a counter offset growing): a large state that changes every poll then
    /// costs the disk one write per `every`, not one per poll. The first call always writes.
    pub fn save_bounded<T: Serialize>(&mut self, state: &T, every: Duration, urgent: bool) {
        if !self.writable {
            return;
        }
        let due = match self.written_at {
            None => true,
            Some(at) => at.elapsed() >= every,
        };
        if urgent || due || self.failing {
            self.save(state);
        }
    }

    fn write(&self, body: &[u8]) -> std::io::Result<()> {
        let dir = self.path.parent().expect("state file has a directory");
        crate::files::create_private_dir(dir)?;
        crate::files::replace_atomically(&self.path, body, false)
    }

    fn failed(&mut self, e: &str) {
        if !self.failing {
            tracing::warn!(
                "cannot save source state to {}: {e}; carried state (counters, last-seen times) may restart after a restart",
                self.path.display()
            );
            self.failing = true;
        }
    }
}

/// A source type's validated configuration (its `config.rs`): how to build the source.
/// Registered in [`crate::config::registry::SOURCE_TYPES`].
pub trait SourceConfig: Component + Clone {
    /// The running source.
    fn build(&self, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>>;
    /// What the relay does to each series besides `metric_relabel_configs` (which every
    /// source type takes): `honor_labels` and the limits, for the scrape source.
    fn series_rules(&self) -> SeriesRules {
        SeriesRules::default()
    }
    /// [`build`](Self::build), told that a poll keeping more than `sample_cap` samples (0: no
    /// cap) can only fail its `sample_limit`, so it may stop reading there.
    fn build_capped(&self, ctx: &BuildContext, sample_cap: u64) -> anyhow::Result<Box<dyn Source>> {
        let _ = sample_cap;
        self.build(ctx)
    }
}

/// A source type's configuration with what every source takes, as the registry reads it.
#[derive(Debug)]
pub struct Configured<C> {
    pub config: C,
    /// `metric_relabel_configs`, in order.
    pub relabel: Vec<crate::relabel::RelabelConfig>,
}

/// Any source's configuration, as the relay holds it ([`Configured`] behind a pointer).
pub trait SourceSpec: std::fmt::Debug + Send + Sync {
    /// The `type` it was read as.
    fn type_name(&self) -> &'static str;
    fn name(&self) -> &str;
    fn build(&self, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>>;
    /// Target-label policy, `metric_relabel_configs` and limits for the relay's preparer.
    fn series_rules(&self) -> SeriesRules;
    /// Its table as `pushrelay config` prints it.
    fn printable(&self) -> Result<toml::Table, String>;
    /// For tests and tools that need the concrete configuration back (the type's own struct).
    fn as_any(&self) -> &dyn std::any::Any;
    /// Whether `other` is the same configuration (a reload keeps such a source running).
    fn same_as(&self, other: &dyn SourceSpec) -> bool;
}

impl<C: SourceConfig> SourceSpec for Configured<C> {
    fn same_as(&self, other: &dyn SourceSpec) -> bool {
        other.as_any().downcast_ref::<C>() == Some(&self.config)
            && other.series_rules() == self.series_rules()
    }
    fn type_name(&self) -> &'static str {
        C::TYPE
    }
    fn name(&self) -> &str {
        Component::name(&self.config)
    }
    fn build(&self, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
        // With no rule that can drop series, what the source reads is what `sample_limit`
        // counts, so the source may stop as soon as the limit is passed.
        let drops = self.relabel.iter().any(|r| r.action.can_drop());
        let limit = self.config.series_rules().sample_limit;
        self.config.build_capped(ctx, if drops { 0 } else { limit })
    }
    fn series_rules(&self) -> SeriesRules {
        SeriesRules {
            relabel: self.relabel.clone(),
            ..self.config.series_rules()
        }
    }
    fn printable(&self) -> Result<toml::Table, String> {
        let mut t = crate::config::printable(&self.config)?;
        if !self.relabel.is_empty() {
            let rules = toml::Value::try_from(&self.relabel).map_err(|e| e.to_string())?;
            t.insert("metric_relabel_configs".into(), rules);
        }
        Ok(t)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        &self.config
    }
}

impl dyn SourceSpec {
    /// The concrete configuration, if it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }
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
    fn state_file_writes_only_changes_and_never_when_inspecting() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = |persist| BuildContext {
            state_dir: dir.path().to_path_buf(),
            persist,
            check_all: false,
            clock: WallClock::system(),
        };
        let mut f = ctx(true).state_file("s");
        let path = dir.path().join("sources").join("s.json");
        f.save(&vec![1, 2]);
        assert_eq!(f.load::<Vec<i32>>(), Some(vec![1, 2]));
        // The same state again is not written (the removed file stays removed).
        std::fs::remove_file(&path).unwrap();
        f.save(&vec![1, 2]);
        assert!(!path.exists());
        f.save(&vec![3]);
        assert_eq!(ctx(false).state_file("s").load::<Vec<i32>>(), Some(vec![3]));
        // Inspection reads but never writes.
        let mut ro = ctx(false).state_file("s");
        ro.save(&vec![4]);
        assert_eq!(ro.load::<Vec<i32>>(), Some(vec![3]));
        // An unwritable place is survived (logged once), not a panic.
        let blocked = BuildContext {
            state_dir: path.clone(),
            persist: true,
            check_all: false,
            clock: WallClock::system(),
        };
        let mut b = blocked.state_file("x");
        b.save(&1);
        b.save(&2);
        assert!(b.load::<i32>().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_saves_write_at_most_once_per_interval_unless_urgent() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = BuildContext {
            state_dir: dir.path().to_path_buf(),
            persist: true,
            check_all: false,
            clock: WallClock::system(),
        };
        let every = Duration::from_secs(300);
        let mut f = ctx.state_file("s");
        f.save_bounded(&1, every, false);
        assert_eq!(f.load::<i32>(), Some(1), "the first save writes");
        tokio::time::advance(Duration::from_secs(60)).await;
        f.save_bounded(&2, every, false);
        assert_eq!(f.load::<i32>(), Some(1), "not due yet");
        f.save_bounded(&3, every, true);
        assert_eq!(f.load::<i32>(), Some(3), "urgent writes at once");
        tokio::time::advance(Duration::from_secs(299)).await;
        f.save_bounded(&4, every, false);
        assert_eq!(f.load::<i32>(), Some(3));
        tokio::time::advance(Duration::from_secs(1)).await;
        f.save_bounded(&5, every, false);
        assert_eq!(f.load::<i32>(), Some(5), "due after the interval");
        f.save(&6);
        assert_eq!(f.load::<i32>(), Some(6), "an unbounded save always writes");
    }

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
