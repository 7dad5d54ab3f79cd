//! `type = "pushgateway"`: the table of a Pushgateway sink, raw and validated.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::{de_duration_opt, ser_duration, ser_url};
use crate::config::{host_name, Component, ConfigError, HttpConfig, HttpKeys, RawHttp, Section};

#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPushgateway {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    relay: Option<String>,
    #[serde(default)]
    delete_on_shutdown: bool,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    min_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    max_backoff: Option<Duration>,
}

impl Component for PushgatewayConfig {
    const TYPE: &'static str = "pushgateway";
    const HTTP: HttpKeys = HttpKeys::WithAuth;
    type Raw = RawPushgateway;

    fn validate(s: RawPushgateway, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        let timeout = s.timeout.unwrap_or(Duration::from_secs(30));
        let relay = match s.relay {
            Some(r) => sec.expand(&r, "relay")?,
            None => host_name(),
        };
        if relay.is_empty() {
            return Err(sec.error("relay", "must not be empty"));
        }
        let url = sec.url(&s.url, "url")?;
        let http = sec.http(
            http,
            timeout,
            &[
                "content-encoding",
                "content-type",
                "content-length",
                "user-agent",
            ],
        )?;
        sec.check_transport(&url, &http, false);
        Ok(PushgatewayConfig {
            url,
            relay,
            delete_on_shutdown: s.delete_on_shutdown,
            http,
            min_backoff: s.min_backoff.unwrap_or(Duration::from_millis(500)),
            max_backoff: s.max_backoff.unwrap_or(Duration::from_secs(60)),
            name: s.name,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}
