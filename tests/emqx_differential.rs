//! Differential test: emqx-client-monitor 0.3.1 (from PyPI, in the virtualenv that
//! `scripts/fetch-emqx-client-monitor.sh` makes) and `pushrelay print` read the same frozen
//! simulated EMQX; their `emqx_client_monitor_*` families, label sets and values must match,
//! except for the differences listed (and explained in docs/emqx.md).

use crate::support;
use crate::support::free_port;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pushrelay::model::{Family, MetricType};
use pushrelay::sim::emqx::{EmqxSim, SimClient};
use support::receivers::wait_for;

/// Families pushrelay adds beyond emqx-client-monitor (README "Metrics", docs/emqx.md).
const PUSHRELAY_ONLY: [&str; 4] = [
    "emqx_client_monitor_last_seen_timestamp_seconds",
    "emqx_client_monitor_reconnects_total",
    "emqx_client_monitor_mqueue_length",
    "emqx_client_monitor_mqueue_dropped_total",
];
/// Labels the relay adds to every series (a Prometheus scrape of emqx-client-monitor gets its
/// own `job`/`instance` from the scrape configuration instead).
const RELAY_LABELS: [&str; 2] = ["job", "instance"];

fn venv_binary() -> PathBuf {
    let bin = crate::support::emqx_client_monitor_venv().join("bin/emqx-client-monitor");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/fetch-emqx-client-monitor.sh first",
        bin.display()
    );
    bin
}

