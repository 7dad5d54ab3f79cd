//! The `pushrelay` binary as a user runs it: exit codes, error messages, redaction, `once`,
//! `print`, `check`, `demo`, a clean exit on SIGTERM, `/metrics`, and secrets that never reach logs.

use crate::support;
use crate::support::write_config;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::fakes::{Exporter, FaultProxy};
use support::receivers::{wait_for, Receiver};

const SECRET: &str = "hunter2-Sup3rSecret";
const TOKEN: &str = "glc_tokenTOKENtoken";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pushrelay"))
}

/// Runs the binary with the secret in the environment; returns its output.
fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .env("PR_TEST_PASSWORD", SECRET)
        .env("PR_TEST_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn cfg_with(source_url: &str, rw_url: &str) -> String {
    format!(
        r#"[relay]
interval = "1s"
shutdown_timeout = "2s"

[[source]]
type = "scrape"
name = "node"
url = "{source_url}"

[[sink]]
type = "remote_write"
name = "rw"
url = "{rw_url}"
basic_auth = {{ username = "123456", password = "${{PR_TEST_PASSWORD}}" }}
batch_wait = "200ms"
min_backoff = "50ms"
max_backoff = "200ms"

[[sink]]
type = "remote_write"
name = "rw2"
url = "{rw_url}"
bearer_token = "${{PR_TEST_TOKEN}}"
headers = {{ "X-Scope-OrgID" = "home" }}
batch_wait = "200ms"
min_backoff = "50ms"
max_backoff = "200ms"
"#
    )
}

#[test]
fn config_prints_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        &dir,
        &cfg_with(
            "http://127.0.0.1:9/metrics",
            "http://127.0.0.1:9/api/v1/write",
        ),
    );
    let o = run(&["config", "--config", p.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!out.contains(SECRET) && !out.contains(TOKEN), "{out}");
    assert!(out.contains("<redacted>"));
    assert!(
        out.contains("max_samples_per_send = 2000"),
        "defaults are shown: {out}"
    );
    assert!(out.contains("X-Scope-OrgID"));
}

#[test]
fn bad_configs_fail_at_startup_naming_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(&dir, "[relay]\ninterval = \"30s\"\n\n[[source]]\ntype = \"scrape\"\nname = \"n\"\nurl = \"http://x:1/m\"\ntimeout = 10\n");
    let o = run(&["run", "--config", p.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pushrelay.toml:8:11: source.timeout:"),
        "{err}"
    );

    let p = write_config(&dir, "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nbearer_token = \"${PR_TEST_UNSET_VARIABLE}\"\n");
    let o = run(&["check", "--config", p.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains(":5:17:") && err.contains("PR_TEST_UNSET_VARIABLE is not set"),
        "{err}"
    );

    let o = run(&["once", "--config", "/nonexistent/pushrelay.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o)
        .1
        .contains("/nonexistent/pushrelay.toml: cannot read"));
}

#[tokio::test]
async fn once_reports_one_line_per_failure_and_exits_non_zero() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        &dir,
        &cfg_with(
            &format!("http://{dead}/metrics"),
            &format!("http://{dead}/api/v1/write"),
        ),
    );
    let o = tokio::task::spawn_blocking(move || run(&["once", "--config", p.to_str().unwrap()]))
        .await
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let failed: Vec<&str> = err.lines().filter(|l| l.starts_with("failed: ")).collect();
    assert_eq!(failed.len(), 3, "{err}");
    assert!(
        failed[0].starts_with("failed: source node: request failed"),
        "{err}"
    );
    assert!(
        failed[1].starts_with("failed: sink rw: could not deliver"),
        "{err}"
    );
    assert!(!err.contains(SECRET) && !err.contains(TOKEN));
}

