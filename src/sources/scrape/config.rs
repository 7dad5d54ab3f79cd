//! `type = "scrape"`: the table of a scrape source, raw and validated.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::expfmt::negotiate::{ScrapeProtocol, DEFAULT_PROTOCOLS};
use crate::relabel::SeriesRules;

use crate::config::units::{de_duration_opt, de_size_opt, ser_duration, ser_url};
use crate::config::{Component, ConfigError, HttpConfig, HttpKeys, RawHttp, Section};

#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

impl Component for ScrapeConfig {
    const TYPE: &'static str = "scrape";
    const HTTP: HttpKeys = HttpKeys::WithAuth;
    type Raw = RawScrape;

    fn validate(s: RawScrape, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        let interval = s.interval.unwrap_or(sec.relay.interval);
        let timeout = sec.source_timeout(s.timeout, Duration::from_secs(10), interval);
        let mut url = sec.url(&s.url, "url")?;
        if let Some(p) = &s.metrics_path {
            if !p.get_ref().starts_with('/') {
                return Err(sec.error_at_span(
                    p.span(),
                    "metrics_path",
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
        let scrape_protocols = match &s.scrape_protocols {
            None => DEFAULT_PROTOCOLS.to_vec(),
            Some(list) => {
                let at = |m: String| sec.error_at_span(list.span(), "scrape_protocols", m);
                if list.get_ref().is_empty() {
                    return Err(at("scrape_protocols cannot be empty".into()));
                }
                let mut v: Vec<ScrapeProtocol> = Vec::new();
                for name in list.get_ref() {
                    let p = ScrapeProtocol::from_name(name).map_err(at)?;
                    if v.contains(&p) {
                        return Err(at(format!("{name} is listed twice")));
                    }
                    v.push(p);
                }
                v
            }
        };
        let fallback_scrape_protocol = match &s.fallback_scrape_protocol {
            None => ScrapeProtocol::PrometheusText0_0_4,
            Some(v) => ScrapeProtocol::from_name(v.get_ref())
                .map_err(|m| sec.error_at_span(v.span(), "fallback_scrape_protocol", m))?,
        };
        let http = sec.http(http, timeout, &["accept"])?;
        sec.check_transport(&url, &http, false);
        Ok(ScrapeConfig {
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
        ctx: &crate::sources::BuildContext,
    ) -> anyhow::Result<Box<dyn crate::sources::Source>> {
        self.build_capped(ctx, 0)
    }
    fn build_capped(
        &self,
        ctx: &crate::sources::BuildContext,
        sample_cap: u64,
    ) -> anyhow::Result<Box<dyn crate::sources::Source>> {
        let mut source = super::ScrapeSource::new(self.clone(), ctx.clock.clone())?;
        source.sample_cap = sample_cap as usize;
        Ok(Box::new(source))
    }
    fn series_rules(&self) -> SeriesRules {
        SeriesRules {
            honor_labels: self.honor_labels,
            sample_limit: self.sample_limit,
            label_limit: self.label_limit,
            label_name_length_limit: self.label_name_length_limit,
            label_value_length_limit: self.label_value_length_limit,
            ..SeriesRules::default()
        }
    }
}
