//! The remote-write 1.0 sink: batches samples per series, queues encoded batches, and sends
//! them oldest first with rate limits, retries and backoff.
//!
//! One task per sink, running three futures that share the sink's state: the batcher seals
//! the pending batch when it is full or `batch_wait` old; the sender delivers the queue's
//! front batch, retrying 5xx/429/network errors forever (with backoff, honouring
//! `Retry-After`) and dropping batches a receiver refuses with another 4xx; the fsync timer
//! makes appended batches durable on the configured interval.

pub mod config;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::{BufferConfig, RateLimit, RemoteWriteConfig};

use super::send::{retrying, send_classified, Backoff, SendError, Undeliverable};
use super::{human, Sink, SinkConfig, SinkContext};
use crate::buffer::{DiskQueue, DiskQueueOptions, Fsync, MemoryQueue, Queue};
use crate::clock::WallClock;
use crate::config::redact_url;
use crate::http::client;
use crate::model::{stale_nan, Snapshot};
use crate::self_metrics::SelfMetrics;
use crate::wire::remote_write::{self as rw, BatchBuilder, EncodedBatch};
use crate::BoxFuture;

impl SinkConfig for RemoteWriteConfig {
    /// The queue lives durably in `<state_dir>/<sink name>/`, or in memory without a
    /// `state_dir` (one-shot commands).
    fn build(&self, ctx: &SinkContext) -> anyhow::Result<Arc<dyn Sink>> {
        let dir = ctx.state_dir.as_ref().map(|d| d.join(&self.name));
        Ok(Arc::new(RemoteWriteSink::new(
            self.clone(),
            ctx,
            dir.as_deref(),
        )?))
    }
}

/// How often a family's metadata is sent again (receivers keep it in memory only).
const METADATA_REFRESH: Duration = Duration::from_secs(600);

pub struct RemoteWriteSink {
    cfg: RemoteWriteConfig,
    client: reqwest::Client,
    metrics: Arc<SelfMetrics>,
    clock: WallClock,
    state: Mutex<State>,
    /// Wakes the batcher when a batch starts filling.
    batch_started: Notify,
    /// Wakes the sender when the queue gains a batch or the batcher closes.
    queued: Notify,
    /// Wakes the fsync timer when a batch was appended (so an idle relay never wakes for it).
    appended: Notify,
    /// Set by the batcher once it sealed its last batch at shutdown.
    closed: AtomicBool,
    requests: Option<DefaultDirectRateLimiter>,
    samples: Option<DefaultDirectRateLimiter>,
}

/// What submit, batcher and sender share.
struct State {
    pending: BatchBuilder,
    /// When the pending batch got its first sample.
    pending_since: Option<Instant>,
    queue: Box<dyn Queue>,
    /// When each family's metadata was last put in a batch.
    metadata_sent: HashMap<String, Instant>,
}

