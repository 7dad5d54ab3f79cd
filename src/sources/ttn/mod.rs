//! The Things Stack v3 source: every gateway's connection state, traffic, round-trip times and
//! duty cycle, read from the Identity Server (list) and each gateway's own cluster (stats).
//!
//! One cycle: re-discover the gateways when due (paged list, or one GET per configured ID);
//! group them by cluster (`gateway_server_address`); read stats with the batch call (≤ 100 IDs
//! per request) where the cluster allows it, else one GET per gateway, paced over at most half
//! the interval; translate (see [`metrics`]). Rate limits are read from `X-Rate-Limit-*`.
//! See docs/ttn.md for the choices.

pub mod api;
pub mod config;
pub mod metrics;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{BoxFuture, BuildContext, Source, SourceError, SourceMeta, StateFile};
use crate::config::redact_url;
use crate::http::client;
use crate::model::Family;
use api::{ApiError, GatewayInfo, Stats};
pub use config::TtnConfig;
use metrics::{Conn, GatewayView};

/// What the list and single-gateway GETs ask the Identity Server for.
const FIELD_MASK: &str =
    "name,frequency_plan_ids,antennas,gateway_server_address,status_public,location_public";
/// Gateways per list page asked for (the API's maximum).
const PAGE_LIMIT: usize = 1000;
/// IDs per batch stats call (the API's maximum).
const BATCH_MAX: usize = 100;
/// Largest answer read (a 1000-gateway page is well under this).
const BODY_LIMIT: u64 = 16 << 20;
/// The longest pause between two per-gateway requests: spreading is for politeness (TTN's
/// buckets are per gateway), so a few gateways need not take half the interval.
const MAX_PACE: Duration = Duration::from_millis(200);
/// Ports that belong to a gateway protocol, not to the HTTP API, in a `gateway_server_address`.
const GATEWAY_PORTS: [u16; 8] = [1700, 1881, 1882, 1883, 1887, 8881, 8882, 8887];

/// State carried across restarts in `state_dir/sources/<name>.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Carried {
    #[serde(default)]
    gateways: BTreeMap<String, CarriedGateway>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CarriedGateway {
    /// Latest sighting ever seen: outlives TTN's 48 h retention of a disconnected gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<f64>,
    /// When it went offline, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offline_since: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stack_version: Option<String>,
}

/// How a cluster's stats are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatsMethod {
    Batch,
    PerGateway,
}

/// What the source remembers about one cluster (Gateway Server).
#[derive(Debug, Default)]
struct Cluster {
    /// `None` until the batch call was tried since the last discovery.
    method: Option<StatsMethod>,
    /// Gateways absent from the last batch answer, with what a single GET told about them
    /// (`None`: 404 or unreadable). Asked once per absence, not every cycle.
    absent: HashMap<String, Option<Stats>>,
}

/// One stats request's outcome for one gateway.
enum Outcome {
    Stats(Box<Stats>),
    NotConnected,
    Failed(String),
}

