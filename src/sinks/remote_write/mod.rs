//! The remote-write sink: batches samples per series, queues encoded batches (1.0 + snappy, the
//! neutral form), and sends them oldest first with rate limits, retries and backoff, each in
//! the form the receiver takes (2.0, or 1.0 with zstd: [`negotiate`]).
//!
//! A sample enters a batch only if it is younger than `buffer.max_age` and newer than the
//! last sample queued for its series ([`series`]); a queued batch that aged past `max_age`
//! during an outage loses only its samples that are too old.
//!
//! Every submitted snapshot is encoded and queued at once (durable within one fsync interval),
//! in batches of at most `max_samples_per_send`. The sender waits until the oldest queued
//! sample is `batch_wait` old (or a request's worth is queued, or the sink is closing), then
//! merges the batches at the queue's front into one request of at most `max_samples_per_send`
//! samples, so each label set crosses the wire once per request however many polls or how
//! long a backlog it spans.
//!
//! One task per sink, running four futures that share the sink's state: the closer seals
//! what is pending at shutdown; the sender delivers the merged front of the queue, retrying
//! network errors, 5xx, 429, 401/403, 3xx and HTML pages forever (with backoff, honouring
//! `Retry-After`) and dropping batches a receiver refuses with another 4xx; the fsync timer
//! makes appended batches durable on the configured interval; the drop summary logs what was
//! given up on at most once a minute ([`super::health`]).

pub mod config;
mod negotiate;
mod series;
pub mod usage;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::{BufferConfig, Choice, Compression, Protocol, RateLimit, RemoteWriteConfig};
use negotiate::{Judged, Negotiator};

use super::health::{DropLog, OutageLog};
use super::send::{
    header_bytes, retrying, send_inspected, Backoff, Failure, SendError, Undeliverable,
};
use super::{human, Sink, SinkConfig, SinkContext};
use crate::buffer::{DiskQueue, DiskQueueOptions, Fsync, MemoryQueue, Queue};
use crate::clock::WallClock;
use crate::config::redact_url;
use crate::http::client;
use crate::model::{stale_nan, MetricType, Snapshot};
use crate::self_metrics::SelfMetrics;
use crate::wire::form::{convert, split_probe, Effort, V2_WRITTEN_HEADERS};
use crate::wire::remote_write::{merge_split, BatchBuilder, Body, Request};
use crate::BoxFuture;

/// Work on at least this many samples (a request of about 100 KB of protobuf or more) runs on
/// a blocking thread, see [`off_thread`]. Counted in samples, not in compressed bytes: a merged
/// backlog request compresses to a few bytes per sample but costs its protobuf's size.
const OFF_THREAD_MIN_SAMPLES: usize = 1000;

/// Runs `work` (merging or converting queued bodies of `samples` samples) on tokio's blocking
/// pool when it is large, inline otherwise. The requests of a round then convert in parallel, on
/// more than one core where there is one, while the runtime's one thread keeps serving the
/// network and the sources; a small site never starts a second thread.
async fn off_thread<T: Send + 'static>(
    samples: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if samples < OFF_THREAD_MIN_SAMPLES {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(t) => t,
        // A panic in `work` is a bug: it surfaces here, as it would have inline.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down and drops this future with it.
        Err(_) => std::future::pending().await,
    }
}

impl RemoteWriteConfig {
    /// The sink's directory under `state_dir`: its queue, negotiated form and usage record.
    pub fn dir(&self, state_dir: &std::path::Path) -> std::path::PathBuf {
        state_dir.join(&self.name)
    }
}

impl SinkConfig for RemoteWriteConfig {
    /// The queue lives durably in `<state_dir>/<sink name>/`, or in memory without a
    /// `state_dir` (one-shot commands).
    fn build(&self, ctx: &SinkContext) -> anyhow::Result<Arc<dyn Sink>> {
        let dir = ctx.state_dir.as_deref().map(|d| self.dir(d));
        Ok(Arc::new(RemoteWriteSink::new(
            self.clone(),
            ctx,
            dir.as_deref(),
        )?))
    }
}

/// How often a family's metadata is sent again (receivers keep it in memory only).
const METADATA_REFRESH: Duration = Duration::from_secs(600);

