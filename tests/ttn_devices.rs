//! The `ttn_devices` source against a real broker, Debian's mosquitto (password file, an ACL
//! shaped like The Things Stack's rights, a TLS listener with a test CA), fed by a simulated
//! Application Server publishing the real message shapes and quirks (`pushrelay::sim::
//! ttn_devices`): omitted zero fields, several gateways, Packet Broker, f_cnt gaps, a rejoin, a
//! duplicate, a retransmission, a simulated uplink, unknown fields, malformed JSON, a payload
//! formatter emitting strings and nested objects. Counts, last-seen and values are checked
//! exactly in a real Prometheus and through `pushrelay print`/`check` after a restart; the
//! broker is restarted under the relay; wrong credentials and TLS set-ups fail with one clear
//! log line and `up 0`. The alert rules pass `promtool check rules` and `promtool test rules`,
//! and their expressions select the right devices on the real data.

use crate::support;
use crate::support::now;
use crate::support::{capture_logs, logs};

use std::path::Path;
use std::time::{Duration, SystemTime};

use pushrelay::sim::ttn_devices::{join_json, topic, uplink_json, Heard, UplinkSpec};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;
use support::fakes::start_relay;
use support::grafana;
use support::mosquitto::Mosquitto;
use support::receivers::{wait_for, Receiver};

const APP: &str = "app1@ttn";
const KEY: &str = "NNSXS.TESTAPPKEY.SECRETPARTDONOTLOG";

/// The simulated Application Server: publishes into mosquitto as user `stack`.
struct Stack {
    client: AsyncClient,
}

impl Stack {
    async fn connect(m: &Mosquitto) -> Stack {
        let mut o = MqttOptions::new("the-stack", "127.0.0.1", m.port);
        o.set_credentials("stack", "stack-secret");
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut ev) = AsyncClient::new(o, 100);
        tokio::spawn(async move { while ev.poll().await.is_ok() {} });
        Stack { client }
    }

    async fn send(&self, topic: &str, body: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtMostOnce, false, body.into())
            .await
            .unwrap();
    }

    async fn up(&self, u: &UplinkSpec) {
        self.send(&topic(APP, &u.device_id, "up"), uplink_json(APP, u))
            .await;
    }
}

/// Waits until mosquitto's log shows `n` subscriptions to the source's uplink topic.
async fn subscribed(m: &Mosquitto, n: usize) {
    wait_for(Duration::from_secs(30), || async {
        (m.logs().matches(&format!("v3/{APP}/devices/+/up")).count() >= n).then_some(())
    })
    .await
}

fn source_toml(url: &str, extra: &str) -> String {
    format!(
        "[[source]]\ntype = \"ttn_devices\"\nname = \"ttn-devices\"\nurl = \"{url}\"\napplication = \"{APP}\"\napi_key = \"{KEY}\"\ninterval = \"1s\"\ntimeout = \"3s\"\nexpected_interval = \"5m\"\nexpected_intervals = {{ \"feather-2\" = \"1m\" }}\n{extra}\n"
    )
}

fn relay_toml(state: &Path, source: &str, prom: Option<&Receiver>) -> String {
    let sink = match prom {
        Some(p) => format!(
            "[[sink]]\ntype = \"remote_write\"\nname = \"prom\"\nurl = \"{}\"\nbatch_wait = \"100ms\"\nmin_backoff = \"100ms\"\nmax_backoff = \"500ms\"\n",
            p.remote_write_url()
        ),
        None => String::new(),
    };
    format!(
        "[relay]\ninterval = \"1s\"\nstate_dir = {:?}\n\n{source}\n{sink}",
        state.to_string_lossy()
    )
}

/// Runs the real binary (off the runtime thread, so the test's tasks keep running).
async fn run_bin(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .args(&args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    })
    .await
    .unwrap()
}

fn write_file(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().to_string()
}

