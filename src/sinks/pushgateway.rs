//! The Pushgateway sink: keeps only the latest snapshot per source and PUTs it as that
//! source's group, `/metrics/job/<source>/relay/<relay>`. History is never queued: the
//! Pushgateway holds one state per group, so an old snapshot has no value once a newer exists.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backon::BackoffBuilder;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{human, now_seconds, send_classified, SendError};
use crate::config::{redact_url, PushgatewayConfig};
use crate::http::client;
use crate::model::{is_stale_nan, Snapshot};
use crate::self_metrics::SelfMetrics;
use crate::wire::pushgateway::group_path;

/// The text format version the Pushgateway expects.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct PushgatewaySink {
    cfg: PushgatewayConfig,
    client: reqwest::Client,
    metrics: Arc<SelfMetrics>,
    /// The latest snapshot of each group and whether it still has to be pushed.
    groups: Mutex<BTreeMap<String, Group>>,
    changed: Notify,
}

struct Group {
    latest: Arc<Snapshot>,
    dirty: bool,
}

impl PushgatewaySink {
    pub fn new(cfg: PushgatewayConfig, metrics: Arc<SelfMetrics>) -> anyhow::Result<Self> {
        Ok(PushgatewaySink {
            client: client::build(&cfg.http)?,
            cfg,
            metrics,
            groups: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the group's latest snapshot (an unsent older one is simply superseded).
    pub fn submit(&self, snap: Arc<Snapshot>) {
        self.lock().insert(
            snap.source.clone(),
            Group {
                latest: snap,
                dirty: true,
            },
        );
        self.changed.notify_one();
    }

    /// The next group with an unsent snapshot, marked as taken.
    fn take_dirty(&self) -> Option<Arc<Snapshot>> {
        let mut g = self.lock();
        let (_, group) = g.iter_mut().find(|(_, v)| v.dirty)?;
        group.dirty = false;
        Some(group.latest.clone())
    }

    fn url(&self, source: &str) -> reqwest::Url {
        let mut u = self.cfg.url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}{}", group_path(source, &self.cfg.relay)));
        u
    }

    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut offline_since: Option<std::time::Instant> = None;
        loop {
            let Some(snap) = self.take_dirty() else {
                if cancel.is_cancelled() {
                    return;
                }
                tokio::select! {
                    _ = self.changed.notified() => {}
                    _ = cancel.cancelled() => {}
                }
                continue;
            };
            let mut backoff = super::backoff(self.cfg.min_backoff, self.cfg.max_backoff).build();
            let mut snap = snap;
            loop {
                match self.push(&snap).await {
                    Ok(n) => {
                        self.metrics.sent(&self.cfg.name, n, now_seconds());
                        if let Some(t) = offline_since.take() {
                            tracing::info!(sink = %self.cfg.name, "back online after {}", human(t.elapsed()));
                        }
                        break;
                    }
                    Err(SendError::Rejected { status, body }) => {
                        let n = count(&snap);
                        self.metrics.dropped(&self.cfg.name, "rejected", n);
                        tracing::warn!(
                            sink = %self.cfg.name,
                            group = %snap.source,
                            "pushgateway refused {n} samples with HTTP {status}; dropped them: {body}"
                        );
                        break;
                    }
                    Err(e) => {
                        self.metrics.retried(&self.cfg.name);
                        if offline_since.is_none() {
                            offline_since = Some(std::time::Instant::now());
                            tracing::warn!(
                                sink = %self.cfg.name,
                                url = %redact_url(&self.cfg.url),
                                "offline: {e}; retrying with backoff, keeping only the latest state"
                            );
                        }
                        let wait = e
                            .retry_after()
                            .or_else(|| backoff.next())
                            .unwrap_or(self.cfg.max_backoff);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            // At shutdown, one more try and then give up (the caller's deadline).
                            _ = cancel.cancelled(), if !cancel.is_cancelled() => {}
                        }
                        // Coalesce: if a newer snapshot of this group arrived, send that instead.
                        let mut g = self.lock();
                        if let Some(group) = g.get_mut(&snap.source) {
                            if group.dirty {
                                group.dirty = false;
                                snap = group.latest.clone();
                            }
                        }
                    }
                }
            }
        }
    }

    /// PUTs one group; returns the samples sent.
    async fn push(&self, snap: &Snapshot) -> Result<u64, SendError> {
        let body = crate::expfmt::to_text_escaped(&snap.families, false);
        let req = self
            .client
            .put(self.url(&snap.source))
            .header(CONTENT_TYPE, TEXT_CONTENT_TYPE)
            .body(body);
        send_classified(client::authorize(req, &self.cfg.http)).await?;
        Ok(count(snap))
    }

    /// Pushes every unsent group once more, retrying until `deadline`; for `once`.
    pub async fn flush(&self, deadline: Duration) -> Result<u64, String> {
        let work = async {
            let mut sent = 0;
            while let Some(snap) = self.take_dirty() {
                let mut backoff =
                    super::backoff(self.cfg.min_backoff, self.cfg.max_backoff).build();
                loop {
                    match self.push(&snap).await {
                        Ok(n) => {
                            self.metrics.sent(&self.cfg.name, n, now_seconds());
                            sent += n;
                            break;
                        }
                        Err(SendError::Rejected { status, body }) => {
                            self.metrics
                                .dropped(&self.cfg.name, "rejected", count(&snap));
                            return Err(format!(
                                "group {} refused with HTTP {status}: {body}",
                                snap.source
                            ));
                        }
                        Err(e) => {
                            self.metrics.retried(&self.cfg.name);
                            tracing::debug!(sink = %self.cfg.name, "push failed, retrying: {e}");
                            tokio::time::sleep(
                                e.retry_after()
                                    .or_else(|| backoff.next())
                                    .unwrap_or_default(),
                            )
                            .await;
                        }
                    }
                }
            }
            Ok(sent)
        };
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| Err(format!("could not push within {}", human(deadline))))
    }

    /// On a clean exit with `delete_on_shutdown`, deletes every group this relay pushed.
    pub async fn delete_groups_if_configured(&self) {
        if !self.cfg.delete_on_shutdown {
            return;
        }
        let sources: Vec<String> = self.lock().keys().cloned().collect();
        for s in sources {
            let req = client::authorize(self.client.delete(self.url(&s)), &self.cfg.http);
            match send_classified(req).await {
                Ok(()) => tracing::info!(sink = %self.cfg.name, group = %s, "deleted group"),
                Err(e) => {
                    tracing::warn!(sink = %self.cfg.name, group = %s, "could not delete group: {e}")
                }
            }
        }
    }
}

/// Samples a push carries (stale markers are not pushed).
fn count(snap: &Snapshot) -> u64 {
    snap.families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| !is_stale_nan(s.value))
        .count() as u64
}
