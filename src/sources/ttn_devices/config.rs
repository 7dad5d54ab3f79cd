//! The `type = "ttn_devices"` configuration: the raw table as written (positions kept for
//! errors) and the validated [`TtnDevicesConfig`] the source runs on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::config::units::{de_duration_opt, ser_duration, ser_url};
use crate::config::{Component, ConfigError, HttpKeys, RawHttp, Secret, Section, TlsConfig};
use crate::sources::{BuildContext, Source, SourceConfig};

/// Default silence rule: a device is expected to send at least this often.
pub const DEFAULT_EXPECTED_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Default time after which a device not heard from (and not listed in `devices`) is dropped.
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default bound on `ttn_device_payload_value` series per device.
pub const DEFAULT_MAX_DECODED_FIELDS: usize = 32;

/// A `[[source]]` with `type = "ttn_devices"`, exactly as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTtnDevices {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    application: String,
    api_key: Option<String>,
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    expected_interval: Option<Duration>,
    #[serde(default)]
    expected_intervals: BTreeMap<String, String>,
    decoded_fields: Option<Vec<String>>,
    max_decoded_fields: Option<usize>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    forget_after: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    keep_alive: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
}

/// `type = "ttn_devices"`: LoRaWAN devices of one application, from The Things Stack's MQTT
/// server (see `sources::ttn_devices` and docs/ttn-devices.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TtnDevicesConfig {
    pub name: String,
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]`.
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    /// `<application id>@<tenant id>` (`app1@ttn`), or the bare id on the open-source stack:
    /// the MQTT user name and the topics' second level.
    pub application: String,
    /// An application API key with the "read application traffic" right: the MQTT password.
    pub api_key: Secret,
    /// Devices to report; empty means every device that sends.
    pub devices: Vec<String>,
    /// How often a device is expected to send (the silence alert's unit).
    #[serde(serialize_with = "ser_duration")]
    pub expected_interval: Duration,
    /// Per-device overrides of `expected_interval`.
    #[serde(serialize_with = "ser_durations")]
    pub expected_intervals: BTreeMap<String, Duration>,
    /// `decoded_payload` fields to export (`a` or `a.b`); `None`: every number at the top
    /// level and one level deep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded_fields: Option<Vec<String>>,
    /// Most `ttn_device_payload_value` series per device.
    pub max_decoded_fields: usize,
    /// A device not heard from for this long is dropped (unless listed in `devices`).
    #[serde(serialize_with = "ser_duration")]
    pub forget_after: Duration,
    /// MQTT keep-alive: how often an idle session pings the server.
    #[serde(serialize_with = "ser_duration")]
    pub keep_alive: Duration,
    /// How often the accumulated state is pushed.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Bound of one connection attempt (TCP, TLS, CONNECT), and how long `print`/`check` wait
    /// for a first message.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub tls: TlsConfig,
}

impl TtnDevicesConfig {
    /// Whether the session runs over TLS (`mqtts://`).
    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "mqtts"
    }

    /// The broker's port: the URL's, else 8883 with TLS and 1883 without.
    pub fn port(&self) -> u16 {
        self.url
            .port()
            .unwrap_or(if self.is_tls() { 8883 } else { 1883 })
    }

    /// The broker's host name or address, without IPv6 brackets.
    pub fn host(&self) -> String {
        let h = self.url.host_str().unwrap_or("");
        h.trim_start_matches('[').trim_end_matches(']').to_string()
    }

    /// The expected interval of one device.
    pub fn expected_interval_of(&self, device_id: &str) -> Duration {
        self.expected_intervals
            .get(device_id)
            .copied()
            .unwrap_or(self.expected_interval)
    }
}

fn ser_durations<S: Serializer>(m: &BTreeMap<String, Duration>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(
        m.iter()
            .map(|(k, d)| (k, humantime::format_duration(*d).to_string())),
    )
}

/// An application, tenant or device ID as The Things Stack allows them: 2–36 characters of
/// lower-case letters, digits and single `-` between them.
pub fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=36).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