impl RemoteWriteSink {
    /// A sink whose queue lives in `queue_dir` (durable), or in memory when `None` (`once`).
    pub fn new(
        cfg: RemoteWriteConfig,
        ctx: &SinkContext,
        queue_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let queue: Box<dyn Queue> = match queue_dir {
            Some(dir) => Box::new(DiskQueue::open(
                dir,
                DiskQueueOptions {
                    max_bytes: cfg.buffer.max_bytes,
                    max_samples: cfg.max_queued_samples,
                    // A few MiB, and at most an eighth of the bound so it is honoured closely.
                    segment_bytes: (cfg.buffer.max_bytes / 8).clamp(64 << 10, 4 << 20),
                    fsync: cfg.buffer.fsync,
                },
            )?),
            None => Box::new(MemoryQueue::new(cfg.max_queued_samples)),
        };
        let requests = cfg.rate_limit.requests_per_second.and_then(|rps| {
            Quota::with_period(Duration::from_secs_f64(1.0 / rps)).map(RateLimiter::direct)
        });
        let samples = cfg.rate_limit.samples_per_second.map(|sps| {
            let burst = sps.max(cfg.max_samples_per_send.min(u32::MAX as usize) as u32);
            // Both are at least 1: validated in config.
            RateLimiter::direct(
                Quota::per_second(NonZeroU32::new(sps).expect("sps > 0"))
                    .allow_burst(NonZeroU32::new(burst).expect("burst > 0")),
            )
        });
        Ok(RemoteWriteSink {
            client: client::build(&cfg.http)?,
            state: Mutex::new(State {
                pending: BatchBuilder::new(),
                pending_since: None,
                queue,
                metadata_sent: HashMap::new(),
            }),
            cfg,
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            batch_started: Notify::new(),
            queued: Notify::new(),
            appended: Notify::new(),
            closed: AtomicBool::new(false),
            requests,
            samples,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning means a panic elsewhere; the queue itself is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`Sink::submit`].
    fn add(&self, snap: &Snapshot) {
        let mut st = self.lock();
        let now = Instant::now();
        for fam in &snap.families {
            if fam.samples.is_empty() {
                continue;
            }
            let due = st
                .metadata_sent
                .get(&fam.name)
                .is_none_or(|t| now.duration_since(*t) >= METADATA_REFRESH);
            if due {
                st.metadata_sent.insert(fam.name.clone(), now);
                st.pending.add_metadata(fam);
            }
            for s in &fam.samples {
                let ts = s.timestamp_ms.unwrap_or(snap.timestamp_ms);
                st.pending.add(&s.name, &s.labels, ts, s.value);
                if st.pending.len() >= self.cfg.max_samples_per_send {
                    self.seal(&mut st);
                }
            }
        }
        for (name, labels) in &snap.stale {
            st.pending.add(name, labels, snap.timestamp_ms, stale_nan());
            if st.pending.len() >= self.cfg.max_samples_per_send {
                self.seal(&mut st);
            }
        }
        if !st.pending.is_empty() && st.pending_since.is_none() {
            st.pending_since = Some(now);
            self.batch_started.notify_one();
        }
    }

    /// Encodes the pending batch and appends it to the queue.
    fn seal(&self, st: &mut State) {
        st.pending_since = None;
        if st.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut st.pending).finish();
        let dropped = st.queue.push(batch);
        if dropped > 0 {
            let reason = st.queue.full_reason();
            self.metrics.dropped(&self.cfg.name, reason, dropped as u64);
            tracing::warn!(sink = %self.cfg.name, "queue full: dropped the oldest {dropped} samples");
        }
        self.publish(st);
        self.queued.notify_one();
        self.appended.notify_one();
    }

    /// Updates the queue's self-metrics.
    fn publish(&self, st: &mut State) {
        let q = &mut st.queue;
        self.metrics
            .queue_state(&self.cfg.name, q.samples() as u64, q.bytes(), q.oldest_ms());
        let c = q.take_corruptions();
        if c > 0 {
            self.metrics.corruptions(&self.cfg.name, c);
        }
    }

    /// The oldest queued batch, after dropping what is older than `buffer.max_age`.
    fn next_batch(&self) -> Option<(u64, EncodedBatch)> {
        let mut st = self.lock();
        let old = st.queue.drop_older_than(self.max_age_cutoff());
        if old > 0 {
            self.metrics.dropped(&self.cfg.name, "too_old", old as u64);
            tracing::warn!(
                sink = %self.cfg.name,
                "dropped {old} queued samples older than max_age ({}): receivers refuse them",
                human(self.cfg.buffer.max_age)
            );
        }
        let front = st.queue.front();
        self.publish(&mut st);
        front
    }

    /// Runs batcher and sender until `cancel`; then seals what is pending and keeps sending
    /// until the queue is empty (the caller bounds how long).
    async fn run_tasks(self: Arc<Self>, cancel: CancellationToken) {
        let batcher = async {
            loop {
                let since = self.lock().pending_since;
                match since {
                    Some(t) => tokio::select! {
                        _ = tokio::time::sleep_until(t + self.cfg.batch_wait) => {
                            let mut st = self.lock();
                            if st.pending_since == Some(t) {
                                self.seal(&mut st);
                            }
                        }
                        _ = cancel.cancelled() => break,
                    },
                    None => tokio::select! {
                        _ = self.batch_started.notified() => {}
                        _ = cancel.cancelled() => break,
                    },
                }
            }
            self.seal(&mut self.lock());
            self.closed.store(true, Ordering::SeqCst);
            self.queued.notify_one();
        };
        // Appended batches reach the disk at most one `fsync` interval after the append. The
        // timer sleeps until something is appended, so an idle relay does not wake for it.
        let syncer = async {
            let Fsync::Every(every) = self.cfg.buffer.fsync else {
                return; // "always": the queue syncs on every append.
            };
            loop {
                tokio::select! {
                    _ = self.appended.notified() => {}
                    _ = cancel.cancelled() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => self.lock().queue.sync(false),
                    _ = cancel.cancelled() => return,
                }
            }
        };
        tokio::join!(batcher, self.send_loop(&cancel), syncer);
        self.lock().queue.sync(true);
    }

    /// The oldest sample timestamp a batch may hold and still be sent.
    fn max_age_cutoff(&self) -> i64 {
        self.clock.now_ms() - self.cfg.buffer.max_age.as_millis() as i64
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            min: self.cfg.min_backoff,
            max: self.cfg.max_backoff,
        }
    }

    async fn send_loop(&self, cancel: &CancellationToken) {
        let mut outage: Option<Outage> = None;
        loop {
            if self.send_front(cancel, &mut outage).await.is_some() {
                continue;
            }
            if let Some(o) = outage.take().filter(|o| o.back_at.is_some()) {
                tracing::info!(
                    sink = %self.cfg.name,
                    "back online after {}; sent {} samples queued during the outage",
                    human(o.back_at.unwrap_or(o.since) - o.since),
                    o.sent_since_back
                );
            }
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            self.queued.notified().await;
        }
    }

