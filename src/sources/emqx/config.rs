//! `type = "emqx"`: the table of an EMQX source, raw and validated, with emqx-client-monitor's
//! flags under their own names and defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::{de_duration_opt, de_size_opt, ser_duration, ser_url};
use crate::config::{Component, ConfigError, HttpConfig, HttpKeys, RawHttp, Secret, Section};
use crate::sources::{BuildContext, Source, SourceConfig};

/// One monitored EMQX client (`clients = [{ client_id, alias }]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmqxClient {
    pub client_id: String,
    /// The `alias` label; defaults to the client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// emqx-client-monitor's feature flags, with its names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmqxFlags {
    pub enable_processed_counters: bool,
    pub enable_qos_split: bool,
    pub enable_dropped_counters: bool,
    pub enable_reason_split: bool,
    pub enable_bytes_metrics: bool,
    pub enable_packet_metrics: bool,
    pub enable_dates: bool,
    pub enable_inflight_metrics: bool,
    pub enable_subscription_count: bool,
}

impl Default for EmqxFlags {
    fn default() -> Self {
        EmqxFlags {
            enable_processed_counters: true,
            enable_qos_split: false,
            enable_dropped_counters: false,
            enable_reason_split: false,
            enable_bytes_metrics: true,
            enable_packet_metrics: true,
            enable_dates: false,
            enable_inflight_metrics: true,
            enable_subscription_count: true,
        }
    }
}

/// `type = "emqx"`: per-client statistics from the EMQX v5 REST API (see `sources::emqx`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmqxConfig {
    pub name: String,
    /// The dashboard/API base, e.g. `http://emqx:18083` (`/api/v5` is added when missing).
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    pub api_key: String,
    pub api_secret: Secret,
    /// The `broker` label.
    pub broker: String,
    /// Monitored clients; empty means every client (paged).
    pub clients: Vec<EmqxClient>,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Longest one poll may take (printed once, as the flattened `http.timeout`, which holds
    /// the same value).
    #[serde(skip_serializing)]
    pub timeout: Duration,
    /// How long a vanished client keeps its last-known series.
    #[serde(serialize_with = "ser_duration")]
    pub forget_after: Duration,
    /// Carry counters across reconnects so `_total` series never go backwards.
    pub monotonic_counters: bool,
    /// Largest answer (one page of clients) accepted, in bytes.
    pub body_size_limit: u64,
    #[serde(flatten)]
    pub flags: EmqxFlags,
    /// Headers, TLS and per-request timeout (auth is `api_key`/`api_secret`).
    #[serde(flatten)]
    pub http: HttpConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmqx {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    api_key: String,
    api_secret: Option<String>,
    api_secret_file: Option<PathBuf>,
    broker: Option<String>,
    #[serde(default)]
    clients: Vec<EmqxClient>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    forget_after: Option<Duration>,
    monotonic_counters: Option<bool>,
    #[serde(default, deserialize_with = "de_size_opt")]
    body_size_limit: Option<u64>,
    enable_processed_counters: Option<bool>,
    enable_qos_split: Option<bool>,
    enable_dropped_counters: Option<bool>,
    enable_reason_split: Option<bool>,
    enable_bytes_metrics: Option<bool>,
    enable_packet_metrics: Option<bool>,
    enable_dates: Option<bool>,
    enable_inflight_metrics: Option<bool>,
    enable_subscription_count: Option<bool>,
}

impl Component for EmqxConfig {
    const TYPE: &'static str = "emqx";
    const HTTP: HttpKeys = HttpKeys::Transport;
    type Raw = RawEmqx;

    fn validate(s: RawEmqx, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        let interval = s.interval.unwrap_or(sec.relay.interval);
        let timeout = sec.source_timeout(s.timeout, Duration::from_secs(10), interval);
        let api_secret = sec.required_secret(
            s.api_secret.as_deref(),
            s.api_secret_file.as_deref(),
            "api_secret",
            "an emqx source needs api_secret or api_secret_file",
        )?;
        let mut seen = std::collections::HashSet::new();
        for c in &s.clients {
            if c.client_id.is_empty() || !seen.insert(c.client_id.as_str()) {
                return Err(sec.error_at_text(
                    &format!("\"{}\"", c.client_id),
                    "clients",
                    format!("client_id {:?} is empty or listed twice", c.client_id),
                ));
            }
        }
        let d = EmqxFlags::default();
        let flags = EmqxFlags {
            enable_processed_counters: s
                .enable_processed_counters
                .unwrap_or(d.enable_processed_counters),
            enable_qos_split: s.enable_qos_split.unwrap_or(d.enable_qos_split),
            enable_dropped_counters: s
                .enable_dropped_counters
                .unwrap_or(d.enable_dropped_counters),
            enable_reason_split: s.enable_reason_split.unwrap_or(d.enable_reason_split),
            enable_bytes_metrics: s.enable_bytes_metrics.unwrap_or(d.enable_bytes_metrics),
            enable_packet_metrics: s.enable_packet_metrics.unwrap_or(d.enable_packet_metrics),
            enable_dates: s.enable_dates.unwrap_or(d.enable_dates),
            enable_inflight_metrics: s
                .enable_inflight_metrics
                .unwrap_or(d.enable_inflight_metrics),
            enable_subscription_count: s
                .enable_subscription_count
                .unwrap_or(d.enable_subscription_count),
        };
        let url = sec.url(&s.url, "url")?;
        let http = sec.http(http, timeout, &["authorization", "accept"])?;
        sec.check_transport(&url, &http, true);
        if flags.enable_qos_split && !flags.enable_processed_counters {
            sec.warn("enable_qos_split needs enable_processed_counters = true: without it no per-QoS series is exported");
        }
        if flags.enable_reason_split && !flags.enable_dropped_counters {
            sec.warn("enable_reason_split needs enable_dropped_counters = true: without it no per-reason series is exported");
        }
        Ok(EmqxConfig {
            url,
            api_key: sec.expand(&s.api_key, "api_key")?,
            api_secret,
            broker: match s.broker {
                Some(b) => sec.expand(&b, "broker")?,
                None => "LocalEMQX".to_string(),
            },
            clients: s.clients,
            interval,
            timeout,
            forget_after: s.forget_after.unwrap_or(Duration::from_secs(24 * 3600)),
            monotonic_counters: s.monotonic_counters.unwrap_or(true),
            body_size_limit: s.body_size_limit.unwrap_or(super::BODY_LIMIT),
            flags,
            http,
            name: s.name,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl SourceConfig for EmqxConfig {
    fn build(&self, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
        Ok(Box::new(super::EmqxSource::new(self.clone(), ctx)?))
    }
}
