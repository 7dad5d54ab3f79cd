#!/usr/bin/env bash
# Puts Debian's mosquitto (the MQTT broker the ttn_devices tests start) and mosquitto_passwd into
# <repo>/.receivers/mosquitto, taken from the machine's own Debian release with `apt-get download` +
# `dpkg -x`, with the shared libraries it needs that the machine lacks: nothing is installed
# system-wide and no service is started. The tests run it with LD_LIBRARY_PATH set to the lib
# folders under .receivers/mosquitto/root (see tests/support/mosquitto.rs).
#
# Usage: scripts/fetch-mosquitto.sh [--force]
# Environment: PUSHRELAY_DEBIAN_MIRROR (as for fetch-receivers.sh).
#
# The machine's release, not sid: mosquitto is a C program linked against the release's glibc.
# Re-runs are fast: when mosquitto is there and runs, nothing is downloaded. Private apt state
# lives in .receivers/apt-mosquitto.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work_dir="$repo_root/.receivers"
dest="$work_dir/mosquitto"
apt_dir="$work_dir/apt-mosquitto"

die() {
    echo "fetch-mosquitto: ERROR: $*" >&2
    exit 1
}
say() { echo "fetch-mosquitto: $*" >&2; }

force=0
for arg in "$@"; do
    case "$arg" in
    --force) force=1 ;;
    -h | --help)
        sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

for tool in apt-get apt-cache dpkg dpkg-deb ldd awk flock; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: this script needs a Debian-based machine"
done
mkdir -p "$work_dir"
exec 9>"$work_dir/.fetch-mosquitto.lock"
flock 9

lib_path() {
    local arch
    arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
    echo "$dest/root/usr/lib/$arch:$dest/root/lib/$arch:$dest/root/usr/lib"
}

# True when mosquitto and mosquitto_passwd are there, every library resolves and they run.
works() {
    local b
    for b in mosquitto mosquitto_passwd; do
        [ -x "$dest/root/usr/sbin/$b" ] || [ -x "$dest/root/usr/bin/$b" ] || return 1
    done
    ! LD_LIBRARY_PATH="$(lib_path)" ldd "$dest/root/usr/sbin/mosquitto" 2>/dev/null | grep -q "not found" || return 1
    version >/dev/null
}

# mosquitto's version line ("mosquitto version 2.0.11"); fails when it does not run.
version() {
    local out
    out=$(LD_LIBRARY_PATH="$(lib_path)" "$dest/root/usr/sbin/mosquitto" -h 2>&1 || true)
    grep -m1 "^mosquitto version" <<<"$out"
}

if [ "$force" -eq 0 ] && works; then
    say "already present: $(version)"
    exit 0
fi

# The machine's own release: sid's build links against a newer glibc than this machine has.
codename=""
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
[ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release"
# shellcheck source=lib/private-apt.sh
source "$repo_root/scripts/lib/private-apt.sh"
private_apt_setup "$apt_dir" "$codename"

staging=$(mktemp -d "$work_dir/mosquitto-staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT

# mosquitto and libmosquitto1, then every library the broker's ldd still cannot find, from the
# package that ships it in this release (found with apt-cache on the Depends of mosquitto).
say "downloading mosquitto ($(pick_version mosquitto ""))"
apt_download mosquitto "$staging/debs"
apt_download libmosquitto1 "$staging/debs"
for deb in "$staging"/debs/*.deb; do dpkg -x "$deb" "$staging/root"; done
rm -rf "$dest.new" && mkdir -p "$dest.new" && mv "$staging/root" "$dest.new/root"
rm -rf "$dest" && mv "$dest.new" "$dest"

deps=$(apt-cache "${apt_opts[@]}" depends mosquitto libmosquitto1 2>/dev/null |
    awk '/^ *(\|)?Depends: lib/ { print $2 }' | grep -v '^libc6$' | sort -u)
for round in 1 2 3; do
    missing=$(LD_LIBRARY_PATH="$(lib_path)" ldd "$dest/root/usr/sbin/mosquitto" "$dest/root/usr/bin/mosquitto_passwd" 2>/dev/null |
        awk '/not found/ { print $1 }' | sort -u)
    [ -z "$missing" ] && break
    say "round $round: libraries the machine lacks: $(echo "$missing" | tr '\n' ' ')"
    for pkg in $deps; do
        mkdir -p "$staging/lib-$pkg"
        (cd "$staging/lib-$pkg" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root download "$pkg" >/dev/null 2>&1) || continue
        # Listing lines end in the path, or in "path -> target" for the .so.N symlinks.
        dpkg-deb -c "$staging/lib-$pkg"/*.deb >"$staging/lib-$pkg/list"
        for lib in $missing; do
            if grep -qE "/${lib//./\\.}( |\$)" "$staging/lib-$pkg/list"; then
                say "  $lib from $pkg"
                dpkg -x "$staging/lib-$pkg"/*.deb "$dest/root"
                break
            fi
        done
    done
    # The next round sees the dependencies of what was just added (libwebsockets → libuv …).
    deps=$(apt-cache "${apt_opts[@]}" depends $deps 2>/dev/null | awk '/^ *(\|)?Depends: lib/ { print $2 }' | grep -v '^libc6$' | sort -u)
done
works || die "mosquitto does not run: $(LD_LIBRARY_PATH="$(lib_path)" ldd "$dest/root/usr/sbin/mosquitto" 2>&1 | grep 'not found' | tr '\n' ' ')"
say "ready: $(version) in $dest"
