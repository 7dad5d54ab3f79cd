//! pushrelay: polls metrics from places nobody can scrape and pushes them out.
//!
//! Code map, in the order a sample travels (see ARCHITECTURE.md for the invariants):
//! - [`config`]: the TOML file, read raw (with positions) then validated into [`config::Config`].
//! - [`sources`]: what is polled ([`sources::scrape`] reads a Prometheus exporter).
//! - [`expfmt`]: the text exposition format: parser (scrape) and writer (Pushgateway, `print`).
//! - [`model`]: samples, labels, families, snapshots: the data every part shares.
//! - [`relay`]: scheduling and wiring; [`relay::prepare`] adds `job`/`instance`/external
//!   labels, `up` and stale markers.
//! - [`sinks`]: remote-write and Pushgateway delivery, with retry, backoff and rate limits.
//! - [`buffer`]: the queue where encoded remote-write batches wait.
//! - [`wire`]: remote-write protobuf + snappy, Pushgateway paths.
//! - [`http`]: client construction, response classification, a tiny server.
//! - [`self_metrics`]: the relay's own `pushrelay_*` metrics; [`build_info`]: version, commit, target.
//! - [`cli`] and [`demo`]: the command line; [`sim`]: simulated upstreams and receiver.

pub mod buffer;
pub mod build_info;
pub mod cli;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod expfmt;
pub mod http;
pub mod model;
pub mod relay;
pub mod self_metrics;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sinks;
pub mod sources;
pub mod wire;
