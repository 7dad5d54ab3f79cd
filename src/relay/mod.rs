//! Wiring and scheduling: builds sources and sinks from the config, polls each source on its
//! interval, prepares snapshots and fans them out to every sink; shuts down cleanly.

mod daemon;
mod http;
pub mod prepare;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::WallClock;
use crate::config::{host_name, Config, SELF_JOB};
use crate::model::Snapshot;
use crate::self_metrics::SelfMetrics;
use crate::sinks::{Sink, SinkContext};
use crate::sources::{self, Source, SourceError};
use prepare::{Preparer, SeriesRules};

/// What the running relay shares with every part, besides the configuration.
#[derive(Clone, Default)]
pub struct Env {
    /// The relay's own metrics, counted by every part.
    pub metrics: Arc<SelfMetrics>,
    /// Wall-clock time for sample timestamps and ages.
    pub clock: WallClock,
    /// What the status page and readiness show.
    pub status: Arc<crate::status::Status>,
}

impl Env {
    fn sink_context(&self, state_dir: Option<&std::path::Path>) -> SinkContext {
        SinkContext {
            metrics: self.metrics.clone(),
            state_dir: state_dir.map(|d| d.to_path_buf()),
            clock: self.clock.clone(),
            status: self.status.clone(),
        }
    }

