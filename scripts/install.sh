#!/bin/sh
# Installs pushrelay from the unpacked release tarball this script is in (POSIX sh: runs on
# Debian/Raspberry Pi OS and on OpenWrt's busybox).
#
#   systemd:  the binary to /usr/local/bin/pushrelay, the unit to /etc/systemd/system/
#   OpenWrt:  the binary to /usr/bin/pushrelay (OpenWrt's PATH has no /usr/local), the procd
#             script to /etc/init.d/pushrelay
#   both:     a config skeleton to /etc/pushrelay/pushrelay.toml (0640) if there is none; an
#             existing config is never touched
# then prints the next two commands. Run it again with a newer tarball to upgrade: the binary and
# the unit are replaced; config and state (/var/lib/pushrelay) carry over.
#
# Usage: install.sh [--root DIR] [--openwrt | --systemd] [--uninstall]
#   --root DIR    install into DIR instead of / (also: the DESTDIR environment variable); services
#                 are then neither reloaded nor stopped
#   --openwrt     install the procd script (default when DIR/etc/openwrt_release exists)
#   --systemd     install the systemd unit (the default otherwise)
#   --uninstall   stop the service and remove the binary and the unit or init script; the config
#                 (/etc/pushrelay) and the state (/var/lib/pushrelay) are kept
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root="${DESTDIR:-}"
flavour=""
action=install

die() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --root)
        [ $# -ge 2 ] || die "--root needs a directory"
        root="$2"
        shift 2
        ;;
    --root=*)
        root="${1#--root=}"
        shift
        ;;
    --openwrt) flavour=openwrt; shift ;;
    --systemd) flavour=systemd; shift ;;
    --uninstall) action=uninstall; shift ;;
    -h | --help)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
done

root="${root%/}"
if [ -n "$root" ]; then
    [ -d "$root" ] || die "the root $root is not a directory"
fi
if [ -z "$flavour" ]; then
    if [ -f "$root/etc/openwrt_release" ]; then flavour=openwrt; else flavour=systemd; fi
fi
if [ "$flavour" = openwrt ]; then
    bin="/usr/bin/pushrelay"
    service="/etc/init.d/pushrelay"
    service_src="$here/pushrelay.init"
    service_mode=0755
else
    bin="/usr/local/bin/pushrelay"
    service="/etc/systemd/system/pushrelay.service"
    service_src="$here/pushrelay.service"
    service_mode=0644
fi
config="/etc/pushrelay/pushrelay.toml"

# Acting on the running system (no --root) needs root; a --root folder only needs write access.
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
    die "run it as root (sudo $0), or with --root DIR to install into a folder"
fi
live_systemd() { [ -z "$root" ] && [ "$flavour" = systemd ] && [ -d /run/systemd/system ]; }
live_openwrt() { [ -z "$root" ] && [ "$flavour" = openwrt ]; }

# Copies $1 to $2 with mode $3 through a temporary file and a rename, so that a running binary
# or a reader never sees a half-written file.
put() {
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.new.$$"
    chmod "$3" "$2.new.$$"
    mv -f "$2.new.$$" "$2"
}

if [ "$action" = uninstall ]; then
    if live_systemd; then
        systemctl disable --now pushrelay.service 2>/dev/null || true
    elif live_openwrt && [ -x "$service" ]; then
        "$service" stop 2>/dev/null || true
        "$service" disable 2>/dev/null || true
    fi
    for f in "$bin" "$service"; do
        if [ -e "$root$f" ]; then
            rm -f "$root$f"
            echo "removed $root$f"
        fi
    done
    if [ "$flavour" = systemd ]; then
        # What `systemctl enable` made, when it was run inside --root.
        rm -f "$root/etc/systemd/system/multi-user.target.wants/pushrelay.service"
    fi
    live_systemd && systemctl daemon-reload
    echo "kept $root/etc/pushrelay (config) and $root/var/lib/pushrelay (state); remove them by hand if you want them gone"
    exit 0
fi

for f in pushrelay pushrelay.toml "$(basename "$service_src")"; do
    [ -f "$here/$f" ] || die "$here/$f is missing: run install.sh from the unpacked release tarball"
done
# A binary for another CPU is the commonest mistake: it cannot run here.
if [ -z "$root" ] && ! "$here/pushrelay" --version >/dev/null 2>&1; then
    die "$here/pushrelay does not run on this machine ($(uname -m)): download the tarball for your device (see INSTALL.md)"
fi

upgrade=no
[ -e "$root$bin" ] && upgrade=yes
put "$here/pushrelay" "$root$bin" 0755
echo "installed $root$bin ($("$root$bin" --version 2>/dev/null || echo "pushrelay for another CPU"))"
put "$service_src" "$root$service" "$service_mode"
echo "installed $root$service"
if [ -e "$root$config" ]; then
    echo "kept $root$config (an existing config is never overwritten)"
else
    mkdir -p "$root/etc/pushrelay"
    chmod 0755 "$root/etc/pushrelay"
    put "$here/pushrelay.toml" "$root$config" 0640
    echo "installed $root$config (a skeleton: edit its sources and sinks)"
fi
live_systemd && systemctl daemon-reload

echo
if [ "$upgrade" = yes ]; then
    echo "Upgraded. Restart the service to run the new binary (state and queue carry over):"
    if [ "$flavour" = openwrt ]; then
        echo "  /etc/init.d/pushrelay restart"
    else
        echo "  systemctl restart pushrelay"
    fi
else
    echo "Next: edit $config, then"
    echo "  pushrelay check --config $config"
    if [ "$flavour" = openwrt ]; then
        echo "  /etc/init.d/pushrelay enable && /etc/init.d/pushrelay start"
    else
        echo "  systemctl enable --now pushrelay"
    fi
fi
