//! pushrelay: polls metrics from places nobody can scrape and pushes them out.
//!
//! Code map, in the order a sample travels (see ARCHITECTURE.md for the invariants):
//! - [`config`]: the TOML file, read raw (with positions) then validated into [`config::Config`];
//!   each source and sink owns its table (`config.rs` in its folder), listed in
//!   [`config::registry`].
//! - [`sources`]: what is polled ([`sources::scrape`] reads a Prometheus exporter; `ttn`,
//!   `emqx`, `linkhub` read JSON APIs).
//! - [`expfmt`]: the text exposition format: parser (scrape) and writer (Pushgateway, `print`).
//! - [`model`]: samples, labels, families, snapshots: the data every part shares.
//! - [`relay`]: scheduling and wiring; [`relay::prepare`] adds `job`/`instance`/external
//!   labels, `up` and stale markers.
//! - [`sinks`]: remote-write and Pushgateway delivery, with retry, backoff and rate limits.
//! - [`buffer`]: the queue where encoded remote-write batches wait; [`files`]: private files.
//! - [`wire`]: remote-write protobuf + snappy, Pushgateway paths.
//! - [`http`]: client construction, response classification, a tiny server.
//! - [`self_metrics`]: the relay's own `pushrelay_*` metrics; [`status`]: the status page and
//!   readiness; [`build_info`]: version, commit, target.
//! - [`clock`]: tokio's clock for deadlines, one injectable wall clock for sample times.
//! - [`cli`] and [`demo`]: the command line ([`report`]: its tables; [`signals`]: SIGTERM,
//!   SIGHUP); [`sim`]: simulated upstreams and receiver.

pub mod buffer;
pub mod build_info;
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod expfmt;
pub mod files;
pub mod http;
pub mod migrate;
pub mod model;
pub mod relabel;
pub mod relay;
pub mod report;
pub mod self_metrics;
pub mod signals;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod wire;

/// A boxed future, so sources and sinks can be kept as trait objects.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
