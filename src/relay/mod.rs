//! Wiring and scheduling: builds sources and sinks from the config, polls each source on its
//! interval, prepares snapshots and fans them out to every sink; shuts down cleanly.

pub mod prepare;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{host_name, Config, SELF_JOB};
use crate::model::{now_ms, Snapshot};
use crate::self_metrics::SelfMetrics;
use crate::sinks::Sink;
use crate::sources::{self, Source, SourceError};
use prepare::{Preparer, SeriesRules};

/// The latest prepared snapshot of each source, for `GET /metrics`.
type LastSnapshots = Arc<Mutex<BTreeMap<String, Arc<Snapshot>>>>;

/// Polls one source once, bounded by its timeout, and prepares the snapshot.
async fn poll(
    source: &mut dyn Source,
    prep: &mut Preparer,
) -> (Snapshot, Option<SourceError>, f64) {
    let started_ms = now_ms();
    let t0 = Instant::now();
    let timeout = source.timeout();
    let result = match tokio::time::timeout(timeout, source.collect()).await {
        Ok(r) => r,
        Err(_) => Err(SourceError::Timeout(timeout)),
    };
    let secs = t0.elapsed().as_secs_f64();
    let (fams, err) = match result {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e)),
    };
    let (snapshot, rejected) = prep.prepare_checked(fams, started_ms, secs);
    (snapshot, err.or(rejected.map(SourceError::Invalid)), secs)
}

/// The outcome of polling every source once (for `once`, `print`, `check`).
pub struct PollResult {
    pub source: String,
    pub snapshot: Snapshot,
    pub error: Option<String>,
    pub duration_seconds: f64,
    /// The source's own `check` table, if it has one.
    pub summary: Option<String>,
}

/// How a one-shot poll treats source state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneShot {
    /// `once`: a real push, so carried state is saved.
    Push,
    /// `print`/`check`: state is read, never written; `check_all` asks for every row.
    Inspect { check_all: bool },
}

