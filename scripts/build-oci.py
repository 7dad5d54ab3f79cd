#!/usr/bin/env python3
"""Assembles the container image without a container engine: an OCI image layout (index.json,
oci-layout, blobs/sha256/...) for linux/amd64, linux/arm64 and linux/arm/v7, packed as one tar
that `skopeo copy oci-archive:...`, `podman load` or `docker load` (Docker 25+) accept.

The image is what the Dockerfile builds: FROM scratch, the static binary at
/usr/local/bin/pushrelay, /var/lib/pushrelay as a volume owned by the non-root user 65532:65532,
which the image runs as. Its bytes depend only on the release tarballs and SOURCE_DATE_EPOCH.

Usage: scripts/build-oci.py [--dist DIR] [--out FILE]
  takes dist/pushrelay-<version>-{x86_64,aarch64,armv7}-*.tar.gz (scripts/build-release.sh
  x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf) and writes
  dist/pushrelay-<version>-oci.tar; a platform whose tarball is missing is left out (at least one
  is needed).
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER = "65532:65532"
STATE = "var/lib/pushrelay"
# target triple -> OCI platform
PLATFORMS = [
    ("x86_64-unknown-linux-musl", {"architecture": "amd64", "os": "linux"}),
    ("aarch64-unknown-linux-musl", {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ("armv7-unknown-linux-musleabihf", {"architecture": "arm", "os": "linux", "variant": "v7"}),
]


def version_of_crate():
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def source_date_epoch():
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    out = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%ct"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("build-oci: not a git checkout: set SOURCE_DATE_EPOCH")
    return int(out.stdout.strip())


def tar_bytes(entries, mtime):
    """A tar with fixed owner, time and order; entries are (name, mode, uid, gid, data or None for a dir)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, mode, uid, gid, data in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Blobs:
    def __init__(self):
        self.blobs = {}

    def add(self, data, media_type, **extra):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return dict({"mediaType": media_type, "digest": digest, "size": len(data)}, **extra)


def json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def image(blobs, binary, platform, version, commit, epoch):
    created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    uid, gid = (int(x) for x in USER.split(":"))
    layer = tar_bytes([
        ("usr", 0o755, 0, 0, None),
        ("usr/local", 0o755, 0, 0, None),
        ("usr/local/bin", 0o755, 0, 0, None),
        ("usr/local/bin/pushrelay", 0o755, 0, 0, binary),
        ("var", 0o755, 0, 0, None),
        ("var/lib", 0o755, 0, 0, None),
        (STATE, 0o700, uid, gid, None),
    ], epoch)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9) as g:
        g.write(layer)
    layer_desc = blobs.add(gz.getvalue(), "application/vnd.oci.image.layer.v1.tar+gzip")
    labels = {
        "org.opencontainers.image.title": "pushrelay",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": created,
    }
    config = dict(platform)
    config.update({
        "created": created,
        "config": {
            "User": USER,
            "Entrypoint": ["/usr/local/bin/pushrelay"],
            "Cmd": ["run", "--config", "/etc/pushrelay/pushrelay.toml"],
            "Volumes": {"/" + STATE: {}},
            "WorkingDir": "/" + STATE,
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": created, "created_by": "scripts/build-oci.py (see Dockerfile)"}],
    })
    config_desc = blobs.add(json_bytes(config), "application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
        "annotations": {"org.opencontainers.image.created": created},
    }
    return blobs.add(json_bytes(manifest), "application/vnd.oci.image.manifest.v1+json", platform=platform)


def binary_from(tarball):
    with tarfile.open(tarball) as t:
        for m in t.getmembers():
            if m.name.endswith("/pushrelay") and m.isfile():
                return t.extractfile(m).read()
    sys.exit(f"build-oci: {tarball} has no pushrelay binary")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dist", default=os.path.join(REPO, "dist"))
    ap.add_argument("--out")
    args = ap.parse_args()
    version = version_of_crate()
    epoch = source_date_epoch()
    commit = os.environ.get("PUSHRELAY_GIT_COMMIT") or subprocess.run(
        ["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    ).stdout.strip() or "unknown"
    blobs = Blobs()
    manifests = []
    for target, platform in PLATFORMS:
        tarball = os.path.join(args.dist, f"pushrelay-{version}-{target}.tar.gz")
        if os.path.exists(tarball):
            manifests.append(image(blobs, binary_from(tarball), platform, version, commit, epoch))
    if not manifests:
        sys.exit(f"build-oci: no tarball for amd64, arm64 or armv7 in {args.dist} (run scripts/build-release.sh first)")
    # index.json names one multi-platform image index (as `docker buildx` writes it), tagged
    # with the version.
    inner = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }
    inner_desc = blobs.add(json_bytes(inner), "application/vnd.oci.image.index.v1+json",
                           annotations={"org.opencontainers.image.ref.name": version})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [inner_desc]}
    entries = [("blobs", 0o755, 0, 0, None), ("blobs/sha256", 0o755, 0, 0, None)]
    entries += [(f"blobs/sha256/{d.split(':')[1]}", 0o644, 0, 0, data) for d, data in sorted(blobs.blobs.items())]
    entries += [
        ("index.json", 0o644, 0, 0, json_bytes(index)),
        ("oci-layout", 0o644, 0, 0, json_bytes({"imageLayoutVersion": "1.0.0"})),
    ]
    out = args.out or os.path.join(args.dist, f"pushrelay-{version}-oci.tar")
    with open(out + ".tmp", "wb") as f:
        f.write(tar_bytes(entries, epoch))
    os.replace(out + ".tmp", out)
    names = ", ".join(m["platform"]["architecture"] + ("/" + m["platform"]["variant"] if "variant" in m["platform"] else "") for m in manifests)
    print(f"build-oci: {out} ({names})", file=sys.stderr)


if __name__ == "__main__":
    main()
