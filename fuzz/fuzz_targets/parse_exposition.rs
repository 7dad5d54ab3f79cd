//! Fuzz target: the classic text-format parser never panics, and what it accepts survives a
//! round trip through the writer: the same series (names, labels, value bits, timestamps).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushrelay::expfmt::{parse, parse_bytes, same_series, to_text};

fuzz_target!(|data: &[u8]| {
    let Ok(families) = parse_bytes(data) else {
        return;
    };
    let written = to_text(&families, true);
    let again = match parse(&written) {
        Ok(f) => f,
        Err(e) => panic!("writer output refused: {e}\ninput: {data:?}\nwritten: {written:?}"),
    };
    assert!(
        same_series(&families, &again),
        "round trip differs\ninput: {data:?}\nwritten: {written:?}\nfirst: {families:#?}\nagain: {again:#?}"
    );
    // Without timestamps the output must still parse, and carry none.
    let bare = to_text(&families, false);
    let again = match parse(&bare) {
        Ok(f) => f,
        Err(e) => panic!("writer output refused: {e}\nwritten: {bare:?}"),
    };
    assert!(again
        .iter()
        .flat_map(|f| &f.samples)
        .all(|s| s.timestamp_ms.is_none()));
});
