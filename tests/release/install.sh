#!/usr/bin/env bash
# Tests install.sh from a release tarball in throw-away roots (never the machine's own /):
# files, modes, a config that is never overwritten, upgrade, --uninstall keeping config and state,
# `systemd-analyze verify` (and its security score) on the installed unit, and the OpenWrt flavour
# with its procd script run against stand-ins of OpenWrt's procd functions.
#
# Usage: tests/release/install.sh TARBALL     (run by scripts/test-release.sh)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tarball="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=0
fail() {
    echo "install test: FAILED: $*" >&2
    exit 1
}
ok() {
    checks=$((checks + 1))
    echo "install test: ok: $*"
}
mode_of() { stat -c %a "$1"; }
expect_file() { # path mode [same-as]
    [ -f "$1" ] || fail "$1 was not installed"
    [ "$(mode_of "$1")" = "$2" ] || fail "$1 has mode $(mode_of "$1"), not $2"
    if [ $# -ge 3 ]; then cmp -s "$1" "$3" || fail "$1 differs from $3"; fi
}

# systemd-analyze and systemctl: the machine's, else the ones scripts/fetch-cross.sh unpacked.
# shellcheck source=systemd-tools.sh
source "$repo_root/tests/release/systemd-tools.sh"
systemd_tools "$repo_root" || fail "no systemd-analyze"

tar -xzf "$tarball" -C "$tmp"
pkg=$(echo "$tmp"/pushrelay-*)
[ -x "$pkg/install.sh" ] || fail "the tarball has no executable install.sh"
sh -n "$pkg/install.sh" || fail "install.sh is not valid POSIX sh"
sh -n "$pkg/pushrelay.init" || fail "pushrelay.init is not valid POSIX sh"

# --- systemd flavour --------------------------------------------------------------------------
root="$tmp/root"
mkdir -p "$root"
out=$("$pkg/install.sh" --root "$root")
expect_file "$root/usr/local/bin/pushrelay" 755 "$pkg/pushrelay"
expect_file "$root/etc/systemd/system/pushrelay.service" 644 "$pkg/pushrelay.service"
expect_file "$root/etc/pushrelay/pushrelay.toml" 640 "$pkg/pushrelay.toml"
grep -qxF "  pushrelay check --config /etc/pushrelay/pushrelay.toml" <<<"$out" || fail "install.sh did not print the check command: $out"
grep -qxF "  systemctl enable --now pushrelay" <<<"$out" || fail "install.sh did not print the enable command: $out"
ok "systemd install: binary 0755, unit 0644, config 0640, next two commands printed"

# The installed unit, verified by systemd against the root: the unit directories and /bin/sh
# (ExecStartPre= and ExecReload= copy the config with it) must be there as on a real system.
mkdir -p "$root/usr/lib/systemd" "$root/bin"
cp -a "$systemd_units" "$root/usr/lib/systemd/"
cp "$(readlink -f /bin/sh)" "$root/bin/sh"
verify_out=$("$analyze" verify --root="$root" pushrelay.service 2>&1) || fail "systemd-analyze verify failed: $verify_out"
[ -z "$verify_out" ] || fail "systemd-analyze verify complained: $verify_out"
# The same check does catch a bad unit (it warns and exits 0 on an unparsable value).
sed 's/^ProtectSystem=strict/ProtectSystem=sometimes/' "$root/etc/systemd/system/pushrelay.service" >"$root/etc/systemd/system/bad.service"
bad_out=$("$analyze" verify --root="$root" bad.service 2>&1 || true)
rm "$root/etc/systemd/system/bad.service"
[ -n "$bad_out" ] || fail "systemd-analyze verify said nothing about a bad unit: the check is blind"
score=$("$analyze" security --offline=yes --root="$root" pushrelay.service 2>&1 | sed -n 's/.*Overall exposure level for pushrelay.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "systemd-analyze security gave no exposure level"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "the unit's exposure level is $score (over 2.0)"
ok "systemd-analyze verify: clean (and catches a bad value); security exposure $score"

# Enable inside the root, as `systemctl enable` would on the device.
"$systemctl_bin" --root="$root" enable pushrelay.service >/dev/null 2>&1 || fail "systemctl --root enable failed"
[ -L "$root/etc/systemd/system/multi-user.target.wants/pushrelay.service" ] || fail "enable made no multi-user.target.wants link"
ok "systemctl --root enable links the unit into multi-user.target"

# An existing config is never overwritten; a second run is an upgrade.
echo "# edited by the user" >>"$root/etc/pushrelay/pushrelay.toml"
cp "$root/etc/pushrelay/pushrelay.toml" "$tmp/edited.toml"
chmod 0600 "$root/etc/pushrelay/pushrelay.toml"
echo "not the binary" >"$root/usr/local/bin/pushrelay"
mkdir -p "$root/var/lib/private/pushrelay/vm"
echo queued >"$root/var/lib/private/pushrelay/vm/segment"
out=$("$pkg/install.sh" --root "$root")
cmp -s "$root/etc/pushrelay/pushrelay.toml" "$tmp/edited.toml" || fail "an upgrade overwrote the config"
[ "$(mode_of "$root/etc/pushrelay/pushrelay.toml")" = 600 ] || fail "an upgrade changed the config's mode"
expect_file "$root/usr/local/bin/pushrelay" 755 "$pkg/pushrelay"
grep -q "^Upgraded" <<<"$out" || fail "a second run did not say it upgraded: $out"
grep -qxF "  systemctl restart pushrelay" <<<"$out" || fail "the upgrade did not print the restart command: $out"
ok "upgrade: binary replaced, edited config and its mode kept, restart command printed"

# DESTDIR works like --root.
DESTDIR="$tmp/destdir" "$pkg/install.sh" >/dev/null 2>&1 && fail "install.sh accepted a DESTDIR that does not exist"
mkdir -p "$tmp/destdir"
DESTDIR="$tmp/destdir" "$pkg/install.sh" >/dev/null
expect_file "$tmp/destdir/usr/local/bin/pushrelay" 755 "$pkg/pushrelay"
ok "DESTDIR installs like --root"

# --uninstall removes what it installed, never config or state.
out=$("$pkg/install.sh" --root "$root" --uninstall)
[ ! -e "$root/usr/local/bin/pushrelay" ] || fail "--uninstall left the binary"
[ ! -e "$root/etc/systemd/system/pushrelay.service" ] || fail "--uninstall left the unit"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/pushrelay.service" ] || fail "--uninstall left the enable link"
cmp -s "$root/etc/pushrelay/pushrelay.toml" "$tmp/edited.toml" || fail "--uninstall touched the config"
[ "$(cat "$root/var/lib/private/pushrelay/vm/segment")" = queued ] || fail "--uninstall touched the state"
ok "--uninstall: binary, unit and link gone; config and state kept"

# --- OpenWrt flavour --------------------------------------------------------------------------
owrt="$tmp/openwrt"
mkdir -p "$owrt/etc"
printf "DISTRIB_ID='OpenWrt'\nDISTRIB_ARCH='mipsel_24kc'\n" >"$owrt/etc/openwrt_release"
out=$("$pkg/install.sh" --root "$owrt")
expect_file "$owrt/usr/bin/pushrelay" 755 "$pkg/pushrelay"
expect_file "$owrt/etc/init.d/pushrelay" 755 "$pkg/pushrelay.init"
expect_file "$owrt/etc/pushrelay/pushrelay.toml" 640 "$pkg/pushrelay.toml"
[ ! -e "$owrt/usr/local/bin/pushrelay" ] && [ ! -e "$owrt/etc/systemd" ] || fail "the OpenWrt install also put systemd files"
grep -qxF "  /etc/init.d/pushrelay enable && /etc/init.d/pushrelay start" <<<"$out" || fail "no OpenWrt start commands printed: $out"
ok "OpenWrt install (detected from /etc/openwrt_release): /usr/bin, /etc/init.d, config"

# The procd script against stand-ins of /etc/rc.common's procd helpers.
calls="$tmp/procd-calls"
sh -c '
    set -e
    calls="$1"
    procd_open_instance() { echo "open" >>"$calls"; }
    procd_set_param() { echo "$*" >>"$calls"; }
    procd_close_instance() { echo "close" >>"$calls"; }
    procd_send_signal() { echo "signal $*" >>"$calls"; }
    mkdir() { echo "mkdir $*" >>"$calls"; }
    chmod() { echo "chmod $*" >>"$calls"; }
    . "$2"
    [ "$USE_PROCD" = 1 ] && [ "$START" -gt 50 ]
    start_service
    reload_service
' sh "$calls" "$owrt/etc/init.d/pushrelay" || fail "the procd script failed under the stand-ins"
want="mkdir -p /var/lib/pushrelay
chmod 0700 /var/lib/pushrelay
open
command /usr/bin/pushrelay run --config /etc/pushrelay/pushrelay.toml
file /etc/pushrelay/pushrelay.toml
respawn 3600 5 0
stdout 1
stderr 1
term_timeout 30
close
signal pushrelay * HUP"
[ "$(cat "$calls")" = "$want" ] || fail "the procd script asked for: $(cat "$calls")"
ok "procd script: runs /usr/bin/pushrelay run --config /etc/pushrelay/pushrelay.toml, respawns, reloads with HUP"

"$pkg/install.sh" --root "$owrt" --uninstall >/dev/null
[ ! -e "$owrt/usr/bin/pushrelay" ] && [ ! -e "$owrt/etc/init.d/pushrelay" ] || fail "OpenWrt --uninstall left files"
[ -f "$owrt/etc/pushrelay/pushrelay.toml" ] || fail "OpenWrt --uninstall removed the config"
ok "OpenWrt --uninstall keeps the config"

echo "install test: $checks passed, 0 failed"