    fn build_sinks(
        &self,
        cfg: &Config,
        state_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Vec<Arc<dyn Sink>>> {
        let ctx = self.sink_context(state_dir);
        cfg.sinks
            .iter()
            .map(|s| {
                // Its series exist (at zero) from the start.
                self.metrics.register_sink(s.name());
                s.build(&ctx)
            })
            .collect()
    }
}

/// The latest prepared snapshot of each source, for `GET /metrics`.
pub(crate) type LastSnapshots = Arc<Mutex<BTreeMap<String, Arc<Snapshot>>>>;

/// Polls one source once, bounded by its timeout, and prepares the snapshot.
async fn poll(
    source: &mut dyn Source,
    prep: &mut Preparer,
    clock: &WallClock,
) -> (Snapshot, Option<SourceError>, f64) {
    let started_ms = clock.now_ms();
    let t0 = Instant::now();
    let timeout = source.meta().timeout;
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
    /// How often the relay polls the source.
    pub interval: std::time::Duration,
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

/// Polls every configured source once, concurrently. A push-shaped source is started and
/// given until its `timeout` to become ready (its first message) before it is read.
pub async fn poll_all_once(cfg: &Config, mode: OneShot) -> anyhow::Result<Vec<PollResult>> {
    poll_all_once_with(cfg, mode, &Env::default()).await
}

async fn poll_all_once_with(
    cfg: &Config,
    mode: OneShot,
    env: &Env,
) -> anyhow::Result<Vec<PollResult>> {
    let check_all = matches!(mode, OneShot::Inspect { check_all: true });
    let ctx = sources::BuildContext {
        state_dir: cfg.relay.state_dir.clone(),
        persist: mode == OneShot::Push,
        check_all,
        clock: env.clock.clone(),
    };
    let built = cfg
        .sources
        .iter()
        .map(|sc| Ok((sc.build(&ctx)?, sc.series_rules())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    poll_sources_once(built, &cfg.relay.external_labels, &env.clock, check_all).await
}

/// Polls built sources once, concurrently; results in the sources' order.
async fn poll_sources_once(
    built: Vec<(Box<dyn Source>, SeriesRules)>,
    external: &crate::model::Labels,
    clock: &WallClock,
    check_all: bool,
) -> anyhow::Result<Vec<PollResult>> {
    let mut set = tokio::task::JoinSet::new();
    // Ends the background work of push-shaped sources when the one-shot poll is done.
    let stop = CancellationToken::new();
    for (i, (mut source, rules)) in built.into_iter().enumerate() {
        let mut prep = Preparer::new(&source.meta().name, &source.meta().instance, external, true)
            .with_rules(rules);
        let clock = clock.clone();
        let stop = stop.clone();
        set.spawn(async move {
            source.start(stop.child_token());
            let _ = tokio::time::timeout(source.meta().timeout, source.ready()).await;
            let (snapshot, err, secs) = poll(source.as_mut(), &mut prep, &clock).await;
            let r = PollResult {
                source: source.meta().name.clone(),
                snapshot,
                error: err.map(|e| e.to_string()),
                duration_seconds: secs,
                interval: source.meta().interval,
                summary: source.check_summary(check_all),
            };
            (i, r)
        });
    }
    let mut out: Vec<(usize, PollResult)> = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r?);
    }
    stop.cancel();
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
    let env = Env::default();
    let metrics = &env.metrics;
    let sinks = env.build_sinks(cfg, None)?;
    let results = poll_all_once_with(cfg, OneShot::Push, &env).await?;
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
    let selfsnap = Arc::new(self_snapshot(&env, &cfg.relay.external_labels, &mut None));
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
pub(crate) fn self_snapshot(
    env: &Env,
    external: &crate::model::Labels,
    prep: &mut Option<Preparer>,
) -> Snapshot {
    let prep = prep.get_or_insert_with(|| Preparer::new(SELF_JOB, &host_name(), external, false));
    let now = env.clock.now_ms();
    prep.prepare(Some(env.metrics.families(now)), now, 0.0)
}

/// Runs the daemon until `cancel` fires: polls every source on its interval and pushes to every
/// sink; then gives sinks up to `shutdown_timeout` to deliver what they hold.
pub async fn run(cfg: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    run_with(cfg, cancel, Env::default()).await
}

/// [`run`] with a caller-owned [`Env`] (the demo reads its metrics to show what was sent;
/// tests give it a clock they move).
pub async fn run_with(cfg: Config, cancel: CancellationToken, env: Env) -> anyhow::Result<()> {
    let (_keep, reloads) = tokio::sync::mpsc::channel(1);
    daemon::run(cfg, cancel, env, reloads).await
}

/// [`run_with`], applying each configuration received on `reloads` in place (SIGHUP): see
/// [`daemon`] for what a reload keeps, rebuilds, stops and starts.
pub async fn run_reloadable(
    cfg: Config,
    cancel: CancellationToken,
    env: Env,
    reloads: tokio::sync::mpsc::Receiver<Config>,
) -> anyhow::Result<()> {
    daemon::run(cfg, cancel, env, reloads).await
}

/// Merges families of the same name from several snapshots into one (an exposition may hold
/// each family once); the first family's metadata wins.
pub fn merge_families<'a>(
    groups: impl Iterator<Item = &'a [crate::model::Family]>,
) -> Vec<crate::model::Family> {
    let mut out: Vec<crate::model::Family> = Vec::new();
    let mut index: std::collections::HashMap<crate::model::SeriesName, usize> =
        std::collections::HashMap::new();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, Labels, MetricType};
    use crate::sources::push::Shared;
    use crate::sources::SourceMeta;
    use crate::BoxFuture;
    use std::time::Duration;

    /// A push-shaped source: its background task "receives" one reading after `delay`.
    struct FakeSubscription {
        meta: SourceMeta,
        delay: Duration,
        shared: Shared<Option<f64>>,
    }

    impl FakeSubscription {
        fn new(delay: Duration) -> Self {
            FakeSubscription {
                meta: SourceMeta {
                    name: "sub".into(),
                    instance: "broker:1883".into(),
                    interval: Duration::from_secs(60),
                    timeout: Duration::from_secs(10),
                },
                delay,
                shared: Shared::new(None),
            }
        }
    }

    impl Source for FakeSubscription {
        fn meta(&self) -> &SourceMeta {
            &self.meta
        }
        fn start(&mut self, cancel: CancellationToken) {
            let (shared, delay) = (self.shared.clone(), self.delay);
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {
                        shared.update(|v| *v = Some(21.5));
                        shared.mark_ready();
                    }
                    _ = cancel.cancelled() => {}
                }
            });
        }
        fn ready(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(self.shared.ready())
        }
        fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>> {
            let v = self.shared.read(|v| *v);
            Box::pin(async move {
                let v = v.ok_or_else(|| SourceError::Request("no message yet".into()))?;
                let mut f = Family::new("temperature", MetricType::Gauge, "");
                f.push(Labels::new(), v);
                Ok(vec![f])
            })
        }
    }

    fn value_of(r: &PollResult, name: &str) -> Option<f64> {
        r.snapshot
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name)
            .map(|s| s.value)
    }

    /// `print`/`check`/`once` wait for a push-shaped source's first message instead of
    /// reporting an empty first poll.
    #[tokio::test(start_paused = true)]
    async fn one_shot_waits_for_the_first_message() {
        let clock = WallClock::following_tokio(1_000_000);
        let r = poll_sources_once(
            vec![(
                Box::new(FakeSubscription::new(Duration::from_secs(3))),
                SeriesRules::default(),
            )],
            &Labels::new(),
            &clock,
            false,
        )
        .await
        .unwrap();
        assert_eq!(r[0].error, None);
        assert_eq!(value_of(&r[0], "temperature"), Some(21.5));
        assert_eq!(value_of(&r[0], "up"), Some(1.0));
        // Sample time: when the poll started, after the wait (the clock follows tokio's).
        assert_eq!(r[0].snapshot.timestamp_ms, 1_003_000);
    }

    /// ... but only up to the source's timeout: then it is read as it is (here: down).
    #[tokio::test(start_paused = true)]
    async fn one_shot_wait_is_bounded_by_the_timeout() {
        let t0 = tokio::time::Instant::now();
        let r = poll_sources_once(
            vec![(
                Box::new(FakeSubscription::new(Duration::from_secs(3600))),
                SeriesRules::default(),
            )],
            &Labels::new(),
            &WallClock::following_tokio(0),
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            r[0].error.as_deref(),
            Some("request failed: no message yet")
        );
        assert_eq!(value_of(&r[0], "up"), Some(0.0));
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
    }
}
