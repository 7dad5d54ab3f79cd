//! The Things Stack's HTTP API as this source calls it: one client and key, requests paced by
//! the `X-Rate-Limit-*` buckets (TTN sends no `Retry-After`), answers sorted into [`CallError`].

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};
use tokio::time::Instant;

use super::api::{self, ApiError};
use crate::http::client;

/// Largest answer read: a page of 1000 gateways is 0.5–2 MB, batch stats less. Answers are
/// read as JSON trees (about 15× their size in memory), so this keeps one answer under ~80 MiB.
pub(crate) const BODY_LIMIT: u64 = 4 << 20;

/// Why a request gave no usable answer.
#[derive(Debug)]
pub enum CallError {
    /// Network failure or timeout.
    Transport(String),
    /// Still rate limited after waiting what the budget allowed.
    RateLimited(Duration),
    /// No time left in this cycle.
    OutOfTime,
    /// An error status with its parsed body.
    Status(StatusCode, ApiError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "request failed: {e}"),
            CallError::RateLimited(d) => write!(f, "rate limited (retry in {}s)", d.as_secs()),
            CallError::OutOfTime => f.write_str("no time left in this cycle"),
            CallError::Status(s, e) => write!(f, "HTTP {}: {}", s.as_u16(), e.label()),
        }
    }
}

/// The API client: the key, the per-request timeout and the rate-limit buckets.
pub struct Api {
    /// The source's name, for log lines.
    source: String,
    client: reqwest::Client,
    /// `Bearer <api_key>`, marked sensitive so it is never printed.
    auth: HeaderValue,
    request_timeout: Duration,
    /// Where the key may go: checked again on every request, whatever asked for it.
    key_policy: super::clusters::KeyPolicy,
    /// Per rate-limit bucket (method + gateway), no request before this instant.
    not_before: HashMap<String, Instant>,
    /// Largest answer accepted (`body_size_limit`).
    body_size_limit: u64,
}

impl Api {
    pub fn new(cfg: &super::TtnConfig) -> anyhow::Result<Api> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", cfg.api_key.expose().trim()))
            .map_err(|_| {
                anyhow::anyhow!(
                    "source {}: api_key holds characters a header cannot carry",
                    cfg.name
                )
            })?;
        auth.set_sensitive(true);
        Ok(Api {
            source: cfg.name.clone(),
            client: client::build(&cfg.http)?,
            auth,
            request_timeout: cfg.http.timeout,
            body_size_limit: cfg.body_size_limit,
            key_policy: super::clusters::KeyPolicy::new(&cfg.url, &cfg.allowed_stats_hosts),
            not_before: HashMap::new(),
        })
    }

    /// `url` joined with path segments (each percent-encoded).
    pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
        let mut u = base.clone();
        u.set_query(None);
        u.set_fragment(None);
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        u
    }

    /// Sends one request, honouring rate limits: waits for the bucket's `not_before`, and on
    /// 429 waits `X-Rate-Limit-Retry` and tries again while the cycle's budget allows.
    pub async fn call(
        &mut self,
        bucket: &str,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<(HeaderMap, Vec<u8>), CallError> {
        let url = self
            .key_policy
            .vet(&url)
            .map_err(|host| CallError::Transport(format!("not sending the API key to {host}")))?;
        for _attempt in 0..3 {
            let now = Instant::now();
            if let Some(&nb) = self.not_before.get(bucket) {
                if nb > now {
                    if nb >= deadline {
                        return Err(CallError::RateLimited(nb - now));
                    }
                    tokio::time::sleep_until(nb).await;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(50) {
                return Err(CallError::OutOfTime);
            }
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.auth.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(left.min(self.request_timeout));
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| CallError::Transport(client::error_chain(&e.without_url())))?;
            let status = resp.status();
            if let Some(note) = client::redirect_note(&resp) {
                return Err(CallError::Transport(note));
            }
            let wait = self.note_rate_limit(bucket, status, resp.headers());
            let headers = resp.headers().clone();
            let bytes = client::read_limited(resp, self.body_size_limit)
                .await
                .map_err(|e| CallError::Transport(client::over_limit_hint(e, &self.source)))?;
            if status.is_success() {
                return Ok((headers, bytes));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = wait.unwrap_or(Duration::from_secs(1));
                if Instant::now() + wait < deadline {
                    tracing::debug!(source = %self.source, "rate limited on {bucket}; waiting {wait:?}");
                    continue;
                }
                return Err(CallError::RateLimited(wait));
            }
            return Err(CallError::Status(status, api::parse_error(&bytes)));
        }
        Err(CallError::RateLimited(Duration::from_secs(1)))
    }

    /// Reads `X-Rate-Limit-*`: on 429, the bucket waits `-Retry` seconds (there is no
    /// Retry-After); when `-Available` reaches 0 it waits `-Reset`. Returns the 429 wait.
    fn note_rate_limit(
        &mut self,
        bucket: &str,
        status: StatusCode,
        h: &HeaderMap,
    ) -> Option<Duration> {
        let secs = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| Duration::from_secs_f64(f.min(3600.0)))
        };
        let available = h
            .get("x-rate-limit-available")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let wait = if status == StatusCode::TOO_MANY_REQUESTS {
            Some(
                secs("x-rate-limit-retry")
                    .or_else(|| secs("x-rate-limit-reset"))
                    .unwrap_or(Duration::from_secs(1)),
            )
        } else if available == Some(0) {
            secs("x-rate-limit-reset")
        } else {
            None
        };
        match wait {
            Some(w) => {
                self.not_before
                    .insert(bucket.to_string(), Instant::now() + w);
            }
            None => {
                self.not_before.remove(bucket);
            }
        }
        wait.filter(|_| status == StatusCode::TOO_MANY_REQUESTS)
    }
}
