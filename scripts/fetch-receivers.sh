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

# --- Find the Debian archive the machine's own apt configuration uses ------------------------------
# The entry serving the machine's release (its exact codename, e.g. not "-security"), in either the
# one-line format (sources.list, *.list) or deb822 (*.sources). Its URI is reused as is, so a proxy
# or mirror configured on the machine keeps being used.
find_debian_mirror() {
    local codename="$1" file
    local -a files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for file in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] && files+=("$file")
    done
    [ "${#files[@]}" -gt 0 ] || return 1
    for file in "${files[@]}"; do
        case "$file" in
        *.sources)
            awk -v want="$codename" '
                function flush() {
                    if (is_deb && enabled && has_suite && uri != "") { print uri; found = 1; exit }
                    is_deb = 0; enabled = 1; has_suite = 0; uri = ""
                }
                BEGIN { enabled = 1; RS = "\n" }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                {
                    key = tolower($1); sub(/:$/, "", key)
                    if (key == "types") { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
                    else if (key == "enabled") { if (tolower($2) == "no") enabled = 0 }
                    else if (key == "suites") { for (i = 2; i <= NF; i++) if ($i == want) has_suite = 1 }
                    else if (key == "uris") {
                        for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { uri = $i; break }
                    }
                }
                END { if (!found) flush() }
            ' "$file"
            ;;
        *)
            awk -v want="$codename" '
                /^[ \t]*deb[ \t]/ {
                    line = $0
                    sub(/^[ \t]*deb[ \t]+/, "", line)
                    if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
                    n = split(line, f, /[ \t]+/)
                    if (n >= 2 && f[1] ~ /^https?:\/\// && f[2] == want) { print f[1]; exit }
                }
            ' "$file"
            ;;
        esac
    done | head -n 1
}

codename=""
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
if [ -n "${PUSHRELAY_DEBIAN_MIRROR:-}" ]; then
    mirror="$PUSHRELAY_DEBIAN_MIRROR"
    say "using the Debian archive URI from PUSHRELAY_DEBIAN_MIRROR, with suite sid"
else
    [ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release; set PUSHRELAY_DEBIAN_MIRROR to the Debian archive URI"
    mirror=$(find_debian_mirror "$codename" || true)
    [ -n "$mirror" ] || die "no http(s) Debian archive entry for suite '$codename' in /etc/apt/sources.list or /etc/apt/sources.list.d/; set PUSHRELAY_DEBIAN_MIRROR to the Debian archive URI"
    say "using the Debian archive URI from the machine's apt sources, with suite sid"
fi
mirror="${mirror%/}"

# --- Private apt state ----------------------------------------------------------------------------
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/keyrings"
sources_list="$apt_dir/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$sources_list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    # Package lists only: no translations, no AppStream metadata.
    -o "Acquire::Languages=none"
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
    -o "Acquire::Retries=3"
    -q
)

# Writes the private sources list: $1 = suite, $2 = apt options inside [...].
# Lists fetched under other settings are dropped, so that apt verifies afresh (an unchanged Release
# file would otherwise not be checked again against the new keyring).
write_sources() {
    local content
    content=$(printf '# Written by scripts/fetch-receivers.sh; used only with its private apt state.\ndeb [%s] %s %s main' "$2" "$mirror" "$1")
    if [ ! -f "$sources_list" ] || [ "$(cat "$sources_list")" != "$content" ]; then
        find "$apt_dir/lists" -maxdepth 1 -type f -delete
        printf '%s\n' "$content" >"$sources_list"
    fi
}

