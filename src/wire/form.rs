//! The forms a remote-write batch goes out in (1.0 or 2.0, snappy or zstd), their headers, and
//! the conversion from the queue's neutral form (1.0, snappy) to each.
//!
//! Queued batches always stay in the neutral form, which every receiver takes, so a receiver
//! that turns out not to take 2.0 or zstd never strands a queued batch: the sender converts
//! each batch when it sends it.

use serde::{Deserialize, Serialize};

use super::remote_write::{self as rw, DecodeError};

/// Which remote-write message a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    V1,
    V2,
}

/// How a request body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Snappy,
    Zstd,
}

/// The zstd level for a body of `raw_len` bytes (protobuf before compression), chosen by
/// measurement on remote-write bodies of two exporter shapes, 1 to 32 polls (bench/RESULTS.md):
/// level 6 by default (0.2 ms per 43 KB on this x86 machine; 1-3 are 8 % larger, 9-13 no
/// smaller). `strong` (`profile = "metered"`, where bytes cost more than CPU) takes level 15
/// for bodies up to [`STRONG_ZSTD_MAX`]: 5-8 % smaller for 10-25x the CPU, about 8 ms for one
/// 300-series poll and 20 ms at the bound here, by estimate 10x that on a Pi Zero class CPU,
/// once per request (every 3 minutes when metered). By default that CPU would double the
/// relay's own per poll at a few thousand series.
/// `Effort::Backlog` (a backlog being drained, request after request) takes level 1: 0.4-3 %
/// larger than level 3 (merged backlog requests of the simulator, one- and four-scrape bodies
/// of 300 series) for about three quarters of its CPU, and a small fraction of level 6's
/// (bench/RESULTS.md), so a drain is bound by the link, not by compression.
pub fn zstd_level(raw_len: usize, effort: Effort) -> i32 {
    match effort {
        Effort::Strong if raw_len <= STRONG_ZSTD_MAX => 15,
        Effort::Backlog => 1,
        _ => 6,
    }
}

/// How hard to compress a request (see [`zstd_level`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// A request of the steady state.
    Normal,
    /// `profile = "metered"`: bytes cost more than CPU.
    Strong,
    /// One of many requests of a backlog being drained.
    Backlog,
}

/// The largest body (before compression) that gets the strong zstd level (a metered request
/// of about 300 series and 3 minutes of 15 s polls).
pub const STRONG_ZSTD_MAX: usize = 128 << 10;

/// What one request is: the message and its compression. 2.0 is always snappy (its
/// specification allows nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Form {
    pub protocol: Protocol,
    pub compression: Compression,
}

/// The header VictoriaMetrics reads to accept zstd on its remote-write endpoint.
pub const VM_VERSION_HEADER: &str = "X-VictoriaMetrics-Remote-Write-Version";
/// The content type of a remote-write 2.0 request.
pub const V2_CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
/// The version a remote-write 2.0 request announces.
pub const V2_VERSION: &str = "2.0.0";
/// Headers a 2.0 receiver answers with; a 2xx without them comes from a 1.0-only receiver.
pub const V2_WRITTEN_HEADERS: [&str; 3] = [
    "x-prometheus-remote-write-samples-written",
    "x-prometheus-remote-write-histograms-written",
    "x-prometheus-remote-write-exemplars-written",
];

impl Form {
    /// The neutral form: what the queue holds.
    pub const NEUTRAL: Form = Form {
        protocol: Protocol::V1,
        compression: Compression::Snappy,
    };

    /// `(name, value)` of the headers that describe the body (besides `Content-Length`).
    pub fn headers(self) -> Vec<(&'static str, &'static str)> {
        let encoding = match self.compression {
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        };
        let mut h = vec![("content-encoding", encoding)];
        match self.protocol {
            Protocol::V1 => {
                h.push(("content-type", rw::CONTENT_TYPE));
                h.push((rw::VERSION_HEADER, rw::VERSION));
                if self.compression == Compression::Zstd {
                    h.push((VM_VERSION_HEADER, "1"));
                }
            }
            Protocol::V2 => {
                h.push(("content-type", V2_CONTENT_TYPE));
                h.push((rw::VERSION_HEADER, V2_VERSION));
            }
        }
        h
    }

    /// What the status page and logs call it.
    pub fn describe(self) -> &'static str {
        match (self.protocol, self.compression) {
            (Protocol::V1, Compression::Snappy) => "remote-write 1.0, snappy",
            (Protocol::V1, Compression::Zstd) => "remote-write 1.0, zstd",
            (Protocol::V2, _) => "remote-write 2.0, snappy",
        }
    }
}

/// Converts a request's body to `form`. A body in the neutral form (1.0, snappy) that goes out
/// in it is returned as it is (no work on the common path); a merged one (bare protobuf) is
/// compressed once, in the form it goes out in. `effort`: see [`zstd_level`].
pub fn convert(body: &rw::Body, form: Form, effort: Effort) -> Result<bytes::Bytes, DecodeError> {
    use prost::Message;
    match (form.protocol, form.compression) {
        (Protocol::V1, Compression::Snappy) => Ok(body.neutral()),
        (Protocol::V1, Compression::Zstd) => Ok(zstd_compress(&body.raw()?, effort).into()),
        (Protocol::V2, _) => {
            let req = super::proto::WriteRequest::decode(body.raw()?)?;
            Ok(super::v2::compress(&super::v2::from_v1(req)).into())
        }
    }
}