/// Polls every configured source once, concurrently.
pub async fn poll_all_once(cfg: &Config, mode: OneShot) -> anyhow::Result<Vec<PollResult>> {
    let mut set = tokio::task::JoinSet::new();
    let check_all = matches!(mode, OneShot::Inspect { check_all: true });
    let ctx = sources::BuildContext {
        state_dir: cfg.relay.state_dir.clone(),
        persist: mode == OneShot::Push,
        check_all,
    };
    for (i, sc) in cfg.sources.iter().enumerate() {
        let mut source = sources::build(sc, &ctx)?;
        let mut prep = Preparer::new(
            source.name(),
            source.instance(),
            &cfg.relay.external_labels,
            true,
        )
        .with_rules(SeriesRules::of(sc));
        set.spawn(async move {
            let (snapshot, err, secs) = poll(source.as_mut(), &mut prep).await;
            let r = PollResult {
                source: source.name().to_string(),
                snapshot,
                error: err.map(|e| e.to_string()),
                duration_seconds: secs,
                summary: source.check_summary(check_all),
            };
            (i, r)
        });
    }
    let mut out: Vec<(usize, PollResult)> = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// What `once` reports: one line per failure.
pub struct OnceReport {
    pub failures: Vec<String>,
    pub samples: usize,
}

/// One poll of every source and one push to every sink.
pub async fn once(cfg: &Config) -> anyhow::Result<OnceReport> {
    let metrics = Arc::new(SelfMetrics::default());
    let sinks = cfg
        .sinks
        .iter()
        .map(|s| Sink::build(s, metrics.clone(), None))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let results = poll_all_once(cfg, OneShot::Push).await?;
    let mut failures = Vec::new();
    let mut samples = 0;
    for r in results {
        metrics.source_polled(&r.source, r.error.is_none(), r.duration_seconds);
        if let Some(e) = &r.error {
            failures.push(format!("source {}: {e}", r.source));
        }
        samples += r.snapshot.sample_count();
        let snap = Arc::new(r.snapshot);
        for s in &sinks {
            s.submit(snap.clone());
        }
    }
    let selfsnap = Arc::new(self_snapshot(
        &metrics,
        &cfg.relay.external_labels,
        &mut None,
    ));
    for s in &sinks {
        s.submit(selfsnap.clone());
    }
    for s in &sinks {
        if let Err(e) = s.flush(cfg.relay.shutdown_timeout).await {
            failures.push(format!("sink {}: {e}", s.name()));
        }
    }
    Ok(OnceReport { failures, samples })
}

/// The relay's own metrics as a snapshot of job `pushrelay`.
fn self_snapshot(
    metrics: &SelfMetrics,
    external: &crate::model::Labels,
    prep: &mut Option<Preparer>,
) -> Snapshot {
    let prep = prep.get_or_insert_with(|| Preparer::new(SELF_JOB, &host_name(), external, false));
    prep.prepare(Some(metrics.families()), now_ms(), 0.0)
}

/// Runs the daemon until `cancel` fires: polls every source on its interval and pushes to every
/// sink; then gives sinks up to `shutdown_timeout` to deliver what they hold.
pub async fn run(cfg: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    run_with_metrics(cfg, cancel, Arc::new(SelfMetrics::default())).await
}

/// [`run`] with a caller-owned [`SelfMetrics`] (the demo reads it to show what was sent).
pub async fn run_with_metrics(
    cfg: Config,
    cancel: CancellationToken,
    metrics: Arc<SelfMetrics>,
) -> anyhow::Result<()> {
    let sinks = cfg
        .sinks
        .iter()
        .map(|s| Sink::build(s, metrics.clone(), Some(&cfg.relay.state_dir)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut sources_built = Vec::new();
    let ctx = sources::BuildContext {
        state_dir: cfg.relay.state_dir.clone(),
        persist: true,
        check_all: false,
    };
    for sc in &cfg.sources {
        sources_built.push(sources::build(sc, &ctx)?);
    }
    let last: LastSnapshots = Arc::default();

    // Sinks stop on their own token, after the sources, so the last snapshots still reach them.
    let sink_cancel = CancellationToken::new();
    let sink_tasks = TaskTracker::new();
    for s in &sinks {
        sink_tasks.spawn(s.clone().run(sink_cancel.clone()));
    }
    sink_tasks.close();

    let tasks = TaskTracker::new();
    if let Some(addr) = cfg.relay.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tracing::info!("serving /metrics and /healthz on http://{addr}");
        tasks.spawn(serve_metrics(
            listener,
            cancel.clone(),
            last.clone(),
            metrics.clone(),
            cfg.relay.external_labels.clone(),
        ));
    }
    let n_sources = sources_built.len().max(1);
    for (i, (mut source, sc)) in sources_built.into_iter().zip(&cfg.sources).enumerate() {
        let sinks = sinks.clone();
        let cancel = cancel.clone();
        let last = last.clone();
        let metrics = metrics.clone();
        let mut prep = Preparer::new(
            source.name(),
            source.instance(),
            &cfg.relay.external_labels,
            true,
        )
        .with_rules(SeriesRules::of(sc));
        // Spread the first polls over a short window so sources do not all fire at once.
        let offset = source.interval().min(Duration::from_secs(2)) * i as u32 / n_sources as u32;
        tasks.spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, source.interval());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut was_up = true;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = cancel.cancelled() => return,
                }
                let (snap, err, secs) = tokio::select! {
                    r = poll(source.as_mut(), &mut prep) => r,
                    _ = cancel.cancelled() => return,
                };
                metrics.source_polled(source.name(), err.is_none(), secs);
                match (&err, was_up) {
                    (Some(e), true) => tracing::warn!(source = %source.name(), "source down: {e}"),
                    (Some(e), false) => tracing::debug!(source = %source.name(), "still down: {e}"),
                    (None, false) => tracing::info!(source = %source.name(), "source up again"),
                    (None, true) => {}
                }
                was_up = err.is_none();
                let snap = Arc::new(snap);
                for s in &sinks {
                    s.submit(snap.clone());
                }
                last.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(source.name().to_string(), snap);
            }
        });
    }
    {
        // The relay's own metrics, on the relay's interval.
        let sinks = sinks.clone();
        let cancel = cancel.clone();
        let metrics = metrics.clone();
        let external = cfg.relay.external_labels.clone();
        let every = cfg.relay.interval;
        tasks.spawn(async move {
            let mut prep = None;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = cancel.cancelled() => return,
                }
                let snap = Arc::new(self_snapshot(&metrics, &external, &mut prep));
                for s in &sinks {
                    s.submit(snap.clone());
                }
            }
        });
    }
    tasks.close();
    tracing::info!(
        sources = cfg.sources.len(),
        sinks = cfg.sinks.len(),
        "pushrelay {} running",
        env!("CARGO_PKG_VERSION")
    );

    cancel.cancelled().await;
    tasks.wait().await;
    tracing::info!(
        "shutting down: delivering what is queued (at most {})",
        crate::sinks::human(cfg.relay.shutdown_timeout)
    );
    sink_cancel.cancel();
    let drained = tokio::time::timeout(cfg.relay.shutdown_timeout, sink_tasks.wait()).await;
    if drained.is_err() {
        tracing::warn!("shutdown deadline reached; abandoning sends still in flight");
    }
    for s in &sinks {
        let _ = tokio::time::timeout(Duration::from_secs(5), s.on_shutdown()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `GET /metrics`: the latest snapshot of every source plus the relay's own metrics;
/// `GET /healthz`: 200 while running.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
    last: LastSnapshots,
    metrics: Arc<SelfMetrics>,
    external: crate::model::Labels,
) {
    use crate::http::server::{response, serve};
    serve(listener, cancel, move |req| {
        let last = last.clone();
        let metrics = metrics.clone();
        let external = external.clone();
        async move {
            match (req.method().as_str(), req.uri().path()) {
                ("GET", "/metrics") => {
                    let snaps: Vec<Arc<Snapshot>> = last
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .values()
                        .cloned()
                        .collect();
                    let own = self_snapshot(&metrics, &external, &mut None);
                    let fams = merge_families(
                        snaps
                            .iter()
                            .map(|s| s.families.as_slice())
                            .chain([own.families.as_slice()]),
                    );
                    let mut out = String::new();
                    crate::expfmt::write_text(&mut out, &fams, false);
                    response(200, "text/plain; version=0.0.4; charset=utf-8", out)
                }
                ("GET", "/healthz") => response(200, "text/plain", "ok\n"),
                _ => response(404, "text/plain", "not found\n"),
            }
        }
    })
    .await
}

/// Merges families of the same name from several snapshots into one (an exposition may hold
/// each family once); the first family's metadata wins.
pub fn merge_families<'a>(
    groups: impl Iterator<Item = &'a [crate::model::Family]>,
) -> Vec<crate::model::Family> {
    let mut out: Vec<crate::model::Family> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for fams in groups {
        for f in fams {
            match index.get(&f.name) {
                Some(&i) => out[i].samples.extend(f.samples.iter().cloned()),
                None => {
                    index.insert(f.name.clone(), out.len());
                    out.push(f.clone());
                }
            }
        }
    }
    out
}
