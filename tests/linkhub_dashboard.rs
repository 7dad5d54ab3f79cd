//! `examples/grafana/linkhub.json` against a real Prometheus fed by pushrelay's linkhub source:
//! every panel query and annotation query in the dashboard is run (with Grafana's variables
//! replaced by concrete values) and must return data; the template variable must list the
//! router; the signal panels must colour the quality bands from upstream-apis.md.

use crate::support;
use crate::support::now;

use std::time::Duration;

use pushrelay::sim::linkhub::{Auth, Router};
use serde_json::Value;
use support::fakes::start_relay;
use support::grafana;
use support::receivers::{wait_for, Receiver};

const KEY: &str = "dashboard-test-key";

fn dashboard() -> Value {
    grafana::load("linkhub")
}

fn polls(router: &Router) -> u64 {
    router.requests("GetNetworkInfo")
}

/// Waits until the router has answered `n` polls.
async fn after(router: &Router, n: u64) {
    wait_for(Duration::from_secs(20), || async {
        (polls(router) >= n).then_some(())
    })
    .await
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let d = dashboard();
    grafana::assert_uses_ds_prometheus_input(&d);
    let mut found = Vec::new();
    grafana::exprs(&d, "", &mut found);
    assert!(found.len() >= 20, "only {} queries found", found.len());
    let annotations = found
        .iter()
        .filter(|(at, _)| at.ends_with("/Cell change"))
        .count();
    assert_eq!(annotations, 1, "the cell-change annotation is missing");

    let prom = Receiver::prometheus().await;
    let router = Router::start(Auth::Hh41 { key: KEY.into() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[relay]\ninterval = \"1s\"\nshutdown_timeout = \"5s\"\nstate_dir = \"{}\"\n\n\
         [[source]]\ntype = \"linkhub\"\nname = \"router\"\nurl = \"{}\"\nrequest_key = \"{KEY}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\n\
         [[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{}\"\nbatch_wait = \"200ms\"\n",
        dir.path().join("state").display(),
        router.url,
        prom.remote_write_url()
    );
    let start = now() - 1.0;
    let (cancel, h, _) = start_relay(&cfg);
    // A history worth a dashboard: signal moving, a handover, a no-service gap, usage growing.
    after(&router, 2).await;
    for step in 0..6 {
        router.with(|s| {
            s.advance(60);
            match step {
                1 => s.hop_cell(),
                3 => s.no_service = true,
                4 => s.no_service = false,
                _ => {}
            }
        });
        after(&router, polls(&router) + 1).await;
    }
    after(&router, polls(&router) + 2).await;
    // Let the last batch land.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let end = now();

    grafana::assert_every_query_returns_data(&prom, &d, &[("job", "router")], start, end).await;
    grafana::assert_variable_lists(&prom, &d, "job", "router").await;

    cancel.cancel();
    h.await.unwrap().unwrap();
}

#[test]
fn signal_panels_colour_the_quality_bands() {
    let d = dashboard();
    // (metric, band floors from poor up to excellent) as in upstream-apis.md §3.
    let bands = [
        ("linkhub_sinr_db", [0.0, 13.0, 20.0]),
        ("linkhub_rsrp_dbm", [-100.0, -90.0, -80.0]),
        ("linkhub_rsrq_db", [-20.0, -15.0, -10.0]),
        ("linkhub_rssi_dbm", [-85.0, -75.0, -65.0]),
    ];
    for (metric, floors) in bands {
        let panels: Vec<&Value> = d["panels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["targets"][0]["expr"]
                    .as_str()
                    .is_some_and(|e| e.starts_with(metric))
            })
            .collect();
        assert!(panels.len() >= 2, "{metric}: a gauge and a graph");
        for p in panels {
            let steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{metric}: no thresholds in {}", p["title"]));
            let colours: Vec<&str> = steps.iter().map(|s| s["color"].as_str().unwrap()).collect();
            assert_eq!(
                colours,
                ["red", "orange", "yellow", "green"],
                "{}",
                p["title"]
            );
            assert!(steps[0]["value"].is_null());
            let values: Vec<f64> = steps[1..]
                .iter()
                .map(|s| s["value"].as_f64().unwrap())
                .collect();
            assert_eq!(values, floors, "{}", p["title"]);
        }
    }
}

/// Bytes on the wire per poll of one router (remote-write bodies, snappy-compressed protobuf,
/// without HTTP headers), sent once per poll and batched over 10 polls, into the built-in
/// receiver. Batching must cut the bytes per poll several times: that is the cheap default the
/// README recommends for 4G (`batch_wait = "60s"` with the 10 s poll).
#[tokio::test]
async fn batching_cuts_bytes_on_the_wire_per_poll() {
    use pushrelay::sim::receiver::{serve_receiver, Store};
    let router = Router::start(Auth::Hh41 { key: KEY.into() }).await.unwrap();
    let cancel_rx = tokio_util::sync::CancellationToken::new();
    let mut runs = Vec::new();
    for batch_wait in ["100ms", "10s"] {
        let store: Store = Default::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_receiver(l, cancel_rx.clone(), store.clone()));
        let dir = tempfile::tempdir().unwrap();
        // relay.interval is long so the relay's own metrics stay out of the measurement.
        let cfg = format!(
            "[relay]\ninterval = \"1h\"\nshutdown_timeout = \"5s\"\nstate_dir = \"{}\"\n\n\
             [[source]]\ntype = \"linkhub\"\nname = \"router\"\nurl = \"{}\"\nrequest_key = \"{KEY}\"\ninterval = \"1s\"\n\n\
             [[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"http://{addr}/api/v1/write\"\nbatch_wait = \"{batch_wait}\"\n",
            dir.path().join("state").display(),
            router.url,
        );
        let (cancel, h, _) = start_relay(&cfg);
        runs.push((batch_wait, store, cancel, h, dir));
    }
    // Ten polls, then shutdown seals what is left.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let mut per_poll = Vec::new();
    for (batch_wait, store, cancel, h, _dir) in runs {
        cancel.cancel();
        h.await.unwrap().unwrap();
        let r = store.lock().unwrap().clone();
        let polls = r
            .series
            .iter()
            .find(|(k, _)| k.starts_with("up{"))
            .map_or(0, |(_, v)| v.len());
        let samples: usize = r.series.values().map(|v| v.len()).sum();
        let b = r.remote_write_bytes as f64 / polls.max(1) as f64;
        eprintln!(
            "batch_wait {batch_wait}: {polls} polls, {samples} samples, {} requests, {} bytes, {b:.0} bytes per poll, {:.1} bytes per sample",
            r.remote_write_requests,
            r.remote_write_bytes,
            r.remote_write_bytes as f64 / samples.max(1) as f64
        );
        assert!(polls >= 8, "{polls} polls");
        per_poll.push(b);
    }
    assert!(
        per_poll[1] * 2.5 < per_poll[0],
        "batching saved too little: {per_poll:?}"
    );
}
