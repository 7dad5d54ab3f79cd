//! The remote-write sink on a manual wall clock: what enters a batch (`max_age` per sample,
//! per-series order across clock jumps), what a queued batch that aged loses, and which answers
//! keep a batch queued; a scripted local receiver where sending is involved.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::model::{Family, Labels, MetricType, Sample};
use crate::wire::remote_write as rw;

const T: i64 = 1_700_000_000_000;

fn sink(clock: &WallClock, url: &str, extra: &str) -> (RemoteWriteSink, Arc<SelfMetrics>) {
    sink_in(None, clock, url, extra)
}

/// A sink whose queue is on disk in `dir` (or in memory).
fn sink_in(
    dir: Option<&std::path::Path>,
    clock: &WallClock,
    url: &str,
    extra: &str,
) -> (RemoteWriteSink, Arc<SelfMetrics>) {
    // The scripted receivers here read remote-write 1.0 with snappy, unless a test says otherwise.
    let mut extra = extra.to_string();
    if !extra.contains("protocol") {
        extra.push_str("\nprotocol = \"v1\"");
    }
    if !extra.contains("compression") {
        extra.push_str("\ncompression = \"snappy\"");
    }
    let text = format!(
        r#"
[[source]]
type = "scrape"
name = "x"
url = "http://127.0.0.1:1/metrics"

[[sink]]
type = "remote_write"
name = "rw"
url = "{url}"
min_backoff = "10ms"
max_backoff = "20ms"
{extra}
"#
    );
    let cfg = crate::config::parse(&text, "t.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let rw = cfg.sinks[0]
        .downcast_ref::<RemoteWriteConfig>()
        .expect("a remote-write sink")
        .clone();
    let metrics = Arc::new(SelfMetrics::default());
    let ctx = SinkContext {
        metrics: metrics.clone(),
        state_dir: None,
        clock: clock.clone(),
        status: Default::default(),
    };
    (RemoteWriteSink::new(rw, &ctx, dir).unwrap(), metrics)
}

fn labels(job: &str) -> Labels {
    Labels::from_pairs([("job", job)]).unwrap()
}

/// A snapshot taken at `ts` with one sample of `m{job}` per entry (own timestamp if given).
fn snap(ts: i64, samples: &[(&str, Option<i64>)]) -> Arc<Snapshot> {
    let mut f = Family::new("m", MetricType::Gauge, "");
    for (job, own) in samples {
        f.samples.push(Sample {
            name: "m".into(),
            labels: labels(job),
            value: 1.0,
            timestamp_ms: *own,
        });
    }
    Arc::new(Snapshot {
        source: "x".into(),
        timestamp_ms: ts,
        families: vec![f],
        stale: Vec::new(),
    })
}

fn by_job(req: &crate::wire::proto::WriteRequest, out: &mut BTreeMap<String, Vec<i64>>) {
    for ts in &req.timeseries {
        let job = ts
            .labels
            .iter()
            .find(|l| l.name == "job")
            .map(|l| l.value.clone())
            .unwrap_or_default();
        out.entry(job)
            .or_default()
            .extend(ts.samples.iter().map(|s| s.timestamp));
    }
}

/// Seals what is pending and takes every queued batch: timestamps per job, in queue order.
fn take_queued(s: &RemoteWriteSink) -> BTreeMap<String, Vec<i64>> {
    let mut st = s.lock();
    s.seal(&mut st);
    let mut out = BTreeMap::new();
    while let Some((id, b)) = st.queue.front() {
        by_job(&rw::decode(&b.body).unwrap(), &mut out);
        st.queue.commit(id);
    }
    out
}

fn dropped(m: &SelfMetrics) -> Vec<(String, u64)> {
    m.dropped_by_reason("rw")
}

/// Remote-write 2.0 is stateless: while the sink sends 2.0, every batch holds the metadata of
/// each family it has samples of, once (also the batch begun when `max_samples_per_send` sealed
/// one in mid-family); 1.0 sends a family's metadata once per `METADATA_REFRESH`.
#[test]
fn every_v2_batch_carries_the_metadata_of_its_families() {
    let metadata_per_batch = |extra: &str| -> Vec<Vec<String>> {
        let clock = WallClock::manual(T);
        let (s, _) = sink(&clock, "http://127.0.0.1:1/", extra);
        s.submit(snap(T, &[("a", None), ("b", None), ("c", None)]));
        s.submit(snap(T + 1000, &[("a", None), ("b", None)]));
        let mut st = s.lock();
        s.seal(&mut st);
        let mut out = Vec::new();
        while let Some((id, b)) = st.queue.front() {
            let req = rw::decode(&b.body).unwrap();
            out.push(
                req.metadata
                    .into_iter()
                    .map(|m| m.metric_family_name)
                    .collect(),
            );
            st.queue.commit(id);
        }
        out
    };
    let m = || vec!["m".to_string()];
    assert_eq!(
        metadata_per_batch("protocol = \"v2\"\nmax_samples_per_send = 2"),
        [m(), m(), m()]
    );
    assert_eq!(
        metadata_per_batch("max_samples_per_send = 2"),
        [m(), vec![], vec![]]
    );
}

/// One series stamped with its own old timestamp (a device with a wrong clock, `x 1 0`)
/// costs only its own sample, not the batch it would have shared with everyone else's.
#[test]
fn one_old_sample_is_dropped_alone() {
    let clock = WallClock::manual(T);
    let (s, m) = sink(&clock, "http://127.0.0.1:1/", "");
    s.submit(snap(
        T,
        &[("fresh", None), ("wrong_clock", Some(0)), ("other", None)],
    ));
    let q = take_queued(&s);
    assert_eq!(
        q.keys().collect::<Vec<_>>(),
        ["fresh", "other"],
        "only the old sample is left out: {q:?}"
    );
    assert_eq!(dropped(&m), [("too_old".to_string(), 1)]);
}

/// After the wall clock jumps back, a series gets no sample older than (or as old as) the
/// last one queued for it until the clock passes it again; other series are not held back.
#[test]
fn a_clock_jumping_back_never_queues_a_sample_out_of_order() {
    let clock = WallClock::manual(T);
    let (s, m) = sink(&clock, "http://127.0.0.1:1/", "");
    s.submit(snap(T, &[("a", None), ("b", None)]));
    s.submit(snap(T + 1000, &[("a", None), ("b", None)]));
    clock.set(T - 60_000);
    s.submit(snap(T - 60_000, &[("a", None), ("new", None)]));
    s.submit(snap(T - 59_000, &[("a", None), ("new", None)]));
    let mut stale = (*snap(T + 500, &[])).clone();
    stale.stale.push(("m".into(), labels("b")));
    s.submit(Arc::new(stale));
    clock.set(T + 2000);
    s.submit(snap(T + 2000, &[("a", None), ("b", None)]));
    s.submit(snap(T + 2000, &[("a", None)]));
    let q = take_queued(&s);
    assert_eq!(q["a"], [T, T + 1000, T + 2000], "{q:?}");
    assert_eq!(q["b"], [T, T + 1000, T + 2000], "{q:?}");
    assert_eq!(q["new"], [T - 60_000, T - 59_000], "{q:?}");
    assert_eq!(dropped(&m), [("out_of_order".to_string(), 4)]);
}

/// The per-series memory is rebuilt from what a previous run left queued: a relay restarted
/// with its clock set back (a Pi without a real-time clock) does not queue samples older than
/// those waiting for the receiver.
#[test]
fn a_restart_remembers_what_is_still_queued() {
    let dir = tempfile::tempdir().unwrap();
    let clock = WallClock::manual(T);
    {
        let (s, _) = sink_in(Some(dir.path()), &clock, "http://127.0.0.1:1/", "");
        s.submit(snap(T, &[("a", None)]));
        s.seal(&mut s.lock());
    }
    clock.set(T - 3_600_000);
    let (s, m) = sink_in(Some(dir.path()), &clock, "http://127.0.0.1:1/", "");
    s.submit(snap(T - 3_600_000, &[("a", None), ("b", None)]));
    let q = take_queued(&s);
    assert_eq!(q["a"], [T], "{q:?}");
    assert_eq!(q["b"], [T - 3_600_000], "{q:?}");
    assert_eq!(dropped(&m), [("out_of_order".to_string(), 1)]);
}

/// A local receiver answering a scripted list of (status, content type, body, location), then
/// 204; it keeps the body of every request it answered 204.
struct Scripted {
    url: String,
    accepted: Arc<Mutex<Vec<bytes::Bytes>>>,
    /// Every request's body, answered by the script or accepted.
    seen: Arc<Mutex<Vec<bytes::Bytes>>>,
    _cancel: tokio_util::sync::DropGuard,
}

async fn scripted(script: Vec<(u16, &'static str, &'static str, &'static str)>) -> Scripted {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
    let accepted: Arc<Mutex<Vec<bytes::Bytes>>> = Arc::default();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let cancel = CancellationToken::new();
    let acc = accepted.clone();
    let seen: Arc<Mutex<Vec<bytes::Bytes>>> = Arc::default();
    let all = seen.clone();
    tokio::spawn(crate::http::server::serve(l, cancel.clone(), move |req| {
        let (acc, all, script) = (acc.clone(), all.clone(), script.clone());
        async move {
            all.lock().unwrap().push(req.body().clone());
            let next = script.lock().unwrap().pop_front();
            match next {
                Some((status, ctype, body, location)) => {
                    let mut r = crate::http::server::response(status, ctype, body);
                    if !location.is_empty() {
                        r.headers_mut()
                            .insert("location", location.parse().unwrap());
                    }
                    r
                }
                None => {
                    acc.lock().unwrap().push(req.into_body());
                    crate::http::server::response(204, "text/plain", "")
                }
            }
        }
    }));
    Scripted {
        url,
        accepted,
        seen,
        _cancel: cancel.drop_guard(),
    }
}

/// A batch that aged past `max_age` in the queue (an outage) loses only its samples that are
/// too old; the rest is sent. `once` (flush) then says what was dropped instead of "pushed".
#[tokio::test]
async fn a_queued_batch_that_aged_loses_only_its_old_samples() {
    let rx = scripted(vec![]).await;
    let clock = WallClock::manual(T);
    let (s, m) = sink(&clock, &rx.url, "buffer = { max_age = \"1m\" }");
    s.submit(snap(T, &[("early", None)]));
    s.submit(snap(T + 30_000, &[("late", None)]));
    s.seal(&mut s.lock());
    clock.set(T + 70_000);
    let r = s.flush(Duration::from_secs(20)).await;
    let got = rx.accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "the batch is sent: {r:?}");
    let mut q = BTreeMap::new();
    by_job(&rw::decode(&got[0]).unwrap(), &mut q);
    assert_eq!(q.keys().collect::<Vec<_>>(), ["late"], "{q:?}");
    assert_eq!(dropped(&m), [("too_old".to_string(), 1)]);
    assert_eq!(m.sent_total("rw"), 1);
    let e = r.expect_err("a flush that dropped samples is no success");
    assert!(
        e.contains("delivered 1 samples but dropped 1 too_old"),
        "{e}"
    );
}

/// Answers that are not the receiver's verdict on the data keep the batch and retry it: an
/// HTML page with 200 (a captive portal), 401/403 (credentials), a redirect; each is counted
/// by reason. Only the final 204 delivers.
#[tokio::test]
async fn portal_pages_credentials_and_redirects_are_retried_not_dropped() {
    let rx = scripted(vec![
        (
            200,
            "text/html",
            "<html><title>Hotspot login</title></html>",
            "",
        ),
        (401, "text/plain", "invalid token", ""),
        (403, "text/plain", "forbidden", ""),
        (
            308,
            "text/plain",
            "",
            "https://elsewhere.example/api/v1/write",
        ),
        (503, "text/plain", "busy", ""),
    ])
    .await;
    let clock = WallClock::system();
    let (s, m) = sink(&clock, &rx.url, "");
    s.submit(snap(clock.now_ms(), &[("a", None)]));
    let r = s.flush(Duration::from_secs(20)).await;
    assert_eq!(r, Ok(1));
    assert_eq!(rx.accepted.lock().unwrap().len(), 1);
    let fams = m.families(clock.now_ms());
    let failures: Vec<(String, f64)> = fams
        .iter()
        .filter(|f| f.name == "pushrelay_send_failures_total")
        .flat_map(|f| &f.samples)
        .map(|s| (s.labels.get("reason").unwrap().to_string(), s.value))
        .collect();
    assert_eq!(
        failures,
        [
            ("html".to_string(), 1.0),
            ("redirect".to_string(), 1.0),
            ("server_error".to_string(), 1.0),
            ("unauthorized".to_string(), 2.0)
        ]
    );
    assert!(dropped(&m).is_empty());
}

/// `pushrelay_sent_bytes_total` and `pushrelay_received_bytes_total` match what crossed the
/// connection, byte for byte, and the request carries no header a receiver has no use for.
#[tokio::test]
async fn wire_bytes_are_counted_exactly_and_no_useless_header_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
    const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\ndate: Wed, 02 Dec 2026 12:00:00 GMT\r\n\r\n";
    let seen: Arc<Mutex<(usize, Vec<String>)>> = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = c.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if buf.len() < end + 4 + len {
                    break;
                }
                {
                    let mut s = seen2.lock().unwrap();
                    s.0 += end + 4 + len;
                    s.1 = head
                        .lines()
                        .skip(1)
                        .map(|l| l.split(':').next().unwrap().to_string())
                        .collect();
                }
                buf.drain(..end + 4 + len);
                c.write_all(ANSWER).await.unwrap();
            }
        }
    });
    let clock = WallClock::system();
    let (s, m) = sink(
        &clock,
        &url,
        "headers = { \"X-Scope-OrgID\" = \"tenant-1\" }",
    );
    s.submit(snap(clock.now_ms(), &[("a", None), ("b", None)]));
    assert_eq!(s.flush(Duration::from_secs(20)).await, Ok(2));
    s.submit(snap(clock.now_ms() + 1000, &[("a", None)]));
    assert_eq!(s.flush(Duration::from_secs(20)).await, Ok(1));
    let (wire, names) = seen.lock().unwrap().clone();
    assert_eq!(
        m.wire_bytes_total("rw"),
        (wire as u64, 2 * ANSWER.len() as u64)
    );
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        [
            "accept", // reqwest's, which it offers no way to leave out
            "content-encoding",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-prometheus-remote-write-version",
            "x-scope-orgid"
        ]
    );
}

