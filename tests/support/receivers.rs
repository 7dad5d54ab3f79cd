//! Real receivers for integration tests: Prometheus 3.5 (remote-write receiver), Pushgateway and
//! single-node VictoriaMetrics, each started as a child process on 127.0.0.1 with a port picked
//! here and a temporary data directory, plus HTTP helpers to read back what arrived.
//!
//! The binaries come from `scripts/fetch-receivers.sh` (into `<repo>/.receivers/bin`, or the
//! folder named by `PUSHRELAY_RECEIVERS_DIR`). A missing binary is a test failure, never a skip.
//!
//! ```ignore
//! let prom = Receiver::prometheus().await;
//! // ... point the relay at prom.remote_write_url() ...
//! let result = prom.query("up", now_secs).await;
//! ```

use super::free_port;
use std::fs::{self, File};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a receiver may take to answer its readiness endpoint.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of each HTTP request made by the helpers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts attempted when the picked port was taken by someone else in the meantime.
const START_ATTEMPTS: u32 = 5;
/// How much of a child's log is shown in a panic message.
const LOG_TAIL_BYTES: u64 = 4096;
/// How long [`Receiver::stop`] waits for a clean exit before killing the receiver.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Starts attempted by [`Receiver::restart`] while its port is held by someone else.
const RESTART_ATTEMPTS: u32 = 20;

/// Which receiver a [`Receiver`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prometheus,
    /// Prometheus in agent mode (`--agent`): scrapes and remote-writes, no TSDB or queries.
    PrometheusAgent,
    VictoriaMetrics,
    Pushgateway,
}

impl Kind {
    /// File name in the receivers folder.
    pub fn binary_name(self) -> &'static str {
        match self {
            Kind::Prometheus | Kind::PrometheusAgent => "prometheus",
            Kind::VictoriaMetrics => "victoria-metrics",
            Kind::Pushgateway => "pushgateway",
        }
    }

    fn ready_path(self) -> &'static str {
        match self {
            Kind::Prometheus | Kind::PrometheusAgent | Kind::Pushgateway => "/-/ready",
            Kind::VictoriaMetrics => "/health",
        }
    }

    fn is_tsdb(self) -> bool {
        matches!(self, Kind::Prometheus | Kind::VictoriaMetrics)
    }
}

/// The folder holding the receiver binaries: `$PUSHRELAY_RECEIVERS_DIR`, else
/// `<CARGO_MANIFEST_DIR>/.receivers/bin`.
pub fn receivers_dir() -> PathBuf {
    match std::env::var_os("PUSHRELAY_RECEIVERS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".receivers")
            .join("bin"),
    }
}

/// Path of one receiver binary (`prometheus`, `pushgateway`, `victoria-metrics`, `vmagent`).
///
/// Panics, telling how to get it, when it is not there: tests needing a real receiver must fail
/// loudly rather than skip.
pub fn binary_path(name: &str) -> PathBuf {
    let path = receivers_dir().join(name);
    if !path.is_file() {
        panic!(
            "receiver binary {} not found: run `scripts/fetch-receivers.sh` from the repository \
             root first (it downloads Prometheus, Pushgateway, VictoriaMetrics and vmagent from \
             Debian into .receivers/bin; PUSHRELAY_RECEIVERS_DIR overrides that folder)",
            path.display()
        );
    }
    path
}

/// Kills and reaps the child when dropped (also when a test panics).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running receiver. Dropping it kills the process and deletes its data directory.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    pub kind: Kind,
    pub port: u16,
    // Declared before `dir`: the process is stopped before its data directory is removed.
    child: ChildGuard,
    client: reqwest::Client,
    dir: TempDir,
    /// The command line the process was started with, for [`Receiver::restart`].
    args: Vec<String>,
}

/// Minimal Prometheus configuration: no scrape jobs, no rules.
const PROMETHEUS_CONFIG: &str = "global:\n  scrape_interval: 15s\nscrape_configs: []\n";

enum StartError {
    /// The port was taken between picking it and the child binding it: try another.
    PortTaken,
    Failed(String),
}

impl Receiver {
    /// Prometheus 3.5 in server mode with the remote-write receiver on (both protobuf messages:
    /// remote-write 1.0 and 2.0), no scrape jobs, default lookback (5m) and no out-of-order
    /// window, as a stock Prometheus behaves.
    pub async fn prometheus() -> Receiver {
        Self::prometheus_with(PROMETHEUS_CONFIG, &[]).await
    }

