//! `pushrelay import`: emqx-client-monitor 0.3.1's `config.yaml` and linkhub-prometheus-exporter's
//! dynaconf `settings.toml` (0.3–0.4: `request_key`, `box_address`, `polling_interval_seconds`,
//! `exporter_address`, `exporter_port`) as pushrelay TOML with one `[[sink]]` of the chosen type.
//! Secrets (`emqx.api_secret`, `request_key`) become `${ENV}` references and are never printed.

use std::fmt::Write as _;

use super::yaml::{self, Yaml};
use super::{quote, relay_table, sink_table};

/// emqx-client-monitor's nine feature flags and their defaults (the same names in pushrelay).
const EMQX_FLAGS: [(&str, bool); 9] = [
    ("enable_processed_counters", true),
    ("enable_qos_split", false),
    ("enable_dropped_counters", false),
    ("enable_reason_split", false),
    ("enable_bytes_metrics", true),
    ("enable_packet_metrics", true),
    ("enable_dates", false),
    ("enable_inflight_metrics", true),
    ("enable_subscription_count", true),
];

/// The environment variables the output refers to.
pub const EMQX_SECRET_ENV: &str = "EMQX_API_SECRET";
pub const LINKHUB_KEY_ENV: &str = "LINKHUB_REQUEST_KEY";

/// A required text value at `section.key`.
fn text<'a>(section: &'a Yaml, path: &str, key: &str) -> Result<&'a str, String> {
    match section.get(key) {
        Some(v) => v
            .as_str()
            .ok_or_else(|| format!("{path}.{key}: expected text")),
        None => Err(format!("{path}.{key} is missing")),
    }
}

/// Keys of `section` other than `known`, for the "not carried over" comments.
fn unknown<'a>(section: &'a Yaml, known: &[&str]) -> Vec<&'a str> {
    match section {
        Yaml::Map(m) => m
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect(),
        _ => Vec::new(),
    }
}

/// Ends `out`: a comment per key of the input that `tool` does not know (so not carried
/// over), then the `[[sink]]` of type `sink`.
fn finish(mut out: String, others: &[String], tool: &str, sink: &str) -> Result<String, String> {
    for k in others {
        let _ = writeln!(out, "# {k}: unknown to {tool}, not carried over");
    }
    out.push('\n');
    out.push_str(&sink_table(sink)?);
    Ok(out)
}

/// The commented `listen` line saying where the exporter listened (`from`: its keys).
fn listen_note(address: &str, from: &str) -> String {
    format!(
        "# listen = {}   # {from}: pushrelay pushes; set this only if something still scrapes /metrics",
        quote(address)
    )
}

