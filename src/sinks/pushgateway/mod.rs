//! The Pushgateway sink: keeps only the latest snapshot per source and PUTs it as that
//! source's group, `/metrics/job/<source>/relay/<relay>`. History is never queued: the
//! Pushgateway holds one state per group, so an old snapshot has no value once a newer exists.

pub mod config;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::PushgatewayConfig;

use super::health::{DropLog, OutageLog};
use super::send::{retrying, send_classified, Backoff, Failure, SendError, Undeliverable};
use super::{human, Sink, SinkConfig, SinkContext};
use crate::clock::WallClock;
use crate::config::redact_url;
use crate::http::client;
use crate::model::{is_stale_nan, Snapshot};
use crate::self_metrics::SelfMetrics;
use crate::wire::pushgateway::group_path;
use crate::BoxFuture;

/// The text format version the Pushgateway expects.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl SinkConfig for PushgatewayConfig {
    fn build(&self, ctx: &SinkContext) -> anyhow::Result<Arc<dyn Sink>> {
        Ok(Arc::new(PushgatewaySink::new(self.clone(), ctx)?))
    }
}

pub struct PushgatewaySink {
    cfg: PushgatewayConfig,
    client: reqwest::Client,
    metrics: Arc<SelfMetrics>,
    clock: WallClock,
    /// Where it reports going offline and coming back (the status page, readiness).
    status: std::sync::Arc<crate::status::Status>,
    /// The latest snapshot of each group and whether it still has to be pushed.
    groups: Mutex<BTreeMap<String, Group>>,
    changed: Notify,
    /// Refused pushes, for the log.
    drops: DropLog,
}

struct Group {
    latest: Arc<Snapshot>,
    dirty: bool,
}

impl PushgatewaySink {
    pub fn new(cfg: PushgatewayConfig, ctx: &SinkContext) -> anyhow::Result<Self> {
        Ok(PushgatewaySink {
            client: client::build(&cfg.http)?,
            drops: DropLog::new(&cfg.name),
            cfg,
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            status: ctx.status.clone(),
            groups: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            min: self.cfg.min_backoff,
            max: self.cfg.max_backoff,
        }
    }

    /// The next group with an unsent snapshot, marked as taken.
    fn take_dirty(&self) -> Option<Arc<Snapshot>> {
        let mut g = self.lock();
        let (_, group) = g.iter_mut().find(|(_, v)| v.dirty)?;
        group.dirty = false;
        Some(group.latest.clone())
    }

    /// A newer unsent snapshot of `source`'s group, if one arrived, marked as taken.
    fn take_newer(&self, source: &str) -> Option<Arc<Snapshot>> {
        let mut g = self.lock();
        let group = g.get_mut(source).filter(|g| g.dirty)?;
        group.dirty = false;
        Some(group.latest.clone())
    }

    fn url(&self, source: &str) -> reqwest::Url {
        let mut u = self.cfg.url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}{}", group_path(source, &self.cfg.relay)));
        u
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

    /// Pushes `snap`'s group until it is delivered or refused, retrying with backoff. Between
    /// attempts a newer snapshot of the same group replaces it (coalescing: only the latest
    /// state matters). Returns the snapshot that was finally pushed or refused.
    async fn deliver(
        &self,
        snap: Arc<Snapshot>,
        cancel: &CancellationToken,
        on_retry: impl FnMut(&SendError),
    ) -> (Arc<Snapshot>, Result<u64, Undeliverable>) {
        let current = Mutex::new(snap);
        let source = current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .source
            .clone();
        let attempt = || async {
            let snap = {
                let mut cur = current.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(newer) = self.take_newer(&source) {
                    *cur = newer;
                }
                cur.clone()
            };
            self.push(&snap).await
        };
        let r = retrying(self.backoff(), cancel, attempt, on_retry).await;
        let snap = current.into_inner().unwrap_or_else(|p| p.into_inner());
        match &r {
            Ok(n) => self
                .metrics
                .sent(&self.cfg.name, *n, self.clock.now_seconds()),
            Err(_) => {
                self.metrics
                    .send_failed(&self.cfg.name, Failure::Rejected.as_str());
                self.metrics
                    .dropped(&self.cfg.name, "rejected", count(&snap));
            }
        }
        (snap, r)
    }

    async fn run_loop(self: Arc<Self>, cancel: CancellationToken) {
        tokio::join!(self.push_loop(&cancel), self.drops.summarise(&cancel));
        self.drops.tick(true);
    }

    /// Pushes every group with a newer snapshot, one line per state change (offline, back
    /// online) and refusals summarised by [`DropLog`].
    async fn push_loop(&self, cancel: &CancellationToken) {
        let mut health = OutageLog::new(&self.cfg.name, redact_url(&self.cfg.url))
            .reporting_to(self.status.clone(), self.clock.clone());
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
            let (snap, result) = self
                .deliver(snap, cancel, |e| {
                    self.metrics.retried(&self.cfg.name);
                    self.metrics.send_failed(&self.cfg.name, e.kind().as_str());
                    health.failed(e, || "keeping only the latest state".into());
                })
                .await;
            match result {
                Ok(n) => health.delivered(n, None),
                Err(Undeliverable::Rejected { status, body }) => {
                    self.drops.record("rejected", count(&snap), || {
                        format!(
                            "the Pushgateway refused group {} with HTTP {status}; dropped that push: {body}",
                            snap.source
                        )
                    });
                }
                // Only the remote-write queue ages data; a Pushgateway push is always current.
                Err(Undeliverable::Expired) => {}
            }
        }
    }

    async fn flush_all(&self, deadline: Duration) -> Result<u64, String> {
        let never = CancellationToken::new();
        let work = async {
            let mut sent = 0;
            while let Some(snap) = self.take_dirty() {
                let (snap, r) = self
                    .deliver(snap, &never, |e| {
                        self.metrics.retried(&self.cfg.name);
                        tracing::debug!(sink = %self.cfg.name, "push failed, retrying: {e}");
                    })
                    .await;
                match r {
                    Ok(n) => sent += n,
                    Err(e) => return Err(format!("group {} refused with {e}", snap.source)),
                }
            }
            Ok(sent)
        };
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| Err(format!("could not push within {}", human(deadline))))
    }

    /// On a clean exit with `delete_on_shutdown`, deletes every group this relay pushed.
    async fn delete_groups_if_configured(&self) {
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

impl Sink for PushgatewaySink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Replaces the group's latest snapshot (an unsent older one is simply superseded).
    fn submit(&self, snap: Arc<Snapshot>) {
        self.lock().insert(
            snap.source.clone(),
            Group {
                latest: snap,
                dirty: true,
            },
        );
        self.changed.notify_one();
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(self.run_loop(cancel))
    }

    fn flush(&self, deadline: Duration) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(self.flush_all(deadline))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.delete_groups_if_configured())
    }

    fn protocol(&self) -> String {
        "Pushgateway, text 0.0.4".into()
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