    /// Prometheus with a given configuration file content (e.g. to set
    /// `storage: {tsdb: {out_of_order_time_window: 1h}}`) and extra command-line flags.
    pub async fn prometheus_with(config_yaml: &str, extra_args: &[&str]) -> Receiver {
        Self::start(Kind::Prometheus, Some(config_yaml), extra_args).await
    }

    /// Prometheus in agent mode with a given configuration (scrape jobs and a `remote_write`):
    /// what it scrapes is what it sends, with no storage rules in between.
    pub async fn prometheus_agent(config_yaml: &str) -> Receiver {
        Self::start(Kind::PrometheusAgent, Some(config_yaml), &[]).await
    }

    /// Single-node VictoriaMetrics; samples are queryable right after [`Receiver::flush`]
    /// (which the query helpers call), and timestamps back to 100 years ago are accepted.
    pub async fn victoria_metrics() -> Receiver {
        Self::victoria_metrics_with(&[]).await
    }

    /// VictoriaMetrics with extra command-line flags (appended, so they win over the defaults).
    pub async fn victoria_metrics_with(extra_args: &[&str]) -> Receiver {
        Self::start(Kind::VictoriaMetrics, None, extra_args).await
    }

    /// Pushgateway, in memory only, with the admin API on (`PUT /api/v1/admin/wipe`).
    pub async fn pushgateway() -> Receiver {
        Self::pushgateway_with(&[]).await
    }

    /// Pushgateway with extra command-line flags.
    pub async fn pushgateway_with(extra_args: &[&str]) -> Receiver {
        Self::start(Kind::Pushgateway, None, extra_args).await
    }

    fn args(kind: Kind, dir: &Path, data: &Path, port: u16) -> Vec<String> {
        let listen = format!("127.0.0.1:{port}");
        match kind {
            Kind::Prometheus => vec![
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address={listen}"),
                "--web.enable-remote-write-receiver".into(),
                // 1.0 only would be the documented default: accept 2.0 as well, explicitly.
                "--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest"
                    .into(),
                "--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request"
                    .into(),
            ],
            Kind::PrometheusAgent => vec![
                "--agent".into(),
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.agent.path={}", data.display()),
                format!("--web.listen-address={listen}"),
            ],
            Kind::VictoriaMetrics => vec![
                format!("-storageDataPath={}", data.display()),
                format!("-httpListenAddr={listen}"),
                // Default 30s: samples newer than now-30s would be hidden from queries.
                "-search.latencyOffset=0s".into(),
                // Default 1 month: older samples would be dropped at ingestion.
                "-retentionPeriod=100y".into(),
                // Tests query the same range again after writing more: no stale cached answers.
                "-search.disableCache".into(),
            ],
            Kind::Pushgateway => vec![
                format!("--web.listen-address={listen}"),
                "--web.enable-admin-api".into(),
            ],
        }
    }

