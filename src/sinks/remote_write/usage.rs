//! What a remote-write sink sent and received on the wire (HTTP heads and bodies) over a recent
//! window, kept in `state_dir/<sink>/usage.json` so that `pushrelay check` can say what the
//! data plan costs a day and a month at the current rate.
//!
//! The file is replaced at most once a minute while bytes flow, and when the sink stops; a
//! crash loses at most that minute of counting (never data). The window restarts after an
//! hour without traffic (the relay was stopped) and after a week, so the rate is the recent one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The file's name in the sink's directory under `state_dir`.
pub const FILE: &str = "usage.json";

const WRITE_EVERY: Duration = Duration::from_secs(60);
const GAP_MS: i64 = 3_600_000;
const WINDOW_MS: i64 = 7 * 86_400_000;
/// Shorter windows say too little about a day.
const MIN_SPAN_MS: i64 = 10 * 60_000;

/// Bytes on the wire from `since_ms` to `until_ms` (wall clock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub since_ms: i64,
    pub until_ms: i64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

impl Usage {
    /// Reads a sink's record; `None` if there is none (or it cannot be read).
    pub fn read(sink_dir: &Path) -> Option<Usage> {
        let text = std::fs::read(sink_dir.join(FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Bytes a day (sent and received) at this window's rate; `None` for a window under ten
    /// minutes.
    pub fn bytes_per_day(&self) -> Option<f64> {
        let span = self.until_ms - self.since_ms;
        (span >= MIN_SPAN_MS)
            .then(|| (self.sent_bytes + self.received_bytes) as f64 * 86_400_000.0 / span as f64)
    }

    fn add(&mut self, now_ms: i64, sent: u64, received: u64) {
        let stale = now_ms < self.until_ms
            || now_ms - self.until_ms > GAP_MS
            || now_ms - self.since_ms > WINDOW_MS;
        if self.since_ms == 0 || stale {
            *self = Usage {
                since_ms: now_ms,
                until_ms: now_ms,
                ..Usage::default()
            };
        }
        self.until_ms = now_ms;
        self.sent_bytes += sent;
        self.received_bytes += received;
    }
}

/// The running sink's record and when it was last written.
pub struct UsageFile {
    path: Option<PathBuf>,
    usage: Usage,
    written: Option<Instant>,
    dirty: bool,
}

impl UsageFile {
    /// The record in `sink_dir` (continued if recent), or none kept without a directory.
    pub fn open(sink_dir: Option<&Path>) -> UsageFile {
        UsageFile {
            usage: sink_dir.and_then(Usage::read).unwrap_or_default(),
            path: sink_dir.map(|d| d.join(FILE)),
            written: None,
            dirty: false,
        }
    }

    /// Counts one request's bytes; writes the file if the last write is a minute old.
    pub fn record(&mut self, now_ms: i64, sent: u64, received: u64) {
        self.usage.add(now_ms, sent, received);
        self.dirty = true;
        if self.written.is_none_or(|t| t.elapsed() >= WRITE_EVERY) {
            self.save();
        }
    }

    /// Writes the record if it changed since the last write.
    pub fn save(&mut self) {
        let Some(path) = &self.path else { return };
        if !self.dirty {
            return;
        }
        self.written = Some(Instant::now());
        self.dirty = false;
        let body = serde_json::to_vec(&self.usage).expect("plain numbers serialize");
        if let Err(e) = crate::files::replace_atomically(path, &body, false) {
            tracing::debug!("cannot write {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn the_rate_is_the_recent_windows() {
        let mut u = Usage::default();
        u.add(T, 1000, 100);
        assert_eq!(u.bytes_per_day(), None, "too short a window");
        u.add(T + 3_600_000, 1000, 100);
        assert_eq!(u.bytes_per_day(), Some(2200.0 * 24.0));
        // Two hours without traffic: the relay was stopped; the window starts again.
        u.add(T + 3 * 3_600_000 + 1, 500, 0);
        assert_eq!((u.since_ms, u.sent_bytes), (T + 3 * 3_600_000 + 1, 500));
    }

    #[tokio::test]
    async fn the_record_survives_a_restart_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = UsageFile::open(Some(dir.path()));
        f.record(T, 10, 1);
        f.record(T + 1000, 10, 1); // within the minute: not written yet
        assert_eq!(Usage::read(dir.path()).unwrap().sent_bytes, 10);
        f.save();
        let u = Usage::read(dir.path()).unwrap();
        assert_eq!(
            (u.sent_bytes, u.received_bytes, u.until_ms),
            (20, 2, T + 1000)
        );
        let mut again = UsageFile::open(Some(dir.path()));
        again.record(T + 2000, 5, 0);
        again.save();
        assert_eq!(Usage::read(dir.path()).unwrap().sent_bytes, 25);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private to the relay's user");
    }
}
