//! Shared helpers for the integration tests (`mod support;` in tests/main.rs and in
//! tests/release_binary.rs): receivers, fakes, mosquitto, and the small helpers below.
//!
//! release_binary uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod daemon;
pub mod fakes;
pub mod grafana;
pub mod mosquitto;
pub mod promtool;
pub mod receivers;

/// Wall-clock seconds since the Unix epoch (what Prometheus's query API speaks).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// Wall-clock milliseconds since the Unix epoch (what sample timestamps are).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The virtualenv with emqx-client-monitor 0.3.1 (`scripts/fetch-emqx-client-monitor.sh`;
/// `PUSHRELAY_EMQX_MONITOR_VENV` overrides it).
pub fn emqx_client_monitor_venv() -> PathBuf {
    std::env::var_os("PUSHRELAY_EMQX_MONITOR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".receivers/venv-emqx-client-monitor")
        })
}

/// Writes `text` as `pushrelay.toml` in `dir` and returns its path.
pub fn write_config(dir: impl AsRef<Path>, text: &str) -> PathBuf {
    let p = dir.as_ref().join("pushrelay.toml");
    std::fs::write(&p, text).expect("the config file is written");
    p
}

/// Captures this thread's log lines (the tests run on a current-thread runtime) until the
/// guard is dropped; `logs` reads them.
pub fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct W(Arc<Mutex<Vec<u8>>>);
    impl Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let w = W(buf.clone());
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (buf, tracing::subscriber::set_default(sub))
}

pub fn logs(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).to_string()
}

/// One memory figure of a running process from `/proc/<pid>/status` (`"VmRSS:"`, `"VmHWM:"`), in
/// MiB; 0 when the field is missing.
pub fn proc_status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}
