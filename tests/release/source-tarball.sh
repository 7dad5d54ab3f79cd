#!/usr/bin/env bash
# A build from a source tarball (no .git) says `commit unknown` in --version, and
# PUSHRELAY_GIT_COMMIT names the commit for packagers. Builds the exported tree in its own target
# dir (target/source-tarball), never the checkout's: sharing one would mix the two builds' outputs.
#
# Usage: tests/release/source-tarball.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fail() {
    echo "source tarball test: FAILED: $*" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$repo_root" archive --format=tar HEAD | tar -x -C "$tmp"
[ ! -e "$tmp/.git" ] || fail "git archive left a .git"
export CARGO_TARGET_DIR="$repo_root/target/source-tarball" CARGO_PROFILE_DEV_DEBUG=0
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo_root/Cargo.toml" | head -n 1)
(cd "$tmp" && cargo build -q --locked --bin pushrelay)
line=$("$CARGO_TARGET_DIR/debug/pushrelay" --version)
[[ "$line" == "pushrelay $version (commit unknown, target "*", features: sim)" ]] || fail "--version from a source tarball said: $line"
(cd "$tmp" && PUSHRELAY_GIT_COMMIT=0123456789ab cargo build -q --locked --bin pushrelay)
line=$("$CARGO_TARGET_DIR/debug/pushrelay" --version)
[[ "$line" == "pushrelay $version (commit 0123456789ab, target "*", features: sim)" ]] || fail "PUSHRELAY_GIT_COMMIT was not used: $line"
echo "source tarball test: ok: without .git --version says 'commit unknown'; PUSHRELAY_GIT_COMMIT overrides"