# apt-get update against the private sources. Returns 0 on success, 2 when the only problem is the
# signature (so another keyring may help), and dies on anything else (network, missing suite...).
apt_update() {
    local log="$apt_dir/update.log"
    # --error-on=any: a download failure is otherwise only a warning, with old or no lists used.
    if apt-get "${apt_opts[@]}" --error-on=any update >"$log" 2>&1; then
        return 0
    fi
    if grep -qE 'NO_PUBKEY|EXPKEYSIG|REVKEYSIG|BADSIG|is not signed|signatures were invalid|signatures couldn.t be verified' "$log"; then
        say "apt-get update for '$(grep -v '^#' "$sources_list")' could not verify the signature:"
        grep -E '^(W|E): ' "$log" | sed 's/^/    /' >&2
        return 2
    fi
    sed 's/^/    /' "$log" >&2
    die "apt-get update for '$(grep -v '^#' "$sources_list")' failed (output above)"
}

# Downloads one package from the current private sources into $2 (a directory).
apt_download() {
    local spec="$1" dest="$2"
    mkdir -p "$dest"
    # -o APT::Sandbox::User=root: apt would fall back to an unsandboxed download anyway, since the
    # unprivileged _apt user cannot write into this root-owned folder; this only silences the warning.
    (cd "$dest" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root download "$spec") >&2 ||
        die "apt-get download $spec failed"
}

# Highest available version of package $1 starting with prefix $2 (empty prefix: any).
pick_version() {
    local pkg="$1" prefix="$2"
    apt-cache "${apt_opts[@]}" madison "$pkg" 2>/dev/null |
        awk -F'|' -v p="$prefix" '{ gsub(/ /, "", $2); if (index($2, p) == 1) print $2 }' |
        sort -V | tail -n 1
}

machine_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
first_keyring="${PUSHRELAY_RECEIVERS_KEYRING:-$machine_keyring}"
fresh_keyring="$apt_dir/keyrings/debian-archive-keyring.gpg"

# Verified setup, in order of preference:
#  1. sid signed by a key the machine already trusts;
#  2. sid signed by a newer key, taken from the debian-archive-keyring package of a suite that the
#     machine's keyring does verify (stable, then testing): still a verified chain of trust;
#  3. last resort, see below.
sid_ready=0
if [ -f "$fresh_keyring" ]; then
    write_sources sid "signed-by=$fresh_keyring"
    apt_update && sid_ready=1
fi
if [ "$sid_ready" -eq 0 ]; then
    [ -f "$first_keyring" ] || die "keyring $first_keyring not found (package debian-archive-keyring)"
    write_sources sid "signed-by=$first_keyring"
    apt_update && sid_ready=1
fi
if [ "$sid_ready" -eq 0 ] && [ -f "$machine_keyring" ]; then
    say "sid did not verify with $first_keyring; fetching a newer debian-archive-keyring through a suite that does"
    for bridge in stable testing; do
        write_sources "$bridge" "signed-by=$machine_keyring"
        apt_update || continue
        tmp_kr=$(mktemp -d "$work_dir/keyring.XXXXXX")
        apt_download debian-archive-keyring "$tmp_kr"
        dpkg -x "$tmp_kr"/debian-archive-keyring_*.deb "$tmp_kr/root"
        if [ -f "$tmp_kr/root/usr/share/keyrings/debian-archive-keyring.gpg" ]; then
            cp "$tmp_kr/root/usr/share/keyrings/debian-archive-keyring.gpg" "$fresh_keyring"
        fi
        rm -rf "$tmp_kr"
        [ -f "$fresh_keyring" ] || continue
        write_sources sid "signed-by=$fresh_keyring"
        if apt_update; then
            sid_ready=1
            break
        fi
    done
fi
if [ "$sid_ready" -eq 0 ]; then
    # Last resort, reached only when sid answered but no keyring available here verifies its
    # signature (not on network errors, which stop the script above): [trusted=yes] turns signature
    # checking off for this private source only. The binaries are only run by tests, on loopback.
    say "WARNING: could not verify sid's signature with any available keyring; fetching WITHOUT signature verification ([trusted=yes])"
    write_sources sid "trusted=yes"
    apt_update || die "cannot read the package lists of sid"
fi

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
