//! The running daemon: one task per source and per sink, the self-metrics task and the
//! `listen` server, and how a reload changes that set in place. Unchanged sources and sinks
//! keep running without a gap (their staleness state, queue and carried state untouched);
//! changed ones are rebuilt (a source keeps its series set, so what vanishes with the change
//! still gets a stale marker; a sink's queue stays on disk for the new one); removed ones are
//! stopped (a source's series end with stale markers, a sink's queue stays on disk); new ones
//! are started.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, RwLock};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::prepare::Preparer;
use super::{http, poll, self_snapshot, Env, LastSnapshots};
use crate::config::{host_name, Config};
use crate::sinks::{Sink, SinkSpec};
use crate::sources::{self, Source, SourceSpec};
use crate::status::Part;

/// The sinks every snapshot goes to. A reload swaps entries under the write lock, so a
/// snapshot submitted meanwhile waits a moment instead of missing a sink.
type Fanout = Arc<RwLock<Vec<Arc<dyn Sink>>>>;

/// Hands `snap` to every current sink.
async fn fan_out(fanout: &Fanout, snap: Arc<crate::model::Snapshot>) {
    for s in fanout.read().await.iter() {
        s.submit(snap.clone());
    }
}

/// Runs until `cancel` fires, applying each configuration from `reloads` as it comes; then
/// gives the sinks up to `shutdown_timeout` to deliver what they hold.
pub(super) async fn run(
    cfg: Config,
    cancel: CancellationToken,
    env: Env,
    mut reloads: mpsc::Receiver<Config>,
) -> anyhow::Result<()> {
    let mut d = Daemon::start(cfg, env).await?;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(new) = reloads.recv() => d.reload(new).await,
        }
    }
    d.shutdown().await;
    Ok(())
}

struct SourceRun {
    spec: Arc<dyn SourceSpec>,
    stop: CancellationToken,
    /// Ends with the source's preparer, so a rebuilt source keeps its series set.
    task: JoinHandle<Preparer>,
}

struct SinkRun {
    spec: Arc<dyn SinkSpec>,
    sink: Arc<dyn Sink>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A task that is simply stopped and restarted (self-metrics, the `listen` server).
struct Helper {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Helper {
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

struct Daemon {
    cfg: Config,
    env: Env,
    sources: Vec<SourceRun>,
    sinks: Vec<SinkRun>,
    fanout: Fanout,
    last: LastSnapshots,
    /// Whether sources keep their last snapshot in `last` (only while `listen` serves
    /// `/metrics`: otherwise it would keep a second snapshot alive through every poll).
    keep_last: Arc<AtomicBool>,
    self_metrics: Helper,
    http: Option<Helper>,
}

impl Daemon {
    async fn start(cfg: Config, env: Env) -> anyhow::Result<Daemon> {
        let mut sinks = Vec::new();
        for spec in &cfg.sinks {
            sinks.push(start_sink(spec.clone(), &cfg, &env)?);
        }
        let fanout: Fanout = Arc::new(RwLock::new(sinks.iter().map(|s| s.sink.clone()).collect()));
        let last = LastSnapshots::default();
        let keep_last = Arc::new(AtomicBool::new(cfg.relay.listen.is_some()));
        let mut d = Daemon {
            self_metrics: start_self_metrics(&cfg, &env, &fanout),
            http: start_http(&cfg, &env, &last).await?,
            cfg,
            env,
            sources: Vec::new(),
            sinks,
            fanout,
            last,
            keep_last,
        };
        let n = d.cfg.sources.len().max(1);
        for (i, spec) in d.cfg.sources.clone().into_iter().enumerate() {
            let run = d.start_source(spec, None, i, n)?;
            d.sources.push(run);
        }
        d.env.metrics.config_loaded(true, d.env.clock.now_seconds());
        tracing::info!(
            sources = d.cfg.sources.len(),
            sinks = d.cfg.sinks.len(),
            "pushrelay {} running",
            env!("CARGO_PKG_VERSION")
        );
        Ok(d)
    }

