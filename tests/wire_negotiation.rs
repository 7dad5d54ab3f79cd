//! What the remote-write sink sends to real receivers with `protocol` and `compression` left
//! at `auto` (or set): remote-write 2.0 to Prometheus 3.5 with exact values, labels, timestamps
//! and stale markers; VictoriaMetrics (1.0 only) makes `auto` fall back to 1.0 with zstd and
//! nothing is lost; Prometheus refuses zstd and `auto` falls back to snappy. A counting proxy
//! in front of each receiver shows what went over the wire.

use crate::support;
use crate::support::now;

use std::time::Duration;

use serde_json::Value;
use support::fakes::{start_relay, Exporter, FaultProxy};
use support::receivers::{wait_for, Receiver};

fn config(source_url: &str, rw_url: &str, keys: &str) -> String {
    support::fakes::scrape_to_remote_write(source_url, rw_url, "", keys)
}

fn first(v: &Value) -> Option<(Value, String)> {
    let r = v.as_array()?.first()?;
    Some((r["metric"].clone(), r["value"][1].as_str()?.to_string()))
}

fn header<'a>(s: &'a support::fakes::Seen, name: &str) -> Option<&'a str> {
    s.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What each request was: content type, encoding and the receiver's status.
fn forms(proxy: &FaultProxy) -> Vec<(String, String, u16)> {
    proxy
        .seen()
        .iter()
        .map(|s| {
            (
                header(s, "content-type").unwrap_or("").to_string(),
                header(s, "content-encoding").unwrap_or("").to_string(),
                s.status,
            )
        })
        .collect()
}

const V2_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

