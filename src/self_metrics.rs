//! The relay's own metrics (`pushrelay_*`): counted by sources and sinks, pushed as job `pushrelay`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::model::{Family, Labels, MetricType};

/// Counters and gauges the running relay keeps about itself. Cheap to update from any task.
#[derive(Default)]
pub struct SelfMetrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sources: BTreeMap<String, SourceStat>,
    sinks: BTreeMap<String, SinkStat>,
    /// Whether the last configuration (re)load worked, and when one last did (seconds).
    reload: Option<(bool, f64)>,
}

#[derive(Default)]
struct SourceStat {
    up: bool,
    duration_seconds: f64,
}

#[derive(Default)]
struct SinkStat {
    sent: u64,
    dropped: BTreeMap<String, u64>,
    retries: u64,
    /// Failed attempts by reason (`sinks::send::Failure`).
    failures: BTreeMap<String, u64>,
    /// Whether the queue is on disk (`None`: a sink or queue that never is).
    on_disk: Option<bool>,
    queue: u64,
    queue_bytes: u64,
    oldest_ms: Option<i64>,
    corruptions: u64,
    last_success: Option<f64>,
    /// Bytes of requests sent and of answers received (HTTP/1.1 heads included).
    sent_bytes: u64,
    /// Bytes sent on the current UTC day: (days since the epoch, bytes), for the status page.
    sent_today: (i64, u64),
    received_bytes: u64,
}

/// A sink's queue as the status page shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueView {
    pub samples: u64,
    pub bytes: u64,
    pub oldest_ms: Option<i64>,
}