    /// Builds and starts one source; `prep` is the series set of its previous incarnation.
    /// The `i`-th of `n` sources starts a little after the others, so they do not all fire at
    /// once.
    fn start_source(
        &self,
        spec: Arc<dyn SourceSpec>,
        prep: Option<Preparer>,
        i: usize,
        n: usize,
    ) -> anyhow::Result<SourceRun> {
        let ctx = sources::BuildContext {
            state_dir: self.cfg.relay.state_dir.clone(),
            persist: true,
            check_all: false,
            clock: self.env.clock.clone(),
        };
        let mut source = spec.build(&ctx)?;
        let meta = source.meta().clone();
        let external = &self.cfg.relay.external_labels;
        let prep = match prep {
            Some(mut p) => {
                p.retarget(&meta.instance, external, spec.series_rules());
                p
            }
            None => Preparer::new(&meta.name, &meta.instance, external, true)
                .with_rules(spec.series_rules()),
        };
        self.env.status.register(Part::Source(&meta.name));
        let stop = CancellationToken::new();
        source.start(stop.child_token());
        let offset = meta.interval.min(Duration::from_secs(2)) * i as u32 / n.max(1) as u32;
        let task = tokio::spawn(source_task(
            source,
            prep,
            self.env.clone(),
            self.fanout.clone(),
            self.last.clone(),
            self.keep_last.clone(),
            stop.clone(),
            offset,
        ));
        Ok(SourceRun { spec, stop, task })
    }

    /// Applies a new configuration (already validated).
    async fn reload(&mut self, new: Config) {
        let relay_changed = self.cfg.relay != new.relay;
        // Labels and state live under these: every component is rebuilt when they change.
        let all = self.cfg.relay.external_labels != new.relay.external_labels
            || self.cfg.relay.state_dir != new.relay.state_dir;
        let mut counts = Counts::default();

        // Sinks first, so rebuilt sources find them.
        let old_sinks = std::mem::take(&mut self.sinks);
        let mut kept_sinks = Vec::new();
        let mut stopping = Vec::new();
        for run in old_sinks {
            match new.sinks.iter().find(|s| s.name() == run.spec.name()) {
                Some(n) if !all && run.spec.same_as(n.as_ref()) => kept_sinks.push(run),
                found => stopping.push((run, found.is_some())),
            }
        }
        {
            // Hold the fanout while sinks are swapped: a source submitting meanwhile waits.
            let mut fan = self.fanout.write().await;
            for (run, replaced) in stopping {
                let name = run.spec.name().to_string();
                // No snapshot reaches it any more, and its last reference can go.
                fan.retain(|s| !Arc::ptr_eq(s, &run.sink));
                stop_sink(run, !replaced).await;
                if replaced {
                    counts.sinks_changed += 1;
                } else {
                    counts.sinks_removed += 1;
                    self.env.metrics.forget_sink(&name);
                    self.env.status.forget(Part::Sink(&name, ""));
                }
            }
            let mut sinks = Vec::new();
            for spec in &new.sinks {
                match kept_sinks.iter().position(|r| r.spec.name() == spec.name()) {
                    Some(i) => {
                        counts.sinks_kept += 1;
                        sinks.push(kept_sinks.swap_remove(i));
                    }
                    None => match start_sink(spec.clone(), &new, &self.env) {
                        Ok(run) => {
                            if !self.cfg.sinks.iter().any(|o| o.name() == spec.name()) {
                                counts.sinks_added += 1;
                            }
                            sinks.push(run);
                        }
                        Err(e) => tracing::error!(sink = %spec.name(), "cannot start sink: {e:#}"),
                    },
                }
            }
            *fan = sinks.iter().map(|s| s.sink.clone()).collect();
            self.sinks = sinks;
        }

        // Sources.
        let old_sources = std::mem::take(&mut self.sources);
        let mut carried: Vec<(String, Preparer)> = Vec::new();
        let mut kept = Vec::new();
        for run in old_sources {
            let name = run.spec.name().to_string();
            match new.sources.iter().find(|s| s.name() == name) {
                Some(n) if !all && run.spec.same_as(n.as_ref()) => kept.push(run),
                found => {
                    run.stop.cancel();
                    let prep = run.task.await.ok();
                    match (found, prep) {
                        (Some(_), Some(p)) => carried.push((name, p)),
                        (Some(_), None) => {}
                        (None, prep) => {
                            counts.sources_removed += 1;
                            if let Some(mut p) = prep {
                                let snap = Arc::new(p.retire(self.env.clock.now_ms()));
                                fan_out(&self.fanout, snap).await;
                            }
                            self.last
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&name);
                            self.env.metrics.forget_source(&name);
                            self.env.status.forget(Part::Source(&name));
                        }
                    }
                }
            }
        }
        let old_cfg = std::mem::replace(&mut self.cfg, new);
        let n = self.cfg.sources.len();
        for (i, spec) in self.cfg.sources.clone().into_iter().enumerate() {
            if let Some(k) = kept.iter().position(|r| r.spec.name() == spec.name()) {
                counts.sources_kept += 1;
                self.sources.push(kept.swap_remove(k));
                continue;
            }
            let prep = carried
                .iter()
                .position(|(n, _)| n == spec.name())
                .map(|k| carried.swap_remove(k).1);
            if prep.is_some() {
                counts.sources_changed += 1;
            } else if !old_cfg.sources.iter().any(|o| o.name() == spec.name()) {
                counts.sources_added += 1;
            }
            match self.start_source(spec.clone(), prep, i, n) {
                Ok(run) => self.sources.push(run),
                Err(e) => tracing::error!(source = %spec.name(), "cannot start source: {e:#}"),
            }
        }

