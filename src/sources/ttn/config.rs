//! `type = "ttn"`: the table of a The Things Stack v3 source, raw and validated.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::{de_duration_opt, de_size_opt, ser_duration, ser_url};
use crate::config::{
    Component, ConfigError, HttpConfig, HttpKeys, RawHttp, Secret, Section, TlsConfig,
};
use crate::sources::{BuildContext, Source, SourceConfig};

/// `type = "ttn"`: The Things Stack v3 gateways (see `sources::ttn`).
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Hosts (or `host:port`) besides `url`'s and the deployment's official clusters where a
    /// gateway's stats may be read with the API key (see `clusters::KeyPolicy`).
    pub allowed_stats_hosts: Vec<String>,
    /// Largest API answer accepted, in bytes.
    pub body_size_limit: u64,
    /// Headers, TLS and per-request timeout (auth is `api_key`). Its `timeout` is the
    /// per-request `request_timeout`, so it is printed through the three fields below instead
    /// of flattened (which would print `timeout` twice with two meanings).
    #[serde(skip)]
    pub http: HttpConfig,
    #[serde(serialize_with = "ser_duration")]
    request_timeout: Duration,
    #[serde(serialize_with = "crate::config::ser_headers")]
    headers: Vec<(String, String)>,
    tls: TlsConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTtn {
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
    #[serde(default, deserialize_with = "de_size_opt")]
    body_size_limit: Option<u64>,
    #[serde(default)]
    allowed_stats_hosts: Vec<String>,
}

impl Component for TtnConfig {
    const TYPE: &'static str = "ttn";
    const HTTP: HttpKeys = HttpKeys::Transport;
    type Raw = RawTtn;

    fn validate(s: RawTtn, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        let interval = s.interval.unwrap_or(Duration::from_secs(60));
        let timeout = sec.source_timeout(s.timeout, interval, interval);
        let request_timeout = s
            .request_timeout
            .unwrap_or(Duration::from_secs(10))
            .min(timeout);
        let api_key = sec.required_secret(
            s.api_key.as_deref(),
            s.api_key_file.as_deref(),
            "api_key",
            "a ttn source needs api_key or api_key_file",
        )?;
        for g in &s.gateways {
            let ok = !g.is_empty()
                && g.len() <= 36
                && g.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(sec.error_at_text(
                    &format!("\"{g}\""),
                    "gateways",
                    format!("invalid gateway ID {g:?}: lower-case letters, digits and '-'"),
                ));
            }
        }
        for h in &s.allowed_stats_hosts {
            let bare = h.trim_matches(['[', ']']);
            let ok = !h.is_empty()
                && !h.contains("://")
                && !h.contains('/')
                && reqwest::Url::parse(&format!("https://{h}/"))
                    .is_ok_and(|u| u.host_str().is_some())
                && !bare.is_empty();
            if !ok {
                return Err(sec.error_at_text(
                    &format!("\"{h}\""),
                    "allowed_stats_hosts",
                    format!("invalid host {h:?}: give a host name or host:port, without a scheme"),
                ));
            }
        }
        let http = sec.http(
            http,
            request_timeout,
            &["authorization", "accept", "content-type"],
        )?;
        let url = sec.url(&s.url, "url")?;
        sec.check_transport(&url, &http, true);
        Ok(TtnConfig {
            url,
            api_key,
            gateways: s.gateways,
            interval,
            timeout,
            discovery_interval: s.discovery_interval.unwrap_or(Duration::from_secs(600)),
            compat_names: s.compat_names,
            allowed_stats_hosts: s.allowed_stats_hosts,
            body_size_limit: s.body_size_limit.unwrap_or(super::client::BODY_LIMIT),
            request_timeout,
            headers: http.headers.clone(),
            tls: http.tls.clone(),
            http,
            name: s.name,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl SourceConfig for TtnConfig {
    fn build(&self, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
        Ok(Box::new(super::TtnSource::new(self.clone(), ctx)?))
    }
}
