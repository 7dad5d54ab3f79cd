//! Fuzz target: the text-format parser never panics, and what it accepts survives a round
//! trip through the writer unchanged (values compared by bits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushrelay::expfmt::{parse, same_families, to_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(families) = parse(text) else {
        return;
    };
    let written = to_text(&families, true);
    let again = match parse(&written) {
        Ok(f) => f,
        Err(e) => panic!("writer output refused: {e}\ninput: {text:?}\nwritten: {written:?}"),
    };
    assert!(
        same_families(&families, &again),
        "round trip differs\ninput: {text:?}\nwritten: {written:?}\nfirst: {families:#?}\nagain: {again:#?}"
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
