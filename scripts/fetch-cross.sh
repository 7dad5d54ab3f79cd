#!/usr/bin/env bash
# Puts what the static cross builds and their tests need into <repo>/.cross (gitignored), from the
# package registries only; nothing is installed system-wide and the machine's Rust toolchain is not
# changed. See docs/releasing.md for why each piece is needed.
#
#   build            .cross/toolchain: a private copy (hard links) of rustup's nightly with the
#                    matching std source (Debian sid's rust-src) linked in, for -Zbuild-std;
#                    .cross/venv: zig (C compiler, linker, musl) and cargo-zigbuild from PyPI
#   qemu             .cross/qemu: bookworm's qemu-user-static, to run the binaries (no binfmt)
#   systemd-analyze  the machine's systemd-analyze and systemctl, else (or with
#                    PUSHRELAY_FETCH_SYSTEMD=1) bookworm's systemd and libsystemd-shared packages
#                    unpacked into .cross/systemd (tests/release/systemd-tools.sh picks)
#   umoci            .cross/umoci: bookworm's umoci, which unpacks the OCI image in the tests
#
# Usage: scripts/fetch-cross.sh [build] [qemu] [systemd-analyze] [umoci]   (default: all four)
# Environment: PUSHRELAY_NIGHTLY (default "nightly": the rustup toolchain to copy), and the
# PUSHRELAY_DEBIAN_MIRROR / PUSHRELAY_RECEIVERS_KEYRING of scripts/lib/private-apt.sh.
# Prints only progress, on stderr; scripts/build-release.sh and the tests know the paths.
# Re-runs are fast: what is present and of the wanted version is not fetched again.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cross="$repo_root/.cross"

# Versions this recipe was proven with (docs/releasing.md). The nightly and the std source must
# agree on major.minor; zig and cargo-zigbuild are pinned exactly.
want_rust_minor="1.97"
want_ziglang="0.17.1"
want_zigbuild="0.24.1"
want_qemu_prefix="1:7.2"
nightly="${PUSHRELAY_NIGHTLY:-nightly}"

die() {
    echo "fetch-cross: ERROR: $*" >&2
    exit 1
}
say() { echo "fetch-cross: $*" >&2; }

parts=("$@")
[ "${#parts[@]}" -gt 0 ] || parts=(build qemu systemd-analyze umoci)
for p in "${parts[@]}"; do
    case "$p" in
    build | qemu | systemd-analyze | umoci) ;;
    -h | --help)
        sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown part '$p' (build, qemu, systemd-analyze or umoci)" ;;
    esac
done

for tool in apt-get apt-cache dpkg flock python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: this script needs a Debian-based machine with python3"
done
mkdir -p "$cross"
exec 9>"$cross/.fetch.lock"
flock 9

# shellcheck source=lib/private-apt.sh
source "$repo_root/scripts/lib/private-apt.sh"
sid_ready=0
bookworm_ready=0
apt_suite() { # sets up (once) the private apt state of suite $1
    case "$1" in
    sid) [ "$sid_ready" -eq 1 ] || { private_apt_setup "$cross/apt-sid" sid; sid_ready=1; } ;;
    bookworm) [ "$bookworm_ready" -eq 1 ] || { private_apt_setup "$cross/apt-bookworm" bookworm; bookworm_ready=1; } ;;
    esac
    # private_apt_setup leaves apt_opts pointing at the last suite set up: point it at this one.
    private_apt_use "$cross/apt-$1"
}