#[tokio::test]
async fn once_print_and_check_against_a_real_receiver() {
    let prom = Receiver::prometheus().await;
    let exporter =
        Exporter::start("# HELP temp Temperature.\n# TYPE temp gauge\ntemp{room=\"a\"} 21.5\n")
            .await;
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(&dir, &cfg_with(&exporter.url, &prom.remote_write_url()));
    let ps = p.to_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || run(&["once", "--config", &ps]))
        .await
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let ps = p.to_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || run(&["print", "--config", &ps]))
        .await
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let fams = pushrelay::expfmt::parse(&out).unwrap();
    let temp = fams.iter().find(|f| f.name == "temp").unwrap();
    assert_eq!(temp.samples[0].value, 21.5);
    assert_eq!(temp.samples[0].labels.get("job"), Some("node"));
    assert!(out.contains("# TYPE up gauge"));
    let ps = p.to_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || run(&["check", "--config", &ps]))
        .await
        .unwrap();
    let (out, _) = text(&o);
    assert!(out.starts_with("source node: up, 1 samples"), "{out}");
    assert!(
        out.contains("temp") && out.contains("room=\"a\"") && out.contains("21.5"),
        "{out}"
    );
    // `once` really pushed: Prometheus has the sample.
    let r = prom
        .query(
            "temp",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64(),
        )
        .await;
    assert_eq!(r[0]["value"][1], "21.5");
}

