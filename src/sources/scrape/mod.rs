//! The scrape source: fetches an exposition endpoint like a Prometheus 3 scrape: the same
//! `Accept` header (from `scrape_protocols`), gzip, the parser chosen by `Content-Type`
//! (OpenMetrics or the classic text format, else `fallback_scrape_protocol`), and
//! `honor_timestamps`. Labels, relabelling and limits are applied by the relay for every
//! source alike (see [`crate::relay::prepare::SeriesRules`]).

pub mod config;

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::{BoxFuture, Source, SourceError, SourceMeta};
use crate::expfmt::negotiate::{accept_header, parse_as_capped, protocol_for};
use crate::http::{body_excerpt, client};
use crate::model::Family;
pub use config::ScrapeConfig;

pub struct ScrapeSource {
    cfg: ScrapeConfig,
    /// Name, `instance`, interval and timeout.
    meta: SourceMeta,
    /// The `Accept` header, from `scrape_protocols`.
    accept: String,
    /// Dates the scrape (which repeated timestamps are kept depends on it).
    clock: crate::clock::WallClock,
    /// One client per target, so the connection is reused between scrapes.
    client: reqwest::Client,
    /// Samples past which the parse stops, the scrape failing its `sample_limit` (0: none;
    /// set only when no relabelling rule can drop series, see `SourceConfig::build_capped`).
    pub(super) sample_cap: usize,
}

impl ScrapeSource {
    pub fn new(cfg: ScrapeConfig, clock: crate::clock::WallClock) -> anyhow::Result<ScrapeSource> {
        Ok(ScrapeSource {
            clock,
            meta: SourceMeta::for_url(&cfg.name, &cfg.url, cfg.interval, cfg.timeout),
            accept: accept_header(&cfg.scrape_protocols),
            client: client::build(&cfg.http)?,
            sample_cap: 0,
            cfg,
        })
    }

    async fn scrape(&self) -> Result<Vec<Family>, SourceError> {
        let req = self
            .client
            .get(self.cfg.url.clone())
            .header(ACCEPT, &self.accept)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", self.cfg.timeout.as_secs_f64()),
            );
        let resp = client::authorize(req, &self.cfg.http)
            .send()
            .await
            .map_err(|e| SourceError::Request(client::error_chain(&e.without_url())))?;
        let status = resp.status();
        if let Some(note) = client::redirect_note(&resp) {
            return Err(SourceError::Status {
                status: status.as_u16(),
                body: note,
            });
        }
        if !status.is_success() {
            let body = client::read_limited(resp, 4096).await.unwrap_or_default();
            return Err(SourceError::Status {
                status: status.as_u16(),
                body: body_excerpt(&body, 200),
            });
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Gzip is undone by the client as the body streams in, so the limit applies to the
        // decompressed size.
        let body = client::read_limited(resp, self.cfg.body_size_limit)
            .await
            .map_err(SourceError::Invalid)?;
        let protocol = protocol_for(content_type.as_deref(), self.cfg.fallback_scrape_protocol);
        let mut families = parse_as_capped(protocol, &body, self.clock.now_ms(), self.sample_cap)
            .map_err(|e| {
            if e.message == crate::expfmt::parse::over_cap(self.sample_cap) {
                SourceError::Invalid(e.message)
            } else {
                SourceError::Invalid(format!("malformed exposition ({protocol}): {e}"))
            }
        })?;
        if !self.cfg.honor_timestamps {
            for s in families.iter_mut().flat_map(|f| f.samples.iter_mut()) {
                s.timestamp_ms = None;
            }
        }
        Ok(families)
    }
}

impl Source for ScrapeSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }
    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>> {
        Box::pin(self.scrape())
    }
}
