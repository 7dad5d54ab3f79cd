//! Configuration: the TOML file read in two stages, raw (serde, with positions) then validated.
//!
//! Stage one deserializes the text into `Raw*` structs that deny unknown keys, so a typo, a
//! wrong type or a bad duration fails with the file, line, column and key. Stage two checks what
//! serde cannot (URLs, unique names, secrets from `${ENV}` or `*_file`) and produces [`Config`],
//! which the rest of the program trusts. Secrets live in [`Secret`], whose `Debug` and
//! `Serialize` never show the value, so they cannot reach a log line or `pushrelay config`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::expfmt::negotiate::{ScrapeProtocol, DEFAULT_PROTOCOLS};
use crate::model::{is_valid_label_name, Labels};
use crate::relabel::{RawRelabelConfig, RelabelConfig};

/// Name of the pseudo-source that carries the relay's own metrics; no source may take it.
pub const SELF_JOB: &str = "pushrelay";

/// A configuration error, located in the file where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {key}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{file}: {key}: {message}")]
    Key {
        file: String,
        key: String,
        message: String,
    },
}

/// A secret string: a password, token or key. Never printed, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself; call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration: what the rest of the program uses.

/// The whole validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub relay: RelayConfig,
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    #[serde(rename = "sink")]
    pub sinks: Vec<SinkConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayConfig {
    /// Default poll interval of every source.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Added to every series pushed, never overriding a series' own label.
    #[serde(serialize_with = "ser_labels")]
    pub external_labels: Labels,
    /// Where durable state (queues, source state) lives.
    pub state_dir: PathBuf,
    /// Optional address for `GET /metrics` and `GET /healthz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// How long a clean shutdown may spend finishing in-flight sends.
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_timeout: Duration,
}