/// How often series older than `max_age` are forgotten by the per-series memory.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// How many of the newest queued batches a starting sink reads to learn the last timestamp
/// queued per series (a scrape of up to about 130,000 series at the default batch size).
const LEARN_BATCHES: usize = 64;

pub struct RemoteWriteSink {
    cfg: RemoteWriteConfig,
    client: reqwest::Client,
    metrics: Arc<SelfMetrics>,
    clock: WallClock,
    /// Where it reports going offline and coming back (the status page, readiness).
    status: std::sync::Arc<crate::status::Status>,
    state: Mutex<State>,
    /// Which protocol and compression the receiver takes.
    wire: Mutex<Negotiator>,
    /// Wakes the sender when the queue gains a batch or the sink closes.
    queued: Notify,
    /// Wakes the fsync timer when a batch was appended or the queue's cursor waits to be
    /// written (so an idle relay never wakes for it).
    appended: Notify,
    /// Set once the last batch was sealed at shutdown (the sender then stops holding back).
    closed: AtomicBool,
    /// The last round sent was part of a backlog (see [`Self::send_front`]).
    draining: AtomicBool,
    requests: Option<DefaultDirectRateLimiter>,
    samples: Option<DefaultDirectRateLimiter>,
    /// Samples given up on, for the log.
    drops: DropLog,
    /// Bytes on the wire over a recent window, for `check`'s data-plan estimate.
    usage: Mutex<usage::UsageFile>,
}

/// What submit, the closer and the sender share.
struct State {
    /// The batch `submit` is filling; sealed (encoded and queued) before `submit` returns.
    pending: BatchBuilder,
    queue: Box<dyn Queue>,
    /// When each family's metadata was last put in a batch.
    metadata_sent: HashMap<crate::model::SeriesName, Instant>,
    /// The last timestamp queued per series.
    last_sent: series::LastSent,
    last_forget: Instant,
    /// With `send_unchanged_every`: the value (bits) and timestamp last queued per gauge or
    /// counter series, by series hash.
    unchanged: HashMap<u64, (u64, i64), series::SeriesMapHasher>,
}

