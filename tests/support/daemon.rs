//! `pushrelay run` as a child process (so a test can SIGTERM, SIGKILL or SIGHUP it): its own
//! temporary directory with the config file and `state/`, a `/metrics` address picked here, and
//! one log file per run. Killed when dropped; the tail of its logs is printed when a test fails.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pushrelay::model::Family;
use tempfile::TempDir;

/// How much of each run's log is shown when a test fails.
const LOG_TAIL: usize = 12_000;

pub struct RelayProcess {
    dir: TempDir,
    /// The config file every run reads (`write_config` replaces it).
    pub config: PathBuf,
    /// The `listen` address the config must use (`/metrics`), free when picked.
    pub listen: SocketAddr,
    child: Option<Child>,
    /// Runs started so far; run `n` logs to `run-<n>.log`.
    runs: usize,
    /// Extra arguments of every `run` (e.g. `--log-level debug`).
    args: Vec<String>,
    http: reqwest::Client,
}

impl RelayProcess {
    /// A relay not yet configured nor started; `prefix` names its temporary directory.
    pub fn new(prefix: &str) -> RelayProcess {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create a temporary directory for the relay");
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a port for /metrics");
        RelayProcess {
            config: dir.path().join("pushrelay.toml"),
            dir,
            listen,
            child: None,
            runs: 0,
            args: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .expect("build an HTTP client"),
        }
    }

    /// Every later run gets `args` after `run --config FILE`.
    pub fn with_args(mut self, args: &[&str]) -> RelayProcess {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The directory the config should name as `state_dir`.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces) the config file.
    pub fn write_config(&self, text: &str) {
        fs::write(&self.config, text).expect("write the relay's config");
    }

    pub fn runs(&self) -> usize {
        self.runs
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("run-{run}.log"))
    }

    /// Starts a run and waits until `/metrics` answers (15 s at most).
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the relay is already running");
        self.runs += 1;
        let log = File::create(self.log_path(self.runs)).expect("create the relay's log");
        let child = Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start the pushrelay binary");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.metrics_text().await.is_none() {
            if let Some(s) = self.child_mut().try_wait().expect("poll the relay") {
                panic!("the relay exited at start-up with {s}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the relay's /metrics did not answer within 15 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the relay is running")
    }

    pub fn pid(&mut self) -> String {
        self.child_mut().id().to_string()
    }

    /// Sends `kill -<sig>` to the running relay.
    pub fn signal(&mut self, sig: &str) {
        let pid = self.pid();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{sig} {pid} failed");
    }

    /// Waits for the relay to exit (30 s at most) and returns its status.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child_mut().try_wait().expect("poll the relay") {
                self.child = None;
                return s;
            }
            assert!(Instant::now() < deadline, "still running:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM; the exit status must be 0. Returns how long the exit took.
    pub async fn terminate(&mut self) -> Duration {
        let t0 = Instant::now();
        self.signal("TERM");
        let s = self.wait_exit().await;
        assert!(
            s.success(),
            "after SIGTERM the relay exited with {s}, not 0:\n{}",
            self.log()
        );
        t0.elapsed()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("the relay is running");
        c.kill().expect("SIGKILL the relay");
        c.wait().expect("reap the relay");
    }

    /// The log of run `run` (1-based).
    pub fn run_log(&self, run: usize) -> String {
        fs::read_to_string(self.log_path(run)).unwrap_or_default()
    }

    /// Every run's log, in order.
    pub fn log(&self) -> String {
        (1..=self.runs).map(|r| self.run_log(r)).collect()
    }

    /// Log lines containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// The relay's `/metrics`; `None` while it does not answer.
    pub async fn metrics_text(&self) -> Option<String> {
        let r = self
            .http
            .get(format!("http://{}/metrics", self.listen))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())?;
        r.text().await.ok()
    }

    /// `/metrics`, parsed; `None` while it does not answer.
    pub async fn families(&self) -> Option<Vec<Family>> {
        let text = self.metrics_text().await?;
        Some(pushrelay::expfmt::parse(&text).unwrap_or_else(|e| {
            panic!("the relay's /metrics is not valid text format ({e:?}):\n{text}")
        }))
    }

    /// The value of `name{labels…}` on `/metrics` (no label is implied).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let fams = self.families().await?;
        fams.iter()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value)
    }

    /// Waits (`patience` at most) until `name{labels}` satisfies `ok`.
    pub async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        patience: Duration,
        ok: impl Fn(f64) -> bool,
    ) {
        let deadline = Instant::now() + patience;
        loop {
            if self.metric(name, labels).await.is_some_and(&ok) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} never got there (now {:?}):\n{}",
                self.metric(name, labels).await,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Samples dropped by `sink`, by reason (the non-zero ones), as `reason=value`.
    pub async fn drops(&self, sink: &str) -> Vec<String> {
        self.families()
            .await
            .expect("the relay's /metrics answers")
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| {
                s.name == "pushrelay_samples_dropped_total"
                    && s.labels.get("sink") == Some(sink)
                    && s.value != 0.0
            })
            .map(|s| format!("{}={}", s.labels.get("reason").unwrap_or("?"), s.value))
            .collect()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for run in 1..=self.runs {
                // The HTTP client's connection pool chatter says nothing about the relay.
                let log: String = self
                    .run_log(run)
                    .lines()
                    .filter(|l| {
                        !(l.contains(" DEBUG ")
                            && [" idle connection for ", " connecting to ", " connected to "]
                                .iter()
                                .any(|c| l.contains(c)))
                    })
                    .map(|l| format!("{l}\n"))
                    .collect();
                let mut from = log.len().saturating_sub(LOG_TAIL);
                while !log.is_char_boundary(from) {
                    from += 1;
                }
                eprintln!("----- relay run {run} log (tail) -----\n{}", &log[from..]);
            }
        }
    }
}
