//! LoRaWAN device health and sensor values from The Things Stack's MQTT server (outbound
//! only): a push-shaped source.
//!
//! [`Source::start`] spawns the MQTT session task ([`client`]), which subscribes to the
//! application's `up` and `join` topics and feeds every message into the shared state
//! ([`tracker`]: frame-counter gaps, sessions, last-heard, radio metadata; [`payload`]: sensor
//! values). `collect` only reads that state on the source's interval, turns it into families
//! ([`metrics`]) and saves it (`state_dir`), so counters and last-seen survive restarts. While
//! the session is down, `collect` fails: `up` is 0. See docs/ttn-devices.md.

pub mod client;
pub mod config;
pub mod metrics;
pub mod payload;
pub mod tracker;
pub mod uplink;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{BoxFuture, BuildContext, Source, SourceError, SourceMeta};
use crate::model::Family;
use client::{Session, Shared};
pub use config::TtnDevicesConfig;

pub struct TtnDevicesSource {
    cfg: Arc<TtnDevicesConfig>,
    /// Name, `instance` (the broker's `host:port`), interval and timeout.
    meta: SourceMeta,
    shared: Arc<Shared>,
    ready: watch::Receiver<bool>,
    settled: watch::Receiver<bool>,
    /// Ends the session task when the source is dropped.
    task: Option<DropGuard>,
}

impl TtnDevicesSource {
    pub fn new(cfg: TtnDevicesConfig, ctx: &BuildContext) -> anyhow::Result<TtnDevicesSource> {
        let state_file = ctx.state_file(&cfg.name);
        let saved = state_file.load().unwrap_or_default();
        let shared = Arc::new(Shared::new(saved, state_file, ctx.clock.clone()));
        let host = cfg.host();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(TtnDevicesSource {
            meta: SourceMeta {
                name: cfg.name.clone(),
                instance: format!("{host}:{}", cfg.port()),
                interval: cfg.interval,
                timeout: cfg.timeout,
            },
            ready: shared.ready_signal(),
            settled: shared.settled_signal(),
            shared,
            cfg: Arc::new(cfg),
            task: None,
        })
    }

    fn view(&self) -> (String, impl Fn(&str) -> f64 + '_) {
        let cfg = &self.cfg;
        (cfg.application.clone(), move |id: &str| {
            cfg.expected_interval_of(id).as_secs_f64()
        })
    }
}

impl Source for TtnDevicesSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }

    fn start(&mut self, cancel: CancellationToken) {
        if self.task.is_some() {
            return;
        }
        let token = cancel.child_token();
        tokio::spawn(client::run(
            self.cfg.clone(),
            self.shared.clone(),
            token.clone(),
        ));
        self.task = Some(token.drop_guard());
    }

    fn ready(&mut self) -> BoxFuture<'_, ()> {
        let mut rx = self.ready.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|r| *r).await;
        })
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>> {
        // Started by the relay; started here too for a caller that only collects.
        self.start(CancellationToken::new());
        Box::pin(async move {
            // The first poll waits for the first connection attempt to end, within most of the
            // timeout (the relay's bound is the whole timeout).
            let mut settled = self.settled.clone();
            let _ =
                tokio::time::timeout(self.cfg.timeout.mul_f64(0.9), settled.wait_for(|s| *s)).await;
            let (application, expected) = self.view();
            let view = metrics::View {
                application: &application,
                expected: &expected,
            };
            let mut g = self.shared.lock();
            let g = &mut *g;
            let keep = |id: &str| self.cfg.devices.iter().any(|d| d == id);
            g.saved.forget(
                self.shared.now_ms(),
                self.cfg.forget_after.as_millis() as i64,
                keep,
            );
            g.state_file.save(&g.saved);
            match &g.session {
                Session::Up { .. } => Ok(metrics::families(&g.saved, &view)),
                Session::Down { reason, .. } => {
                    Err(SourceError::Request(format!("MQTT session down: {reason}")))
                }
                Session::Starting => Err(SourceError::Request(format!(
                    "MQTT session not up yet (connecting to {})",
                    self.cfg.url
                ))),
            }
        })
    }

    fn check_summary(&self, _all: bool) -> Option<String> {
        let (application, expected) = self.view();
        let view = metrics::View {
            application: &application,
            expected: &expected,
        };
        let g = self.shared.lock();
        let session = match &g.session {
            Session::Up { .. } => format!(
                "  MQTT: subscribed at {} as {} ({} topics)\n",
                self.cfg.url,
                self.cfg.application,
                client::topics(&self.cfg).len()
            ),
            Session::Down { reason, .. } => format!("  MQTT: down: {reason}\n"),
            Session::Starting => format!("  MQTT: still connecting to {}\n", self.cfg.url),
        };
        Some(session + &metrics::check_table(&g.saved, &view, self.shared.now_ms() as f64 / 1000.0))
    }
}

impl Drop for TtnDevicesSource {
    /// What arrived since the last collect is saved too (a no-op when inspecting).
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        let g = &mut *g;
        g.state_file.save(&g.saved);
    }
}
