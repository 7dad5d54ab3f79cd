//! The cases of the Prometheus remote-write sender compliance suite (prometheus/compliance,
//! `remote_write_sender`: Counter, Gauge, Histogram, Summary, Up, Invalid, JobLabel,
//! InstanceLabel, SortedLabels, RepeatedLabels, EmptyLabels, NameLabel, HonorLabels, Staleness,
//! Timestamp, Headers, Ordering, Retries500, Retries400), checked on what the relay sends in each
//! wire mode of the remote_write sink: 1.0 with snappy to Prometheus, 1.0 with zstd to
//! VictoriaMetrics, 2.0 to Prometheus (plus 2.0's metadata per series).
//!
//! One exporter exposes every shape at once (a counter counting its scrapes, a gauge holding its
//! clock, a histogram, a summary, unsorted, empty and clashing labels, many series, a series
//! that is gone after the first scrape); three more make their scrapes fail (garbage, a
//! repeated label name, a sample without a name). A proxy in front of the real receiver records
//! every request and answers one 500 and one 400 itself. Every body is decoded into samples and
//! each case is checked on them, then on what the receiver stored.

use crate::support;
use support::fakes::{scrape_to_remote_write, start_relay, Exporter, FaultProxy, Seen};
use support::receivers::{wait_for, Receiver};
use support::{now, now_ms};

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use prost::Message;
use pushrelay::config::SELF_JOB;
use pushrelay::model::is_stale_nan;
use pushrelay::wire::proto_v2::metadata::MetricType;
use pushrelay::wire::{form, proto, proto_v2, remote_write, v2};

/// How long each step may take (a scrape a second, batches within 200 ms).
const STEP: Duration = Duration::from_secs(30);
/// Series of the Ordering case: with `max_samples_per_send` below, a scrape spans requests.
const ORDERING_SERIES: usize = 200;
const MAX_SAMPLES_PER_SEND: usize = 100;
/// The stale-marker NaN, bit for bit.
const STALE_BITS: u64 = 0x7ff0_0000_0000_0002;

const HELP_COUNTER: &str = "Scrapes served before this one.";
const HELP_NOW: &str = "The exporter's clock when it answered, in Unix milliseconds.";
const HELP_HISTOGRAM: &str = "Two observations, 1 and 2.";
const HELP_SUMMARY: &str = "Three observations, 1, 2 and 3.";

/// The typed families of the main exporter: their series, type and HELP text.
const FAMILIES: [(&[&str], MetricType, &str); 4] = [
    (&["cases_counter_total"], MetricType::Counter, HELP_COUNTER),
    (&["cases_now"], MetricType::Gauge, HELP_NOW),
    (
        &[
            "cases_histogram_bucket",
            "cases_histogram_sum",
            "cases_histogram_count",
        ],
        MetricType::Histogram,
        HELP_HISTOGRAM,
    ),
    (
        &["cases_summary", "cases_summary_sum", "cases_summary_count"],
        MetricType::Summary,
        HELP_SUMMARY,
    ),
];

/// The main exporter's body for its scrape number `scrape` (0 for the first).
fn node_body(scrape: u64) -> String {
    let mut b = format!(
        "# HELP cases_counter_total {HELP_COUNTER}\n\
         # TYPE cases_counter_total counter\n\
         cases_counter_total {scrape}\n\
         # HELP cases_now {HELP_NOW}\n\
         # TYPE cases_now gauge\n\
         cases_now {now}\n\
         # HELP cases_histogram {HELP_HISTOGRAM}\n\
         # TYPE cases_histogram histogram\n\
         cases_histogram_bucket{{le=\"1\"}} 1\n\
         cases_histogram_bucket{{le=\"2\"}} 2\n\
         cases_histogram_bucket{{le=\"+Inf\"}} 2\n\
         cases_histogram_sum 3\n\
         cases_histogram_count 2\n\
         # HELP cases_summary {HELP_SUMMARY}\n\
         # TYPE cases_summary summary\n\
         cases_summary{{quantile=\"0.5\"}} 2\n\
         cases_summary{{quantile=\"0.9\"}} 3\n\
         cases_summary{{quantile=\"0.99\"}} 3\n\
         cases_summary_sum 6\n\
         cases_summary_count 3\n\
         # TYPE cases_sorted gauge\n\
         cases_sorted{{b=\"2\",a=\"1\"}} 1\n\
         # TYPE cases_empty gauge\n\
         cases_empty{{a=\"\"}} 1\n\
         # TYPE cases_honor gauge\n\
         cases_honor{{job=\"original\",instance=\"foo\"}} 1\n\
         # TYPE cases_ordering gauge\n",
        now = now_ms()
    );
    for i in 0..ORDERING_SERIES {
        writeln!(b, "cases_ordering{{i=\"{i}\"}} 1").unwrap();
    }
    if scrape == 0 {
        b.push_str("# TYPE cases_stale gauge\ncases_stale 1\n");
    }
    b
}

