//! How every sink sends: one request's outcome ([`SendError`]), the classification of a
//! receiver's answer behind it ([`classify`]), and the one retry loop ([`retrying`]) with the
//! shared backoff schedule.

use std::future::Future;
use std::time::{Duration, SystemTime};

use backon::Retryable;
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::config::redact_url;
use crate::http::{body_excerpt, client};

/// What a sender should do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered (if the body is not an HTML page: see [`send_classified`]).
    Ok,
    /// Try again later, no sooner than the given delay if the receiver named one.
    Retry(Failure, Option<Duration>),
    /// The receiver refused the data for good: drop it, count it, never resend it.
    Drop,
}

/// Why an attempt failed: the `reason` of `pushrelay_send_failures_total`, and what the sink's
/// log says changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    Network,
    /// 5xx.
    ServerError,
    /// 429.
    RateLimited,
    /// 401, 403, 407: the credentials, not the data.
    Unauthorized,
    /// A 2xx whose body is an HTML page: a captive portal or a proxy, not the receiver.
    Html,
    /// A 3xx: no client follows redirects (they would re-send secrets elsewhere).
    Redirect,
    /// Any other 4xx: the receiver refused the data for good.
    Rejected,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Network => "network",
            Failure::ServerError => "server_error",
            Failure::RateLimited => "rate_limited",
            Failure::Unauthorized => "unauthorized",
            Failure::Html => "html",
            Failure::Redirect => "redirect",
            Failure::Rejected => "rejected",
        }
    }
}

/// Classifies a remote-write/Pushgateway response by its status: 2xx ok; 5xx, 429, 401, 403,
/// 407 and 3xx retry (honouring `Retry-After`): credentials and a moved endpoint are fixed by
/// the operator, not by dropping data; any other status drops.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Verdict {
    let kind = match status.as_u16() {
        200..=299 => return Verdict::Ok,
        300..=399 => Failure::Redirect,
        401 | 403 | 407 => Failure::Unauthorized,
        429 => Failure::RateLimited,
        500..=599 => Failure::ServerError,
        _ => return Verdict::Drop,
    };
    Verdict::Retry(kind, retry_after(headers))
}

/// Whether a response is an HTML page (a captive portal's login page, a proxy's error page):
/// by its `Content-Type`, or by how its body starts.
pub fn is_html(headers: &HeaderMap, body: &[u8]) -> bool {
    let by_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let start: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(14)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    by_type || start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
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
    /// Worth retrying: a network error, 5xx, 429, 401/403/407, 3xx or an HTML page (with the
    /// receiver's `Retry-After`).
    #[error("{reason}")]
    Retryable {
        kind: Failure,
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
    /// Why it failed, for `pushrelay_send_failures_total{reason}`.
    pub fn kind(&self) -> Failure {
        match self {
            SendError::Retryable { kind, .. } => *kind,
            SendError::Final(_) => Failure::Rejected,
        }
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { after, .. } => *after,
            SendError::Final(_) => None,
        }
    }
}

/// Sends a prepared request and classifies the answer (see [`classify`]); a 2xx whose body is
/// an HTML page is no receiver's answer and is retried.
pub async fn send_classified(req: reqwest::RequestBuilder) -> Result<(), SendError> {
    send_inspected(req).await.0
}

/// A receiver's answer, for a sender that looks further than [`classify`] (the remote-write
/// sink negotiates its protocol from it and counts the bytes it cost).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, up to 64 KiB.
    pub body: Vec<u8>,
}

impl Answer {
    /// What the answer took on the wire in HTTP/1.1: status line, headers, blank line and
    /// body (TLS records and TCP/IP headers not included).
    pub fn wire_bytes(&self) -> u64 {
        let status_line =
            "HTTP/1.1 200 \r\n".len() + self.status.canonical_reason().map_or(0, str::len);
        (status_line + header_bytes(&self.headers) + 2 + self.body.len()) as u64
    }
}

/// What `headers` take in an HTTP/1.1 head: `name: value\r\n` each.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.as_bytes().len() + 2)
        .sum()
}