/// Kills the monitor when the test ends, pass or fail.
struct Monitor(Child);

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (sample name, labels without the relay's) → value, for one exposition's EMQX families,
/// plus each family's (type, help).
type Series = BTreeMap<(String, String), f64>;
type Meta = BTreeMap<String, (MetricType, String)>;

fn digest(fams: &[Family]) -> (Series, Meta) {
    let mut series = Series::new();
    let mut meta = Meta::new();
    for f in fams
        .iter()
        .filter(|f| f.name.starts_with("emqx_client_monitor_"))
    {
        meta.insert(f.name.to_string(), (f.kind, f.help.clone()));
        for s in &f.samples {
            let mut l = s.labels.clone();
            for r in RELAY_LABELS {
                l.remove(r);
            }
            series.insert((s.name.to_string(), l.to_string()), s.value);
        }
    }
    (series, meta)
}

async fn scrape(url: &str) -> Option<String> {
    let r = reqwest::get(url).await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

async fn pushrelay_print(config: &std::path::Path) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushrelay"));
    cmd.arg("print").arg("--config").arg(config);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "pushrelay print failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn same_families_labels_and_values_as_emqx_client_monitor() {
    let bin = venv_binary();
    let sim = EmqxSim::start("diff-key", "diff-secret").await.unwrap();
    sim.add(
        SimClient::new("qingping-DEADBEEF1234")
            .publishing(3)
            .dropping(1)
            .aged(13 * 86_400),
    );
    sim.add(
        SimClient::new("rtl433-room1")
            .publishing(7)
            .receiving(2)
            .without_username()
            .aged(3600),
    );
    sim.add(SimClient::new("not-monitored").publishing(1));
    sim.add(SimClient::new("archiver").persistent().publishing(5));
    sim.add(SimClient::new("durable-1").durable().publishing(2));
    for _ in 0..4 {
        sim.tick();
    }
    sim.disconnect("archiver");
    sim.disconnect("durable-1");
    // Frozen from here on: the sim only changes when the test says so.

    let clients = [
        ("qingping-DEADBEEF1234", "QingpingCO2_Room1"),
        ("rtl433-room1", "RTL433_Room1"),
        ("archiver", "Archiver"),
        ("durable-1", "Durable1"),
        ("never-seen", "NeverSeen"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let flags = [
        "enable_processed_counters",
        "enable_qos_split",
        "enable_dropped_counters",
        "enable_reason_split",
        "enable_bytes_metrics",
        "enable_packet_metrics",
        "enable_dates",
        "enable_inflight_metrics",
        "enable_subscription_count",
    ];
    let mut yaml = format!(
        "emqx:\n  api_key: diff-key\n  api_secret: diff-secret\n  api_url: \"{}/api\"\n  alias: LocalEMQX\n  attempts: 1\n\
         monitored_clients:\n",
        sim.url
    );
    for (id, alias) in clients {
        yaml.push_str(&format!("  - alias: {alias}\n    client_id: \"{id}\"\n"));
    }
    yaml.push_str(&format!(
        "prometheus:\n  port: {port}\n  address: 127.0.0.1\n  ttl_seconds: 0\n"
    ));
    for f in flags {
        yaml.push_str(&format!("  {f}: true\n"));
    }
    let yaml_path = dir.path().join("config.yaml");
    std::fs::write(&yaml_path, &yaml).unwrap();

    let mut toml = format!(
        "[relay]\nstate_dir = \"{}\"\n\n[[source]]\ntype = \"emqx\"\nname = \"emqx\"\nurl = \"{}/api\"\n\
         api_key = \"diff-key\"\napi_secret = \"diff-secret\"\nbroker = \"LocalEMQX\"\nclients = [\n",
        dir.path().join("state").display(),
        sim.url
    );
    for (id, alias) in clients {
        toml.push_str(&format!(
            "  {{ client_id = \"{id}\", alias = \"{alias}\" }},\n"
        ));
    }
    toml.push_str("]\n");
    for f in flags {
        toml.push_str(&format!("{f} = true\n"));
    }
    let toml_path = dir.path().join("pushrelay.toml");
    std::fs::write(&toml_path, &toml).unwrap();

    let child = Command::new(&bin)
        .arg("--cfg")
        .arg(&yaml_path)
        .arg("prometheus")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let _monitor = Monitor(child);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let theirs = wait_for(Duration::from_secs(30), || scrape(&url)).await;
    let ours = pushrelay_print(&toml_path).await;

    let (their_series, their_meta) = digest(&pushrelay::expfmt::parse(&theirs).unwrap());
    let (mut our_series, mut our_meta) = digest(&pushrelay::expfmt::parse(&ours).unwrap());

    // Allowed difference 1: pushrelay's own families.
    for f in PUSHRELAY_ONLY {
        assert!(our_meta.remove(f).is_some(), "{f} missing from pushrelay");
        our_series.retain(|(name, _), _| name != f);
    }
    assert_eq!(
        our_meta, their_meta,
        "families, types or help differ\n--- theirs\n{theirs}\n--- ours\n{ours}"
    );
    let only_ours: Vec<_> = our_series
        .keys()
        .filter(|k| !their_series.contains_key(*k))
        .collect();
    let only_theirs: Vec<_> = their_series
        .keys()
        .filter(|k| !our_series.contains_key(*k))
        .collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "label sets differ: only pushrelay {only_ours:#?}\nonly emqx-client-monitor {only_theirs:#?}"
    );
    let differ: Vec<_> = our_series
        .iter()
        .filter(|(k, v)| their_series[*k].to_bits() != v.to_bits())
        .map(|(k, v)| (k, *v, their_series[k]))
        .collect();
    assert!(
        differ.is_empty(),
        "values differ (ours, theirs): {differ:#?}"
    );
    // The comparison covered something of every kind.
    let names: BTreeSet<&str> = our_series.keys().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 11, "{names:?}");
    assert!(our_series.len() > 60, "{}", our_series.len());

    // Allowed difference 2 (one of the gaps pushrelay closes): a `null` date breaks
    // emqx-client-monitor's whole fetch, and it keeps serving what it had; pushrelay reads the
    // rest of the client and reports the change.
    let mut nulls = SimClient::new("qingping-DEADBEEF1234").with_null_dates();
    nulls.counters.insert("recv_msg".into(), 1000);
    sim.add(nulls);
    let theirs_after = wait_for(Duration::from_secs(10), || scrape(&url)).await;
    let (their_after, _) = digest(&pushrelay::expfmt::parse(&theirs_after).unwrap());
    assert_eq!(
        their_after, their_series,
        "emqx-client-monitor served stale data"
    );
    let ours_after = pushrelay_print(&toml_path).await;
    let (our_after, _) = digest(&pushrelay::expfmt::parse(&ours_after).unwrap());
    let key = (
        "emqx_client_monitor_messages_processed_total".to_string(),
        r#"{alias="QingpingCO2_Room1",broker="LocalEMQX",client_id="qingping-DEADBEEF1234",direction="rx"}"#
            .to_string(),
    );
    assert_eq!(our_after.get(&key), Some(&1000.0), "{ours_after}");
}
