//! The `ttn` source against the simulated The Things Stack (`pushrelay::sim::ttn`): discovery
//! with pagination, batch vs per-gateway stats and the fallback being remembered, other
//! clusters, 401/403/429 bodies, every JSON quirk through `pushrelay print` and `check`, and a
//! gateway that disconnects and reconnects while the relay pushes to a real Prometheus (counters
//! restart, `connected` follows, last-seen survives a relay restart). Also the alert rules
//! (`examples/alerts/ttn.yml`), checked by promtool and evaluated on what the relay pushed.

use crate::support;
use crate::support::now;
use crate::support::{capture_logs, logs};

use std::path::Path;
use std::time::{Duration, Instant};

use pushrelay::model::Family;
use pushrelay::sim::ttn::{BatchMode, Link, ListMode, SimGateway, TtnSim};
use pushrelay::sources::{BuildContext, Source};
use serde_json::Value;
use support::fakes::start_relay;
use support::receivers::{wait_for, Receiver};
use tokio_util::sync::CancellationToken;

const KEY: &str = "NNSXS.TESTKEY.SECRETPARTDONOTLOG";

fn source_toml(sim: &TtnSim, extra: &str) -> String {
    format!(
        "[[source]]\ntype = \"ttn\"\nname = \"ttn\"\nurl = \"{}\"\napi_key = \"{KEY}\"\n{extra}\n",
        sim.url
    )
}

/// Builds the source alone (no relay), for precise call counting.
fn build_source(toml_text: &str, state_dir: &Path) -> Box<dyn Source> {
    let cfg = pushrelay::config::parse(toml_text, "test.toml", &|k| std::env::var(k).ok())
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = BuildContext {
        state_dir: state_dir.to_path_buf(),
        persist: true,
        check_all: false,
        clock: Default::default(),
    };
    cfg.sources[0].build(&ctx).unwrap()
}

fn text(f: &[Family]) -> String {
    pushrelay::expfmt::to_text(f, false)
}

