//! Encode + compress throughput of remote-write 1.0 batches (samples/s), and the compressed size
//! per sample of each batch shape.
//!
//! Run with `cargo bench --bench encode` (about half a minute; pass a filter such as
//! `cargo bench --bench encode -- scrape4` to run fewer). The inputs are the simulated exporter
//! that `pushrelay sim` serves (`--devices 7`: ~330 series, 1 to 3 own labels each), parsed and
//! labelled as the relay does (`job`, `instance`, an external `site`), so a series carries about
//! 6 labels with `__name__`. What is timed is what the remote-write sink does per batch: one
//! `BatchBuilder::add` per sample, then `finish()` (group per series, protobuf, snappy block).
//!
//! Variants (one scrape every 15 s, values moving between scrapes):
//! - `scrape1`: one scrape per batch (the default `batch_wait = "5s"`): 1 sample per series;
//! - `scrape4`: four scrapes per batch (`batch_wait = "60s"`): 4 samples per series;
//! - `scrape6`: six scrapes, ~2000 samples (the default `max_samples_per_send`) over ~330 series;
//! - `series2000`: one scrape of a 57-device exporter: ~2000 series, 1 sample each.
//!
//! `stages/add_scrape1` and `stages/finish_scrape1` split `scrape1` into its two halves.
//! Before the timings, a table of body sizes is printed (bytes per sample, raw and compressed,
//! with and without the metadata a batch carries every 10 minutes); with
//! `PUSHRELAY_BENCH_SUMMARY=<file>` set, the table is also written to that file as Markdown.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use pushrelay::model::{stale_nan, Family, Labels};
use pushrelay::relay::prepare::Preparer;
use pushrelay::wire::remote_write::{decode, BatchBuilder};

/// One sample as the sink hands it to the builder.
struct Item {
    name: String,
    labels: Labels,
    ts: i64,
    value: f64,
}

/// A batch's worth of input: samples in the order the sink adds them, and the families
/// (for the metadata variant).
struct Workload {
    name: &'static str,
    items: Vec<Item>,
    families: Vec<Family>,
    series: usize,
    scrapes: usize,
}

/// `scrapes` consecutive scrapes, 15 s apart, of a simulated exporter with `devices` devices,
/// prepared as the relay prepares them (target labels, `up` & co., stale markers).
fn workload(name: &'static str, devices: usize, scrapes: usize) -> Workload {
    let external = Labels::from_pairs([("site", "lab-1")]).expect("valid label");
    let mut prep = Preparer::new("sim", "127.0.0.1:9100", &external, true);
    let t0 = 1_763_700_000_000i64;
    let mut items = Vec::new();
    let mut families = Vec::new();
    let mut series = std::collections::HashSet::new();
    // Poll 0 warms the preparer up (its stale markers would otherwise be missing).
    for poll in 0..=scrapes {
        let secs = 600.0 + poll as f64 * 15.0;
        // Scrapes start a few ms late, as real ones do.
        let ts = t0 + poll as i64 * 15_000 + (poll as i64 * 7) % 23;
        let text = pushrelay::sim::exposition::render(secs, poll as u64, devices);
        let fams = pushrelay::expfmt::parse(&text).expect("the simulator's exposition parses");
        let snap = prep.prepare(Some(fams), ts, 0.004 + poll as f64 * 1e-4);
        if poll == 0 {
            continue;
        }
        for f in &snap.families {
            for s in &f.samples {
                series.insert((s.name.clone(), s.labels.clone()));
                items.push(Item {
                    name: s.name.to_string(),
                    labels: s.labels.clone(),
                    ts: s.timestamp_ms.unwrap_or(snap.timestamp_ms),
                    value: s.value,
                });
            }
        }
        for (n, l) in &snap.stale {
            series.insert((n.clone(), l.clone()));
            items.push(Item {
                name: n.to_string(),
                labels: l.clone(),
                ts: snap.timestamp_ms,
                value: stale_nan(),
            });
        }
        if families.is_empty() {
            families = snap
                .families
                .iter()
                .filter(|f| !f.samples.is_empty())
                .cloned()
                .collect();
        }
    }
    Workload {
        name,
        items,
        families,
        series: series.len(),
        scrapes,
    }
}

fn fill(w: &Workload, metadata: bool) -> BatchBuilder {
    let mut b = BatchBuilder::new();
    if metadata {
        for f in &w.families {
            b.add_metadata(f);
        }
    }
    for it in &w.items {
        b.add(&it.name, &it.labels, it.ts, it.value);
    }
    b
}

/// Size facts of one workload's body.
struct Sizes {
    raw: usize,
    compressed: usize,
    compressed_meta: usize,
    avg_labels: f64,
}

fn sizes(w: &Workload) -> Sizes {
    let body = fill(w, false).finish();
    assert_eq!(body.samples, w.items.len());
    let req = decode(&body.body).expect("our own body decodes");
    let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    assert_eq!(samples, w.items.len(), "every sample arrives");
    let labels: usize = req.timeseries.iter().map(|t| t.labels.len()).sum();
    let (raw_req, _, _) = fill(w, false).build_request();
    Sizes {
        raw: prost::Message::encoded_len(&raw_req),
        compressed: body.body.len(),
        compressed_meta: fill(w, true).finish().body.len(),
        avg_labels: labels as f64 / req.timeseries.len() as f64,
    }
}

fn size_table(ws: &[Workload]) -> String {
    let mut o = String::from(
        "| variant | scrapes | series | samples | labels/series (incl. `__name__`) | protobuf bytes/sample | snappy bytes/sample | snappy bytes/sample with metadata |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for w in ws {
        let s = sizes(w);
        let n = w.items.len() as f64;
        o.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.2} |\n",
            w.name,
            w.scrapes,
            w.series,
            w.items.len(),
            s.avg_labels,
            s.raw as f64 / n,
            s.compressed as f64 / n,
            s.compressed_meta as f64 / n,
        ));
    }
    o
}

fn main() {
    let ws = [
        workload("scrape1", 7, 1),
        workload("scrape4", 7, 4),
        workload("scrape6", 7, 6),
        workload("series2000", 57, 1),
    ];

    let table = size_table(&ws);
    println!(
        "Remote-write 1.0 body size per batch shape (7-device simulator unless noted):\n\n{table}"
    );
    if let Some(path) = std::env::var_os("PUSHRELAY_BENCH_SUMMARY") {
        if let Err(e) = std::fs::write(&path, &table) {
            eprintln!("cannot write {}: {e}", path.to_string_lossy());
        }
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();

    // Flat sampling: the same iteration count in every sample, so a 15 ms batch fits the short
    // measurement time without criterion asking for more.
    let mut g = c.benchmark_group("encode");
    g.sampling_mode(SamplingMode::Flat);
    for w in &ws {
        g.throughput(Throughput::Elements(w.items.len() as u64));
        g.bench_function(w.name, |b| {
            b.iter(|| {
                let batch = fill(black_box(w), false).finish();
                black_box(batch.body.len())
            })
        });
    }
    g.finish();

    let w = &ws[0];
    let mut g = c.benchmark_group("stages");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(w.items.len() as u64));
    g.bench_function("add_scrape1", |b| {
        b.iter_batched(|| (), |()| fill(black_box(w), false), BatchSize::SmallInput)
    });
    g.bench_function("finish_scrape1", |b| {
        b.iter_batched(
            || fill(w, false),
            |builder| black_box(builder.finish().body.len()),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    c.final_summary();
}
