#!/usr/bin/env bash
# Builds the release tarballs: static, stripped musl binaries for the Pi, routers and x86 boxes,
# each packed with LICENSE, third-party notices, the README's install section, the systemd unit,
# the OpenWrt init script, a config skeleton and install.sh, plus dist/SHA256SUMS.
#
# Usage: scripts/build-release.sh [--out DIR] [TARGET...]
#   TARGET     default: every target below
#   --out DIR  where the tarballs go (default <repo>/dist)
# Targets: x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
#          arm-unknown-linux-musleabihf mipsel-unknown-linux-musl mips-unknown-linux-musl
#
# Everything it needs is fetched into .cross/ by scripts/fetch-cross.sh (the machine's toolchain
# is not changed). The same commit gives the same bytes in any checkout directory: paths are
# remapped, and the tarball has fixed times (SOURCE_DATE_EPOCH, default: the commit's time),
# owner and order. SHA256SUMS lists every dist/pushrelay-<version>-*.tar.gz present.
# A binary larger than PUSHRELAY_MAX_BINARY_BYTES (default 6 MiB) fails the build.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cross="$repo_root/.cross"
all_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
    arm-unknown-linux-musleabihf mipsel-unknown-linux-musl mips-unknown-linux-musl)
max_bytes="${PUSHRELAY_MAX_BINARY_BYTES:-6291456}"

die() {
    echo "build-release: ERROR: $*" >&2
    exit 1
}
say() { echo "build-release: $*" >&2; }

out="$repo_root/dist"
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --out)
        [ $# -ge 2 ] || die "--out needs a directory"
        mkdir -p "$2"
        out="$(cd "$2" && pwd)"
        shift 2
        ;;
    -h | --help)
        sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*) die "unknown option '$1' (try --help)" ;;
    *)
        printf '%s\n' "${all_targets[@]}" | grep -qxF "$1" || die "unknown target '$1' (one of: ${all_targets[*]})"
        targets+=("$1")
        shift
        ;;
    esac
done
[ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")

for tool in tar gzip sha256sum readelf python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (Debian: tar, gzip, coreutils, binutils, python3)"
done

cd "$repo_root"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$repo_root" log -1 --format=%ct 2>/dev/null || true)
    [ -n "$SOURCE_DATE_EPOCH" ] || die "not a git checkout: set SOURCE_DATE_EPOCH (and PUSHRELAY_GIT_COMMIT) for a reproducible build"
fi
export SOURCE_DATE_EPOCH

bash "$repo_root/scripts/fetch-cross.sh" build
# shellcheck source=lib/cross-env.sh
source "$repo_root/scripts/lib/cross-env.sh"
cross_env "$repo_root"

# Checks a built binary: static (no interpreter, no shared libraries), stripped, within the bound.
check_binary() {
    local bin="$1" t="$2" size
    if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
        die "$t: the binary asks for a dynamic loader; it must be static"
    fi
    if readelf -d "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
        die "$t: the binary needs shared libraries; it must be static"
    fi
    if readelf -S "$bin" | grep -qE '\.(symtab|debug_info)'; then
        die "$t: the binary is not stripped"
    fi
    size=$(stat -c %s "$bin")
    if [ "$size" -gt "$max_bytes" ]; then
        die "$t: the binary is $size bytes, over the bound of $max_bytes bytes ($(awk -v b="$max_bytes" 'BEGIN{printf "%.2f", b/1048576}') MiB)"
    fi
    say "$t: $size bytes ($(awk -v b="$size" 'BEGIN{printf "%.2f", b/1048576}') MiB), static, stripped"
}

# Writes the staging folder $2 for target $1, binary $3.
stage() {
    local t="$1" dir="$2" bin="$3"
    rm -rf "$dir"
    mkdir -p "$dir"
    install -m 0755 "$bin" "$dir/pushrelay"
    install -m 0755 scripts/install.sh "$dir/install.sh"
    install -m 0644 LICENSE "$dir/LICENSE"
    install -m 0644 examples/systemd/pushrelay.service "$dir/pushrelay.service"
    install -m 0755 examples/openwrt/pushrelay.init "$dir/pushrelay.init"
    install -m 0644 examples/skeleton.toml "$dir/pushrelay.toml"
    python3 scripts/readme-install.py extract >"$dir/INSTALL.md"
    python3 scripts/third-party-notices.py "$t" >"$dir/THIRD-PARTY-NOTICES.txt" ||
        die "$t: could not write the third-party notices"
    chmod 0644 "$dir/INSTALL.md" "$dir/THIRD-PARTY-NOTICES.txt"
    chmod 0755 "$dir"
}

# A tarball with the same bytes for the same input: sorted names, fixed time, owner and modes.
pack() {
    local parent="$1" name="$2" tarball="$3"
    tar --format=ustar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
        -C "$parent" -cf - "$name" | gzip -9 -n >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
}

mkdir -p "$out" "$cross/config"
for t in "${targets[@]}"; do
    start=$(date +%s)
    config="$cross/config/$t.toml"
    cross_cargo_config "$t" >"$config"
    say "building $t"
    log="$cross/build-$t.log"
    # MIPS code is about a third larger than ARM's: optimise it for size alone ("z"), which keeps
    # the router builds under the bound (the others keep "s", which is faster).
    opt=s
    case "$t" in mips*) opt=z ;; esac
    if ! CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt cargo zigbuild --release --locked --target "$t" \
        -Zbuild-std=std,panic_abort --config "$config" --bin pushrelay >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "$t: cargo zigbuild failed (log above, whole log in $log)"
    fi
    bin="$CARGO_TARGET_DIR/$t/release/pushrelay"
    check_binary "$bin" "$t"
    name="pushrelay-$version-$t"
    staging="$CARGO_TARGET_DIR/stage"
    stage "$t" "$staging/$name" "$bin"
    pack "$staging" "$name" "$out/$name.tar.gz"
    # After each target, so that an interrupted run still leaves matching checksums.
    (cd "$out" && sha256sum pushrelay-"$version"-*.tar.gz >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
    say "$t: $out/$name.tar.gz in $(($(date +%s) - start)) s"
done

say "checksums in $out/SHA256SUMS:"
sed 's/^/    /' "$out/SHA256SUMS" >&2
