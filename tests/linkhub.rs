//! The `linkhub` source against the simulated Alcatel LinkHub router (`pushrelay::sim::linkhub`)
//! and a real Prometheus: HH41 payloads as printed, "no service" answers, a real 0, auth
//! failures (one log line, `up 0`), a method the model lacks, HTML error pages, timeouts and
//! reboots, the month-boundary usage reset, cell changes with stale markers and a counter that
//! survives a restart, and login models whose token expires.

use crate::support;
use crate::support::{now, write_config};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pushrelay::sim::linkhub::{Auth, Mode, Router, CELLS};
use serde_json::{json, Value};
use support::fakes::start_relay;
use support::receivers::{wait_for, Receiver};

const KEY: &str = "KSDHSDFOGQ5WERYTUIQWERTYUISDFG1HJZXCVCXBN2GDSMNDHKVKFsVBNf";

fn hh41() -> Auth {
    Auth::Hh41 { key: KEY.into() }
}

fn source(name: &str, url: &str, key: &str, extra: &str) -> String {
    format!(
        "[[source]]\ntype = \"linkhub\"\nname = \"{name}\"\nurl = \"{url}\"\nrequest_key = \"{key}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n{extra}\n"
    )
}

fn config(state_dir: &Path, sources: &str, rw_url: Option<&str>) -> String {
    let mut c = format!(
        "[relay]\ninterval = \"1s\"\nshutdown_timeout = \"5s\"\nstate_dir = \"{}\"\n\n{sources}",
        state_dir.display()
    );
    if let Some(u) = rw_url {
        c.push_str(&format!(
            "\n[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{u}\"\nbatch_wait = \"200ms\"\nmin_backoff = \"100ms\"\nmax_backoff = \"500ms\"\n"
        ));
    }
    c
}

/// Runs the binary to completion without blocking the runtime that serves the router.
async fn run_bin(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Sample lines of an exposition, without comments and the (timing-dependent) duration.
fn sample_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|l| !l.starts_with("scrape_duration_seconds"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Every result of an instant query now: (labels, value).
async fn results(prom: &Receiver, q: &str) -> Vec<(Value, f64)> {
    prom.query(q, now())
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let v = r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
            (r["metric"].clone(), v)
        })
        .collect()
}

/// Waits until `q` has exactly one result with value `want`.
async fn wait_value(prom: &Receiver, q: &str, want: f64) {
    let q2 = q.to_string();
    wait_for(Duration::from_secs(20), || async {
        let r = results(prom, &q2).await;
        (r.len() == 1 && r[0].1 == want).then_some(())
    })
    .await;
}