/// Why a request gave no usable answer.
#[derive(Debug)]
enum CallError {
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

/// Log lines said once per state, keyed by topic: a repeated problem is not logged again until
/// it changes or clears.
#[derive(Debug, Default)]
struct Problems(HashMap<String, String>);

impl Problems {
    fn warn(&mut self, source: &str, key: &str, msg: String) {
        if self.0.get(key) != Some(&msg) {
            tracing::warn!(source = %source, "{msg}");
            self.0.insert(key.to_string(), msg);
        }
    }
    fn clear(&mut self, source: &str, key: &str, resolved: &str) {
        if self.0.remove(key).is_some() && !resolved.is_empty() {
            tracing::info!(source = %source, "{resolved}");
        }
    }
}

pub struct TtnSource {
    cfg: TtnConfig,
    /// Name, `instance`, interval and timeout.
    meta: SourceMeta,
    /// Dates last-seen times.
    clock: crate::clock::WallClock,
    client: reqwest::Client,
    /// `Bearer <api_key>`, marked sensitive so it is never printed.
    auth: HeaderValue,
    state_file: StateFile,
    carried: Carried,
    /// The gateways being watched (discovered or configured), in ID order.
    gateways: Vec<GatewayInfo>,
    /// When the gateway list was last fetched successfully; `None` forces a discovery.
    discovered_at: Option<Instant>,
    clusters: HashMap<Url, Cluster>,
    /// Per rate-limit bucket (method + gateway), no request before this instant.
    not_before: HashMap<String, Instant>,
    problems: Problems,
    /// The last cycle's gateways, for `check`.
    last: Vec<GatewayView>,
    /// Set when a discovery was incomplete: try again next cycle, not after `discovery_interval`.
    rediscover_soon: bool,
}

impl TtnSource {
    pub fn new(cfg: TtnConfig, ctx: &BuildContext) -> anyhow::Result<TtnSource> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", cfg.api_key.expose().trim()))
            .map_err(|_| {
                anyhow::anyhow!(
                    "source {}: api_key holds characters a header cannot carry",
                    cfg.name
                )
            })?;
        auth.set_sensitive(true);
        let state_file = ctx.state_file(&cfg.name);
        let carried = state_file.load().unwrap_or_default();
        Ok(TtnSource {
            meta: SourceMeta::for_url(&cfg.name, &cfg.url, cfg.interval, cfg.timeout),
            clock: ctx.clock.clone(),
            client: client::build(&cfg.http)?,
            auth,
            state_file,
            carried,
            gateways: Vec::new(),
            discovered_at: None,
            clusters: HashMap::new(),
            not_before: HashMap::new(),
            problems: Problems::default(),
            last: Vec::new(),
            rediscover_soon: false,
            cfg,
        })
    }

