//! The Things Stack v3 source: every gateway's connection state, traffic, round-trip times and
//! duty cycle, read from the Identity Server (list) and each gateway's own cluster (stats).
//!
//! One cycle: re-discover the gateways when due (paged list, or one GET per configured ID);
//! group them by cluster (`gateway_server_address`); read stats with the batch call (≤ 100 IDs
//! per request) where the cluster allows it, else one GET per gateway, paced over at most half
//! the interval; translate (see [`metrics`]). Rate limits are read from `X-Rate-Limit-*`.
//! See docs/ttn.md for the choices.
//!
//! Files: `config` (the table), `client` (requests and rate limits), `clusters` (which Gateway
//! Server serves a gateway), `discovery` (which gateways), `stats` (their connection stats),
//! `api` (liberal JSON), `metrics` (families and the `check` table); this file holds the
//! source itself, its carried state and the poll cycle.

pub mod api;
mod client;
pub mod clusters;
pub mod config;
mod discovery;
pub mod metrics;
mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{BoxFuture, BuildContext, Source, SourceError, SourceMeta, StateFile};
use crate::model::Family;
use api::{ApiError, GatewayInfo};
use client::Api;
pub use clusters::cluster_base;
use clusters::{Cluster, KeyPolicy};
pub use config::TtnConfig;
use metrics::{Conn, GatewayView};
use stats::Outcome;

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
    /// Requests, the key and the rate-limit buckets.
    api: Api,
    state_file: StateFile,
    carried: Carried,
    /// The gateways being watched (discovered or configured), in ID order.
    gateways: Vec<GatewayInfo>,
    /// When the gateway list was last fetched successfully; `None` forces a discovery.
    discovered_at: Option<Instant>,
    clusters: HashMap<Url, Cluster>,
    /// Where the API key may be sent.
    key_policy: KeyPolicy,
    problems: Problems,
    /// The last cycle's gateways, for `check`.
    last: Vec<GatewayView>,
    /// Set when a discovery was incomplete: try again next cycle, not after `discovery_interval`.
    rediscover_soon: bool,
}

impl TtnSource {
    pub fn new(cfg: TtnConfig, ctx: &BuildContext) -> anyhow::Result<TtnSource> {
        let state_file = ctx.state_file(&cfg.name);
        let carried = state_file.load().unwrap_or_default();
        Ok(TtnSource {
            meta: SourceMeta::for_url(&cfg.name, &cfg.url, cfg.interval, cfg.timeout),
            clock: ctx.clock.clone(),
            api: Api::new(&cfg)?,
            state_file,
            carried,
            gateways: Vec::new(),
            discovered_at: None,
            clusters: HashMap::new(),
            key_policy: KeyPolicy::new(&cfg.url, &cfg.allowed_stats_hosts),
            problems: Problems::default(),
            last: Vec::new(),
            rediscover_soon: false,
            cfg,
        })
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
        SourceError::Logged(Box::new(SourceError::Status {
            status: status.as_u16(),
            body: msg,
        }))
    }

    /// One cycle: discovery when due, stats, translation, carried state saved.
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
                Some(Outcome::Refused) => (Conn::Unknown, None),
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

/// ", missing RIGHT_…" when the error names missing rights.
fn missing_hint(e: &ApiError) -> String {
    if e.missing.is_empty() {
        String::new()
    } else {
        format!("; the key lacks {}", e.missing.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_ids() {
        let u = Url::parse("https://h.example/ttn/").unwrap();
        assert_eq!(
            Api::endpoint(
                &u,
                &["api", "v3", "gs", "gateways", "a b", "connection", "stats"]
            )
            .as_str(),
            "https://h.example/ttn/api/v3/gs/gateways/a%20b/connection/stats"
        );
        let u = Url::parse("https://h.example").unwrap();
        assert_eq!(
            Api::endpoint(&u, &["api", "v3", "gateways"]).as_str(),
            "https://h.example/api/v3/gateways"
        );
    }
}
