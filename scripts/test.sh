#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): fetches the real receivers the
# integration tests start (Prometheus, VictoriaMetrics, Pushgateway from Debian packages) and
# emqx-client-monitor 0.3.1 from PyPI (for the EMQX differential test) and Debian's mosquitto
# (the broker of the ttn_devices tests) and Debian's chromium and tesseract (the status page,
# rendered and read back), then checks formatting and lints and runs every test,
# the slow (`#[ignore]`d) ones included. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch-receivers.sh
bash scripts/fetch-emqx-client-monitor.sh
bash scripts/fetch-mosquitto.sh
bash scripts/fetch-browser.sh   # Chromium and tesseract for the status-page test
cargo fmt --all -- --check
# fuzz/ is its own workspace; its lock must follow the crate's dependencies, or the fuzz run
# rewrites it and the release step's "same commit, same bytes" check sees a dirty checkout.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null ||
    { echo "test: fuzz/Cargo.lock is stale: run 'cargo update -w --manifest-path fuzz/Cargo.toml' and commit it" >&2; exit 1; }
cargo clippy --all-targets -- -D warnings
cargo test --bench encode   # the benchmark builds and runs once, quickly
cargo test              # unit, integration and doc tests: one real-process test per failure class
cargo test -- --ignored # the slow ones (the long real-process variants)
