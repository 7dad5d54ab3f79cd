//! The shipped binary as a user runs it, against a real receiver: `--version`, and `once`
//! scraping a fixed exposition and pushing it to a real VictoriaMetrics, with the exact values
//! read back.
//!
//! By default it runs this build's `pushrelay`. `scripts/test-release.sh` runs it again on each
//! cross-built binary under emulation:
//!   PUSHRELAY_BIN      the binary to run
//!   PUSHRELAY_RUNNER   a command put before it, e.g. `.cross/qemu/usr/bin/qemu-aarch64-static`
//!   PUSHRELAY_TARGET   the target the binary was built for (required with PUSHRELAY_BIN)
//!
//! Needs `scripts/fetch-receivers.sh` to have been run.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::fakes::Exporter;
use support::receivers::{wait_for, Receiver};

/// The binary under test, the command to run it with, and the target it claims to be for.
fn binary() -> (Command, String) {
    let runner = std::env::var("PUSHRELAY_RUNNER").unwrap_or_default();
    let (bin, target) = match std::env::var_os("PUSHRELAY_BIN") {
        Some(bin) => {
            let target = std::env::var("PUSHRELAY_TARGET")
                .expect("PUSHRELAY_TARGET must name the target PUSHRELAY_BIN was built for");
            (PathBuf::from(bin), target)
        }
        None => (
            PathBuf::from(env!("CARGO_BIN_EXE_pushrelay")),
            pushrelay::build_info::TARGET.to_string(),
        ),
    };
    assert!(bin.is_file(), "no binary at {}", bin.display());
    let mut words = runner.split_whitespace();
    let cmd = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    (cmd, target)
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).env("NO_COLOR", "1");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn version_names_version_commit_target_and_features() {
    let (cmd, target) = binary();
    let out = run(cmd, &["--version"]);
    let line = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "pushrelay {} (commit {}, target {target}, features: sim)\n",
        env!("CARGO_PKG_VERSION"),
        pushrelay::build_info::COMMIT
    );
    assert_eq!(line, want);
}

const EXPOSITION: &str = "\
# HELP release_test_temperature_celsius A fixed reading.
# TYPE release_test_temperature_celsius gauge
release_test_temperature_celsius{room=\"attic\"} 21.5
release_test_temperature_celsius{room=\"cellar\"} -3.25
# HELP release_test_events_total A fixed count.
# TYPE release_test_events_total counter
release_test_events_total 42
";

#[tokio::test]
async fn once_pushes_exact_values_to_victoria_metrics() {
    let exporter = Exporter::start(EXPOSITION).await;
    let vm = Receiver::victoria_metrics().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pushrelay.toml");
    std::fs::write(
        &config,
        format!(
            r#"[relay]
state_dir = "{state}"

[[source]]
type = "scrape"
name = "release"
url = "{url}"

[[sink]]
type = "remote_write"
name = "vm"
url = "{write}"
"#,
            state = dir.path().join("state").display(),
            url = exporter.url,
            write = vm.remote_write_url(),
        ),
    )
    .unwrap();

    let (cmd, target) = binary();
    let config_arg = config.to_str().unwrap().to_string();
    // Under emulation a start takes seconds: run it off the async threads.
    tokio::task::spawn_blocking(move || run(cmd, &["once", "--config", &config_arg]))
        .await
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    let instance = exporter.addr.to_string();
    let read = |q: &'static str| {
        let vm = &vm;
        async move {
            vm.flush().await;
            let r = vm.query(q, now).await;
            let rows = r.as_array().cloned().unwrap_or_default();
            (!rows.is_empty()).then_some(rows)
        }
    };
    let temps = wait_for(Duration::from_secs(60), || {
        read("sort_by_label(release_test_temperature_celsius, \"room\")")
    })
    .await;
    assert_eq!(temps.len(), 2, "{temps:?}");
    for (row, (room, value)) in temps.iter().zip([("attic", "21.5"), ("cellar", "-3.25")]) {
        assert_eq!(row["metric"]["room"], room, "{row}");
        assert_eq!(row["metric"]["job"], "release", "{row}");
        assert_eq!(row["metric"]["instance"], instance.as_str(), "{row}");
        assert_eq!(row["value"][1], value, "{row}");
    }
    let events = wait_for(Duration::from_secs(60), || {
        read("release_test_events_total")
    })
    .await;
    assert_eq!(events[0]["value"][1], "42", "{events:?}");
    let up = wait_for(Duration::from_secs(60), || read("up{job=\"release\"}")).await;
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    // The relay's own build info arrives with the target the binary was built for.
    let build = wait_for(Duration::from_secs(60), || read("pushrelay_build_info")).await;
    assert_eq!(build[0]["metric"]["target"], target.as_str(), "{build:?}");
    assert_eq!(
        build[0]["metric"]["commit"],
        pushrelay::build_info::COMMIT,
        "{build:?}"
    );
    assert_eq!(build[0]["value"][1], "1", "{build:?}");
}