/// Waits until `q` returns nothing.
async fn wait_empty(prom: &Receiver, q: &str) {
    wait_for(Duration::from_secs(20), || async {
        results(prom, q).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn print_shows_the_hh41_payload_exactly_and_never_personal_data() {
    let router = Router::start(hh41()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &config(
            &dir.path().join("state"),
            &source("router", &router.url, KEY, "compat_names = true"),
            None,
        ),
    );
    let o = run_bin(&["print", "--config", cfg.to_str().unwrap()]).await;
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let inst = router.url.trim_start_matches("http://");
    let l = format!("instance=\"{inst}\",job=\"router\"");
    let mut want: Vec<String> = [
        format!("linkhub_sinr_db{{{l}}} 14"),
        format!("linkhub_rsrp_dbm{{{l}}} -87"),
        format!("linkhub_rsrq_db{{{l}}} -9"),
        format!("linkhub_rssi_dbm{{{l}}} -63"),
        format!("linkhub_signal_bars{{{l}}} 3"),
        format!("linkhub_network_info{{band=\"3\",cell_id=\"27948290\",enb_id=\"109173\",{l},network_name=\"Vodafone.de\",network_type=\"LTE\",plmn=\"26202\"}} 1"),
        format!("linkhub_cell_changes_total{{{l}}} 0"),
        format!("linkhub_connection_status{{{l}}} 2"),
        format!("linkhub_connection_seconds{{{l}}} 7385"),
        format!("linkhub_connected_devices{{{l}}} 4"),
        format!("linkhub_month_upload_bytes{{{l}}} 1288490188"),
        format!("linkhub_month_download_bytes{{{l}}} 11106127462"),
        format!("linkhub_month_plan_bytes{{{l}}} 53687091200"),
        format!("linkhub_session_upload_bytes{{{l}}} 12910592"),
        format!("linkhub_session_download_bytes{{{l}}} 362344448"),
        format!("linkhub_device_info{{device_name=\"LINKHUB HH41\",hardware_version=\"HH41NH-2\",{l},software_version=\"HH41_UD_02.00_05\"}} 1"),
        format!("sinr{{{l}}} 14"),
        format!("rssi{{{l}}} -63"),
        format!("rsrp{{{l}}} -87"),
        format!("rsrq{{{l}}} -9"),
        format!("signal_strength{{{l}}} 3"),
        format!("connected_devices{{{l}}} 4"),
        format!("connection_time{{{l}}} 7385"),
        format!("network_info_info{{cell_id=\"27948290\",{l},network_name=\"Vodafone.de\"}} 1"),
        format!("total_upload_this_month{{{l}}} 1288490188"),
        format!("total_download_this_month{{{l}}} 11106127462"),
        format!("total_transfer_this_month{{{l}}} 12394617650"),
        format!("linkhub_up{{{l}}} 1"),
        format!("up{{{l}}} 1"),
        format!("scrape_samples_scraped{{{l}}} 28"),
    ]
    .into_iter()
    .collect();
    want.sort();
    assert_eq!(sample_lines(&stdout), want, "{stdout}");
    assert!(
        stdout.contains("# TYPE linkhub_cell_changes_total counter"),
        "{stdout}"
    );
    assert!(stdout.contains("# TYPE linkhub_sinr_db gauge"), "{stdout}");
    for secret in [
        KEY,
        "359999999999999",
        "262029999999999",
        "8949029999999999999",
        "10.64.12.7",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked:\n{stdout}\n{stderr}"
        );
    }
    // The router saw the UI's headers on every call.
    router.with(|s| {
        assert_eq!((s.refused, s.bad_referer), (0, 0));
        assert_eq!(s.requests.get("GetNetworkInfo"), Some(&1));
    });
    // print never writes state.
    assert!(!dir
        .path()
        .join("state")
        .join("sources")
        .join("router.json")
        .exists());
}

#[tokio::test]
async fn check_shows_bands_cell_connection_and_month_usage() {
    let router = Router::start(hh41()).await.unwrap();
    router.with(|s| s.set("GetNetworkInfo", "RSRP", json!("-103")));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &config(
            &dir.path().join("state"),
            &source("router", &router.url, KEY, ""),
            None,
        ),
    );
    let o = run_bin(&["check", "--config", cfg.to_str().unwrap()]).await;
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    for want in [
        "source router: up",
        "SINR 14 dB (good)",
        "RSRP -103 dBm (poor)",
        "RSRQ -9 dB (excellent)",
        "RSSI -63 dBm (excellent)",
        "3 of 4 bars",
        "LTE, Vodafone.de, cell 27948290, eNB 109173, band 3, PLMN 26202; 0 cell changes seen",
        "connected for 2h 3m 5s, 4 devices",
        "1.20 GiB up, 10.34 GiB down, 11.54 GiB of a 50.00 GiB plan (23%)",
        "LINKHUB HH41 (software HH41_UD_02.00_05, hardware HH41NH-2)",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));

    // Down: the heading says why, the table says there was no answer.
    router.with(|s| s.mode = Mode::Html);
    let o = run_bin(&["check", "--config", cfg.to_str().unwrap()]).await;
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "source router: DOWN: bad answer: GetSystemInfo: answered an HTML page instead of JSON"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("no answer from the router"), "{stdout}");
}

