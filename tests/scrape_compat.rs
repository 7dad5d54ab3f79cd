//! The differential scrape test: a real Prometheus 3.5.3 (agent mode, remote-writing to a
//! capture receiver here) and `pushrelay once` (remote-writing to the same receiver) scrape the
//! same fake target serving every exposition in `tests/scrape_compat/cases/` (one job per
//! case) and every relabelling case in `tests/scrape_compat/relabel/`. Per case, both must
//! accept or reject the scrape alike (`up`) and send the same series: names, labels, values
//! by their bits and timestamps (a sample stamped with its scrape's time compares as "no
//! timestamp of its own"). The cases where pushrelay differs on purpose are listed in
//! [`DELIBERATE`] (and in docs/scrape.md); for those the test checks that they still differ.
//!
//! Timestamps: Prometheus's remote-write sends no sample older than its start (its WAL watcher
//! skips them) and none far ahead, so explicit timestamps outside the test's own hour cannot
//! be compared and are left out on both sides. Cases about timestamps write them as `@T+<ms>@`
//! (milliseconds after a base a minute past the test's start) or `@S+<s>@` (the same base in
//! seconds, for OpenMetrics); the target serves both sides the same substituted body.
//!
//! Case files: `*.prom` are served as `text/plain; version=0.0.4`, `*.om` as
//! `application/openmetrics-text; version=1.0.0`, `*.txt` without a `Content-Type` (both
//! sides then use the classic parser, pushrelay by default and Prometheus by its
//! `fallback_scrape_protocol`). A relabelling case is a TOML file with a `body` (served as
//! text 0.0.4), `[[metric_relabel_configs]]` and optionally other scrape options
//! (`honor_labels`, `honor_timestamps`, the limits), given to both sides unchanged.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use pushrelay::http::server::{response, serve};
use pushrelay::model::is_stale_nan;
use support::receivers::{wait_for, Receiver};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Cases where pushrelay stores something else than Prometheus on purpose, and why.
const DELIBERATE: &[(&str, &str)] = &[
    (
        "p-leading-blanks-before-name",
        "Prometheus keeps blanks before a metric name in the name (stores `  a` for `  a 1`); pushrelay drops them",
    ),
];

/// Series names Prometheus and pushrelay add for every scrape; compared through `up` only.
const REPORT: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

struct Case {
    /// The job name: `p-`/`o-`/`t-`/`r-` and the file stem.
    job: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// `metric_relabel_configs` as JSON (relabelling cases only).
    relabel: Option<serde_json::Value>,
    /// Other scrape options of a relabelling case (`honor_labels`, `sample_limit`, ...), given
    /// to both sides under the same names.
    options: serde_json::Map<String, serde_json::Value>,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scrape_compat")
}

fn load_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (sub, relabel) in [("cases", false), ("relabel", true)] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir().join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            let bytes = std::fs::read(&p).unwrap();
            if relabel {
                let t: toml::Value = toml::from_str(std::str::from_utf8(&bytes).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                let rules = t
                    .get("metric_relabel_configs")
                    .map(|r| serde_json::to_value(r).unwrap());
                let mut options = serde_json::Map::new();
                for (k, v) in t.as_table().unwrap() {
                    if k != "body" && k != "metric_relabel_configs" {
                        options.insert(k.clone(), serde_json::to_value(v).unwrap());
                    }
                }
                out.push(Case {
                    job: format!("r-{stem}"),
                    content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
                    body: t["body"].as_str().unwrap().as_bytes().to_vec(),
                    relabel: rules,
                    options,
                });
                continue;
            }
            let (prefix, content_type) = match ext {
                "prom" => ("p", Some("text/plain; version=0.0.4; charset=utf-8")),
                "om" => (
                    "o",
                    Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                ),
                "txt" => ("t", None),
                _ => panic!("{}: unknown case extension", p.display()),
            };
            out.push(Case {
                job: format!("{prefix}-{stem}"),
                content_type,
                body: bytes,
                relabel: None,
                options: serde_json::Map::new(),
            });
        }
    }
    out
}