    /// `url` joined with path segments (each percent-encoded).
    fn endpoint(base: &Url, segments: &[&str]) -> Url {
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
    async fn call(
        &mut self,
        bucket: &str,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<(HeaderMap, Vec<u8>), CallError> {
        for _attempt in 0..3 {
            let now = Instant::now();
            if let Some(&nb) = self.not_before.get(bucket) {
                if nb > now {
                    if nb >= deadline {
                        return Err(CallError::RateLimited(nb - now));
                    }
                    tokio::time::sleep_until(nb.into()).await;
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
                .timeout(left.min(self.cfg.http.timeout));
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
            let wait = self.note_rate_limit(bucket, status, resp.headers());
            let headers = resp.headers().clone();
            let bytes = client::read_limited(resp, BODY_LIMIT)
                .await
                .map_err(CallError::Transport)?;
            if status.is_success() {
                return Ok((headers, bytes));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = wait.unwrap_or(Duration::from_secs(1));
                if Instant::now() + wait < deadline {
                    tracing::debug!(source = %self.cfg.name, "rate limited on {bucket}; waiting {wait:?}");
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

    /// The cluster to read a gateway's stats from: its `gateway_server_address`, liberally
    /// read (bare host, `host:port`, or a URL); `url` when empty or the same host.
    fn cluster_of(&self, address: Option<&str>) -> Url {
        cluster_base(&self.cfg.url, address)
    }

    /// An auth failure that stops the whole cycle, with one clear line.
    fn auth_error(&mut self, what: &str, status: StatusCode, e: &ApiError) -> SourceError {
        let msg = if status == StatusCode::UNAUTHORIZED {
            format!(
                "the API key was refused ({}) while {what}: check api_key (expired, revoked or mistyped?)",
                e.label()
            )
        } else if !e.missing.is_empty() {
            format!(
                "the API key lacks {} ({} while {what}): add the right to the key in the Console",
                e.missing.join(", "),
                e.label()
            )
        } else {
            format!(
                "the API key cannot list gateways ({}): give it RIGHT_USER_GATEWAYS_LIST or RIGHT_ORGANIZATION_GATEWAYS_LIST, or set gateways = [\"...\"]",
                e.label()
            )
        };
        let name = self.cfg.name.clone();
        self.problems.warn(&name, "auth", msg.clone());
        SourceError::Status {
            status: status.as_u16(),
            body: msg,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Discovery.

    /// Fetches the gateway list (all pages) or the configured gateways' registry entries.
    async fn discover(&mut self, deadline: Instant) -> Result<Vec<GatewayInfo>, SourceError> {
        if !self.cfg.gateways.is_empty() {
            return self.describe_configured(deadline).await;
        }
        let mut all: Vec<GatewayInfo> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: Option<usize> = None;
        for page in 1..=100usize {
            let mut url = Self::endpoint(&self.cfg.url, &["api", "v3", "gateways"]);
            url.query_pairs_mut()
                .append_pair("field_mask", FIELD_MASK)
                .append_pair("limit", &PAGE_LIMIT.to_string())
                .append_pair("page", &page.to_string())
                .append_pair("order", "gateway_id");
            let (body, count) = match self.call("list", Method::GET, url, None, deadline).await {
                Ok((h, b)) => (b, total_count(&h)),
                Err(CallError::Status(s, e))
                    if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN =>
                {
                    return Err(self.auth_error("listing gateways", s, &e))
                }
                Err(CallError::Status(s, e)) => {
                    return Err(SourceError::Status {
                        status: s.as_u16(),
                        body: format!("listing gateways: {}", e.label()),
                    })
                }
                Err(e) => return Err(SourceError::Request(format!("listing gateways: {e}"))),
            };
            total = count.or(total);
            let items = api::parse_gateway_list(&body).map_err(SourceError::Invalid)?;
            let before = all.len();
            for g in items {
                if seen.insert(g.id.clone()) {
                    all.push(g);
                }
            }
            // Stop at an empty page (`{}` past the end), a page with nothing new (a server that
            // ignores `page`), or once the announced total is reached.
            if all.len() == before || total.is_some_and(|t| all.len() >= t) {
                break;
            }
        }
        let name = self.cfg.name.clone();
        self.problems
            .clear(&name, "auth", "the API key is accepted again");
        if all.is_empty() {
            self.problems.warn(
                &name,
                "empty-list",
                "the API key lists no gateways: a gateway-scoped key cannot list them; \
                 set gateways = [\"your-gateway-id\"] in the source, or use a user or organization key"
                    .to_string(),
            );
        } else {
            self.problems.clear(&name, "empty-list", "");
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// With `gateways = [...]`: one registry GET per gateway for its name, EUI, cluster and
    /// location. A refusal (a gateway key without the info right) leaves just the ID.
    async fn describe_configured(
        &mut self,
        deadline: Instant,
    ) -> Result<Vec<GatewayInfo>, SourceError> {
        let mut out = Vec::new();
        let mut transient = 0;
        for id in self.cfg.gateways.clone() {
            let mut url = Self::endpoint(&self.cfg.url, &["api", "v3", "gateways", &id]);
            url.query_pairs_mut().append_pair("field_mask", FIELD_MASK);
            let name = self.cfg.name.clone();
            let info = match self
                .call(&format!("get:{id}"), Method::GET, url, None, deadline)
                .await
            {
                Ok((_, b)) => serde_json::from_slice::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| api::parse_gateway(&v))
                    .filter(|g| g.id == id),
                Err(CallError::Status(StatusCode::UNAUTHORIZED, e)) => {
                    return Err(self.auth_error(
                        "reading gateway info",
                        StatusCode::UNAUTHORIZED,
                        &e,
                    ))
                }
                Err(CallError::Status(s, e)) => {
                    self.problems.warn(
                        &name,
                        &format!("info:{id}"),
                        format!(
                            "gateway {id}: registry entry unreadable (HTTP {}: {}{}); watching it by ID only",
                            s.as_u16(),
                            e.label(),
                            missing_hint(&e)
                        ),
                    );
                    None
                }
                Err(e) => {
                    transient += 1;
                    tracing::debug!(source = %name, "gateway {id}: registry entry: {e}");
                    None
                }
            };
            out.push(info.unwrap_or(GatewayInfo {
                id: id.clone(),
                ..GatewayInfo::default()
            }));
        }
        // Names missing for a passing reason are fetched again next cycle.
        self.rediscover_soon = transient > 0;
        if transient == self.cfg.gateways.len() {
            return Err(SourceError::Request(
                "the Identity Server did not answer for any configured gateway".to_string(),
            ));
        }
        Ok(out)
    }
}

impl TtnSource {
    // -----------------------------------------------------------------------------------------
    // Stats.

    /// Reads every watched gateway's stats: batch per cluster where it works, else (and for
    /// gateways newly absent from a batch answer) one GET each, paced until `spread_until`.
    async fn read_stats(
        &mut self,
        t0: Instant,
        spread_until: Instant,
        deadline: Instant,
    ) -> Result<HashMap<String, Outcome>, SourceError> {
        let mut by_cluster: BTreeMap<Url, Vec<String>> = BTreeMap::new();
        for g in &self.gateways {
            by_cluster
                .entry(self.cluster_of(g.gateway_server_address.as_deref()))
                .or_default()
                .push(g.id.clone());
        }
        let mut out: HashMap<String, Outcome> = HashMap::new();
        // (cluster, gateway, asked only because it was absent from a batch answer)
        let mut singles: Vec<(Url, String, bool)> = Vec::new();
        for (base, ids) in by_cluster {
            let method = self
                .clusters
                .entry(base.clone())
                .or_default()
                .method
                .unwrap_or(StatsMethod::Batch);
            if method == StatsMethod::PerGateway {
                singles.extend(ids.into_iter().map(|id| (base.clone(), id, false)));
                continue;
            }
            let chunks: Vec<Vec<String>> = ids.chunks(BATCH_MAX).map(<[String]>::to_vec).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                match self.batch(&base, chunk, deadline).await {
                    Ok(entries) => {
                        self.clusters.entry(base.clone()).or_default().method =
                            Some(StatsMethod::Batch);
                        let cl = self.clusters.entry(base.clone()).or_default();
                        for id in chunk {
                            match entries.get(id) {
                                Some(s) => {
                                    cl.absent.remove(id);
                                    out.insert(id.clone(), Outcome::Stats(Box::new(s.clone())));
                                }
                                None => match cl.absent.get(id) {
                                    Some(Some(s)) => {
                                        out.insert(id.clone(), Outcome::Stats(Box::new(s.clone())));
                                    }
                                    Some(None) => {
                                        out.insert(id.clone(), Outcome::NotConnected);
                                    }
                                    None => singles.push((base.clone(), id.clone(), true)),
                                },
                            }
                        }
                    }
                    Err(CallError::Status(s, e)) if s == StatusCode::UNAUTHORIZED => {
                        return Err(self.auth_error("reading gateway stats", s, &e));
                    }
                    Err(CallError::Status(s, e))
                        if matches!(s.as_u16(), 400 | 403 | 404 | 405 | 501) =>
                    {
                        let name = self.cfg.name.clone();
                        self.problems.warn(
                            &name,
                            &format!("batch:{base}"),
                            format!(
                                "batch stats refused by {} (HTTP {}: {}); reading one gateway at a time there",
                                redact_url(&base),
                                s.as_u16(),
                                e.label()
                            ),
                        );
                        self.clusters.entry(base.clone()).or_default().method =
                            Some(StatsMethod::PerGateway);
                        for rest in &chunks[i..] {
                            singles.extend(rest.iter().map(|id| (base.clone(), id.clone(), false)));
                        }
                        break;
                    }
                    Err(e) => {
                        let msg = format!("batch stats from {}: {e}", redact_url(&base));
                        for id in chunk {
                            out.insert(id.clone(), Outcome::Failed(msg.clone()));
                        }
                    }
                }
            }
        }

        let n = singles.len().max(1) as u32;
        let pace = (spread_until.saturating_duration_since(t0) / n).min(MAX_PACE);
        for (i, (base, id, absent_probe)) in singles.into_iter().enumerate() {
            let slot = t0 + pace * i as u32;
            if slot > Instant::now() && slot < deadline {
                tokio::time::sleep_until(slot.into()).await;
            }
            let outcome = self.single(&base, &id, deadline).await?;
            if absent_probe {
                let cl = self.clusters.entry(base.clone()).or_default();
                match &outcome {
                    Outcome::Stats(s) if !s.is_connected() => {
                        cl.absent.insert(id.clone(), Some((**s).clone()));
                    }
                    Outcome::NotConnected => {
                        cl.absent.insert(id.clone(), None);
                    }
                    _ => {}
                }
            }
            out.insert(id, outcome);
        }
        Ok(out)
    }

    /// `POST /api/v3/gs/gateways/connection/stats` for up to 100 IDs.
    async fn batch(
        &mut self,
        base: &Url,
        ids: &[String],
        deadline: Instant,
    ) -> Result<BTreeMap<String, Stats>, CallError> {
        let url = Self::endpoint(
            base,
            &["api", "v3", "gs", "gateways", "connection", "stats"],
        );
        let body = serde_json::json!({
            "gateway_ids": ids.iter().map(|id| serde_json::json!({"gateway_id": id})).collect::<Vec<_>>(),
        });
        let bucket = format!("batch:{base}");
        let (_, b) = self
            .call(&bucket, Method::POST, url, Some(&body), deadline)
            .await?;
        api::parse_batch_body(&b).map_err(CallError::Transport)
    }

    /// `GET /api/v3/gs/gateways/{id}/connection/stats`. Only a refused key (401) is an error
    /// for the whole cycle; anything else is this gateway's outcome.
    async fn single(
        &mut self,
        base: &Url,
        id: &str,
        deadline: Instant,
    ) -> Result<Outcome, SourceError> {
        let url = Self::endpoint(
            base,
            &["api", "v3", "gs", "gateways", id, "connection", "stats"],
        );
        let name = self.cfg.name.clone();
        let key = format!("stats:{id}");
        Ok(
            match self.call(&key, Method::GET, url, None, deadline).await {
                Ok((_, b)) => match api::parse_stats_body(&b) {
                    Ok(s) => {
                        self.problems.clear(&name, &key, "");
                        Outcome::Stats(Box::new(s))
                    }
                    Err(e) => Outcome::Failed(format!("gateway {id}: {e}")),
                },
                Err(CallError::Status(s, e))
                    if s == StatusCode::NOT_FOUND && e.is_not_connected() =>
                {
                    self.problems.clear(&name, &key, "");
                    Outcome::NotConnected
                }
                Err(CallError::Status(s, e)) if s == StatusCode::UNAUTHORIZED => {
                    return Err(self.auth_error("reading gateway stats", s, &e));
                }
                Err(CallError::Status(s, e)) if s == StatusCode::FORBIDDEN => {
                    let msg = if e.missing.is_empty() {
                        format!(
                        "gateway {id}: the API key has no rights on it, or it does not exist ({})",
                        e.label()
                    )
                    } else {
                        format!(
                        "gateway {id}: the API key lacks {} ({}): add it to the key in the Console",
                        e.missing.join(", "),
                        e.label()
                    )
                    };
                    self.problems.warn(&name, &key, msg.clone());
                    Outcome::Failed(msg)
                }
                Err(e) => Outcome::Failed(format!("gateway {id}: {e}")),
            },
        )
    }

    // -----------------------------------------------------------------------------------------
    // One cycle.

    async fn cycle(&mut self) -> Result<Vec<Family>, SourceError> {
        let t0 = Instant::now();
        let budget = self.cfg.timeout;
        let deadline = t0 + budget - (budget / 10).min(Duration::from_secs(2));
        let spread_until = t0 + (self.cfg.interval / 2).min(budget / 2);
        let due = self.rediscover_soon
            || self
                .discovered_at
                .is_none_or(|t| t.elapsed() >= self.cfg.discovery_interval);
        if due {
            match self.discover(deadline).await {
                Ok(list) => {
                    let name = self.cfg.name.clone();
                    self.problems
                        .clear(&name, "discovery", "gateway list readable again");
                    if self.discovered_at.is_some() {
                        let old: HashSet<&str> =
                            self.gateways.iter().map(|g| g.id.as_str()).collect();
                        let new = list.iter().filter(|g| !old.contains(g.id.as_str())).count();
                        if new > 0 {
                            tracing::info!(source = %name, "{new} new gateway(s) discovered");
                        }
                    }
                    self.gateways = list;
                    self.discovered_at = Some(Instant::now());
                    // Re-probe the batch call and re-learn absent gateways after each discovery.
                    self.clusters.clear();
                }
                Err(e) if self.discovered_at.is_some() => {
                    let name = self.cfg.name.clone();
                    self.problems.warn(
                        &name,
                        "discovery",
                        format!("gateway list unavailable ({e}); keeping the previous list"),
                    );
                    self.rediscover_soon = true;
                }
                Err(e) => return Err(e),
            }
        }
        let mut outcomes = self.read_stats(t0, spread_until, deadline).await?;
        if !self.gateways.is_empty() && outcomes.values().all(|o| matches!(o, Outcome::Failed(_))) {
            let first = self
                .gateways
                .iter()
                .find_map(|g| match outcomes.get(&g.id) {
                    Some(Outcome::Failed(m)) => Some(m.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "no stats".to_string());
            return Err(SourceError::Request(format!(
                "no gateway's stats could be read: {first}"
            )));
        }
        let mut views = Vec::with_capacity(self.gateways.len());
        for info in &self.gateways {
            let c = self.carried.gateways.entry(info.id.clone()).or_default();
            let (conn, stats) = match outcomes.remove(&info.id) {
                Some(Outcome::Stats(s)) if s.is_connected() => (Conn::Connected, Some(*s)),
                Some(Outcome::Stats(s)) => (Conn::Disconnected, Some(*s)),
                Some(Outcome::NotConnected) => (Conn::Disconnected, None),
                Some(Outcome::Failed(m)) => {
                    tracing::debug!(source = %self.cfg.name, "{m}");
                    (Conn::Unknown, None)
                }
                None => (Conn::Unknown, None),
            };
            if let Some(s) = &stats {
                if let Some(seen) = s.last_seen() {
                    c.last_seen = Some(c.last_seen.map_or(seen, |old| old.max(seen)));
                }
                if s.protocol.is_some() {
                    c.protocol = s.protocol.clone();
                }
                if s.stack_version.is_some() {
                    c.stack_version = s.stack_version.clone();
                }
            }
            match conn {
                Conn::Connected => c.offline_since = None,
                Conn::Disconnected => {
                    let at = stats.as_ref().and_then(|s| s.disconnected_at);
                    c.offline_since = at.or(c.offline_since).or(c.last_seen);
                }
                Conn::Unknown => {}
            }
            views.push(GatewayView {
                info: info.clone(),
                conn,
                stats,
                last_seen: c.last_seen,
                offline_since: c.offline_since,
                protocol: c.protocol.clone(),
                stack_version: c.stack_version.clone(),
            });
        }
        let watched: HashSet<&str> = self.gateways.iter().map(|g| g.id.as_str()).collect();
        self.carried
            .gateways
            .retain(|k, _| watched.contains(k.as_str()));
        self.state_file.save(&self.carried);
        let fams = metrics::families(&views, self.cfg.compat_names);
        self.last = views;
        Ok(fams)
    }
}

impl Source for TtnSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }
    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>> {
        Box::pin(self.cycle())
    }
    fn check_summary(&self, _all: bool) -> Option<String> {
        let now = self.clock.now_seconds();
        Some(metrics::check_table(&self.last, now))
    }
}

/// `X-Total-Count`, when present and numeric.
fn total_count(h: &HeaderMap) -> Option<usize> {
    h.get("x-total-count")?.to_str().ok()?.trim().parse().ok()
}

/// ", missing RIGHT_…" when the error names missing rights.
fn missing_hint(e: &ApiError) -> String {
    if e.missing.is_empty() {
        String::new()
    } else {
        format!("; the key lacks {}", e.missing.join(", "))
    }
}

/// The HTTP base of the cluster a `gateway_server_address` names. Bare hosts and `host:port`
/// take `url`'s scheme; ports of gateway protocols (UDP 1700, MQTT, LNS) and non-HTTP schemes
/// are dropped in favour of the scheme's default; empty or `url`'s own host gives `url`.
pub fn cluster_base(url: &Url, address: Option<&str>) -> Url {
    let Some(addr) = address.map(str::trim).filter(|a| !a.is_empty()) else {
        return url.clone();
    };
    let (scheme, rest) = match addr.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, addr),
    };
    let hostport = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            (h, p.parse::<u16>().ok())
        }
        _ => (hostport, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let http_scheme = scheme.as_deref().filter(|s| *s == "http" || *s == "https");
    let use_scheme = http_scheme.unwrap_or(url.scheme());
    let port = match (http_scheme, port) {
        (Some(_), p) => p,
        (None, Some(p)) if scheme.is_none() && !GATEWAY_PORTS.contains(&p) => Some(p),
        _ => None,
    };
    let url_host = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
    if host.is_empty()
        || (Some(host) == url_host && port.is_none_or(|p| url.port_or_known_default() == Some(p)))
    {
        return url.clone();
    }
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let text = match port {
        Some(p) => format!("{use_scheme}://{host_part}:{p}/"),
        None => format!("{use_scheme}://{host_part}/"),
    };
    Url::parse(&text).unwrap_or_else(|_| url.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_from_gateway_server_addresses() {
        let eu = Url::parse("https://eu1.cloud.thethings.network").unwrap();
        let c = |a: &str| cluster_base(&eu, Some(a)).to_string();
        assert_eq!(c(""), "https://eu1.cloud.thethings.network/");
        assert_eq!(
            c("eu1.cloud.thethings.network"),
            "https://eu1.cloud.thethings.network/"
        );
        assert_eq!(
            c("nam1.cloud.thethings.network"),
            "https://nam1.cloud.thethings.network/"
        );
        assert_eq!(
            c("nam1.cloud.thethings.network:1700"),
            "https://nam1.cloud.thethings.network/"
        );
        assert_eq!(
            c("wss://au1.cloud.thethings.network:8887"),
            "https://au1.cloud.thethings.network/"
        );
        assert_eq!(c("mqtts://x.example:8882"), "https://x.example/");
        assert_eq!(
            c("https://nam1.cloud.thethings.network"),
            "https://nam1.cloud.thethings.network/"
        );
        assert_eq!(c("http://10.0.0.5:1885/api"), "http://10.0.0.5:1885/");
        let local = Url::parse("http://127.0.0.1:8080/prefix").unwrap();
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1:8080")).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1")).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1:1700")).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1:9999")).to_string(),
            "http://127.0.0.1:9999/"
        );
        assert_eq!(
            cluster_base(&local, Some("localhost:9999")).to_string(),
            "http://localhost:9999/"
        );
        assert_eq!(
            cluster_base(&local, None).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("[::1]:9000")).to_string(),
            "http://[::1]:9000/"
        );
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_ids() {
        let u = Url::parse("https://h.example/ttn/").unwrap();
        assert_eq!(
            TtnSource::endpoint(
                &u,
                &["api", "v3", "gs", "gateways", "a b", "connection", "stats"]
            )
            .as_str(),
            "https://h.example/ttn/api/v3/gs/gateways/a%20b/connection/stats"
        );
        let u = Url::parse("https://h.example").unwrap();
        assert_eq!(
            TtnSource::endpoint(&u, &["api", "v3", "gateways"]).as_str(),
            "https://h.example/api/v3/gateways"
        );
    }
}
