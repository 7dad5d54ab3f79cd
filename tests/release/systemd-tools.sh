# shellcheck shell=bash
# Sourced by the release tests: sets `analyze` and `systemctl_bin` (the machine's systemd-analyze
# and systemctl, else those scripts/fetch-cross.sh unpacked into .cross/systemd, with their
# library path) and `systemd_units` (the directory of systemd's own units, e.g. sysinit.target).
systemd_tools() {
    local repo_root="$1" fetched="$1/.cross/systemd"
    if [ -z "${PUSHRELAY_FETCH_SYSTEMD:-}" ] && command -v systemd-analyze >/dev/null 2>&1 &&
        command -v systemctl >/dev/null 2>&1; then
        analyze=$(command -v systemd-analyze)
        systemctl_bin=$(command -v systemctl)
        systemd_units=/usr/lib/systemd/system
        [ -d "$systemd_units" ] || systemd_units=/lib/systemd/system
    else
        [ -x "$fetched/usr/bin/systemd-analyze" ] || {
            echo "systemd-analyze not found: run scripts/fetch-cross.sh systemd-analyze" >&2
            return 1
        }
        export LD_LIBRARY_PATH="$fetched/usr/lib/x86_64-linux-gnu/systemd"
        analyze="$fetched/usr/bin/systemd-analyze"
        systemctl_bin="$fetched/bin/systemctl"
        [ -x "$systemctl_bin" ] || systemctl_bin="$fetched/usr/bin/systemctl"
        systemd_units="$fetched/lib/systemd/system"
        [ -d "$systemd_units" ] || systemd_units="$fetched/usr/lib/systemd/system"
    fi
}
