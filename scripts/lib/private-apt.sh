# shellcheck shell=bash
# A private apt state for one Debian suite, for scripts that fetch Debian packages into a folder of
# the repo with `apt-get download` + `dpkg -x` (nothing installed system-wide, the machine's own apt
# state untouched). Sourced by scripts/fetch-receivers.sh, scripts/fetch-mosquitto.sh and scripts/fetch-cross.sh.
#
# The caller defines say() and die(), then calls
#   private_apt_setup APT_DIR SUITE
# which sets the array apt_opts (pass it to apt-get/apt-cache) and leaves verified package lists of
# SUITE in APT_DIR; then apt_download SPEC DEST and pick_version PKG PREFIX work on that state.
# Environment:
#   PUSHRELAY_DEBIAN_MIRROR       Debian archive URI to use instead of the one read from the machine's
#                                 apt sources
#   PUSHRELAY_RECEIVERS_KEYRING   keyring tried first (default: the machine's Debian keyring, which
#                                 also verifies the fallback through stable/testing)

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


# The machine's Debian archive URI (or PUSHRELAY_DEBIAN_MIRROR), without a trailing slash.
debian_mirror() {
    local codename="" mirror
    if [ -r /etc/os-release ]; then
        # shellcheck disable=SC1091
        codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    fi
    if [ -n "${PUSHRELAY_DEBIAN_MIRROR:-}" ]; then
        mirror="$PUSHRELAY_DEBIAN_MIRROR"
    else
        [ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release; set PUSHRELAY_DEBIAN_MIRROR to the Debian archive URI"
        mirror=$(find_debian_mirror "$codename" || true)
        [ -n "$mirror" ] || die "no http(s) Debian archive entry for suite '$codename' in /etc/apt/sources.list or /etc/apt/sources.list.d/; set PUSHRELAY_DEBIAN_MIRROR to the Debian archive URI"
    fi
    printf '%s\n' "${mirror%/}"
}

# Writes the private sources list: $1 = suite, $2 = apt options inside [...].
# Lists fetched under other settings are dropped, so that apt verifies afresh (an unchanged Release
# file would otherwise not be checked again against the new keyring).
write_sources() {
    local content
    content=$(printf '# Written by %s; used only with its private apt state.\ndeb [%s] %s %s main' "$private_apt_writer" "$2" "$private_apt_mirror" "$1")
    if [ ! -f "$private_apt_dir/sources.list" ] || [ "$(cat "$private_apt_dir/sources.list")" != "$content" ]; then
        find "$private_apt_dir/lists" -maxdepth 1 -type f -delete
        printf '%s\n' "$content" >"$private_apt_dir/sources.list"
    fi
}

# apt-get update against the private sources. Returns 0 on success, 2 when the only problem is the
# signature (so another keyring may help), and dies on anything else (network, missing suite...).
apt_update() {
    local log="$private_apt_dir/update.log" sources_list="$private_apt_dir/sources.list"
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

# Points apt_opts (and apt_download, pick_version) at the private apt state in $1.
private_apt_use() {
    private_apt_dir="$1"
    apt_opts=(
        -o "Dir::Etc::SourceList=$private_apt_dir/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$private_apt_dir/lists"
        -o "Dir::Cache=$private_apt_dir/cache"
        # Package lists only: no translations, no AppStream metadata.
        -o "Acquire::Languages=none"
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
        -o "Acquire::Retries=3"
        -q
    )
}

# Sets up verified package lists of suite $2 in the private apt state $1 (see the header).
private_apt_setup() {
    private_apt_dir="$1"
    local suite="$2" bridge tmp_kr
    private_apt_writer="scripts/$(basename "$0")"
    private_apt_mirror=$(debian_mirror)
    local from="the machine's apt sources"
    [ -n "${PUSHRELAY_DEBIAN_MIRROR:-}" ] && from=PUSHRELAY_DEBIAN_MIRROR
    say "using the Debian archive URI from $from, with suite $suite"
    mkdir -p "$private_apt_dir/lists/partial" "$private_apt_dir/cache/archives/partial" "$private_apt_dir/keyrings"
    private_apt_use "$private_apt_dir"

    local machine_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local first_keyring="${PUSHRELAY_RECEIVERS_KEYRING:-$machine_keyring}"
    local fresh_keyring="$private_apt_dir/keyrings/debian-archive-keyring.gpg"

    # Verified setup, in order of preference:
    #  1. the suite signed by a key the machine already trusts;
    #  2. the suite signed by a newer key, taken from the debian-archive-keyring package of a suite
    #     that the machine's keyring does verify (stable, then testing): still a verified chain of trust;
    #  3. last resort, see below.
    if [ -f "$fresh_keyring" ]; then
        write_sources "$suite" "signed-by=$fresh_keyring"
        apt_update && return 0
    fi
    [ -f "$first_keyring" ] || die "keyring $first_keyring not found (package debian-archive-keyring)"
    write_sources "$suite" "signed-by=$first_keyring"
    apt_update && return 0
    if [ -f "$machine_keyring" ]; then
        say "$suite did not verify with $first_keyring; fetching a newer debian-archive-keyring through a suite that does"
        for bridge in stable testing; do
            write_sources "$bridge" "signed-by=$machine_keyring"
            apt_update || continue
            tmp_kr=$(mktemp -d "$private_apt_dir/keyring.XXXXXX")
            apt_download debian-archive-keyring "$tmp_kr"
            dpkg -x "$tmp_kr"/debian-archive-keyring_*.deb "$tmp_kr/root"
            if [ -f "$tmp_kr/root/usr/share/keyrings/debian-archive-keyring.gpg" ]; then
                cp "$tmp_kr/root/usr/share/keyrings/debian-archive-keyring.gpg" "$fresh_keyring"
            fi
            rm -rf "$tmp_kr"
            [ -f "$fresh_keyring" ] || continue
            write_sources "$suite" "signed-by=$fresh_keyring"
            apt_update && return 0
        done
    fi
    # Last resort, reached only when the suite answered but no keyring available here verifies its
    # signature (not on network errors, which stop the script above): [trusted=yes] turns signature
    # checking off for this private source only. What is fetched is only built with or run by tests.
    say "WARNING: could not verify $suite's signature with any available keyring; fetching WITHOUT signature verification ([trusted=yes])"
    write_sources "$suite" "trusted=yes"
    apt_update || die "cannot read the package lists of $suite"
}