/// The value of the one line starting with `series ` in an exposition, if any.
fn value_of(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Runs the real binary (off the runtime thread, so the simulator keeps answering).
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

fn write_config(dir: &tempfile::TempDir, body: &str) -> String {
    let p = dir.path().join("pushrelay.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &p,
        format!(
            "[relay]\nstate_dir = {:?}\n\n{body}",
            state.to_string_lossy()
        ),
    )
    .unwrap();
    p.to_string_lossy().to_string()
}

#[tokio::test]
async fn print_parses_every_quirk_into_exact_series() {
    let cancel = CancellationToken::new();
    let mut fleet = TtnSim::fleet("q-");
    let mut quiet = SimGateway::new("q-quiet", Some("b827ebfffe0000aa"));
    quiet.uplink_rate = 0.0;
    fleet.push(quiet);
    let sim = TtnSim::start(cancel.clone(), KEY, fleet).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, &source_toml(&sim, "compat_names = true"));
    let (ok, out, err) = run_bin(vec!["print".into(), "--config".into(), cfg.clone()]).await;
    assert!(ok, "print failed: {err}\n{out}");
    assert!(!out.contains("SECRETPART") && !err.contains("SECRETPART"));
    // Every series has the relay's job and instance; leave them out to compare the rest.
    let instance = sim.url.trim_start_matches("http://");
    let out = out.replace(&format!(",instance=\"{instance}\",job=\"ttn\""), "");

    let h = "gateway_eui=\"B827EBFFFE000001\",gateway_id=\"q-healthy\"";
    let busy = "gateway_eui=\"B827EBFFFE000002\",gateway_id=\"q-busy\"";
    let disc = "gateway_eui=\"B827EBFFFE000003\",gateway_id=\"q-disconnected\"";
    let gone = "gateway_eui=\"B827EBFFFE000004\",gateway_id=\"q-gone\"";
    let station = "gateway_id=\"q-station\"";
    for (series, want) in [
        (format!("ttn_gateway_connected{{{h}}}"), 1.0),
        (format!("ttn_gateway_connected{{{busy}}}"), 1.0),
        (format!("ttn_gateway_connected{{{disc}}}"), 0.0),
        (format!("ttn_gateway_connected{{{gone}}}"), 0.0),
        // The Basics Station gateway has no EUI (label left out) and lives on the other cluster.
        (format!("ttn_gateway_connected{{{station}}}"), 1.0),
        (format!("ttn_gateway_round_trip_seconds{{{h},quantile=\"0\"}}"), 0.041),
        (format!("ttn_gateway_round_trip_seconds{{{h},quantile=\"0.5\"}}"), 0.067),
        (format!("ttn_gateway_round_trip_seconds{{{h},quantile=\"1\"}}"), 0.188002113),
        (format!("ttn_gateway_round_trip_samples{{{h}}}"), 20.0),
        (format!("ttn_gateway_sub_band_downlink_utilization_ratio{{{busy},max_frequency_hz=\"868600000\",min_frequency_hz=\"868000000\"}}"), 0.0093),
        (format!("ttn_gateway_sub_band_downlink_utilization_limit_ratio{{{busy},max_frequency_hz=\"868600000\",min_frequency_hz=\"868000000\"}}"), 0.01),
        (format!("ttn_gateway_sub_band_downlink_utilization_ratio{{{busy},max_frequency_hz=\"18446744073709551615\",min_frequency_hz=\"0\"}}"), 0.0),
        (format!("ttn_gateway_status_metric{{{h},metric=\"ackr\"}}"), 100.0),
        (format!("ttn_gateway_status_metric{{{h},metric=\"temp\"}}"), 41.5),
        (format!("ttn_gateway_latitude_degrees{{{h}}}"), 52.3702),
        (format!("ttn_gateway_longitude_degrees{{{h}}}"), 4.8952),
        (format!("ttn_gateway_altitude_meters{{{h}}}"), 12.0),
        (format!("ttn_gateway_info{{frequency_plan=\"EU_863_870_TTN\",{h},name=\"Rooftop \\\"Noord\\\"\",protocol=\"udp\",stack_version=\"3.35.2\"}}"), 1.0),
        (format!("ttn_gateway_info{{frequency_plan=\"US_902_928_FSB_2\",{station},name=\"Station on nam1\",protocol=\"semtechws/lbslns\"}}"), 1.0),
        (format!("ttn_gateway_info{{frequency_plan=\"EU_863_870_TTN\",{gone},name=\"Old barn\"}}"), 1.0),
    ] {
        assert_eq!(value_of(&out, &series), Some(want), "{series} in\n{out}");
    }
    // Counters: uint64 strings read as numbers (the healthy gateway has been up an hour at 0.5/s).
    let up = value_of(&out, &format!("ttn_gateway_uplink_messages_total{{{h}}}")).unwrap();
    assert!((1790.0..1900.0).contains(&up), "{up}");
    assert_eq!(
        value_of(
            &out,
            "ttn_gateway_messages_uplink_count{gateway_id=\"q-healthy\"}"
        ),
        Some(up)
    );
    assert!(
        value_of(&out, &format!("ttn_gateway_downlink_messages_total{{{h}}}")).unwrap() > 100.0
    );
    assert!(
        value_of(
            &out,
            &format!("ttn_gateway_tx_acknowledgments_total{{{h}}}")
        )
        .unwrap()
            > 100.0
    );
    // Timestamps: connected an hour ago, seen within seconds.
    let since = value_of(
        &out,
        &format!("ttn_gateway_connected_since_timestamp_seconds{{{h}}}"),
    )
    .unwrap();
    assert!((now() - since - 3600.0).abs() < 30.0, "{since}");
    let seen = value_of(
        &out,
        &format!("ttn_gateway_last_seen_timestamp_seconds{{{h}}}"),
    )
    .unwrap();
    assert!(now() - seen < 30.0, "{seen}");
    assert!(value_of(
        &out,
        &format!("ttn_gateway_last_status_timestamp_seconds{{{h}}}")
    )
    .is_some());
    assert!(value_of(
        &out,
        &format!("ttn_gateway_last_uplink_timestamp_seconds{{{h}}}")
    )
    .is_some());
    // The disconnected gateway: last seen = its disconnected_at (3 h ago); no fake zero counts.
    let dseen = value_of(
        &out,
        &format!("ttn_gateway_last_seen_timestamp_seconds{{{disc}}}"),
    )
    .unwrap();
    assert!((now() - dseen - 3.0 * 3600.0).abs() < 30.0, "{dseen}");
    for gw in [disc, gone] {
        for fam in [
            "uplink_messages_total",
            "downlink_messages_total",
            "tx_acknowledgments_total",
            "connected_since_timestamp_seconds",
            "round_trip_seconds",
            "status_metric",
            "sub_band_downlink_utilization_ratio",
        ] {
            assert!(
                !out.contains(&format!("ttn_gateway_{fam}{{{gw}")),
                "{fam} for {gw}:\n{out}"
            );
        }
    }
    // The gone gateway was never seen (by this relay or in the last 48 h): no last-seen series.
    assert!(!out.contains(&format!(
        "ttn_gateway_last_seen_timestamp_seconds{{{gone}}}"
    )));
    // Basics Station: no status metrics, no last-status time; the "0001-01-01" downlink time is unset.
    assert!(!out.contains(&format!("ttn_gateway_status_metric{{{station}")));
    assert!(!out.contains(&format!(
        "ttn_gateway_last_status_timestamp_seconds{{{station}"
    )));
    // A connected gateway without traffic: real zeros (the API omits zero counts), and its
    // "0001-01-01T00:00:00Z" downlink time is "never". Its EUI came lower-case: upper-cased.
    let quiet = "gateway_eui=\"B827EBFFFE0000AA\",gateway_id=\"q-quiet\"";
    assert_eq!(
        value_of(
            &out,
            &format!("ttn_gateway_uplink_messages_total{{{quiet}}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        value_of(
            &out,
            &format!("ttn_gateway_downlink_messages_total{{{quiet}}}")
        ),
        Some(0.0)
    );
    assert!(
        !out.contains(&format!(
            "ttn_gateway_last_downlink_timestamp_seconds{{{quiet}}}"
        )),
        "{out}"
    );
    assert!(
        !out.contains(&format!("ttn_gateway_round_trip_seconds{{{quiet}")),
        "{out}"
    );
    assert_eq!(
        sim.calls("stats@1") + sim.calls("batch@1"),
        1,
        "the other cluster was asked once"
    );
    // The list asked for an explicit limit and the field mask.
    let q = sim.with(|s| s.list_queries.clone());
    assert!(
        q.iter()
            .all(|q| q.contains("limit=") && q.contains("field_mask=")),
        "{q:?}"
    );

    // `check`: one row per gateway.
    let (ok, out, err) = run_bin(vec!["check".into(), "--config".into(), cfg]).await;
    assert!(ok, "check failed: {err}\n{out}");
    assert!(
        out.contains("GATEWAY") && out.contains("DUTY CYCLE"),
        "{out}"
    );
    let row = |id: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("no row {id}:\n{out}"))
            .to_string()
    };
    assert!(
        row("q-healthy").contains("connected 1h0m") && row("q-healthy").contains("67ms"),
        "{out}"
    );
    assert!(row("q-busy").contains("93% of 1.00%"), "{out}");
    assert!(row("q-disconnected").contains("offline since"), "{out}");
    assert!(row("q-gone").contains("never"), "{out}");
    cancel.cancel();
}