/// A batch in the neutral form split into its first series (with the metadata of its family)
/// and the rest: a form is tried on the first part before the rest goes out in it. The rest
/// never repeats the first part's samples (a receiver such as Prometheus refuses a sample
/// older than one it has for the series). `None` when the batch holds one series or fewer (it
/// is its own probe) or cannot be decoded.
pub fn split_probe(batch: &rw::EncodedBatch) -> Option<(rw::EncodedBatch, rw::EncodedBatch)> {
    let mut rest = rw::decode(&batch.body).ok()?;
    if rest.timeseries.len() < 2 {
        return None;
    }
    let first = rest.timeseries.remove(0);
    let name = first.metric_name();
    let metadata = rest
        .metadata
        .iter()
        .filter(|m| name.starts_with(m.metric_family_name.as_str()))
        .cloned()
        .collect();
    let part = |req: &super::proto::WriteRequest| {
        let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
        let oldest_ms = req
            .timeseries
            .iter()
            .filter_map(|t| t.samples.iter().map(|s| s.timestamp).min())
            .min()
            .unwrap_or(batch.oldest_ms);
        rw::EncodedBatch {
            samples,
            body: rw::compress(req).into(),
            oldest_ms,
        }
    };
    let probe = super::proto::WriteRequest {
        timeseries: vec![first],
        metadata,
    };
    Some((part(&probe), part(&rest)))
}

/// zstd-compresses `raw` into one frame (with the content size, without a checksum).
///
/// A new context each time: keeping one per thread would save about half of a drain's zstd
/// time, but raised its peak RSS over 16 MiB (measured, bench/RESULTS.md).
pub fn zstd_compress(raw: &[u8], effort: Effort) -> Vec<u8> {
    // Compressing an in-memory buffer fails only on allocation failure or a bad level.
    zstd::bulk::compress(raw, zstd_level(raw.len(), effort)).expect("zstd level is valid")
}

/// Decompresses a zstd body of at most `limit` bytes (the tests' receivers use this).
pub fn zstd_decompress(body: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
    zstd::bulk::decompress(body, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use prost::Message;

    fn neutral() -> bytes::Bytes {
        let mut b = rw::BatchBuilder::new();
        let l = Labels::from_pairs([("job", "j")]).unwrap();
        for t in 0..50 {
            b.add("m", &l, 1000 * t, t as f64);
        }
        b.finish().body
    }

    #[test]
    fn neutral_form_is_sent_as_it_is() {
        let n = neutral();
        let out = convert(&rw::Body::Neutral(n.clone()), Form::NEUTRAL, Effort::Normal).unwrap();
        assert_eq!(out.as_ptr(), n.as_ptr(), "no copy, no work");
    }

    #[test]
    fn zstd_body_is_the_same_request() {
        let n = neutral();
        let z = convert(
            &rw::Body::Neutral(n.clone()),
            Form {
                protocol: Protocol::V1,
                compression: Compression::Zstd,
            },
            Effort::Normal,
        )
        .unwrap();
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
        let raw = zstd_decompress(&z, 1 << 20).unwrap();
        let req = crate::wire::proto::WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req, rw::decode(&n).unwrap());
    }

    /// A merged body (bare protobuf) goes out in every form byte for byte as its neutral twin.
    #[test]
    fn raw_body_goes_out_as_its_neutral_twin() {
        let n = neutral();
        let raw = snap::raw::Decoder::new().decompress_vec(&n).unwrap();
        let raw = rw::Body::Raw(raw.into());
        assert_eq!(raw.neutral(), n);
        for protocol in [Protocol::V1, Protocol::V2] {
            for compression in [Compression::Snappy, Compression::Zstd] {
                let form = Form {
                    protocol,
                    compression,
                };
                let neutral = rw::Body::Neutral(n.clone());
                assert_eq!(
                    convert(&raw, form, Effort::Backlog).unwrap(),
                    convert(&neutral, form, Effort::Backlog).unwrap(),
                    "{form:?}"
                );
            }
        }
    }

    #[test]
    fn headers_of_each_form() {
        let zstd = Form {
            protocol: Protocol::V1,
            compression: Compression::Zstd,
        };
        assert!(zstd.headers().contains(&(VM_VERSION_HEADER, "1")));
        assert!(zstd.headers().contains(&("content-encoding", "zstd")));
        assert!(!Form::NEUTRAL
            .headers()
            .iter()
            .any(|(k, _)| *k == VM_VERSION_HEADER));
        let v2 = Form {
            protocol: Protocol::V2,
            compression: Compression::Snappy,
        };
        assert!(v2.headers().contains(&(rw::VERSION_HEADER, "2.0.0")));
        assert!(v2.headers().contains(&("content-type", V2_CONTENT_TYPE)));
    }
}
