#!/usr/bin/env python3
"""Unpacks the OCI archive from scripts/build-oci.py and checks it as an engine would read it:
oci-layout, index.json naming one image index tagged with the version, one manifest per platform,
every blob's digest and size, the config (non-root user, volume, entrypoint, platform), the
layer's diff_id, and the layer's contents: the release tarball's binary for that platform (ELF
machine checked; the amd64 one is run with --version) and the state directory owned by the user.

Then umoci (an independent OCI implementation) unpacks the image into a runtime bundle, whose
process must run the binary as that user.

Usage: tests/release/oci.py OCI_TAR DIST_DIR VERSION UMOCI
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

ELF_MACHINE = {"amd64": 62, "arm64": 183, "arm": 40}
TARGET = {"amd64": "x86_64-unknown-linux-musl", "arm64": "aarch64-unknown-linux-musl",
          "arm": "armv7-unknown-linux-musleabihf"}
checks = 0


def ok(what):
    global checks
    checks += 1
    print(f"oci test: ok: {what}")


def fail(what):
    sys.exit(f"oci test: FAILED: {what}")


def expect(cond, what):
    if not cond:
        fail(what)


def main():
    oci_tar, dist, version, umoci = sys.argv[1:5]
    with tarfile.open(oci_tar) as t:
        files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    expect(json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}, "oci-layout")

    def blob(desc):
        algo, hexd = desc["digest"].split(":")
        expect(algo == "sha256", f"digest algorithm {algo}")
        data = files.get(f"blobs/sha256/{hexd}")
        expect(data is not None, f"blob {desc['digest']} missing")
        expect(hashlib.sha256(data).hexdigest() == hexd, f"blob {hexd} has the wrong digest")
        expect(len(data) == desc["size"], f"blob {hexd} has size {len(data)}, not {desc['size']}")
        return data

    index = json.loads(files["index.json"])
    expect(index["schemaVersion"] == 2 and len(index["manifests"]) == 1, "index.json names one image index")
    top = index["manifests"][0]
    expect(top["mediaType"] == "application/vnd.oci.image.index.v1+json", "index.json points at an image index")
    expect(top["annotations"]["org.opencontainers.image.ref.name"] == version, "tagged with the version")
    inner = json.loads(blob(top))
    platforms = []
    for desc in inner["manifests"]:
        arch = desc["platform"]["architecture"]
        platforms.append(arch + ("/" + desc["platform"]["variant"] if "variant" in desc["platform"] else ""))
        expect(desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json", "manifest media type")
        manifest = json.loads(blob(desc))
        config = json.loads(blob(manifest["config"]))
        expect(manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json", "config media type")
        expect(config["architecture"] == arch and config["os"] == "linux", f"{arch}: config platform")
        if arch == "arm":
            expect(config.get("variant") == "v7", "arm: variant v7")
        c = config["config"]
        uid, gid = (int(x) for x in c["User"].split(":"))
        expect(uid != 0 and gid != 0, f"{arch}: runs as root ({c['User']})")
        expect(c["Volumes"] == {"/var/lib/pushrelay": {}}, f"{arch}: volume {c['Volumes']}")
        expect(c["Entrypoint"] == ["/usr/local/bin/pushrelay"], f"{arch}: entrypoint {c['Entrypoint']}")
        expect(c["Labels"]["org.opencontainers.image.version"] == version, f"{arch}: version label")
        expect(len(manifest["layers"]) == 1, f"{arch}: one layer")
        layer_desc = manifest["layers"][0]
        expect(layer_desc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", "layer media type")
        layer = gzip.decompress(blob(layer_desc))
        expect(config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()], f"{arch}: diff_id")
        with tarfile.open(fileobj=io.BytesIO(layer)) as lt:
            members = {m.name: m for m in lt.getmembers()}
            files_in = sorted(n for n, m in members.items() if not m.isdir())
            expect(files_in == ["usr/local/bin/pushrelay"], f"{arch}: layer files {files_in}")
            b = members["usr/local/bin/pushrelay"]
            expect(b.mode == 0o755 and b.uid == 0, f"{arch}: binary mode {oct(b.mode)} uid {b.uid}")
            binary = lt.extractfile(b).read()
            state = members["var/lib/pushrelay"]
            expect(state.isdir() and (state.uid, state.gid) == (uid, gid) and state.mode == 0o700,
                   f"{arch}: /var/lib/pushrelay is not a 0700 dir of {uid}:{gid}")
        with tarfile.open(os.path.join(dist, f"pushrelay-{version}-{TARGET[arch]}.tar.gz")) as rt:
            shipped = rt.extractfile(f"pushrelay-{version}-{TARGET[arch]}/pushrelay").read()
        expect(binary == shipped, f"{arch}: the image's binary is not the release tarball's")
        expect(binary[:4] == b"\x7fELF" and int.from_bytes(binary[18:20], "little") == ELF_MACHINE[arch],
               f"{arch}: the binary is not an ELF for {arch}")
        if arch == "amd64":
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "pushrelay")
                with open(p, "wb") as f:
                    f.write(binary)
                os.chmod(p, 0o755)
                out = subprocess.run([p, "--version"], capture_output=True, text=True, check=True).stdout
                expect(out.startswith(f"pushrelay {version} ") and TARGET[arch] in out, f"amd64 --version: {out}")
        ok(f"{arch}: manifest, config (user {c['User']}, volume, entrypoint), layer = release binary")
    expect(len(platforms) >= 1, "no platform")

    # umoci 0.4 picks no platform out of an index, so it reads each platform's manifest through a
    # copy of the layout whose index.json names only that manifest.
    with tempfile.TemporaryDirectory() as d:
        layout = os.path.join(d, "layout")
        os.mkdir(layout)
        with tarfile.open(oci_tar) as t:
            t.extractall(layout, filter="data")
        for desc in inner["manifests"]:
            arch = desc["platform"]["architecture"]
            with open(os.path.join(layout, "index.json"), "w") as f:
                json.dump({"schemaVersion": 2, "manifests": [dict(desc, annotations={
                    "org.opencontainers.image.ref.name": arch})]}, f)
            bundle = os.path.join(d, "bundle-" + arch)
            r = subprocess.run([umoci, "unpack", "--rootless", "--image", f"{layout}:{arch}", bundle],
                               capture_output=True, text=True)
            expect(r.returncode == 0, f"umoci unpack of {arch} failed: {r.stderr}")
            runtime = json.load(open(os.path.join(bundle, "config.json")))
            proc = runtime["process"]
            expect(proc["user"]["uid"] == 65532 and proc["user"]["gid"] == 65532, f"umoci {arch}: user {proc['user']}")
            expect(proc["args"][:2] == ["/usr/local/bin/pushrelay", "run"], f"umoci {arch}: args {proc['args']}")
            expect(proc["cwd"] == "/var/lib/pushrelay", f"umoci {arch}: cwd {proc['cwd']}")
            with open(os.path.join(bundle, "rootfs", "usr", "local", "bin", "pushrelay"), "rb") as f:
                unpacked = f.read()
            with tarfile.open(os.path.join(dist, f"pushrelay-{version}-{TARGET[arch]}.tar.gz")) as rt:
                shipped = rt.extractfile(f"pushrelay-{version}-{TARGET[arch]}/pushrelay").read()
            expect(unpacked == shipped, f"umoci {arch}: the unpacked binary is not the release's")
            ok(f"umoci unpacks the {arch} image into a bundle running /usr/local/bin/pushrelay as 65532:65532")
    print(f"oci test: {checks} passed, 0 failed ({', '.join(platforms)})")


if __name__ == "__main__":
    main()
