//! Every alert file in `examples/alerts` passes `promtool check rules`, and every unit-test
//! file in `examples/alerts/tests` passes `promtool test rules`: each alert fires on the data
//! that deserves it and stays quiet on the rest. The relay, EMQX, LinkHub and TTN gateway files
//! must have their unit tests (the TTN devices file has its own in tests/ttn_devices.rs; both
//! TTN files are also evaluated on real data in tests/ttn.rs and tests/ttn_devices.rs).

use crate::support::promtool::{check_rules, test_rules};

use std::path::{Path, PathBuf};

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alerts")
}

/// The `.yml` files directly in `dir`, sorted.
fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    out.sort();
    out
}

/// How many rules a file holds (its `- alert:` lines), so `check rules` must find exactly those.
fn rules_in(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count()
}

#[test]
fn every_alert_file_passes_promtool_check_rules() {
    let files = yml_files(&alerts_dir());
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for want in ["pushrelay.yml", "emqx.yml", "linkhub.yml", "ttn.yml"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for f in &files {
        check_rules(f, rules_in(f));
    }
}

#[test]
fn every_alert_unit_test_passes_promtool_test_rules() {
    let tests = yml_files(&alerts_dir().join("tests"));
    for f in &tests {
        test_rules(f);
    }
    // Each alert of the relay, EMQX, LinkHub and TTN gateway files is tested, firing and quiet.
    for name in ["pushrelay", "emqx", "linkhub", "ttn"] {
        let test = alerts_dir().join("tests").join(format!("{name}.yml"));
        assert!(tests.contains(&test), "{} missing", test.display());
        let text = std::fs::read_to_string(&test).unwrap();
        let rules = std::fs::read_to_string(alerts_dir().join(format!("{name}.yml"))).unwrap();
        for alert in rules
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("- alert: "))
        {
            let line = format!("alertname: {alert}\n");
            let cases: Vec<&str> = text
                .split("- eval_time:")
                .filter(|c| c.contains(&line))
                .collect();
            assert!(
                cases.iter().any(|c| c.contains("exp_alerts: []")),
                "{name}: no test where {alert} stays quiet"
            );
            assert!(
                cases.iter().any(|c| c.contains("exp_labels:")),
                "{name}: no test where {alert} fires"
            );
        }
    }
}
