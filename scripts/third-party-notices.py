#!/usr/bin/env python3
"""Prints the third-party notices for one release binary: every crate compiled into it (pushrelay's
normal dependencies for that target, and the Rust standard library built with -Zbuild-std), musl
libc (from zig) and Mozilla's CA roots (webpki-roots), then each license text the packages ship.

Usage: scripts/third-party-notices.py TARGET   (run after scripts/build-release.sh built TARGET:
the standard library's crates must be in cargo's cache). The output depends only on the commit,
the target and the fetched toolchain, never on the checkout's path.
"""

import glob
import hashlib
import json
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROSS = os.path.join(REPO, ".cross")
STD_SRC = os.path.join(CROSS, "toolchain", "lib", "rustlib", "src", "rust")
LICENSE_PREFIXES = ("license", "licence", "copying", "copyright", "notice", "unlicense")


def metadata(manifest_dir, target, cargo, offline):
    cmd = [cargo, "metadata", "--format-version", "1", "--filter-platform", target]
    cmd += ["--offline"] if offline else ["--locked"]
    out = subprocess.run(cmd, cwd=manifest_dir, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def compiled_in(manifest_dir, target, cargo, packages, offline):
    """(name, version) of every package compiled into the target's binary: `cargo tree` over normal
    edges, without proc-macros and their dependencies (they only run at build time)."""
    cmd = [cargo, "tree", "-e", "normal,no-proc-macro", "--target", target, "--prefix", "none",
           "--format", "{p}", "--offline" if offline else "--locked"]
    for pkg in packages:
        cmd += ["-p", pkg]
    out = subprocess.run(cmd, cwd=manifest_dir, check=True, capture_output=True, text=True)
    found = set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            found.add((parts[0], parts[1][1:]))
    return found


def packages_of(meta, wanted):
    return [p for p in meta["packages"] if (p["name"], p["version"]) in wanted]


def license_files(directory):
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [
        os.path.join(directory, n)
        for n in names
        if n.lower().startswith(LICENSE_PREFIXES) and os.path.isfile(os.path.join(directory, n))
    ]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: third-party-notices.py TARGET")
    target = sys.argv[1]
    host_cargo = "cargo"
    cross_cargo = os.path.join(CROSS, "toolchain", "bin", "cargo")

    ours = metadata(REPO, target, host_cargo, offline=False)
    root = next(p for p in ours["packages"] if p["name"] == "pushrelay" and p["source"] is None)
    crates = [p for p in packages_of(ours, compiled_in(REPO, target, host_cargo, ["pushrelay"], False))
              if p["source"] is not None]
    std_dir = os.path.join(STD_SRC, "library")
    std_meta = metadata(std_dir, target, cross_cargo, offline=True)
    std_pkgs = packages_of(std_meta, compiled_in(std_dir, target, cross_cargo, ["std", "panic_abort"], True))
    std_local = sorted(p["name"] for p in std_pkgs if p["source"] is None)
    std_crates = [p for p in std_pkgs if p["source"] is not None]

    key = lambda p: (p["name"], p["version"])
    crates.sort(key=key)
    std_crates.sort(key=key)
    musl = sorted(glob.glob(os.path.join(CROSS, "venv", "lib", "python3*", "site-packages", "ziglang",
                                         "lib", "libc", "musl", "COPYRIGHT")))
    if not musl:
        sys.exit("third-party-notices: musl's COPYRIGHT not found in zig (run scripts/fetch-cross.sh build)")

    w = sys.stdout.write
    title = f"Third-party software in pushrelay {root['version']} for {target}"
    w(f"{title}\n{'=' * len(title)}\n\n")
    w("pushrelay itself is licensed under the Apache License 2.0 (see LICENSE). The binary also\n"
      "contains the software below, under the licenses named; their texts follow.\n\n")
    w("1. Crates from crates.io compiled into the binary\n\n")
    for p in crates:
        w(f"   {p['name']} {p['version']}  ({p.get('license') or 'see its license file'})\n")
    w("\n" + textwrap.fill(
        "2. The Rust standard library (" + ", ".join(std_local) + "), MIT OR Apache-2.0, "
        "Copyright (c) The Rust Project Contributors, and the crates it is built from:",
        width=96, subsequent_indent="   ", break_on_hyphens=False) + "\n\n")
    for p in std_crates:
        w(f"   {p['name']} {p['version']}  ({p.get('license') or 'see its license file'})\n")
    w("\n3. musl libc, MIT, as shipped with zig (the C library the binary is statically linked with).\n")
    w("\n4. Mozilla's CA root certificates: the webpki-roots crate embeds the root certificates of\n"
      "   Mozilla's CA Certificate Program (from the CCADB), under CDLA-Permissive-2.0; they are\n"
      "   what the binary trusts for https.\n")

    # Each distinct license text once, with the packages that ship it.
    texts = {}
    order = []

    def add(label, path):
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
        h = hashlib.sha256(data.encode()).hexdigest()
        if h not in texts:
            texts[h] = (data, [])
            order.append(h)
        texts[h][1].append(f"{label}: {os.path.basename(path)}")

    missing = []
    for p in crates + std_crates:
        files = license_files(os.path.dirname(p["manifest_path"]))
        if not files:
            missing.append(f"{p['name']} {p['version']} ({p.get('license')})")
        for path in files:
            add(f"{p['name']} {p['version']}", path)
    for path in license_files(os.path.realpath(STD_SRC)):
        add("Rust standard library", path)
    add("musl libc", musl[0])

    w("\nLicense texts\n=============\n")
    if missing:
        w("\nThese crates ship no license file; their license is the SPDX expression named:\n")
        for m in missing:
            w(f"   {m}\n")
    for h in order:
        data, users = texts[h]
        w("\n" + "-" * 78 + "\n")
        for u in users:
            w(f"{u}\n")
        w("-" * 78 + "\n\n")
        w(data.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
