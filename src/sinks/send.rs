//! How every sink sends: one request's outcome ([`SendError`]), the classification of a
//! receiver's answer behind it ([`classify`]), and the one retry loop ([`retrying`]) with the
//! shared backoff schedule.

use std::future::Future;
use std::time::{Duration, SystemTime};

use backon::Retryable;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::http::{body_excerpt, client};

/// What a sender should do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Ok,
    /// Try again later, no sooner than the given delay if the receiver named one.
    Retry(Option<Duration>),
    /// The receiver refused the data for good: drop it, count it, never resend it.
    Drop,
}

/// Classifies a remote-write/Pushgateway response: 2xx ok; 5xx and 429 retry (honouring
/// `Retry-After`); any other status drops.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Verdict {
    if status.is_success() {
        Verdict::Ok
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Verdict::Retry(retry_after(headers))
    } else {
        Verdict::Drop
    }
}

/// Parses `Retry-After` as seconds or an HTTP date; capped at 10 minutes so a bogus value
/// cannot stall a sink for days.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = httpdate::parse_http_date(v).ok()?;
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(600)))
}

/// Why one send attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: a network error, 5xx or 429 (with the receiver's `Retry-After`).
    #[error("{reason}")]
    Retryable {
        reason: String,
        after: Option<Duration>,
    },
    /// Not worth retrying.
    #[error(transparent)]
    Final(#[from] Undeliverable),
}

/// Why data will not be delivered, whatever the retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Undeliverable {
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
            SendError::Final(_) => None,
        }
    }
}

/// Sends a prepared request and classifies the answer (see [`classify`]).
pub async fn send_classified(req: reqwest::RequestBuilder) -> Result<(), SendError> {
    let resp = req.send().await.map_err(|e| SendError::Retryable {
        reason: client::error_chain(&e.without_url()),
        after: None,
    })?;
    let status = resp.status();
    let verdict = classify(status, resp.headers());
    let body = client::read_limited(resp, 64 << 10)
        .await
        .unwrap_or_default();
    match verdict {
        Verdict::Ok => Ok(()),
        Verdict::Retry(after) => Err(SendError::Retryable {
            reason: format!("HTTP {}: {}", status.as_u16(), body_excerpt(&body, 300)),
            after,
        }),
        Verdict::Drop => Err(Undeliverable::Rejected {
            status: status.as_u16(),
            body: body_excerpt(&body, 1000),
        }
        .into()),
    }
}

/// The retry schedule every sink uses: exponential from `min` to `max`, with jitter, forever.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The schedule as a `backon` builder (for loops that are not sends, e.g. reconnecting).
    pub fn builder(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
    }
}

/// Runs `attempt` until it succeeds or fails for good. Retryable failures are retried forever
/// on `backoff`, waiting at least the receiver's `Retry-After`; `on_retry` sees each one (for
/// the sink's offline log line and retry counter). When `cancel` fires during a wait, the next
/// attempt starts at once (one last try at shutdown; the caller bounds the time after that).
pub async fn retrying<T, F, Fut>(
    backoff: Backoff,
    cancel: &CancellationToken,
    attempt: F,
    mut on_retry: impl FnMut(&SendError),
) -> Result<T, Undeliverable>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SendError>>,
{
    let cancel = cancel.clone();
    let sleep = move |d: Duration| {
        let cancel = cancel.clone();
        let cut_short = !cancel.is_cancelled();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = cancel.cancelled(), if cut_short => {}
            }
        }
    };
    let r = attempt
        .retry(backoff.builder())
        .sleep(sleep)
        .when(SendError::is_retryable)
        .adjust(|e, d| d.map(|d| e.retry_after().unwrap_or(d)))
        .notify(|e, _| on_retry(e))
        .await;
    match r {
        Ok(v) => Ok(v),
        Err(SendError::Final(u)) => Err(u),
        // Retries never stop (`without_max_times`), so only a final error ends them.
        Err(SendError::Retryable { .. }) => unreachable!("retries are unbounded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn classify_statuses() {
        let h = HeaderMap::new();
        assert_eq!(classify(StatusCode::NO_CONTENT, &h), Verdict::Ok);
        assert_eq!(classify(StatusCode::BAD_REQUEST, &h), Verdict::Drop);
        assert_eq!(classify(StatusCode::CONFLICT, &h), Verdict::Drop);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &h),
            Verdict::Retry(None)
        );
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h),
            Verdict::Retry(Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn retry_after_date() {
        let mut h = HeaderMap::new();
        let when = SystemTime::now() + Duration::from_secs(30);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(when)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    /// Retryable failures are retried (each seen once by `on_retry`, `Retry-After` obeyed) until
    /// a final answer, on tokio's clock.
    #[tokio::test(start_paused = true)]
    async fn retries_until_final_and_obeys_retry_after() {
        let calls = AtomicU32::new(0);
        let mut seen = 0;
        let t0 = tokio::time::Instant::now();
        let r: Result<(), _> = retrying(
            Backoff {
                min: Duration::from_millis(10),
                max: Duration::from_millis(20),
            },
            &CancellationToken::new(),
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(SendError::Retryable {
                        reason: "503".into(),
                        after: Some(Duration::from_secs(30)),
                    }),
                    1 => Err(SendError::Retryable {
                        reason: "reset".into(),
                        after: None,
                    }),
                    _ => Err(Undeliverable::Rejected {
                        status: 400,
                        body: "bad".into(),
                    }
                    .into()),
                }
            },
            |_| seen += 1,
        )
        .await;
        assert!(matches!(
            r,
            Err(Undeliverable::Rejected { status: 400, .. })
        ));
        assert_eq!((calls.load(Ordering::SeqCst), seen), (3, 2));
        assert!(
            t0.elapsed() >= Duration::from_secs(30),
            "{:?}",
            t0.elapsed()
        );
    }
}
