//! A simulated Prometheus exporter whose values move: counters grow, gauges wander, a
//! histogram fills, and one series comes and goes (so stale markers can be seen).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::server::{response, serve};

/// Renders the exposition at `secs` seconds after start; `poll` counts requests (the flapping
/// series is present on even polls only). `devices` scales the series count (about 34 series
/// per device plus a fixed 60).
pub fn render(secs: f64, poll: u64, devices: usize) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    o.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_total counter\n");
    for cpu in 0..4 {
        for (i, m) in modes.iter().enumerate() {
            let rate = if *m == "idle" {
                0.8
            } else {
                0.02 * (i + 1) as f64
            };
            let _ = writeln!(
                o,
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{m}\"}} {:.2}",
                1000.0 + secs * rate
            );
        }
    }
    o.push_str("# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\n");
    let _ = writeln!(o, "node_load1 {:.3}", 0.5 + 0.4 * (secs / 30.0).sin());
    o.push_str("# HELP sensor_temperature_celsius Temperature per sensor.\n# TYPE sensor_temperature_celsius gauge\n");
    for d in 0..devices {
        let _ = writeln!(
            o,
            "sensor_temperature_celsius{{sensor=\"room-{d}\",building=\"main\"}} {:.2}",
            20.0 + (d as f64) * 0.1 + 2.0 * (secs / 60.0 + d as f64).sin()
        );
    }
    let kinds = ["rx", "tx"];
    o.push_str("# HELP device_bytes_total Bytes moved per device and direction.\n# TYPE device_bytes_total counter\n");
    for d in 0..devices {
        for (k, dir) in kinds.iter().enumerate() {
            let _ = writeln!(
                o,
                "device_bytes_total{{device=\"dev-{d}\",direction=\"{dir}\"}} {}",
                ((secs * (100.0 + d as f64 + k as f64 * 7.0)) as u64) + 5000
            );
        }
    }
    o.push_str("# HELP device_rssi_dbm Received signal strength.\n# TYPE device_rssi_dbm gauge\n");
    for d in 0..devices {
        let _ = writeln!(
            o,
            "device_rssi_dbm{{device=\"dev-{d}\"}} {:.0}",
            -70.0 - (d % 20) as f64 + 5.0 * (secs / 10.0 + d as f64).cos()
        );
    }
    o.push_str("# HELP device_info Static facts about each device.\n# TYPE device_info gauge\n");
    for d in 0..devices {
        let _ = writeln!(o, "device_info{{device=\"dev-{d}\",firmware=\"1.{}.0\",model=\"Sensor \\\"Pro\\\" {}\"}} 1", d % 3, d % 5);
    }
    // Per device: 1 + 2 + 1 + 1 = 5 series; pad each device to ~34 with per-channel gauges.
    o.push_str("# HELP device_channel_utilization_ratio Airtime used per channel.\n# TYPE device_channel_utilization_ratio gauge\n");
    for d in 0..devices {
        for ch in 0..29 {
            let _ = writeln!(
                o,
                "device_channel_utilization_ratio{{device=\"dev-{d}\",channel=\"{ch}\"}} {:.4}",
                ((secs / 7.0 + ch as f64 + d as f64).sin() + 1.0) / 20.0
            );
        }
    }
    o.push_str("# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n");
    let bounds = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    for h in ["/api", "/metrics", "/login"] {
        let total = (secs * 3.0) as u64 + 10;
        for (i, b) in bounds.iter().enumerate() {
            let n = total * (i as u64 + 1) / bounds.len() as u64;
            let _ = writeln!(
                o,
                "http_request_duration_seconds_bucket{{handler=\"{h}\",le=\"{b}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "http_request_duration_seconds_sum{{handler=\"{h}\"}} {:.3}",
            total as f64 * 0.042
        );
        let _ = writeln!(
            o,
            "http_request_duration_seconds_count{{handler=\"{h}\"}} {total}"
        );
    }
    o.push_str("# HELP rpc_latency_seconds RPC latency.\n# TYPE rpc_latency_seconds summary\n");
    for q in ["0.5", "0.9", "0.99"] {
        let _ = writeln!(
            o,
            "rpc_latency_seconds{{quantile=\"{q}\"}} {:.4}",
            0.01 * q.parse::<f64>().unwrap_or(0.5)
        );
    }
    let _ = writeln!(
        o,
        "rpc_latency_seconds_sum {:.3}\nrpc_latency_seconds_count {}",
        secs * 0.2,
        (secs * 10.0) as u64
    );
    o.push_str("# HELP job:requests:rate5m A recording-rule style name with colons.\n# TYPE job:requests:rate5m gauge\n");
    let _ = writeln!(
        o,
        "job:requests:rate5m{{path=\"C:\\\\temp\\\\x\",note=\"a,b}}c\"}} {:.3}",
        3.0 + (secs / 20.0).sin()
    );
    o.push_str("# HELP battery_voltage_volts Unknown until measured.\n# TYPE battery_voltage_volts gauge\n");
    o.push_str("battery_voltage_volts{cell=\"a\"} NaN\nbattery_voltage_volts{cell=\"b\"} +Inf\n");
    if poll.is_multiple_of(2) {
        o.push_str("# HELP flapping_link_up A link that is there every other poll.\n# TYPE flapping_link_up gauge\nflapping_link_up 1\n");
    }
    o
}

/// Serves the simulated exporter at `GET /metrics` until `cancel` fires.
pub async fn serve_exposition(listener: TcpListener, cancel: CancellationToken, devices: usize) {
    let start = Instant::now();
    // AtomicUsize, not AtomicU64: 32-bit mips and armv6 have no 64-bit atomics.
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    serve(listener, cancel, move |req| {
        let polls = polls.clone();
        async move {
            if req.uri().path() != "/metrics" {
                return response(404, "text/plain", "not found\n");
            }
            let poll = polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u64;
            let body = render(start.elapsed().as_secs_f64(), poll, devices);
            response(200, "text/plain; version=0.0.4; charset=utf-8", body)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_exposition_of_expected_size() {
        let text = render(12.5, 0, 7);
        let fams = crate::expfmt::parse(&text).unwrap();
        let n: usize = fams.iter().map(|f| f.samples.len()).sum();
        assert!(n >= 300, "{n} series");
        let text = render(12.5, 1, 7);
        assert!(!text.contains("flapping_link_up"));
    }
}
