//! HTTP plumbing shared by sources and sinks: client construction, response classification,
//! and a tiny server for `listen`, the demo and the simulated upstreams.

pub mod client;
pub mod server;

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

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

/// The first `max` characters of a response body, on one line, for a log message.
pub fn body_excerpt(body: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.trim().chars().take(max).collect();
    out = out.replace(['\n', '\r'], " ");
    if s.trim().chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

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
}
