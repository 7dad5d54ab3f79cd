//! Field faults while the receiver is fine (issue 11): the real `pushrelay` binary (or the
//! relay in-process where the wall clock has to jump) between a controllable exporter and a
//! real VictoriaMetrics, Prometheus or Pushgateway, with a gate in front of the receiver that
//! plays a captive portal, an auth proxy, a moved endpoint or a flapping link.
//!
//! Every scrape of the exporter gives one sample of series `a` (job `node`) stamped with the
//! scrape's time, so "nothing lost" is checked per timestamp: the receiver must hold one sample
//! per scrape. Tests stop the relay between two polls ([`quiet_moment`]), so a stop has no
//! excuse to lose a scrape in flight.
//!
//! The default `cargo test` runs one test per failure class; the rest are `#[ignore]`d as slow
//! and run by `scripts/test.sh` with `--ignored`.

use crate::support;
use crate::support::daemon::RelayProcess;
use crate::support::now_ms;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushrelay::clock::WallClock;
use pushrelay::http::server::{response, serve};
use pushrelay::self_metrics::SelfMetrics;
use support::fakes::Exporter;
use support::receivers::{wait_for, Kind, Receiver};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The exporter's body in most tests: series `a` is the one counted.
const BODY: &str = "a 1\nb 2\n";
/// How long the tests wait for something that should take a few seconds.
const PATIENCE: Duration = Duration::from_secs(40);

/// The remote-write sink table the tests use (`name = "rw"`), with `extra` lines.
fn rw_sink(url: &str, extra: &str) -> String {
    format!(
        r#"[[sink]]
type = "remote_write"
name = "rw"
url = "{url}"
batch_wait = "200ms"
min_backoff = "100ms"
max_backoff = "1s"
{extra}
"#
    )
}

