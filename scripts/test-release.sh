#!/usr/bin/env bash
# The release step of CI: fetches the cross toolchain, runs the README's "from source" commands
# (the aarch64 release build and `cargo build --release`), builds armv7, mipsel and x86_64, and proves
# each binary under qemu-user: `--version`, `demo`, and tests/release_binary.rs (once against a
# real VictoriaMetrics), and the library's unit tests on mips. Then the size bound, install.sh in throw-away roots with systemd-analyze,
# every other README Install command, the OCI image, a build from a source tarball, and the
# reproducibility of the aarch64 tarball from a second checkout. Prints what each step cost.
#
# Usage: scripts/test-release.sh
# Environment:
#   PUSHRELAY_CI_TARGETS  targets to build and run under qemu (default: aarch64, armv7 and mipsel,
#                         the largest binary, so its size bound is checked; "all" for all six).
#                         x86_64 is always built (the install and README tests run it).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
all_targets=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf
    mipsel-unknown-linux-musl mips-unknown-linux-musl x86_64-unknown-linux-musl)
case "${PUSHRELAY_CI_TARGETS:-}" in
"") targets=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf mipsel-unknown-linux-musl) ;;
all) targets=("${all_targets[@]}") ;;
*) read -r -a targets <<<"$PUSHRELAY_CI_TARGETS" ;;
esac

passed=0
timings=()
say() { echo "test-release: $*" >&2; }
fail() {
    say "FAILED: $*"
    exit 1
}
# Sets cpu_now to the CPU seconds (user + system) this script's finished children used so far
# (`times` must run in this shell, not in a $(...) subshell, which has no children of its own).
cpu_file=$(mktemp)
trap 'rm -f "$cpu_file"' EXIT
read_cpu() {
    times >"$cpu_file"
    cpu_now=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$cpu_file")
}
# step NAME COMMAND...: runs it, records its wall time and CPU time (the CPU time says what it
# costs on an idle machine when others share this one).
step() {
    local name="$1" start end cpu0 cpu1
    shift
    say "--- $name"
    start=$(date +%s)
    read_cpu
    cpu0=$cpu_now
    "$@" || fail "$name"
    end=$(date +%s)
    read_cpu
    cpu1=$cpu_now
    timings+=("$(printf '%5d s wall %6d s cpu  %s' "$((end - start))" "$((cpu1 - cpu0))" "$name")")
    passed=$((passed + 1))
}

# shellcheck source=lib/cross-env.sh
source "$repo_root/scripts/lib/cross-env.sh"
cross_repo_root="$repo_root"
runner() { cross_runner "$1"; }
bin_of() { echo "$repo_root/target/cross/$1/release/pushrelay"; }

from_source() {
    local block
    block=$(python3 scripts/readme-install.py block from-source)
    grep -qxF "scripts/build-release.sh aarch64-unknown-linux-musl" <<<"$block" ||
        fail "the README's from-source block no longer builds aarch64; update this script"
    bash -euo pipefail -c "$block"
}

run_under_emulation() {
    local t="$1" bin run out
    bin=$(bin_of "$t")
    run=$(runner "$t")
    # shellcheck disable=SC2086
    out=$($run "$bin" --version) || return 1
    [[ "$out" == "pushrelay $version (commit "*", target $t, features: sim)" ]] || {
        say "$t --version said: $out"
        return 1
    }
    say "$t: $out"
    # shellcheck disable=SC2086
    NO_COLOR=1 $run "$bin" demo >"$repo_root/target/cross/demo-$t.log" 2>&1 || {
        tail -n 20 "$repo_root/target/cross/demo-$t.log" >&2
        return 1
    }
    say "$t: demo exited 0 ($(grep -c 'samples' "$repo_root/target/cross/demo-$t.log") sample groups received)"
    PUSHRELAY_BIN="$bin" PUSHRELAY_RUNNER="$run" PUSHRELAY_TARGET="$t" \
        cargo test --locked --test release_binary -- --test-threads=1
}

size_bound_fails() {
    local out
    if out=$(PUSHRELAY_MAX_BINARY_BYTES=1000000 bash scripts/build-release.sh --out "$repo_root/target/cross/bound-test" x86_64-unknown-linux-musl 2>&1); then
        say "a 1 MB bound did not fail the build"
        return 1
    fi
    grep -q "over the bound of 1000000 bytes" <<<"$out" || {
        say "the bound failure did not say why: $out"
        return 1
    }
    rm -rf "$repo_root/target/cross/bound-test"
}

oci() {
    python3 scripts/build-oci.py --out "$repo_root/target/cross/oci-1.tar"
    python3 scripts/build-oci.py --out "$repo_root/target/cross/oci-2.tar"
    cmp "$repo_root/target/cross/oci-1.tar" "$repo_root/target/cross/oci-2.tar" || {
        say "two runs of build-oci.py differ"
        return 1
    }
    python3 tests/release/oci.py "$repo_root/target/cross/oci-1.tar" dist "$version" "$repo_root/.cross/umoci/usr/bin/umoci"
}

step "fetch receivers and the cross toolchain" bash -c 'bash scripts/fetch-receivers.sh && bash scripts/fetch-cross.sh'
step "README from source: build-release.sh aarch64 + cargo build --release" from_source
others=()
for t in "${targets[@]}" x86_64-unknown-linux-musl; do
    [ "$t" = aarch64-unknown-linux-musl ] || others+=("$t")
done
step "build-release.sh ${others[*]}" bash scripts/build-release.sh "${others[@]}"
for t in "${targets[@]}"; do
    step "$t under emulation: --version, demo, release_binary test" run_under_emulation "$t"
done
step "x86_64-unknown-linux-musl: release_binary test" run_under_emulation x86_64-unknown-linux-musl
step "lib unit tests built for mips (32-bit, big-endian) under qemu" bash tests/release/units.sh mips-unknown-linux-musl
step "size bound fails the build" size_bound_fails
step "install.sh in throw-away roots, systemd-analyze verify" bash tests/release/install.sh "dist/pushrelay-$version-x86_64-unknown-linux-musl.tar.gz"
step "README Install commands" bash tests/release/readme.sh dist
step "OCI image: reproducible, checked, unpacked by umoci" oci
step "source tarball: commit unknown" bash tests/release/source-tarball.sh
step "reproducible: aarch64 from a second checkout" bash tests/release/reproducible.sh aarch64-unknown-linux-musl

say "binary sizes:"
for t in "${targets[@]}" x86_64-unknown-linux-musl; do
    printf '  %-34s %8d bytes\n' "$t" "$(stat -c %s "$(bin_of "$t")")" >&2
done
say "time per step (nproc $(nproc); load now: $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  %s\n' "${timings[@]}" >&2
echo "release tests: $passed passed, 0 failed"