/// `send_unchanged_every`: a flat gauge is queued once per interval, a change at once; first
/// samples and stale markers are never held back.
#[test]
fn unchanged_samples_wait_for_send_unchanged_every() {
    let clock = WallClock::manual(T);
    let (s, m) = sink(
        &clock,
        "http://127.0.0.1:1/",
        "send_unchanged_every = \"1m\"",
    );
    let at = |ts: i64, v: f64| {
        let mut f = Family::new("m", MetricType::Gauge, "");
        f.samples.push(Sample {
            name: "m".into(),
            labels: labels("flat"),
            value: v,
            timestamp_ms: None,
        });
        Arc::new(Snapshot {
            source: "x".into(),
            timestamp_ms: ts,
            families: vec![f],
            stale: Vec::new(),
        })
    };
    for (i, v) in [1.0, 1.0, 1.0, 1.0, 2.0, 2.0].iter().enumerate() {
        s.submit(at(T + 15_000 * i as i64, *v));
    }
    s.submit(at(T + 15_000 * 8, 2.0)); // 60 s after the last one sent
    let mut gone = (*snap(T + 15_000 * 9, &[])).clone();
    gone.stale.push(("m".into(), labels("flat")));
    s.submit(Arc::new(gone));
    s.submit(at(T + 15_000 * 10, 2.0)); // back: a first sample again
    let q = take_queued(&s);
    assert_eq!(
        q["flat"],
        [T, T + 60_000, T + 120_000, T + 135_000, T + 150_000],
        "{q:?}"
    );
    assert!(dropped(&m).is_empty(), "held back is not dropped");
}

