//! Smoke tests of the real-receiver harness (`tests/support/receivers.rs`): starts Prometheus,
//! VictoriaMetrics and Pushgateway, writes samples to each with hand-built requests (independent
//! of the crate's own encoders) and reads back the exact values and timestamps. Also pins down the
//! receiver behaviour the relay relies on (which answers are 204 and which are 400).
//!
//! Needs `scripts/fetch-receivers.sh` to have been run.

use crate::support;
use crate::support::now_ms;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::receivers::{binary_path, wait_for, Receiver};

// ---- Hand-built protobuf ------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_double(out: &mut Vec<u8>, field: u32, v: f64) {
    put_tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_int64(out: &mut Vec<u8>, field: u32, v: i64) {
    put_tag(out, field, 0);
    put_varint(out, v as u64);
}

/// `Sample { double value = 1; int64 timestamp = 2; }`, the same in 1.0 and 2.0.
fn sample(value: f64, ts_ms: i64) -> Vec<u8> {
    let mut s = Vec::new();
    put_double(&mut s, 1, value);
    put_int64(&mut s, 2, ts_ms);
    s
}

/// Remote-write 1.0 `WriteRequest` with one series (labels already sorted) and one sample.
fn write_request_v1(labels: &[(&str, &str)], value: f64, ts_ms: i64) -> Vec<u8> {
    let mut series = Vec::new();
    for (name, val) in labels {
        let mut label = Vec::new();
        put_bytes(&mut label, 1, name.as_bytes());
        put_bytes(&mut label, 2, val.as_bytes());
        put_bytes(&mut series, 1, &label);
    }
    put_bytes(&mut series, 2, &sample(value, ts_ms));
    let mut req = Vec::new();
    put_bytes(&mut req, 1, &series);
    req
}

/// Remote-write 2.0 `Request` with one gauge series (labels already sorted) and one sample.
fn write_request_v2(labels: &[(&str, &str)], value: f64, ts_ms: i64) -> Vec<u8> {
    let mut symbols: Vec<&str> = vec![""];
    let mut refs = Vec::new();
    for (name, val) in labels {
        for s in [*name, *val] {
            let i = symbols.iter().position(|x| *x == s).unwrap_or_else(|| {
                symbols.push(s);
                symbols.len() - 1
            });
            put_varint(&mut refs, i as u64);
        }
    }
    let mut series = Vec::new();
    put_bytes(&mut series, 1, &refs); // packed labels_refs
    put_bytes(&mut series, 2, &sample(value, ts_ms));
    let mut metadata = Vec::new();
    put_tag(&mut metadata, 1, 0);
    put_varint(&mut metadata, 2); // METRIC_TYPE_GAUGE
    put_bytes(&mut series, 5, &metadata);
    let mut req = Vec::new();
    for s in &symbols {
        put_bytes(&mut req, 4, s.as_bytes());
    }
    put_bytes(&mut req, 5, &series);
    req
}

#[derive(Clone, Copy)]
enum Rw {
    V1,
    V2,
}

struct RwAnswer {
    status: StatusCode,
    samples_written: Option<String>,
    body: String,
}

async fn remote_write(url: &str, version: Rw, protobuf: &[u8]) -> RwAnswer {
    let body = snap::raw::Encoder::new()
        .compress_vec(protobuf)
        .expect("snappy-compress");
    let (content_type, version_header) = match version {
        Rw::V1 => ("application/x-protobuf", "0.1.0"),
        Rw::V2 => (
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "2.0.0",
        ),
    };
    let resp = reqwest::Client::new()
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", content_type)
        .header("X-Prometheus-Remote-Write-Version", version_header)
        .header("User-Agent", "pushrelay-receivers-smoke")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status();
    let samples_written = resp
        .headers()
        .get("X-Prometheus-Remote-Write-Samples-Written")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let body = resp.text().await.unwrap_or_default();
    RwAnswer {
        status,
        samples_written,
        body,
    }
}

/// A recent timestamp with a non-zero millisecond part, to prove millisecond precision.
fn recent_ts_ms() -> i64 {
    (now_ms() / 1000 - 5) * 1000 + 123
}