impl Component for TtnDevicesConfig {
    const TYPE: &'static str = "ttn_devices";
    const HTTP: HttpKeys = HttpKeys::TlsOnly;
    type Raw = RawTtnDevices;

    fn validate(s: RawTtnDevices, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        let url_text = sec.expand(&s.url, "url")?;
        let url = reqwest::Url::parse(&url_text)
            .map_err(|e| sec.error_at_table("url", format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "mqtt" | "mqtts") {
            return Err(sec.error_at_table(
                "url",
                "URL must start with mqtts:// (TLS, port 8883) or mqtt:// (plain, port 1883)",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(sec.error_at_table("url", "URL has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(sec.error(
                "url",
                "put no credentials in the URL: the user name is `application`, the password `api_key`",
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(sec.error(
                "url",
                "an MQTT URL has only a host and a port (no path, no query)",
            ));
        }

        let application = sec.expand(&s.application, "application")?;
        let ok = match application.split_once('@') {
            Some((app, tenant)) => is_valid_id(app) && is_valid_id(tenant),
            None => is_valid_id(&application),
        };
        if !ok {
            return Err(sec.error_at_text(
                &format!("\"{}\"", s.application),
                "application",
                format!(
                    "invalid application {application:?}: use <application id>@<tenant id> (\"app1@ttn\" on The Things Network), or the bare id on the open-source stack"
                ),
            ));
        }
        let api_key = sec.required_secret(
            s.api_key.as_deref(),
            s.api_key_file.as_deref(),
            "api_key",
            "a ttn_devices source needs api_key or api_key_file (an application API key with the right to read application traffic)",
        )?;

        let mut seen = std::collections::HashSet::new();
        for d in &s.devices {
            if !is_valid_id(d) || !seen.insert(d.as_str()) {
                return Err(sec.error_at_text(
                    &format!("\"{d}\""),
                    "devices",
                    format!("device ID {d:?} is invalid (lower-case letters, digits and '-') or listed twice"),
                ));
            }
        }
        let mut expected_intervals = BTreeMap::new();
        for (d, v) in &s.expected_intervals {
            let k = format!("expected_intervals.{d}");
            if !is_valid_id(d) {
                return Err(sec.error_at_text(d, &k, format!("invalid device ID {d:?}")));
            }
            let dur = crate::config::parse_duration(v)
                .map_err(|e| sec.error_at_text(&format!("\"{v}\""), &k, e))?;
            expected_intervals.insert(d.clone(), dur);
        }
        if let Some(fields) = &s.decoded_fields {
            for f in fields {
                let parts: Vec<&str> = f.split('.').collect();
                if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(sec.error_at_text(
                        &format!("\"{f}\""),
                        "decoded_fields",
                        format!(
                            "invalid field {f:?}: a top-level name, or parent.child one level deep"
                        ),
                    ));
                }
            }
        }
        let max_decoded_fields = s.max_decoded_fields.unwrap_or(DEFAULT_MAX_DECODED_FIELDS);
        if max_decoded_fields > 1000 {
            return Err(sec.error("max_decoded_fields", "at most 1000"));
        }

        let interval = s.interval.unwrap_or(sec.relay.interval);
        let timeout = s.timeout.unwrap_or(Duration::from_secs(10));
        let http = sec.http(http, timeout, &[])?;
        if url.scheme() == "mqtt" && (http.tls.ca_file.is_some() || http.tls.insecure_skip_verify) {
            return Err(sec.error(
                "tls",
                "tls settings need an mqtts:// URL (this one is plain mqtt://)",
            ));
        }
        sec.check_transport(&url, &http, true);
        let keep_alive = s.keep_alive.unwrap_or(Duration::from_secs(60));
        if keep_alive < Duration::from_secs(5) || keep_alive > Duration::from_secs(65535) {
            return Err(sec.error("keep_alive", "must be between 5s and 18h"));
        }
        Ok(TtnDevicesConfig {
            url,
            application,
            api_key,
            devices: s.devices,
            expected_interval: s.expected_interval.unwrap_or(DEFAULT_EXPECTED_INTERVAL),
            expected_intervals,
            decoded_fields: s.decoded_fields,
            max_decoded_fields,
            forget_after: s.forget_after.unwrap_or(DEFAULT_FORGET_AFTER),
            keep_alive,
            interval,
            timeout,
            tls: http.tls,
            name: s.name,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl SourceConfig for TtnDevicesConfig {
    fn build(&self, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
        Ok(Box::new(super::TtnDevicesSource::new(self.clone(), ctx)?))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    fn parse_one(body: &str) -> Result<super::TtnDevicesConfig, String> {
        let text = format!("[[source]]\ntype = \"ttn_devices\"\nname = \"dev\"\n{body}\n");
        let env = |k: &str| (k == "KEY").then(|| "NNSXS.ABC.DEF".to_string());
        match parse(&text, "t.toml", &env) {
            Ok(c) => c.sources[0]
                .downcast_ref::<super::TtnDevicesConfig>()
                .cloned()
                .ok_or_else(|| "not a ttn_devices source".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn defaults_and_ports() {
        let c = parse_one(
            "url = \"mqtts://eu1.cloud.thethings.network\"\napplication = \"app1@ttn\"\napi_key = \"${KEY}\"",
        )
        .unwrap();
        assert!(c.is_tls());
        assert_eq!(c.port(), 8883);
        assert_eq!(c.api_key.expose(), "NNSXS.ABC.DEF");
        assert_eq!(c.expected_interval, super::DEFAULT_EXPECTED_INTERVAL);
        assert_eq!(c.interval, std::time::Duration::from_secs(30));
        let c = parse_one(
            "url = \"mqtt://[::1]\"\napplication = \"app1\"\napi_key = \"k\"\nexpected_interval = \"5m\"\nexpected_intervals = { \"feather-1\" = \"1m\" }",
        )
        .unwrap();
        assert_eq!((c.host().as_str(), c.port()), ("::1", 1883));
        assert_eq!(c.expected_interval_of("feather-1").as_secs(), 60);
        assert_eq!(c.expected_interval_of("other").as_secs(), 300);
    }

    #[test]
    fn errors_name_the_key() {
        let base = "application = \"app1@ttn\"\napi_key = \"k\"";
        for (body, want) in [
            (
                format!("url = \"https://x\"\n{base}"),
                "dev.url: URL must start with mqtts://",
            ),
            (format!("url = \"mqtt://u:p@x\"\n{base}"), "no credentials"),
            (
                "url = \"mqtt://x\"\napplication = \"App_1\"\napi_key = \"k\"".to_string(),
                "dev.application: invalid application",
            ),
            (
                "url = \"mqtt://x\"\napplication = \"app1@ttn\"".to_string(),
                "needs api_key or api_key_file",
            ),
            (
                format!("url = \"mqtt://x\"\n{base}\ndevices = [\"a1\", \"a1\"]"),
                "listed twice",
            ),
            (
                format!("url = \"mqtt://x\"\n{base}\ntls = {{ insecure_skip_verify = true }}"),
                "need an mqtts:// URL",
            ),
            (
                format!("url = \"mqtt://x\"\n{base}\ndecoded_fields = [\"a.b.c\"]"),
                "one level deep",
            ),
            (
                format!("url = \"mqtt://x\"\n{base}\nexpected_intervals = {{ dev1 = \"soon\" }}"),
                "expected_intervals.dev1: invalid duration",
            ),
            (
                format!("url = \"mqtt://x\"\n{base}\nqos = 1"),
                "unknown field `qos`",
            ),
        ] {
            let e = parse_one(&body).unwrap_err();
            assert!(e.contains(want), "{body}\n→ {e}");
        }
    }

    #[test]
    fn ids() {
        for ok in ["app1", "my-app-2", "ttn", "a1"] {
            assert!(super::is_valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "-app",
            "app-",
            "a--b",
            "App",
            "app_1",
            &"x".repeat(37),
        ] {
            assert!(!super::is_valid_id(bad), "{bad}");
        }
    }
}
