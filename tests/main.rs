//! The integration tests, as one test binary: each `tests/<name>.rs` is a module here, so the
//! crate is linked once and `cargo test` runs every file's tests in parallel with each other
//! (they mostly wait on real receivers and relays, not on the CPU). `tests/release_binary.rs`
//! stays a target of its own: scripts/test-release.sh runs it against a cross-built binary.
//! A new test file must be declared below; `every_test_file_is_a_module` fails until it is.

mod support;

mod alerts;
mod cli;
mod dashboards;
mod durable_queue;
mod emqx;
mod emqx_differential;
mod expfmt_nasty;
mod field_faults;
mod limits;
mod linkhub;
mod linkhub_dashboard;
mod migrate;
mod operate;
mod pushgateway;
mod readme;
mod receivers_smoke;
mod remote_write;
mod scrape_compat;
mod scrape_options;
mod security;
mod sender_cases;
mod ttn;
mod ttn_devices;
mod wire_negotiation;

/// `autotests = false` (Cargo.toml) means a file under tests/ that is not declared above would
/// silently never run: this fails instead, naming it.
#[test]
fn every_test_file_is_a_module() {
    let main = include_str!("main.rs");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    for entry in std::fs::read_dir(dir).expect("tests/ is readable") {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module == "main" || module == "release_binary" {
            continue;
        }
        assert!(
            main.contains(&format!("\nmod {module};\n")),
            "tests/{name} is not part of the test binary: add `mod {module};` to tests/main.rs"
        );
    }
}