/// What one side sent for one job: `up` per timestamp and every other sample.
#[derive(Default, Debug)]
struct Sent {
    up: BTreeMap<i64, f64>,
    /// (series as `name{labels}`, timestamp, value bits), in arrival order.
    samples: Vec<(String, i64, u64)>,
}

type Capture = Arc<Mutex<BTreeMap<(String, String), Sent>>>;

/// Decodes remote-write requests; the path (`/prom` or `/relay`) tells who sent them.
async fn start_capture(cancel: CancellationToken) -> (String, Capture) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let store: Capture = Arc::default();
    let st = store.clone();
    tokio::spawn(serve(l, cancel, move |req| {
        let st = st.clone();
        async move {
            let who = req.uri().path().trim_start_matches('/').to_string();
            let Ok(wr) = pushrelay::wire::remote_write::decode(req.body()) else {
                return response(400, "text/plain", "bad body\n");
            };
            let mut st = st.lock().unwrap();
            for ts in wr.timeseries {
                let mut labels: Vec<(String, String)> = ts
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                labels.sort();
                let get = |n: &str| labels.iter().find(|l| l.0 == n).map(|l| l.1.clone());
                let (Some(job), Some(name)) = (get("job"), get("__name__")) else {
                    continue;
                };
                let sent = st.entry((who.clone(), job)).or_default();
                for s in ts.samples {
                    if is_stale_nan(s.value) {
                        continue;
                    }
                    if name == "up" {
                        sent.up.insert(s.timestamp, s.value);
                    } else if !REPORT.contains(&name.as_str()) {
                        let rest: Vec<String> = labels
                            .iter()
                            .filter(|l| l.0 != "__name__")
                            .map(|l| format!("{:?}={:?}", l.0, l.1))
                            .collect();
                        let key = format!("{name:?}{{{}}}", rest.join(","));
                        sent.samples.push((key, s.timestamp, s.value.to_bits()));
                    }
                }
            }
            response(204, "text/plain", "")
        }
    }));
    (format!("http://{addr}"), store)
}