/// Invalid: not the exposition format at all.
const INVALID_BODY: &str = "# this is not valid prometheus\n1234notvali}{ 444\n";
/// RepeatedLabels: a label name twice; the scrape fails.
const REPEATED_BODY: &str =
    "# HELP cases_repeated A gauge.\n# TYPE cases_repeated gauge\ncases_repeated{a=\"1\",a=\"1\"} 1.0\n";
/// NameLabel: a sample without a name; the scrape fails.
const NAMELESS_BODY: &str = "# HELP test A gauge.\n# TYPE test gauge\n{label=\"value\"} 1.0\n";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    V1Snappy,
    V1Zstd,
    V2,
}

impl Mode {
    fn sink_keys(self) -> &'static str {
        match self {
            Mode::V1Snappy => "protocol = \"v1\"\ncompression = \"snappy\"",
            Mode::V1Zstd => "protocol = \"v1\"\ncompression = \"zstd\"",
            Mode::V2 => "protocol = \"v2\"",
        }
    }

    /// The headers every request must carry (`None`: must not carry).
    fn headers(self) -> [(&'static str, Option<&'static str>); 4] {
        let vm = "x-victoriametrics-remote-write-version";
        match self {
            Mode::V1Snappy => [
                ("content-encoding", Some("snappy")),
                ("content-type", Some("application/x-protobuf")),
                ("x-prometheus-remote-write-version", Some("0.1.0")),
                (vm, None),
            ],
            Mode::V1Zstd => [
                ("content-encoding", Some("zstd")),
                ("content-type", Some("application/x-protobuf")),
                ("x-prometheus-remote-write-version", Some("0.1.0")),
                (vm, Some("1")),
            ],
            Mode::V2 => [
                ("content-encoding", Some("snappy")),
                (
                    "content-type",
                    Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
                ),
                ("x-prometheus-remote-write-version", Some("2.0.0")),
                (vm, None),
            ],
        }
    }
}

/// One sample as sent: its series' labels in wire order, timestamp (ms) and value.
#[derive(Clone, Debug)]
struct Point {
    labels: Vec<(String, String)>,
    ts: i64,
    value: f64,
}

impl Point {
    fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn name(&self) -> &str {
        self.get("__name__").unwrap_or("")
    }

    /// The series, as text: what identifies it across requests.
    fn series(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.labels {
            write!(s, "{k}={v:?},").unwrap();
        }
        s
    }

    /// Whether the series has exactly these labels besides `__name__`, `job` and `instance`
    /// (and has `__name__` = `name`).
    fn is(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name() == name
            && self
                .labels
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "job" | "instance"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .eq(labels.iter().copied())
    }
}

/// One request the proxy saw, decoded.
struct Request {
    seen: Seen,
    points: Vec<Point>,
    /// The 2.0 message, in 2.0 mode.
    v2: Option<proto_v2::Request>,
}

