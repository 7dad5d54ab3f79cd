//! `examples/grafana/{ttn,emqx,relay}.json` against a real Prometheus fed by pushrelay: each
//! dashboard imports as it is (the `DS_PROMETHEUS` input), and every panel and annotation
//! query, with Grafana's variables filled in, returns data after the relay pushed a short
//! history from a simulator (The Things Stack, EMQX) or its own self-metrics (sinks that
//! deliver, refuse and cannot connect; a reload).

use crate::support;
use crate::support::now;

use std::time::Duration;

use pushrelay::sim::emqx::{EmqxSim, SimClient};
use pushrelay::sim::ttn::TtnSim;
use support::daemon::RelayProcess;
use support::fakes::{start_relay, Exporter};
use support::grafana;
use support::receivers::{wait_for, Receiver};
use tokio_util::sync::CancellationToken;

/// Starts a relay pushing `source` (polled every second, its self-metrics too) to `prom`;
/// returns its state directory, when it started, and its token and task.
fn start_pushing(
    source: &str,
    prom: &Receiver,
) -> (
    tempfile::TempDir,
    f64,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[relay]\ninterval = \"1s\"\nshutdown_timeout = \"5s\"\nstate_dir = \"{}\"\n\n{source}\ninterval = \"1s\"\n\n\
         [[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{}\"\nbatch_wait = \"200ms\"\n",
        dir.path().join("state").display(),
        prom.remote_write_url()
    );
    let start = now() - 1.0;
    let (cancel, h, _) = start_relay(&cfg);
    (dir, start, cancel, h)
}

/// `examples/grafana/<name>.json`, checked to import as it is and to hold a real dashboard.
fn dashboard(name: &str) -> serde_json::Value {
    let d = grafana::load(name);
    grafana::assert_uses_ds_prometheus_input(&d);
    let n = grafana::all_exprs(&d).len();
    assert!(n >= 15, "{name}: only {n} queries");
    d
}

/// Waits until Prometheus answers `q` with at least `n`.
async fn until_at_least(prom: &Receiver, q: &str, n: f64) {
    wait_for(Duration::from_secs(30), || async {
        let r = prom.query(q, now()).await;
        let v: f64 = r[0]["value"][1].as_str()?.parse().ok()?;
        (v >= n).then_some(())
    })
    .await
}

/// Once `seen` (the last event of a test's history) is in Prometheus and the batches after it
/// landed: every query of `d` returns data since `start`, and a `job` variable in `vars` lists
/// that job.
async fn check_after(
    prom: &Receiver,
    d: &serde_json::Value,
    seen: &str,
    vars: &[(&str, &str)],
    start: f64,
) {
    until_at_least(prom, seen, 1.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    grafana::assert_every_query_returns_data(prom, d, vars, start, now()).await;
    if let Some((_, job)) = vars.iter().find(|(k, _)| *k == "job") {
        grafana::assert_variable_lists(prom, d, "job", job).await;
    }
}

#[tokio::test]
async fn ttn_dashboard_queries_return_data_from_a_real_prometheus() {
    const KEY: &str = "NNSXS.DASHBOARD.SECRETPARTDONOTLOG";
    let d = dashboard("ttn");

    let prom = Receiver::prometheus().await;
    let cancel = CancellationToken::new();
    let sim = TtnSim::start(cancel.clone(), KEY, TtnSim::fleet("d-"))
        .await
        .unwrap();
    let source = format!(
        "[[source]]\ntype = \"ttn\"\nname = \"ttn\"\nurl = \"{}\"\napi_key = \"{KEY}\"",
        sim.url
    );
    let (_dir, start, relay, h) = start_pushing(&source, &prom);
    until_at_least(&prom, "count(ttn_gateway_connected)", 3.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A reconnect, for the annotation.
    sim.with(|s| s.gateway("d-healthy").reconnect());
    let seen =
        "changes(ttn_gateway_connected_since_timestamp_seconds{gateway_id=\"d-healthy\"}[1m])";
    let vars = [("job", "ttn"), ("gateway", ".+")];
    check_after(&prom, &d, seen, &vars, start).await;
    relay.cancel();
    h.await.unwrap().unwrap();
    cancel.cancel();
}

#[tokio::test]
async fn emqx_dashboard_queries_return_data_from_a_real_prometheus() {
    let d = dashboard("emqx");

    let prom = Receiver::prometheus().await;
    let sim = EmqxSim::start("key", "s3cret-value").await.unwrap();
    sim.add(SimClient::new("sensor-1").publishing(5).receiving(2));
    sim.add(SimClient::new("sensor-2").publishing(1).dropping(1));
    let source = format!(
        "[[source]]\ntype = \"emqx\"\nname = \"emqx\"\nurl = \"{}\"\napi_key = \"key\"\napi_secret = \"s3cret-value\"",
        sim.url
    );
    let (_dir, start, relay, h) = start_pushing(&source, &prom);
    for i in 0..8 {
        sim.tick();
        if i == 4 {
            sim.reconnect("sensor-2");
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let seen = "emqx_client_monitor_reconnects_total{client_id=\"sensor-2\"}";
    let vars = [("job", "emqx"), ("client", ".+")];
    check_after(&prom, &d, seen, &vars, start).await;
    relay.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn relay_dashboard_queries_return_data_from_a_real_prometheus() {
    let d = dashboard("relay");

    let prom = Receiver::prometheus().await;
    let exporter = Exporter::start("# TYPE temp gauge\ntemp 21.5\n").await;
    let mut relay = RelayProcess::new("dash-relay");
    // Three sinks: one delivering (it carries the self-metrics), one refused for good (404: the
    // samples are dropped as rejected), one that cannot connect (retries, a growing queue).
    let closed = support::free_port();
    relay.write_config(&format!(
        "[relay]\ninterval = \"1s\"\nshutdown_timeout = \"2s\"\nstate_dir = \"{state}\"\nlisten = \"{listen}\"\n\n\
         [[source]]\ntype = \"scrape\"\nname = \"node\"\nurl = \"{exp}\"\ninterval = \"1s\"\n\n\
         [[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{rw}\"\nbatch_wait = \"200ms\"\n\n\
         [[sink]]\ntype = \"remote_write\"\nname = \"wrong-path\"\nurl = \"{wrong}\"\nbatch_wait = \"200ms\"\n\n\
         [[sink]]\ntype = \"remote_write\"\nname = \"offline\"\nurl = \"http://127.0.0.1:{closed}/api/v1/write\"\nbatch_wait = \"200ms\"\n",
        state = relay.state().display(),
        listen = relay.listen,
        exp = exporter.url,
        rw = prom.remote_write_url(),
        wrong = prom.remote_write_url().replace("/api/v1/write", "/api/v1/nowhere"),
    ));
    let start = now() - 1.0;
    relay.start().await;
    until_at_least(
        &prom,
        "sum(pushrelay_samples_dropped_total{sink=\"wrong-path\"})",
        1.0,
    )
    .await;
    until_at_least(&prom, "pushrelay_queue_samples{sink=\"offline\"}", 1.0).await;
    // A reload (the same config), for the annotation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    relay.signal("HUP");
    let seen = "changes(pushrelay_config_last_reload_success_timestamp_seconds[1m])";
    check_after(&prom, &d, seen, &[("instance", ".+")], start).await;
    relay.terminate().await;
}
