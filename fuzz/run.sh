#!/usr/bin/env bash
# Fuzzes the exposition parsers and their round trip through the writer.
# Usage: fuzz/run.sh [seconds] [target]   (default 60 s, parse_exposition; the other target is
# parse_openmetrics; from anywhere)
# New interesting inputs go to fuzz/corpus/ (gitignored); a failing input is written to
# fuzz/artifacts/ and the script exits non-zero.
set -euo pipefail

secs="${1:-60}"
target="${2:-parse_exposition}"
seeds="fuzz/seeds"
if [ "$target" = parse_openmetrics ]; then seeds="fuzz/seeds_openmetrics"; fi
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs nightly flags (-Zsanitizer); use a nightly toolchain when rustup has
# one, otherwise let the stable compiler accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

# A stale fuzz/Cargo.lock would be rewritten by the run and leave the checkout dirty.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null ||
    { echo "fuzz: fuzz/Cargo.lock is stale: run 'cargo update -w --manifest-path fuzz/Cargo.toml' and commit it" >&2; exit 1; }

corpus="fuzz/corpus/$target"
mkdir -p "$corpus"
"${fuzz[@]}" run "$target" "$corpus" "$seeds" -- \
    -max_total_time="$secs" \
    -dict=fuzz/exposition.dict \
    -max_len=4096 \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -print_final_stats=1