#[tokio::test]
async fn auto_sends_v2_to_prometheus_with_exact_values_and_stale_markers() {
    let prom = Receiver::prometheus().await;
    let proxy = FaultProxy::start(&prom.base_url).await;
    let ts_ms = (now() as i64 - 30) * 1000 + 123;
    let exporter = Exporter::start(&format!(
        "# HELP room_temp Temperature.\n# TYPE room_temp gauge\nroom_temp{{room=\"a b\",quote=\"say \\\"hi\\\"\"}} 21.5\n\
         # TYPE precise gauge\nprecise 0.30000000000000004\nexplicit_ts 7 {ts_ms}\nvanish 2\n"
    ))
    .await;
    let (cancel, h, _) = start_relay(&config(
        &exporter.url,
        &format!("{}/api/v1/write", proxy.url),
        "",
    ));
    let (metric, value) = wait_for(Duration::from_secs(30), || async {
        first(&prom.query("room_temp", now()).await)
    })
    .await;
    assert_eq!(value, "21.5");
    assert_eq!(
        metric,
        serde_json::json!({
            "__name__": "room_temp", "room": "a b", "quote": "say \"hi\"",
            "job": "node", "instance": exporter.addr.to_string()
        })
    );
    assert_eq!(
        first(&prom.query("precise", now()).await).unwrap().1,
        "0.30000000000000004"
    );
    let raw = prom.query("explicit_ts[10m]", now()).await;
    let values = raw[0]["values"].as_array().unwrap();
    assert_eq!(values[0][0].as_f64().unwrap(), ts_ms as f64 / 1000.0);
    // A vanished series gets a stale marker: gone at once, not after 5 minutes.
    exporter.set_body("# HELP room_temp Temperature.\n# TYPE room_temp gauge\nroom_temp{room=\"a b\",quote=\"say \\\"hi\\\"\"} 21.5\n");
    wait_for(Duration::from_secs(15), || async {
        prom.query("vanish", now())
            .await
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let f = forms(&proxy);
    assert!(
        f.iter()
            .all(|(t, e, st)| t == V2_TYPE && e == "snappy" && *st == 204),
        "every request is 2.0 and accepted: {f:?}"
    );
    let seen = proxy.seen();
    assert_eq!(
        header(&seen[0], "x-prometheus-remote-write-version"),
        Some("2.0.0")
    );
}

#[tokio::test]
async fn auto_against_victoria_metrics_falls_back_to_zstd_and_loses_nothing() {
    let vm = Receiver::victoria_metrics().await;
    let proxy = FaultProxy::start(&vm.base_url).await;
    let exporter = Exporter::start("counted 1\n").await;
    let (cancel, h, metrics) = start_relay(&config(
        &exporter.url,
        &format!("{}/api/v1/write", proxy.url),
        "",
    ));
    wait_for(Duration::from_secs(30), || async {
        (exporter.scrapes() >= 4).then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let scrapes = exporter.scrapes();
    vm.flush().await;
    let n = wait_for(Duration::from_secs(15), || async {
        vm.flush().await;
        let n = first(&vm.query("count_over_time(counted[10m])", now()).await)?.1;
        (n == scrapes.to_string()).then_some(n)
    })
    .await;
    assert_eq!(n, scrapes.to_string(), "every scraped sample arrived");
    assert_eq!(metrics.dropped_total("rw"), 0);
    let f = forms(&proxy);
    assert_eq!(f[0].0, V2_TYPE, "2.0 is tried first: {f:?}");
    assert!(
        f[1..]
            .iter()
            .all(|(t, e, st)| t == "application/x-protobuf" && e == "zstd" && *st == 204),
        "then 1.0 with zstd, accepted: {f:?}"
    );
    let seen = proxy.seen();
    assert_eq!(
        header(&seen[1], "x-victoriametrics-remote-write-version"),
        Some("1")
    );
}

#[tokio::test]
async fn zstd_to_prometheus_falls_back_to_snappy_without_loss() {
    let prom = Receiver::prometheus().await;
    let proxy = FaultProxy::start(&prom.base_url).await;
    let exporter = Exporter::start("counted 1\n").await;
    let (cancel, h, metrics) = start_relay(&config(
        &exporter.url,
        &format!("{}/api/v1/write", proxy.url),
        "protocol = \"v1\"",
    ));
    wait_for(Duration::from_secs(30), || async {
        (exporter.scrapes() >= 3).then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let scrapes = exporter.scrapes();
    let n = first(&prom.query("count_over_time(counted[10m])", now()).await)
        .unwrap()
        .1;
    assert_eq!(n, scrapes.to_string(), "every scraped sample arrived");
    assert_eq!(metrics.dropped_total("rw"), 0);
    let f = forms(&proxy);
    assert_eq!(
        (f[0].1.as_str(), f[0].2),
        ("zstd", 415),
        "zstd first, refused: {f:?}"
    );
    assert!(
        f[1..].iter().all(|(_, e, st)| e == "snappy" && *st == 204),
        "{f:?}"
    );
}

/// With several polls in the first batch (a long `batch_wait`), the 2.0 probe carries the
/// first series' samples; Prometheus refuses a sample older than one it has, so the rest of
/// the batch must not carry them again: every request is accepted and nothing is dropped.
#[tokio::test]
async fn a_taken_probe_is_not_sent_again_with_the_rest() {
    let prom = Receiver::prometheus().await;
    let proxy = FaultProxy::start(&prom.base_url).await;
    let exporter = Exporter::start("# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\n").await;
    let (cancel, h, metrics) = start_relay(
        &config(&exporter.url, &format!("{}/api/v1/write", proxy.url), "")
            .replace("batch_wait = \"200ms\"", "batch_wait = \"3500ms\""),
    );
    wait_for(Duration::from_secs(30), || async {
        (proxy.seen().len() >= 2).then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    let f = forms(&proxy);
    assert!(
        f.iter().all(|(t, _, st)| t == V2_TYPE && *st == 204),
        "every request 2.0 and accepted: {f:?}"
    );
    assert!(metrics.dropped_by_reason("rw").is_empty());
    let raw = prom.query("a[1m]", now()).await;
    let n = raw[0]["values"].as_array().unwrap().len();
    assert!(n >= 3, "several polls of `a` stored: {raw}");
}