#[tokio::test]
async fn no_service_values_are_absent_and_a_real_zero_is_a_value() {
    let router = Router::start(hh41()).await.unwrap();
    router.with(|s| s.no_service = true);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &config(
            &dir.path().join("state"),
            &source("router", &router.url, KEY, "compat_names = true"),
            None,
        ),
    );
    let cfg = cfg.to_str().unwrap().to_string();
    let o = run_bin(&["print", "--config", &cfg]).await;
    let (stdout, stderr) = out(&o);
    assert!(
        o.status.success(),
        "no service is not a failure:\n{stdout}\n{stderr}"
    );
    for absent in [
        "linkhub_sinr_db{",
        "linkhub_rsrp_dbm{",
        "linkhub_rsrq_db{",
        "linkhub_rssi_dbm{",
        "linkhub_signal_bars{",
        "linkhub_network_info{",
        "\nsinr{",
        "\nrsrp{",
        "\nrsrq{",
        "\nrssi{",
        "\nsignal_strength{",
        "network_info_info{",
    ] {
        assert!(!stdout.contains(absent), "{absent} present:\n{stdout}");
    }
    for present in [
        "linkhub_connection_status{",
        "linkhub_month_download_bytes{",
        "linkhub_up{",
        "\nup{",
    ] {
        assert!(stdout.contains(present), "{present} missing:\n{stdout}");
    }
    assert!(stdout.contains("linkhub_connection_status{") && stdout.contains("} 0\n"));

    // In service with real zeros: 0 dB SINR, 0 bars, no devices, nothing used this month.
    router.with(|s| {
        s.no_service = false;
        s.set("GetNetworkInfo", "SINR", json!("0"));
        s.set("GetNetworkInfo", "SignalStrength", json!(0));
        s.set("GetSystemStatus", "TotalConnNum", json!(0));
        s.set("GetUsageRecord", "HCurrUseUL", json!("0"));
    });
    let o = run_bin(&["print", "--config", &cfg]).await;
    let (stdout, _) = out(&o);
    let lines = sample_lines(&stdout);
    for name in [
        "linkhub_sinr_db{",
        "linkhub_signal_bars{",
        "linkhub_connected_devices{",
        "linkhub_month_upload_bytes{",
        "sinr{",
        "signal_strength{",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(name) && l.ends_with("} 0")),
            "{name} is not 0 in\n{stdout}"
        );
    }
}