/// Waits until 600 ms after the next scrape began: with a 1 s interval and a 200 ms
/// `batch_wait`, that scrape's batch is queued and the next scrape is 400 ms away.
async fn quiet_moment(exporter: &Exporter) {
    let n = exporter.scrapes();
    wait_for(Duration::from_secs(10), || async {
        (exporter.scrapes() > n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
}

/// Waits until the exporter has been scraped `n` more times.
async fn more_scrapes(exporter: &Exporter, n: u64) {
    let target = exporter.scrapes() + n;
    wait_for(Duration::from_secs(n * 3 + 10), || async {
        (exporter.scrapes() >= target).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The relay as a child process.

/// `pushrelay run` (see `support::daemon`) scraping one exporter every second into the sinks of
/// a config written here.
struct Daemon {
    process: RelayProcess,
    source_url: String,
}

impl std::ops::Deref for Daemon {
    type Target = RelayProcess;
    fn deref(&self) -> &RelayProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut RelayProcess {
        &mut self.process
    }
}

impl Daemon {
    /// A relay scraping `source_url` every second into the sinks of `sinks` (TOML tables).
    fn new(source_url: &str, sinks: &str) -> Daemon {
        let d = Daemon {
            process: RelayProcess::new("pushrelay-field-"),
            source_url: source_url.to_string(),
        };
        d.write_config(sinks);
        d
    }

    /// Rewrites the config with other sinks (the state directory stays).
    fn write_config(&self, sinks: &str) {
        self.process.write_config(&format!(
            r#"[relay]
interval = "1s"
state_dir = "{state}"
listen = "{listen}"
shutdown_timeout = "3s"

[[source]]
type = "scrape"
name = "node"
url = "{url}"

{sinks}"#,
            state = self.state().display(),
            listen = self.listen,
            url = self.source_url,
        ));
    }

    /// The remote-write sink's queue directory.
    fn queue_dir(&self) -> PathBuf {
        self.state().join("rw")
    }

    /// SIGTERM; the exit status must be 0.
    async fn terminate(&mut self) {
        self.process.terminate().await;
    }

    /// Waits until `name{labels}` satisfies `ok`.
    async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], ok: impl Fn(f64) -> bool) {
        self.process.wait_metric(name, labels, PATIENCE, ok).await
    }

    /// Waits until the remote-write queue is empty.
    async fn wait_drained(&self) {
        self.wait_metric("pushrelay_queue_samples", &[("sink", "rw")], |v| v == 0.0)
            .await
    }

    /// Samples dropped by sink `rw`, by reason (non-zero ones), as `reason=value`.
    async fn drops(&self) -> Vec<String> {
        self.process.drops("rw").await
    }
}

// ---------------------------------------------------------------------------------------------
// A gate in front of the receiver.

/// What the gate does with a request.
#[derive(Clone, Debug)]
enum Mode {
    /// Passes it to the receiver.
    Forward,
    /// Answers itself: status, content type, body, `Location`.
    Answer(u16, &'static str, &'static str, Option<&'static str>),
    /// Passes it on only with `Authorization: Bearer <token>`; otherwise 401 "invalid token".
    Bearer(&'static str),
}

/// One request the gate answered.
#[derive(Clone, Debug)]
struct Answered {
    status: u16,
    body: bytes::Bytes,
}

/// A proxy in front of a real receiver whose behaviour the test switches ([`Mode`]).
struct Gate {
    url: String,
    mode: Arc<Mutex<Mode>>,
    answered: Arc<Mutex<Vec<Answered>>>,
    _stop: tokio_util::sync::DropGuard,
}

impl Gate {
    async fn start(upstream: &str) -> Gate {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let answered: Arc<Mutex<Vec<Answered>>> = Arc::default();
        let cancel = CancellationToken::new();
        let client = reqwest::Client::new();
        let upstream = upstream.trim_end_matches('/').to_string();
        let (m, a) = (mode.clone(), answered.clone());
        tokio::spawn(serve(l, cancel.clone(), move |req| {
            let (m, a, client, upstream) = (m.clone(), a.clone(), client.clone(), upstream.clone());
            async move {
                let mode = m.lock().unwrap().clone();
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let (status, resp) = match mode {
                    Mode::Answer(status, ctype, body, location) => {
                        let mut r = response(status, ctype, body);
                        if let Some(l) = location {
                            r.headers_mut().insert("location", l.parse().unwrap());
                        }
                        (status, r)
                    }
                    Mode::Bearer(token) if auth != format!("Bearer {token}") => {
                        (401, response(401, "text/plain", "invalid token\n"))
                    }
                    Mode::Forward | Mode::Bearer(_) => {
                        let path = req.uri().path().to_string();
                        let mut r = client.post(format!("{upstream}{path}"));
                        for h in [
                            "content-encoding",
                            "content-type",
                            "x-prometheus-remote-write-version",
                        ] {
                            if let Some(v) = req.headers().get(h) {
                                r = r.header(h, v.clone());
                            }
                        }
                        match r.body(req.body().clone()).send().await {
                            Ok(up) => {
                                let st = up.status().as_u16();
                                let b = up.bytes().await.unwrap_or_default();
                                (st, response(st, "text/plain", b))
                            }
                            Err(e) => (502, response(502, "text/plain", e.to_string())),
                        }
                    }
                };
                a.lock().unwrap().push(Answered {
                    status,
                    body: req.into_body(),
                });
                resp
            }
        }));
        Gate {
            url,
            mode,
            answered,
            _stop: cancel.drop_guard(),
        }
    }

    fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn answered(&self) -> Vec<Answered> {
        self.answered.lock().unwrap().clone()
    }
}

const UNAVAILABLE: Mode = Mode::Answer(503, "text/plain", "down for maintenance", None);

// ---------------------------------------------------------------------------------------------
// What arrived.

/// Timestamps (ms) of the samples of `series{job="node"}` the receiver holds, sorted (a
/// timestamp delivered twice appears twice with VictoriaMetrics).
async fn times(rx: &Receiver, series: &str) -> Vec<i64> {
    if rx.kind == Kind::Prometheus {
        let at = now_ms() as f64 / 1000.0 + 600.0;
        let r = rx.query(&format!("{series}{{job=\"node\"}}[2h]"), at).await;
        let Some(s) = r.as_array().and_then(|a| a.first()) else {
            return Vec::new();
        };
        return s["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| (v[0].as_f64().expect("a time") * 1000.0).round() as i64)
            .collect();
    }
    let mut ts: Vec<i64> = rx
        .export_raw(&format!("{{__name__=\"{series}\",job=\"node\"}}"))
        .await
        .iter()
        .flat_map(|s| s["timestamps"].as_array().cloned().unwrap_or_default())
        .map(|t| t.as_i64().expect("ms"))
        .collect();
    ts.sort_unstable();
    ts
}

/// Waits until the receiver holds at least `n` samples of `series`.
async fn wait_samples(rx: &Receiver, series: &str, n: usize) {
    wait_for(PATIENCE, || async {
        (times(rx, series).await.len() >= n).then_some(())
    })
    .await
}

/// Every scrape of `exporter` has its sample of `a` in the receiver, once each (but for
/// `may_miss` of them). Read again for a few seconds until it holds: VictoriaMetrics 1.145
/// sometimes shows the newest sample of a burst only a second later, even after a flush.
async fn assert_every_scrape(rx: &Receiver, exporter: &Exporter, may_miss: u64, log: &str) {
    let scrapes = exporter.scrapes();
    let mut ts = times(rx, "a").await;
    for _ in 0..10 {
        if ts.iter().collect::<BTreeSet<_>>().len() as u64 + may_miss >= scrapes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        ts = times(rx, "a").await;
    }
    let unique: BTreeSet<i64> = ts.iter().copied().collect();
    assert!(
        unique.len() as u64 + may_miss >= scrapes && unique.len() as u64 <= scrapes,
        "{} of {scrapes} scrapes arrived (may miss {may_miss}): {ts:?}\n{log}",
        unique.len()
    );
}

/// Samples in a remote-write body of any form the sink sends (1.0 snappy or zstd, 2.0).
fn sample_count(body: &[u8]) -> usize {
    use prost::Message;
    if body.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return pushrelay::wire::form::zstd_decompress(body, 64 << 20)
            .ok()
            .and_then(|raw| pushrelay::wire::proto::WriteRequest::decode(raw.as_slice()).ok())
            .map_or(0, |r| r.timeseries.iter().map(|t| t.samples.len()).sum());
    }
    if let Ok(r) = pushrelay::wire::v2::decode(body) {
        if !r.symbols.is_empty() {
            return r.timeseries.iter().map(|t| t.samples.len()).sum();
        }
    }
    pushrelay::wire::remote_write::decode(body)
        .map(|r| r.timeseries.iter().map(|t| t.samples.len()).sum())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// 1. One old sample drops everyone's batch.

/// `once` with one series stamped 1970 (`wrong_clock 1 0`): the rest is pushed, the old
/// sample alone is dropped and counted, and `once` says so and exits 1 instead of "pushed".
#[tokio::test]
async fn once_sends_the_rest_and_never_reports_a_push_that_did_not_happen() {
    let vm = Receiver::victoria_metrics().await;
    let exporter = Exporter::start("a 1\nwrong_clock 1 0\n").await;
    let d = Daemon::new(&exporter.url, &rw_sink(&vm.remote_write_url(), ""));
    let mut once = Command::new(env!("CARGO_BIN_EXE_pushrelay"));
    once.args(["once", "--config"])
        .arg(&d.config)
        .env("NO_COLOR", "1");
    // Off this thread: the exporter answers on the test's runtime.
    let out = tokio::task::spawn_blocking(move || once.output())
        .await
        .unwrap()
        .expect("run pushrelay once");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("ok:") && !err.contains("pushed"), "{err}");
    assert!(
        err.contains("failed: sink rw:") && err.contains("dropped 1 too_old"),
        "{err}"
    );
    wait_samples(&vm, "a", 1).await;
    assert!(times(&vm, "wrong_clock").await.is_empty());
}

/// The daemon: every scrape's fresh samples arrive while the old one is dropped each time.
#[tokio::test]
#[ignore = "slow: the daemon variant of the once test"]
async fn the_daemon_drops_only_the_old_sample() {
    let vm = Receiver::victoria_metrics().await;
    let exporter = Exporter::start("a 1\nwrong_clock 1 0\n").await;
    let mut d = Daemon::new(&exporter.url, &rw_sink(&vm.remote_write_url(), ""));
    d.start().await;
    wait_samples(&vm, "a", 3).await;
    d.wait_metric(
        "pushrelay_samples_dropped_total",
        &[("sink", "rw"), ("reason", "too_old")],
        |v| v >= 3.0,
    )
    .await;
    quiet_moment(&exporter).await;
    d.terminate().await;
    assert!(times(&vm, "wrong_clock").await.is_empty());
    assert_every_scrape(&vm, &exporter, 0, &d.log()).await;
    // One line for the first drop; the rest goes into the summary (at shutdown here).
    assert!(d.lines_with(&["too_old"]).len() <= 2, "{}", d.log());
}

// ---------------------------------------------------------------------------------------------
// 2. A truncated live segment.

/// `truncate -s 50%` of the segment being written, under a running relay with a healthy
/// receiver, at a quiet moment (the last poll delivered): every later batch is read back and
/// delivered (it used to be dropped as unreadable until a restart), and at most the batches the
/// warning counts as lost are missing. Every poll is queued at once and leaves the queue only
/// when the receiver answers, so a cut can take a batch that was still waiting or in flight.
#[tokio::test]
#[ignore = "slow: real-process variant of buffer::disk::tests::a_cut_live_segment_loses_only_what_was_cut"]
async fn a_cut_live_segment_costs_at_most_what_was_cut() {
    let vm = Receiver::victoria_metrics().await;
    let exporter = Exporter::start(BODY).await;
    let mut d = Daemon::new(&exporter.url, &rw_sink(&vm.remote_write_url(), ""));
    d.start().await;
    wait_samples(&vm, "a", 4).await;
    quiet_moment(&exporter).await;
    let seg = fs::read_dir(d.queue_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .expect("a live segment");
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    more_scrapes(&exporter, 6).await;
    quiet_moment(&exporter).await;
    d.terminate().await;
    let log = d.log();
    assert!(!log.contains("cannot be read back"), "{log}");
    assert_every_scrape(&vm, &exporter, batches_said_lost(&log), &log).await;
}

/// The batches the relay's warnings say a cut segment cost ("the N batches (M samples) queued
/// in the cut part are lost"), summed.
fn batches_said_lost(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("queued in the cut part are lost"))
        .filter_map(|l| {
            l.split(": the ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// 3. After a disk failure the queue stayed in memory for good.

/// The queue directory is replaced by a file (writes fail with ENOTDIR, as they would with
/// EROFS or ENOSPC); the receiver goes down; the directory comes back. The batches held in
/// memory meanwhile move back to disk (`pushrelay_buffer_on_disk` 0, then 1; one log line
/// each way), so a SIGKILL after that loses nothing.
#[tokio::test]
async fn after_a_disk_failure_the_queue_returns_to_disk_and_survives_sigkill() {
    let vm = Receiver::victoria_metrics().await;
    let gate = Gate::start(&vm.base_url).await;
    let exporter = Exporter::start(BODY).await;
    let mut d = Daemon::new(&exporter.url, &rw_sink(&gate.write_url(), ""));
    d.start().await;
    wait_samples(&vm, "a", 3).await;
    let on_disk = [("sink", "rw")];
    d.wait_metric("pushrelay_buffer_on_disk", &on_disk, |v| v == 1.0)
        .await;
    let (q, away) = (d.queue_dir(), d.state().join("rw.away"));
    fs::rename(&q, &away).unwrap();
    fs::write(&q, "not a directory").unwrap();
    d.wait_metric("pushrelay_buffer_on_disk", &on_disk, |v| v == 0.0)
        .await;
    gate.set(UNAVAILABLE);
    more_scrapes(&exporter, 4).await;
    fs::remove_file(&q).unwrap();
    fs::rename(&away, &q).unwrap();
    d.wait_metric("pushrelay_buffer_on_disk", &on_disk, |v| v == 1.0)
        .await;
    more_scrapes(&exporter, 2).await;
    quiet_moment(&exporter).await;
    d.kill();
    gate.set(Mode::Forward);
    d.start().await;
    d.wait_drained().await;
    quiet_moment(&exporter).await;
    d.terminate().await;
    let log = d.log();
    assert_eq!(
        d.lines_with(&["keeping new batches in memory"]).len(),
        1,
        "{log}"
    );
    assert_eq!(d.lines_with(&["is on disk again: moved"]).len(), 1, "{log}");
    assert_every_scrape(&vm, &exporter, 0, &log).await;
}

/// Unmounts a filesystem mounted by a test.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A real disk-full: the state directory is a 4 MiB tmpfs that the test fills up, then frees.
/// Needs root (it mounts a tmpfs).
#[tokio::test]
#[ignore = "slow; needs root: mounts a small tmpfs and fills it"]
async fn a_full_disk_then_freed_moves_the_queue_back_to_disk() {
    let vm = Receiver::victoria_metrics().await;
    let gate = Gate::start(&vm.base_url).await;
    let exporter = Exporter::start(BODY).await;
    let mut d = Daemon::new(&exporter.url, &rw_sink(&gate.write_url(), ""));
    fs::create_dir_all(d.state()).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(d.state())
        .output()
        .expect("run mount");
    assert!(
        mount.status.success(),
        "this test mounts a tmpfs and needs root: {}",
        String::from_utf8_lossy(&mount.stderr)
    );
    let _mounted = Mounted(d.state());
    d.start().await;
    wait_samples(&vm, "a", 2).await;
    gate.set(UNAVAILABLE);
    // Fill the filesystem.
    let filler = d.state().join("filler");
    {
        use std::io::Write;
        let mut f = File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
    }
    let on_disk = [("sink", "rw")];
    d.wait_metric("pushrelay_buffer_on_disk", &on_disk, |v| v == 0.0)
        .await;
    more_scrapes(&exporter, 3).await;
    fs::remove_file(&filler).unwrap();
    d.wait_metric("pushrelay_buffer_on_disk", &on_disk, |v| v == 1.0)
        .await;
    quiet_moment(&exporter).await;
    d.kill();
    gate.set(Mode::Forward);
    d.start().await;
    d.wait_drained().await;
    quiet_moment(&exporter).await;
    d.terminate().await;
    let log = d.log();
    assert!(log.contains("No space left on device"), "{log}");
    assert_eq!(d.lines_with(&["is on disk again: moved"]).len(), 1, "{log}");
    assert_every_scrape(&vm, &exporter, 0, &log).await;
}

// ---------------------------------------------------------------------------------------------
// 4 and 5. Answers that are not the receiver's verdict on the data.

/// A receiver behind an auth proxy refuses an expired token with 401: the relay keeps its
/// queue, says so once (with the proxy's answer), counts the failures by reason, drops
/// nothing; after the token is fixed and the relay restarted, everything queued arrives.
#[tokio::test]
async fn wrong_credentials_keep_the_queue_until_the_token_is_fixed() {
    let vm = Receiver::victoria_metrics().await;
    let gate = Gate::start(&vm.base_url).await;
    gate.set(Mode::Bearer("good-token"));
    let exporter = Exporter::start(BODY).await;
    let sink = |token: &str| rw_sink(&gate.write_url(), &format!("bearer_token = \"{token}\""));
    let mut d = Daemon::new(&exporter.url, &sink("expired-token"));
    d.start().await;
    more_scrapes(&exporter, 6).await;
    let unauthorized = [("sink", "rw"), ("reason", "unauthorized")];
    d.wait_metric("pushrelay_send_failures_total", &unauthorized, |v| v >= 3.0)
        .await;
    assert!(d.drops().await.is_empty(), "{:?}", d.drops().await);
    assert!(d.metric("pushrelay_queue_samples", &[("sink", "rw")]).await > Some(0.0));
    quiet_moment(&exporter).await;
    d.terminate().await;
    let log = d.log();
    let offline = d.lines_with(&["offline"]);
    assert_eq!(offline.len(), 1, "one line for the whole episode:\n{log}");
    assert!(
        offline[0].contains("HTTP 401") && offline[0].contains("invalid token"),
        "{log}"
    );
    assert!(!log.contains("dropped"), "{log}");
    // (Asked at the gate: VictoriaMetrics 1.145 may hide a series for a while from exports
    // after it was asked for it before it existed.)
    assert!(
        gate.answered().iter().all(|a| a.status == 401),
        "nothing got through with the expired token"
    );

    d.write_config(&sink("good-token"));
    d.start().await;
    d.wait_drained().await;
    quiet_moment(&exporter).await;
    d.terminate().await;
    assert_every_scrape(&vm, &exporter, 0, &d.log()).await;
}

/// A captive portal's `200 text/html`, then a redirect to where the receiver moved: neither
/// counts as delivered nor drops anything; each is said once, the redirect naming its
/// `Location`; once the way is clear everything arrives.
#[tokio::test]
#[ignore = "slow: real-process variant of the sink's unit test on portal pages and redirects"]
async fn portal_pages_and_redirects_are_retried_and_said_once() {
    let vm = Receiver::victoria_metrics().await;
    let gate = Gate::start(&vm.base_url).await;
    let exporter = Exporter::start(BODY).await;
    let mut d = Daemon::new(&exporter.url, &rw_sink(&gate.write_url(), ""));
    d.start().await;
    wait_samples(&vm, "a", 2).await;
    gate.set(Mode::Answer(
        200,
        "text/html; charset=utf-8",
        "<!DOCTYPE html><html><head><title>Hotspot</title></head><body>Log in</body></html>",
        None,
    ));
    more_scrapes(&exporter, 3).await;
    gate.set(Mode::Answer(
        308,
        "text/plain",
        "",
        Some("https://moved.example/api/v1/write"),
    ));
    more_scrapes(&exporter, 3).await;
    gate.set(Mode::Forward);
    d.wait_drained().await;
    quiet_moment(&exporter).await;
    d.terminate().await;
    let log = d.log();
    assert_eq!(
        d.lines_with(&["captive portal or proxy?"]).len(),
        1,
        "{log}"
    );
    assert_eq!(
        d.lines_with(&["redirect to https://moved.example/api/v1/write"])
            .len(),
        1,
        "{log}"
    );
    assert!(!log.contains("dropped"), "{log}");
    assert_every_scrape(&vm, &exporter, 0, &log).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Clock jumps (in-process: the relay's wall clock is the system clock plus an offset the
// test moves).

/// A wall clock following the system clock plus an offset in ms the test sets.
struct JumpingClock {
    clock: WallClock,
    offset: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl JumpingClock {
    fn start() -> JumpingClock {
        let clock = WallClock::manual(now_ms());
        let offset = Arc::new(AtomicI64::new(0));
        let (c, o) = (clock.clone(), offset.clone());
        let task = tokio::spawn(async move {
            loop {
                c.set(now_ms() + o.load(Ordering::SeqCst));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        JumpingClock {
            clock,
            offset,
            task,
        }
    }

    fn jump_to(&self, offset_ms: i64) {
        self.offset.store(offset_ms, Ordering::SeqCst);
        self.clock.set(now_ms() + offset_ms);
    }
}

impl Drop for JumpingClock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the relay in-process with `clock` until the returned token is cancelled.
fn relay_in_process(
    source_url: &str,
    sinks: &str,
    clock: &WallClock,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    Arc<SelfMetrics>,
    TempDir,
) {
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "[relay]\ninterval = \"1s\"\nstate_dir = \"{}\"\nshutdown_timeout = \"3s\"\n\n\
         [[source]]\ntype = \"scrape\"\nname = \"node\"\nurl = \"{source_url}\"\n\n{sinks}",
        state.path().display()
    );
    let cfg =
        pushrelay::config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Arc::new(SelfMetrics::default());
    let env = pushrelay::relay::Env {
        metrics: metrics.clone(),
        clock: clock.clone(),
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    let h = tokio::spawn(pushrelay::relay::run_with(cfg, cancel.clone(), env));
    (cancel, h, metrics, state)
}

/// The wall clock jumps 2 minutes back. Prometheus refuses a request holding any sample older
/// than its series' last one (400, nothing of the request kept), so sending the series that
/// are now "in the past" used to cost every batch, with the new series in them. Now those
/// samples are dropped (`reason="out_of_order"`) until the clock passes them again, and the
/// rest arrives.
#[tokio::test]
async fn a_clock_jumping_back_costs_prometheus_no_batch() {
    let prom = Receiver::prometheus().await;
    let exporter = Exporter::start("a 1\n").await;
    let jc = JumpingClock::start();
    let (cancel, h, metrics, _state) = relay_in_process(
        &exporter.url,
        &rw_sink(&prom.remote_write_url(), ""),
        &jc.clock,
    );
    wait_samples(&prom, "a", 3).await;
    jc.jump_to(-120_000);
    exporter.set_body("a 1\nnew_after_the_jump 1\n");
    wait_samples(&prom, "new_after_the_jump", 3).await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let drops = metrics.dropped_by_reason("rw");
    assert!(
        drops.iter().any(|(r, n)| r == "out_of_order" && *n >= 3),
        "{drops:?}"
    );
    assert!(!drops.iter().any(|(r, _)| r == "rejected"), "{drops:?}");
    let a = times(&prom, "a").await;
    assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
}

/// A tracing writer into a buffer, for the in-process relay's log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

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
    /// Captures this thread's log lines (the test's current-thread runtime runs every task).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let w = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || w.clone())
                .with_ansi(false)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// During an outage the wall clock jumps 90 s forward with `max_age` 1 minute: the queued
/// samples are now too old and are dropped (counted), the young ones are sent, and the
/// back-online line counts what the receiver was actually given.
#[tokio::test]
#[ignore = "slow: forward clock jump during an outage"]
async fn a_clock_jumping_forward_during_an_outage_keeps_the_log_true() {
    let logs = Captured::default();
    let _g = logs.install();
    let vm = Receiver::victoria_metrics().await;
    let gate = Gate::start(&vm.base_url).await;
    let exporter = Exporter::start(BODY).await;
    let jc = JumpingClock::start();
    // 1.0 with snappy: the test decodes what the receiver was given.
    let sink = rw_sink(
        &gate.write_url(),
        "buffer = { max_age = \"1m\" }\nprotocol = \"v1\"\ncompression = \"snappy\"",
    );
    let (cancel, h, metrics, _state) = relay_in_process(&exporter.url, &sink, &jc.clock);
    wait_samples(&vm, "a", 2).await;
    gate.set(UNAVAILABLE);
    more_scrapes(&exporter, 4).await;
    jc.jump_to(90_000);
    more_scrapes(&exporter, 2).await;
    let before = gate.answered().len();
    let jumped_at = now_ms() + 90_000;
    gate.set(Mode::Forward);
    wait_for(PATIENCE, || async {
        logs.text().contains("back online").then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("back online"))
        .expect("a back-online line");
    let first_ok = gate.answered()[before..]
        .iter()
        .find(|a| a.status == 204)
        .cloned()
        .expect("an accepted request");
    let n = sample_count(&first_ok.body);
    assert!(
        line.contains(&format!("delivered {n} samples")),
        "{line} (the receiver got {n})\n{text}"
    );
    let drops = metrics.dropped_by_reason("rw");
    assert!(
        drops.iter().any(|(r, _)| r == "too_old"),
        "{drops:?}\n{text}"
    );
    // Nothing older than max_age by the jumped clock was given to the receiver after the jump.
    for a in &gate.answered()[before..] {
        let req = pushrelay::wire::remote_write::decode(&a.body).unwrap();
        for ts in req.timeseries.iter().flat_map(|t| &t.samples) {
            assert!(ts.timestamp >= jumped_at - 61_000 - 90_000, "{ts:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Logs that stay quiet.

/// A link that flaps while a backlog drains slowly (4 requests a second, about 2 new batches a
/// second, so a 1.5 s window cannot empty the queue): one `offline` line
/// and one `back online` line per flap (it used to log `back online` only once the queue was
/// empty, so a flapping link logged nothing but `offline`); nothing lost.
#[tokio::test]
async fn a_flapping_link_logs_one_line_per_change() {
    let vm = Receiver::victoria_metrics().await;
    let gate = Gate::start(&vm.base_url).await;
    let exporter = Exporter::start(BODY).await;
    let sink = rw_sink(
        &gate.write_url(),
        "rate_limit = { requests_per_second = 4.0 }",
    );
    let mut d = Daemon::new(&exporter.url, &sink);
    d.start().await;
    wait_samples(&vm, "a", 2).await;
    for _ in 0..3 {
        gate.set(UNAVAILABLE);
        tokio::time::sleep(Duration::from_secs(4)).await;
        gate.set(Mode::Forward);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    d.wait_drained().await;
    quiet_moment(&exporter).await;
    d.terminate().await;
    let log = d.log();
    let offline = d.lines_with(&["offline: HTTP 503"]).len();
    let online = d.lines_with(&["back online after"]).len();
    assert!(offline >= 2, "{log}");
    assert_eq!(
        online, offline,
        "one back-online line per offline line:\n{log}"
    );
    assert!(d.lines_with(&["still offline"]).is_empty(), "{log}");
    assert_every_scrape(&vm, &exporter, 0, &log).await;
}

/// A persistent 413 and then a full queue: one line for the first drop, the rest summed into
/// the periodic summary (here the one at shutdown), instead of a line per batch.
#[tokio::test]
#[ignore = "slow: persistent refusals and a full queue for several seconds each"]
async fn persistent_drops_are_summarised_not_logged_per_batch() {
    let vm = Receiver::victoria_metrics().await;
    let gate = Gate::start(&vm.base_url).await;
    let body: String = (0..400).map(|i| format!("s{{i=\"{i}\"}} {i}\n")).collect();
    let exporter = Exporter::start(&format!("{BODY}{body}")).await;
    let sink = rw_sink(&gate.write_url(), "buffer = { max_bytes = \"16KiB\" }");
    let mut d = Daemon::new(&exporter.url, &sink);
    d.start().await;
    wait_samples(&vm, "a", 1).await;
    gate.set(Mode::Answer(
        413,
        "text/plain",
        "request entity too large",
        None,
    ));
    more_scrapes(&exporter, 6).await;
    gate.set(UNAVAILABLE);
    more_scrapes(&exporter, 8).await;
    let drops = d.drops().await;
    assert!(
        drops.iter().any(|d| d.starts_with("rejected=")),
        "{drops:?}"
    );
    assert!(
        drops.iter().any(|d| d.starts_with("buffer_full=")),
        "{drops:?}"
    );
    d.terminate().await;
    let log = d.log();
    let lines = d.lines_with(&["dropped"]);
    assert!(lines.len() <= 2, "at most the first and a summary:\n{log}");
    assert!(
        lines[0].contains("refused a batch") && lines[0].contains("HTTP 413"),
        "{log}"
    );
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.contains("buffer_full") && l.contains("rejected")),
        "{log}"
    );
}

/// The Pushgateway refuses one group every poll (two exporters disagree on a metric's TYPE):
/// one line for the first refusal, then the summary, instead of a line per poll.
#[tokio::test]
#[ignore = "slow: a persistent Pushgateway refusal for several polls"]
async fn pushgateway_refusals_are_summarised_not_logged_per_push() {
    let pg = Receiver::pushgateway().await;
    let first = Exporter::start("# TYPE x counter\nx 1\n").await;
    let second = Exporter::start("# TYPE x gauge\nx 2\n").await;
    let sink = format!(
        "[[sink]]\ntype = \"pushgateway\"\nname = \"pg\"\nurl = \"{}\"\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\n\n\
         [[source]]\ntype = \"scrape\"\nname = \"other\"\nurl = \"{}\"\n",
        pg.base_url, second.url
    );
    let mut d = Daemon::new(&first.url, &sink);
    d.start().await;
    more_scrapes(&second, 6).await;
    d.wait_metric(
        "pushrelay_samples_dropped_total",
        &[("sink", "pg"), ("reason", "rejected")],
        |v| v >= 4.0,
    )
    .await;
    d.terminate().await;
    let log = d.log();
    let lines = d.lines_with(&["dropped"]);
    assert!(!lines.is_empty() && lines.len() <= 2, "{log}");
    assert!(lines[0].contains("the Pushgateway refused group"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// 8. SIGHUP.

/// SIGHUP used to kill the daemon (exit 129) with the batch it was assembling; now it reloads
/// the (unchanged) configuration and the relay goes on; a later SIGTERM exits 0 with nothing
/// lost.
#[tokio::test]
#[ignore = "slow: operate::reload_keeps_what_is_unchanged_and_refuses_a_bad_file sends SIGHUP too"]
async fn sighup_is_harmless() {
    let vm = Receiver::victoria_metrics().await;
    let exporter = Exporter::start(BODY).await;
    let sink = rw_sink(&vm.remote_write_url(), "").replace("\"200ms\"", "\"3s\"");
    let mut d = Daemon::new(&exporter.url, &sink);
    d.start().await;
    wait_samples(&vm, "a", 1).await;
    d.signal("HUP");
    wait_for(PATIENCE, || async {
        d.log().contains("configuration reloaded").then_some(())
    })
    .await;
    let n = times(&vm, "a").await.len();
    wait_samples(&vm, "a", n + 2).await;
    assert!(d.child_mut().try_wait().unwrap().is_none(), "still running");
    quiet_moment(&exporter).await;
    d.terminate().await;
    assert_eq!(d.lines_with(&["SIGHUP: reloading"]).len(), 1, "{}", d.log());
    assert_eq!(
        d.lines_with(&["sources 1 kept, 0 changed, 0 added, 0 removed; sinks 1 kept"])
            .len(),
        1,
        "{}",
        d.log()
    );
    // batch_wait is 3 s: the SIGTERM sealed what was being assembled.
    assert_every_scrape(&vm, &exporter, 0, &d.log()).await;
}