/// One `[[source]]`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    Scrape(ScrapeConfig),
    Ttn(TtnConfig),
    Emqx(EmqxConfig),
    Linkhub(LinkhubConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Scrape(s) => &s.name,
            SourceConfig::Ttn(s) => &s.name,
            SourceConfig::Emqx(s) => &s.name,
            SourceConfig::Linkhub(s) => &s.name,
        }
    }
    pub fn interval(&self) -> Duration {
        match self {
            SourceConfig::Scrape(s) => s.interval,
            SourceConfig::Ttn(s) => s.interval,
            SourceConfig::Emqx(s) => s.interval,
            SourceConfig::Linkhub(s) => s.interval,
        }
    }
    /// The source's `metric_relabel_configs`, applied to every series it yields.
    pub fn metric_relabel_configs(&self) -> &[RelabelConfig] {
        match self {
            SourceConfig::Scrape(s) => &s.metric_relabel_configs,
            SourceConfig::Ttn(s) => &s.metric_relabel_configs,
            SourceConfig::Emqx(s) => &s.metric_relabel_configs,
            SourceConfig::Linkhub(s) => &s.metric_relabel_configs,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScrapeConfig {
    pub name: String,
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Longest one scrape may take (printed once, as the flattened `http.timeout`, which
    /// holds the same value).
    #[serde(skip_serializing)]
    pub timeout: Duration,
    /// Largest body accepted, in bytes (after decompression).
    pub body_size_limit: u64,
    /// Prometheus's `honor_labels`: a scraped `job`/`instance` wins over the target's
    /// (false: it is kept as `exported_job`/`exported_instance`).
    pub honor_labels: bool,
    /// Prometheus's `honor_timestamps`: keep the timestamps the target gives.
    pub honor_timestamps: bool,
    /// Most samples one scrape may yield after relabelling (0: no limit).
    pub sample_limit: u64,
    /// Most labels one series may have, its name included (0: no limit).
    pub label_limit: u64,
    /// Longest label name, in bytes (0: no limit).
    pub label_name_length_limit: u64,
    /// Longest label value, in bytes (0: no limit).
    pub label_value_length_limit: u64,
    /// Formats asked for, in order of preference (the `Accept` header).
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// The parser used when the answer's `Content-Type` is missing or unknown.
    pub fallback_scrape_protocol: ScrapeProtocol,
    #[serde(flatten)]
    pub http: HttpConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// `type = "ttn"`: The Things Stack v3 gateways (see `sources::ttn`).
#[derive(Debug, Clone, Serialize)]
pub struct TtnConfig {
    pub name: String,
    /// The Identity Server and default Gateway Server, e.g. `https://eu1.cloud.thethings.network`.
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    /// `NNSXS.…` key; sent as `Authorization: Bearer`.
    pub api_key: Secret,
    /// Gateway IDs to watch; empty means every gateway the key can list.
    pub gateways: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Bound of one collection (all API calls of one cycle); defaults to the interval.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// How often the gateway list is fetched again (discovery mode only).
    #[serde(serialize_with = "ser_duration")]
    pub discovery_interval: Duration,
    /// Also emit the seed exporter's `ttn_gateway_messages_{uplink,downlink}_count`.
    pub compat_names: bool,
    /// Headers, TLS and per-request timeout (auth is `api_key`). Its `timeout` is the
    /// per-request `request_timeout`, so it is printed through the three fields below instead
    /// of flattened (which would print `timeout` twice with two meanings).
    #[serde(skip)]
    pub http: HttpConfig,
    #[serde(serialize_with = "ser_duration")]
    request_timeout: Duration,
    #[serde(serialize_with = "ser_headers")]
    headers: Vec<(String, String)>,
    tls: TlsConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// One monitored EMQX client (`clients = [{ client_id, alias }]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmqxClient {
    pub client_id: String,
    /// The `alias` label; defaults to the client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// emqx-client-monitor's feature flags, with its names and defaults.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
    #[serde(flatten)]
    pub flags: EmqxFlags,
    /// Headers, TLS and per-request timeout (auth is `api_key`/`api_secret`).
    #[serde(flatten)]
    pub http: HttpConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// `type = "linkhub"`: an Alcatel/TCL 4G router's JSON-RPC web API (see `sources::linkhub`).
#[derive(Debug, Clone, Serialize)]
pub struct LinkhubConfig {
    pub name: String,
    /// The router's web UI, e.g. `http://192.168.1.1`.
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    /// `_TclRequestVerificationKey` (HH41: the credential; login models: the public key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_key: Option<Secret>,
    /// For models that log in (`Login` → `_TclRequestVerificationToken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Longest one poll may take. Not printed: `http.timeout` holds the same value and is
    /// flattened into the same table (printing both would repeat the `timeout` key).
    #[serde(skip_serializing)]
    pub timeout: Duration,
    /// Also emit linkhub-prometheus-exporter's unprefixed names.
    pub compat_names: bool,
    /// Headers, TLS and per-request timeout.
    #[serde(flatten)]
    pub http: HttpConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// One `[[sink]]`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    RemoteWrite(RemoteWriteConfig),
    Pushgateway(PushgatewayConfig),
}

impl SinkConfig {
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::RemoteWrite(s) => &s.name,
            SinkConfig::Pushgateway(s) => &s.name,
        }
    }
}

/// HTTP client settings shared by every component that makes requests.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HttpConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(serialize_with = "ser_headers")]
    pub headers: Vec<(String, String)>,
    pub tls: TlsConfig,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteWriteConfig {
    pub name: String,
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    #[serde(flatten)]
    pub http: HttpConfig,
    pub max_samples_per_send: usize,
    #[serde(serialize_with = "ser_duration")]
    pub batch_wait: Duration,
    pub rate_limit: RateLimit,
    /// Bound of the queue in samples; the oldest batches go first when it is full.
    pub max_queued_samples: usize,
    /// The durable queue's bounds and sync policy.
    pub buffer: BufferConfig,
    #[serde(serialize_with = "ser_duration")]
    pub min_backoff: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
}

/// `buffer = { max_bytes, max_age, fsync }` of a remote-write sink.
#[derive(Debug, Clone, Serialize)]
pub struct BufferConfig {
    /// Bytes the queue may take on disk; over it the oldest batches are dropped.
    pub max_bytes: u64,
    /// Batches whose oldest sample is older than this are dropped before sending.
    #[serde(serialize_with = "ser_duration")]
    pub max_age: Duration,
    /// `"always"` or an interval.
    #[serde(serialize_with = "ser_fsync")]
    pub fsync: crate::buffer::Fsync,
}

fn ser_fsync<S: Serializer>(f: &crate::buffer::Fsync, s: S) -> Result<S::Ok, S::Error> {
    match f {
        crate::buffer::Fsync::Always => s.serialize_str("always"),
        crate::buffer::Fsync::Every(d) => ser_duration(d, s),
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct RateLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_second: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushgatewayConfig {
    pub name: String,
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    /// The `relay` grouping label naming this relay.
    pub relay: String,
    pub delete_on_shutdown: bool,
    #[serde(flatten)]
    pub http: HttpConfig,
    #[serde(serialize_with = "ser_duration")]
    pub min_backoff: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_url<S: Serializer>(u: &reqwest::Url, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(u))
}

fn ser_labels<S: Serializer>(l: &Labels, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(l.iter())
}

fn ser_headers<S: Serializer>(h: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(h.iter().map(|(k, v)| {
        let shown = if header_looks_secret(k) {
            "<redacted>"
        } else {
            v.as_str()
        };
        (k, shown)
    }))
}

/// Header names whose values are credentials and must not be printed.
fn header_looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["auth", "token", "key", "secret", "cookie", "password"]
        .iter()
        .any(|w| n.contains(w))
}

/// The URL as it may appear in a log line: any user info replaced.
pub fn redact_url(u: &reqwest::Url) -> String {
    if u.username().is_empty() && u.password().is_none() {
        return u.to_string();
    }
    let mut u = u.clone();
    // Setting user info only fails for URLs that cannot have it, and those have none to hide.
    let _ = u.set_username("redacted");
    let _ = u.set_password(None);
    u.to_string()
}

// ---------------------------------------------------------------------------------------------
// Raw configuration: exactly the file's shape.

/// The file's three sections; each `[[source]]`/`[[sink]]` with the span of its table.
struct RawConfig {
    relay: RawRelay,
    source: Vec<(Range<usize>, RawSource)>,
    sink: Vec<(Range<usize>, RawSink)>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    state_dir: Option<PathBuf>,
    listen: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    shutdown_timeout: Option<Duration>,
}

/// A `[[source]]` by its `type` (dispatched by hand: serde's tagged enums would buffer the
/// input and lose the positions errors need).
enum RawSource {
    Scrape(RawScrape),
    Ttn(RawTtn),
    Emqx(RawEmqx),
    Linkhub(RawLinkhub),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTtn {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    api_key: Option<String>,
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    gateways: Vec<String>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    discovery_interval: Option<Duration>,
    #[serde(default)]
    compat_names: bool,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    tls: Option<RawTls>,
    #[serde(default)]
    metric_relabel_configs: Vec<Spanned<RawRelabelConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmqx {
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
    enable_processed_counters: Option<bool>,
    enable_qos_split: Option<bool>,
    enable_dropped_counters: Option<bool>,
    enable_reason_split: Option<bool>,
    enable_bytes_metrics: Option<bool>,
    enable_packet_metrics: Option<bool>,
    enable_dates: Option<bool>,
    enable_inflight_metrics: Option<bool>,
    enable_subscription_count: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    tls: Option<RawTls>,
    #[serde(default)]
    metric_relabel_configs: Vec<Spanned<RawRelabelConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinkhub {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    request_key: Option<String>,
    request_key_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    #[serde(default)]
    compat_names: bool,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    tls: Option<RawTls>,
    #[serde(default)]
    metric_relabel_configs: Vec<Spanned<RawRelabelConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrape {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_size_opt")]
    body_size_limit: Option<u64>,
    metrics_path: Option<Spanned<String>>,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    honor_labels: Option<bool>,
    honor_timestamps: Option<bool>,
    sample_limit: Option<u64>,
    label_limit: Option<u64>,
    label_name_length_limit: Option<u64>,
    label_value_length_limit: Option<u64>,
    scrape_protocols: Option<Spanned<Vec<String>>>,
    fallback_scrape_protocol: Option<Spanned<String>>,
    basic_auth: Option<RawBasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    tls: Option<RawTls>,
    #[serde(default)]
    metric_relabel_configs: Vec<Spanned<RawRelabelConfig>>,
}

/// A `[[sink]]` by its `type`.
enum RawSink {
    RemoteWrite(RawRemoteWrite),
    Pushgateway(RawPushgateway),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteWrite {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    basic_auth: Option<RawBasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    max_samples_per_send: Option<usize>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    batch_wait: Option<Duration>,
    rate_limit: Option<RawRateLimit>,
    tls: Option<RawTls>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    max_queued_samples: Option<usize>,
    buffer: Option<RawBuffer>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    min_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    max_backoff: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuffer {
    #[serde(default, deserialize_with = "de_size_opt")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    max_age: Option<Duration>,
    #[serde(default, deserialize_with = "de_fsync_opt")]
    fsync: Option<crate::buffer::Fsync>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPushgateway {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    relay: Option<String>,
    #[serde(default)]
    delete_on_shutdown: bool,
    basic_auth: Option<RawBasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    tls: Option<RawTls>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    min_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    max_backoff: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests_per_second: Option<f64>,
    samples_per_second: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

/// Parses a duration like `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`; zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}); use e.g. \"30s\", \"5m\", \"250ms\"")
    })?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Ok(d)
}

/// Parses a size like `"16MiB"`, `"512KiB"`, `"1GB"` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}; use e.g. \"16MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => {
            return Err(format!(
                "invalid size unit {u:?} in {s:?}; use B, KiB, MiB, GiB"
            ))
        }
    };
    let v = n * mult as f64;
    if !(1.0..1e15).contains(&v) {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(v as u64)
}

fn de_duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn de_fsync_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::buffer::Fsync>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim() == "always" {
        return Ok(Some(crate::buffer::Fsync::Always));
    }
    parse_duration(&s)
        .map(|d| Some(crate::buffer::Fsync::Every(d)))
        .map_err(|e| serde::de::Error::custom(format!("{e}, or \"always\"")))
}

fn de_size_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        N(u64),
        S(String),
    }
    match S::deserialize(d)? {
        S::N(n) if n > 0 => Ok(Some(n)),
        S::N(_) => Err(serde::de::Error::custom("size must be greater than zero")),
        S::S(s) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and validation.

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string(), &|k| {
        std::env::var(k).ok()
    })
}

/// Parses and validates configuration `text`; `file` names it in errors and `env` resolves
/// `${VAR}` references (the process environment in production, a map in tests).
pub fn parse(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let ctx = Ctx { text, file, env };
    let raw = ctx.parse_raw()?;
    ctx.validate(raw)
}

/// What validation needs to resolve references and locate errors.
struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// Deserializes one spanned TOML value, keeping positions for errors.
fn de_value<'de, T: Deserialize<'de>>(v: &Spanned<DeValue<'de>>) -> Result<T, toml::de::Error> {
    T::deserialize(toml::de::ValueDeserializer::from(v.clone()))
}

impl Ctx<'_> {
    /// Stage one: the text into raw sections, dispatching `[[source]]`/`[[sink]]` on `type`.
    fn parse_raw(&self) -> Result<RawConfig, ConfigError> {
        let root = DeTable::parse(self.text).map_err(|e| self.toml_error(&e))?;
        let mut raw = RawConfig {
            relay: RawRelay::default(),
            source: Vec::new(),
            sink: Vec::new(),
        };
        for (k, v) in root.get_ref().iter() {
            let key: &str = k.get_ref();
            match key {
                "relay" => raw.relay = de_value(v).map_err(|e| self.toml_error(&e))?,
                "source" => {
                    for elem in self.tables(key, v)? {
                        let t = self.type_of(key, elem, &["scrape", "ttn", "emqx", "linkhub"])?;
                        let parsed = match t.as_str() {
                            "scrape" => {
                                RawSource::Scrape(de_value(elem).map_err(|e| self.toml_error(&e))?)
                            }
                            "ttn" => {
                                RawSource::Ttn(de_value(elem).map_err(|e| self.toml_error(&e))?)
                            }
                            "emqx" => {
                                RawSource::Emqx(de_value(elem).map_err(|e| self.toml_error(&e))?)
                            }
                            "linkhub" => {
                                RawSource::Linkhub(de_value(elem).map_err(|e| self.toml_error(&e))?)
                            }
                            _ => unreachable!("type_of checked the type"),
                        };
                        raw.source.push((elem.span(), parsed));
                    }
                }
                "sink" => {
                    for elem in self.tables(key, v)? {
                        let t = self.type_of(key, elem, &["remote_write", "pushgateway"])?;
                        let parsed = match t.as_str() {
                            "remote_write" => RawSink::RemoteWrite(
                                de_value(elem).map_err(|e| self.toml_error(&e))?,
                            ),
                            "pushgateway" => RawSink::Pushgateway(
                                de_value(elem).map_err(|e| self.toml_error(&e))?,
                            ),
                            _ => unreachable!("type_of checked the type"),
                        };
                        raw.sink.push((elem.span(), parsed));
                    }
                }
                other => {
                    return Err(self.at(
                        k.span(),
                        other,
                        format!("unknown section `{other}`, expected `relay`, `source` or `sink`"),
                    ))
                }
            }
        }
        Ok(raw)
    }

    /// The tables of an array of tables (`[[source]]`), or a located error.
    fn tables<'v, 'de>(
        &self,
        key: &str,
        v: &'v Spanned<DeValue<'de>>,
    ) -> Result<Vec<&'v Spanned<DeValue<'de>>>, ConfigError> {
        match v.get_ref() {
            DeValue::Array(items) if items.iter().all(|i| i.get_ref().is_table()) => {
                Ok(items.iter().collect())
            }
            _ => Err(self.at(
                v.span(),
                key,
                format!("`{key}` must be written as [[{key}]] tables"),
            )),
        }
    }

    /// The `type` of a source or sink table, checked against `known`.
    fn type_of(
        &self,
        section: &str,
        elem: &Spanned<DeValue<'_>>,
        known: &[&str],
    ) -> Result<String, ConfigError> {
        let table = elem.get_ref().as_table().expect("checked by tables()");
        let Some(t) = table.get("type") else {
            return Err(self.at(
                elem.span(),
                section,
                format!("missing `type`, expected one of: {}", known.join(", ")),
            ));
        };
        match t.get_ref().as_str() {
            Some(s) if known.contains(&s) => Ok(s.to_string()),
            Some(s) => Err(self.at(
                t.span(),
                &format!("{section}.type"),
                format!(
                    "unknown {section} type {s:?}, expected one of: {}",
                    known.join(", ")
                ),
            )),
            None => Err(self.at(
                t.span(),
                &format!("{section}.type"),
                "`type` must be a string",
            )),
        }
    }

    fn at(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::At {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn key_err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            file: self.file.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Turns a TOML/serde error into a located error naming the key it is about.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => {
                let key = key_at(self.text, span.start, &message);
                self.at(span, &key, message)
            }
            None => self.key_err("(file)", message),
        }
    }

    /// Replaces `${VAR}` with the environment's value; a missing variable is an error located
    /// at its reference. `$$` stands for a literal `$`.
    fn expand(
        &self,
        s: &str,
        key: &str,
        near: Option<Range<usize>>,
    ) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    self.locate(s, key, near.clone(), "unclosed ${ in value".to_string())
                })?;
                let var = &body[..end];
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.locate(
                        &format!("${{{var}}}"),
                        key,
                        near,
                        format!("invalid environment variable name {var:?}"),
                    ));
                }
                match (self.env)(var) {
                    Some(v) => out.push_str(&v),
                    None => {
                        return Err(self.locate(
                            &format!("${{{var}}}"),
                            key,
                            near,
                            format!("environment variable {var} is not set"),
                        ))
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Locates `needle` in the file (searching from `near` if known) for an error message.
    fn locate(
        &self,
        needle: &str,
        key: &str,
        near: Option<Range<usize>>,
        message: String,
    ) -> ConfigError {
        let from = near.map(|r| r.start).unwrap_or(0);
        let pos = self.text[from.min(self.text.len())..]
            .find(needle)
            .map(|p| p + from)
            .or_else(|| self.text.find(needle));
        match pos {
            Some(p) => self.at(p..p + needle.len(), key, message),
            None => self.key_err(key, message),
        }
    }

    /// Resolves a secret given inline (possibly as `${VAR}`) or as a `*_file` path.
    fn secret(
        &self,
        inline: Option<&str>,
        file: Option<&Path>,
        key: &str,
        near: Option<Range<usize>>,
    ) -> Result<Option<Secret>, ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                Err(self.key_err(key, format!("give either {key} or {key}_file, not both")))
            }
            (Some(s), None) => Ok(Some(Secret(self.expand(s, key, near)?))),
            (None, Some(p)) => {
                let p = PathBuf::from(self.expand(&p.to_string_lossy(), key, near)?);
                let s = std::fs::read_to_string(&p).map_err(|e| {
                    self.key_err(
                        &format!("{key}_file"),
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?;
                Ok(Some(Secret(s.trim_end_matches(['\n', '\r']).to_string())))
            }
            (None, None) => Ok(None),
        }
    }

    /// [`Ctx::secret`] for a secret that must be given: `missing` is the error when neither is.
    fn required_secret(
        &self,
        inline: Option<&str>,
        file: Option<&Path>,
        key: &str,
        near: Option<Range<usize>>,
        missing: &str,
    ) -> Result<Secret, ConfigError> {
        self.secret(inline, file, key, near)?
            .ok_or_else(|| self.key_err(key, missing))
    }

    fn url(&self, s: &str, key: &str, span: Range<usize>) -> Result<reqwest::Url, ConfigError> {
        let expanded = self.expand(s, key, Some(span.clone()))?;
        let u = reqwest::Url::parse(&expanded)
            .map_err(|e| self.at(span.clone(), key, format!("invalid URL: {e}")))?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err(self.at(span, key, "URL must start with http:// or https://"));
        }
        if u.host_str().is_none() {
            return Err(self.at(span, key, "URL has no host"));
        }
        Ok(u)
    }

    #[allow(clippy::too_many_arguments)]
    fn http(
        &self,
        prefix: &str,
        span: Range<usize>,
        basic_auth: Option<RawBasicAuth>,
        bearer_token: Option<String>,
        bearer_token_file: Option<PathBuf>,
        headers: BTreeMap<String, String>,
        tls: Option<RawTls>,
        timeout: Duration,
        reserved_headers: &[&str],
    ) -> Result<HttpConfig, ConfigError> {
        let basic_auth = match basic_auth {
            Some(b) => {
                let key = format!("{prefix}.basic_auth.password");
                let password = self.required_secret(
                    b.password.as_deref(),
                    b.password_file.as_deref(),
                    &key,
                    Some(span.clone()),
                    "basic_auth needs password or password_file",
                )?;
                Some(BasicAuth {
                    username: self.expand(
                        &b.username,
                        &format!("{prefix}.basic_auth.username"),
                        Some(span.clone()),
                    )?,
                    password,
                })
            }
            None => None,
        };
        let bearer_token = self.secret(
            bearer_token.as_deref(),
            bearer_token_file.as_deref(),
            &format!("{prefix}.bearer_token"),
            Some(span.clone()),
        )?;
        if basic_auth.is_some() && bearer_token.is_some() {
            return Err(self.key_err(prefix, "give basic_auth or bearer_token, not both"));
        }
        let mut hs = Vec::new();
        for (k, v) in headers {
            let key = format!("{prefix}.headers.{k}");
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(self.locate(
                    &k,
                    &key,
                    Some(span.clone()),
                    "invalid header name".into(),
                ));
            }
            let lower = k.to_ascii_lowercase();
            let auth_set = basic_auth.is_some() || bearer_token.is_some();
            if reserved_headers.contains(&lower.as_str()) || (lower == "authorization" && auth_set)
            {
                return Err(self.locate(
                    &k,
                    &key,
                    Some(span.clone()),
                    format!("header {k} is set by pushrelay and may not be overridden"),
                ));
            }
            let v = self.expand(&v, &key, Some(span.clone()))?;
            if reqwest::header::HeaderValue::from_str(&v).is_err() {
                return Err(self.key_err(&key, "invalid header value"));
            }
            hs.push((k, v));
        }
        let tls = match tls {
            Some(t) => TlsConfig {
                ca_file: t.ca_file,
                insecure_skip_verify: t.insecure_skip_verify,
            },
            None => TlsConfig::default(),
        };
        if let Some(ca) = &tls.ca_file {
            if !ca.is_file() {
                return Err(self.key_err(
                    &format!("{prefix}.tls.ca_file"),
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        Ok(HttpConfig {
            basic_auth,
            bearer_token,
            headers: hs,
            tls,
            timeout,
        })
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let r = raw.relay;
        let interval = r.interval.unwrap_or(Duration::from_secs(30));
        let mut external = Vec::new();
        for (k, v) in &r.external_labels {
            let key = format!("relay.external_labels.{k}");
            if !is_valid_label_name(k) || k.starts_with("__") {
                return Err(self.locate(k, &key, None, format!("invalid label name {k:?}")));
            }
            external.push((k.clone(), self.expand(v, &key, None)?));
        }
        // Names were checked one by one above and map keys are unique, so this cannot fail.
        let external_labels = Labels::from_pairs(external).expect("checked label names");
        let listen = match r.listen {
            Some(l) => {
                let v = self.expand(l.get_ref(), "relay.listen", Some(l.span()))?;
                Some(v.parse::<SocketAddr>().map_err(|_| {
                    self.at(
                        l.span(),
                        "relay.listen",
                        format!("invalid address {v:?}; use e.g. \"127.0.0.1:9714\""),
                    )
                })?)
            }
            None => None,
        };
        let relay = RelayConfig {
            interval,
            external_labels,
            state_dir: r
                .state_dir
                .unwrap_or_else(|| PathBuf::from("./pushrelay-state")),
            listen,
            shutdown_timeout: r.shutdown_timeout.unwrap_or(Duration::from_secs(10)),
        };

        let mut sources = Vec::new();
        for (span, s) in raw.source {
            let sc = match s {
                RawSource::Scrape(s) => {
                    let prefix = format!("source.{}", s.name);
                    self.check_name(&s.name, &prefix, span.clone())?;
                    let interval = s.interval.unwrap_or(interval);
                    let timeout = s.timeout.unwrap_or(Duration::from_secs(10)).min(interval);
                    let mut url = self.url(&s.url, &format!("{prefix}.url"), span.clone())?;
                    if let Some(p) = &s.metrics_path {
                        if !p.get_ref().starts_with('/') {
                            return Err(self.at(
                                p.span(),
                                &format!("{prefix}.metrics_path"),
                                "metrics_path must start with '/'",
                            ));
                        }
                        url.set_path(p.get_ref());
                    }
                    if !s.params.is_empty() {
                        let mut q = url.query_pairs_mut();
                        for (k, vs) in &s.params {
                            for v in vs {
                                q.append_pair(k, v);
                            }
                        }
                    }
                    let protocol = |v: &Spanned<String>, key: &str| {
                        ScrapeProtocol::from_name(v.get_ref())
                            .map_err(|m| self.at(v.span(), &format!("{prefix}.{key}"), m))
                    };
                    let scrape_protocols = match &s.scrape_protocols {
                        None => DEFAULT_PROTOCOLS.to_vec(),
                        Some(list) => {
                            let key = format!("{prefix}.scrape_protocols");
                            if list.get_ref().is_empty() {
                                return Err(self.at(
                                    list.span(),
                                    &key,
                                    "scrape_protocols cannot be empty",
                                ));
                            }
                            let mut v: Vec<ScrapeProtocol> = Vec::new();
                            for name in list.get_ref() {
                                let p = ScrapeProtocol::from_name(name)
                                    .map_err(|m| self.at(list.span(), &key, m))?;
                                if v.contains(&p) {
                                    return Err(self.at(
                                        list.span(),
                                        &key,
                                        format!("{name} is listed twice"),
                                    ));
                                }
                                v.push(p);
                            }
                            v
                        }
                    };
                    let fallback_scrape_protocol = match &s.fallback_scrape_protocol {
                        None => ScrapeProtocol::PrometheusText0_0_4,
                        Some(v) => protocol(v, "fallback_scrape_protocol")?,
                    };
                    SourceConfig::Scrape(ScrapeConfig {
                        url,
                        interval,
                        timeout,
                        body_size_limit: s.body_size_limit.unwrap_or(16 << 20),
                        honor_labels: s.honor_labels.unwrap_or(false),
                        honor_timestamps: s.honor_timestamps.unwrap_or(true),
                        sample_limit: s.sample_limit.unwrap_or(200_000),
                        label_limit: s.label_limit.unwrap_or(0),
                        label_name_length_limit: s.label_name_length_limit.unwrap_or(0),
                        label_value_length_limit: s.label_value_length_limit.unwrap_or(0),
                        scrape_protocols,
                        fallback_scrape_protocol,
                        metric_relabel_configs: self.relabel(&prefix, s.metric_relabel_configs)?,
                        http: self.http(
                            &prefix,
                            span,
                            s.basic_auth,
                            s.bearer_token,
                            s.bearer_token_file,
                            s.headers,
                            s.tls,
                            timeout,
                            &["accept"],
                        )?,
                        name: s.name,
                    })
                }
                RawSource::Ttn(s) => {
                    let prefix = format!("source.{}", s.name);
                    self.check_name(&s.name, &prefix, span.clone())?;
                    let interval = s.interval.unwrap_or(Duration::from_secs(60));
                    let timeout = s.timeout.unwrap_or(interval).min(interval);
                    let request_timeout = s
                        .request_timeout
                        .unwrap_or(Duration::from_secs(10))
                        .min(timeout);
                    let api_key = self.required_secret(
                        s.api_key.as_deref(),
                        s.api_key_file.as_deref(),
                        &format!("{prefix}.api_key"),
                        Some(span.clone()),
                        "a ttn source needs api_key or api_key_file",
                    )?;
                    for g in &s.gateways {
                        let ok = !g.is_empty()
                            && g.len() <= 36
                            && g.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                        if !ok {
                            return Err(self.locate(
                                &format!("\"{g}\""),
                                &format!("{prefix}.gateways"),
                                Some(span.clone()),
                                format!(
                                    "invalid gateway ID {g:?}: lower-case letters, digits and '-'"
                                ),
                            ));
                        }
                    }
                    let http = self.http(
                        &prefix,
                        span.clone(),
                        None,
                        None,
                        None,
                        s.headers,
                        s.tls,
                        request_timeout,
                        &["authorization", "accept", "content-type"],
                    )?;
                    SourceConfig::Ttn(TtnConfig {
                        url: self.url(&s.url, &format!("{prefix}.url"), span.clone())?,
                        api_key,
                        gateways: s.gateways,
                        interval,
                        timeout,
                        discovery_interval: s
                            .discovery_interval
                            .unwrap_or(Duration::from_secs(600)),
                        compat_names: s.compat_names,
                        request_timeout,
                        headers: http.headers.clone(),
                        tls: http.tls.clone(),
                        http,
                        metric_relabel_configs: self.relabel(&prefix, s.metric_relabel_configs)?,
                        name: s.name,
                    })
                }
                RawSource::Emqx(s) => {
                    let prefix = format!("source.{}", s.name);
                    self.check_name(&s.name, &prefix, span.clone())?;
                    let interval = s.interval.unwrap_or(interval);
                    let timeout = s.timeout.unwrap_or(Duration::from_secs(10)).min(interval);
                    let api_secret = self.required_secret(
                        s.api_secret.as_deref(),
                        s.api_secret_file.as_deref(),
                        &format!("{prefix}.api_secret"),
                        Some(span.clone()),
                        "an emqx source needs api_secret or api_secret_file",
                    )?;
                    let mut seen = std::collections::HashSet::new();
                    for c in &s.clients {
                        if c.client_id.is_empty() || !seen.insert(c.client_id.as_str()) {
                            return Err(self.locate(
                                &format!("\"{}\"", c.client_id),
                                &format!("{prefix}.clients"),
                                Some(span.clone()),
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
                        enable_bytes_metrics: s
                            .enable_bytes_metrics
                            .unwrap_or(d.enable_bytes_metrics),
                        enable_packet_metrics: s
                            .enable_packet_metrics
                            .unwrap_or(d.enable_packet_metrics),
                        enable_dates: s.enable_dates.unwrap_or(d.enable_dates),
                        enable_inflight_metrics: s
                            .enable_inflight_metrics
                            .unwrap_or(d.enable_inflight_metrics),
                        enable_subscription_count: s
                            .enable_subscription_count
                            .unwrap_or(d.enable_subscription_count),
                    };
                    SourceConfig::Emqx(EmqxConfig {
                        url: self.url(&s.url, &format!("{prefix}.url"), span.clone())?,
                        api_key: self.expand(
                            &s.api_key,
                            &format!("{prefix}.api_key"),
                            Some(span.clone()),
                        )?,
                        api_secret,
                        broker: match s.broker {
                            Some(b) => {
                                self.expand(&b, &format!("{prefix}.broker"), Some(span.clone()))?
                            }
                            None => "LocalEMQX".to_string(),
                        },
                        clients: s.clients,
                        interval,
                        timeout,
                        forget_after: s.forget_after.unwrap_or(Duration::from_secs(24 * 3600)),
                        monotonic_counters: s.monotonic_counters.unwrap_or(true),
                        flags,
                        metric_relabel_configs: self.relabel(&prefix, s.metric_relabel_configs)?,
                        http: self.http(
                            &prefix,
                            span,
                            None,
                            None,
                            None,
                            s.headers,
                            s.tls,
                            timeout,
                            &["authorization", "accept"],
                        )?,
                        name: s.name,
                    })
                }
                RawSource::Linkhub(s) => {
                    let prefix = format!("source.{}", s.name);
                    self.check_name(&s.name, &prefix, span.clone())?;
                    let interval = s.interval.unwrap_or(Duration::from_secs(10));
                    let timeout = s.timeout.unwrap_or(Duration::from_secs(5)).min(interval);
                    let request_key = self.secret(
                        s.request_key.as_deref(),
                        s.request_key_file.as_deref(),
                        &format!("{prefix}.request_key"),
                        Some(span.clone()),
                    )?;
                    let password = self.secret(
                        s.password.as_deref(),
                        s.password_file.as_deref(),
                        &format!("{prefix}.password"),
                        Some(span.clone()),
                    )?;
                    let username = match s.username {
                        Some(u) => Some(self.expand(
                            &u,
                            &format!("{prefix}.username"),
                            Some(span.clone()),
                        )?),
                        None => None,
                    };
                    if password.is_some() && username.is_none() {
                        return Err(self.key_err(
                            &format!("{prefix}.username"),
                            "password is set but username is not",
                        ));
                    }
                    if username.is_some() && password.is_none() {
                        return Err(self.key_err(
                            &format!("{prefix}.password"),
                            "username is set but neither password nor password_file is",
                        ));
                    }
                    if request_key.is_none() {
                        // Models that log in also send a key: the web UI's constant public
                        // key, which is not known here, so it must be configured too.
                        return Err(self.key_err(
                            &format!("{prefix}.request_key"),
                            "a linkhub source needs request_key (or request_key_file): the HH41's key, or for models that log in (username/password) the web UI's public key",
                        ));
                    }
                    SourceConfig::Linkhub(LinkhubConfig {
                        url: self.url(&s.url, &format!("{prefix}.url"), span.clone())?,
                        request_key,
                        username,
                        password,
                        interval,
                        timeout,
                        compat_names: s.compat_names,
                        metric_relabel_configs: self.relabel(&prefix, s.metric_relabel_configs)?,
                        http: self.http(
                            &prefix,
                            span,
                            None,
                            None,
                            None,
                            s.headers,
                            s.tls,
                            timeout,
                            &[
                                "_tclrequestverificationkey",
                                "_tclrequestverificationtoken",
                                "content-type",
                            ],
                        )?,
                        name: s.name,
                    })
                }
            };
            if sources.iter().any(|o: &SourceConfig| o.name() == sc.name()) || sc.name() == SELF_JOB
            {
                return Err(self.locate(
                    &format!("\"{}\"", sc.name()),
                    &format!("source.{}.name", sc.name()),
                    None,
                    format!("source name {:?} is already used", sc.name()),
                ));
            }
            sources.push(sc);
        }

        let mut sinks = Vec::new();
        for (span, s) in raw.sink {
            let sc = match s {
                RawSink::RemoteWrite(s) => {
                    let prefix = format!("sink.{}", s.name);
                    self.check_name(&s.name, &prefix, span.clone())?;
                    let max_samples_per_send = s.max_samples_per_send.unwrap_or(2000);
                    if max_samples_per_send == 0 {
                        return Err(self.key_err(
                            &format!("{prefix}.max_samples_per_send"),
                            "must be at least 1",
                        ));
                    }
                    let rate_limit = match s.rate_limit {
                        Some(r) => {
                            if r.requests_per_second
                                .is_some_and(|v| !(v > 0.0 && v.is_finite()))
                            {
                                return Err(self.key_err(
                                    &format!("{prefix}.rate_limit.requests_per_second"),
                                    "must be greater than zero",
                                ));
                            }
                            if r.samples_per_second == Some(0) {
                                return Err(self.key_err(
                                    &format!("{prefix}.rate_limit.samples_per_second"),
                                    "must be greater than zero",
                                ));
                            }
                            RateLimit {
                                requests_per_second: r.requests_per_second,
                                samples_per_second: r.samples_per_second,
                            }
                        }
                        None => RateLimit::default(),
                    };
                    let timeout = s.timeout.unwrap_or(Duration::from_secs(30));
                    SinkConfig::RemoteWrite(RemoteWriteConfig {
                        url: self.url(&s.url, &format!("{prefix}.url"), span.clone())?,
                        http: self.http(
                            &prefix,
                            span,
                            s.basic_auth,
                            s.bearer_token,
                            s.bearer_token_file,
                            s.headers,
                            s.tls,
                            timeout,
                            &[
                                "content-encoding",
                                "content-type",
                                "content-length",
                                "x-prometheus-remote-write-version",
                                "user-agent",
                            ],
                        )?,
                        max_samples_per_send,
                        batch_wait: s.batch_wait.unwrap_or(Duration::from_secs(5)),
                        rate_limit,
                        max_queued_samples: s
                            .max_queued_samples
                            .unwrap_or(10_000_000)
                            .max(max_samples_per_send),
                        buffer: {
                            let b = s.buffer.as_ref();
                            BufferConfig {
                                max_bytes: b.and_then(|b| b.max_bytes).unwrap_or(256 << 20),
                                max_age: b
                                    .and_then(|b| b.max_age)
                                    .unwrap_or(Duration::from_secs(2 * 3600)),
                                fsync: b
                                    .and_then(|b| b.fsync)
                                    .unwrap_or(crate::buffer::Fsync::Every(Duration::from_secs(1))),
                            }
                        },
                        min_backoff: s.min_backoff.unwrap_or(Duration::from_millis(500)),
                        max_backoff: s.max_backoff.unwrap_or(Duration::from_secs(60)),
                        name: s.name,
                    })
                }
                RawSink::Pushgateway(s) => {
                    let prefix = format!("sink.{}", s.name);
                    self.check_name(&s.name, &prefix, span.clone())?;
                    let timeout = s.timeout.unwrap_or(Duration::from_secs(30));
                    let relay = match s.relay {
                        Some(r) => {
                            self.expand(&r, &format!("{prefix}.relay"), Some(span.clone()))?
                        }
                        None => host_name(),
                    };
                    if relay.is_empty() {
                        return Err(self.key_err(&format!("{prefix}.relay"), "must not be empty"));
                    }
                    SinkConfig::Pushgateway(PushgatewayConfig {
                        url: self.url(&s.url, &format!("{prefix}.url"), span.clone())?,
                        relay,
                        delete_on_shutdown: s.delete_on_shutdown,
                        http: self.http(
                            &prefix,
                            span,
                            s.basic_auth,
                            s.bearer_token,
                            s.bearer_token_file,
                            s.headers,
                            s.tls,
                            timeout,
                            &[
                                "content-encoding",
                                "content-type",
                                "content-length",
                                "user-agent",
                            ],
                        )?,
                        min_backoff: s.min_backoff.unwrap_or(Duration::from_millis(500)),
                        max_backoff: s.max_backoff.unwrap_or(Duration::from_secs(60)),
                        name: s.name,
                    })
                }
            };
            if sinks.iter().any(|o: &SinkConfig| o.name() == sc.name()) {
                return Err(self.locate(
                    &format!("\"{}\"", sc.name()),
                    &format!("sink.{}.name", sc.name()),
                    None,
                    format!("sink name {:?} is already used", sc.name()),
                ));
            }
            sinks.push(sc);
        }
        Ok(Config {
            relay,
            sources,
            sinks,
        })
    }

    /// Source and sink names become label values and URL path parts: keep them plain.
    /// Validates a source's `metric_relabel_configs`, locating an error at its rule.
    fn relabel(
        &self,
        prefix: &str,
        raw: Vec<Spanned<RawRelabelConfig>>,
    ) -> Result<Vec<RelabelConfig>, ConfigError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, r)| {
                crate::relabel::validate(r.get_ref()).map_err(|m| {
                    self.at(
                        r.span(),
                        &format!("{prefix}.metric_relabel_configs[{i}]"),
                        m,
                    )
                })
            })
            .collect()
    }

    fn check_name(&self, name: &str, prefix: &str, span: Range<usize>) -> Result<(), ConfigError> {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if ok {
            Ok(())
        } else {
            Err(self.locate(
                &format!("\"{name}\""),
                &format!("{prefix}.name"),
                Some(span),
                format!("invalid name {name:?}: use letters, digits, '_', '-' and '.'"),
            ))
        }
    }
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[line_start..pos].chars().count() + 1)
}

/// Names the key an error at byte `pos` is about: the table header in force plus the key on
/// that line (or the unknown field the message names).
fn key_at(text: &str, pos: usize, message: &str) -> String {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[pos..]
        .find('\n')
        .map(|i| i + pos)
        .unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let mut table = String::new();
    for l in text[..line_start].lines().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            break;
        }
    }
    let mut key = if line.trim_start().starts_with('[') {
        line.trim()
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string()
    } else {
        line.split('=').next().unwrap_or("").trim().to_string()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            key = rest[..end].to_string();
        }
    }
    match (table.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".to_string(),
        (true, false) => key,
        (false, true) => table,
        (false, false) if key == table => key,
        (false, false) => format!("{table}.{key}"),
    }
}

