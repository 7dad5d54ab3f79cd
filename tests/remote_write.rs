//! Remote-write 1.0 against real receivers: Prometheus 3.5 and VictoriaMetrics started by the
//! test. Proves exact values, labels and timestamps arrive, stale markers work, broken targets
//! report `up 0`, 5xx is retried without loss and a 400 batch is never resent.

use crate::support;
use crate::support::now;

use std::time::Duration;

use serde_json::Value;
use support::fakes::{start_relay, Exporter, FaultProxy};
use support::receivers::{wait_for, Receiver};

fn config(source_url: &str, rw_url: &str) -> String {
    support::fakes::scrape_to_remote_write(
        source_url,
        rw_url,
        r#"external_labels = { site = "home" }"#,
        "",
    )
}

/// The first result's `metric` labels and value, when the query returned something.
fn first(v: &Value) -> Option<(Value, String)> {
    let r = v.as_array()?.first()?;
    Some((r["metric"].clone(), r["value"][1].as_str()?.to_string()))
}

#[tokio::test]
async fn prometheus_gets_exact_values_labels_and_timestamps() {
    let prom = Receiver::prometheus().await;
    let ts_ms = (now() as i64 - 30) * 1000 + 123;
    let exporter = Exporter::start(&format!(
        "# TYPE room_temp gauge\nroom_temp{{room=\"a b\",job=\"orig\",quote=\"say \\\"hi\\\"\"}} 21.5\n\
         # TYPE precise gauge\nprecise 0.30000000000000004\n\
         explicit_ts 7 {ts_ms}\n\
         # TYPE big counter\nbig 1.8446744073709552e+19\nminus_inf -Inf\n"
    ))
    .await;
    let (cancel, h, _) = start_relay(&config(&exporter.url, &prom.remote_write_url()));

    let (metric, value) = wait_for(Duration::from_secs(30), || async {
        first(&prom.query("room_temp", now()).await)
    })
    .await;
    assert_eq!(value, "21.5");
    let instance = exporter.addr.to_string();
    assert_eq!(
        metric,
        serde_json::json!({
            "__name__": "room_temp", "room": "a b", "quote": "say \"hi\"", "exported_job": "orig",
            "job": "node", "instance": instance, "site": "home"
        })
    );
    assert_eq!(
        first(&prom.query("precise", now()).await).unwrap().1,
        "0.30000000000000004"
    );
    assert_eq!(
        first(&prom.query("big", now()).await).unwrap().1,
        "18446744073709552000"
    );
    assert_eq!(
        first(&prom.query("minus_inf", now()).await).unwrap().1,
        "-Inf"
    );

    // A sample with its own timestamp arrives with exactly that timestamp.
    let raw = prom.query("explicit_ts[10m]", now()).await;
    let values = raw[0]["values"].as_array().unwrap();
    assert_eq!(values[0][0].as_f64().unwrap(), ts_ms as f64 / 1000.0);
    assert_eq!(values[0][1], "7");

    // Scraped samples carry the scrape's time, one per poll, in order.
    let raw = prom.query("up{job=\"node\"}[1m]", now()).await;
    let times: Vec<f64> = raw[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    assert!(times.iter().all(|t| (now() - t).abs() < 60.0), "{times:?}");
    cancel.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn stale_markers_make_prometheus_see_series_stale() {
    let prom = Receiver::prometheus().await;
    let exporter = Exporter::start("keep 1\nvanish 2\n").await;
    let (cancel, h, _) = start_relay(&config(&exporter.url, &prom.remote_write_url()));
    wait_for(Duration::from_secs(30), || async {
        first(&prom.query("vanish", now()).await)
    })
    .await;

    // The series vanishes from the target: without a stale marker Prometheus would keep
    // returning it for the 5-minute lookback; with one it is gone at once.
    exporter.set_body("keep 1\n");
    wait_for(Duration::from_secs(15), || async {
        prom.query("vanish", now())
            .await
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(first(&prom.query("keep", now()).await).is_some());

    // The target breaks: `up` goes to 0 and every scraped series goes stale.
    exporter.set_status(500);
    wait_for(Duration::from_secs(15), || async {
        let up = first(&prom.query("up{job=\"node\"}", now()).await)?;
        (up.1 == "0"
            && prom
                .query("keep", now())
                .await
                .as_array()
                .unwrap()
                .is_empty())
        .then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn up_is_zero_for_unreachable_and_malformed_targets() {
    let prom = Receiver::prometheus().await;
    let malformed = Exporter::start("ok 1\nthis is not { valid\n").await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cfg = format!(
        r#"
[relay]
interval = "1s"
[[source]]
type = "scrape"
name = "malformed"
url = "{}"
[[source]]
type = "scrape"
name = "dead"
url = "http://{dead}/metrics"
timeout = "500ms"
[[sink]]
type = "remote_write"
name = "rw"
url = "{}"
batch_wait = "200ms"
"#,
        malformed.url,
        prom.remote_write_url()
    );
    let (cancel, h, _) = start_relay(&cfg);
    for job in ["malformed", "dead"] {
        let (_, v) = wait_for(Duration::from_secs(30), || async {
            first(&prom.query(&format!("up{{job=\"{job}\"}}"), now()).await)
        })
        .await;
        assert_eq!(v, "0", "up for {job}");
    }
    assert!(
        prom.query("ok", now()).await.as_array().unwrap().is_empty(),
        "a malformed scrape is rejected whole"
    );
    cancel.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn server_errors_are_retried_and_nothing_is_lost() {
    let prom = Receiver::prometheus().await;
    let proxy = FaultProxy::start(&prom.base_url).await;
    proxy.fail_next(&[
        (500, "boom"),
        (503, "down"),
        (429, "slow down"),
        (502, "bad gateway"),
    ]);
    let exporter = Exporter::start("counted 1\n").await;
    let (cancel, h, metrics) = start_relay(&config(
        &exporter.url,
        &format!("{}/api/v1/write", proxy.url),
    ));
    // Let several polls happen while the first sends fail, then stop (which drains the queue).
    wait_for(Duration::from_secs(30), || async {
        (exporter.scrapes() >= 5).then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let scrapes = exporter.scrapes();
    let n = first(&prom.query("count_over_time(counted[10m])", now()).await)
        .unwrap()
        .1;
    assert_eq!(
        n,
        scrapes.to_string(),
        "every scraped sample arrived exactly once"
    );
    let statuses: Vec<u16> = proxy.seen().iter().map(|s| s.status).collect();
    assert_eq!(&statuses[..4], &[500, 503, 429, 502]);
    assert_eq!(metrics.dropped_total("rw"), 0);
    // The retried body is the same request, resent.
    let seen = proxy.seen();
    assert_eq!(seen[0].body, seen[4].body);
}

#[tokio::test]
async fn a_batch_refused_with_400_is_dropped_counted_and_never_resent() {
    let prom = Receiver::prometheus().await;
    let proxy = FaultProxy::start(&prom.base_url).await;
    proxy.fail_next(&[(400, "out of order sample (err-mimir-sample-out-of-order)")]);
    let exporter = Exporter::start("x 1\n").await;
    // Pinned to 1.0 with snappy: this test checks those headers (negotiation has its own).
    let cfg = config(&exporter.url, &format!("{}/api/v1/write", proxy.url))
        + "protocol = \"v1\"\ncompression = \"snappy\"\n";
    let (cancel, h, metrics) = start_relay(&cfg);
    wait_for(Duration::from_secs(30), || async {
        (proxy.seen().len() >= 4).then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let seen = proxy.seen();
    assert_eq!(seen[0].status, 400);
    assert!(
        seen[1..].iter().all(|s| s.body != seen[0].body),
        "the refused batch was sent again"
    );
    assert!(
        seen[1..].iter().all(|s| s.status == 204),
        "{:?}",
        seen.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    assert!(
        metrics.dropped_total("rw") > 0,
        "dropped samples are counted"
    );
    // The required headers were on every request.
    for s in &seen {
        let h = |n: &str| {
            s.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("content-encoding"), Some("snappy"));
        assert_eq!(h("content-type"), Some("application/x-protobuf"));
        assert_eq!(h("x-prometheus-remote-write-version"), Some("0.1.0"));
        assert!(h("user-agent").unwrap().starts_with("pushrelay/"));
    }
}

#[tokio::test]
async fn victoria_metrics_gets_exact_samples() {
    let vm = Receiver::victoria_metrics().await;
    let ts_ms = (now() as i64 - 60) * 1000 + 7;
    let exporter = Exporter::start(&format!(
        "# TYPE t gauge\nt{{a=\"x\"}} 1234.5678\nstamped 42 {ts_ms}\n"
    ))
    .await;
    let (cancel, h, _) = start_relay(&config(&exporter.url, &vm.remote_write_url()));
    wait_for(Duration::from_secs(30), || async {
        let e = vm.export_raw("{__name__=\"t\"}").await;
        (e.first()
            .is_some_and(|s| s["values"].as_array().is_some_and(|v| v.len() >= 2)))
        .then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let e = vm.export_raw("{__name__=\"t\"}").await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["metric"]["a"], "x");
    assert_eq!(e[0]["metric"]["job"], "node");
    assert_eq!(e[0]["metric"]["site"], "home");
    assert!(e[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v.as_f64() == Some(1234.5678)));
    let stamped = vm.export_raw("{__name__=\"stamped\"}").await;
    assert_eq!(stamped[0]["timestamps"][0].as_i64(), Some(ts_ms));
    assert_eq!(stamped[0]["values"][0].as_f64(), Some(42.0));
    // The series polled every second: all timestamps distinct and increasing.
    let ups = vm.export_raw("{__name__=\"up\",job=\"node\"}").await;
    let ts: Vec<i64> = ups[0]["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[1] > w[0]), "{ts:?}");
}
