//! What a sink says about its health, quietly: one line when it goes offline, one when it
//! delivers again (and, for a queue, one when the backlog is sent), one when the failure turns
//! into a kind not seen yet in that outage ([`OutageLog`]); samples given up on, by reason, at
//! once for the first drop and then summed into at most one line a minute ([`DropLog`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::human;
use super::send::{Failure, SendError};

/// At most one drop line per this long.
pub const DROP_SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// How often a sink asks its [`DropLog`] whether a summary is due.
pub const DROP_TICK: Duration = Duration::from_secs(10);

/// A sink's connection state, for its log lines; owned by the sink's one sender.
pub struct OutageLog {
    sink: String,
    /// The receiver, redacted.
    url: String,
    offline: Option<Offline>,
    backlog: Option<Backlog>,
    /// Where the state also goes (the status page, readiness), and its clock.
    status: Option<(
        std::sync::Arc<crate::status::Status>,
        crate::clock::WallClock,
    )>,
}

struct Offline {
    since: Instant,
    /// The kinds of failure already logged in this outage.
    logged: Vec<Failure>,
}

/// Back online with samples still queued: what was delivered since.
struct Backlog {
    offline_for: Duration,
    delivered: u64,
}

impl OutageLog {
    pub fn new(sink: &str, redacted_url: String) -> OutageLog {
        OutageLog {
            sink: sink.to_string(),
            url: redacted_url,
            offline: None,
            backlog: None,
            status: None,
        }
    }

    /// Also reports each attempt's outcome to `status` (which shows only changes).
    pub fn reporting_to(
        mut self,
        status: std::sync::Arc<crate::status::Status>,
        clock: crate::clock::WallClock,
    ) -> OutageLog {
        self.status = Some((status, clock));
        self
    }

    fn report(&self, result: Result<(), &str>) {
        if let Some((s, c)) = &self.status {
            s.sink_state(&self.sink, c.now_ms(), result);
        }
    }

    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    /// A failed attempt that will be retried. The first of an outage logs the `offline` line
    /// (with `keeping`: what the sink keeps meanwhile); a failure of a kind not yet logged in
    /// this outage (the link came back but the token is wrong) logs one more; the rest go to
    /// `debug`.
    pub fn failed(&mut self, e: &SendError, keeping: impl FnOnce() -> String) {
        self.report(Err(&e.to_string()));
        let kind = e.kind();
        match &mut self.offline {
            None => {
                self.backlog = None;
                self.offline = Some(Offline {
                    since: Instant::now(),
                    logged: vec![kind],
                });
                tracing::warn!(
                    sink = %self.sink,
                    url = %self.url,
                    "offline: {e}; retrying with backoff, {}",
                    keeping()
                );
            }
            Some(o) if !o.logged.contains(&kind) => {
                o.logged.push(kind);
                tracing::warn!(sink = %self.sink, "still offline, now: {e}");
            }
            Some(_) => tracing::debug!(sink = %self.sink, "still offline: {e}"),
        }
    }

    /// A delivery of `samples`; `queued`: what the sink's queue still holds (`None`: no queue).
    pub fn delivered(&mut self, samples: u64, queued: Option<usize>) {
        self.report(Ok(()));
        if let Some(o) = self.offline.take() {
            let offline_for = o.since.elapsed();
            match queued {
                None => {
                    tracing::info!(sink = %self.sink, "back online after {}", human(offline_for))
                }
                Some(0) => tracing::info!(
                    sink = %self.sink,
                    "back online after {}; delivered {samples} samples, nothing left queued",
                    human(offline_for)
                ),
                Some(left) => {
                    tracing::info!(
                        sink = %self.sink,
                        "back online after {}; delivered {samples} samples, sending the {left} still queued",
                        human(offline_for)
                    );
                    self.backlog = Some(Backlog {
                        offline_for,
                        delivered: samples,
                    });
                }
            }
            return;
        }
        if let Some(b) = &mut self.backlog {
            b.delivered += samples;
            if queued == Some(0) {
                tracing::info!(
                    sink = %self.sink,
                    "sent the backlog: delivered {} samples since coming back after {} offline",
                    b.delivered,
                    human(b.offline_for)
                );
                self.backlog = None;
            }
        }
    }
}

/// Samples a sink gave up on, for its log: the first drop after a quiet minute is logged at
/// once, later ones are summed by reason into at most one line a minute. Shared by the sink's
/// tasks (submit, sender).
pub struct DropLog {
    sink: String,
    inner: Mutex<DropState>,
}

#[derive(Default)]
struct DropState {
    last_line: Option<Instant>,
    pending: BTreeMap<&'static str, Tally>,
}

struct Tally {
    samples: u64,
    times: u64,
    /// The latest explanation (a refusal's status and body).
    detail: String,
}