impl RemoteWriteSink {
    /// A sink whose queue lives in `queue_dir` (durable), or in memory when `None` (`once`).
    pub fn new(
        cfg: RemoteWriteConfig,
        ctx: &SinkContext,
        queue_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut queue: Box<dyn Queue> = match queue_dir {
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
        let mut last_sent = series::LastSent::default();
        queue.newest(LEARN_BATCHES, &mut |b| last_sent.learn(b));
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
        let wire = Negotiator::new(
            &cfg.name,
            cfg.protocol,
            cfg.compression,
            queue_dir.map(|d| d.join("negotiated.json")),
        );
        Ok(RemoteWriteSink {
            wire: Mutex::new(wire),
            // Receivers answer with small bodies: `accept-encoding: gzip` would only cost bytes.
            client: client::builder(&cfg.http)?.no_gzip().build()?,
            state: Mutex::new(State {
                pending: BatchBuilder::new(),
                queue,
                metadata_sent: HashMap::new(),
                last_sent,
                last_forget: Instant::now(),
                unchanged: HashMap::default(),
            }),
            drops: DropLog::new(&cfg.name),
            usage: Mutex::new(usage::UsageFile::open(queue_dir)),
            cfg,
            metrics: ctx.metrics.clone(),
            clock: ctx.clock.clone(),
            status: ctx.status.clone(),
            queued: Notify::new(),
            appended: Notify::new(),
            closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            requests,
            samples,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning means a panic elsewhere; the queue itself is still consistent.
        lock(&self.state)
    }

    /// See [`Sink::submit`].
    fn add(&self, snap: &Snapshot) {
        // Remote-write 2.0 is stateless, each series carrying its family's metadata: while the
        // sink sends 2.0, every batch holds at least the type of each family it has samples of
        // (the whole metadata, HELP included, with the first sample and every 10 minutes).
        let every_batch = self.lock_wire().form(self.clock.now_ms()).protocol == Protocol::V2;
        let mut st = self.lock();
        let now = Instant::now();
        let cutoff = self.max_age_cutoff();
        if now.duration_since(st.last_forget) >= FORGET_EVERY {
            st.last_forget = now;
            st.last_sent.forget_older_than(cutoff);
            if let Some(every) = self.cfg.send_unchanged_every {
                let keep_from = self.clock.now_ms() - 2 * every.as_millis() as i64;
                st.unchanged.retain(|_, (_, at)| *at >= keep_from);
            }
        }
        let hold_unchanged = self.cfg.send_unchanged_every.map(|d| d.as_millis() as i64);
        let mut refused = Refused::default();
        for fam in &snap.families {
            // Metadata goes with the first sample admitted, so no batch holds metadata alone.
            let mut metadata_due = st
                .metadata_sent
                .get(&fam.name)
                .is_none_or(|t| now.duration_since(*t) >= METADATA_REFRESH);
            let mut lacks = every_batch && !st.pending.has_metadata(&fam.name);
            let flat_ok = matches!(fam.kind, MetricType::Gauge | MetricType::Counter);
            for s in &fam.samples {
                let ts = s.timestamp_ms.unwrap_or(snap.timestamp_ms);
                // An unchanged gauge or counter sample waits until the last one sent is
                // `send_unchanged_every` old (never a first sample: it has no entry).
                let flat = match hold_unchanged {
                    Some(every) if flat_ok => {
                        let h = series::series_hash(&s.name, &s.labels);
                        let bits = s.value.to_bits();
                        if let Some(&(b, at)) = st.unchanged.get(&h) {
                            if b == bits && ts >= at && ts - at < every {
                                continue;
                            }
                        }
                        Some((h, bits))
                    }
                    _ => None,
                };
                if let Err(r) = st.last_sent.admit(&s.name, &s.labels, ts, cutoff) {
                    refused.count(r);
                    continue;
                }
                if let Some((h, bits)) = flat {
                    if st.unchanged.len() >= series::MAX_SERIES {
                        st.unchanged.clear();
                    }
                    st.unchanged.insert(h, (bits, ts));
                }
                if std::mem::take(&mut metadata_due) {
                    st.metadata_sent.insert(fam.name.clone(), now);
                    st.pending.add_metadata(fam);
                }
                if std::mem::take(&mut lacks) {
                    // Between refreshes a 2.0 batch carries the type alone: HELP texts are most
                    // of a small poll's bytes, and receivers keep the last ones they got.
                    st.pending.add_type(fam);
                }
                st.pending.add_shared(&s.name, &s.labels, ts, s.value);
                if st.pending.len() >= self.cfg.max_samples_per_send {
                    self.seal(&mut st);
                    lacks = every_batch;
                }
            }
        }
        for (name, labels) in &snap.stale {
            if hold_unchanged.is_some() {
                // Stale markers are never held back; a series that comes back starts afresh.
                st.unchanged.remove(&series::series_hash(name, labels));
            }
            if let Err(r) = st.last_sent.admit(name, labels, snap.timestamp_ms, cutoff) {
                refused.count(r);
                continue;
            }
            st.pending
                .add_shared(name, labels, snap.timestamp_ms, stale_nan());
            if st.pending.len() >= self.cfg.max_samples_per_send {
                self.seal(&mut st);
            }
        }
        self.seal(&mut st);
        drop(st);
        self.drop_samples(series::Refusal::TooOld.reason(), refused.too_old, || {
            self.too_old_detail()
        });
        self.drop_samples(
            series::Refusal::OutOfOrder.reason(),
            refused.out_of_order,
            || {
                "not newer than the last sample queued for their series (did the clock go back?): receivers refuse them".into()
            },
        );
    }

    fn too_old_detail(&self) -> String {
        format!(
            "older than max_age ({}): receivers refuse them",
            human(self.cfg.buffer.max_age)
        )
    }

    /// Counts samples given up on and tells the log (see [`DropLog`]).
    fn drop_samples(&self, reason: &'static str, samples: u64, detail: impl FnOnce() -> String) {
        if samples > 0 {
            self.metrics.dropped(&self.cfg.name, reason, samples);
            self.drops.record(reason, samples, detail);
        }
    }

    /// Encodes the pending batch and appends it to the queue.
    fn seal(&self, st: &mut State) {
        if st.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut st.pending).finish();
        let dropped = st.queue.push(batch);
        self.drop_samples(st.queue.full_reason(), dropped as u64, || {
            "the queue is full (buffer.max_bytes or max_queued_samples): dropped the oldest batches"
                .into()
        });
        self.publish(st);
        self.queued.notify_one();
        self.appended.notify_one();
    }

    /// Updates the queue's self-metrics.
    fn publish(&self, st: &mut State) {
        let q = &mut st.queue;
        self.metrics
            .queue_state(&self.cfg.name, q.samples() as u64, q.bytes(), q.oldest_ms());
        self.metrics.buffer_on_disk(&self.cfg.name, q.on_disk());
        let c = q.take_corruptions();
        if c > 0 {
            self.metrics.corruptions(&self.cfg.name, c);
        }
    }

    /// The next requests to send at once: the oldest queued batch (or, `skip > 0`, the one
    /// `skip` places behind it) merged with those after it while the total stays within
    /// `max_samples_per_send` × `max_shards`, split by series into requests of about
    /// `max_samples_per_send` (see [`merge_split`]), and the ids of the batches they hold
    /// (oldest first). A batch that cannot be read or merged ends the merge (the first goes
    /// alone); behind the front, one that cannot be read is left for `front` (`None`).
    async fn next_requests(&self, skip: usize) -> Option<Round> {
        let per = self.cfg.max_samples_per_send;
        let (mut ids, batches, total) = {
            let mut st = self.lock();
            let first = if skip == 0 {
                let front = st.queue.front();
                self.publish(&mut st);
                front
            } else {
                st.queue.peek(skip)
            };
            let (id, first) = first?;
            let mut ids = vec![id];
            let mut total = first.samples;
            let mut batches = vec![first];
            while let Some(n) = st.queue.samples_at(skip + ids.len()) {
                if total + n > per * self.cfg.max_shards {
                    break;
                }
                match st.queue.peek(skip + ids.len()) {
                    Some((id, b)) => {
                        total += b.samples;
                        ids.push(id);
                        batches.push(b);
                    }
                    None => break,
                }
            }
            (ids, batches, total)
        };
        let parts = total.div_ceil(per).max(1);
        let (merged, mut batches) = off_thread(total, move || {
            let merged = merge_split(&batches, parts);
            (merged, batches)
        })
        .await;
        match merged {
            Ok(requests) => Some((ids, requests)),
            Err(_) => {
                ids.truncate(1);
                batches.truncate(1);
                Some((ids, batches.into_iter().map(Request::from).collect()))
            }
        }
    }

    /// How long the sender still waits before sending the queue's front: until its oldest
    /// sample is `batch_wait` old, reckoned from when the sender first saw that front (so a
    /// clock jump cannot hold it longer than `batch_wait`). `None`: send now (nothing held, a
    /// request's worth queued, or closing).
    fn hold(&self, seen: &mut Option<(u64, Instant)>) -> Option<Duration> {
        let wait = self.cfg.batch_wait;
        if wait.is_zero() || self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let st = self.lock();
        let front = st.queue.front_id()?;
        if st.queue.samples() >= self.cfg.max_samples_per_send {
            return None;
        }
        let oldest = st.queue.oldest_ms()?;
        drop(st);
        let now = Instant::now();
        let until = match *seen {
            Some((id, until)) if id == front => until,
            _ => {
                let age = (self.clock.now_ms() - oldest).max(0) as u64;
                let until = now + wait.saturating_sub(Duration::from_millis(age));
                *seen = Some((front, until));
                until
            }
        };
        (until > now).then(|| until - now)
    }

    /// Runs the sender until `cancel`; then seals what is pending and keeps sending until the
    /// queue is empty (the caller bounds how long).
    async fn run_tasks(self: Arc<Self>, cancel: CancellationToken) {
        let closer = async {
            cancel.cancelled().await;
            self.seal(&mut self.lock());
            self.closed.store(true, Ordering::SeqCst);
            self.queued.notify_one();
        };
        // Appended batches reach the disk at most one `fsync` interval after the append, and a
        // moved cursor is written by then too. The timer sleeps until something is appended or
        // the cursor moves, so an idle relay does not wake for it.
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
        tokio::join!(
            closer,
            self.send_loop(&cancel),
            syncer,
            self.drops.summarise(&cancel)
        );
        self.lock().queue.sync(true);
        lock(&self.usage).save();
        self.drops.tick(true);
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
        let health = Mutex::new(
            OutageLog::new(&self.cfg.name, redact_url(&self.cfg.url))
                .reporting_to(self.status.clone(), self.clock.clone()),
        );
        let mut seen = None;
        let mut ahead = None;
        loop {
            if let Some(wait) = self.hold(&mut seen) {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.queued.notified() => {}
                }
                continue;
            }
            if self.send_front(cancel, &health, &mut ahead).await.is_some() {
                continue;
            }
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            self.queued.notified().await;
        }
    }

    /// Sends the queue's front (merged and split by series, see [`Self::next_requests`]), its
    /// requests at once, each until it is delivered or refused for good; counts the outcomes
    /// and then removes the batches from the queue; `None` when the queue is empty. Returns,
    /// per request, the samples it held when it was last tried (after dropping the too old).
    async fn send_front(
        &self,
        cancel: &CancellationToken,
        health: &Mutex<OutageLog>,
        ahead: &mut Option<Round>,
    ) -> Option<Vec<(u64, Result<(), Undeliverable>)>> {
        // A round merged while the one before it was in flight, if the queue's front is still
        // where it begins (a bound may have pushed batches out meanwhile).
        let prepared = ahead
            .take()
            .filter(|(ids, _)| self.lock().queue.front_id() == ids.first().copied());
        let (ids, requests) = match prepared {
            Some(round) => round,
            None => self.next_requests(0).await?,
        };
        // A backlog (more queued than this round takes) is compressed for speed, and so is the
        // round that ends it: at the default level its requests of a full round would take
        // zstd's larger tables on each connection at once, the drain's peak memory (measured).
        let round: usize = requests.iter().map(|r| r.samples).sum();
        let backlog = self.lock().queue.samples() > round;
        let ending = self.draining.swap(backlog, Ordering::Relaxed);
        let effort = if self.cfg.strong_compression {
            Effort::Strong
        } else if backlog || ending {
            Effort::Backlog
        } else {
            Effort::Normal
        };
        let sends = futures_util::future::join_all(requests.into_iter().map(|batch| async {
            self.rate_limit(batch.samples).await;
            self.deliver(batch, effort, cancel, health).await
        }));
        // In a backlog the next round is read and merged while this one is in flight (it goes
        // out only after this one is answered, so each series' samples stay in order).
        let merge_next = async {
            match backlog {
                true => self.next_requests(ids.len()).await,
                false => None,
            }
        };
        let (results, next) = tokio::join!(sends, merge_next);
        *ahead = next;
        for (samples, result) in &results {
            self.account(*samples, result);
        }
        let mut st = self.lock();
        st.queue.commit_all(&ids);
        let cursor_pending = st.queue.cursor_pending();
        self.publish(&mut st);
        let queued = st.queue.samples();
        drop(st);
        if cursor_pending {
            // The fsync timer writes it.
            self.appended.notify_one();
        }
        let delivered: u64 = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .sum();
        if results.iter().any(|(_, r)| r.is_ok()) {
            lock(health).delivered(delivered, Some(queued));
        }
        Some(results)
    }

    /// Counts a finished send of `samples`; a refusal is a drop.
    fn account(&self, samples: u64, result: &Result<(), Undeliverable>) {
        match result {
            Ok(()) => self
                .metrics
                .sent(&self.cfg.name, samples, self.clock.now_seconds()),
            Err(Undeliverable::Rejected { status, body }) => {
                self.metrics
                    .send_failed(&self.cfg.name, Failure::Rejected.as_str());
                self.drop_samples("rejected", samples, || {
                    format!("the receiver refused a batch of {samples} samples with HTTP {status}; dropped it: {body}")
                });
            }
            // Counted when its samples were found too old.
            Err(Undeliverable::Expired) => {}
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

    /// Sends one batch, retrying retryable failures forever (see [`retrying`]); `health`
    /// logs the outage's lines. Returns the samples the batch held at its last attempt.
    async fn deliver(
        &self,
        batch: Request,
        effort: Effort,
        cancel: &CancellationToken,
        health: &Mutex<OutageLog>,
    ) -> (u64, Result<(), Undeliverable>) {
        let name = &self.cfg.name;
        let current = Mutex::new(Attempt {
            batch,
            delivered: 0,
            effort,
        });
        let result = retrying(
            self.backoff(),
            cancel,
            || self.send_once(&current),
            |e| {
                self.metrics.retried(name);
                self.metrics.send_failed(name, e.kind().as_str());
                lock(health).failed(e, || {
                    format!("{} samples queued", self.lock().queue.samples())
                });
            },
        )
        .await;
        let last = current.into_inner().unwrap_or_else(|p| p.into_inner());
        let samples = (last.batch.samples + last.delivered) as u64;
        (samples, result)
    }

    /// One attempt. A batch that aged past `max_age` while it waited (an outage) first loses
    /// its samples that are too old (decoded, filtered, encoded again); if none is left, it is
    /// not sent.
    async fn send_once(&self, current: &Mutex<Attempt>) -> Result<(), SendError> {
        let effort = lock(current).effort;
        let mut body = {
            let mut guard = lock(current);
            let b = &mut guard.batch;
            let cutoff = self.max_age_cutoff();
            if b.samples > 0 && b.oldest_ms < cutoff {
                // A body that cannot be decoded is sent as it is: the receiver decides.
                if let Some(young) = b.to_neutral().without_older_than(cutoff) {
                    let old = (b.samples - young.samples) as u64;
                    self.drop_samples("too_old", old, || self.too_old_detail());
                    *b = young.into();
                }
                if b.samples == 0 {
                    return Err(Undeliverable::Expired.into());
                }
            }
            b.body.clone()
        };
        // Each round sends the batch in the form the receiver is believed to take; a fall-back
        // sends it again at once in the next form (three forms at most). A form not yet known
        // to be taken is first tried on the batch's first series alone (see
        // `Negotiator::probing`); once that is taken, the batch is what is left.
        for _ in 0..6 {
            let form = self.lock_wire().form(self.clock.now_ms());
            let probe = if self.lock_wire().probing(form) {
                let b = lock(current).batch.to_neutral();
                split_probe(&b)
            } else {
                None
            };
            let (source, samples) = match &probe {
                Some((p, _)) => (Body::Neutral(p.body.clone()), p.samples),
                None => (body.clone(), lock(current).batch.samples),
            };
            let wire_body = match off_thread(samples, move || convert(&source, form, effort)).await
            {
                Ok(b) => b,
                // Not decodable: only the neutral form can carry it (the receiver decides).
                Err(_) => body.neutral(),
            };
            let mut req = self.client.post(self.cfg.url.clone());
            for (k, v) in form.headers() {
                req = req.header(k, v);
            }
            let req = client::authorize(req.body(wire_body), &self.cfg.http);
            let sent = match req.try_clone().map(|r| r.build()) {
                Some(Ok(r)) => request_wire_bytes(&r, &self.cfg.http.headers),
                _ => 0,
            };
            let (result, answer) = send_inspected(req).await;
            let Some(answer) = answer else {
                return result;
            };
            self.metrics
                .wire_bytes(&self.cfg.name, sent, answer.wire_bytes());
            lock(&self.usage).record(self.clock.now_ms(), sent, answer.wire_bytes());
            let judged = self.lock_wire().judge(form, &answer, self.clock.now_ms());
            if judged == Judged::FellBack {
                continue;
            }
            if let (Some((first, rest)), true) = (probe, result.is_ok()) {
                // The form is taken, and so is the first series: now the rest.
                body = Body::Neutral(rest.body.clone());
                let mut a = lock(current);
                a.delivered += first.samples;
                a.batch = rest.into();
                continue;
            }
            if result.is_ok()
                && form.protocol == Protocol::V2
                && !V2_WRITTEN_HEADERS
                    .iter()
                    .any(|h| answer.headers.contains_key(*h))
            {
                return Err(SendError::Retryable {
                    kind: Failure::Rejected,
                    reason: format!(
                        "HTTP {} without X-Prometheus-Remote-Write-Samples-Written: the receiver ignored a remote-write 2.0 body (it takes only 1.0: set protocol = \"v1\" or \"auto\")",
                        answer.status.as_u16()
                    ),
                    after: None,
                });
            }
            return result;
        }
        Err(SendError::Retryable {
            kind: Failure::Rejected,
            reason: "the receiver refused every form (2.0, 1.0 with zstd, 1.0 with snappy)".into(),
            after: None,
        })
    }

    fn lock_wire(&self) -> MutexGuard<'_, Negotiator> {
        lock(&self.wire)
    }

    /// Seals the pending batch and sends the whole queue, retrying until `deadline`. Fails
    /// if anything submitted was not delivered (refused, too old, out of order, pushed out).
    async fn flush_queue(&self, deadline: Duration) -> Result<u64, String> {
        self.seal(&mut self.lock());
        let mut sent = 0u64;
        let health = Mutex::new(OutageLog::new(&self.cfg.name, redact_url(&self.cfg.url)));
        let mut refusal = None;
        let never = CancellationToken::new();
        let work = async {
            let mut ahead = None;
            while let Some(results) = self.send_front(&never, &health, &mut ahead).await {
                for (samples, r) in results {
                    match r {
                        Ok(()) => sent += samples,
                        Err(e @ Undeliverable::Rejected { .. }) => refusal = Some(e.to_string()),
                        Err(Undeliverable::Expired) => {}
                    }
                }
            }
        };
        let done = tokio::time::timeout(deadline, work).await.is_ok();
        self.drops.tick(true);
        if !done {
            return Err(format!(
                "could not deliver within {} ({} samples still queued)",
                human(deadline),
                self.lock().queue.samples()
            ));
        }
        let dropped = self.metrics.dropped_by_reason(&self.cfg.name);
        if dropped.is_empty() {
            return Ok(sent);
        }
        let what: Vec<String> = dropped.iter().map(|(r, n)| format!("{n} {r}")).collect();
        Err(format!(
            "delivered {sent} samples but dropped {}{}",
            what.join(", "),
            refusal
                .map(|r| format!(" (the receiver refused: {r})"))
                .unwrap_or_default()
        ))
    }
}

/// The requests of one round and the ids of the queued batches they hold (oldest first).
type Round = (Vec<u64>, Vec<Request>);

/// One request being delivered: what is left to send, and the samples of it a probe
/// delivered already (see `Negotiator::probing`).
struct Attempt {
    batch: Request,
    delivered: usize,
    effort: Effort,
}

/// A lock that a panic elsewhere did not make unusable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a request takes on the wire in HTTP/1.1: request line, its headers, those reqwest adds
/// when sending (`host`, `user-agent`, `accept`, `content-length`) and the body. TLS records
/// and TCP/IP headers are not included.
fn request_wire_bytes(r: &reqwest::Request, configured: &[(String, String)]) -> u64 {
    let url = r.url();
    let target = url.path().len() + url.query().map_or(0, |q| q.len() + 1);
    let host =
        url.host_str().map_or(0, str::len) + url.port().map_or(0, |p| p.to_string().len() + 1);
    let body = r.body().and_then(|b| b.as_bytes()).map_or(0, <[u8]>::len);
    let line = r.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let mut added = "host: \r\n".len() + host;
    added += "content-length: \r\n".len() + body.to_string().len();
    if !r.headers().contains_key(reqwest::header::USER_AGENT) {
        added += "user-agent: \r\n".len() + client::USER_AGENT.len();
    }
    if !r.headers().contains_key(reqwest::header::ACCEPT) {
        added += "accept: */*\r\n".len();
    }
    for (k, v) in configured {
        if !r.headers().contains_key(k.as_str()) {
            added += k.len() + 2 + v.len() + 2;
        }
    }
    (line + header_bytes(r.headers()) + added + 2 + body) as u64
}

/// Samples not admitted into a batch, by why.
#[derive(Default)]
struct Refused {
    too_old: u64,
    out_of_order: u64,
}

impl Refused {
    fn count(&mut self, r: series::Refusal) {
        match r {
            series::Refusal::TooOld => self.too_old += 1,
            series::Refusal::OutOfOrder => self.out_of_order += 1,
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
        self.lock_wire().describe()
    }
}

#[cfg(test)]
mod tests;
