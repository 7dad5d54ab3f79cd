//! Reading the watched gateways' connection stats: the batch call per cluster where it works,
//! else one GET per gateway, paced; gateways absent from a batch answer asked once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use tokio::time::Instant;

use super::api::{self, Stats};
use super::client::{Api, CallError};
use super::clusters::StatsMethod;
use super::TtnSource;
use crate::config::redact_url;
use crate::sources::SourceError;

/// IDs per batch stats call (the API's maximum).
const BATCH_MAX: usize = 100;
/// The longest pause between two per-gateway requests: spreading is for politeness (TTN's
/// buckets are per gateway), so a few gateways need not take half the interval.
const MAX_PACE: Duration = Duration::from_millis(200);
/// One stats request's outcome for one gateway.
pub(super) enum Outcome {
    Stats(Box<Stats>),
    NotConnected,
    Failed(String),
    /// Not asked: its cluster is a host the API key may not be sent to.
    Refused,
}

impl TtnSource {
    /// Reads every watched gateway's stats: batch per cluster where it works, else (and for
    /// gateways newly absent from a batch answer) one GET each, paced until `spread_until`.
    pub(super) async fn read_stats(
        &mut self,
        t0: Instant,
        spread_until: Instant,
        deadline: Instant,
    ) -> Result<HashMap<String, Outcome>, SourceError> {
        let mut by_cluster: BTreeMap<Url, Vec<String>> = BTreeMap::new();
        let mut out: HashMap<String, Outcome> = HashMap::new();
        let name = self.cfg.name.clone();
        for g in &self.gateways {
            let base = self.cluster_of(g.gateway_server_address.as_deref());
            match self.key_policy.vet(&base) {
                Ok(base) => {
                    self.problems.clear(&name, &format!("host:{}", g.id), "");
                    by_cluster.entry(base).or_default().push(g.id.clone());
                }
                Err(host) => {
                    self.problems.warn(
                        &name,
                        &format!("host:{}", g.id),
                        format!(
                            "gateway {}: its gateway_server_address names {host}, which is not a cluster of this deployment; its stats are not read, so the API key never goes there (add the host to allowed_stats_hosts if you trust it)",
                            g.id
                        ),
                    );
                    out.insert(g.id.clone(), Outcome::Refused);
                }
            }
        }
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
                tokio::time::sleep_until(slot).await;
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
        let url = Api::endpoint(
            base,
            &["api", "v3", "gs", "gateways", "connection", "stats"],
        );
        let body = serde_json::json!({
            "gateway_ids": ids.iter().map(|id| serde_json::json!({"gateway_id": id})).collect::<Vec<_>>(),
        });
        let bucket = format!("batch:{base}");
        let (_, b) = self
            .api
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
        let url = Api::endpoint(
            base,
            &["api", "v3", "gs", "gateways", id, "connection", "stats"],
        );
        let name = self.cfg.name.clone();
        let key = format!("stats:{id}");
        Ok(
            match self.api.call(&key, Method::GET, url, None, deadline).await {
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
}
