#!/usr/bin/env bash
# Proves the release build reproducible: TARGET built from this checkout and from a fresh clone of
# the same commit in another directory (its own .cross, its own target dir) gives byte-identical
# tarballs. On a difference it lists the members that differ.
#
# Usage: tests/release/reproducible.sh TARGET    (the checkout must have no uncommitted changes)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="$1"
fail() {
    echo "reproducible test: FAILED: $*" >&2
    exit 1
}
if ! git -C "$repo_root" diff --quiet HEAD --; then
    git -C "$repo_root" diff --stat HEAD -- >&2
    fail "the checkout has uncommitted changes (above): the clone would build another tree; commit first"
fi
commit=$(git -C "$repo_root" rev-parse HEAD)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-repro.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

bash "$repo_root/scripts/build-release.sh" --out "$tmp/here" "$target"
clone="$tmp/somewhere/else/pushrelay"
git clone -q "$repo_root" "$clone"
git -C "$clone" checkout -q --detach "$commit"
bash "$clone/scripts/build-release.sh" --out "$tmp/there" "$target"

name=$(cd "$tmp/here" && ls pushrelay-*-"$target".tar.gz)
a="$tmp/here/$name" b="$tmp/there/$name"
if ! cmp -s "$a" "$b"; then
    python3 - "$a" "$b" <<'PY' >&2
import hashlib, sys, tarfile
def members(p):
    with tarfile.open(p) as t:
        return {m.name: (m.mode, m.mtime, m.uid, m.gid, hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else "") for m in t.getmembers()}
a, b = members(sys.argv[1]), members(sys.argv[2])
for n in sorted(set(a) | set(b)):
    if a.get(n) != b.get(n):
        print(f"  differs: {n}: {a.get(n)} vs {b.get(n)}")
PY
    fail "$name differs between $repo_root and $clone"
fi
echo "reproducible test: ok: $name is byte-identical from two checkouts ($(sha256sum "$a" | cut -c1-16)...)"
