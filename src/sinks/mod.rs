//! Sinks: where snapshots go. Each sink is a [`Sink`] running its own task, so a slow or
//! offline sink never blocks a source or another sink; [`Sink::submit`] never waits on the
//! network. Every sink sends through [`send`]: one classification of answers, one retry loop.

pub mod health;
pub mod pushgateway;
pub mod remote_write;
pub mod send;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use send::{Backoff, SendError, Undeliverable};

use crate::clock::WallClock;
use crate::config::Component;
use crate::model::Snapshot;
use crate::self_metrics::SelfMetrics;
use crate::BoxFuture;

/// What a sink may need besides its own configuration.
#[derive(Clone)]
pub struct SinkContext {
    pub metrics: Arc<SelfMetrics>,
    /// Where a sink keeps durable state (a remote-write queue in `<state_dir>/<sink name>/`);
    /// `None` for one-shot commands, which keep everything in memory.
    pub state_dir: Option<PathBuf>,
    /// Sample times, `max_age` and the self-metrics' timestamps.
    pub clock: WallClock,
    /// Where a sink says it went offline or is back (the status page, readiness).
    pub status: std::sync::Arc<crate::status::Status>,
}

/// A running sink.
pub trait Sink: Send + Sync {
    /// The configured name.
    fn name(&self) -> &str;
    /// Hands a snapshot to the sink; returns at once.
    fn submit(&self, snap: Arc<Snapshot>);
    /// Runs the sink until `cancel` fires, then delivers what it holds (the caller bounds how
    /// long that may take).
    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()>;
    /// Delivers everything submitted so far, retrying for at most `deadline`; for `once`.
    /// Returns the samples delivered, or why not everything was.
    fn flush(&self, deadline: Duration) -> BoxFuture<'_, Result<u64, String>>;
    /// Work to do on a clean exit after the last delivery (Pushgateway group deletion).
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// The wire protocol it speaks, for the status page.
    fn protocol(&self) -> String {
        String::new()
    }
}

/// A sink type's validated configuration (its `config.rs`): how to build the sink.
/// Registered in [`crate::config::registry::SINK_TYPES`].
pub trait SinkConfig: Component + Clone {
    fn build(&self, ctx: &SinkContext) -> anyhow::Result<Arc<dyn Sink>>;
}

/// Any sink's configuration, as the relay holds it ([`SinkConfig`] behind a pointer).
pub trait SinkSpec: std::fmt::Debug + Send + Sync {
    /// The `type` it was read as.
    fn type_name(&self) -> &'static str;
    fn name(&self) -> &str;
    fn build(&self, ctx: &SinkContext) -> anyhow::Result<Arc<dyn Sink>>;
    /// Its table as `pushrelay config` prints it.
    fn printable(&self) -> Result<toml::Table, String>;
    /// For tests and tools that need the concrete configuration back.
    fn as_any(&self) -> &dyn std::any::Any;
    /// Whether `other` is the same configuration (a reload keeps such a sink running).
    fn same_as(&self, other: &dyn SinkSpec) -> bool;
}

impl<C: SinkConfig> SinkSpec for C {
    fn same_as(&self, other: &dyn SinkSpec) -> bool {
        other.as_any().downcast_ref::<C>() == Some(self)
    }
    fn type_name(&self) -> &'static str {
        C::TYPE
    }
    fn name(&self) -> &str {
        Component::name(self)
    }
    fn build(&self, ctx: &SinkContext) -> anyhow::Result<Arc<dyn Sink>> {
        SinkConfig::build(self, ctx)
    }
    fn printable(&self) -> Result<toml::Table, String> {
        crate::config::printable(self)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl dyn SinkSpec {
    /// The concrete configuration, if it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }
}

/// Human-friendly duration for log lines, to the second.
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}