        if relay_changed {
            let old = std::mem::replace(
                &mut self.self_metrics,
                start_self_metrics(&self.cfg, &self.env, &self.fanout),
            );
            old.stop().await;
            if let Some(h) = self.http.take() {
                h.stop().await;
            }
            let serving = self.cfg.relay.listen.is_some();
            self.keep_last.store(serving, Ordering::Relaxed);
            if !serving {
                self.last.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
            match start_http(&self.cfg, &self.env, &self.last).await {
                Ok(h) => self.http = h,
                Err(e) => tracing::error!("{e:#}"),
            }
        }
        self.env
            .metrics
            .config_loaded(true, self.env.clock.now_seconds());
        tracing::info!("configuration reloaded: {counts}");
        self.env.status.event(
            self.env.clock.now_ms(),
            "relay",
            format!("configuration reloaded: {counts}"),
        );
    }

    /// Stops the sources, then gives the sinks `shutdown_timeout` to deliver what they hold.
    async fn shutdown(self) {
        for run in &self.sources {
            run.stop.cancel();
        }
        for run in self.sources {
            let _ = run.task.await;
        }
        self.self_metrics.stop().await;
        if let Some(h) = self.http {
            h.stop().await;
        }
        let timeout = self.cfg.relay.shutdown_timeout;
        tracing::info!(
            "shutting down: delivering what is queued (at most {})",
            crate::sinks::human(timeout)
        );
        for run in &self.sinks {
            run.stop.cancel();
        }
        let deadline = Instant::now() + timeout;
        let mut abandoned = false;
        for run in &self.sinks {
            // Aborting drops the send in flight; the queue keeps the batch.
            let abort = run.task.abort_handle();
            if tokio::time::timeout_at(deadline, async {
                while !run.task.is_finished() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .is_err()
            {
                abort.abort();
                abandoned = true;
            }
        }
        if abandoned {
            tracing::warn!("shutdown deadline reached; abandoning sends still in flight");
        }
        for run in &self.sinks {
            let _ = tokio::time::timeout(Duration::from_secs(5), run.sink.shutdown()).await;
        }
        tracing::info!("stopped");
    }
}

/// What a reload changed, for its one log line.
#[derive(Default)]
struct Counts {
    sources_added: usize,
    sources_changed: usize,
    sources_removed: usize,
    sources_kept: usize,
    sinks_added: usize,
    sinks_changed: usize,
    sinks_removed: usize,
    sinks_kept: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sources {} kept, {} changed, {} added, {} removed; sinks {} kept, {} changed, {} added, {} removed",
            self.sources_kept,
            self.sources_changed,
            self.sources_added,
            self.sources_removed,
            self.sinks_kept,
            self.sinks_changed,
            self.sinks_added,
            self.sinks_removed
        )
    }
}

fn start_sink(spec: Arc<dyn SinkSpec>, cfg: &Config, env: &Env) -> anyhow::Result<SinkRun> {
    env.metrics.register_sink(spec.name());
    let sink = spec.build(&env.sink_context(Some(&cfg.relay.state_dir)))?;
    env.status
        .register(Part::Sink(spec.name(), &sink.protocol()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(sink.clone().run(stop.clone()));
    Ok(SinkRun {
        spec,
        sink,
        stop,
        task,
    })
}

/// Stops a sink for a reload: what it holds stays queued (on disk) for its next incarnation
/// rather than being delivered now. `removed`: it has no successor, so its shutdown work
/// (Pushgateway group deletion) runs.
async fn stop_sink(run: SinkRun, removed: bool) {
    run.stop.cancel();
    // A moment to seal the batch being assembled into the queue; then the send in flight is
    // dropped (the batch stays queued, to be sent again).
    let abort = run.task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(1), run.task)
        .await
        .is_err()
    {
        abort.abort();
    }
    if removed {
        let _ = tokio::time::timeout(Duration::from_secs(5), run.sink.shutdown()).await;
    }
    // The queue's directory lock goes with the last reference.
    let t0 = Instant::now();
    while Arc::strong_count(&run.sink) > 1 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One source's loop: poll on its interval, prepare, fan out, keep the latest snapshot for
/// `/metrics`; returns its preparer when stopped.
// Each argument is one of the task's own handles; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn source_task(
    mut source: Box<dyn Source>,
    mut prep: Preparer,
    env: Env,
    fanout: Fanout,
    last: LastSnapshots,
    keep_last: Arc<AtomicBool>,
    stop: CancellationToken,
    offset: Duration,
) -> Preparer {
    let meta = source.meta().clone();
    let mut tick = tokio::time::interval_at(Instant::now() + offset, meta.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return prep,
        }
        let started_ms = env.clock.now_ms();
        let (snap, err, secs) = tokio::select! {
            r = poll(source.as_mut(), &mut prep, &env.clock) => r,
            _ = stop.cancelled() => return prep,
        };
        env.metrics.source_polled(&meta.name, err.is_none(), secs);
        let err_text = err.as_ref().map(|e| e.to_string());
        env.status.source_polled(
            &meta.name,
            started_ms,
            secs,
            snap.sample_count(),
            err_text.as_deref(),
        );
        match (&err, was_up) {
            // The source said it already, in its own words.
            (Some(e), true) if e.is_logged() => {
                tracing::debug!(source = %meta.name, "source down: {e}")
            }
            (Some(e), true) => tracing::warn!(source = %meta.name, "source down: {e}"),
            (Some(e), false) => tracing::debug!(source = %meta.name, "still down: {e}"),
            (None, false) => tracing::info!(source = %meta.name, "source up again"),
            (None, true) => {}
        }
        was_up = err.is_none();
        let snap = Arc::new(snap);
        // The previous snapshot is replaced before the fan-out, so that two are never alive at once.
        if keep_last.load(Ordering::Relaxed) {
            last.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(meta.name.clone(), snap.clone());
        }
        fan_out(&fanout, snap).await;
    }
}

/// The relay's own metrics, pushed on the relay's interval.
fn start_self_metrics(cfg: &Config, env: &Env, fanout: &Fanout) -> Helper {
    let stop = CancellationToken::new();
    let (env, fanout, s) = (env.clone(), fanout.clone(), stop.clone());
    let external = cfg.relay.external_labels.clone();
    let every = cfg.relay.interval;
    let task = tokio::spawn(async move {
        let mut prep = Some(Preparer::new(
            crate::config::SELF_JOB,
            &host_name(),
            &external,
            false,
        ));
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = s.cancelled() => return,
            }
            let snap = Arc::new(self_snapshot(&env, &external, &mut prep));
            fan_out(&fanout, snap).await;
        }
    });
    Helper { stop, task }
}

async fn start_http(
    cfg: &Config,
    env: &Env,
    last: &LastSnapshots,
) -> anyhow::Result<Option<Helper>> {
    let Some(addr) = cfg.relay.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!("serving the status page, /metrics, /-/healthy and /-/ready on http://{addr}");
    let stop = CancellationToken::new();
    let task = tokio::spawn(http::serve(
        listener,
        stop.clone(),
        http::Routes {
            last: last.clone(),
            env: env.clone(),
            external: cfg.relay.external_labels.clone(),
            ready_window: cfg.relay.ready_window,
        },
    ));
    Ok(Some(Helper { stop, task }))
}
