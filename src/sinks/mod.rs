//! Sinks: where snapshots go. Each sink runs its own tasks, so a slow or offline sink never
//! blocks a source or another sink; [`Sink::submit`] never waits on the network.

pub mod pushgateway;
pub mod remote_write;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::SinkConfig;
use crate::model::Snapshot;
use crate::self_metrics::SelfMetrics;

/// A running sink of either kind.
#[derive(Clone)]
pub enum Sink {
    RemoteWrite(Arc<remote_write::RemoteWriteSink>),
    Pushgateway(Arc<pushgateway::PushgatewaySink>),
}

impl Sink {
    /// Builds a sink; with `state_dir`, a remote-write sink keeps its queue durably in
    /// `state_dir/<sink name>/`, without it in memory (for one-shot commands).
    pub fn build(
        cfg: &SinkConfig,
        metrics: Arc<SelfMetrics>,
        state_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Sink> {
        metrics.register_sink(cfg.name());
        Ok(match cfg {
            SinkConfig::RemoteWrite(c) => {
                Sink::RemoteWrite(Arc::new(remote_write::RemoteWriteSink::new(
                    c.clone(),
                    metrics,
                    state_dir.map(|d| d.join(&c.name)).as_deref(),
                )?))
            }
            SinkConfig::Pushgateway(c) => Sink::Pushgateway(Arc::new(
                pushgateway::PushgatewaySink::new(c.clone(), metrics)?,
            )),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Sink::RemoteWrite(s) => s.name(),
            Sink::Pushgateway(s) => s.name(),
        }
    }

    /// Hands a snapshot to the sink; returns at once.
    pub fn submit(&self, snap: Arc<Snapshot>) {
        match self {
            Sink::RemoteWrite(s) => s.submit(&snap),
            Sink::Pushgateway(s) => s.submit(snap),
        }
    }

    /// Runs the sink until `cancel` fires, then delivers what it holds (the caller bounds how
    /// long that may take).
    pub async fn run(self, cancel: CancellationToken) {
        match self {
            Sink::RemoteWrite(s) => s.run(cancel).await,
            Sink::Pushgateway(s) => s.run(cancel).await,
        }
    }

    /// Delivers everything submitted so far, retrying for at most `deadline`; for `once`.
    pub async fn flush(&self, deadline: Duration) -> Result<u64, String> {
        match self {
            Sink::RemoteWrite(s) => s.flush(deadline).await,
            Sink::Pushgateway(s) => s.flush(deadline).await,
        }
    }

    /// Work to do on a clean exit after the last delivery (Pushgateway group deletion).
    pub async fn on_shutdown(&self) {
        if let Sink::Pushgateway(s) = self {
            s.delete_groups_if_configured().await;
        }
    }
}

/// Why one send failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: a network error, 5xx or 429 (with the receiver's `Retry-After`).
    #[error("{reason}")]
    Retryable {
        reason: String,
        after: Option<Duration>,
    },
    /// The receiver refused the data for good.
    #[error("HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    /// The data became older than the sink's `buffer.max_age` while it waited: receivers would
    /// refuse it, so it is not sent.
    #[error("older than max_age")]
    Expired,
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { after, .. } => *after,
            SendError::Rejected { .. } | SendError::Expired => None,
        }
    }
}

/// Sends a prepared request and classifies the answer (see [`crate::http::classify`]).
pub async fn send_classified(req: reqwest::RequestBuilder) -> Result<(), SendError> {
    let resp = req.send().await.map_err(|e| SendError::Retryable {
        reason: crate::http::client::error_chain(&e.without_url()),
        after: None,
    })?;
    let status = resp.status();
    let verdict = crate::http::classify(status, resp.headers());
    let body = crate::http::client::read_limited(resp, 64 << 10)
        .await
        .unwrap_or_default();
    match verdict {
        crate::http::Verdict::Ok => Ok(()),
        crate::http::Verdict::Retry(after) => Err(SendError::Retryable {
            reason: format!(
                "HTTP {}: {}",
                status.as_u16(),
                crate::http::body_excerpt(&body, 300)
            ),
            after,
        }),
        crate::http::Verdict::Drop => Err(SendError::Rejected {
            status: status.as_u16(),
            body: crate::http::body_excerpt(&body, 1000),
        }),
    }
}

/// The retry schedule every sink uses: exponential from `min` to `max`, with jitter, forever.
pub fn backoff(min: Duration, max: Duration) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
}

/// Human-friendly duration for log lines, to the second.
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

/// Seconds since the epoch, now, as a float.
pub fn now_seconds() -> f64 {
    crate::model::now_ms() as f64 / 1000.0
}
