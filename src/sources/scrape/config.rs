//! `type = "scrape"`: the table of a scrape source, raw and validated.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::{de_duration_opt, de_size_opt, ser_duration, ser_url};
use crate::config::{Component, ConfigError, HttpConfig, HttpKeys, RawHttp, Section};

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
    /// Largest body accepted, in bytes.
    pub body_size_limit: u64,
    #[serde(flatten)]
    pub http: HttpConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrape {
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
}

impl Component for ScrapeConfig {
    const TYPE: &'static str = "scrape";
    const HTTP: HttpKeys = HttpKeys::WithAuth;
    type Raw = RawScrape;

    fn validate(s: RawScrape, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        let interval = s.interval.unwrap_or(sec.relay.interval);
        let timeout = sec.source_timeout(s.timeout, Duration::from_secs(10), interval);
        let url = sec.url(&s.url, "url")?;
        let http = sec.http(http, timeout, &["accept"])?;
        sec.check_transport(&url, &http, false);
        Ok(ScrapeConfig {
            url,
            interval,
            timeout,
            body_size_limit: s.body_size_limit.unwrap_or(16 << 20),
            http,
            name: s.name,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl crate::sources::SourceConfig for ScrapeConfig {
    fn build(
        &self,
        _ctx: &crate::sources::BuildContext,
    ) -> anyhow::Result<Box<dyn crate::sources::Source>> {
        Ok(Box::new(super::ScrapeSource::new(self.clone())?))
    }
}