/// This machine's host name, the default `relay` grouping label.
pub fn host_name() -> String {
    for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "pushrelay".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "TOKEN" => Some("s3cret".to_string()),
            _ => None,
        }
    }

    fn parse_ok(t: &str) -> Config {
        parse(t, "test.toml", &env).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(t: &str) -> String {
        parse(t, "test.toml", &env).unwrap_err().to_string()
    }

    const FULL: &str = r#"
[relay]
interval = "30s"
external_labels = { site = "home" }
state_dir = "./pushrelay-state"
listen = "127.0.0.1:9714"

[[source]]
type = "scrape"
name = "node"
url = "http://127.0.0.1:9100/metrics"
interval = "15s"
timeout = "10s"

[[sink]]
type = "remote_write"
name = "grafana"
url = "https://prometheus-prod-01-eu-west-0.grafana.net/api/prom/push"
basic_auth = { username = "123456", password = "${TOKEN}" }
headers = { "X-Scope-OrgID" = "home" }
max_samples_per_send = 2000
batch_wait = "5s"
rate_limit = { requests_per_second = 2.0, samples_per_second = 10000 }
tls = { insecure_skip_verify = false }
buffer = { max_bytes = "64MiB", max_age = "1h", fsync = "always" }

[[sink]]
type = "pushgateway"
name = "pgw"
url = "http://pushgateway:9091"
relay = "pi-gw-1"
delete_on_shutdown = false
"#;

    #[test]
    fn full_example_parses() {
        let c = parse_ok(FULL);
        assert_eq!(c.relay.interval, Duration::from_secs(30));
        assert_eq!(c.relay.external_labels.get("site"), Some("home"));
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].interval(), Duration::from_secs(15));
        let SinkConfig::RemoteWrite(rw) = &c.sinks[0] else {
            panic!()
        };
        assert_eq!(
            rw.http.basic_auth.as_ref().unwrap().password.expose(),
            "s3cret"
        );
        assert_eq!(rw.rate_limit.samples_per_second, Some(10000));
        assert_eq!(rw.buffer.max_bytes, 64 << 20);
        assert_eq!(rw.buffer.fsync, crate::buffer::Fsync::Always);
        let SinkConfig::Pushgateway(pg) = &c.sinks[1] else {
            panic!()
        };
        assert_eq!(pg.relay, "pi-gw-1");
    }

    #[test]
    fn printed_config_has_no_secret() {
        let c = parse_ok(FULL);
        let s = toml::to_string(&c).unwrap();
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("<redacted>"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    /// `pushrelay config` prints a file that is itself a valid configuration (no key twice, no
    /// key the reader refuses), for every example and every source type.
    #[test]
    fn printed_config_reads_back_the_same() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) != Some("toml") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let env = |_: &str| Some("from-env".to_string());
            let name = p.display().to_string();
            let c = parse(&text, &name, &env).unwrap_or_else(|e| panic!("{e}"));
            let printed = toml::to_string(&c).unwrap();
            let again = parse(&printed, "printed", &env)
                .unwrap_or_else(|e| panic!("{name} printed as:\n{printed}\n{e}"));
            assert_eq!(toml::to_string(&again).unwrap(), printed, "{name}");
            seen += 1;
        }
        assert!(seen >= 4, "examples/*.toml: {seen}");
    }

    #[test]
    fn scrape_options_and_relabel_rules() {
        let base = "[[source]]\ntype = \"scrape\"\nname = \"n\"\nurl = \"http://x:1/m\"\n";
        let c = parse_ok(&format!(
            "{base}metrics_path = \"/probe\"\nparams = {{ module = [\"a\", \"b c\"] }}\nhonor_labels = true\nsample_limit = 5\nscrape_protocols = [\"PrometheusText0.0.4\"]\n[[source.metric_relabel_configs]]\nsource_labels = [\"__name__\"]\nregex = \"x\"\naction = \"keep\"\n"
        ));
        let SourceConfig::Scrape(s) = &c.sources[0] else {
            panic!()
        };
        assert_eq!(s.url.as_str(), "http://x:1/probe?module=a&module=b+c");
        assert!(s.honor_labels && s.honor_timestamps);
        assert_eq!(s.sample_limit, 5);
        assert_eq!(s.scrape_protocols, [ScrapeProtocol::PrometheusText0_0_4]);
        assert_eq!(c.sources[0].metric_relabel_configs().len(), 1);
        let e = parse_err(&format!(
            "{base}[[source.metric_relabel_configs]]\naction = \"hashmod\"\nsource_labels = [\"a\"]\ntarget_label = \"b\"\n"
        ));
        assert!(
            e.starts_with("test.toml:5:1: source.n.metric_relabel_configs[0]: relabel action hashmod needs a non-zero modulus"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{base}[[source.metric_relabel_configs]]\nregex = \"(\"\n"
        ));
        assert!(
            e.contains("test.toml:5:1") && e.contains("invalid regex"),
            "{e}"
        );
        let e = parse_err(&format!("{base}scrape_protocols = [\"PrometheusProto\"]\n"));
        assert!(
            e.starts_with("test.toml:5:20: source.n.scrape_protocols: PrometheusProto"),
            "{e}"
        );
        let e = parse_err(&format!("{base}metrics_path = \"probe\"\n"));
        assert!(
            e.starts_with("test.toml:5:16: source.n.metrics_path"),
            "{e}"
        );
        let e = parse_err(&format!("{base}sample_limit = -1\n"));
        assert!(e.contains("test.toml:5:16"), "{e}");
        // Relabelling is for every source type.
        let e = parse_err("[[source]]\ntype = \"linkhub\"\nname = \"l\"\nurl = \"http://x\"\nrequest_key = \"k\"\n[[source.metric_relabel_configs]]\naction = \"bogus\"\n");
        assert!(
            e.contains("source.l.metric_relabel_configs[0]: unknown relabel action"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_located() {
        let e = parse_err("[relay]\ninterval = \"30s\"\nintervall = \"5s\"\n");
        assert!(
            e.starts_with("test.toml:3:1: relay.intervall: unknown field"),
            "{e}"
        );
        let e = parse_err(
            "[[sink]]\ntype = \"pushgateway\"\nname = \"p\"\nurl = \"http://x:1\"\nfoo = 1\n",
        );
        assert!(e.contains("test.toml:") && e.contains("foo"), "{e}");
    }

    #[test]
    fn bad_duration_located() {
        let e = parse_err("[relay]\ninterval = \"30 parsecs\"\n");
        assert!(
            e.starts_with("test.toml:2:12: relay.interval: invalid duration"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_located() {
        let e = parse_err(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nmax_samples_per_send = \"many\"\n",
        );
        assert!(
            e.contains(":5:") && e.contains("max_samples_per_send"),
            "{e}"
        );
    }

    #[test]
    fn missing_env_names_it() {
        let e = parse_err(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nbearer_token = \"${NOPE}\"\n",
        );
        assert!(
            e.contains("test.toml:5:17") && e.contains("NOPE is not set"),
            "{e}"
        );
    }

    #[test]
    fn secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "filetoken\n").unwrap();
        let t = format!(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nbearer_token_file = \"{}\"\n",
            p.display()
        );
        let c = parse_ok(&t);
        let SinkConfig::RemoteWrite(rw) = &c.sinks[0] else {
            panic!()
        };
        assert_eq!(rw.http.bearer_token.as_ref().unwrap().expose(), "filetoken");
    }

    #[test]
    fn reserved_header_refused() {
        let e = parse_err(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nheaders = { \"Content-Encoding\" = \"gzip\" }\n",
        );
        assert!(
            e.contains("may not be overridden") && e.contains(":5:"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_names_and_bad_urls() {
        let e = parse_err(
            "[[source]]\ntype = \"scrape\"\nname = \"a\"\nurl = \"http://x:1/m\"\n[[source]]\ntype = \"scrape\"\nname = \"a\"\nurl = \"http://y:1/m\"\n",
        );
        assert!(e.contains("already used"), "{e}");
        let e = parse_err("[[source]]\ntype = \"scrape\"\nname = \"a\"\nurl = \"ftp://x/m\"\n");
        assert!(e.contains("test.toml:1:") && e.contains("http://"), "{e}");
        let e = parse_err("[[source]]\ntype = \"snmp\"\nname = \"a\"\n");
        assert!(e.contains("test.toml:") && e.contains("snmp"), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
    }
}