impl DropLog {
    pub fn new(sink: &str) -> DropLog {
        DropLog {
            sink: sink.to_string(),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DropState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `samples` given up on for `reason` (the `reason` label of
    /// `pushrelay_samples_dropped_total`); `detail` says why, e.g. the receiver's answer.
    pub fn record(&self, reason: &'static str, samples: u64, detail: impl FnOnce() -> String) {
        if samples == 0 {
            return;
        }
        let mut st = self.lock();
        let quiet = st
            .last_line
            .is_none_or(|t| t.elapsed() >= DROP_SUMMARY_EVERY);
        if quiet && st.pending.is_empty() {
            st.last_line = Some(Instant::now());
            tracing::warn!(sink = %self.sink, reason, "dropped {samples} samples: {}", detail());
            return;
        }
        let t = st.pending.entry(reason).or_insert_with(|| Tally {
            samples: 0,
            times: 0,
            detail: String::new(),
        });
        t.samples += samples;
        t.times += 1;
        t.detail = detail();
    }

    /// Logs the drops not logged yet if a minute has passed since the last drop line, or
    /// whatever the time if `force` (shutdown).
    pub fn tick(&self, force: bool) {
        let mut st = self.lock();
        if st.pending.is_empty() {
            return;
        }
        let since = st.last_line.map(|t| t.elapsed());
        if !force && since.is_some_and(|d| d < DROP_SUMMARY_EVERY) {
            return;
        }
        let pending = std::mem::take(&mut st.pending);
        st.last_line = Some(Instant::now());
        let total: u64 = pending.values().map(|t| t.samples).sum();
        let parts: Vec<String> = pending
            .iter()
            .map(|(reason, t)| {
                format!(
                    "{reason} {} ({} times; last: {})",
                    t.samples, t.times, t.detail
                )
            })
            .collect();
        tracing::warn!(
            sink = %self.sink,
            "dropped {total} more samples in the last {}: {}",
            human(since.unwrap_or_default()),
            parts.join("; ")
        );
    }

    /// Runs [`DropLog::tick`] every [`DROP_TICK`] until `cancel`, then forces one (the last
    /// delivery at shutdown may be abandoned; the sink forces another if it ends).
    pub async fn summarise(&self, cancel: &tokio_util::sync::CancellationToken) {
        let mut every = tokio::time::interval(DROP_TICK);
        loop {
            tokio::select! {
                _ = every.tick() => self.tick(false),
                _ = cancel.cancelled() => break,
            }
        }
        self.tick(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracing writer into a shared buffer, to count log lines.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub(crate) fn lines(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .map(str::to_string)
                .collect()
        }
        pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
            let w = self.clone();
            let sub = tracing_subscriber::fmt()
                .with_writer(move || w.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_default(sub)
        }
    }

    fn retryable(kind: Failure) -> SendError {
        SendError::Retryable {
            kind,
            reason: format!("{kind:?}"),
            after: None,
        }
    }

    /// A flapping link: one offline line and one back-online line per flap, never one per
    /// retry; a new kind of failure within an outage gets one line.
    #[tokio::test(start_paused = true)]
    async fn one_line_per_change() {
        let logs = Captured::default();
        let _g = logs.install();
        let mut o = OutageLog::new("rw", "http://rx/".into());
        for _ in 0..3 {
            for _ in 0..20 {
                o.failed(&retryable(Failure::Network), || "keeping".into());
            }
            o.failed(&retryable(Failure::Unauthorized), || "keeping".into());
            o.failed(&retryable(Failure::Network), || "keeping".into());
            tokio::time::sleep(Duration::from_secs(30)).await;
            o.delivered(10, Some(0));
            o.delivered(10, Some(0));
        }
        let l = logs.lines();
        let count = |s: &str| l.iter().filter(|x| x.contains(s)).count();
        assert_eq!(count("offline: Network"), 3, "{l:#?}");
        assert_eq!(count("still offline, now: Unauthorized"), 3, "{l:#?}");
        assert_eq!(count("back online after 30s"), 3, "{l:#?}");
        assert_eq!(l.len(), 9, "{l:#?}");
    }

    /// Back online with a backlog: the back-online line says what is left, the backlog line
    /// what was delivered in all.
    #[tokio::test(start_paused = true)]
    async fn backlog_counts_are_what_was_delivered() {
        let logs = Captured::default();
        let _g = logs.install();
        let mut o = OutageLog::new("rw", "http://rx/".into());
        o.failed(&retryable(Failure::ServerError), || "100 queued".into());
        o.delivered(40, Some(60));
        o.delivered(50, Some(10));
        o.delivered(10, Some(0));
        o.delivered(5, Some(0));
        let l = logs.lines();
        assert!(
            l[1].contains("delivered 40 samples, sending the 60 still queued"),
            "{l:#?}"
        );
        assert!(
            l[2].contains("delivered 100 samples since coming back"),
            "{l:#?}"
        );
        assert_eq!(l.len(), 3, "{l:#?}");
    }

    /// A drop per batch gives one line at once, then one summary a minute at most.
    #[tokio::test(start_paused = true)]
    async fn drops_are_summarised_once_a_minute() {
        let logs = Captured::default();
        let _g = logs.install();
        let d = DropLog::new("rw");
        // 5 minutes of a drop every second, and a tick every 10 s.
        for s in 0..300u64 {
            d.record("buffer_full", 7, || "queue full".into());
            if s % 50 == 0 {
                d.record("rejected", 3, || format!("HTTP 413 #{s}"));
            }
            if s % 10 == 0 {
                d.tick(false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        d.tick(true);
        let l = logs.lines();
        assert!(l.len() <= 6 + 1, "{l:#?}");
        assert!(l[0].contains("dropped 7 samples: queue full"), "{l:#?}");
        let total: u64 = l
            .iter()
            .filter_map(|x| {
                let i = x.find("dropped ")? + 8;
                x[i..].split(' ').next()?.parse::<u64>().ok()
            })
            .sum();
        assert_eq!(total, 300 * 7 + 6 * 3, "every sample is in a line: {l:#?}");
        assert!(
            l[1].contains("rejected 6 (2 times; last: HTTP 413 #50)"),
            "{l:#?}"
        );
    }
}
