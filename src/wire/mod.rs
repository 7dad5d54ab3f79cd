//! Wire formats the sinks speak: remote-write protobuf (here) and Pushgateway paths.
//!
//! The text exposition format lives in [`crate::expfmt`] because the scrape source reads it too.

pub mod form;
pub mod pushgateway;
pub mod remote_write;
pub mod v2;

/// Messages generated from `proto/remote_write_v2.proto` by `build.rs`.
pub mod proto_v2 {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// Messages generated from `proto/remote_write_v1.proto` by `build.rs`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));

    impl TimeSeries {
        /// The value of its `__name__` label ("" without one).
        pub fn metric_name(&self) -> &str {
            self.labels
                .iter()
                .find(|l| l.name == "__name__")
                .map_or("", |l| l.value.as_str())
        }
    }
}