/// `[[ts_secs, "value"], ...]` of a matrix result entry, as (milliseconds, value string).
fn points(values: &Value) -> Vec<(i64, String)> {
    values
        .as_array()
        .expect("values array")
        .iter()
        .map(|p| {
            let ts = p[0].as_f64().expect("timestamp");
            (
                (ts * 1000.0).round() as i64,
                p[1].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

/// Reads back the one sample of `selector` (e.g. `smoke{job="x"}`) written at `ts_ms`, with a
/// range selector so the sample's own timestamp comes back, and checks it exactly.
async fn assert_sample_via_query(
    rx: &Receiver,
    selector: &str,
    labels: Value,
    value: &str,
    ts_ms: i64,
) {
    let at = ts_ms as f64 / 1000.0;
    let result = rx.query(&format!("{selector}[5m]"), at).await;
    assert_eq!(result.as_array().map(Vec::len), Some(1), "result: {result}");
    assert_eq!(result[0]["metric"], labels, "result: {result}");
    assert_eq!(
        points(&result[0]["values"]),
        vec![(ts_ms, value.to_string())],
        "result: {result}"
    );

    // The instant-vector form answers with the evaluation time, and the same value.
    let result = rx.query(selector, at + 10.0).await;
    assert_eq!(result[0]["value"][1], value, "result: {result}");
}

// ---- Tests --------------------------------------------------------------------------------------

#[test]
#[should_panic(expected = "scripts/fetch-receivers.sh")]
fn missing_binary_fails_loudly() {
    binary_path("no-such-receiver");
}

#[tokio::test]
async fn prometheus_accepts_remote_write_1_0() {
    let prom = Receiver::prometheus().await;
    let ts = recent_ts_ms();
    let req = write_request_v1(&[("__name__", "smoke_v1"), ("job", "smoke")], 42.125, ts);

    let answer = remote_write(&prom.remote_write_url(), Rw::V1, &req).await;
    assert_eq!(
        answer.status,
        StatusCode::NO_CONTENT,
        "body: {}",
        answer.body
    );

    assert_sample_via_query(
        &prom,
        "smoke_v1",
        json!({"__name__": "smoke_v1", "job": "smoke"}),
        "42.125",
        ts,
    )
    .await;
    let series = prom.series("smoke_v1").await;
    assert_eq!(series, json!([{"__name__": "smoke_v1", "job": "smoke"}]));

    let range = prom
        .query_range(
            "smoke_v1",
            (ts / 1000) as f64,
            (ts / 1000 + 60) as f64,
            30.0,
        )
        .await;
    assert_eq!(
        range[0]["values"].as_array().map(Vec::len),
        Some(2),
        "{range}"
    );
}

#[tokio::test]
async fn prometheus_accepts_remote_write_2_0() {
    let prom = Receiver::prometheus().await;
    let ts = recent_ts_ms();
    let req = write_request_v2(&[("__name__", "smoke_v2"), ("job", "smoke")], -7.5, ts);

    let answer = remote_write(&prom.remote_write_url(), Rw::V2, &req).await;
    assert_eq!(
        answer.status,
        StatusCode::NO_CONTENT,
        "body: {}",
        answer.body
    );
    // The header that tells a 2.0 receiver from a 1.0 one that ignored the body.
    assert_eq!(answer.samples_written.as_deref(), Some("1"));

    assert_sample_via_query(
        &prom,
        "smoke_v2",
        json!({"__name__": "smoke_v2", "job": "smoke"}),
        "-7.5",
        ts,
    )
    .await;
}

/// What a stock Prometheus answers to the samples a relay must never retry.
#[tokio::test]
async fn prometheus_rejects_out_of_order_duplicate_and_too_old_with_400() {
    let prom = Receiver::prometheus().await;
    let url = prom.remote_write_url();
    let ts = recent_ts_ms();
    let labels = [("__name__", "smoke_ooo"), ("job", "smoke")];

    let first = remote_write(&url, Rw::V1, &write_request_v1(&labels, 1.0, ts)).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{}", first.body);

    // Same sample again: an identical duplicate is accepted silently.
    let same = remote_write(&url, Rw::V1, &write_request_v1(&labels, 1.0, ts)).await;
    assert_eq!(same.status, StatusCode::NO_CONTENT, "{}", same.body);

    // Same timestamp, other value.
    let dup = remote_write(&url, Rw::V1, &write_request_v1(&labels, 2.0, ts)).await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST, "{}", dup.body);
    assert!(dup.body.contains("duplicate"), "{}", dup.body);

    // Older than the newest sample of the series (no out-of-order window by default).
    let ooo = remote_write(&url, Rw::V1, &write_request_v1(&labels, 3.0, ts - 1_000)).await;
    assert_eq!(ooo.status, StatusCode::BAD_REQUEST, "{}", ooo.body);
    assert!(ooo.body.contains("out of order"), "{}", ooo.body);

    // A new series, but more than an hour behind the newest sample in the database.
    let old_labels = [("__name__", "smoke_old"), ("job", "smoke")];
    let old = write_request_v1(&old_labels, 4.0, ts - 2 * 3600 * 1000);
    let too_old = remote_write(&url, Rw::V1, &old).await;
    assert_eq!(too_old.status, StatusCode::BAD_REQUEST, "{}", too_old.body);
    assert!(too_old.body.contains("out of bounds"), "{}", too_old.body);

    eprintln!(
        "Prometheus 400 bodies:\n  duplicate: {}\n  out of order: {}\n  too old: {}",
        dup.body.trim(),
        ooo.body.trim(),
        too_old.body.trim()
    );

    // Nothing of the rejected requests was stored.
    let result = prom.query("smoke_ooo[1h]", ts as f64 / 1000.0).await;
    assert_eq!(points(&result[0]["values"]), vec![(ts, "1".to_string())]);
}

#[tokio::test]
async fn victoria_metrics_accepts_remote_write_1_0() {
    let vm = Receiver::victoria_metrics().await;
    let ts = recent_ts_ms();
    let req = write_request_v1(&[("__name__", "smoke_vm"), ("job", "smoke")], 0.1, ts);

    let answer = remote_write(&vm.remote_write_url(), Rw::V1, &req).await;
    assert_eq!(
        answer.status,
        StatusCode::NO_CONTENT,
        "body: {}",
        answer.body
    );

    let started = Instant::now();
    let exported = wait_for(Duration::from_secs(10), || async {
        let rows = vm.export_raw("smoke_vm").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    eprintln!(
        "VictoriaMetrics: sample exported after {:?}",
        started.elapsed()
    );
    assert_eq!(
        exported,
        vec![json!({
            "metric": {"__name__": "smoke_vm", "job": "smoke"},
            "values": [0.1],
            "timestamps": [ts],
        })]
    );

    assert_sample_via_query(
        &vm,
        "smoke_vm",
        json!({"__name__": "smoke_vm", "job": "smoke"}),
        "0.1",
        ts,
    )
    .await;
    let series = vm.series("smoke_vm").await;
    assert_eq!(series, json!([{"__name__": "smoke_vm", "job": "smoke"}]));
}

/// VictoriaMetrics keeps what Prometheus refuses: old and out-of-order samples (within
/// `-retentionPeriod`), so a replayed backlog lands whatever its order.
#[tokio::test]
async fn victoria_metrics_accepts_old_and_out_of_order_samples() {
    let vm = Receiver::victoria_metrics().await;
    let url = vm.remote_write_url();
    let ts = recent_ts_ms();
    let labels = [("__name__", "smoke_vm_old"), ("job", "smoke")];
    let month_ago = ts - 30 * 86_400 * 1000;
    for (value, t) in [(1.0, ts), (2.0, ts - 60_000), (3.0, month_ago)] {
        let answer = remote_write(&url, Rw::V1, &write_request_v1(&labels, value, t)).await;
        assert_eq!(
            answer.status,
            StatusCode::NO_CONTENT,
            "body: {}",
            answer.body
        );
    }
    let exported = vm.export_raw("smoke_vm_old").await;
    assert_eq!(exported.len(), 1, "{exported:?}");
    let values: Vec<f64> = exported[0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    assert_eq!(values, [3.0, 2.0, 1.0]);
    assert_eq!(
        exported[0]["timestamps"],
        json!([month_ago, ts - 60_000, ts])
    );
}

#[tokio::test]
async fn pushgateway_put_and_read_back() {
    let pgw = Receiver::pushgateway().await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics/job/smoke/instance/a", pgw.base_url);
    let body = "# TYPE smoke_gauge gauge\n# HELP smoke_gauge A smoke test.\nsmoke_gauge{kind=\"x\"} 3.25\n";
    let resp = client
        .put(&url)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .expect("PUT to the Pushgateway");
    let status = resp.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        resp.text().await.unwrap_or_default()
    );

    let text = pgw.pushgateway_metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l == "smoke_gauge{instance=\"a\",job=\"smoke\",kind=\"x\"} 3.25"),
        "{text}"
    );
    assert!(text.contains("push_time_seconds{instance=\"a\",job=\"smoke\"}"));

    let groups = pgw.pushgateway_groups().await;
    let groups = groups.as_array().expect("groups array");
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(
        groups[0]["labels"],
        json!({"instance": "a", "job": "smoke"})
    );
    let family = &groups[0]["smoke_gauge"];
    assert_eq!(family["type"], "GAUGE", "{family}");
    assert_eq!(family["metrics"][0]["value"], "3.25", "{family}");

    // A sample carrying a timestamp is refused (and the group keeps its old content).
    let resp = client
        .put(&url)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body("smoke_gauge{kind=\"x\"} 9 1700000000000\n")
        .send()
        .await
        .expect("PUT to the Pushgateway");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(pgw.pushgateway_metrics_text().await.contains("} 3.25\n"));
}

/// A receiver that exits at start-up makes the test fail with its log, not hang.
#[tokio::test]
#[should_panic(expected = "prometheus did not start")]
async fn receiver_that_exits_early_fails_with_its_log() {
    Receiver::prometheus_with("scrape_configs: [not, a, job]\n", &[]).await;
}
