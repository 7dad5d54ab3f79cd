//! Remote-write 2.0 encoding: a 1.0 request converted to a 2.0 `Request` (symbols table, label
//! references, metadata per series), protobuf, snappy block.

use std::collections::HashMap;

use prost::Message;

use super::proto;
use super::proto_v2 as v2;
use super::remote_write::DecodeError;

/// Interns strings into a request's symbols table; `symbols[0]` is `""`.
struct Symbols {
    table: Vec<String>,
    index: HashMap<String, u32>,
}

impl Symbols {
    fn new() -> Symbols {
        Symbols {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The family a series belongs to, among those whose metadata the request carries: its own
/// name, else its name without a suffix histograms, summaries and counters add.
fn family_of<'a, T>(name: &str, families: &'a HashMap<&str, T>) -> Option<&'a T> {
    if let Some(m) = families.get(name) {
        return Some(m);
    }
    const SUFFIXES: [&str; 8] = [
        "_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum", "_info",
    ];
    SUFFIXES
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find_map(|base| families.get(base))
}

/// The 2.0 request holding what a 1.0 request holds. Series keep their order, labels their
/// (sorted) order; each series gets the metadata the 1.0 request carries for its family.
pub fn from_v1(req: proto::WriteRequest) -> v2::Request {
    let mut symbols = Symbols::new();
    let families: HashMap<&str, &proto::MetricMetadata> = req
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m))
        .collect();
    let mut timeseries = Vec::with_capacity(req.timeseries.len());
    for ts in &req.timeseries {
        let mut labels_refs = Vec::with_capacity(ts.labels.len() * 2);
        let mut name = "";
        for l in &ts.labels {
            if l.name == "__name__" {
                name = &l.value;
            }
            labels_refs.push(symbols.intern(&l.name));
            labels_refs.push(symbols.intern(&l.value));
        }
        let metadata = family_of(name, &families).map(|m| v2::Metadata {
            // The 1.0 and 2.0 enums number the types alike (UNKNOWN = UNSPECIFIED = 0).
            r#type: m.r#type,
            help_ref: if m.help.is_empty() {
                0
            } else {
                symbols.intern(&m.help)
            },
            unit_ref: if m.unit.is_empty() {
                0
            } else {
                symbols.intern(&m.unit)
            },
        });
        timeseries.push(v2::TimeSeries {
            labels_refs,
            samples: ts
                .samples
                .iter()
                .map(|s| v2::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            metadata,
        });
    }
    v2::Request {
        symbols: symbols.table,
        timeseries,
    }
}

/// The 1.0 request holding what a 2.0 request holds (the demo's receiver reads 2.0 so); metadata
/// per family, from the first series that carries it. A reference outside the symbols table
/// reads as `""`.
pub fn to_v1(req: v2::Request) -> proto::WriteRequest {
    let sym = |i: u32| req.symbols.get(i as usize).cloned().unwrap_or_default();
    let mut metadata: Vec<proto::MetricMetadata> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let timeseries = req
        .timeseries
        .iter()
        .map(|ts| {
            let labels: Vec<proto::Label> = ts
                .labels_refs
                .chunks_exact(2)
                .map(|p| proto::Label {
                    name: sym(p[0]),
                    value: sym(p[1]),
                })
                .collect();
            if let (Some(m), Some(name)) =
                (ts.metadata, labels.iter().find(|l| l.name == "__name__"))
            {
                if seen.insert(name.value.clone()) {
                    metadata.push(proto::MetricMetadata {
                        r#type: m.r#type,
                        metric_family_name: name.value.clone(),
                        help: sym(m.help_ref),
                        unit: sym(m.unit_ref),
                    });
                }
            }
            proto::TimeSeries {
                labels,
                samples: ts
                    .samples
                    .iter()
                    .map(|s| proto::Sample {
                        value: s.value,
                        timestamp: s.timestamp,
                    })
                    .collect(),
            }
        })
        .collect();
    proto::WriteRequest {
        timeseries,
        metadata,
    }
}

/// Protobuf-encodes and snappy-compresses (block format) a 2.0 request.
pub fn compress(req: &v2::Request) -> Vec<u8> {
    let raw = req.encode_to_vec();
    // Fails only for inputs over ~4 GiB, which a bounded batch never reaches.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy input within size limits")
}

/// Decompresses and decodes a 2.0 body (the tests use this).
pub fn decode(body: &[u8]) -> Result<v2::Request, DecodeError> {
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(v2::Request::decode(raw.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{is_stale_nan, stale_nan, Family, Labels, MetricType};
    use crate::wire::remote_write::BatchBuilder;

    #[test]
    fn symbols_labels_samples_and_metadata_survive() {
        let mut b = BatchBuilder::new();
        let l = |i: &str| Labels::from_pairs([("job", "j"), ("le", i)]).unwrap();
        let mut h = Family::new("req_seconds", MetricType::Histogram, "Request time.");
        h.unit = "seconds".into();
        b.add_metadata(&h);
        b.add("req_seconds_bucket", &l("1"), 1000, 3.0);
        b.add("req_seconds_bucket", &l("+Inf"), 1000, 4.0);
        b.add("req_seconds_bucket", &l("1"), 2000, stale_nan());
        b.add("other", &Labels::new(), 1000, 1.5);
        let req = crate::wire::remote_write::decode(&b.finish().body).unwrap();
        let out = decode(&compress(&from_v1(req))).unwrap();
        assert_eq!(out.symbols[0], "");
        let uniq: std::collections::HashSet<_> = out.symbols.iter().collect();
        assert_eq!(uniq.len(), out.symbols.len(), "each string once");
        let labels = |ts: &v2::TimeSeries| -> Vec<(String, String)> {
            ts.labels_refs
                .chunks(2)
                .map(|p| {
                    (
                        out.symbols[p[0] as usize].clone(),
                        out.symbols[p[1] as usize].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(out.timeseries.len(), 3);
        let first = &out.timeseries[0];
        assert_eq!(
            labels(first),
            [
                ("__name__".to_string(), "req_seconds_bucket".to_string()),
                ("job".into(), "j".into()),
                ("le".into(), "1".into())
            ]
        );
        assert_eq!(first.samples.len(), 2);
        assert_eq!(first.samples[0].value, 3.0);
        assert!(is_stale_nan(first.samples[1].value));
        let md = first.metadata.unwrap();
        assert_eq!(md.r#type, v2::metadata::MetricType::Histogram as i32);
        assert_eq!(out.symbols[md.help_ref as usize], "Request time.");
        assert_eq!(out.symbols[md.unit_ref as usize], "seconds");
        assert!(out.timeseries[2].metadata.is_none(), "no family metadata");
    }
}
