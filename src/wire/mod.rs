//! Wire formats the sinks speak: remote-write protobuf (here) and Pushgateway paths.
//!
//! The text exposition format lives in [`crate::expfmt`] because the scrape source reads it too.

pub mod pushgateway;
pub mod remote_write;

/// Messages generated from `proto/remote_write_v1.proto` by `build.rs`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}
