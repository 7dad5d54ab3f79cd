//! Sources: what the relay polls. Each yields metric families on its own interval.
//!
//! A source only fetches and translates; the relay adds `job`, `instance`, external labels,
//! `up` and staleness (see [`crate::relay::prepare`]), so every source gets them the same way.

pub mod scrape;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::config::SourceConfig;
use crate::model::Family;

/// A boxed future, so sources can be kept as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why one collection failed. The source is reported down (`up 0`) and polled again next time.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad answer: {0}")]
    Invalid(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Something the relay polls.
pub trait Source: Send {
    /// The configured name: the `job` label of its series.
    fn name(&self) -> &str;
    /// The `instance` label: the `host:port` it polls.
    fn instance(&self) -> &str;
    /// How often to poll.
    fn interval(&self) -> Duration;
    /// The longest one collection may take.
    fn timeout(&self) -> Duration;
    /// Polls once.
    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>>;
}

/// Builds the source a configuration entry describes.
pub fn build(cfg: &SourceConfig) -> anyhow::Result<Box<dyn Source>> {
    Ok(match cfg {
        SourceConfig::Scrape(c) => Box::new(scrape::ScrapeSource::new(c.clone())?),
    })
}

/// `host:port` of a URL, with the scheme's default port when none is given (as Prometheus
/// labels a target's `instance`).
pub fn instance_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_labels() {
        let u = |s| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            instance_of(&u("http://127.0.0.1:9100/metrics")),
            "127.0.0.1:9100"
        );
        assert_eq!(
            instance_of(&u("https://example.org/metrics")),
            "example.org:443"
        );
        assert_eq!(instance_of(&u("http://[::1]:9100/metrics")), "[::1]:9100");
    }
}