impl Request {
    fn accepted(&self) -> bool {
        (200..300).contains(&self.seen.status)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.seen
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn decode(mode: Mode, i: usize, seen: &Seen) -> Request {
    let bad = |e: &dyn std::fmt::Display| -> ! {
        panic!(
            "{mode:?}: request {i} ({} bytes, status {}) does not decode as the mode's body: {e}",
            seen.body.len(),
            seen.status
        )
    };
    let (v1, v2_req) = match mode {
        Mode::V1Snappy => (
            remote_write::decode(&seen.body).unwrap_or_else(|e| bad(&e)),
            None,
        ),
        Mode::V1Zstd => {
            let raw = form::zstd_decompress(&seen.body, 64 << 20).unwrap_or_else(|e| bad(&e));
            (
                proto::WriteRequest::decode(raw.as_slice()).unwrap_or_else(|e| bad(&e)),
                None,
            )
        }
        Mode::V2 => {
            let req = v2::decode(&seen.body).unwrap_or_else(|e| bad(&e));
            assert_eq!(
                req.symbols.first().map(String::as_str),
                Some(""),
                "{mode:?}: request {i}: the symbols table must start with \"\""
            );
            let n = req.symbols.len() as u32;
            for ts in &req.timeseries {
                assert!(
                    ts.labels_refs.len() % 2 == 0 && ts.labels_refs.iter().all(|&r| r < n),
                    "{mode:?}: request {i}: labels_refs {:?} are not pairs within the {n} symbols",
                    ts.labels_refs
                );
                if let Some(m) = ts.metadata {
                    assert!(
                        m.help_ref < n && m.unit_ref < n,
                        "{mode:?}: request {i}: metadata {m:?} outside the {n} symbols"
                    );
                }
            }
            (v2::to_v1(req.clone()), Some(req))
        }
    };
    let points = v1
        .timeseries
        .iter()
        .flat_map(|ts| {
            let labels: Vec<(String, String)> = ts
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            ts.samples.iter().map(move |s| Point {
                labels: labels.clone(),
                ts: s.timestamp,
                value: s.value,
            })
        })
        .collect();
    Request {
        seen: seen.clone(),
        points,
        v2: v2_req,
    }
}

fn decode_all(mode: Mode, proxy: &FaultProxy) -> Vec<Request> {
    proxy
        .seen()
        .iter()
        .enumerate()
        .map(|(i, s)| decode(mode, i, s))
        .collect()
}

/// Distinct timestamps of `cases_now` in accepted requests from index `from` on.
fn delivered_scrapes(reqs: &[Request], from: usize) -> usize {
    let mut ts: Vec<i64> = reqs
        .iter()
        .skip(from)
        .filter(|r| r.accepted())
        .flat_map(|r| &r.points)
        .filter(|p| p.name() == "cases_now")
        .map(|p| p.ts)
        .collect();
    ts.sort_unstable();
    ts.dedup();
    ts.len()
}

/// A series (name and labels besides the target's) and the value each of its samples has.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Everything one mode's run produced.
struct Run {
    mode: Mode,
    reqs: Vec<Request>,
    /// What the relay sent, each (series, timestamp) once, whatever the answer was: series
    /// text -> points by time.
    sent: BTreeMap<String, Vec<Point>>,
    start_ms: i64,
    end_ms: i64,
    /// `job` -> the `instance` its exporter has.
    instances: HashMap<&'static str, String>,
    dropped: u64,
}

impl Run {
    fn new(
        mode: Mode,
        reqs: Vec<Request>,
        start_ms: i64,
        end_ms: i64,
        instances: HashMap<&'static str, String>,
        dropped: u64,
    ) -> Run {
        let mut by_key: BTreeMap<(String, i64), Point> = BTreeMap::new();
        for (i, r) in reqs.iter().enumerate() {
            for p in &r.points {
                if let Some(old) = by_key.insert((p.series(), p.ts), p.clone()) {
                    assert_eq!(
                        old.value.to_bits(),
                        p.value.to_bits(),
                        "{mode:?}: request {i} sends {} at {} as {} after {} (a retry must carry the same value)",
                        p.series(),
                        p.ts,
                        p.value,
                        old.value
                    );
                }
            }
        }
        let mut sent: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for ((series, _), p) in by_key {
            sent.entry(series).or_default().push(p);
        }
        Run {
            mode,
            reqs,
            sent,
            start_ms,
            end_ms,
            instances,
            dropped,
        }
    }

    fn all_sent(&self) -> impl Iterator<Item = &Point> {
        self.sent.values().flatten()
    }

    /// Points sent of the source `job`'s series `name` with exactly `labels` besides the target
    /// labels, by time.
    fn series(&self, job: &str, name: &str, labels: &[(&str, &str)]) -> Vec<&Point> {
        let found: Vec<&Vec<Point>> = self
            .sent
            .values()
            .filter(|ps| ps[0].get("job") == Some(job) && ps[0].is(name, labels))
            .collect();
        assert!(
            found.len() <= 1,
            "{:?}: several series match {name}{labels:?} of job {job}",
            self.mode
        );
        found.into_iter().flatten().collect()
    }

    /// Like [`Run::series`], asserting the series was sent at all (`case` names the check).
    fn present(&self, case: &str, job: &str, name: &str, labels: &[(&str, &str)]) -> Vec<&Point> {
        let ps = self.series(job, name, labels);
        assert!(
            !ps.is_empty(),
            "{:?} {case}: no sample of {name}{labels:?} (job {job}) was sent; series sent: {:?}",
            self.mode,
            self.sent.keys().take(40).collect::<Vec<_>>()
        );
        ps
    }

    fn check_counter(&self) {
        let ps = self.present("Counter", "node", "cases_counter_total", &[]);
        for (i, p) in ps.iter().enumerate() {
            assert_eq!(
                p.value,
                i as f64,
                "{:?} Counter: the {i}th sample sent (at {}) must count {i} earlier scrapes: {:?}",
                self.mode,
                p.ts,
                ps.iter().map(|p| p.value).collect::<Vec<_>>()
            );
        }
    }

    fn check_gauge(&self) {
        let ps = self.present("Gauge", "node", "cases_now", &[]);
        for p in ps {
            let (v, t) = (p.value, p.ts as f64);
            assert!(
                ((v - t) / t).abs() <= 0.01,
                "{:?} Gauge: cases_now = {v} at {t}: not within 1 %",
                self.mode
            );
            // Tighter than the case: the exporter answered within seconds of the scrape.
            assert!(
                (v - t).abs() <= 10_000.0,
                "{:?} Gauge: cases_now = {v} at {t}: the clock and the timestamp are {} ms apart",
                self.mode,
                v - t
            );
        }
    }

    /// Every series of a family at every time its `_count` was sent, with its value.
    fn check_family(&self, case: &str, count: &str, want: &[Expected]) {
        let times: Vec<i64> = self
            .present(case, "node", count, &[])
            .iter()
            .map(|p| p.ts)
            .collect();
        for (name, labels, value) in want {
            let ps = self.present(case, "node", name, labels);
            let got: Vec<i64> = ps.iter().map(|p| p.ts).collect();
            assert_eq!(
                got, times,
                "{:?} {case}: {name}{labels:?} must be sent with every {count}",
                self.mode
            );
            for p in ps {
                assert_eq!(
                    p.value, *value,
                    "{:?} {case}: {name}{labels:?} at {}",
                    self.mode, p.ts
                );
            }
        }
    }

    fn check_histogram(&self) {
        // Prometheus 3 normalises `le` to a float's spelling ("1" -> "1.0"); the relay does too.
        self.check_family(
            "Histogram",
            "cases_histogram_count",
            &[
                ("cases_histogram_bucket", &[("le", "1.0")], 1.0),
                ("cases_histogram_bucket", &[("le", "2.0")], 2.0),
                ("cases_histogram_bucket", &[("le", "+Inf")], 2.0),
                ("cases_histogram_sum", &[], 3.0),
                ("cases_histogram_count", &[], 2.0),
            ],
        );
    }

    fn check_summary(&self) {
        self.check_family(
            "Summary",
            "cases_summary_count",
            &[
                ("cases_summary", &[("quantile", "0.5")], 2.0),
                ("cases_summary", &[("quantile", "0.9")], 3.0),
                ("cases_summary", &[("quantile", "0.99")], 3.0),
                ("cases_summary_sum", &[], 6.0),
                ("cases_summary_count", &[], 3.0),
            ],
        );
    }

    /// Up and Invalid (and the failing scrapes of RepeatedLabels and NameLabel): `up` is 1 for
    /// the good exporter, 0 for the others, whose only series are the scrape's report.
    fn check_up(&self) {
        for (job, up, case) in [
            ("node", 1.0, "Up"),
            ("invalid", 0.0, "Invalid"),
            ("repeated", 0.0, "RepeatedLabels"),
            ("nameless", 0.0, "NameLabel"),
        ] {
            let ps = self.present(case, job, "up", &[]);
            for p in ps {
                assert_eq!(
                    p.value, up,
                    "{:?} {case}: up{{job={job:?}}} at {}",
                    self.mode, p.ts
                );
            }
            if up == 0.0 {
                let others: Vec<&str> = self
                    .all_sent()
                    .filter(|p| p.get("job") == Some(job))
                    .map(|p| p.name())
                    .filter(|n| {
                        !matches!(
                            *n,
                            "up" | "scrape_duration_seconds" | "scrape_samples_scraped"
                        )
                    })
                    .collect();
                assert!(
                    others.is_empty(),
                    "{:?} {case}: a failed scrape of {job} sent series {others:?}",
                    self.mode
                );
            }
        }
    }

    /// JobLabel, InstanceLabel, SortedLabels, RepeatedLabels, EmptyLabels, NameLabel, on every
    /// sample sent.
    fn check_labels(&self) {
        let m = self.mode;
        for p in self.all_sent() {
            assert!(
                p.get("__name__").is_some_and(|n| !n.is_empty()),
                "{m:?} NameLabel: {} has no __name__",
                p.series()
            );
            assert!(
                p.labels.windows(2).all(|w| w[0].0 < w[1].0),
                "{m:?} SortedLabels/RepeatedLabels: the label names of {} are not strictly \
                 increasing",
                p.series()
            );
            assert!(
                p.labels.iter().all(|(k, v)| !k.is_empty() && !v.is_empty()),
                "{m:?} EmptyLabels: {} has an empty label name or value",
                p.series()
            );
            let job = p
                .get("job")
                .unwrap_or_else(|| panic!("{m:?} JobLabel: {} has no job", p.series()));
            let instance = p
                .get("instance")
                .unwrap_or_else(|| panic!("{m:?} InstanceLabel: {} has no instance", p.series()));
            if job != SELF_JOB {
                let want = self.instances.get(job).unwrap_or_else(|| {
                    panic!(
                        "{m:?} JobLabel: {} has job {job:?}, no source's name",
                        p.series()
                    )
                });
                assert_eq!(
                    instance,
                    want,
                    "{m:?} InstanceLabel: {} is not its exporter's host:port",
                    p.series()
                );
            }
            assert!(
                p.get("label") != Some("value") && p.name() != "cases_repeated",
                "{m:?} NameLabel/RepeatedLabels: {} comes from a failed scrape",
                p.series()
            );
        }
        // JobLabel with the case's own gauge, SortedLabels, EmptyLabels and HonorLabels, exactly.
        for p in self.present("JobLabel", "node", "cases_now", &[]) {
            assert_eq!(p.labels.len(), 3, "{m:?} JobLabel: {}", p.series());
        }
        for p in self.present(
            "SortedLabels",
            "node",
            "cases_sorted",
            &[("a", "1"), ("b", "2")],
        ) {
            assert_eq!(p.value, 1.0, "{m:?} SortedLabels");
        }
        for p in self.present("EmptyLabels", "node", "cases_empty", &[]) {
            assert_eq!(p.value, 1.0, "{m:?} EmptyLabels");
        }
        let honored = [("exported_instance", "foo"), ("exported_job", "original")];
        for p in self.present("HonorLabels", "node", "cases_honor", &honored) {
            assert_eq!(p.value, 1.0, "{m:?} HonorLabels");
        }
    }

    /// Staleness: the series gone after the first scrape ends with one stale marker, the
    /// exact NaN, at the next scrape's time; no other series gets one.
    fn check_staleness(&self) {
        let m = self.mode;
        let ps = self.present("Staleness", "node", "cases_stale", &[]);
        let got: Vec<(i64, u64)> = ps.iter().map(|p| (p.ts, p.value.to_bits())).collect();
        assert!(
            got.len() == 2 && got[0].1 == 1f64.to_bits() && got[1].1 == STALE_BITS,
            "{m:?} Staleness: want 1 then the stale NaN {STALE_BITS:#x}, got {got:x?}"
        );
        assert!(is_stale_nan(ps[1].value));
        let next_scrape = self.present("Staleness", "node", "cases_now", &[])[1].ts;
        assert_eq!(
            ps[1].ts, next_scrape,
            "{m:?} Staleness: the marker goes at the next scrape's time"
        );
        let others: Vec<String> = self
            .all_sent()
            .filter(|p| p.value.is_nan() && p.name() != "cases_stale")
            .map(|p| format!("{} at {} ({:#x})", p.series(), p.ts, p.value.to_bits()))
            .collect();
        assert!(
            others.is_empty(),
            "{m:?} Staleness: NaN sent for series still there: {others:?}"
        );
    }

    /// Timestamp and Ordering: milliseconds within the run; in the order requests were
    /// accepted, each series' timestamps strictly increase (within a request as well).
    fn check_timestamps(&self) {
        let m = self.mode;
        for p in self.all_sent() {
            assert!(
                (self.start_ms..=self.end_ms).contains(&p.ts),
                "{m:?} Timestamp: {} at {} outside the run [{}, {}]",
                p.series(),
                p.ts,
                self.start_ms,
                self.end_ms
            );
        }
        let mut last: HashMap<String, (i64, usize)> = HashMap::new();
        for (i, r) in self.reqs.iter().enumerate().filter(|(_, r)| r.accepted()) {
            for p in &r.points {
                let key = p.series();
                if let Some(&(t, j)) = last.get(&key) {
                    assert!(
                        p.ts > t,
                        "{m:?} Ordering: {key} at {} in request {i} after {t} in request {j}",
                        p.ts
                    );
                }
                last.insert(key, (p.ts, i));
            }
        }
        let ordered = self
            .sent
            .values()
            .filter(|ps| ps[0].name() == "cases_ordering")
            .count();
        assert_eq!(ordered, ORDERING_SERIES, "{m:?} Ordering: series sent");
    }

    fn check_headers(&self) {
        let m = self.mode;
        for (i, r) in self.reqs.iter().enumerate() {
            assert_eq!(
                (r.seen.method.as_str(), r.seen.path.as_str()),
                ("POST", "/api/v1/write"),
                "{m:?} Headers: request {i}"
            );
            for (name, want) in m.headers() {
                assert_eq!(r.header(name), want, "{m:?} Headers: {name} of request {i}");
            }
            assert!(
                r.header("user-agent")
                    .is_some_and(|ua| ua.starts_with("pushrelay/")),
                "{m:?} Headers: User-Agent of request {i}: {:?}",
                r.header("user-agent")
            );
        }
    }

    /// Retries500: each batch answered 500 is sent again at once, the same samples, and
    /// accepted. Retries400: no batch answered 400 is ever sent again (none of its samples is
    /// in another request), their samples are counted as dropped, and later scrapes still go
    /// out. As in the suite, a batch with the `cases_now` gauge is among those of each status.
    fn check_retries(&self) {
        let m = self.mode;
        let answered = |status: u16| -> Vec<usize> {
            let found: Vec<usize> = (0..self.reqs.len())
                .filter(|&i| self.reqs[i].seen.status == status)
                .collect();
            assert!(
                found
                    .iter()
                    .any(|&i| self.reqs[i].points.iter().any(|p| p.name() == "cases_now")),
                "{m:?}: no batch with cases_now was answered {status} by the proxy ({found:?})"
            );
            found
        };
        let keys = |r: &Request| -> Vec<(String, i64, u64)> {
            let mut k: Vec<_> = r
                .points
                .iter()
                .map(|p| (p.series(), p.ts, p.value.to_bits()))
                .collect();
            k.sort();
            k
        };
        for i in answered(500) {
            let failed = &self.reqs[i];
            assert!(
                !failed.points.is_empty(),
                "{m:?} Retries500: an empty batch"
            );
            // The same batch goes again (another shard's request may come in between).
            assert!(
                self.reqs[i + 1..]
                    .iter()
                    .any(|r| r.accepted() && keys(r) == keys(failed)),
                "{m:?} Retries500: request {i}'s batch was not sent again and accepted"
            );
        }

        let refused = answered(400);
        let mut dropped = 0;
        for &i in &refused {
            let batch = &self.reqs[i];
            assert!(!batch.points.is_empty(), "{m:?} Retries400: an empty batch");
            dropped += batch.points.len() as u64;
            let mine: std::collections::HashSet<(String, i64)> =
                batch.points.iter().map(|p| (p.series(), p.ts)).collect();
            for (j, r) in self.reqs.iter().enumerate().filter(|(j, _)| *j != i) {
                let again = r.points.iter().find(|p| mine.contains(&(p.series(), p.ts)));
                assert!(
                    again.is_none(),
                    "{m:?} Retries400: request {j} sends {:?} of request {i}, answered 400, again",
                    again.map(Point::series)
                );
            }
        }
        assert_eq!(
            self.dropped, dropped,
            "{m:?} Retries400: the refused batches' samples are counted as dropped, nothing else"
        );
        let last = *refused.last().unwrap();
        let newest_refused = self.reqs[last].points.iter().map(|p| p.ts).max().unwrap();
        let later = self.reqs[last + 1..]
            .iter()
            .filter(|r| r.accepted())
            .flat_map(|r| &r.points)
            .filter(|p| p.name() == "cases_now" && p.ts > newest_refused)
            .count();
        assert!(
            later >= 1,
            "{m:?} Retries400: no newer scrape was delivered after the last 400"
        );
    }

    /// 2.0 only: every series of a typed family carries its type, in every request (the 2.0
    /// specification: `metadata` SHOULD be provided for every `TimeSeries`; the protocol is
    /// stateless), and its HELP text in the first request holding the family (then every 10
    /// minutes, as in 1.0: HELP texts are most of a small poll's bytes).
    fn check_v2_metadata(&self) {
        let m = self.mode;
        let mut seen = [0usize; FAMILIES.len()];
        let mut helped = [false; FAMILIES.len()];
        for (i, r) in self.reqs.iter().enumerate() {
            let req = r.v2.as_ref().expect("a 2.0 request");
            for ts in &req.timeseries {
                let name = ts
                    .labels_refs
                    .chunks_exact(2)
                    .find(|p| req.symbols[p[0] as usize] == "__name__")
                    .map(|p| req.symbols[p[1] as usize].as_str())
                    .unwrap_or("");
                let Some(f) = FAMILIES
                    .iter()
                    .position(|(names, ..)| names.contains(&name))
                else {
                    continue;
                };
                let (_, kind, help) = FAMILIES[f];
                let md = ts.metadata.unwrap_or_else(|| {
                    panic!("{m:?} metadata: {name} in request {i} has no metadata")
                });
                assert_eq!(
                    md.r#type, kind as i32,
                    "{m:?} metadata: type of {name} in request {i}"
                );
                let got = req.symbols[md.help_ref as usize].as_str();
                if seen[f] == 0 || !got.is_empty() {
                    assert_eq!(got, help, "{m:?} metadata: HELP of {name} in request {i}");
                }
                helped[f] |= got == help;
                seen[f] += 1;
            }
        }
        assert!(
            seen.iter().all(|&n| n > 0) && helped.iter().all(|&h| h),
            "{m:?} metadata: series seen per family {seen:?}, HELP seen {helped:?}"
        );
    }
}

/// Value of the single series an instant query returns, as f64.
fn single_value(v: &serde_json::Value) -> Option<f64> {
    let r = v.as_array()?;
    (r.len() == 1).then_some(())?;
    r[0]["value"][1].as_str()?.parse().ok()
}

/// Has the proxy answer `status` to the relay's next request holding the `cases_now` gauge (as
/// the suite's Retries cases pick a `now` sample from the batch they fail), and waits for an
/// accepted request holding it after that (for a 500, its retry).
async fn inject(mode: Mode, proxy: &FaultProxy, status: u16) {
    let before = proxy.seen().len();
    proxy.fail_next_where(status, "injected by the test", move |body| {
        let seen = Seen {
            method: "POST".into(),
            path: String::new(),
            status: 0,
            body: body.to_vec(),
            headers: Vec::new(),
        };
        decode(mode, 0, &seen)
            .points
            .iter()
            .any(|p| p.name() == "cases_now")
    });
    // An accepted request holding `cases_now` after it: for a 500, its retry (with several
    // shards, other requests may be answered in between).
    wait_for(STEP, || async {
        let seen = proxy.seen();
        let i = before + seen[before..].iter().position(|s| s.status == status)?;
        seen[i + 1..]
            .iter()
            .any(|s| {
                (200..300).contains(&s.status)
                    && decode(mode, 0, s)
                        .points
                        .iter()
                        .any(|p| p.name() == "cases_now")
            })
            .then_some(())
    })
    .await;
}

/// Runs every case against a relay sending in `mode` to `receiver`.
async fn run_cases(mode: Mode, receiver: Receiver) {
    let proxy = FaultProxy::start(&receiver.base_url).await;
    let node = Exporter::start_fn(node_body).await;
    let invalid = Exporter::start(INVALID_BODY).await;
    let repeated = Exporter::start(REPEATED_BODY).await;
    let nameless = Exporter::start(NAMELESS_BODY).await;
    let instances: HashMap<&'static str, String> = [
        ("node", &node),
        ("invalid", &invalid),
        ("repeated", &repeated),
        ("nameless", &nameless),
    ]
    .into_iter()
    .map(|(job, e)| (job, e.addr.to_string()))
    .collect();
    let mut config = scrape_to_remote_write(
        &node.url,
        &format!("{}/api/v1/write", proxy.url),
        "",
        &format!(
            "{}\nmax_samples_per_send = {MAX_SAMPLES_PER_SEND}",
            mode.sink_keys()
        ),
    );
    for (name, e) in [
        ("invalid", &invalid),
        ("repeated", &repeated),
        ("nameless", &nameless),
    ] {
        write!(
            config,
            "\n[[source]]\ntype = \"scrape\"\nname = \"{name}\"\nurl = \"{}\"\n",
            e.url
        )
        .unwrap();
    }

    let start_ms = now_ms();
    let (cancel, h, metrics) = start_relay(&config);
    // A few scrapes delivered: the stale marker of the series gone after the first is out.
    wait_for(STEP, || async {
        (delivered_scrapes(&decode_all(mode, &proxy), 0) >= 3).then_some(())
    })
    .await;
    // Retries500, then Retries400: the proxy answers the next request holding cases_now itself.
    inject(mode, &proxy, 500).await;
    inject(mode, &proxy, 400).await;
    // The relay goes on after the 400: two more scrapes delivered.
    let after = proxy.seen().len();
    wait_for(STEP, || async {
        (delivered_scrapes(&decode_all(mode, &proxy), after) >= 2).then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let end_ms = now_ms();

    let run = Run::new(
        mode,
        decode_all(mode, &proxy),
        start_ms,
        end_ms,
        instances,
        metrics.dropped_total("rw"),
    );
    run.check_counter();
    run.check_gauge();
    run.check_histogram();
    run.check_summary();
    run.check_up();
    run.check_labels();
    run.check_staleness();
    run.check_timestamps();
    run.check_headers();
    run.check_retries();
    if mode == Mode::V2 {
        run.check_v2_metadata();
    }

    // The receiver stored what was accepted: the newest count, both `up`s, the histogram, and
    // the stale marker (the series is gone at once, not after the 5-minute lookback).
    let last_count = run
        .reqs
        .iter()
        .filter(|r| r.accepted())
        .flat_map(|r| &r.points)
        .filter(|p| p.name() == "cases_counter_total")
        .map(|p| p.value)
        .fold(f64::NAN, f64::max);
    let t = now();
    for (q, want) in [
        ("cases_counter_total{job=\"node\"}", last_count),
        ("up{job=\"node\"}", 1.0),
        ("up{job=\"invalid\"}", 0.0),
        ("cases_histogram_bucket{job=\"node\",le=\"+Inf\"}", 2.0),
        ("cases_summary_sum{job=\"node\"}", 6.0),
    ] {
        let got = receiver.query(q, t).await;
        assert_eq!(
            single_value(&got),
            Some(want),
            "{mode:?}: {q} stored in {:?}: {got}",
            receiver.kind
        );
    }
    let stale = receiver.query("cases_stale", t).await;
    assert_eq!(
        stale.as_array().map(Vec::len),
        Some(0),
        "{mode:?}: cases_stale after its stale marker: {stale}"
    );

    if mode == Mode::V2 {
        // Prometheus does not expose metadata that came by remote write on
        // /api/v1/metadata (prometheus/prometheus#13163: it answers from the scrape targets'
        // caches only), so an empty answer is not held against the relay; should a release
        // answer it, the answer must be the relay's.
        let text = reqwest::get(format!(
            "{}/api/v1/metadata?metric=cases_now",
            receiver.base_url
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["status"], "success", "{body}");
        if let Some(entries) = body["data"]["cases_now"].as_array() {
            assert!(
                entries
                    .iter()
                    .any(|e| e["type"] == "gauge" && e["help"] == HELP_NOW),
                "{mode:?}: metadata of cases_now: {body}"
            );
        }
    }
}

#[tokio::test]
async fn sender_cases_pass_with_v1_snappy_to_prometheus() {
    run_cases(Mode::V1Snappy, Receiver::prometheus().await).await;
}

#[tokio::test]
async fn sender_cases_pass_with_v1_zstd_to_victoria_metrics() {
    run_cases(Mode::V1Zstd, Receiver::victoria_metrics().await).await;
}

#[tokio::test]
async fn sender_cases_pass_with_v2_to_prometheus_with_metadata_per_series() {
    run_cases(Mode::V2, Receiver::prometheus().await).await;
}