    /// Sends the queue's front batch until it is delivered or refused for good, counts the
    /// outcome and removes it from the queue; `None` when the queue is empty.
    async fn send_front(
        &self,
        cancel: &CancellationToken,
        outage: &mut Option<Outage>,
    ) -> Option<(usize, Result<(), Undeliverable>)> {
        let (id, batch) = self.next_batch()?;
        self.rate_limit(batch.samples).await;
        let result = self.deliver(&batch, cancel, outage).await;
        self.account(&batch, &result);
        if let Some(o) = outage.as_mut() {
            if o.back_at.is_none() {
                o.back_at = Some(Instant::now());
            }
            o.sent_since_back += batch.samples as u64;
        }
        let mut st = self.lock();
        st.queue.commit(id);
        self.publish(&mut st);
        Some((batch.samples, result))
    }

    /// Counts a finished send; a refused batch gets its one log line here.
    fn account(&self, batch: &EncodedBatch, result: &Result<(), Undeliverable>) {
        match result {
            Ok(()) => self.metrics.sent(
                &self.cfg.name,
                batch.samples as u64,
                self.clock.now_seconds(),
            ),
            Err(Undeliverable::Rejected { status, body }) => {
                self.metrics
                    .dropped(&self.cfg.name, "rejected", batch.samples as u64);
                tracing::warn!(
                    sink = %self.cfg.name,
                    "receiver refused a batch of {} samples with HTTP {status}; dropped it: {body}",
                    batch.samples
                );
            }
            Err(Undeliverable::Expired) => {
                self.metrics
                    .dropped(&self.cfg.name, "too_old", batch.samples as u64);
                tracing::warn!(
                    sink = %self.cfg.name,
                    "dropped a batch of {} samples that got older than max_age ({}) while waiting: receivers refuse them",
                    batch.samples,
                    human(self.cfg.buffer.max_age)
                );
            }
        }
    }

    /// Waits for the rate limiters to allow one request of `samples` samples.
    async fn rate_limit(&self, samples: usize) {
        if let Some(r) = &self.requests {
            r.until_ready().await;
        }
        if let (Some(l), Some(n)) = (&self.samples, NonZeroU32::new(samples as u32)) {
            // A batch larger than the burst cannot ever fit; send it without waiting.
            let _ = l.until_n_ready(n).await;
        }
    }

    /// Sends one batch, retrying retryable failures forever (see [`retrying`]); the first
    /// retry of an outage logs the one `offline` line.
    async fn deliver(
        &self,
        batch: &EncodedBatch,
        cancel: &CancellationToken,
        outage: &mut Option<Outage>,
    ) -> Result<(), Undeliverable> {
        let name = &self.cfg.name;
        retrying(
            self.backoff(),
            cancel,
            || self.send_once(batch),
            |e| {
                self.metrics.retried(name);
                if outage.as_ref().is_none_or(|o| o.back_at.is_some()) {
                    let queued = self.lock().queue.samples();
                    tracing::warn!(
                        sink = %name,
                        url = %redact_url(&self.cfg.url),
                        "offline: {e}; retrying with backoff, {queued} samples queued"
                    );
                    *outage = Some(Outage {
                        since: Instant::now(),
                        back_at: None,
                        sent_since_back: 0,
                    });
                }
            },
        )
        .await
    }

    async fn send_once(&self, batch: &EncodedBatch) -> Result<(), SendError> {
        // Checked on every attempt: a batch can age past max_age while an outage is retried.
        if batch.oldest_ms < self.max_age_cutoff() {
            return Err(Undeliverable::Expired.into());
        }
        let req = self
            .client
            .post(self.cfg.url.clone())
            .header(CONTENT_ENCODING, rw::CONTENT_ENCODING)
            .header(CONTENT_TYPE, rw::CONTENT_TYPE)
            .header(rw::VERSION_HEADER, rw::VERSION)
            .body(batch.body.clone());
        send_classified(client::authorize(req, &self.cfg.http)).await
    }

    /// Seals the pending batch and sends the whole queue, retrying until `deadline`.
    async fn flush_queue(&self, deadline: Duration) -> Result<u64, String> {
        self.seal(&mut self.lock());
        let mut sent = 0u64;
        let mut outage = None;
        let never = CancellationToken::new();
        let work = async {
            while let Some((samples, r)) = self.send_front(&never, &mut outage).await {
                match r {
                    Ok(()) => sent += samples as u64,
                    Err(e) => return Err(format!("receiver refused {samples} samples: {e}")),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(Ok(())) => Ok(sent),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "could not deliver within {} ({} samples still queued)",
                human(deadline),
                self.lock().queue.samples()
            )),
        }
    }
}

impl Sink for RemoteWriteSink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Adds a snapshot's samples (and stale markers) to the pending batch, sealing it each
    /// time it reaches `max_samples_per_send`.
    fn submit(&self, snap: Arc<Snapshot>) {
        self.add(&snap);
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(self.run_tasks(cancel))
    }

    fn flush(&self, deadline: Duration) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(self.flush_queue(deadline))
    }

    fn protocol(&self) -> String {
        "remote-write 1.0, snappy".into()
    }
}

/// The sender's view of an outage, for its two log lines.
struct Outage {
    since: Instant,
    /// When the first send succeeded again.
    back_at: Option<Instant>,
    sent_since_back: u64,
}