/// [`send_classified`], also returning the answer when there was one.
pub async fn send_inspected(
    req: reqwest::RequestBuilder,
) -> (Result<(), SendError>, Option<Answer>) {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let err = SendError::Retryable {
                kind: Failure::Network,
                reason: client::error_chain(&e.without_url()),
                after: None,
            };
            return (Err(err), None);
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let asked = resp.url().clone();
    let body = client::read_limited(resp, 64 << 10)
        .await
        .unwrap_or_default();
    let result = classify_answer(status, &headers, &body, &asked);
    let answer = Answer {
        status,
        headers,
        body,
    };
    (result, Some(answer))
}

/// The outcome of an answer that came: [`classify`], then what only the body can tell.
fn classify_answer(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    asked: &reqwest::Url,
) -> Result<(), SendError> {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| match asked.join(l) {
            Ok(u) => redact_url(&u),
            Err(_) => l.to_string(),
        });
    let verdict = classify(status, headers);
    let code = status.as_u16();
    match verdict {
        Verdict::Ok if is_html(headers, body) => Err(SendError::Retryable {
            kind: Failure::Html,
            reason: format!(
                "HTTP {code} with an HTML page, not a receiver's answer: the receiver answered \
                 with an HTML page; a captive portal or proxy? ({})",
                body_excerpt(body, 120)
            ),
            after: None,
        }),
        Verdict::Ok => Ok(()),
        Verdict::Retry(Failure::Redirect, after) => Err(SendError::Retryable {
            kind: Failure::Redirect,
            reason: format!(
                "HTTP {code} redirect to {}: redirects are not followed (they would carry the \
                 credentials elsewhere); set the sink's url to where the receiver is",
                location.as_deref().unwrap_or("(no Location header)")
            ),
            after,
        }),
        Verdict::Retry(Failure::Unauthorized, after) => Err(SendError::Retryable {
            kind: Failure::Unauthorized,
            reason: format!(
                "HTTP {code}: {}; check the sink's credentials (queued data is kept)",
                body_excerpt(body, 300)
            ),
            after,
        }),
        Verdict::Retry(kind, after) => Err(SendError::Retryable {
            kind,
            reason: format!("HTTP {code}: {}", body_excerpt(body, 300)),
            after,
        }),
        Verdict::Drop => Err(Undeliverable::Rejected {
            status: code,
            body: match client::not_found_hint(asked, code) {
                Some(hint) => format!(
                    "{} ({hint}{})",
                    body_excerpt(body, 1000),
                    sink_path_hint(asked)
                ),
                None => body_excerpt(body, 1000),
            },
        }
        .into()),
    }
}

/// What a receiver's URL usually ends in, for a 404 or 405.
fn sink_path_hint(url: &reqwest::Url) -> &'static str {
    let p = url.path();
    if p.ends_with("/metrics") || p.contains("/metrics/job/metrics") {
        "; a Pushgateway sink takes the Pushgateway's base URL, without /metrics"
    } else if !(p.contains("/metrics/job/") || p.ends_with("/write") || p.ends_with("/push")) {
        "; remote-write URLs end in /api/v1/write (Prometheus, VictoriaMetrics), /api/v1/push (Mimir) or /api/prom/push (Grafana Cloud)"
    } else {
        ""
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
        assert_eq!(classify(StatusCode::PAYLOAD_TOO_LARGE, &h), Verdict::Drop);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &h),
            Verdict::Retry(Failure::ServerError, None)
        );
        for s in [401, 403, 407] {
            assert_eq!(
                classify(StatusCode::from_u16(s).unwrap(), &h),
                Verdict::Retry(Failure::Unauthorized, None),
                "{s}: credentials are not the data's fault"
            );
        }
        for s in [301, 302, 307, 308] {
            assert_eq!(
                classify(StatusCode::from_u16(s).unwrap(), &h),
                Verdict::Retry(Failure::Redirect, None),
                "{s}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h),
            Verdict::Retry(Failure::RateLimited, Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn html_pages_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_html(&h, b""));
        assert!(!is_html(&h, b"{\"status\":\"success\"}"));
        assert!(is_html(
            &h,
            b"\n  <!DOCTYPE html><html><title>Login</title>"
        ));
        assert!(is_html(&h, b"<HTML><body>Welcome to the hotel Wi-Fi"));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        assert!(is_html(&h, b"please log in"));
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
                        kind: Failure::ServerError,
                        reason: "503".into(),
                        after: Some(Duration::from_secs(30)),
                    }),
                    1 => Err(SendError::Retryable {
                        kind: Failure::Network,
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
