//! `pushrelay import` and `pushrelay init` as a user runs them: the binary prints TOML that
//! `pushrelay config` accepts, with secrets as `${ENV}` references and never copied.
//! The emqx-client-monitor input is the example configuration of its own README (0.3.1's
//! package metadata), first checked with the tool's own schema so the test reads what the tool
//! reads; the linkhub-prometheus-exporter input uses the settings its dynaconf validators name.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::emqx_client_monitor_venv;

fn pushrelay(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushrelay"))
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .expect("run pushrelay")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// `pushrelay import <tool> <file> --sink <sink>`, which must succeed: its output and errors.
fn import(tool: &str, file: &Path, sink: &str) -> (String, String) {
    let file = file.to_str().unwrap();
    let o = pushrelay(&["import", tool, file, "--sink", sink], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    (out, err)
}

/// Asserts `text` contains each of `wants`.
fn contains_all(text: &str, wants: &[&str]) {
    let missing: Vec<&&str> = wants.iter().filter(|w| !text.contains(**w)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{text}");
}

/// Writes `toml` and asserts `pushrelay config` accepts it with `env` set; returns its output.
fn config_accepts(dir: &Path, name: &str, toml: &str, env: &[(&str, &str)]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, toml).unwrap();
    let o = pushrelay(&["config", "--config", file.to_str().unwrap()], env);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{name}: {err}\n{toml}");
    out
}

/// The YAML blocks of the `## Configuration` section of emqx-client-monitor's README, joined
/// into one config file.
fn readme_example_config() -> String {
    let meta = emqx_client_monitor_venv()
        .join("lib/python3.11/site-packages/emqx_client_monitor-0.3.1.dist-info/METADATA");
    let readme = std::fs::read_to_string(&meta).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/fetch-emqx-client-monitor.sh first",
            meta.display()
        )
    });
    let section = &readme[readme
        .find("## Configuration")
        .expect("a Configuration section")..];
    let section = &section[..section.find("## Running").unwrap_or(section.len())];
    let blocks: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").expect("a closed block")])
        .collect();
    assert_eq!(blocks.len(), 3, "emqx, monitored_clients, prometheus");
    blocks.concat()
}

#[test]
fn emqx_client_monitor_readme_config_imports_into_a_config_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = readme_example_config();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &yaml).unwrap();
    // The tool's own schema accepts it.
    let python = emqx_client_monitor_venv().join("bin/python");
    let o = Command::new(&python)
        .args([
            "-c",
            "import sys, yaml\nfrom emqx_client_monitor.config.schema import AgentConfig\n\
             c = AgentConfig.model_validate(yaml.safe_load(open(sys.argv[1])))\n\
             print(len(c.monitored_clients), c.emqx.alias)",
        ])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "emqx-client-monitor refuses the example: {err}"
    );
    assert_eq!(out.trim(), "2 LocalEMQX");

    let secret = "exampleSecretKey1234567890ABCDEFGHIJKLMNOPQRS";
    assert!(yaml.contains(secret));
    for sink in ["remote_write", "pushgateway"] {
        let (toml, err) = import("emqx-client-monitor", &file, sink);
        assert!(!toml.contains(secret) && !err.contains(secret), "{toml}");
        contains_all(
            &toml,
            &[
                "api_secret = \"${EMQX_API_SECRET}\"",
                "broker = \"LocalEMQX\"",
                "{ client_id = \"qingping-DEADBEEF1234\", alias = \"QingpingCO2_Room1\" }",
                "{ client_id = \"qingping-DEADBEEF5678\", alias = \"QingpingCO2_Room2\" }",
                "interval = \"15s\"",
                &format!("type = \"{sink}\""),
            ],
        );
        let printed = config_accepts(
            dir.path(),
            &format!("emqx-{sink}.toml"),
            &toml,
            &[("EMQX_API_SECRET", "s3cret-from-env")],
        );
        assert!(!printed.contains("s3cret-from-env"), "{printed}");
        // Without the variable, `config` names it.
        let path = dir.path().join(format!("emqx-{sink}.toml"));
        let o = Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .args(["config", "--config", path.to_str().unwrap()])
            .env_remove("EMQX_API_SECRET")
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(text(&o).1.contains("EMQX_API_SECRET"), "{}", text(&o).1);
    }
}