    async fn start(kind: Kind, config_yaml: Option<&str>, extra_args: &[&str]) -> Receiver {
        let binary = binary_path(kind.binary_name());
        let mut dir = tempfile::Builder::new()
            .prefix(&format!("pushrelay-{}-", kind.binary_name()))
            .tempdir()
            .expect("create a temporary directory for the receiver");
        if let Some(config) = config_yaml {
            fs::write(dir.path().join("prometheus.yml"), config).expect("write prometheus.yml");
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build an HTTP client");

        let mut last_failure = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let data = dir.path().join(format!("data-{attempt}"));
            let mut args = Self::args(kind, dir.path(), &data, port);
            args.extend(extra_args.iter().map(|a| a.to_string()));
            let stdout = File::create(dir.path().join("stdout.log")).expect("create stdout.log");
            let stderr = File::create(dir.path().join("stderr.log")).expect("create stderr.log");
            let child = Command::new(&binary)
                .args(&args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut receiver = Receiver {
                base_url: format!("http://127.0.0.1:{port}"),
                kind,
                port,
                child: ChildGuard(child),
                client: client.clone(),
                dir,
                args: args.clone(),
            };
            match receiver.wait_ready().await {
                Ok(()) => return receiver,
                Err(StartError::PortTaken) => {
                    last_failure = format!(
                        "port {port} was taken (attempt {attempt}); log tail:\n{}",
                        receiver.logs()
                    );
                    // Stop this child, keep the directory for the next attempt.
                    let Receiver { child, dir: d, .. } = receiver;
                    drop(child);
                    dir = d;
                }
                Err(StartError::Failed(why)) => panic!(
                    "{} did not start: {why}\ncommand: {} {}\nlog tail:\n{}",
                    kind.binary_name(),
                    binary.display(),
                    args.join(" "),
                    receiver.logs()
                ),
            }
        }
        panic!(
            "{} did not start after {START_ATTEMPTS} attempts: {last_failure}",
            kind.binary_name()
        );
    }

    async fn wait_ready(&mut self) -> Result<(), StartError> {
        let url = format!("{}{}", self.base_url, self.kind.ready_path());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("poll the receiver process") {
                return Err(if self.logs().contains("address already in use") {
                    StartError::PortTaken
                } else {
                    StartError::Failed(format!("exited early with {status}"))
                });
            }
            let ready = matches!(
                self.client.get(&url).timeout(Duration::from_secs(2)).send().await,
                Ok(resp) if resp.status().is_success()
            );
            if ready {
                // Someone else may have answered on that port: make sure it is our child.
                return if listens_on(self.child.0.id(), self.port) {
                    Ok(())
                } else {
                    Err(StartError::PortTaken)
                };
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "{url} not ready within {READY_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The receiver's temporary directory (holds `stdout.log`, `stderr.log` and the data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id of the receiver.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Stops the receiver as an outage would, keeping its port and data directory for
    /// [`Receiver::restart`]: SIGTERM (so a TSDB persists what it acknowledged), then SIGKILL if
    /// it has not exited within [`STOP_TIMEOUT`]. Returns once the process is gone.
    ///
    /// Panics if the process had already exited: a receiver dying by itself is a test failure.
    pub async fn stop(&mut self) {
        if let Some(status) = self.child.0.try_wait().expect("poll the receiver process") {
            panic!(
                "{} had already exited ({status}) when asked to stop\nlog tail:\n{}",
                self.kind.binary_name(),
                self.logs()
            );
        }
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill -TERM {pid}`: {e}"));
        assert!(sent.success(), "`kill -TERM {pid}` failed: {sent}");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self
            .child
            .0
            .try_wait()
            .expect("poll the receiver process")
            .is_none()
        {
            if Instant::now() >= deadline {
                // Stuck on shutdown: an outage all the same.
                let _ = self.child.0.kill();
                let _ = self.child.0.wait();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a receiver stopped by [`Receiver::stop`] again with the same command line: same
    /// port, same data directory, so what it had stored is still there. Its logs are appended to.
    /// Retries for a while if the port is briefly held by someone else; panics if it cannot
    /// start or if the receiver is still running.
    pub async fn restart(&mut self) {
        if self
            .child
            .0
            .try_wait()
            .expect("poll the receiver process")
            .is_none()
        {
            panic!(
                "{} is still running: stop it before restarting it",
                self.kind.binary_name()
            );
        }
        let binary = binary_path(self.kind.binary_name());
        let dir = self.dir.path().to_path_buf();
        let append = |name: &str| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .unwrap_or_else(|e| panic!("open {name} for appending: {e}"))
        };
        let mut last_failure = String::new();
        for attempt in 1..=RESTART_ATTEMPTS {
            let mut stderr = append("stderr.log");
            let _ = writeln!(stderr, "--- restart, attempt {attempt} ---");
            let child = Command::new(&binary)
                .args(&self.args)
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(append("stdout.log"))
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            // The previous process was reaped by `stop`: dropping its guard does nothing more.
            self.child = ChildGuard(child);
            match self.wait_ready().await {
                Ok(()) => return,
                Err(StartError::PortTaken) => {
                    last_failure = format!(
                        "port {} was taken (attempt {attempt}); log tail:\n{}",
                        self.port,
                        self.logs()
                    );
                    let _ = self.child.0.kill();
                    let _ = self.child.0.wait();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(StartError::Failed(why)) => panic!(
                    "{} did not restart: {why}\ncommand: {} {}\nlog tail:\n{}",
                    self.kind.binary_name(),
                    binary.display(),
                    self.args.join(" "),
                    self.logs()
                ),
            }
        }
        panic!(
            "{} did not restart on port {} after {RESTART_ATTEMPTS} attempts: {last_failure}",
            self.kind.binary_name(),
            self.port
        );
    }

    /// The last few KiB of the receiver's stderr and stdout, for assertion messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "stdout.log"] {
            let tail = file_tail(&self.dir.path().join(name), LOG_TAIL_BYTES);
            if !tail.trim().is_empty() {
                out.push_str(&format!("--- {name} ---\n{tail}\n"));
            }
        }
        out
    }

    /// Remote-write endpoint (Prometheus and VictoriaMetrics: `/api/v1/write`).
    pub fn remote_write_url(&self) -> String {
        assert!(
            self.kind.is_tsdb(),
            "{:?} has no remote-write endpoint",
            self.kind
        );
        format!("{}/api/v1/write", self.base_url)
    }

    /// Makes VictoriaMetrics' freshly ingested samples searchable (`/internal/force_flush`).
    /// Does nothing for the other receivers, whose writes are visible at once.
    pub async fn flush(&self) {
        if self.kind == Kind::VictoriaMetrics {
            self.get_text("/internal/force_flush", &[]).await;
        }
    }

    /// Instant query at `time_secs` (seconds since the epoch); returns `data.result`.
    pub async fn query(&self, promql: &str, time_secs: f64) -> Value {
        self.api_data(
            "/api/v1/query",
            &[("query", promql.to_string()), ("time", secs(time_secs))],
        )
        .await["result"]
            .take()
    }

    /// Range query from `start` to `end` (seconds since the epoch) every `step` seconds;
    /// returns `data.result`.
    pub async fn query_range(&self, promql: &str, start: f64, end: f64, step: f64) -> Value {
        self.api_data(
            "/api/v1/query_range",
            &[
                ("query", promql.to_string()),
                ("start", secs(start)),
                ("end", secs(end)),
                ("step", secs(step)),
            ],
        )
        .await["result"]
            .take()
    }

    /// Series matching a selector, from the epoch to now; returns `data` (an array of label sets).
    ///
    /// No `end` is sent: VictoriaMetrics 1.145 answers an empty list when `end` is in the future.
    pub async fn series(&self, match_: &str) -> Value {
        self.api_data(
            "/api/v1/series",
            &[("match[]", match_.to_string()), ("start", "0".to_string())],
        )
        .await
    }

    /// VictoriaMetrics only: `/api/v1/export` for a selector, over all time, one JSON object per
    /// series: `{"metric":{...},"values":[...],"timestamps":[ms...]}` with exact values.
    pub async fn export_raw(&self, match_: &str) -> Vec<Value> {
        assert_eq!(
            self.kind,
            Kind::VictoriaMetrics,
            "export_raw is a VictoriaMetrics API"
        );
        self.flush().await;
        let text = self
            .get_text(
                "/api/v1/export",
                &[("match[]", match_.to_string()), ("start", "0".to_string())],
            )
            .await;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("bad export line {l:?} from VictoriaMetrics: {e}"))
            })
            .collect()
    }

    /// Pushgateway only: its `/metrics` page (text exposition format).
    pub async fn pushgateway_metrics_text(&self) -> String {
        assert_eq!(self.kind, Kind::Pushgateway, "not a Pushgateway");
        self.get_text("/metrics", &[]).await
    }

    /// Pushgateway only: `/api/v1/metrics` (`data`: one entry per group, with its labels, metric
    /// families and `push_time_seconds`).
    pub async fn pushgateway_groups(&self) -> Value {
        assert_eq!(self.kind, Kind::Pushgateway, "not a Pushgateway");
        let body = self.get_text("/api/v1/metrics", &[]).await;
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("Pushgateway /api/v1/metrics is not JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "Pushgateway answered {body}");
        v["data"].clone()
    }

    /// GET on a Prometheus-style API path of a TSDB receiver, returning `data`; flushes
    /// VictoriaMetrics first.
    async fn api_data(&self, path: &str, params: &[(&str, String)]) -> Value {
        assert!(self.kind.is_tsdb(), "{:?} has no query API", self.kind);
        self.flush().await;
        let body = self.get_text(path, params).await;
        let mut v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "{path} {params:?} answered {body}");
        v["data"].take()
    }

    /// GET returning the body; panics with the body on a non-2xx answer.
    async fn get_text(&self, path: &str, params: &[(&str, String)]) -> String {
        let url = format!("{}{path}", self.base_url);
        let resp = self
            .client
            .get(&url)
            .query(params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}\nlog tail:\n{}", self.logs()));
        let status = resp.status();
        let body = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"));
        assert!(
            status.is_success(),
            "GET {url} {params:?} answered {status}: {body}"
        );
        body
    }
}

/// Polls `f` every 100 ms until it returns `Some`, and returns that; panics after `timeout`.
pub async fn wait_for<F, Fut, T>(timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("wait_for: condition still not met after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds for a query parameter, with millisecond precision.
fn secs(t: f64) -> String {
    format!("{t:.3}")
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux `/proc`; true
/// where that cannot be read).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let local = format!("0100007F:{port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // f[1] local address, f[3] state (0A = LISTEN), f[9] inode
        (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9].to_string())
    });
    let Some(inode) = inode else {
        return false;
    };
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return true;
    };
    let wanted = format!("socket:[{inode}]");
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str())
    })
}

/// Last `max` bytes of a file, lossily decoded (empty when unreadable).
fn file_tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
