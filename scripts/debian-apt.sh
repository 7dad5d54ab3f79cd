# Shared by scripts/fetch-receivers.sh and scripts/fetch-mosquitto.sh (sourced, not run): find the
# Debian archive the machine's own apt configuration uses, and drive apt-get/apt-cache against a
# private apt state (sources list, lists, cache) so that nothing is installed system-wide.
# The caller defines say() and die().

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

# debian_apt_init <apt_dir> <suite>: finds the machine's Debian archive ($mirror, $codename) and sets
# up the private apt state in <apt_dir> ($apt_opts, $sources_list). Needs say/die from the caller.
debian_apt_init() {
    apt_dir="$1"
    codename=""
    if [ -r /etc/os-release ]; then
        # shellcheck disable=SC1091
        codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    fi
    if [ -n "${PUSHRELAY_DEBIAN_MIRROR:-}" ]; then
        mirror="$PUSHRELAY_DEBIAN_MIRROR"
        say "using the Debian archive URI from PUSHRELAY_DEBIAN_MIRROR, with suite $2"
    else
        [ -n "$codename" ] || die "cannot read VERSION_CODENAME from /etc/os-release; set PUSHRELAY_DEBIAN_MIRROR to the Debian archive URI"
        mirror=$(find_debian_mirror "$codename" || true)
        [ -n "$mirror" ] || die "no http(s) Debian archive entry for suite '$codename' in /etc/apt/sources.list or /etc/apt/sources.list.d/; set PUSHRELAY_DEBIAN_MIRROR to the Debian archive URI"
        say "using the Debian archive URI from the machine's apt sources, with suite $2"
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
}

# Writes the private sources list: $1 = suite, $2 = apt options inside [...].
# Lists fetched under other settings are dropped, so that apt verifies afresh (an unchanged Release
# file would otherwise not be checked again against the new keyring).
write_sources() {
    local content
    content=$(printf '# Written by scripts/debian-apt.sh; used only with this private apt state.\ndeb [%s] %s %s main' "$2" "$mirror" "$1")
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