/// Every poll is queued the moment it is submitted (a crash during `batch_wait` loses
/// nothing); the sender waits `batch_wait` from the oldest sample, then sends the polls of
/// that time as one request (one label list per series), at most `max_samples_per_send`
/// samples a request; a request's worth queued is sent without waiting.
#[tokio::test]
async fn polls_are_queued_at_once_and_sent_merged_after_batch_wait() {
    let rx = scripted(vec![]).await;
    let clock = WallClock::system();
    let (s, _m) = sink(
        &clock,
        &rx.url,
        "batch_wait = \"1s\"\nmax_samples_per_send = 5\nmax_shards = 1",
    );
    let s = Arc::new(s);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(s.clone().run(cancel.clone()));
    let t0 = clock.now_ms();
    for i in 0..2 {
        s.submit(snap(t0 + i, &[("a", None), ("b", None)]));
        assert_eq!(s.lock().queue.batches(), i as usize + 1, "queued at once");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rx.accepted.lock().unwrap().is_empty(),
        "held for batch_wait"
    );
    // A request's worth queued goes at once.
    s.submit(snap(t0 + 2, &[("a", None), ("b", None)]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.accepted.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    run.await.unwrap();
    let got = rx.accepted.lock().unwrap().clone();
    let reqs: Vec<_> = got.iter().map(|b| rw::decode(b).unwrap()).collect();
    // 6 samples, at most 5 a request: the first two polls (4 samples) merged, then the third.
    let shape: Vec<Vec<usize>> = reqs
        .iter()
        .map(|r| r.timeseries.iter().map(|t| t.samples.len()).collect())
        .collect();
    assert_eq!(
        shape,
        [vec![2, 2], vec![1, 1]],
        "one label list per series a request"
    );
    let mut q = BTreeMap::new();
    for r in &reqs {
        by_job(r, &mut q);
    }
    assert_eq!(q["a"], [t0, t0 + 1, t0 + 2]);
    assert_eq!(q["b"], [t0, t0 + 1, t0 + 2]);
}

/// `auto` tries a form the receiver has not taken yet on the batch's first series alone: a
/// 1.0-only receiver (2xx without the `…-Written` headers) ignores it, so the batch, that
/// series included, goes in 1.0 (zstd is fixed off here). Nothing is lost. (A probe that is
/// taken is not sent again: tests/wire_negotiation.rs, against Prometheus.)
#[tokio::test]
async fn a_form_is_tried_on_one_series_before_the_whole_batch() {
    let rx = scripted(vec![(204, "text/plain", "", "")]).await;
    let clock = WallClock::system();
    let (s, _m) = sink(&clock, &rx.url, "protocol = \"auto\"");
    let jobs: Vec<String> = (0..50).map(|i| format!("j{i}")).collect();
    let samples: Vec<(&str, Option<i64>)> = jobs.iter().map(|j| (j.as_str(), None)).collect();
    s.submit(snap(clock.now_ms(), &samples));
    assert_eq!(s.flush(Duration::from_secs(20)).await, Ok(50));
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "the probe, then the batch");
    let probe = crate::wire::v2::decode(&seen[0]).expect("the probe is 2.0");
    assert_eq!(probe.timeseries.len(), 1, "one series");
    assert!(
        seen[0].len() * 4 < seen[1].len(),
        "{} vs {}",
        seen[0].len(),
        seen[1].len()
    );
    let full = rw::decode(&seen[1]).expect("then the rest in 1.0");
    assert_eq!(
        full.timeseries.len(),
        50,
        "the probe was not taken: all of it"
    );
}

/// A backlog goes out `max_shards` requests at a time, split by series: each series in one
/// request of each round, its samples in time order, everything delivered once.
#[tokio::test]
async fn a_backlog_goes_out_on_several_connections_split_by_series() {
    let rx = scripted(vec![]).await;
    let clock = WallClock::manual(T);
    let (s, m) = sink(&clock, &rx.url, "max_samples_per_send = 40\nmax_shards = 3");
    let jobs: Vec<String> = (0..30).map(|i| format!("j{i}")).collect();
    let samples: Vec<(&str, Option<i64>)> = jobs.iter().map(|j| (j.as_str(), None)).collect();
    for poll in 0..8 {
        s.submit(snap(T + poll * 15_000, &samples));
    }
    assert_eq!(s.flush(Duration::from_secs(20)).await, Ok(240));
    let got = rx.accepted.lock().unwrap().clone();
    // 240 samples, 120 a round: two rounds of 3 requests (each ~40 samples).
    assert_eq!(got.len(), 6, "{} requests", got.len());
    let mut q = BTreeMap::new();
    for (round, bodies) in got.chunks(3).enumerate() {
        let mut in_round = std::collections::HashSet::new();
        for b in bodies {
            let req = rw::decode(b).unwrap();
            for t in &req.timeseries {
                let job = t
                    .labels
                    .iter()
                    .find(|l| l.name == "job")
                    .unwrap()
                    .value
                    .clone();
                assert!(in_round.insert(job.clone()), "{job} twice in round {round}");
            }
            by_job(&req, &mut q);
        }
    }
    for j in &jobs {
        let want: Vec<i64> = (0..8).map(|p| T + p * 15_000).collect();
        assert_eq!(q[j], want, "{j}: every sample once, in order");
    }
    assert_eq!(m.sent_total("rw"), 240);
}

/// A backlog's next round is merged while the current one is in flight; if a bound pushes its
/// batches out meanwhile (the queue's front moved), it is not sent: what was counted dropped
/// never goes out as well, and each series' samples still arrive in order.
#[tokio::test]
async fn a_round_merged_ahead_is_not_sent_once_a_bound_pushed_it_out() {
    // The first round is refused (503) a few times: time for the bound to act.
    let rx = scripted(vec![(503, "text/plain", "busy", ""); 8]).await;
    let clock = WallClock::system();
    let (s, m) = sink(
        &clock,
        &rx.url,
        "batch_wait = \"10ms\"\nmax_samples_per_send = 10\nmax_shards = 1\nmax_queued_samples = 40",
    );
    let s = Arc::new(s);
    let jobs: Vec<String> = (0..10).map(|i| format!("j{i}")).collect();
    let samples: Vec<(&str, Option<i64>)> = jobs.iter().map(|j| (j.as_str(), None)).collect();
    let t0 = clock.now_ms();
    // Four polls of 10 samples: four batches, a round each; the second is merged ahead.
    for poll in 0..4 {
        s.submit(snap(t0 + poll * 1000, &samples));
    }
    let cancel = CancellationToken::new();
    let run = tokio::spawn(s.clone().run(cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.seen.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // While the first round is retried, four more polls push the first four batches out.
    for poll in 4..8 {
        s.submit(snap(t0 + poll * 1000, &samples));
    }
    while rx.accepted.lock().unwrap().len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Checked before stopping: a sender that sent the stale round would never empty its queue
    // (its commits would not match the front) and keep sending.
    let mut q = BTreeMap::new();
    for b in rx.accepted.lock().unwrap().iter() {
        by_job(&rw::decode(b).unwrap(), &mut q);
    }
    // The round in flight when it was pushed out is delivered (it was on the wire already);
    // the one merged ahead of it is not; then the four newest polls.
    let want: Vec<i64> = [0, 4, 5, 6, 7].iter().map(|p| t0 + p * 1000).collect();
    for j in &jobs {
        assert_eq!(q[j], want, "{j}");
    }
    assert_eq!(m.sent_total("rw"), 50);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the sender stops once its queue is empty")
        .unwrap();
}