/// The value of the one exposition line starting with `series `.
fn value_of(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Prometheus's value of one series (a PromQL selector), if there is one.
async fn prom_value(prom: &Receiver, q: &str) -> Option<f64> {
    let v = prom.query(q, now()).await;
    let r = v.as_array()?.first()?;
    r["value"][1].as_str()?.parse().ok()
}

/// `device_id`s a PromQL expression returns.
async fn devices_of(prom: &Receiver, q: &str) -> Vec<String> {
    let v = prom.query(q, now()).await;
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["metric"]["device_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

fn at(secs: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
}

fn feather(f_cnt: u32, key: &str, t: f64) -> UplinkSpec {
    let mut u = UplinkSpec::new("feather-1", "70B3D57ED005B89A", f_cnt);
    u.session_key_id = key.to_string();
    u.received_at = at(t);
    u.decoded = Some(
        json!({"temperature_c": 20.0 + f64::from(f_cnt), "humidity_pct": 48.25, "battery_v": 3.62}),
    );
    u
}

#[tokio::test]
async fn counts_values_and_last_seen_exactly_through_prometheus_print_and_restarts() {
    let (logbuf, _guard) = capture_logs();
    let mut m = Mosquitto::start(&[(APP, KEY)]);
    let prom = Receiver::prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    let cfg = relay_toml(&state, &source_toml(&url, ""), Some(&prom));
    let (relay, h, _) = start_relay(&cfg);
    subscribed(&m, 1).await;
    let stack = Stack::connect(&m).await;

    // feather-1: 10 (first sighting), 11, 11 again (the same message), 15 (3 lost), a join,
    // 0 (f_cnt omitted) and 1 of the new session, 4 (2 lost), a retransmission of 4, a
    // Console-simulated uplink, and a malformed message.
    let t0 = now() - 600.0;
    for u in [
        feather(10, "k1", t0),
        feather(11, "k1", t0 + 60.0),
        feather(11, "k1", t0 + 60.0),
        feather(15, "k1", t0 + 300.0),
    ] {
        stack.up(&u).await;
    }
    stack
        .send(
            &topic(APP, "feather-1", "join"),
            join_json(APP, "feather-1", "70B3D57ED005B89A", "k2"),
        )
        .await;
    for u in [
        feather(0, "k2", t0 + 360.0),
        feather(1, "k2", t0 + 420.0),
        feather(4, "k2", t0 + 500.0),
    ] {
        stack.up(&u).await;
    }
    let mut re = feather(4, "k2", t0 + 502.5);
    re.heard = vec![
        Heard::new("gw-near", Some("AA555A0000000101"), -71.0, 7.5),
        Heard::new("gw-far", Some("AA555A0000000102"), -117.0, -9.25),
    ];
    stack.up(&re).await;
    let last_seen = t0 + 502.5;
    let sim = uplink_json(APP, &feather(99, "k2", now())).replace(
        "\"uplink_message\"",
        "\"simulated\":true,\"uplink_message\"",
    );
    stack.send(&topic(APP, "feather-1", "up"), sim).await;
    stack
        .send(
            &topic(APP, "feather-1", "up"),
            "{\"end_device_ids\":{\"device_id\":\"feather-1\"",
        )
        .await;

    // feather-2: heard once, 10 minutes ago (expected every minute: silent).
    let mut f2 = UplinkSpec::new("feather-2", "70B3D57ED005B89B", 7);
    f2.received_at = at(t0);
    stack.up(&f2).await;
    // quirky: a formatter emitting strings and nested objects, SF12 at the noise floor.
    let mut q = UplinkSpec::new("quirky", "70B3D57ED005B89C", 3);
    q.spreading_factor = 12;
    q.frequency_hz = 867_500_000;
    q.heard = vec![Heard::new(
        "gw-far",
        Some("AA555A0000000102"),
        -121.0,
        -19.0,
    )];
    q.decoded = Some(
        json!({"temperature": "21.50", "status": "OK", "door_open": true,
        "battery": {"voltage": 3.3, "chemistry": "LiSOCl2", "deep": {"x": 1}}, "readings": [1, 2], "empty": null}),
    );
    stack.up(&q).await;

    let dev = |d: &str| format!("{{job=\"ttn-devices\",device_id=\"{d}\"}}");
    let f1 = dev("feather-1");
    wait_for(Duration::from_secs(30), || async {
        let n = prom_value(&prom, &format!("ttn_device_uplinks_total{f1}")).await?;
        let q = prom_value(&prom, &format!("ttn_device_uplinks_total{}", dev("quirky"))).await?;
        (n == 6.0 && q == 1.0).then_some(())
    })
    .await;
    let v = |name: &str, sel: String| {
        let prom = &prom;
        let name = name.to_string();
        async move { prom_value(prom, &format!("{name}{sel}")).await }
    };
    assert_eq!(
        v("ttn_device_uplinks_lost_total", f1.clone()).await,
        Some(5.0)
    );
    assert_eq!(
        v("ttn_device_uplinks_missed_total", f1.clone()).await,
        Some(0.0)
    );
    assert_eq!(v("ttn_device_joins_total", f1.clone()).await, Some(1.0));
    let airtime = v("ttn_device_airtime_seconds_total", f1.clone())
        .await
        .unwrap();
    assert!(
        (airtime - 7.0 * 0.061696).abs() < 1e-9,
        "6 frames and 1 retransmission: {airtime}"
    );
    let seen = v("ttn_device_last_uplink_timestamp_seconds", f1.clone())
        .await
        .unwrap();
    assert!((seen - last_seen).abs() < 1e-3, "{seen} vs {last_seen}");
    assert_eq!(v("ttn_device_gateways", f1.clone()).await, Some(2.0));
    assert_eq!(
        v("ttn_device_spreading_factor", f1.clone()).await,
        Some(7.0)
    );
    assert_eq!(
        v("ttn_device_frequency_hertz", f1.clone()).await,
        Some(868_100_000.0)
    );
    let g = |gw: &str| format!("{{device_id=\"feather-1\",gateway_id=\"{gw}\"}}");
    assert_eq!(v("ttn_device_rssi_dbm", g("gw-far")).await, Some(-117.0));
    assert_eq!(v("ttn_device_snr_db", g("gw-far")).await, Some(-9.25));
    assert_eq!(v("ttn_device_snr_db", g("gw-near")).await, Some(7.5));
    let p = |d: &str, f: &str| format!("{{device_id=\"{d}\",field=\"{f}\"}}");
    assert_eq!(
        v("ttn_device_payload_value", p("feather-1", "temperature_c")).await,
        Some(24.0)
    );
    assert_eq!(
        v("ttn_device_payload_value", p("quirky", "temperature")).await,
        Some(21.5)
    );
    assert_eq!(
        v("ttn_device_payload_value", p("quirky", "door_open")).await,
        Some(1.0)
    );
    assert_eq!(
        v("ttn_device_payload_value", p("quirky", "battery_voltage")).await,
        Some(3.3)
    );
    let fields = prom
        .query("count by (device_id) (ttn_device_payload_value)", now())
        .await;
    let count = |d: &str| {
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"]["device_id"] == d)
            .map(|r| r["value"][1].as_str().unwrap().to_string())
    };
    assert_eq!(
        count("quirky").as_deref(),
        Some("3"),
        "strings, arrays, null and deeper levels left out"
    );
    assert_eq!(
        v(
            "ttn_devices_invalid_messages_total",
            "{job=\"ttn-devices\"}".into()
        )
        .await,
        Some(1.0)
    );
    let labels = prom
        .query(&format!("ttn_device_uplinks_total{f1}"), now())
        .await;
    assert_eq!(labels[0]["metric"]["dev_eui"], "70B3D57ED005B89A");
    assert_eq!(labels[0]["metric"]["application"], APP);
    assert_eq!(
        labels[0]["metric"]["instance"],
        format!("127.0.0.1:{}", m.port)
    );

    // One more frame after a gap, so the last hour shows an increase of both counters; then
    // the alert expressions (without their `for`) select the right devices on this data.
    stack.up(&feather(6, "k2", t0 + 550.0)).await;
    wait_for(Duration::from_secs(30), || async {
        (prom_value(&prom, &format!("ttn_device_uplinks_lost_total{f1}")).await? == 6.0)
            .then_some(())
    })
    .await;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alerts/ttn-devices.yml"),
    )
    .unwrap();
    let exprs = support::promtool::rule_exprs(&text);
    assert_eq!(exprs.len(), 4);
    assert_eq!(devices_of(&prom, &exprs[0]).await, ["feather-2"]);
    assert_eq!(devices_of(&prom, &exprs[1]).await, ["feather-1"]);
    assert_eq!(devices_of(&prom, &exprs[2]).await, ["quirky"]);
    assert!(prom
        .query(&exprs[3], now())
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert!(!logs(&logbuf).contains(KEY), "the API key is never logged");

    // The broker goes away: up 0, one log line; it comes back: up 1, one log line. Frames sent
    // meanwhile (7, 8) are missed, not lost.
    m.stop();
    let up = "up{job=\"ttn-devices\"}";
    wait_for(Duration::from_secs(30), || async {
        (prom_value(&prom, up).await? == 0.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // several reconnect attempts
    m.restart();
    wait_for(Duration::from_secs(90), || async {
        (prom_value(&prom, up).await? == 1.0).then_some(())
    })
    .await;
    let l = logs(&logbuf);
    assert_eq!(
        l.matches("source down: request failed: MQTT session down: ")
            .count(),
        1,
        "{l}"
    );
    assert_eq!(l.matches("source up again").count(), 1, "{l}");
    assert_eq!(
        l.matches(" WARN ").count(),
        2,
        "the unreadable message and the outage: {l}"
    );
    subscribed(&m, 1).await;
    let stack = Stack::connect(&m).await;
    stack.up(&feather(9, "k2", t0 + 590.0)).await;
    wait_for(Duration::from_secs(30), || async {
        (prom_value(&prom, &format!("ttn_device_uplinks_missed_total{f1}")).await? == 2.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        v("ttn_device_uplinks_lost_total", f1.clone()).await,
        Some(6.0)
    );
    assert_eq!(v("ttn_device_uplinks_total", f1.clone()).await, Some(8.0));

    // Stopped, the relay keeps what it knew: `print` (which waits up to its timeout for a
    // message, then prints) shows the same counters, last-seen and values.
    relay.cancel();
    h.await.unwrap().unwrap();
    let cfg_file = write_file(
        dir.path(),
        "pushrelay.toml",
        &relay_toml(&state, &source_toml(&url, ""), None),
    );
    let (ok, out, err) = run_bin(vec!["print".into(), "--config".into(), cfg_file.clone()]).await;
    assert!(ok, "{err}\n{out}");
    let l =
        "application=\"app1@ttn\",dev_eui=\"70B3D57ED005B89A\",device_id=\"feather-1\",instance";
    let series = |name: &str| {
        out.lines()
            .find(|x| x.starts_with(&format!("{name}{{{l}")))
            .and_then(|x| x.rsplit(' ').next())
            .and_then(|x| x.parse::<f64>().ok())
    };
    assert_eq!(series("ttn_device_uplinks_total"), Some(8.0), "{out}");
    assert_eq!(series("ttn_device_uplinks_lost_total"), Some(6.0), "{out}");
    assert_eq!(
        series("ttn_device_uplinks_missed_total"),
        Some(2.0),
        "{out}"
    );
    assert_eq!(series("ttn_device_joins_total"), Some(1.0), "{out}");
    let seen = series("ttn_device_last_uplink_timestamp_seconds").unwrap();
    assert!((seen - (t0 + 590.0)).abs() < 1e-3, "{out}");
    let temp = format!(
        "ttn_device_payload_value{{application=\"app1@ttn\",dev_eui=\"70B3D57ED005B89A\",device_id=\"feather-1\",field=\"temperature_c\",instance=\"127.0.0.1:{}\",job=\"ttn-devices\"}}",
        m.port
    );
    assert_eq!(value_of(&out, &temp), Some(29.0), "{out}");
    assert!(
        out.contains(&format!(
            "up{{instance=\"127.0.0.1:{}\",job=\"ttn-devices\"}} 1",
            m.port
        )),
        "{out}"
    );
    let (ok, out, err) = run_bin(vec!["check".into(), "--config".into(), cfg_file]).await;
    assert!(ok, "{err}\n{out}");
    for want in [
        "DEVICE",
        "feather-1",
        "42.9% (6 lost)",
        "eui-aa555a0000000101",
        "-68 dBm / 9.25 dB",
        "temperature_c=29",
        "feather-2",
        "SILENT",
        "quirky",
        "1 unreadable messages",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains(KEY) && !err.contains(KEY));
}

/// The simulator's built-in remote-write receiver: a `[[sink]]` table pointing at it, what it
/// received, and the token that stops it.
async fn built_in_receiver() -> (
    String,
    pushrelay::sim::receiver::Store,
    tokio_util::sync::CancellationToken,
) {
    let rx = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let store = pushrelay::sim::receiver::Store::default();
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(pushrelay::sim::receiver::serve_receiver(
        rx,
        cancel.clone(),
        store.clone(),
    ));
    let sink = format!("[[sink]]\ntype = \"remote_write\"\nname = \"rx\"\nurl = \"http://{rx_addr}/api/v1/write\"\nbatch_wait = \"100ms\"\n");
    (sink, store, cancel)
}

#[tokio::test]
async fn wrong_credentials_and_tls_fail_with_one_clear_line_and_up_0() {
    let m = Mosquitto::start(&[(APP, KEY)]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let plain = format!("mqtt://127.0.0.1:{}", m.port);

    // A wrong key: the daemon keeps retrying with one log line, `up 0`, no crash.
    let (logbuf, guard) = capture_logs();
    let wrong = source_toml(&plain, "").replace(KEY, "NNSXS.WRONG.KEY");
    let (sink, store, cancel) = built_in_receiver().await;
    let (relay, h, _) = start_relay(&(relay_toml(&state, &wrong, None) + &sink));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let up = wait_for(Duration::from_secs(20), || async {
        let s = store.lock().unwrap();
        s.series
            .iter()
            .find(|(k, _)| k.starts_with("up{") && k.contains("ttn-devices"))
            .map(|(_, v)| v.clone())
    })
    .await;
    assert!(
        !up.is_empty() && up.iter().all(|(_, v)| *v == 0.0),
        "{up:?}"
    );
    relay.cancel();
    h.await.unwrap().unwrap();
    drop(guard);
    let l = logs(&logbuf);
    assert_eq!(l.matches("refused user app1@ttn").count(), 1, "{l}");
    assert_eq!(l.matches("source down").count(), 1, "{l}");
    assert!(l.contains("right to read application traffic"), "{l}");
    assert!(!l.contains("NNSXS.WRONG.KEY"), "{l}");
    assert!(
        m.logs().matches("not authorised").count() >= 2,
        "it retried:\n{}",
        m.logs()
    );

    // `print` with the wrong key: exit 1, the reason, `up 0`.
    let cfg = write_file(dir.path(), "wrong.toml", &relay_toml(&state, &wrong, None));
    let (ok, out, err) = run_bin(vec!["print".into(), "--config".into(), cfg]).await;
    assert!(!ok);
    assert!(err.contains("refused user app1@ttn"), "{err}");
    assert!(out.contains("up{instance=") && out.contains("} 0"), "{out}");

    // A subscription outside the key's application (the ACL refuses it, as the Stack does).
    let other =
        source_toml(&plain, "").replace("application = \"app1@ttn\"", "application = \"app2@ttn\"");
    let cfg = write_file(dir.path(), "other.toml", &relay_toml(&state, &other, None));
    let (ok, _, err) = run_bin(vec!["print".into(), "--config".into(), cfg]).await;
    assert!(!ok, "{err}");
    assert!(err.contains("refused"), "{err}");

    // TLS with the test CA (by address and by name): up; without it: a TLS failure naming the
    // fix; insecure_skip_verify: up.
    let ca = m.ca_file.display().to_string();
    for (host, tls, good) in [
        ("127.0.0.1", format!("tls = {{ ca_file = {ca:?} }}"), true),
        ("localhost", format!("tls = {{ ca_file = {ca:?} }}"), true),
        ("127.0.0.1", String::new(), false),
        (
            "127.0.0.1",
            "tls = { insecure_skip_verify = true }".to_string(),
            true,
        ),
    ] {
        let src = source_toml(&format!("mqtts://{host}:{}", m.tls_port), &tls);
        let cfg = write_file(dir.path(), "tls.toml", &relay_toml(&state, &src, None));
        let (ok, out, err) = run_bin(vec!["print".into(), "--config".into(), cfg]).await;
        assert_eq!(ok, good, "{host} {tls}\n{err}\n{out}");
        if good {
            assert!(out.contains("} 1"), "{out}");
        } else {
            assert!(
                err.contains("TLS with 127.0.0.1") && err.contains("tls.ca_file"),
                "{err}"
            );
        }
    }
    cancel.cancel();
}

#[test]
fn alert_rules_pass_promtool_check_and_test() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alerts/ttn-devices.yml");
    support::promtool::check_rules(&rules, 4);

    // Series over two hours, one sample a minute: the alerts fire for the devices that deserve
    // them, at the right time, and stay quiet for the others.
    let l = |d: &str| {
        format!("{{job=\"ttn-devices\",instance=\"eu1:8883\",application=\"app1@ttn\",device_id=\"{d}\"}}")
    };
    let g = |d: &str, gw: &str| {
        format!("{{job=\"ttn-devices\",instance=\"eu1:8883\",application=\"app1@ttn\",device_id=\"{d}\",gateway_id=\"{gw}\"}}")
    };
    let tests = format!(
        r#"rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # healthy: sends every minute, no loss, good link.
      - series: 'ttn_device_last_uplink_timestamp_seconds{h}'
        values: '0+60x120'
      - series: 'ttn_device_expected_interval_seconds{h}'
        values: '300x120'
      - series: 'ttn_device_uplinks_total{h}'
        values: '0+1x120'
      - series: 'ttn_device_uplinks_lost_total{h}'
        values: '0x120'
      - series: 'ttn_device_snr_db{hg}'
        values: '8x120'
      - series: 'ttn_device_spreading_factor{h}'
        values: '7x120'
      # silent: last heard at 0, expected every 5 minutes: silent after 15 minutes (+1m for).
      - series: 'ttn_device_last_uplink_timestamp_seconds{s}'
        values: '0x120'
      - series: 'ttn_device_expected_interval_seconds{s}'
        values: '300x120'
      # lossy: 1 of 5 frames lost (20 %); mild: 1 of 20 (5 %).
      - series: 'ttn_device_uplinks_total{lo}'
        values: '0+4x120'
      - series: 'ttn_device_uplinks_lost_total{lo}'
        values: '0+1x120'
      - series: 'ttn_device_uplinks_total{mi}'
        values: '0+19x120'
      - series: 'ttn_device_uplinks_lost_total{mi}'
        values: '0+1x120'
      # weak: SF12 at -18.5 dB (1.5 dB above the floor), SF10 at -10 dB is fine.
      - series: 'ttn_device_snr_db{wg}'
        values: '-18.5x120'
      - series: 'ttn_device_spreading_factor{w}'
        values: '12x120'
      - series: 'ttn_device_snr_db{fg}'
        values: '-10x120'
      - series: 'ttn_device_spreading_factor{f}'
        values: '10x120'
      - series: 'up{{job="ttn-devices",instance="eu1:8883"}}'
        values: '1x60 0x60'
    alert_rule_test:
      - eval_time: 15m
        alertname: TtnDeviceSilent
        exp_alerts: []
      - eval_time: 17m
        alertname: TtnDeviceSilent
        exp_alerts:
          - exp_labels: {{severity: warning, job: ttn-devices, instance: "eu1:8883", application: app1@ttn, device_id: silent}}
            exp_annotations:
              summary: "LoRaWAN device silent is silent"
              description: "Device silent of app1@ttn has sent nothing for more than three times its expected interval."
      - eval_time: 10m
        alertname: TtnDeviceUplinkLoss
        exp_alerts: []
      - eval_time: 30m
        alertname: TtnDeviceUplinkLoss
        exp_alerts:
          - exp_labels: {{severity: warning, job: ttn-devices, instance: "eu1:8883", application: app1@ttn, device_id: lossy}}
            exp_annotations:
              summary: "LoRaWAN device lossy loses uplinks"
              description: "Device lossy of app1@ttn lost more than 10 % of its uplinks over the last hour."
      - eval_time: 20m
        alertname: TtnDeviceWeakLink
        exp_alerts: []
      - eval_time: 40m
        alertname: TtnDeviceWeakLink
        exp_alerts:
          - exp_labels: {{severity: info, job: ttn-devices, instance: "eu1:8883", application: app1@ttn, device_id: weak}}
            exp_annotations:
              summary: "LoRaWAN device weak has a weak radio link"
              description: "Device weak of app1@ttn is heard at most 1.5 dB above the demodulation floor."
      - eval_time: 65m
        alertname: TtnDevicesSourceDown
        exp_alerts: []
      - eval_time: 75m
        alertname: TtnDevicesSourceDown
        exp_alerts:
          - exp_labels: {{severity: warning, job: ttn-devices, instance: "eu1:8883"}}
            exp_annotations:
              summary: "pushrelay cannot reach The Things Stack's MQTT server (eu1:8883)"
              description: "The ttn_devices source has been down for 10 minutes; see the relay's log for the reason."
"#,
        rules = rules.display(),
        h = l("healthy"),
        hg = g("healthy", "gw-a"),
        s = l("silent"),
        lo = l("lossy"),
        mi = l("mild"),
        w = l("weak"),
        wg = g("weak", "gw-a"),
        f = l("fine"),
        fg = g("fine", "gw-a"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ttn-devices.test.yml");
    std::fs::write(&file, tests).unwrap();
    support::promtool::test_rules(&file);
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let d = grafana::load("ttn-devices");
    grafana::assert_uses_ds_prometheus_input(&d);
    let exprs = grafana::all_exprs(&d);
    assert!(exprs.len() >= 18, "{}", exprs.len());

    let m = Mosquitto::start(&[(APP, KEY)]);
    let prom = Receiver::prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    let (relay, h, _) = start_relay(&relay_toml(
        &dir.path().join("state"),
        &source_toml(&url, ""),
        Some(&prom),
    ));
    subscribed(&m, 1).await;
    let stack = Stack::connect(&m).await;
    let t = now();
    // Frames over several pushes (one a second), with a gap and a join in between.
    for (f, key) in [
        (1, "k1"),
        (2, "k1"),
        (5, "k1"),
        (0, "k2"),
        (1, "k2"),
        (3, "k2"),
    ] {
        if f == 0 {
            stack
                .send(
                    &topic(APP, "feather-1", "join"),
                    join_json(APP, "feather-1", "70B3D57ED005B89A", key),
                )
                .await;
        }
        stack.up(&feather(f, key, now())).await;
        let mut other = UplinkSpec::new("feather-2", "70B3D57ED005B89B", 10 + f);
        other.received_at = at(t - 3600.0);
        stack.up(&other).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    wait_for(Duration::from_secs(30), || async {
        (prom_value(&prom, "ttn_device_uplinks_total{device_id=\"feather-1\"}").await? == 6.0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for e in &exprs {
        let q = grafana::concrete(
            e,
            &[
                ("application", ".+"),
                ("device", ".+"),
                ("job", "ttn-devices"),
            ],
        );
        let r = prom.query(&q, now()).await;
        assert!(
            r.as_array().is_some_and(|a| !a.is_empty()),
            "no data for {e}\n(as {q})"
        );
    }
    relay.cancel();
    h.await.unwrap().unwrap();
}

/// The README's memory figure: the relay binary (`PUSHRELAY_BIN`, e.g. a release build; else
/// this test's build) with a ttn_devices source subscribed to mosquitto and 20 devices sending
/// one uplink a second each, against the same relay with no source, for 40 s each. Run:
/// `PUSHRELAY_BIN=target/release/pushrelay cargo test --test ttn_devices -- --ignored --nocapture bench_`.
#[tokio::test]
#[ignore = "benchmark"]
async fn bench_rss_of_the_mqtt_source() {
    let bin = std::env::var("PUSHRELAY_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pushrelay").to_string());
    let m = Mosquitto::start(&[(APP, KEY)]);
    let (sink, store, cancel) = built_in_receiver().await;
    let url = format!("mqtt://127.0.0.1:{}", m.port);
    let stack = Stack::connect(&m).await;
    let mut results = Vec::new();
    for (label, source) in [
        ("no source", String::new()),
        (
            "ttn_devices, 20 devices at 1 uplink/s",
            source_toml(&url, ""),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_file(
            dir.path(),
            "p.toml",
            &(relay_toml(&dir.path().join("state"), &source, None) + &sink),
        );
        let mut child = std::process::Command::new(&bin)
            .args(["run", "--config", &cfg, "--log-level", "warn"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let (mut rss, mut hwm) = (Vec::new(), 0.0);
        for s in 0..40u32 {
            for d in 0..20 {
                let mut u =
                    UplinkSpec::new(&format!("dev-{d:02}"), &format!("70B3D57ED00000{d:02}"), s);
                u.received_at = SystemTime::now();
                stack.up(&u).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if s >= 20 {
                rss.push(support::proc_status_mib(pid, "VmRSS:"));
            }
            hwm = support::proc_status_mib(pid, "VmHWM:");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        rss.sort_by(f64::total_cmp);
        results.push((label, rss[rss.len() / 2], hwm));
    }
    for (label, rss, hwm) in &results {
        println!("{label}: steady RSS {rss:.2} MiB (median of the last 20 s), peak {hwm:.2} MiB");
    }
    println!(
        "the MQTT source adds {:.2} MiB steady, {:.2} MiB peak",
        results[1].1 - results[0].1,
        results[1].2 - results[0].2
    );
    let series = store
        .lock()
        .unwrap()
        .series
        .keys()
        .filter(|k| k.starts_with("ttn_device_uplinks_total"))
        .count();
    assert_eq!(series, 20);
    cancel.cancel();
}
