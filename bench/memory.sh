#!/usr/bin/env bash
# Peak RSS of one poll of the largest answer each source reads with its default limits: builds
# the release binary and runs bench/memory.py on it and on any earlier builds given (measured
# side by side in one run). Usage: bench/memory.sh [BEFORE_BINARY...]; see bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/memory.py "$@" target/release/pushrelay
