//! Fuzz target: the OpenMetrics parser never panics, and what it accepts, written back in the
//! classic text format, parses to the same series (gauge histograms aside: the classic format
//! has no such type, and its reader normalises their `le`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushrelay::expfmt::{openmetrics, parse, same_series, to_text};
use pushrelay::model::MetricType;

fuzz_target!(|data: &[u8]| {
    let Ok(families) = openmetrics::parse(data) else {
        return;
    };
    let written = to_text(&families, true);
    let again = match parse(&written) {
        Ok(f) => f,
        Err(e) => panic!("writer output refused: {e}\ninput: {data:?}\nwritten: {written:?}"),
    };
    if families.iter().all(|f| f.kind != MetricType::GaugeHistogram) {
        assert!(
            same_series(&families, &again),
            "round trip differs\ninput: {data:?}\nwritten: {written:?}\nfirst: {families:#?}\nagain: {again:#?}"
        );
    }
});
