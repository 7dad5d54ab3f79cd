//! Fuzz target: the OpenMetrics parser never panics, and what it accepts, written back in the
//! classic text format, parses to the same series (gauge histograms aside: the classic format
//! has no such type, and its reader normalises their `le`; negative timestamps, which the
//! classic format cannot write, are left out of the comparison).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushrelay::expfmt::{openmetrics, parse, same_series, to_text};
use pushrelay::model::MetricType;

fuzz_target!(|data: &[u8]| {
    let Ok(mut families) = openmetrics::parse(data) else {
        return;
    };
    // OpenMetrics allows timestamps before 1970; the classic format has no sign for them.
    for s in families.iter_mut().flat_map(|f| f.samples.iter_mut()) {
        if s.timestamp_ms.is_some_and(|t| t < 0) {
            s.timestamp_ms = None;
        }
    }
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