/// emqx-client-monitor's `config.yaml` as pushrelay TOML.
pub fn emqx_client_monitor(yaml_text: &str, sink: &str) -> Result<String, String> {
    let doc = yaml::parse(yaml_text)?;
    if !matches!(doc, Yaml::Map(_)) {
        return Err("expected a mapping with emqx, monitored_clients and prometheus".into());
    }
    let emqx = doc.get("emqx").ok_or("emqx is missing")?;
    let null = Yaml::Null;
    let prom = doc.get("prometheus").unwrap_or(&null);
    let url = text(emqx, "emqx", "api_url")?;
    let api_key = text(emqx, "emqx", "api_key")?;
    text(emqx, "emqx", "api_secret")?;
    let broker = text(emqx, "emqx", "alias")?;

    let ttl = match prom.get("ttl_seconds") {
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or("prometheus.ttl_seconds: expected a positive whole number")?,
        None => 15,
    };
    let address = prom
        .get("address")
        .and_then(Yaml::as_str)
        .unwrap_or("0.0.0.0");
    let port = prom.get("port").and_then(Yaml::as_u64).unwrap_or(9671);
    let listen = listen_note(&format!("{address}:{port}"), "prometheus.address/port");

    let mut out = String::new();
    out.push_str(
        "# Imported from emqx-client-monitor 0.3.1's config.yaml by `pushrelay import emqx-client-monitor`.\n\
         # The metric names and labels are the same, so its dashboards and alert rules keep working.\n",
    );
    let _ = writeln!(
        out,
        "# Set {EMQX_SECRET_ENV} in the relay's environment: the secret was not copied.\n"
    );
    out.push_str(&relay_table(&format!("{ttl}s"), Some(listen)));
    out.push('\n');
    out.push_str(
        "[[source]]\ntype = \"emqx\"\nname = \"emqx\"                           # the job label\n",
    );
    let _ = writeln!(
        out,
        "url = {}   # emqx.api_url (/api and /api/v5 both work)",
        quote(url)
    );
    let _ = writeln!(out, "api_key = {}", quote(api_key));
    let _ = writeln!(
        out,
        "api_secret = \"${{{EMQX_SECRET_ENV}}}\"   # emqx.api_secret, not copied (or api_secret_file = \"/run/secrets/emqx\")"
    );
    let _ = writeln!(out, "broker = {}   # emqx.alias", quote(broker));
    let _ = writeln!(
        out,
        "interval = {}   # prometheus.ttl_seconds (its cache) becomes the poll interval",
        quote(&format!("{ttl}s"))
    );
    if let Some(t) = emqx.get("timeout_seconds") {
        let t = t
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or("emqx.timeout_seconds: expected a positive whole number")?;
        // pushrelay's timeout bounds a whole poll and may not exceed the interval.
        let _ = writeln!(
            out,
            "timeout = {}   # emqx.timeout_seconds{}",
            quote(&format!("{}s", t.min(ttl))),
            if t > ttl {
                " (at most the interval)"
            } else {
                ""
            }
        );
    }
    match emqx.get("ssl") {
        None => {}
        Some(v) if v.as_bool() == Some(true) => {}
        Some(v) if v.as_bool() == Some(false) => out.push_str(
            "tls = { insecure_skip_verify = true }   # emqx.ssl: false (certificates not checked)\n",
        ),
        Some(v) => {
            let path = v.as_str().ok_or("emqx.ssl: expected true, false or a CA bundle path")?;
            let _ = writeln!(out, "tls = {{ ca_file = {} }}   # emqx.ssl", quote(path));
        }
    }
    match doc.get("monitored_clients") {
        None | Some(Yaml::Null) => out.push_str(
            "# monitored_clients was empty: every client is reported (alias = client id)\n",
        ),
        Some(Yaml::List(items)) if items.is_empty() => out.push_str(
            "# monitored_clients was empty: every client is reported (alias = client id)\n",
        ),
        Some(Yaml::List(items)) => {
            out.push_str("clients = [                        # monitored_clients\n");
            for (i, c) in items.iter().enumerate() {
                let path = format!("monitored_clients[{i}]");
                let id = text(c, &path, "client_id")?;
                let alias = text(c, &path, "alias")?;
                let _ = writeln!(
                    out,
                    "  {{ client_id = {}, alias = {} }},",
                    quote(id),
                    quote(alias)
                );
            }
            out.push_str("]\n");
        }
        Some(_) => return Err("monitored_clients: expected a list".into()),
    }
    for (flag, default) in EMQX_FLAGS {
        if let Some(v) = prom.get(flag) {
            let b = v
                .as_bool()
                .ok_or_else(|| format!("prometheus.{flag}: expected true or false"))?;
            let _ = writeln!(
                out,
                "{flag} = {b}{}",
                if b == default { "   # the default" } else { "" }
            );
        }
    }
    if let Some(a) = emqx.get("attempts") {
        let _ = writeln!(
            out,
            "# emqx.attempts = {}: not carried over; a failed poll reports up 0 and the next poll tries again",
            a.as_str().unwrap_or("?")
        );
    }
    let mut known = vec!["port", "address", "ttl_seconds"];
    known.extend(EMQX_FLAGS.iter().map(|(f, _)| *f));
    let emqx_keys = [
        "api_key",
        "api_secret",
        "api_url",
        "ssl",
        "alias",
        "timeout_seconds",
        "attempts",
    ];
    let mut others: Vec<String> = unknown(emqx, &emqx_keys)
        .into_iter()
        .map(|k| format!("emqx.{k}"))
        .collect();
    others.extend(
        unknown(prom, &known)
            .into_iter()
            .map(|k| format!("prometheus.{k}")),
    );
    others.extend(
        unknown(&doc, &["emqx", "monitored_clients", "prometheus"])
            .into_iter()
            .map(str::to_string),
    );
    finish(out, &others, "emqx-client-monitor 0.3.1", sink)
}