#[test]
fn linkhub_exporter_settings_import_into_a_config_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    // settings.toml with every key the exporter validates, and its .secrets.toml.
    let settings = dir.path().join("settings.toml");
    std::fs::write(
        &settings,
        "box_address = \"192.168.1.1\"\npolling_interval_seconds = 5\nexporter_port = 9877\nexporter_address = \"localhost\"\n",
    )
    .unwrap();
    let secrets = dir.path().join(".secrets.toml");
    std::fs::write(
        &secrets,
        "REQUEST_KEY = \"KSDHSDFOGQ5WERYTUIQWERTYUISDFG1HJZXCVCXBN2GDSMNDHKVKFsVBNf\"\n",
    )
    .unwrap();
    for (file, sink) in [(&settings, "remote_write"), (&secrets, "pushgateway")] {
        let (toml, _) = import("linkhub-exporter", file, sink);
        assert!(!toml.contains("KSDHSDFOGQ5"), "{toml}");
        contains_all(
            &toml,
            &[
                "url = \"http://192.168.1.1\"",
                "request_key = \"${LINKHUB_REQUEST_KEY}\"",
                "interval = \"5s\"",
                "compat_names = true",
            ],
        );
        config_accepts(
            dir.path(),
            &format!("linkhub-{sink}.toml"),
            &toml,
            &[("LINKHUB_REQUEST_KEY", "key-from-env")],
        );
    }
}

#[test]
fn import_of_a_broken_file_fails_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, "emqx:\n  api_key: k\n   api_url: x\n").unwrap();
    let o = pushrelay(
        &["import", "emqx-client-monitor", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let (out, err) = text(&o);
    assert!(
        out.is_empty() && err.contains("config.yaml: line 3"),
        "{err}"
    );
    let o = pushrelay(
        &["import", "linkhub-exporter", "/nonexistent/settings.toml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn init_prints_a_commented_config_that_parses_for_every_source_and_sink() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TTN_API_KEY", "NNSXS.X.Y"),
        ("TTN_APP_KEY", "NNSXS.X.Y"),
        ("EMQX_API_SECRET", "s"),
        ("LINKHUB_REQUEST_KEY", "k"),
    ];
    for source in ["scrape", "ttn", "ttn_devices", "emqx", "linkhub"] {
        for sink in ["remote_write", "pushgateway"] {
            let o = pushrelay(&["init", "--source", source, "--sink", sink], &[]);
            let (toml, err) = text(&o);
            assert!(o.status.success(), "{err}");
            assert!(toml.starts_with("# pushrelay configuration"), "{toml}");
            assert!(toml.contains(&format!("type = \"{source}\"")), "{toml}");
            config_accepts(dir.path(), &format!("{source}-{sink}.toml"), &toml, &env);
        }
    }
    let o = pushrelay(&["init", "--source", "nope"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("linkhub"), "{}", text(&o).1);
}

#[test]
fn init_output_writes_a_private_file_and_keeps_an_existing_one_unless_forced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pushrelay.toml");
    let p = path.to_str().unwrap();
    let o = pushrelay(&["init", "--source", "emqx", "--output", p], &[]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(
        text(&o).1.contains("pushrelay check --config"),
        "{}",
        text(&o).1
    );
    let written = std::fs::read_to_string(&path).unwrap();
    let printed = text(&pushrelay(&["init", "--source", "emqx"], &[])).0;
    assert_eq!(
        written, printed,
        "--output writes what standard output shows"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "others may not read it: {mode:o}");

    // A second init does not replace it; --force does.
    std::fs::write(&path, "# mine\n").unwrap();
    let o = pushrelay(&["init", "--source", "ttn", "--output", p], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--force"), "{}", text(&o).1);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    let o = pushrelay(&["init", "--source", "ttn", "--output", p, "--force"], &[]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("type = \"ttn\""));
}