#[tokio::test]
async fn auth_failure_and_missing_method_each_log_one_line() {
    let prom = Receiver::prometheus().await;
    let good = Router::start(hh41()).await.unwrap();
    good.with(|s| {
        s.missing.insert("GetConnectionState".into());
        // A string code for "method not found" on this model.
        s.missing_error_code = json!("-32601");
    });
    let locked = Router::start(hh41()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sources = format!(
        "{}{}",
        source("router", &good.url, KEY, ""),
        source("badkey", &locked.url, "an-old-key-from-last-week", "")
    );
    let cfg = write_config(
        &dir,
        &config(
            &dir.path().join("state"),
            &sources,
            Some(&prom.remote_write_url()),
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_pushrelay"))
        .args([
            "--log-format",
            "json",
            "run",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_value(&prom, "up{job=\"badkey\"}", 0.0).await;
    wait_value(&prom, "up{job=\"router\"}", 1.0).await;
    wait_value(&prom, "linkhub_rsrp_dbm{job=\"router\"}", -87.0).await;
    // Several polls later…
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(results(&prom, "linkhub_session_upload_bytes")
        .await
        .is_empty());
    assert!(results(&prom, "linkhub_rsrp_dbm{job=\"badkey\"}")
        .await
        .is_empty());
    assert_eq!(
        good.requests("GetConnectionState"),
        1,
        "asked again after method not found"
    );
    assert!(good.requests("GetNetworkInfo") >= 4);
    assert!(
        locked.requests("GetSystemInfo") >= 4,
        "the relay stopped polling a refused source"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let (_, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    let logs: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect();
    let lines_of = |source: &str, needle: &str| -> Vec<Value> {
        logs.iter()
            .filter(|l| l["source"] == source)
            .filter(|l| l["message"].as_str().unwrap_or("").contains(needle))
            .cloned()
            .collect()
    };
    let auth = lines_of("badkey", "wrong or expired");
    assert_eq!(auth.len(), 1, "one line for the refused key:\n{stderr}");
    assert!(
        auth[0]["message"]
            .as_str()
            .unwrap()
            .contains("_TclRequestVerificationKey"),
        "{}",
        auth[0]
    );
    let missing = lines_of("router", "GetConnectionState");
    assert_eq!(
        missing.len(),
        1,
        "one line for the missing method:\n{stderr}"
    );
    assert_eq!(missing[0]["level"], "INFO", "{}", missing[0]);
    assert!(
        missing[0]["message"]
            .as_str()
            .unwrap()
            .contains("does not offer"),
        "{}",
        missing[0]
    );
    assert!(
        !logs
            .iter()
            .any(|l| l["source"] == "router" && l["level"] != "INFO"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(KEY) && !stderr.contains("an-old-key-from-last-week"),
        "{stderr}"
    );
}

#[tokio::test]
async fn html_timeout_and_reboot_mark_the_router_down_and_it_recovers() {
    let prom = Receiver::prometheus().await;
    let router = Router::start(hh41()).await.unwrap();
    let other = Router::start(hh41()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sources = format!(
        "{}{}",
        source("router", &router.url, KEY, ""),
        source("other", &other.url, KEY, "")
    );
    let (cancel, h, _) = start_relay(&config(
        &dir.path().join("state"),
        &sources,
        Some(&prom.remote_write_url()),
    ));
    wait_value(&prom, "up{job=\"router\"}", 1.0).await;
    wait_value(&prom, "linkhub_sinr_db{job=\"router\"}", 14.0).await;

    for (what, mode) in [
        ("an HTML error page", Mode::Html),
        (
            "answers slower than the timeout",
            Mode::Slow(Duration::from_secs(3)),
        ),
        ("a reboot", Mode::Rebooting),
    ] {
        router.with(|s| s.mode = mode);
        wait_value(&prom, "up{job=\"router\"}", 0.0).await;
        // The signal series got stale markers at once: gone, not held for 5 minutes.
        wait_empty(&prom, "linkhub_sinr_db{job=\"router\"}").await;
        // The other source is unaffected.
        wait_value(&prom, "up{job=\"other\"}", 1.0).await;
        router.with(|s| s.mode = Mode::Normal);
        wait_value(&prom, "up{job=\"router\"}", 1.0).await;
        wait_value(&prom, "linkhub_sinr_db{job=\"router\"}", 14.0).await;
        eprintln!("recovered after {what}");
    }
    // A reboot in the middle of a poll: the first calls answer, then connections drop.
    let served = router.requests("GetSystemInfo");
    router.with(|s| s.mode = Mode::Slow(Duration::from_millis(300)));
    wait_for(Duration::from_secs(10), || async {
        (router.requests("GetSystemInfo") > served).then_some(())
    })
    .await;
    router.with(|s| s.mode = Mode::Rebooting);
    wait_value(&prom, "up{job=\"router\"}", 0.0).await;
    router.with(|s| s.mode = Mode::Normal);
    wait_value(&prom, "up{job=\"router\"}", 1.0).await;
    cancel.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn cells_no_service_month_wrap_and_the_counter_survives_a_restart() {
    let prom = Receiver::prometheus().await;
    let router = Router::start(hh41()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = config(
        &state,
        &source("router", &router.url, KEY, "compat_names = true"),
        Some(&prom.remote_write_url()),
    );
    let info = "linkhub_network_info{job=\"router\"}";
    let changes = "linkhub_cell_changes_total{job=\"router\"}";
    let cell_of = |r: &Vec<(Value, f64)>| -> Option<String> {
        (r.len() == 1).then(|| r[0].0["cell_id"].as_str().unwrap_or("").to_string())
    };

    let (cancel, h, _) = start_relay(&cfg);
    wait_value(&prom, info, 1.0).await;
    assert_eq!(
        cell_of(&results(&prom, info).await).as_deref(),
        Some(CELLS[0].0)
    );
    wait_value(&prom, changes, 0.0).await;

    // A handover: the old info series ends at once (stale marker), the counter counts it.
    router.with(|s| s.hop_cell());
    wait_value(&prom, changes, 1.0).await;
    let r = results(&prom, info).await;
    assert_eq!(
        cell_of(&r).as_deref(),
        Some(CELLS[1].0),
        "old series still there: {r:?}"
    );
    assert_eq!(r[0].0["enb_id"], CELLS[1].1);
    assert_eq!(r[0].0["band"], CELLS[1].2);
    // The compat series follows as well.
    wait_value(&prom, "network_info_info{cell_id=\"27948301\"}", 1.0).await;
    assert_eq!(results(&prom, "network_info_info").await.len(), 1);

    // No service: signal and cell vanish, the router is still up, nothing is counted.
    router.with(|s| s.no_service = true);
    wait_empty(&prom, info).await;
    wait_empty(&prom, "linkhub_sinr_db").await;
    wait_empty(&prom, "sinr").await;
    assert_eq!(results(&prom, "up{job=\"router\"}").await[0].1, 1.0);
    assert_eq!(results(&prom, changes).await[0].1, 1.0);
    // Back on the same cell: no change. Then a gap ending on another cell: one change.
    router.with(|s| s.no_service = false);
    wait_value(&prom, info, 1.0).await;
    router.with(|s| s.no_service = true);
    wait_empty(&prom, info).await;
    router.with(|s| {
        s.set_cell(2);
        s.no_service = false;
    });
    wait_value(&prom, info, 1.0).await;
    assert_eq!(
        cell_of(&results(&prom, info).await).as_deref(),
        Some(CELLS[2].0)
    );
    wait_value(&prom, changes, 2.0).await;

    // The month ends: this month's usage drops to almost nothing, and that is what arrives.
    wait_value(&prom, "linkhub_month_download_bytes", 11106127462.0).await;
    router.with(|s| s.wrap_month());
    wait_value(&prom, "linkhub_month_download_bytes", 4096.0).await;
    wait_value(&prom, "linkhub_month_upload_bytes", 1024.0).await;
    wait_value(&prom, "total_transfer_this_month", 5120.0).await;
    assert_eq!(results(&prom, "up{job=\"router\"}").await[0].1, 1.0);

    // Restart: the counter goes on from 2, and a hop made while down is counted.
    cancel.cancel();
    h.await.unwrap().unwrap();
    let saved = std::fs::read_to_string(state.join("sources").join("router.json")).unwrap();
    assert!(saved.contains("\"cell_changes_total\":2"), "{saved}");
    router.with(|s| s.hop_cell());
    let restarted = now();
    let (cancel, h, _) = start_relay(&cfg);
    wait_for(Duration::from_secs(20), || async {
        let t = results(&prom, &format!("timestamp({changes})")).await;
        (t.len() == 1 && t[0].1 > restarted).then_some(())
    })
    .await;
    assert_eq!(results(&prom, changes).await[0].1, 3.0);
    cancel.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn login_models_log_in_again_when_the_token_expires() {
    let prom = Receiver::prometheus().await;
    let router = Router::start(Auth::Login {
        public_key: "public-key-of-the-ui".into(),
        username: "admin".into(),
        password: "s3cret-admin-pw".into(),
    })
    .await
    .unwrap();
    // Token errors come as a string code on this model.
    router.with(|s| s.auth_error_code = json!("-32699"));
    let dir = tempfile::tempdir().unwrap();
    let sources = format!(
        "{}{}",
        source(
            "router",
            &router.url,
            "public-key-of-the-ui",
            "username = \"admin\"\npassword = \"s3cret-admin-pw\""
        ),
        source(
            "wrongpw",
            &router.url,
            "public-key-of-the-ui",
            "username = \"admin\"\npassword = \"guess\""
        )
    );
    let (cancel, h, _) = start_relay(&config(
        &dir.path().join("state"),
        &sources,
        Some(&prom.remote_write_url()),
    ));
    wait_value(&prom, "linkhub_sinr_db{job=\"router\"}", 14.0).await;
    wait_value(&prom, "up{job=\"wrongpw\"}", 0.0).await;
    assert_eq!(router.with(|s| s.logins), 1);
    for expected_logins in [2, 3] {
        router.with(|s| s.expire_token());
        wait_for(Duration::from_secs(10), || async {
            (router.with(|s| s.logins) == expected_logins).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Never down across the expiries.
    wait_value(&prom, "min_over_time(up{job=\"router\"}[1m])", 1.0).await;
    wait_value(&prom, "linkhub_sinr_db{job=\"router\"}", 14.0).await;
    assert_eq!(
        router.with(|s| s.logins),
        3,
        "logged in more often than needed"
    );
    cancel.cancel();
    h.await.unwrap().unwrap();

    // `check` with the wrong password says why.
    let cfg = write_config(
        &dir,
        &config(
            &dir.path().join("state"),
            &source(
                "wrongpw",
                &router.url,
                "public-key-of-the-ui",
                "username = \"admin\"\npassword = \"guess\"",
            ),
            None,
        ),
    );
    let o = run_bin(&["check", "--config", cfg.to_str().unwrap()]).await;
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout.contains("login refused")
            && stdout.contains("username, password or request key is wrong"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("guess") && !stderr.contains("guess"),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn config_needs_a_request_key_even_for_login_models() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        "[[source]]\ntype = \"linkhub\"\nname = \"r\"\nurl = \"http://192.168.1.1\"\nusername = \"admin\"\npassword = \"pw\"\n",
    );
    let o = run_bin(&["config", "--config", cfg.to_str().unwrap()]).await;
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("request_key"), "{stderr}");

    let cfg = write_config(
        &dir,
        &format!("[[source]]\ntype = \"linkhub\"\nname = \"r\"\nurl = \"http://192.168.1.1\"\nrequest_key = \"{KEY}\"\nusername = \"admin\"\npassword = \"pw-secret-9\"\n"),
    );
    let o = run_bin(&["config", "--config", cfg.to_str().unwrap()]).await;
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        !stdout.contains(KEY) && !stdout.contains("pw-secret-9"),
        "{stdout}"
    );
    assert!(
        stdout.contains("interval = \"10s\"") && stdout.contains("timeout = \"5s\""),
        "{stdout}"
    );
}
