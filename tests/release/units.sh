#!/usr/bin/env bash
# Runs the library's unit tests built for TARGET under qemu-user: the 32-bit and big-endian
# problems (64-bit atomics, usize truncation, byte order) that a build alone does not show.
#
# Usage: tests/release/units.sh [TARGET]   (default mips-unknown-linux-musl: 32-bit, big-endian)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${1:-mips-unknown-linux-musl}"
fail() {
    echo "units test: FAILED: $*" >&2
    exit 1
}
# shellcheck source=../../scripts/lib/cross-env.sh
source "$repo_root/scripts/lib/cross-env.sh"
bash "$repo_root/scripts/fetch-cross.sh" build qemu
cross_env "$repo_root"
export CARGO_TARGET_DIR="$repo_root/target/cross-units"
config="$repo_root/.cross/config/units-$target.toml"
mkdir -p "$(dirname "$config")"
cross_cargo_config "$target" >"$config"
# The test harness unwinds (the test profile does not abort), so std is built with panic_unwind
# and the test crate.
log="$repo_root/.cross/units-$target.log"
cargo-zigbuild test --locked --no-run --lib --target "$target" -Zbuild-std=std,panic_unwind,test \
    --config "$config" --message-format=json >"$log.json" 2>"$log" || {
    tail -n 30 "$log" >&2
    fail "building the unit tests for $target failed (log above, whole log in $log)"
}
tests=$(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m.get("executable") and "lib" in m["target"]["kind"]:
        print(m["executable"])' "$log.json")
[ -n "$tests" ] || fail "no unit-test binary was built for $target"
runner=$(cross_runner "$target")
# shellcheck disable=SC2086
$runner "$tests" --test-threads=2 || fail "the unit tests fail on $target"
