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
    queue: u64,
    queue_bytes: u64,
    oldest_ms: Option<i64>,
    corruptions: u64,
    last_success: Option<f64>,
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

    pub fn retried(&self, sink: &str) {
        self.with(|i| i.sinks.entry(sink.to_string()).or_default().retries += 1);
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

    /// Total samples dropped by `sink` so far, over all reasons.
    pub fn dropped_total(&self, sink: &str) -> u64 {
        self.with(|i| {
            i.sinks
                .get(sink)
                .map(|s| s.dropped.values().sum())
                .unwrap_or(0)
        })
    }

    /// The metric families, as a source would return them.
    pub fn families(&self) -> Vec<Family> {
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
            let now = crate::model::now_ms();
            for (name, s) in &i.sinks {
                let l = one("sink", name);
                sent.push(l.clone(), s.sent as f64);
                for (reason, n) in &s.dropped {
                    let l =
                        Labels::from_pairs([("sink", name.as_str()), ("reason", reason.as_str())])
                            .expect("constant label names");
                    dropped.push(l, *n as f64);
                }
                retries.push(l.clone(), s.retries as f64);
                queue.push(l.clone(), s.queue as f64);
                qbytes.push(l.clone(), s.queue_bytes as f64);
                qage.push(
                    l.clone(),
                    s.oldest_ms
                        .map(|t| (now - t).max(0) as f64 / 1000.0)
                        .unwrap_or(0.0),
                );
                corrupt.push(l.clone(), s.corruptions as f64);
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
            [
                up, dur, sent, dropped, retries, queue, qbytes, qage, corrupt, last, build,
            ]
            .into_iter()
            .filter(|f| !f.samples.is_empty())
            .collect()
        })
    }
}
