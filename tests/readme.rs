//! The README's walkthroughs, followed command by command: every `<!-- walkthrough: NAME -->`
//! block is run as written by bash in a fresh directory, with `pushrelay` on the PATH. Only
//! what cannot be reached from a test changes: the cloud hosts become local stand-ins (the
//! simulated TTN stack, EMQX and LinkHub router, a real Prometheus and Pushgateway), the lines
//! marked `# yours` get the stand-ins' credentials, and the `listen` port is a free one. Each
//! test then asks the receiver for what the walkthrough promised.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::free_port;
use crate::support::receivers::{wait_for, Receiver};
use pushrelay::sim::emqx::{EmqxSim, SimClient};
use pushrelay::sim::linkhub::{Auth, Router};
use pushrelay::sim::ttn::TtnSim;
use tokio_util::sync::CancellationToken;

const GRAFANA_URL: &str = "https://prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom/push";

/// The walkthrough blocks of the README, by name.
fn walkthrough(name: &str) -> String {
    let readme = include_str!("../README.md");
    let marker = format!("<!-- walkthrough: {name} -->\n```sh\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("the README has no walkthrough block {name:?}"))
        + marker.len();
    let len = readme[start..].find("\n```").expect("the block is closed");
    readme[start..start + len].to_string()
}

#[test]
fn every_walkthrough_block_is_run_here() {
    let readme = include_str!("../README.md");
    let tested = [
        "ttn-grafana",
        "emqx-pushgateway",
        "linkhub-metered",
        "service",
    ];
    for line in readme.lines() {
        if let Some(name) = line
            .strip_prefix("<!-- walkthrough: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            assert!(
                tested.contains(&name),
                "README walkthrough {name:?} is run by no test in tests/readme.rs"
            );
        }
    }
}

/// `block` with the `export VAR=… # yours` lines given `secrets`, and `swaps` applied.
fn localised(block: &str, secrets: &[(&str, &str)], swaps: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for line in block.lines() {
        let mine = line.trim_end().ends_with("# yours");
        let var = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .map(|(v, _)| v);
        match (mine, var) {
            (true, Some(var)) => {
                let (_, value) = secrets
                    .iter()
                    .find(|(v, _)| *v == var)
                    .unwrap_or_else(|| panic!("no stand-in value for {var}"));
                out.push_str(&format!("export {var}='{value}'\n"));
            }
            (true, None) => panic!("a `# yours` line that is no export: {line}"),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (from, to) in swaps {
        assert!(out.contains(from), "the walkthrough no longer names {from}");
        out = out.replace(from, to);
    }
    out
}

/// Runs `script` with bash (`-euo pipefail`, as a careful reader would) in `dir`.
async fn run(script: &str, dir: &Path) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_pushrelay"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -euo pipefail\n{script}");
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("PATH", path)
            .env_remove("PUSHRELAY_CONFIG")
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits until Prometheus answers `promql` with at least one series.
async fn has_series(prom: &Receiver, promql: &str) {
    let found = tokio::time::timeout(
        Duration::from_secs(20),
        wait_for(Duration::from_secs(30), || async {
            prom.flush().await;
            let v = prom.query(promql, crate::support::now()).await;
            let n = v.as_array().map_or(0, |a| a.len());
            (n > 0).then_some(())
        }),
    )
    .await;
    if found.is_err() {
        let all = prom
            .query(
                "count by (__name__, job) ({__name__=~\".+\"})",
                crate::support::now(),
            )
            .await;
        panic!("Prometheus has no {promql}; it has {all}");
    }
}

#[tokio::test]
async fn ttn_to_grafana_cloud_then_as_a_service() {
    let key = "NNSXS.README.WALKTHROUGH";
    let cancel = CancellationToken::new();
    let sim = TtnSim::start(cancel.clone(), key, TtnSim::fleet("readme-"))
        .await
        .unwrap();
    let prom = Receiver::prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let rw = prom.remote_write_url();
    let script = localised(
        &walkthrough("ttn-grafana"),
        &[("TTN_API_KEY", key), ("GRAFANA_TOKEN", "glc_readme")],
        &[
            ("https://eu1.cloud.thethings.network", &sim.url),
            (GRAFANA_URL, &rw),
        ],
    );
    // "Running as a service" continues in the same shell, from this walkthrough's pushrelay.toml.
    let port = free_port().to_string();
    let service = localised(&walkthrough("service"), &[], &[("9184", &port)]);
    let o = run(
        &format!("{script}\necho '--- service'\n{service}"),
        dir.path(),
    )
    .await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("<redacted>"),
        "config shows secrets redacted: {out}"
    );
    assert!(!out.contains(key), "the key is never printed: {out}");
    assert!(out.contains("ok:"), "once says it pushed: {out}");
    has_series(&prom, r#"ttn_gateway_connected{job="ttn"}"#).await;
    let service_out = out
        .split("--- service")
        .nth(1)
        .expect("the service part ran");
    assert!(service_out.contains("ok"), "/-/healthy answers ok: {out}");
    assert!(
        out.contains("reload"),
        "the daemon logs the reload it was asked for: {out}"
    );
    let page = std::fs::read_to_string(dir.path().join("status.html")).unwrap();
    assert!(page.contains("ttn") && page.contains("grafana"), "{page}");
    cancel.cancel();
}

#[tokio::test]
async fn emqx_to_a_pushgateway() {
    let sim = EmqxSim::start("readme-key", "readme-secret").await.unwrap();
    sim.add(SimClient::new("kitchen-sensor").publishing(2));
    sim.tick();
    let pgw = Receiver::pushgateway().await;
    let dir = tempfile::tempdir().unwrap();
    let script = localised(
        &walkthrough("emqx-pushgateway"),
        &[
            ("EMQX_API_KEY", "readme-key"),
            ("EMQX_API_SECRET", "readme-secret"),
        ],
        &[
            ("http://emqx.lan:18083", &sim.url),
            ("http://pushgateway.lan:9091", &pgw.base_url),
        ],
    );
    let o = run(&script, dir.path()).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("Kitchen"),
        "check shows the monitored client: {out}"
    );
    let metrics = pgw.pushgateway_metrics_text().await;
    assert!(
        metrics.contains(r#"job="emqx""#) && metrics.contains("kitchen-sensor"),
        "{metrics}"
    );
}

#[tokio::test]
async fn linkhub_on_a_metered_link() {
    let key = "readme-request-key";
    let router = Router::start(Auth::Hh41 { key: key.into() }).await.unwrap();
    let prom = Receiver::prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let rw = prom.remote_write_url();
    let script = localised(
        &walkthrough("linkhub-metered"),
        &[
            ("LINKHUB_REQUEST_KEY", key),
            ("GRAFANA_TOKEN", "glc_readme"),
        ],
        &[("http://192.168.1.1", &router.url), (GRAFANA_URL, &rw)],
    );
    let o = run(&script, dir.path()).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        !out.contains(key),
        "the request key is never printed: {out}"
    );
    has_series(&prom, r#"linkhub_rsrp_dbm{job="router"}"#).await;
}