#[tokio::test]
async fn print_into_a_closed_pipe_exits_quietly() {
    let exporter = Exporter::start("# TYPE temp gauge\ntemp{room=\"a\"} 21.5\n").await;
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        &dir,
        &cfg_with(&exporter.url, "http://127.0.0.1:9/api/v1/write"),
    );
    let o = tokio::task::spawn_blocking(move || {
        let mut child = bin()
            .args(["print", "--config", p.to_str().unwrap()])
            .env("PR_TEST_PASSWORD", SECRET)
            .env("PR_TEST_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Like `pushrelay print | head -0`: the reader is gone before anything is written.
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let (_, err) = text(&o);
    assert!(o.status.success(), "{:?} {err}", o.status);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn demo_runs_by_itself_and_shows_what_arrived() {
    let o = bin()
        .args(["demo", "--cycles", "2", "--interval-secs", "1"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("remote-write: "), "{out}");
    assert!(out.contains("up{instance="), "{out}");
    assert!(out.contains("pushgateway: "), "{out}");
}

#[tokio::test]
async fn run_serves_metrics_and_exits_cleanly_on_sigterm_without_logging_secrets() {
    // A receiver that answers 401, refuses with 400 and fails with 500 before accepting, so every
    // error path logs (a 401 is retried: credentials are not the data's fault).
    let prom = Receiver::prometheus().await;
    let proxy = FaultProxy::start(&prom.base_url).await;
    let exporter = Exporter::start("x 1\n").await;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Pinned to 1.0 with snappy: the scripted 400 must meet the data, not a 2.0 probe.
    let cfg = cfg_with(&exporter.url, &format!("{}/api/v1/write", proxy.url))
        .replace(
            "batch_wait = \"200ms\"",
            "batch_wait = \"200ms\"\nprotocol = \"v1\"\ncompression = \"snappy\"",
        )
        .replace(
            "shutdown_timeout = \"2s\"",
            &format!(
                "shutdown_timeout = \"2s\"\nlisten = \"{listen}\"\nstate_dir = \"{}\"",
                dir.path().join("state").display()
            ),
        );
    let p = write_config(&dir, &cfg);
    for format in ["text", "json"] {
        proxy.fail_next(&[(401, "bad credentials"), (400, "bad data"), (500, "oops")]);
        let child = bin()
            .args([
                "run",
                "--config",
                p.to_str().unwrap(),
                "--log-level",
                "debug",
                "--log-format",
                format,
            ])
            .env("PR_TEST_PASSWORD", SECRET)
            .env("PR_TEST_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let body = wait_for(Duration::from_secs(20), || async {
            let r = reqwest::get(format!("http://{listen}/metrics"))
                .await
                .ok()?;
            let t = r.text().await.ok()?;
            // Self-metrics are served from the start; the source's series after its first poll.
            (t.contains("pushrelay_samples_sent_total{") && t.contains("x{instance=")).then_some(t)
        })
        .await;
        assert!(body.contains("x{instance="), "{body}");
        assert!(body.contains("pushrelay_build_info{"), "{body}");
        let h = reqwest::get(format!("http://{listen}/healthz"))
            .await
            .unwrap();
        assert_eq!(h.status(), 200);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let t0 = Instant::now();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "exit {:?}", out.status);
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "shutdown took {:?}",
            t0.elapsed()
        );
        let (o, e) = text(&out);
        for s in [SECRET, TOKEN] {
            assert!(!o.contains(s) && !e.contains(s), "secret in the logs:\n{e}");
        }
        assert!(e.contains("refused a batch"), "{e}");
        assert!(e.contains("offline"), "{e}");
        assert!(e.contains("HTTP 401"), "{e}");
        // Piped logs are plain text: no colour escape codes.
        assert!(!e.contains('\u{1b}'), "colour codes in piped logs:\n{e}");
    }
    // The credentials did reach the receiver, so the check above is not vacuous.
    let seen = proxy.seen();
    let auths: Vec<String> = seen
        .iter()
        .filter_map(|s| {
            s.headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert!(auths.iter().any(|a| a == &format!("Bearer {TOKEN}")));
    assert!(auths.iter().any(|a| a.starts_with("Basic ")));
    assert!(seen.iter().any(|s| s
        .headers
        .iter()
        .any(|(k, v)| k == "x-scope-orgid" && v == "home")));
}

#[tokio::test]
async fn demo_pushes_to_a_real_remote_write_url_and_fails_clearly_when_refused() {
    let prom = Receiver::prometheus().await;
    let url = prom.remote_write_url();
    let o = tokio::task::spawn_blocking(move || {
        bin()
            .args([
                "demo",
                "--cycles",
                "2",
                "--interval-secs",
                "1",
                "--remote-write-url",
                &url,
                "--basic-auth",
                "u:${PR_TEST_PASSWORD}",
            ])
            .env("PR_TEST_PASSWORD", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("the receiver accepted"), "{out}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let r = prom.query("up{job=\"demo-exporter\"}", now).await;
    assert_eq!(r[0]["value"][1], "1", "{r}");

    // A wrong path: Prometheus answers 404, the demo says so and exits 1.
    let bad = format!("{}/api/v1/nope", prom.base_url);
    let o = tokio::task::spawn_blocking(move || {
        bin()
            .args([
                "demo",
                "--cycles",
                "1",
                "--interval-secs",
                "1",
                "--remote-write-url",
                &bad,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("HTTP 404"), "{err}");
}

/// `check` says what each remote-write sink costs a day and a month: from the bytes the
/// running relay recorded in `state_dir` (the same it counts in `pushrelay_sent_bytes_total`
/// and `pushrelay_received_bytes_total`), or, before ten minutes of traffic, estimated from the
/// poll it just made.
#[tokio::test]
async fn check_estimates_the_data_plan_from_the_relays_record_or_this_poll() {
    let vm = Receiver::victoria_metrics().await;
    let exporter = Exporter::start("# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"2\"} 2\n").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = support::fakes::scrape_to_remote_write(
        &exporter.url,
        &format!("{}/api/v1/write", vm.base_url),
        &format!("state_dir = \"{}\"", state.display()),
        "",
    );
    let p = write_config(&dir, &cfg);
    let check = || async {
        let ps = p.to_str().unwrap().to_string();
        let out = tokio::task::spawn_blocking(move || run(&["check", "--config", &ps]))
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        text(&out).0
    };
    let o = check().await;
    let line = o
        .lines()
        .find(|l| l.starts_with("sink rw:"))
        .unwrap_or_else(|| panic!("{o}"));
    assert!(
        line.contains("no rate recorded yet") && line.contains("this poll's 5 samples"),
        "{line}"
    );
    assert!(
        line.contains(" a day, ") && line.contains(" a month"),
        "{line}"
    );

    let (cancel, h, metrics) = support::fakes::start_relay(&cfg);
    wait_for(Duration::from_secs(20), || async {
        (metrics.wire_bytes_total("rw").0 > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let file = state.join("rw").join("usage.json");
    let mut u: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let (sent, received) = metrics.wire_bytes_total("rw");
    assert_eq!(u["sent_bytes"], sent, "the record is the metric: {u}");
    assert_eq!(u["received_bytes"], received, "{u}");
    // The same bytes over two hours ending a minute ago: that rate, a day and 30 days.
    let now = support::now_ms();
    u["since_ms"] = (now - 2 * 3_600_000 - 60_000).into();
    u["until_ms"] = (now - 60_000).into();
    std::fs::write(&file, u.to_string()).unwrap();
    let o = check().await;
    let line = o
        .lines()
        .find(|l| l.starts_with("sink rw:"))
        .unwrap_or_else(|| panic!("{o}"));
    assert!(line.contains("in the 2h up to 1m"), "{line}");
    let per_day = (sent + received) * 12;
    let want = if per_day >= 1 << 20 {
        format!("{:.1} MiB a day", per_day as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB a day", per_day as f64 / 1024.0)
    };
    assert!(line.contains(&format!("about {want}")), "{want}: {line}");
}
