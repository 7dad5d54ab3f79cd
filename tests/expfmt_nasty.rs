//! Replays the fuzz seeds (and, on request, a whole fuzz corpus) through the parsers and the
//! writer, so the fuzz targets' properties are checked by `cargo test` too.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pushrelay::expfmt::{openmetrics, parse, parse_bytes, same_series, to_text};

/// Checks one input; returns whether the parser accepted it.
fn check(name: &str, text: &[u8]) -> bool {
    let Ok(families) = parse_bytes(text) else {
        return false;
    };
    let written = to_text(&families, true);
    let again =
        parse(&written).unwrap_or_else(|e| panic!("{name}: writer output refused: {e}\n{written}"));
    assert!(
        same_series(&families, &again),
        "{name}: round trip differs\nwritten: {written:?}\nfirst: {families:#?}\nagain: {again:#?}"
    );
    let bare = parse(&to_text(&families, false)).unwrap();
    assert!(bare
        .iter()
        .flat_map(|f| &f.samples)
        .all(|s| s.timestamp_ms.is_none()));
    true
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn fuzz_seeds_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let paths = files(&dir);
    assert!(paths.len() >= 5, "seeds missing in {}", dir.display());
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let accepted = check(&name, &bytes);
        assert_eq!(
            accepted,
            !name.starts_with("error_"),
            "{name}: {:?}",
            parse_bytes(&bytes).err()
        );
    }
}

#[test]
fn openmetrics_seeds_read_back_in_the_classic_format() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds_openmetrics");
    let mut accepted = 0;
    for path in files(&dir) {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(mut families) = openmetrics::parse(&bytes) else {
            continue;
        };
        // The classic format cannot write a timestamp before 1970.
        for s in families.iter_mut().flat_map(|f| f.samples.iter_mut()) {
            if s.timestamp_ms.is_some_and(|t| t < 0) {
                s.timestamp_ms = None;
            }
        }
        accepted += 1;
        let written = to_text(&families, true);
        let again =
            parse(&written).unwrap_or_else(|e| panic!("{}: {e}\n{written}", path.display()));
        if families
            .iter()
            .all(|f| f.kind != pushrelay::model::MetricType::GaugeHistogram)
        {
            assert!(same_series(&families, &again), "{}", path.display());
        }
    }
    assert!(accepted >= 3, "{accepted}");
}

/// `EXPFMT_CORPUS=fuzz/corpus/parse_exposition cargo test --test expfmt_nasty -- --nocapture`
#[test]
fn fuzz_corpus_round_trips_when_given() {
    let Some(dir) = std::env::var_os("EXPFMT_CORPUS") else {
        return;
    };
    let (mut total, mut accepted) = (0, 0);
    for path in files(Path::new(&dir)) {
        let bytes = std::fs::read(&path).unwrap();
        total += 1;
        if check(&path.display().to_string(), &bytes) {
            accepted += 1;
        }
    }
    println!("corpus: {total} inputs, {accepted} accepted and round-tripped");
}

#[test]
fn big_realistic_scrape() {
    let text = realistic(5000);
    let families = parse(&text).unwrap();
    let samples: usize = families.iter().map(|f| f.samples.len()).sum();
    assert_eq!(samples, 5000);
    assert!(check("realistic", text.as_bytes()));
}

/// `cargo test --release --test expfmt_nasty -- --ignored --nocapture`
#[test]
#[ignore]
fn parse_speed() {
    let text = realistic(5000);
    let runs = 50;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(parse(std::hint::black_box(&text)).unwrap());
    }
    let per = start.elapsed() / runs;
    println!("{} bytes, 5000 series: {per:?} per parse", text.len());
    let families = parse(&text).unwrap();
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(to_text(std::hint::black_box(&families), false));
    }
    println!("{:?} per write", start.elapsed() / runs);
}

/// A node_exporter-like body with `n` series: counters, gauges and histograms.
fn realistic(n: usize) -> String {
    let mut out = String::new();
    let mut left = n;
    let mut fam = 0;
    while left > 0 {
        fam += 1;
        match fam % 3 {
            0 => {
                out.push_str(&format!(
                    "# HELP req{fam}_seconds Request latency.\n# TYPE req{fam}_seconds histogram\n"
                ));
                for le in ["0.005", "0.01", "0.1", "1", "+Inf"] {
                    if left < 3 {
                        break;
                    }
                    out.push_str(&format!(
                        "req{fam}_seconds_bucket{{handler=\"/api/v1/query\",method=\"GET\",le=\"{le}\"}} {left}\n"
                    ));
                    left -= 1;
                }
                out.push_str(&format!(
                    "req{fam}_seconds_sum{{handler=\"/api/v1/query\",method=\"GET\"}} 12.5\n"
                ));
                out.push_str(&format!(
                    "req{fam}_seconds_count{{handler=\"/api/v1/query\",method=\"GET\"}} 100\n"
                ));
                left = left.saturating_sub(2);
            }
            1 => {
                out.push_str(&format!(
                    "# HELP node_thing{fam}_total Seconds the CPUs spent.\n# TYPE node_thing{fam}_total counter\n"
                ));
                for cpu in 0..40.min(left) {
                    out.push_str(&format!(
                        "node_thing{fam}_total{{cpu=\"{cpu}\",mode=\"idle\"}} 1.17487921e+06\n"
                    ));
                    left -= 1;
                }
            }
            _ => {
                out.push_str(&format!(
                    "# HELP gauge{fam} A gauge.\n# TYPE gauge{fam} gauge\n"
                ));
                for dev in 0..20.min(left) {
                    out.push_str(&format!(
                        "gauge{fam}{{device=\"/dev/sd{dev}\",fstype=\"ext4\",mountpoint=\"/mnt/{dev}\"}} 2.4081989632e+10\n"
                    ));
                    left -= 1;
                }
            }
        }
    }
    out
}
