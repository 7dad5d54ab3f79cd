//! The `emqx` source against the simulated EMQX v5 API (`pushrelay::sim::emqx`): paging,
//! 5.6 multi-`clientid` versus the per-client fallback, every quirk of the facts, counters kept
//! across reconnects and relay restarts (checked in a real Prometheus), forgetting, faults,
//! and the `check` table.

use crate::support;
use crate::support::now;

use std::path::Path;
use std::time::Duration;

use pushrelay::relay::{poll_all_once, OneShot, PollResult};
use pushrelay::sim::emqx::{EmqxSim, Fault, SimClient};
use serde_json::Value;
use support::fakes::start_relay;
use support::receivers::{wait_for, Receiver};

const P: &str = "emqx_client_monitor";

fn config_text(sim: &EmqxSim, state_dir: &Path, extra: &str) -> String {
    format!(
        r#"
[relay]
interval = "1s"
state_dir = "{}"

[[source]]
type = "emqx"
name = "emqx"
url = "{}"
api_key = "key"
api_secret = "s3cret-value"
{extra}
"#,
        state_dir.display(),
        sim.url
    )
}

/// One poll that saves state, as `once` (and every poll of `run`) does.
async fn poll(sim: &EmqxSim, state_dir: &Path, extra: &str) -> PollResult {
    // A one-shot poll: the interval only bounds the poll's timeout, so it is generous here for
    // a loaded machine (thousands of simulated clients in a debug build).
    let text =
        config_text(sim, state_dir, extra).replace(r#"interval = "1s""#, r#"interval = "20s""#);
    let cfg =
        pushrelay::config::parse(&text, "t.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    poll_all_once(&cfg, OneShot::Push).await.unwrap().remove(0)
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(r: &PollResult, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = r
        .snapshot
        .families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().copied()
}

fn series_of(r: &PollResult, client_id: &str) -> usize {
    r.snapshot
        .families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.labels.get("client_id") == Some(client_id))
        .count()
}

fn rx(name: &str, id: &str, r: &PollResult) -> Option<f64> {
    value(
        r,
        &format!("{P}_{name}"),
        &[("client_id", id), ("direction", "rx")],
    )
}

async fn sim() -> EmqxSim {
    EmqxSim::start("key", "s3cret-value").await.unwrap()
}

#[tokio::test]
async fn all_clients_mode_pages_until_hasnext_is_false() {
    let sim = sim().await;
    for i in 0..2105 {
        sim.add(SimClient::new(&format!("dev-{i:04}")));
    }
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(r.error, None);
    let pages: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|q| q.starts_with("/api/v5/clients?"))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].contains("page=3") && pages[2].contains("limit=1000"));
    // Every client on every page, each with alias = client id.
    let connected = r
        .snapshot
        .families
        .iter()
        .find(|f| f.name == format!("{P}_connected"))
        .unwrap();
    assert_eq!(connected.samples.len(), 2105);
    assert_eq!(
        value(
            &r,
            &format!("{P}_connected"),
            &[
                ("client_id", "dev-2104"),
                ("alias", "dev-2104"),
                ("broker", "LocalEMQX")
            ]
        ),
        Some(1.0)
    );

    // Without `count`, `hasnext` alone decides.
    sim.state().omit_count = true;
    sim.clear_requests();
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(r.error, None);
    assert_eq!(sim.requests().len(), 3);

    // A server that serves fewer per page than asked (its meta.limit says how many).
    sim.state().cap_limit = Some(500);
    sim.state().omit_count = false;
    sim.clear_requests();
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(r.error, None);
    assert_eq!(sim.requests().len(), 5);
    let connected = r
        .snapshot
        .families
        .iter()
        .find(|f| f.name == format!("{P}_connected"))
        .unwrap();
    assert_eq!(connected.samples.len(), 2105);
}

