# shellcheck shell=bash
# The cross-build environment, shared by scripts/build-release.sh and the release tests, over
# what scripts/fetch-cross.sh put into .cross/.
#   cross_env REPO_ROOT        exports PATH, RUSTC, CARGO_TARGET_DIR (target/cross), zig's caches
#   cross_cargo_config TARGET  prints the per-target config file to pass with --config
#   cross_runner TARGET        prints the qemu-user command that runs TARGET's binaries here
#                              (empty for x86_64)

cross_env() {
    cross_repo_root="$1"
    local cross="$1/.cross"
    cross_toolchain="$cross/toolchain"
    export PATH="$cross_toolchain/bin:$cross/venv/bin:$PATH"
    export RUSTC="$cross_toolchain/bin/rustc"
    export CARGO_TARGET_DIR="$1/target/cross"
    # zig's cache and cargo-zigbuild's wrappers stay in the project too.
    export ZIG_GLOBAL_CACHE_DIR="$cross/zig-cache"
    export ZIG_LOCAL_CACHE_DIR="$cross/zig-cache"
    # Flags come only from the per-target config file.
    unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTUP_TOOLCHAIN
    cross_cargo_home="${CARGO_HOME:-$HOME/.cargo}"
}

# The flags every target gets, in a config file passed with --config (the repo has no
# .cargo/config.toml, so a plain `cargo build` is untouched):
# - link-self-contained=no: zig brings musl's crt objects; build-std produces none.
# - crt-static: the mips musl targets do not link statically by default; explicit everywhere.
# - remap-path-prefix: no checkout, cargo home or toolchain path ends up in the binary.
# - location-detail=none on MIPS only: see below.
cross_cargo_config() {
    local std_src
    std_src=$(cd "$cross_toolchain/lib/rustlib/src/rust" && pwd -P)
    printf '[target.%s]\nrustflags = [\n' "$1"
    printf '    "%s",\n' -C link-self-contained=no -C target-feature=+crt-static \
        "--remap-path-prefix=$cross_repo_root=/build/pushrelay" \
        "--remap-path-prefix=$cross_cargo_home=/build/cargo" \
        "--remap-path-prefix=$std_src=/build/rust"
    # MIPS code is the largest: without panic locations (file:line of each possible panic, in
    # the binary as strings) it stays under the 6 MiB bound; a panic still says what happened.
    case "$1" in mips*) printf '    "%s",\n' -Zlocation-detail=none ;; esac
    printf ']\n'
}

cross_runner() {
    local q="$cross_repo_root/.cross/qemu/usr/bin"
    case "$1" in
    x86_64-*) echo "" ;;
    aarch64-*) echo "$q/qemu-aarch64-static" ;;
    armv7-*) echo "$q/qemu-arm-static" ;;
    arm-*) echo "$q/qemu-arm-static -cpu arm1176" ;;
    mipsel-*) echo "$q/qemu-mipsel-static -cpu 24Kc" ;;
    mips-*) echo "$q/qemu-mips-static -cpu 24Kc" ;;
    *) return 1 ;;
    esac
}