impl SelfMetrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means another task panicked mid-update of plain counters;
        // the numbers are still usable.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Registers a sink so its series exist (at zero) from the start.
    pub fn register_sink(&self, sink: &str) {
        self.with(|i| {
            i.sinks.entry(sink.to_string()).or_default();
        });
    }

    pub fn source_polled(&self, source: &str, up: bool, duration_seconds: f64) {
        self.with(|i| {
            let s = i.sources.entry(source.to_string()).or_default();
            s.up = up;
            s.duration_seconds = duration_seconds;
        });
    }

    pub fn sent(&self, sink: &str, samples: u64, now_seconds: f64) {
        self.with(|i| {
            let s = i.sinks.entry(sink.to_string()).or_default();
            s.sent += samples;
            s.last_success = Some(now_seconds);
        });
    }

    pub fn dropped(&self, sink: &str, reason: &str, samples: u64) {
        self.with(|i| {
            let s = i.sinks.entry(sink.to_string()).or_default();
            *s.dropped.entry(reason.to_string()).or_default() += samples;
        });
    }

    /// Bytes one request took on the wire, and its answer (HTTP heads included).
    pub fn wire_bytes(&self, sink: &str, sent: u64, received: u64) {
        self.with(|i| {
            let s = i.sinks.entry(sink.to_string()).or_default();
            s.sent_bytes += sent;
            s.received_bytes += received;
            let day = crate::clock::system_now_ms().div_euclid(86_400_000);
            if s.sent_today.0 != day {
                s.sent_today = (day, 0);
            }
            s.sent_today.1 += sent;
        });
    }

    /// Bytes the sink sent on the wire since the start of today (UTC).
    pub fn sent_bytes_today(&self, sink: &str) -> u64 {
        let day = crate::clock::system_now_ms().div_euclid(86_400_000);
        self.with(|i| {
            i.sinks
                .get(sink)
                .filter(|s| s.sent_today.0 == day)
                .map_or(0, |s| s.sent_today.1)
        })
    }

    /// Bytes sent and received so far by the sink (see [`SelfMetrics::wire_bytes`]).
    pub fn wire_bytes_total(&self, sink: &str) -> (u64, u64) {
        self.with(|i| {
            i.sinks
                .get(sink)
                .map_or((0, 0), |s| (s.sent_bytes, s.received_bytes))
        })
    }

    pub fn retried(&self, sink: &str) {
        self.with(|i| i.sinks.entry(sink.to_string()).or_default().retries += 1);
    }

    /// One failed send attempt, by reason (`network`, `server_error`, `unauthorized`, …).
    pub fn send_failed(&self, sink: &str, reason: &str) {
        self.with(|i| {
            let s = i.sinks.entry(sink.to_string()).or_default();
            *s.failures.entry(reason.to_string()).or_default() += 1;
        });
    }

    /// Whether the sink's queue is on disk (1) or held in memory after a disk failure (0).
    pub fn buffer_on_disk(&self, sink: &str, on_disk: Option<bool>) {
        self.with(|i| i.sinks.entry(sink.to_string()).or_default().on_disk = on_disk);
    }

    /// Samples dropped by `sink` so far, per reason (non-zero ones).
    pub fn dropped_by_reason(&self, sink: &str) -> Vec<(String, u64)> {
        self.with(|i| {
            i.sinks
                .get(sink)
                .map(|s| {
                    s.dropped
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(r, n)| (r.clone(), *n))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// The queue's whole state: samples, bytes and the oldest sample's timestamp.
    pub fn queue_state(&self, sink: &str, samples: u64, bytes: u64, oldest_ms: Option<i64>) {
        self.with(|i| {
            let s = i.sinks.entry(sink.to_string()).or_default();
            s.queue = samples;
            s.queue_bytes = bytes;
            s.oldest_ms = oldest_ms;
        });
    }

    pub fn corruptions(&self, sink: &str, n: u64) {
        self.with(|i| i.sinks.entry(sink.to_string()).or_default().corruptions += n);
    }

    /// Total samples sent by `sink` so far.
    pub fn sent_total(&self, sink: &str) -> u64 {
        self.with(|i| i.sinks.get(sink).map(|s| s.sent).unwrap_or(0))
    }

    /// A configuration was loaded (`ok`) or refused, at `now_seconds`.
    pub fn config_loaded(&self, ok: bool, now_seconds: f64) {
        self.with(|i| {
            let last_ok = i.reload.map(|(_, t)| t).unwrap_or(now_seconds);
            i.reload = Some((ok, if ok { now_seconds } else { last_ok }));
        });
    }

    /// Drops a source's series (it was removed by a reload).
    pub fn forget_source(&self, source: &str) {
        self.with(|i| {
            i.sources.remove(source);
        });
    }

    /// Drops a sink's series (it was removed by a reload).
    pub fn forget_sink(&self, sink: &str) {
        self.with(|i| {
            i.sinks.remove(sink);
        });
    }

    /// When `sink` last delivered (seconds since the epoch).
    pub fn last_success(&self, sink: &str) -> Option<f64> {
        self.with(|i| i.sinks.get(sink).and_then(|s| s.last_success))
    }

    /// What waits in `sink`'s queue.
    pub fn sink_queue(&self, sink: &str) -> QueueView {
        self.with(|i| {
            i.sinks
                .get(sink)
                .map(|s| QueueView {
                    samples: s.queue,
                    bytes: s.queue_bytes,
                    oldest_ms: s.oldest_ms,
                })
                .unwrap_or_default()
        })
    }

    /// Total samples dropped by `sink` so far, over all reasons.
    pub fn dropped_total(&self, sink: &str) -> u64 {
        self.with(|i| {
            i.sinks
                .get(sink)
                .map(|s| s.dropped.values().sum())
                .unwrap_or(0)
        })
    }

    /// The metric families, as a source would return them; `now_ms` (wall clock) dates the
    /// queue ages.
    pub fn families(&self, now_ms: i64) -> Vec<Family> {
        let one = |k: &str, v: &str| Labels::from_pairs([(k, v)]).expect("constant label name");
        self.with(|i| {
            let mut up = Family::new(
                "pushrelay_source_up",
                MetricType::Gauge,
                "Whether the last poll of the source succeeded (1) or not (0).",
            );
            let mut dur = Family::new(
                "pushrelay_source_duration_seconds",
                MetricType::Gauge,
                "How long the last poll of the source took.",
            );
            for (name, s) in &i.sources {
                up.push(one("source", name), if s.up { 1.0 } else { 0.0 });
                dur.push(one("source", name), s.duration_seconds);
            }
            let mut sent = Family::new(
                "pushrelay_samples_sent_total",
                MetricType::Counter,
                "Samples the sink delivered.",
            );
            let mut dropped = Family::new(
                "pushrelay_samples_dropped_total",
                MetricType::Counter,
                "Samples the sink gave up on, by reason.",
            );
            let mut retries = Family::new(
                "pushrelay_send_retries_total",
                MetricType::Counter,
                "Sends the sink retried.",
            );
            let mut failures = Family::new(
                "pushrelay_send_failures_total",
                MetricType::Counter,
                "Failed send attempts, by reason.",
            );
            let mut on_disk = Family::new(
                "pushrelay_buffer_on_disk",
                MetricType::Gauge,
                "Whether the sink's queue is on disk (1) or in memory after a disk failure (0).",
            );
            let mut queue = Family::new(
                "pushrelay_queue_samples",
                MetricType::Gauge,
                "Samples waiting in the sink's queue.",
            );
            let mut last = Family::new(
                "pushrelay_last_send_success_timestamp_seconds",
                MetricType::Gauge,
                "When the sink last delivered a send.",
            );
            let mut qbytes = Family::new(
                "pushrelay_queue_bytes",
                MetricType::Gauge,
                "Bytes the sink's queue takes.",
            );
            let mut qage = Family::new(
                "pushrelay_queue_oldest_sample_age_seconds",
                MetricType::Gauge,
                "Age of the oldest sample waiting in the sink's queue (0 when empty).",
            );
            let mut corrupt = Family::new(
                "pushrelay_buffer_corruptions_total",
                MetricType::Counter,
                "Corrupt or torn records found in the sink's disk queue.",
            );
            let mut sent_bytes = Family::new(
                "pushrelay_sent_bytes_total",
                MetricType::Counter,
                "Bytes the sink sent to its receiver, HTTP headers included (TLS and TCP overhead not).",
            );
            let mut received_bytes = Family::new(
                "pushrelay_received_bytes_total",
                MetricType::Counter,
                "Bytes of the receiver's answers, HTTP headers included (TLS and TCP overhead not).",
            );
            let now = now_ms;
            for (name, s) in &i.sinks {
                let l = one("sink", name);
                sent.push(l.clone(), s.sent as f64);
                let by_reason = |reason: &str| {
                    Labels::from_pairs([("sink", name.as_str()), ("reason", reason)])
                        .expect("constant label names")
                };
                for (reason, n) in &s.dropped {
                    dropped.push(by_reason(reason), *n as f64);
                }
                retries.push(l.clone(), s.retries as f64);
                for (reason, n) in &s.failures {
                    failures.push(by_reason(reason), *n as f64);
                }
                if let Some(d) = s.on_disk {
                    on_disk.push(l.clone(), if d { 1.0 } else { 0.0 });
                }
                queue.push(l.clone(), s.queue as f64);
                qbytes.push(l.clone(), s.queue_bytes as f64);
                qage.push(
                    l.clone(),
                    s.oldest_ms
                        .map(|t| (now - t).max(0) as f64 / 1000.0)
                        .unwrap_or(0.0),
                );
                corrupt.push(l.clone(), s.corruptions as f64);
                sent_bytes.push(l.clone(), s.sent_bytes as f64);
                received_bytes.push(l.clone(), s.received_bytes as f64);
                if let Some(t) = s.last_success {
                    last.push(l, t);
                }
            }
            let mut build = Family::new(
                "pushrelay_build_info",
                MetricType::Gauge,
                "Always 1; the version, git commit, target and features of the running relay.",
            );
            let build_labels =
                Labels::from_pairs(crate::build_info::labels()).expect("constant label names");
            build.push(build_labels, 1.0);
            let mut reload_ok = Family::new(
                "pushrelay_config_last_reload_successful",
                MetricType::Gauge,
                "Whether the last configuration reload attempt succeeded (1) or not (0).",
            );
            let mut reload_at = Family::new(
                "pushrelay_config_last_reload_success_timestamp_seconds",
                MetricType::Gauge,
                "When the configuration was last loaded successfully.",
            );
            if let Some((ok, at)) = i.reload {
                reload_ok.push(Labels::new(), if ok { 1.0 } else { 0.0 });
                reload_at.push(Labels::new(), at);
            }
            [
                up,
                dur,
                sent,
                dropped,
                retries,
                failures,
                queue,
                qbytes,
                qage,
                on_disk,
                corrupt,
                last,
                sent_bytes,
                received_bytes,
                build,
                reload_ok,
                reload_at,
            ]
            .into_iter()
            .filter(|f| !f.samples.is_empty())
            .collect()
        })
    }
}
