//! The scrape source: fetches a Prometheus text exposition endpoint, like a Prometheus scrape.

pub mod config;

use reqwest::header::ACCEPT;

use super::{BoxFuture, Source, SourceError, SourceMeta};
use crate::http::{body_excerpt, client};
use crate::model::Family;
pub use config::ScrapeConfig;

/// What Prometheus asks for when it wants the text format.
const ACCEPT_TEXT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

pub struct ScrapeSource {
    cfg: ScrapeConfig,
    /// Name, `instance`, interval and timeout.
    meta: SourceMeta,
    /// One client per target, so the connection is reused between scrapes.
    client: reqwest::Client,
}

impl ScrapeSource {
    pub fn new(cfg: ScrapeConfig) -> anyhow::Result<ScrapeSource> {
        Ok(ScrapeSource {
            meta: SourceMeta::for_url(&cfg.name, &cfg.url, cfg.interval, cfg.timeout),
            client: client::build(&cfg.http)?,
            cfg,
        })
    }

    async fn scrape(&self) -> Result<Vec<Family>, SourceError> {
        let req = self
            .client
            .get(self.cfg.url.clone())
            .header(ACCEPT, ACCEPT_TEXT)
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
        let body = client::read_limited(resp, self.cfg.body_size_limit)
            .await
            .map_err(SourceError::Invalid)?;
        let text = String::from_utf8(body)
            .map_err(|e| SourceError::Invalid(format!("body is not UTF-8: {e}")))?;
        crate::expfmt::parse(&text)
            .map_err(|e| SourceError::Invalid(format!("malformed exposition: {e}")))
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
