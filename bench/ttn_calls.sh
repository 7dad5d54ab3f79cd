#!/bin/sh
# The ttn source's benchmark note (README, docs/ttn.md): API calls per cycle for N gateways,
# batch vs per-gateway, counted by the simulated Stack; and the release relay's RSS while it
# polls 100 simulated gateways every 2 s. Takes a release build (a few minutes) plus ~1 minute.
set -eu
cd "$(dirname "$0")/.."
exec cargo test --release --test integration -- --ignored --nocapture ttn::bench_api_calls_and_rss