/// Replaces `@T+<n>@` with `base_ms + n` and `@S+<n>@` with `base_ms / 1000 + n`.
fn substitute(body: &[u8], base_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let rest = &body[i..];
        if rest.len() > 3
            && rest[0] == b'@'
            && (rest[1] == b'T' || rest[1] == b'S')
            && rest[2] == b'+'
        {
            if let Some(end) = rest[3..].iter().position(|&c| c == b'@') {
                let n: i64 = std::str::from_utf8(&rest[3..3 + end])
                    .unwrap()
                    .parse()
                    .unwrap();
                let v = if rest[1] == b'T' {
                    base_ms + n
                } else {
                    base_ms / 1000 + n
                };
                out.extend_from_slice(v.to_string().as_bytes());
                i += 4 + end;
                continue;
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// Serves case `i` at `/c/<i>`; records the `Accept` and `Accept-Encoding` of each client.
async fn start_target(
    cases: Arc<Vec<Case>>,
    base_ms: i64,
    cancel: CancellationToken,
) -> (String, Arc<Mutex<BTreeMap<String, (String, String)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Arc<Mutex<BTreeMap<String, (String, String)>>> = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(serve(l, cancel, move |req| {
        let cases = cases.clone();
        let seen = s2.clone();
        async move {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let agent = h("user-agent");
            let who = agent.split('/').next().unwrap_or("").to_string();
            seen.lock()
                .unwrap()
                .insert(who, (h("accept"), h("accept-encoding")));
            let i: usize = match req.uri().path().strip_prefix("/c/").map(str::parse) {
                Some(Ok(i)) if i < cases.len() => i,
                _ => return response(404, "text/plain", "no such case\n"),
            };
            let c = &cases[i];
            let mut b = hyper::Response::builder().status(200);
            if let Some(ct) = c.content_type {
                b = b.header("content-type", ct);
            }
            b.body(Full::new(Bytes::from(substitute(&c.body, base_ms))))
                .unwrap()
        }
    }));
    (addr.to_string(), seen)
}

fn prometheus_config(cases: &[Case], target: &str, capture: &str) -> String {
    let mut jobs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut job = serde_json::json!({
            "job_name": c.job,
            "metrics_path": format!("/c/{i}"),
            "fallback_scrape_protocol": "PrometheusText0.0.4",
            "static_configs": [{"targets": [target]}],
        });
        if let Some(r) = &c.relabel {
            job["metric_relabel_configs"] = r.clone();
        }
        for (k, v) in &c.options {
            job[k] = v.clone();
        }
        jobs.push(job);
    }
    // YAML is a superset of JSON.
    serde_json::json!({
        "global": {"scrape_interval": "2s", "scrape_timeout": "1s"},
        "scrape_configs": jobs,
        "remote_write": [{
            "url": format!("{capture}/prom"),
            "queue_config": {"min_shards": 1, "max_shards": 1, "batch_send_deadline": "500ms", "max_samples_per_send": 10000},
            "metadata_config": {"send": false},
        }],
    })
    .to_string()
}

fn pushrelay_config(cases: &[Case], target: &str, capture: &str, state: &Path) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "[relay]\nstate_dir = {:?}\n\n[[sink]]\ntype = \"remote_write\"\nname = \"capture\"\nurl = \"{capture}/relay\"\n# Cases carry timestamps back to 1970: keep them all.\nbuffer = {{ max_age = \"876000h\" }}\n\n",
        state.display().to_string()
    ));
    for (i, c) in cases.iter().enumerate() {
        t.push_str(&format!(
            "[[source]]\ntype = \"scrape\"\nname = {:?}\nurl = \"http://{target}/c/{i}\"\n",
            c.job
        ));
        for (k, v) in &c.options {
            t.push_str(&format!("{k} = {v}\n"));
        }
        if let Some(r) = &c.relabel {
            for rule in r.as_array().unwrap() {
                t.push_str("[[source.metric_relabel_configs]]\n");
                for (k, v) in rule.as_object().unwrap() {
                    t.push_str(&format!("{k} = {v}\n"));
                }
            }
        }
        t.push('\n');
    }
    t
}

/// Series samples as (series as `name{labels}`, own timestamp, value bits).
type SeriesSet = BTreeSet<(String, Option<i64>, u64)>;

/// The first scrape of one job as (accepted, series): samples at the first `up`'s timestamp
/// count as "no timestamp", samples at another scrape's time are left out.
///
/// Two rules of the harness, applied to both sides alike:
/// - Prometheus's remote-write sends no sample older than the moment it started (its WAL
///   watcher skips them) nor far ahead, so explicit timestamps outside the hour after
///   `observable_from` cannot be compared and are left out (the cases that test timestamp
///   handling use `@T+<n>@` timestamps just ahead of the test's start).
/// - Prometheus in agent mode forwards every appended sample, where its TSDB keeps, per series,
///   only samples that move time forward (a second sample at the same timestamp fails as a
///   duplicate, an earlier one as out of order): received samples are filtered that way, in
///   arrival order, as the TSDB would store them.
fn first_scrape(sent: Option<&Sent>, observable_from: i64) -> Option<(bool, SeriesSet)> {
    let sent = sent?;
    let (&t1, &up) = sent.up.iter().next()?;
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut series = BTreeSet::new();
    for (k, ts, v) in &sent.samples {
        if last.get(k).is_some_and(|&l| *ts <= l) {
            continue;
        }
        last.insert(k.clone(), *ts);
        let ts = match *ts {
            t if t == t1 => None,
            t if sent.up.contains_key(&t)
                || t < observable_from
                || t > observable_from + 3_600_000 =>
            {
                continue
            }
            t => Some(t),
        };
        series.insert((k.clone(), ts, *v));
    }
    Some((up == 1.0, series))
}