#[tokio::test]
async fn multi_clientid_on_5_6_and_per_client_fallback_on_older_brokers() {
    let clients = r#"clients = [ { client_id = "a", alias = "A" }, { client_id = "b" }, { client_id = "c/ü" }, { client_id = "offline" } ]"#;
    for multi in [true, false] {
        let sim = sim().await;
        sim.set_multi_clientid(multi);
        for id in ["a", "b", "c/ü", "other"] {
            sim.add(SimClient::new(id));
        }
        let dir = tempfile::tempdir().unwrap();
        // The first poll detects; the later ones use what it found.
        for _ in 0..3 {
            let r = poll(&sim, dir.path(), clients).await;
            assert_eq!(r.error, None);
        }
        sim.clear_requests();
        let r = poll(&sim, dir.path(), clients).await;
        let reqs = sim.requests();
        let conn = |id| value(&r, &format!("{P}_connected"), &[("client_id", id)]);
        assert_eq!(conn("a"), Some(1.0), "multi={multi}");
        assert_eq!(conn("b"), Some(1.0), "multi={multi}");
        assert_eq!(conn("c/ü"), Some(1.0), "multi={multi}");
        assert_eq!(conn("offline"), Some(0.0), "multi={multi}");
        assert_eq!(conn("other"), None, "not monitored");
        assert_eq!(
            value(&r, &format!("{P}_connected"), &[("client_id", "a")]),
            value(&r, &format!("{P}_connected"), &[("alias", "A")])
        );
        assert_eq!(
            value(&r, &format!("{P}_connected"), &[("alias", "b")]),
            Some(1.0),
            "alias defaults to the client id"
        );
        // Each poll builds a fresh source (as print/once do), so detection runs again: count
        // what one detection-and-poll costs.
        if multi {
            assert!(
                reqs.len() <= 2,
                "5.6 needs the list (plus at most one probe): {reqs:?}"
            );
            assert!(reqs[0].contains("clientid=a&clientid=b"), "{reqs:?}");
        } else {
            let singles: Vec<&String> = reqs
                .iter()
                .filter(|q| q.starts_with("/api/v5/clients/"))
                .collect();
            assert_eq!(singles.len(), 4, "{reqs:?}");
            assert!(
                reqs.iter().any(|q| q == "/api/v5/clients/c%2F%C3%BC"),
                "{reqs:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_running_relay_detects_once_and_then_asks_as_few_times_as_it_can() {
    for (multi, per_poll) in [(true, 1), (false, 3)] {
        let sim = sim().await;
        sim.set_multi_clientid(multi);
        for id in ["a", "b", "c"] {
            sim.add(SimClient::new(id));
        }
        // Only the last id is online: the first answer is ambiguous, so the probe decides.
        sim.remove("a");
        sim.remove("b");
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(
            &sim,
            dir.path(),
            r#"clients = [ { client_id = "a" }, { client_id = "b" }, { client_id = "c" } ]"#,
        );
        let (cancel, h, _) = start_relay(&text);
        wait_for(Duration::from_secs(10), || async {
            (sim.requests().len() >= 5).then_some(())
        })
        .await;
        sim.add(SimClient::new("a"));
        sim.clear_requests();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let reqs = sim.requests();
        cancel.cancel();
        h.await.unwrap().unwrap();
        // At least one whole poll after detection (timing on a loaded machine varies), and
        // no detection requests any more.
        assert!(reqs.len() >= per_poll, "multi={multi}: {reqs:?}");
        if multi {
            assert!(reqs
                .iter()
                .all(|q| q.contains("clientid=a&clientid=b&clientid=c")));
        } else {
            assert!(reqs.iter().all(|q| q.starts_with("/api/v5/clients/")));
        }
    }
}

#[tokio::test]
async fn accepts_every_quirk_emqx_sends() {
    let sim = sim().await;
    sim.state().offset_minutes = -330;
    sim.add(SimClient::new("nulls").without_username().with_null_dates());
    let mut dated = SimClient::new("dated");
    dated.created_at_ms = 1_763_772_688_905;
    dated.connected_at_ms = 1_763_772_700_001;
    sim.add(dated);
    sim.add(SimClient::new("persistent").persistent().publishing(3));
    sim.add(SimClient::new("durable").durable().publishing(2));
    sim.tick();
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let flags = "enable_dates = true\nenable_qos_split = true\nenable_dropped_counters = true\nenable_reason_split = true";
    let r = poll(&sim, dir.path(), flags).await;
    assert_eq!(r.error, None);
    // -05:30 offset with 3 fractional digits, read exactly.
    assert_eq!(
        value(&r, &format!("{P}_created_at"), &[("client_id", "dated")]),
        Some(1_763_772_688.905)
    );
    assert_eq!(
        value(&r, &format!("{P}_connected_at"), &[("client_id", "dated")]),
        Some(1_763_772_700.001)
    );
    // Null dates: no date series, everything else reported.
    assert_eq!(
        value(&r, &format!("{P}_created_at"), &[("client_id", "nulls")]),
        None
    );
    assert_eq!(rx("messages_processed_total", "nulls", &r), Some(2.0));
    // Dotted keys.
    assert_eq!(
        value(
            &r,
            &format!("{P}_messages_processed_by_qos_total"),
            &[
                ("client_id", "persistent"),
                ("direction", "rx"),
                ("qos", "1")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &r,
            &format!("{P}_messages_dropped_by_reason_total"),
            &[
                ("client_id", "persistent"),
                ("direction", "tx"),
                ("reason", "queue_full")
            ]
        ),
        Some(0.0)
    );

    // Persistent sessions stay listed with connected:false and report their values; the
    // durable one at rest has no counters at all, and keeps its last-known ones.
    sim.disconnect("persistent");
    sim.disconnect("durable");
    let r = poll(&sim, dir.path(), flags).await;
    assert_eq!(r.error, None);
    let conn = |r: &PollResult, id| value(r, &format!("{P}_connected"), &[("client_id", id)]);
    assert_eq!(conn(&r, "persistent"), Some(0.0));
    assert_eq!(rx("messages_processed_total", "persistent", &r), Some(6.0));
    assert_eq!(conn(&r, "durable"), Some(0.0));
    assert_eq!(rx("messages_processed_total", "durable", &r), Some(4.0));
    assert_eq!(
        value(
            &r,
            &format!("{P}_subscriptions"),
            &[("client_id", "durable")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn reconnects_keep_counters_monotonic_unless_told_not_to() {
    let sim = sim().await;
    sim.add(SimClient::new("flaky").persistent().publishing(10));
    sim.tick();
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    let raw = "monotonic_counters = false";
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(rx("messages_processed_total", "flaky", &r), Some(20.0));
    poll(&sim, raw_dir.path(), raw).await;
    sim.reconnect("flaky");
    sim.tick();
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(rx("messages_processed_total", "flaky", &r), Some(30.0));
    assert_eq!(
        value(
            &r,
            &format!("{P}_reconnects_total"),
            &[("client_id", "flaky")]
        ),
        Some(1.0)
    );
    let r = poll(&sim, raw_dir.path(), raw).await;
    assert_eq!(rx("messages_processed_total", "flaky", &r), Some(10.0));
    assert_eq!(
        value(
            &r,
            &format!("{P}_reconnects_total"),
            &[("client_id", "flaky")]
        ),
        Some(1.0)
    );
    // Two reconnects in a row, one without traffic in between.
    sim.reconnect("flaky");
    poll(&sim, dir.path(), "").await;
    sim.reconnect("flaky");
    sim.tick();
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(rx("messages_processed_total", "flaky", &r), Some(40.0));
    assert_eq!(
        value(
            &r,
            &format!("{P}_reconnects_total"),
            &[("client_id", "flaky")]
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn vanished_clients_keep_last_known_series_until_forget_after() {
    let sim = sim().await;
    sim.add(SimClient::new("watched").publishing(4));
    sim.add(SimClient::new("roamer").publishing(2));
    sim.tick();
    let monitored_dir = tempfile::tempdir().unwrap();
    let all_dir = tempfile::tempdir().unwrap();
    let monitored =
        "forget_after = \"2s\"\nclients = [ { client_id = \"watched\", alias = \"W\" } ]";
    let all = "forget_after = \"2s\"";
    poll(&sim, monitored_dir.path(), monitored).await;
    poll(&sim, all_dir.path(), all).await;
    // Clean sessions vanish from the list when they disconnect.
    sim.disconnect("watched");
    sim.disconnect("roamer");
    let r = poll(&sim, monitored_dir.path(), monitored).await;
    assert_eq!(
        value(&r, &format!("{P}_connected"), &[("alias", "W")]),
        Some(0.0)
    );
    assert_eq!(rx("messages_processed_total", "watched", &r), Some(4.0));
    let r = poll(&sim, all_dir.path(), all).await;
    assert_eq!(
        value(&r, &format!("{P}_connected"), &[("client_id", "roamer")]),
        Some(0.0)
    );
    assert_eq!(rx("bytes_total", "roamer", &r).map(|v| v > 0.0), Some(true));
    let seen = value(
        &r,
        &format!("{P}_last_seen_timestamp_seconds"),
        &[("client_id", "roamer")],
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let r = poll(&sim, all_dir.path(), all).await;
    assert_eq!(series_of(&r, "roamer"), 0, "forgotten entirely");
    let r = poll(&sim, monitored_dir.path(), monitored).await;
    // A monitored client keeps `connected 0` for good (alerts rely on it), nothing else.
    assert_eq!(series_of(&r, "watched"), 1);
    assert_eq!(
        value(&r, &format!("{P}_connected"), &[("alias", "W")]),
        Some(0.0)
    );
    assert!(seen > 1.7e9);
}

#[tokio::test]
async fn faults_mark_the_source_down_and_change_nothing() {
    let sim = sim().await;
    for i in 0..1500 {
        sim.add(SimClient::new(&format!("dev-{i:04}")).publishing(3));
    }
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(r.error, None);
    let state_file = dir.path().join("sources").join("emqx.json");
    let before = std::fs::read(&state_file).unwrap();

    // A page failing mid-way (page 2 of 2): down, nothing carried forward from page 1.
    sim.remove("dev-1499");
    sim.tick();
    sim.set_fault(Fault::FailFromPage(2));
    let r = poll(&sim, dir.path(), "").await;
    assert!(r.error.as_deref().unwrap().contains("500"), "{:?}", r.error);
    assert_eq!(value(&r, "up", &[]), Some(0.0));
    assert_eq!(series_of(&r, "dev-0000"), 0);
    assert_eq!(std::fs::read(&state_file).unwrap(), before);

    for fault in [Fault::NodeDown, Fault::Garbage] {
        sim.set_fault(fault);
        let r = poll(&sim, dir.path(), "").await;
        assert_eq!(value(&r, "up", &[]), Some(0.0), "{fault:?}");
        assert!(r.error.is_some());
        assert_eq!(std::fs::read(&state_file).unwrap(), before);
    }
    // Unreachable: down too.
    let text = config_text(&sim, dir.path(), "").replace(&sim.url, "http://127.0.0.1:1");
    let cfg = pushrelay::config::parse(&text, "t.toml", &|_| None).unwrap();
    let r = poll_all_once(&cfg, OneShot::Push).await.unwrap().remove(0);
    assert!(r.error.is_some());
    assert_eq!(value(&r, "up", &[]), Some(0.0));
    assert_eq!(std::fs::read(&state_file).unwrap(), before);

    sim.set_fault(Fault::None);
    let r = poll(&sim, dir.path(), "").await;
    assert_eq!(r.error, None);
    assert_eq!(rx("messages_processed_total", "dev-0000", &r), Some(6.0));
}

#[tokio::test]
async fn a_wrong_key_says_so_and_never_shows_the_secret() {
    let sim = sim().await;
    sim.add(SimClient::new("a"));
    sim.set_credentials("key", "another");
    let dir = tempfile::tempdir().unwrap();
    let r = poll(&sim, dir.path(), "").await;
    let e = r.error.clone().unwrap();
    assert!(
        e.contains("401") && e.contains("BAD_API_KEY_OR_SECRET"),
        "{e}"
    );
    assert!(e.contains("check api_key and api_secret"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    assert_eq!(value(&r, "up", &[]), Some(0.0));
}

#[tokio::test]
async fn url_may_end_in_api_or_api_v5() {
    let sim = sim().await;
    sim.add(SimClient::new("a"));
    for suffix in ["/api", "/api/", "/api/v5", "/api/v5/", "/"] {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(&sim, dir.path(), "").replace(
            &format!("url = \"{}\"", sim.url),
            &format!("url = \"{}{suffix}\"", sim.url),
        );
        let cfg = pushrelay::config::parse(&text, "t.toml", &|_| None).unwrap();
        let r = poll_all_once(&cfg, OneShot::Inspect { check_all: false })
            .await
            .unwrap()
            .remove(0);
        assert_eq!(r.error, None, "{suffix}");
    }
}

/// Runs the real binary with `args` and the config at `path`; returns (exit ok, stdout, stderr).
async fn run_binary(args: &[&str], path: &Path) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pushrelay"));
    cmd.args(args).arg("--config").arg(path);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_prints_the_monitor_table_and_check_all_every_client() {
    let sim = sim().await;
    sim.add(SimClient::new("qingping-1").aged(16 * 3600).publishing(7));
    sim.add(SimClient::new("unlisted"));
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        config_text(
            &sim,
            dir.path(),
            r#"clients = [ { client_id = "qingping-1", alias = "QingpingCO2_Room1" }, { client_id = "gone", alias = "Gone" } ]"#,
        ),
    )
    .unwrap();
    let (ok, out, err) = run_binary(&["check"], &path).await;
    assert!(ok, "{out}\n{err}");
    for col in [
        "Created",
        "Keep",
        "Connected",
        "Sub",
        "MsgIn",
        "RX",
        "TX",
        "Alias",
        "Flght",
        "Drop",
    ] {
        assert!(out.contains(col), "{col} missing:\n{out}");
    }
    let row = out
        .lines()
        .find(|l| l.starts_with("QingpingCO2_Room1"))
        .unwrap();
    assert!(
        row.contains("16 hours") && row.contains("1m") && row.contains(" 7"),
        "{row}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("Gone") && l.contains("absent")),
        "{out}"
    );
    assert!(!out.contains("unlisted"));
    let (ok, out, _) = run_binary(&["check", "--all"], &path).await;
    assert!(ok);
    assert!(out.contains("Client ID"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("unlisted")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("qingping-1")), "{out}");
    // Inspection never writes the state a running relay owns.
    assert!(!dir.path().join("sources").exists());
    let (ok, out, _) = run_binary(&["config"], &path).await;
    assert!(ok);
    assert!(!out.contains("s3cret"), "{out}");
}

#[tokio::test]
async fn the_demo_upstream_polls_cleanly() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let demo = pushrelay::sim::emqx::start_demo(cancel.clone(), 1)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[relay]\nstate_dir = \"{}\"\n\n{}",
        dir.path().display(),
        demo.source_toml
    );
    let cfg = pushrelay::config::parse(&text, "demo.toml", &|_| None).unwrap();
    let r = poll_all_once(&cfg, OneShot::Push).await.unwrap().remove(0);
    assert_eq!(r.error, None);
    let conn = |id| value(&r, &format!("{P}_connected"), &[("client_id", id)]);
    assert_eq!(conn("archiver"), Some(0.0));
    assert_eq!(conn("flaky-plug"), Some(1.0));
    assert_eq!(
        value(
            &r,
            &format!("{P}_messages_processed_total"),
            &[("client_id", "archiver"), ("direction", "rx")]
        ),
        Some(42.0)
    );
    cancel.cancel();
}

/// The raw samples of a series over the last 10 minutes, from Prometheus.
async fn raw_samples(prom: &Receiver, selector: &str) -> Vec<f64> {
    let v = prom.query(&format!("{selector}[10m]"), now()).await;
    v.as_array()
        .and_then(|a| a.first())
        .map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// The current value of a one-series query.
async fn current(prom: &Receiver, q: &str) -> Option<f64> {
    let v = prom.query(q, now()).await;
    v.as_array()?.first()?["value"][1]
        .as_str()?
        .parse::<f64>()
        .ok()
}

async fn wait_value(prom: &Receiver, q: &str, want: f64) {
    wait_for(Duration::from_secs(30), || async {
        (current(prom, q).await == Some(want)).then_some(())
    })
    .await
}

#[tokio::test]
async fn prometheus_sees_counters_that_never_go_back_across_reconnects_outages_and_restarts() {
    let prom = Receiver::prometheus().await;
    let sim = sim().await;
    sim.add(SimClient::new("flaky").persistent().publishing(5));
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[sink]]\ntype = \"remote_write\"\nname = \"prom\"\nurl = \"{}\"\nbatch_wait = \"200ms\"\n",
        config_text(&sim, dir.path(), r#"clients = [ { client_id = "flaky", alias = "Flaky" } ]"#),
        prom.remote_write_url()
    );
    let sel = format!("{P}_messages_processed_total{{alias=\"Flaky\",direction=\"rx\"}}");
    let up = "up{job=\"emqx\"}";
    let (cancel, h, _) = start_relay(&text);
    wait_value(&prom, &sel, 5.0).await;
    sim.tick();
    wait_value(&prom, &sel, 10.0).await;
    sim.reconnect("flaky");
    sim.tick();
    wait_value(&prom, &sel, 15.0).await;

    // A 5xx outage: up 0, and afterwards the counter goes on from where it was.
    sim.set_fault(Fault::NodeDown);
    wait_value(&prom, up, 0.0).await;
    sim.set_fault(Fault::None);
    sim.tick();
    wait_value(&prom, &sel, 20.0).await;

    // The relay stops; the client reconnects meanwhile; a new relay with the same state_dir.
    cancel.cancel();
    h.await.unwrap().unwrap();
    sim.reconnect("flaky");
    sim.tick();
    let (cancel, h, _) = start_relay(&text);
    wait_value(&prom, &sel, 25.0).await;
    cancel.cancel();
    h.await.unwrap().unwrap();

    let samples = raw_samples(&prom, &sel).await;
    assert!(samples.len() >= 5, "{samples:?}");
    assert!(
        samples.windows(2).all(|w| w[1] >= w[0]),
        "went backwards: {samples:?}"
    );
    let resets = prom.query(&format!("resets({sel}[10m])"), now()).await;
    assert_eq!(resets[0]["value"][1], Value::String("0".into()), "{resets}");
    let reconnects = current(&prom, &format!("{P}_reconnects_total{{alias=\"Flaky\"}}")).await;
    assert_eq!(reconnects, Some(2.0));
}

/// A page larger than any real one (a server ignoring `limit`) is refused before it is read
/// whole: the source is down with a message naming the limit, and the relay lives on.
#[tokio::test]
async fn an_oversized_page_is_refused_not_read() {
    let sim = sim().await;
    sim.set_page_limit_ignored(true);
    for i in 0..4500 {
        sim.add(SimClient::new(&format!(
            "device-with-a-long-client-id-{i:05}"
        )));
    }
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let r = poll(&sim, dir.path(), "").await;
    let e = r.error.expect("the oversized page is an error");
    assert!(e.contains("exceeds the limit of 4194304 bytes"), "{e}");
    assert!(
        e.contains(".body_size_limit"),
        "names the key to raise: {e}"
    );
    // The limit is the source's to raise.
    let r = poll(&sim, dir.path(), "body_size_limit = \"16MiB\"\n").await;
    assert!(r.error.is_none(), "{:?}", r.error);
}

/// The state file is written at the first poll, not at every later one that changes only the
/// current counters, and once more when the source stops (what it holds then is the latest).
#[tokio::test]
async fn the_state_is_written_at_start_and_stop_not_every_poll() {
    let sim = sim().await;
    sim.add(SimClient::new("busy").publishing(3));
    sim.tick();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sources").join("emqx.json");
    let (cancel, h, _) = start_relay(&config_text(&sim, dir.path(), ""));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(std::time::Instant::now() < deadline, "no state written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = std::fs::read(&file).unwrap();
    // Three more polls (interval 1 s), each seeing more traffic.
    for _ in 0..3 {
        sim.clear_requests();
        sim.tick();
        while sim.requests().is_empty() {
            assert!(std::time::Instant::now() < deadline, "no further poll");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        std::fs::read(&file).unwrap(),
        first,
        "rewritten by a routine poll"
    );
    cancel.cancel();
    h.await.unwrap().unwrap();
    assert_ne!(std::fs::read(&file).unwrap(), first, "not written on stop");
}