# Downloads package $1 (exact version $2) of suite $3 and unpacks it into a fresh folder $4.
fetch_deb() {
    local pkg="$1" version="$2" suite="$3" dest="$4" tmp
    apt_suite "$suite"
    tmp=$(mktemp -d "$cross/deb.XXXXXX")
    say "downloading $pkg=$version ($suite)"
    apt_download "$pkg=$version" "$tmp"
    rm -rf "$dest.new"
    dpkg -x "$tmp"/*.deb "$dest.new" || die "dpkg -x of $pkg failed"
    rm -rf "$tmp" "$dest"
    mv "$dest.new" "$dest"
}

minor_of() { sed -E 's/^([0-9]+\.[0-9]+).*/\1/'; }

fetch_build() {
    # 1. The nightly compiler, copied (hard links when on the same file system).
    local sysroot tc="$cross/toolchain" release
    command -v rustup >/dev/null 2>&1 || die "rustup not found; the cross builds copy its '$nightly' toolchain"
    # Looked up first, so that rustup never tries to download a missing toolchain.
    rustup toolchain list | grep -q "^$nightly-" ||
        die "rustup has no '$nightly' toolchain (rustup toolchain list); the cross builds need a nightly $want_rust_minor compiler"
    sysroot=$(RUSTUP_AUTO_INSTALL=0 rustup run "$nightly" rustc --print sysroot 2>/dev/null) ||
        die "rustup's '$nightly' toolchain does not run (rustup run $nightly rustc -V)"
    release=$("$sysroot/bin/rustc" -vV | sed -n 's/^release: //p')
    [ "$(minor_of <<<"$release")" = "$want_rust_minor" ] ||
        die "rustup's '$nightly' is rustc $release, but this recipe needs $want_rust_minor.x (update want_rust_minor and the rust-src pairing)"
    if [ ! -x "$tc/bin/rustc" ] || [ "$("$tc/bin/rustc" -vV 2>/dev/null | sed -n 's/^commit-hash: //p')" != "$("$sysroot/bin/rustc" -vV | sed -n 's/^commit-hash: //p')" ]; then
        say "copying the $nightly toolchain ($release) from $sysroot"
        rm -rf "$tc.new" "$tc"
        cp -al "$sysroot" "$tc.new" 2>/dev/null || { rm -rf "$tc.new"; cp -a "$sysroot" "$tc.new"; }
        mv "$tc.new" "$tc"
    fi

    # 2. The std source of the same major.minor, from Debian sid's rust-src.
    local src_dir="$cross/rust-src" have="" version
    [ -f "$src_dir/VERSION" ] && have=$(cat "$src_dir/VERSION")
    if [ "$(minor_of <<<"$have")" != "$want_rust_minor" ]; then
        apt_suite sid
        version=$(pick_version rust-src "$want_rust_minor.")
        [ -n "$version" ] || die "Debian sid has no rust-src $want_rust_minor.x any more (it has $(pick_version rust-src '')): the std source no longer matches the nightly $release"
        fetch_deb rust-src "$version" sid "$src_dir"
        echo "$version" >"$src_dir/VERSION"
    fi
    local lib
    lib=$(find "$src_dir/usr/src" -maxdepth 2 -type d -name library | head -n 1)
    [ -n "$lib" ] && [ -f "$lib/std/Cargo.toml" ] || die "rust-src $(cat "$src_dir/VERSION") has no library/std under /usr/src"
    mkdir -p "$tc/lib/rustlib/src"
    ln -sfn "$(dirname "$lib")" "$tc/lib/rustlib/src/rust"

    # 3. zig and cargo-zigbuild from PyPI, in a virtualenv.
    local venv="$cross/venv"
    if [ "$("$venv/bin/python" -m ziglang version 2>/dev/null)" != "$want_ziglang" ] ||
        [ "$("$venv/bin/cargo-zigbuild" --version 2>/dev/null | awk '{print $2}')" != "$want_zigbuild" ]; then
        say "installing ziglang==$want_ziglang and cargo-zigbuild==$want_zigbuild from PyPI"
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv failed (Debian: the python3-venv package)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "ziglang==$want_ziglang" "cargo-zigbuild==$want_zigbuild" ||
            die "pip could not install ziglang==$want_ziglang cargo-zigbuild==$want_zigbuild"
    fi
    say "toolchain: $("$tc/bin/rustc" -V); std source: rust-src $(cat "$src_dir/VERSION"); zig $("$venv/bin/python" -m ziglang version); $("$venv/bin/cargo-zigbuild" --version)"
}

fetch_qemu() {
    local dir="$cross/qemu" version
    if [ -x "$dir/usr/bin/qemu-aarch64-static" ] && grep -q "^$want_qemu_prefix" "$dir/VERSION" 2>/dev/null; then
        return 0
    fi
    apt_suite bookworm
    version=$(pick_version qemu-user-static "$want_qemu_prefix")
    [ -n "$version" ] || die "bookworm has no qemu-user-static $want_qemu_prefix.x"
    fetch_deb qemu-user-static "$version" bookworm "$dir"
    # Keep only the emulators of our targets (the package carries some 30).
    find "$dir/usr/bin" -name 'qemu-*-static' ! -name 'qemu-aarch64-static' ! -name 'qemu-arm-static' \
        ! -name 'qemu-mips-static' ! -name 'qemu-mipsel-static' -delete
    rm -rf "$dir/usr/share"
    echo "$version" >"$dir/VERSION"
    "$dir/usr/bin/qemu-aarch64-static" --version | head -n 1 >&2
}

fetch_systemd_analyze() {
    if [ -z "${PUSHRELAY_FETCH_SYSTEMD:-}" ] && command -v systemd-analyze >/dev/null 2>&1 &&
        command -v systemctl >/dev/null 2>&1; then
        return 0
    fi
    local dir="$cross/systemd" version tmp pkg
    if [ -x "$dir/usr/bin/systemd-analyze" ] && [ -f "$dir/VERSION" ]; then
        return 0
    fi
    apt_suite bookworm
    version=$(pick_version systemd "")
    [ -n "$version" ] || die "bookworm has no systemd package"
    # systemd-analyze and systemctl need libsystemd-shared, a package of its own since 252.
    tmp=$(mktemp -d "$cross/deb.XXXXXX")
    rm -rf "$dir.new"
    for pkg in systemd libsystemd-shared; do
        say "downloading $pkg=$version (bookworm)"
        apt_download "$pkg=$version" "$tmp"
        dpkg -x "$tmp/${pkg}_"*.deb "$dir.new" || die "dpkg -x of $pkg failed"
    done
    rm -rf "$tmp" "$dir"
    mv "$dir.new" "$dir"
    echo "$version" >"$dir/VERSION"
    LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu/systemd" "$dir/usr/bin/systemd-analyze" --version | head -n 1 >&2
}

fetch_umoci() {
    local dir="$cross/umoci" version
    if [ -x "$dir/usr/bin/umoci" ] && [ -f "$dir/VERSION" ]; then
        return 0
    fi
    apt_suite bookworm
    version=$(pick_version umoci "0.4.")
    [ -n "$version" ] || die "bookworm has no umoci 0.4.x"
    fetch_deb umoci "$version" bookworm "$dir"
    echo "$version" >"$dir/VERSION"
}

for p in "${parts[@]}"; do
    case "$p" in
    umoci) fetch_umoci ;;
    build) fetch_build ;;
    qemu) fetch_qemu ;;
    systemd-analyze) fetch_systemd_analyze ;;
    esac
done