#[tokio::test]
async fn pushrelay_scrapes_like_prometheus() {
    let cases = Arc::new(load_cases());
    assert!(cases.len() >= 250, "only {} cases", cases.len());
    let cancel = CancellationToken::new();
    let (capture, store) = start_capture(cancel.clone()).await;
    let observable_from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base_ms = (observable_from / 1000 + 60) * 1000;
    let (target, seen) = start_target(cases.clone(), base_ms, cancel.clone()).await;
    let prom = Receiver::prometheus_agent(&prometheus_config(&cases, &target, &capture)).await;
    let state = tempfile::tempdir().unwrap();
    let cfg_path = state.path().join("pushrelay.toml");
    std::fs::write(
        &cfg_path,
        pushrelay_config(&cases, &target, &capture, state.path()),
    )
    .unwrap();
    // Run in the blocking pool: the fake target and the receiver share this test's runtime.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .arg("once")
            .arg("--config")
            .arg(&cfg_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let relay_log = String::from_utf8_lossy(&out.stderr).into_owned();

    // Prometheus is done with a job's first scrape once its second `up` has arrived (one
    // remote-write shard sends in order).
    wait_for(Duration::from_secs(60), || {
        let store = store.clone();
        let cases = cases.clone();
        async move {
            let st = store.lock().unwrap();
            cases
                .iter()
                .all(|c| {
                    st.get(&("prom".to_string(), c.job.clone()))
                        .is_some_and(|s| s.up.len() >= 2)
                })
                .then_some(())
        }
    })
    .await;
    drop(prom);
    cancel.cancel();

    let st = store.lock().unwrap();
    let mut report = String::new();
    let (mut accepted, mut rejected, mut same) = (0, 0, 0);
    let mut deliberate_seen = BTreeSet::new();
    for c in cases.iter() {
        let get =
            |who: &str| first_scrape(st.get(&(who.to_string(), c.job.clone())), observable_from);
        let p = get("prom").unwrap_or_else(|| panic!("{}: nothing from Prometheus", c.job));
        let r = get("relay")
            .unwrap_or_else(|| panic!("{}: nothing from pushrelay\n{relay_log}", c.job));
        if p.0 {
            accepted += 1;
        } else {
            rejected += 1;
        }
        let deliberate = DELIBERATE.iter().find(|(j, _)| c.job.ends_with(j));
        if p == r {
            same += 1;
            if let Some((j, _)) = deliberate {
                report.push_str(&format!(
                    "{}: listed as deliberate ({j}) but now the same\n",
                    c.job
                ));
            }
            continue;
        }
        if deliberate.is_some() {
            deliberate_seen.insert(c.job.clone());
            continue;
        }
        report.push_str(&format!(
            "--- {}: Prometheus up={} pushrelay up={}\n",
            c.job, p.0, r.0
        ));
        for s in p.1.difference(&r.1) {
            report.push_str(&format!("  only Prometheus: {s:?}\n"));
        }
        for s in r.1.difference(&p.1) {
            report.push_str(&format!("  only pushrelay:  {s:?}\n"));
        }
    }
    eprintln!(
        "{} cases: Prometheus accepted {accepted}, rejected {rejected}; same in {same}; deliberate differences: {}",
        cases.len(),
        deliberate_seen.len()
    );
    let seen = seen.lock().unwrap();
    let prom_accept = seen.get("Prometheus").cloned().unwrap_or_default();
    let relay_accept = seen.get("pushrelay").cloned().unwrap_or_default();
    assert_eq!(relay_accept.0, prom_accept.0, "Accept headers differ");
    assert!(
        prom_accept.1.contains("gzip") && relay_accept.1.contains("gzip"),
        "{prom_accept:?} {relay_accept:?}"
    );
    assert!(
        report.is_empty(),
        "differences from Prometheus 3.5.3:\n{report}\npushrelay log:\n{}",
        &relay_log[..relay_log.len().min(4000)]
    );
}