/// A dynaconf setting: its keys are case-insensitive and may sit in a `[default]` table.
fn setting<'a>(doc: &'a toml::Table, key: &str) -> Option<(&'a str, &'a toml::Value)> {
    let find = |t: &'a toml::Table| {
        t.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(k, v)| (k.as_str(), v))
    };
    find(doc).or_else(|| {
        doc.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("default"))
            .and_then(|(_, v)| v.as_table())
            .and_then(find)
    })
}

/// A whole number, also dynaconf's `"@int 5"` form.
fn whole(v: &toml::Value) -> Option<i64> {
    match v {
        toml::Value::Integer(n) => Some(*n),
        toml::Value::String(s) => s.strip_prefix("@int ").and_then(|n| n.trim().parse().ok()),
        _ => None,
    }
}

/// linkhub-prometheus-exporter's `settings.toml` (or `.secrets.toml`) as pushrelay TOML.
pub fn linkhub_exporter(toml_text: &str, sink: &str) -> Result<String, String> {
    let doc: toml::Table = toml_text
        .parse()
        .map_err(|e: toml::de::Error| format!("not TOML: {}", e.message()))?;
    let box_address = match setting(&doc, "box_address") {
        Some((k, v)) => v.as_str().ok_or(format!("{k}: expected text"))?,
        None => "192.168.1.1",
    };
    let interval = match setting(&doc, "polling_interval_seconds") {
        Some((k, v)) => whole(v)
            .filter(|n| *n > 0)
            .ok_or(format!("{k}: expected a positive whole number"))?,
        None => 5,
    };
    let url = if box_address.contains("://") {
        box_address.to_string()
    } else {
        format!("http://{box_address}")
    };
    let address = setting(&doc, "exporter_address")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("localhost");
    let port = setting(&doc, "exporter_port")
        .and_then(|(_, v)| whole(v))
        .unwrap_or(9877);
    let host = if address == "localhost" {
        "127.0.0.1"
    } else {
        address
    };
    let listen = listen_note(&format!("{host}:{port}"), "exporter_address/exporter_port");
    let mut out = String::new();
    out.push_str(
        "# Imported from linkhub-prometheus-exporter's settings.toml by `pushrelay import linkhub-exporter`.\n\
         # compat_names = true keeps the exporter's metric names (sinr, rsrp, …), so its dashboard works.\n",
    );
    let _ = writeln!(
        out,
        "# Set {LINKHUB_KEY_ENV} in the relay's environment: the request key was not copied{}.\n",
        if setting(&doc, "request_key").is_some() {
            ""
        } else {
            " (it was not in this file: the exporter read it from .secrets.toml or LINKHUB_/DYNACONF_REQUEST_KEY)"
        }
    );
    out.push_str(&relay_table("60s", Some(listen)));
    out.push('\n');
    out.push_str("[[source]]\ntype = \"linkhub\"\nname = \"router\"                         # the job label\n");
    let _ = writeln!(out, "url = {}   # box_address", quote(&url));
    let _ = writeln!(
        out,
        "request_key = \"${{{LINKHUB_KEY_ENV}}}\"   # request_key, not copied"
    );
    let _ = writeln!(
        out,
        "interval = {}   # polling_interval_seconds",
        quote(&format!("{interval}s"))
    );
    out.push_str("compat_names = true\n");
    if let Some((k, v)) = setting(&doc, "log_level") {
        let _ = writeln!(
            out,
            "# {k} = {v}: not a config key; run with --log-level {}",
            v.as_str().unwrap_or("info").to_ascii_lowercase()
        );
    }
    let known = [
        "request_key",
        "box_address",
        "polling_interval_seconds",
        "exporter_address",
        "exporter_port",
        "log_level",
        "default",
    ];
    let mut others: Vec<&str> = doc
        .keys()
        .map(String::as_str)
        .filter(|k| !known.iter().any(|n| n.eq_ignore_ascii_case(k)))
        .collect();
    if let Some((_, toml::Value::Table(t))) =
        doc.iter().find(|(k, _)| k.eq_ignore_ascii_case("default"))
    {
        others.extend(
            t.keys()
                .map(String::as_str)
                .filter(|k| !known.iter().any(|n| n.eq_ignore_ascii_case(k))),
        );
    }
    let others: Vec<String> = others.into_iter().map(str::to_string).collect();
    finish(out, &others, "linkhub-prometheus-exporter", sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains_all(text: &str, wants: &[&str]) {
        let missing: Vec<&&str> = wants.iter().filter(|w| !text.contains(**w)).collect();
        assert!(missing.is_empty(), "missing {missing:?} in\n{text}");
    }

    fn parses(text: &str) -> crate::config::Config {
        crate::config::parse(text, "imported.toml", &|k| {
            (k == EMQX_SECRET_ENV || k == LINKHUB_KEY_ENV).then(|| "from-env".to_string())
        })
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn emqx_client_monitor_config_maps_one_to_one_without_the_secret() {
        let y = "emqx:\n  api_key: \"01234567890abcde\"\n  api_secret: \"exampleSecretKey1234567890\"\n  \
                 api_url: \"http://emqx:18083/api/\"\n  ssl: false\n  alias: LocalEMQX\n  timeout_seconds: 30\n  attempts: 3\n\
                 monitored_clients:\n  - alias: QingpingCO2_Room1\n    client_id: \"qingping-DEADBEEF1234\"\n\
                 prometheus:\n  ttl_seconds: 20\n  enable_dates: true\n  enable_bytes_metrics: true\n  extra: 1\n";
        for sink in ["remote_write", "pushgateway"] {
            let out = emqx_client_monitor(y, sink).unwrap();
            assert!(!out.contains("exampleSecretKey"), "{out}");
            contains_all(
                &out,
                &[
                    "interval = \"20s\"",
                    "timeout = \"20s\"   # emqx.timeout_seconds (at most the interval)",
                    "broker = \"LocalEMQX\"",
                    "{ client_id = \"qingping-DEADBEEF1234\", alias = \"QingpingCO2_Room1\" }",
                    "enable_dates = true\n",
                    "enable_bytes_metrics = true   # the default",
                    "insecure_skip_verify = true",
                    "# emqx.attempts = 3: not carried over",
                    "# prometheus.extra: unknown",
                    "# listen = \"0.0.0.0:9671\"",
                    "${EMQX_API_SECRET}",
                ],
            );
            let cfg = parses(&out);
            assert_eq!(cfg.sinks.len(), 1);
        }
        // Without clients: every client.
        let out = emqx_client_monitor(
            "emqx:\n  api_key: k\n  api_secret: s\n  api_url: http://e:18083/api/\n  alias: B\nmonitored_clients: []\n",
            "remote_write",
        )
        .unwrap();
        assert!(out.contains("every client is reported"), "{out}");
        parses(&out);
        for (bad, want) in [
            ("emqx:\n  api_key: k\n", "emqx.api_url is missing"),
            ("- a\n", "expected a mapping"),
            ("emqx:\n  api_key: k\n  api_secret: s\n  api_url: u\n  alias: a\nmonitored_clients:\n  - alias: x\n", "monitored_clients[0].client_id is missing"),
            ("emqx: &a\n", "line 1"),
        ] {
            let e = emqx_client_monitor(bad, "remote_write").unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn linkhub_settings_map_with_the_key_as_a_reference() {
        let s = "REQUEST_KEY = \"KEYSECRET123\"\nbox_address = \"192.168.8.1\"\npolling_interval_seconds = 10\n\
                 exporter_port = 9877\nexporter_address = \"0.0.0.0\"\nLOG_LEVEL = \"DEBUG\"\nweird = 1\n";
        let out = linkhub_exporter(s, "remote_write").unwrap();
        assert!(!out.contains("KEYSECRET123"), "{out}");
        contains_all(
            &out,
            &[
                "url = \"http://192.168.8.1\"",
                "interval = \"10s\"",
                "compat_names = true",
                "${LINKHUB_REQUEST_KEY}",
                "--log-level debug",
                "# weird: unknown",
                "# listen = \"0.0.0.0:9877\"",
            ],
        );
        parses(&out);
        // Defaults, dynaconf's [default] table and "@int".
        let out = linkhub_exporter(
            "[default]\npolling_interval_seconds = \"@int 7\"\n",
            "pushgateway",
        )
        .unwrap();
        assert!(
            out.contains("url = \"http://192.168.1.1\"") && out.contains("interval = \"7s\""),
            "{out}"
        );
        assert!(out.contains(".secrets.toml"), "{out}");
        parses(&out);
        assert!(linkhub_exporter("box_address = 3\n", "remote_write")
            .unwrap_err()
            .contains("box_address"));
        assert!(linkhub_exporter("not toml", "remote_write")
            .unwrap_err()
            .contains("not TOML"));
    }
}
