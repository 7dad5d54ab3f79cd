#!/usr/bin/env bash
# Puts real metric receivers (Prometheus 3.5 with promtool, Pushgateway 1.11, VictoriaMetrics and vmagent) into
# <repo>/.receivers/bin for the integration tests and benchmarks, taken from Debian sid with
# `apt-get download` + `dpkg -x`: nothing is installed system-wide and no service is started.
#
# Usage: scripts/fetch-receivers.sh [--force]
#   --force                       fetch again even when the binaries are already there
# Environment:
#   PUSHRELAY_RECEIVERS_DIR       where the binaries go (default <repo>/.receivers/bin; the tests read
#                                 the same variable)
#   PUSHRELAY_DEBIAN_MIRROR       Debian archive URI to use instead of the one read from the machine's
#                                 apt sources
#   PUSHRELAY_RECEIVERS_KEYRING   keyring tried first for sid (default: the machine's Debian keyring,
#                                 which is also what verifies the fallback through stable/testing)
#
# Re-runs are fast: when every wanted binary is present and reports a wanted version, nothing is
# downloaded. Private apt state (sources list, lists, cache, keyrings) lives in .receivers/apt.
set -euo pipefail

start_ns=$(date +%s%N)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work_dir="$repo_root/.receivers"
bin_dir="${PUSHRELAY_RECEIVERS_DIR:-$work_dir/bin}"
apt_dir="$work_dir/apt"
versions_file="$bin_dir/VERSIONS"

# Version series the tests are written against (prefix match on the Debian version).
want_prometheus="3.5."
want_pushgateway="1.11."

# binary name in bin_dir -> path inside the Debian package
declare -A binary_source=(
    [prometheus]="usr/bin/prometheus"
    [promtool]="usr/bin/promtool"
    [pushgateway]="usr/bin/prometheus-pushgateway"
    [victoria-metrics]="usr/bin/victoria-metrics"
    [vmagent]="usr/bin/vmagent"
)
# binary name -> Debian package shipping it (vmagent comes with victoria-metrics)
declare -A binary_package=(
    [prometheus]="prometheus"
    [promtool]="promtool"
    [pushgateway]="prometheus-pushgateway"
    [victoria-metrics]="victoria-metrics"
    [vmagent]="victoria-metrics"
)
binaries=(prometheus promtool pushgateway victoria-metrics vmagent)

force=0
for arg in "$@"; do
    case "$arg" in
    --force) force=1 ;;
    -h | --help)
        sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "fetch-receivers: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

die() {
    echo "fetch-receivers: ERROR: $*" >&2
    exit 1
}
say() { echo "fetch-receivers: $*" >&2; }

elapsed() {
    local now_ns
    now_ns=$(date +%s%N)
    awk -v ns="$((now_ns - start_ns))" 'BEGIN { printf "%.1f", ns / 1e9 }'
}

staging=""
on_exit() {
    local rc=$?
    [ -n "$staging" ] && rm -rf "$staging"
    if [ "$rc" -ne 0 ]; then
        echo "fetch-receivers: FAILED (exit $rc) after $(elapsed) s; see the messages above" >&2
    fi
}
trap on_exit EXIT

for tool in apt-get apt-cache dpkg dpkg-deb awk flock; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: this script needs a Debian-based machine"
done

mkdir -p "$work_dir" "$bin_dir"

# One fetch at a time (several test runs may call this script at once).
exec 9>"$work_dir/.fetch.lock"
flock 9

# Prints the version line of one of our binaries (empty when it reports none).
binary_version() {
    local name="$1" out
    case "$name" in
    victoria-metrics | vmagent) out=$("$bin_dir/$name" -version 2>&1) || return 1 ;;
    *) out=$("$bin_dir/$name" --version 2>&1) || return 1 ;;
    esac
    printf '%s\n' "$out" | head -n 1
}

print_versions() {
    local name line
    echo "Receivers in $bin_dir:"
    for name in "${binaries[@]}"; do
        line=$(binary_version "$name" || true)
        if [ -z "$line" ]; then
            # Debian's VictoriaMetrics build has no embedded version string: use the package's.
            line="(binary reports no version) Debian package $(grep "^${binary_package[$name]}=" "$versions_file" 2>/dev/null | cut -d= -f2 || true)"
        fi
        printf '  %-17s %s\n' "$name" "$line"
    done
}

# True when every binary is there, runs, and Prometheus/Pushgateway are of the wanted series.
have_wanted_binaries() {
    local name
    for name in "${binaries[@]}"; do
        [ -x "$bin_dir/$name" ] || return 1
        binary_version "$name" >/dev/null 2>&1 || return 1
    done
    binary_version prometheus | grep -q "version ${want_prometheus//./\\.}" || return 1
    binary_version pushgateway | grep -q "version ${want_pushgateway//./\\.}" || return 1
    [ -f "$versions_file" ] || return 1
}

if [ "$force" -eq 0 ] && have_wanted_binaries; then
    print_versions
    say "already present, nothing fetched ($(elapsed) s)"
    exit 0
fi

# --- Private apt state for sid (scripts/lib/private-apt.sh) ---------------------------------------
# shellcheck source=lib/private-apt.sh
source "$repo_root/scripts/lib/private-apt.sh"
private_apt_setup "$apt_dir" sid

# --- Download and unpack ---------------------------------------------------------------------------
declare -A want_prefix=([prometheus]="$want_prometheus" [promtool]="$want_prometheus" [prometheus-pushgateway]="$want_pushgateway" [victoria-metrics]="")
staging=$(mktemp -d "$work_dir/staging.XXXXXX")

: >"$staging/VERSIONS"
for pkg in prometheus promtool prometheus-pushgateway victoria-metrics; do
    version=$(pick_version "$pkg" "${want_prefix[$pkg]}")
    if [ -z "$version" ]; then
        available=$(apt-cache "${apt_opts[@]}" madison "$pkg" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | tr '\n' ' ')
        die "no $pkg ${want_prefix[$pkg]:-}x in sid (available: ${available:-none}); update want_* in this script and the tests"
    fi
    say "downloading $pkg=$version"
    apt_download "$pkg=$version" "$staging/debs"
    echo "$pkg=$version" >>"$staging/VERSIONS"
done

for deb in "$staging"/debs/*.deb; do
    dpkg -x "$deb" "$staging/root" || die "dpkg -x $deb failed"
done

for name in "${binaries[@]}"; do
    src="$staging/root/${binary_source[$name]}"
    [ -x "$src" ] || die "package ${binary_package[$name]} has no ${binary_source[$name]}"
done
for name in "${binaries[@]}"; do
    mv -f "$staging/root/${binary_source[$name]}" "$bin_dir/$name.new"
    mv -f "$bin_dir/$name.new" "$bin_dir/$name"
done
mv -f "$staging/VERSIONS" "$versions_file"

for name in "${binaries[@]}"; do
    binary_version "$name" >/dev/null 2>&1 || die "$bin_dir/$name does not run on this machine: $("$bin_dir/$name" --version 2>&1 | head -n 3)"
done
have_wanted_binaries || die "the fetched binaries do not report the wanted versions (prometheus $want_prometheus*, pushgateway $want_pushgateway*)"

print_versions
say "fetched in $(elapsed) s"