#[tokio::test]
async fn discovery_pages_and_finds_new_gateways() {
    let cancel = CancellationToken::new();
    let mut fleet: Vec<SimGateway> = (0..7)
        .map(|i| SimGateway::new(&format!("p-{i:02}"), Some(&format!("00000000000000{i:02}"))))
        .collect();
    fleet[3].eui = None;
    let sim = TtnSim::start(cancel.clone(), KEY, fleet).await.unwrap();
    sim.with(|s| s.page_cap = 3);
    let dir = tempfile::tempdir().unwrap();
    let mut src = build_source(
        &source_toml(&sim, "interval = \"2s\"\ndiscovery_interval = \"1s\""),
        dir.path(),
    );
    let out = text(&src.collect().await.unwrap());
    for i in 0..7 {
        assert!(out.contains(&format!("ttn_gateway_connected{{gateway_eui=\"00000000000000{i:02}\",gateway_id=\"p-{i:02}\"}} 1")) || i == 3, "{i}: {out}");
    }
    assert!(out.contains("ttn_gateway_connected{gateway_id=\"p-03\"} 1"));
    // 7 gateways, 3 per page: pages 1..3, stopping at X-Total-Count (no 4th call).
    assert_eq!(sim.calls("list"), 3);
    let q = sim.with(|s| s.list_queries.clone());
    assert!(
        q[2].contains("page=3") && q[0].contains("limit=1000"),
        "{q:?}"
    );
    // Not due yet: no list call.
    src.collect().await.unwrap();
    assert_eq!(sim.calls("list"), 3);
    // A new gateway appears after the discovery interval, without a restart.
    sim.with(|s| {
        s.gateways
            .push(SimGateway::new("p-new", Some("00000000000000AA")))
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = text(&src.collect().await.unwrap());
    assert!(out.contains("gateway_id=\"p-new\"} 1"), "{out}");
    assert_eq!(sim.calls("list"), 6);
    // A page past the end answers `{}`: without X-Total-Count-bounded stop we would see it; the
    // server also tolerates a client asking for it.
    cancel.cancel();
}

#[tokio::test]
async fn batch_is_used_and_absent_gateways_are_asked_once() {
    let cancel = CancellationToken::new();
    let sim = TtnSim::start(cancel.clone(), KEY, TtnSim::fleet("b-"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut src = build_source(&source_toml(&sim, "interval = \"2s\""), dir.path());
    src.collect().await.unwrap();
    // Home cluster: one batch (healthy, busy in; disconnected, gone absent → one GET each);
    // the other cluster: one batch with the station.
    assert_eq!((sim.calls("batch@0"), sim.calls("batch@1")), (1, 1));
    assert_eq!(sim.calls("stats"), 2);
    for _ in 0..3 {
        src.collect().await.unwrap();
    }
    // Steady state: one request per cluster per cycle; the absent ones are not asked again.
    assert_eq!(
        (
            sim.calls("batch@0"),
            sim.calls("batch@1"),
            sim.calls("stats")
        ),
        (4, 4, 2)
    );
    // Disconnecting the healthy gateway: absent from the batch → one GET → 200 with disconnected_at.
    sim.with(|s| s.gateway("b-healthy").disconnect());
    let out = text(&src.collect().await.unwrap());
    assert!(
        out.contains(
            "ttn_gateway_connected{gateway_eui=\"B827EBFFFE000001\",gateway_id=\"b-healthy\"} 0"
        ),
        "{out}"
    );
    assert!(
        !out.contains("ttn_gateway_uplink_messages_total{gateway_eui=\"B827EBFFFE000001\""),
        "{out}"
    );
    assert_eq!(sim.calls("stats"), 3);
    sim.with(|s| s.gateway("b-healthy").reconnect());
    let out = text(&src.collect().await.unwrap());
    assert!(out.contains("gateway_id=\"b-healthy\"} 1"), "{out}");
    assert_eq!(sim.calls("stats"), 3);
    cancel.cancel();
}

#[tokio::test]
async fn batch_refused_falls_back_per_gateway_and_remembers_it() {
    for mode in [BatchMode::Forbidden, BatchMode::NotImplemented] {
        let cancel = CancellationToken::new();
        let sim = TtnSim::start(cancel.clone(), KEY, TtnSim::fleet("f-"))
            .await
            .unwrap();
        sim.with(|s| s.batch = mode);
        let dir = tempfile::tempdir().unwrap();
        let (buf, _guard) = capture_logs();
        let mut src = build_source(&source_toml(&sim, "interval = \"2s\""), dir.path());
        let t0 = Instant::now();
        let out = text(&src.collect().await.unwrap());
        let took = t0.elapsed();
        assert!(
            out.contains("gateway_id=\"f-healthy\"} 1")
                && out.contains("gateway_id=\"f-station\"} 1"),
            "{out}"
        );
        assert!(out.contains("gateway_id=\"f-disconnected\"} 0"), "{out}");
        assert_eq!(sim.calls("batch"), 2, "{mode:?}: one probe per cluster");
        assert_eq!(sim.calls("stats"), 5);
        // Spread over half the interval (5 GETs in a 1 s window), not a burst.
        let times = sim.with(|s| s.stats_times.clone());
        let span = *times.last().unwrap() - times[0];
        assert!(span >= Duration::from_millis(600), "{span:?}");
        assert!(took < Duration::from_millis(1900), "{took:?}");
        for _ in 0..2 {
            src.collect().await.unwrap();
        }
        // Remembered: no new batch attempt until the next discovery.
        assert_eq!(sim.calls("batch"), 2);
        assert_eq!(sim.calls("stats"), 15);
        let l = logs(&buf);
        assert_eq!(l.matches("batch stats refused").count(), 2, "{l}");
        assert!(!l.contains("SECRETPART"));
        cancel.cancel();
    }
}

#[tokio::test]
async fn configured_gateways_with_a_gateway_key() {
    let cancel = CancellationToken::new();
    let sim = TtnSim::start(cancel.clone(), KEY, TtnSim::fleet("k-"))
        .await
        .unwrap();
    // A gateway-scoped key: listing gives `{}`, the batch call is refused.
    sim.with(|s| {
        s.list = ListMode::GatewayKey;
        s.batch = BatchMode::Forbidden;
    });
    let dir = tempfile::tempdir().unwrap();
    let (buf, _guard) = capture_logs();
    let mut src = build_source(&source_toml(&sim, ""), dir.path());
    for _ in 0..3 {
        assert!(src.collect().await.unwrap().is_empty());
    }
    let l = logs(&buf);
    assert_eq!(l.matches("cannot list them").count(), 1, "logged once: {l}");
    assert!(l.contains("gateways = ["), "{l}");

    let mut src = build_source(
        &source_toml(&sim, "gateways = [\"k-healthy\", \"k-station\"]"),
        dir.path(),
    );
    let list_before = sim.calls("list");
    let out = text(&src.collect().await.unwrap());
    assert_eq!(
        sim.calls("list"),
        list_before,
        "no listing with configured gateways"
    );
    assert_eq!(sim.calls("get"), 2);
    assert!(out.contains("name=\"Station on nam1\""), "{out}");
    assert!(
        out.contains("ttn_gateway_connected{gateway_id=\"k-station\"} 1"),
        "{out}"
    );
    assert!(!out.contains("k-busy"));
    cancel.cancel();
}

#[tokio::test]
async fn auth_errors_name_the_problem_once() {
    let cancel = CancellationToken::new();
    let sim = TtnSim::start(cancel.clone(), KEY, TtnSim::fleet("a-"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (buf, _guard) = capture_logs();

    // 401: a wrong key.
    let bad = format!(
        "[[source]]\ntype = \"ttn\"\nname = \"ttn\"\nurl = \"{}\"\napi_key = \"NNSXS.WRONG.KEY\"\n",
        sim.url
    );
    let mut src = build_source(&bad, dir.path());
    for _ in 0..3 {
        let e = src.collect().await.unwrap_err().to_string();
        assert!(
            e.contains("401") && e.contains("api_key_not_found") && e.contains("refused"),
            "{e}"
        );
    }
    assert_eq!(
        logs(&buf).matches("the API key was refused").count(),
        1,
        "{}",
        logs(&buf)
    );

    // 403 on the list naming the missing right.
    sim.with(|s| s.list = ListMode::Forbidden);
    let mut src = build_source(&source_toml(&sim, ""), dir.path());
    let e = src.collect().await.unwrap_err().to_string();
    assert!(e.contains("RIGHT_USER_GATEWAYS_LIST"), "{e}");
    sim.with(|s| s.list = ListMode::Works);

    // 403 on one gateway's stats: that gateway is unknown (no `connected` guess), the others are fine.
    sim.with(|s| {
        s.batch = BatchMode::Forbidden;
        s.stats_forbidden = vec!["a-busy".into()];
    });
    let mut src = build_source(&source_toml(&sim, "interval = \"1s\""), dir.path());
    for _ in 0..2 {
        let out = text(&src.collect().await.unwrap());
        assert!(out.contains("gateway_id=\"a-healthy\"} 1"), "{out}");
        assert!(
            !out.contains("ttn_gateway_connected{gateway_eui=\"B827EBFFFE000002\""),
            "{out}"
        );
        assert!(out.contains("ttn_gateway_info{frequency_plan=\"EU_863_870_TTN\",gateway_eui=\"B827EBFFFE000002\""), "{out}");
    }
    let l = logs(&buf);
    assert_eq!(
        l.matches("gateway a-busy: the API key lacks RIGHT_GATEWAY_STATUS_READ")
            .count(),
        1,
        "{l}"
    );
    assert!(!l.contains("SECRETPART"), "{l}");

    // Garbage instead of JSON: the source fails with the reason, nothing panics.
    sim.with(|s| s.garbage = true);
    let mut src = build_source(&source_toml(&sim, "interval = \"1s\""), dir.path());
    let e = src.collect().await.unwrap_err().to_string();
    assert!(e.contains("not JSON"), "{e}");
    sim.with(|s| s.garbage = false);

    // Everything down: the source fails (up 0) with the reason.
    sim.with(|s| s.down = true);
    let mut src = build_source(&source_toml(&sim, "interval = \"1s\""), dir.path());
    let e = src.collect().await.unwrap_err().to_string();
    assert!(e.contains("503"), "{e}");
    cancel.cancel();
}

#[tokio::test]
async fn rate_limits_are_waited_out_not_hammered() {
    let cancel = CancellationToken::new();
    let sim = TtnSim::start(cancel.clone(), KEY, TtnSim::fleet("r-"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One 429 with X-Rate-Limit-Retry: 1 → waited, then the same call succeeds.
    sim.with(|s| {
        s.rate_limit_next = 1;
        s.retry_secs = 1;
    });
    let mut src = build_source(&source_toml(&sim, "interval = \"4s\""), dir.path());
    let t0 = Instant::now();
    let out = text(&src.collect().await.unwrap());
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(out.contains("gateway_id=\"r-healthy\"} 1"), "{out}");
    assert_eq!(sim.calls("list"), 2);

    // A wait longer than the cycle: give up at once, and do not ask again before it has passed.
    sim.with(|s| {
        s.rate_limit_next = 1;
        s.retry_secs = 30;
    });
    let mut src = build_source(&source_toml(&sim, "interval = \"2s\""), dir.path());
    let t0 = Instant::now();
    let e = src.collect().await.unwrap_err().to_string();
    assert!(e.contains("rate limited"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(1));
    let calls = sim.calls("list");
    assert!(src.collect().await.is_err());
    assert_eq!(
        sim.calls("list"),
        calls,
        "no request before X-Rate-Limit-Retry has passed"
    );
    cancel.cancel();
}

/// The first result's value and labels.
fn first(v: &Value) -> Option<(Value, f64)> {
    let r = v.as_array()?.first()?;
    Some((r["metric"].clone(), r["value"][1].as_str()?.parse().ok()?))
}

fn relay_config(sim: &TtnSim, prom: &Receiver, state: &Path) -> String {
    format!(
        "[relay]\ninterval = \"1s\"\nstate_dir = {:?}\n\n{}\n[[sink]]\ntype = \"remote_write\"\nname = \"prom\"\nurl = \"{}\"\nbatch_wait = \"100ms\"\nmin_backoff = \"100ms\"\nmax_backoff = \"500ms\"\n",
        state.to_string_lossy(),
        source_toml(sim, "interval = \"1s\"\ndiscovery_interval = \"2s\"\ncompat_names = true"),
        prom.remote_write_url()
    )
}

#[tokio::test]
async fn disconnect_reconnect_and_restart_against_prometheus() {
    let prom = Receiver::prometheus().await;
    let cancel = CancellationToken::new();
    let mut fleet = TtnSim::fleet("p-");
    let mut quiet = SimGateway::new("p-quiet", Some("B827EBFFFE0000AA"));
    quiet.uplink_rate = 0.0;
    fleet.push(quiet);
    let sim = TtnSim::start(cancel.clone(), KEY, fleet).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let (relay, h, _) = start_relay(&relay_config(&sim, &prom, state.path()));

    let q = |s: &str| s.to_string();
    let connected = |id: &str| format!("ttn_gateway_connected{{gateway_id=\"{id}\"}}");
    let uplinks = |id: &str| format!("ttn_gateway_uplink_messages_total{{gateway_id=\"{id}\"}}");
    let (labels, v) = wait_for(Duration::from_secs(30), || async {
        first(&prom.query(&connected("p-healthy"), now()).await)
    })
    .await;
    assert_eq!(v, 1.0);
    assert_eq!(labels["gateway_eui"], "B827EBFFFE000001");
    assert_eq!(labels["job"], "ttn");
    // The gateway on the other cluster.
    assert_eq!(
        first(&prom.query(&connected("p-station"), now()).await)
            .unwrap()
            .1,
        1.0
    );
    assert!(sim.calls("batch@1") > 0);
    // compat_names: the seed exporter's names with gateway_id only.
    let (l, up0) = first(
        &prom
            .query(
                &q("ttn_gateway_messages_uplink_count{gateway_id=\"p-healthy\"}"),
                now(),
            )
            .await,
    )
    .unwrap();
    assert!(l.get("gateway_eui").is_none(), "{l}");
    let up1 = first(&prom.query(&uplinks("p-healthy"), now()).await)
        .unwrap()
        .1;
    assert!(up1 >= up0 && up1 > 1000.0);

    // Disconnect: `connected` follows within one interval (plus the push), the counters stop
    // (stale), last-seen stays.
    sim.with(|s| s.gateway("p-healthy").disconnect());
    let t_off = now();
    wait_for(Duration::from_secs(3), || async {
        first(&prom.query(&connected("p-healthy"), now()).await).filter(|(_, v)| *v == 0.0)
    })
    .await;
    assert!(now() - t_off < 3.0);
    assert!(
        prom.query(&uplinks("p-healthy"), now())
            .await
            .as_array()
            .unwrap()
            .is_empty(),
        "counter went stale"
    );
    let seen = first(
        &prom
            .query(
                &q("ttn_gateway_last_seen_timestamp_seconds{gateway_id=\"p-healthy\"}"),
                now(),
            )
            .await,
    )
    .unwrap()
    .1;
    assert!((seen - t_off).abs() < 2.0, "{seen} vs {t_off}");

    // Reconnect: connected again, and the counter restarted from 0.
    sim.with(|s| s.gateway("p-healthy").reconnect());
    wait_for(Duration::from_secs(3), || async {
        first(&prom.query(&connected("p-healthy"), now()).await).filter(|(_, v)| *v == 1.0)
    })
    .await;
    let (_, after) = wait_for(Duration::from_secs(5), || async {
        first(&prom.query(&uplinks("p-healthy"), now()).await)
    })
    .await;
    assert!(after < 10.0, "restarted counter: {after}");

    // A new gateway shows up without a restart (discovery every 2 s).
    sim.with(|s| s.gateways.push(SimGateway::new("p-late", None)));
    wait_for(Duration::from_secs(8), || async {
        first(&prom.query(&connected("p-late"), now()).await)
    })
    .await;

    // The alert expressions evaluate on this data (without their `for`).
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alerts/ttn.yml"),
    )
    .unwrap();
    let exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: ").map(str::to_string))
        .collect();
    assert_eq!(exprs.len(), 4);
    let ids = |v: Value| -> Vec<String> {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["metric"]["gateway_id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    assert_eq!(
        ids(prom.query(&exprs[0], now()).await),
        vec!["p-disconnected", "p-gone"]
    );
    // The healthy gateway may also match: it had only seconds of uplinks before its reconnect.
    let quiet = ids(prom.query(&exprs[1], now()).await);
    assert!(
        quiet.contains(&"p-quiet".to_string())
            && !quiet.contains(&"p-busy".to_string())
            && !quiet.contains(&"p-station".to_string()),
        "{quiet:?}"
    );
    assert_eq!(ids(prom.query(&exprs[2], now()).await), vec!["p-busy"]);
    assert!(prom
        .query(&exprs[3], now())
        .await
        .as_array()
        .unwrap()
        .is_empty());

    // Last seen survives a restart, and outlives the API's 48 h retention: the busy gateway
    // vanishes from the API (404) while the relay is stopped.
    let busy_seen = first(
        &prom
            .query(
                &q("ttn_gateway_last_seen_timestamp_seconds{gateway_id=\"p-busy\"}"),
                now(),
            )
            .await,
    )
    .unwrap()
    .1;
    relay.cancel();
    h.await.unwrap().unwrap();
    sim.with(|s| s.gateway("p-busy").link = Link::Never);
    let t_restart = now();
    let (relay, h, _) = start_relay(&relay_config(&sim, &prom, state.path()));
    let (_, seen_after) = wait_for(Duration::from_secs(10), || async {
        let c = first(&prom.query(&connected("p-busy"), now()).await).filter(|(_, v)| *v == 0.0);
        c?;
        first(
            &prom
                .query(
                    &q("ttn_gateway_last_seen_timestamp_seconds{gateway_id=\"p-busy\"}"),
                    now(),
                )
                .await,
        )
    })
    .await;
    assert!(now() - t_restart < 10.0);
    assert!(
        (seen_after - busy_seen).abs() < 2.0 && busy_seen > t_restart - 30.0,
        "{seen_after} vs {busy_seen}"
    );
    relay.cancel();
    h.await.unwrap().unwrap();
    cancel.cancel();
}

#[test]
fn alert_rules_pass_promtool() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alerts/ttn.yml");
    support::promtool::check_rules(&rules, 4);
}

/// The README's benchmark note: API calls per cycle for N gateways (batch vs per-gateway),
/// and the release relay's memory while polling 100 and 1,000 gateways. Run by `bench/ttn_calls.sh`:
/// `cargo test --release --test ttn -- --ignored --nocapture bench_`.
#[tokio::test]
#[ignore = "benchmark; run by bench/ttn_calls.sh"]
async fn bench_api_calls_and_rss() {
    let fleet = |n: usize| -> Vec<SimGateway> {
        (0..n)
            .map(|i| {
                let mut g = SimGateway::new(&format!("gw-{i:04}"), Some(&format!("{i:016X}")));
                // One in ten is on another cluster, one in twenty has gone.
                g.cluster = usize::from(i % 10 == 9);
                if i % 20 == 3 {
                    g.link = Link::Never;
                }
                g
            })
            .collect()
    };
    println!("| gateways | batch: calls per cycle | per-gateway: calls per cycle | first cycle (batch) |");
    println!("| ---: | ---: | ---: | ---: |");
    for n in [1usize, 10, 100, 250, 1000] {
        let mut per_mode = Vec::new();
        let mut first = 0;
        for mode in [BatchMode::Works, BatchMode::Forbidden] {
            let cancel = CancellationToken::new();
            let sim = TtnSim::start(cancel.clone(), KEY, fleet(n)).await.unwrap();
            sim.with(|s| s.batch = mode);
            let dir = tempfile::tempdir().unwrap();
            let mut src = build_source(&source_toml(&sim, "interval = \"5s\""), dir.path());
            src.collect().await.unwrap();
            let total = |s: &TtnSim| {
                s.with(|s| {
                    s.calls
                        .iter()
                        .filter(|(k, _)| !k.contains('@'))
                        .map(|(_, v)| v)
                        .sum::<u64>()
                })
            };
            if mode == BatchMode::Works {
                first = total(&sim);
            }
            let before = total(&sim);
            for _ in 0..3 {
                src.collect().await.unwrap();
            }
            per_mode.push((total(&sim) - before) as f64 / 3.0);
            cancel.cancel();
        }
        println!("| {n} | {} | {} | {first} |", per_mode[0], per_mode[1]);
    }

    // Memory: the relay binary polling 100 and 1,000 gateways every 2 s for 40 s each.
    for gateways in [100usize, 1000] {
        let cancel = CancellationToken::new();
        let sim = TtnSim::start(cancel.clone(), KEY, fleet(gateways))
            .await
            .unwrap();
        let rx = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx_addr = rx.local_addr().unwrap();
        let store = pushrelay::sim::receiver::Store::default();
        tokio::spawn(pushrelay::sim::receiver::serve_receiver(
            rx,
            cancel.clone(),
            store.clone(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let sink = format!(
            "[[sink]]\ntype = \"remote_write\"\nname = \"rx\"\nurl = \"http://{rx_addr}/api/v1/write\"\n"
        );
        let cfg = write_config(
            &dir,
            &format!("{}\n{sink}", source_toml(&sim, "interval = \"2s\"")),
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .args(["run", "--config", &cfg, "--log-level", "warn"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut rss = Vec::new();
        let mut hwm = 0.0;
        for s in 0..40 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if s >= 20 {
                rss.push(support::proc_status_mib(pid, "VmRSS:"));
            }
            hwm = support::proc_status_mib(pid, "VmHWM:");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        rss.sort_by(f64::total_cmp);
        let series = store.lock().unwrap().series.len();
        let steady = rss[rss.len() / 2];
        println!(
            "\nrelay polling {gateways} gateways every 2 s: steady RSS (median of the last 20 s) \
             {steady:.1} MiB, peak {hwm:.1} MiB, {series} series received"
        );
        assert!(series > 10 * gateways, "{series}");
        cancel.cancel();
    }
}
