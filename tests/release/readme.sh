#!/usr/bin/env bash
# Runs the commands of the README's Install section as written, in a throw-away root: the
# download URL is a local HTTP server serving dist/, the device's target is x86_64 (the one this
# machine runs), and `sudo`, `systemctl`, `/etc/init.d/pushrelay`, `cd`, `rm` and `pushrelay` are
# shell functions that do the same inside the root (absolute paths are moved under it; nothing
# outside it is touched). Between "install" and "start" the test writes the config a user would:
# a scrape of a local exposition pushed to a real VictoriaMetrics, which must then hold the value.
# The "from source" block is run by scripts/test-release.sh itself (it is the CI build).
#
# Usage: tests/release/readme.sh DIST_DIR    (needs pushrelay-<v>-x86_64-unknown-linux-musl.tar.gz
#        and SHA256SUMS in DIST_DIR, and .receivers/bin/victoria-metrics)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dist="$(cd "$1" && pwd)"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo_root/Cargo.toml" | head -n 1)
host_target=x86_64-unknown-linux-musl
vm_bin="${PUSHRELAY_RECEIVERS_DIR:-$repo_root/.receivers/bin}/victoria-metrics"
tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "readme test: FAILED: $*" >&2
    exit 1
}
[ -f "$dist/pushrelay-$version-$host_target.tar.gz" ] || fail "no $dist/pushrelay-$version-$host_target.tar.gz (scripts/build-release.sh $host_target)"
[ -x "$vm_bin" ] || fail "no $vm_bin (scripts/fetch-receivers.sh)"
block() { python3 "$repo_root/scripts/readme-install.py" block "$1"; }
# shellcheck source=systemd-tools.sh
source "$repo_root/tests/release/systemd-tools.sh"
systemd_tools "$repo_root" || fail "no systemctl"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url, what
    local i
    for i in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$2 did not answer at $1 within 30 s"
}

# Serves a new value of readme_test_value (label step=$1, value $2).
serve_value() {
    printf '# TYPE readme_test_value gauge\nreadme_test_value{step="%s"} %s\n' "$1" "$2" >"$site/metrics.new"
    mv "$site/metrics.new" "$site/metrics"
}

# The "release host": dist's tarball and checksums, and an exposition to scrape.
site="$tmp/site"
mkdir -p "$site"
cp "$dist/pushrelay-$version-$host_target.tar.gz" "$dist/SHA256SUMS" "$site/"
serve_value install 7
http_port=$(free_port)
(cd "$site" && exec python3 -m http.server --bind 127.0.0.1 "$http_port" >"$tmp/http.log" 2>&1) &
pids+=($!)
wait_http "http://127.0.0.1:$http_port/SHA256SUMS" "the local release server"

vm_port=$(free_port)
"$vm_bin" -storageDataPath="$tmp/vm" -httpListenAddr="127.0.0.1:$vm_port" -retentionPeriod=100y \
    -search.latencyOffset=0s >"$tmp/vm.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$vm_port/health" "VictoriaMetrics"

# Rewrites a README block for this run: the release URL and the target (blocks without a base=
# line pass through unchanged).
localize() {
    local text
    text=$(cat)
    if grep -q '^base=' <<<"$text"; then
        grep -q '^target=' <<<"$text" || fail "a README block with base= lost its target= line"
        grep -q "^version=$version\$" <<<"$text" || fail "the README's version= is not the crate's $version"
        text=$(sed -e "s|^base=.*|base=\"http://127.0.0.1:$http_port\"|" -e "s|^target=.*|target=$host_target|" <<<"$text")
    fi
    printf '%s\n' "$text"
}

# The config a user would write: the local exposition, pushed to VictoriaMetrics.
user_config() { # root listen-port
    cat >"$1/etc/pushrelay/pushrelay.toml" <<EOF
[relay]
interval = "1s"
state_dir = "$1/var/lib/pushrelay"
listen = "127.0.0.1:$2"

[[source]]
type = "scrape"
name = "readme"
url = "http://127.0.0.1:$http_port/metrics"

[[sink]]
type = "remote_write"
name = "vm"
url = "http://127.0.0.1:$vm_port/api/v1/write"
batch_wait = "1s"
EOF
}

# Waits until VictoriaMetrics has readme_test_value{job="readme",step=$1} = $2.
wait_delivered() {
    local i body=""
    for i in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$vm_port/internal/force_flush" || true
        body=$(curl -fsS "http://127.0.0.1:$vm_port/api/v1/query" --data-urlencode "query=readme_test_value{job=\"readme\",step=\"$1\"}" || true)
        if python3 -c 'import json,sys; r=json.loads(sys.argv[1])["data"]["result"]; sys.exit(0 if r and r[0]["value"][1]==sys.argv[2] else 1)' "$body" "$2" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail "VictoriaMetrics never received readme_test_value{step=\"$1\"} $2; last answer: $body"
}

# The shell functions the README's commands run through; see the header.
prelude() { # root binary-path flavour
    cat <<EOF
set -euo pipefail
export DESTDIR="$1"
export NO_COLOR=1
root="$1"
daemon_pid_file="$tmp/daemon-\$(basename "$1").pid"
listen_port=""
site="$site" http_port=$http_port vm_port=$vm_port
$(declare -f fail user_config serve_value wait_delivered)
rooted_args() {
    rooted=()
    local a
    for a in "\$@"; do
        case "\$a" in
        /*) rooted+=("\$root\$a") ;;
        *) rooted+=("\$a") ;;
        esac
    done
}
sudo() { "\$@"; }
grep() { rooted_args "\$@"; command grep "\${rooted[@]}"; }
pushrelay() { rooted_args "\$@"; "\$root$2" "\${rooted[@]}"; }
cd() { rooted_args "\$@"; builtin cd "\${rooted[@]}"; }
rm() {
    rooted_args "\$@"
    local a
    for a in "\${rooted[@]}"; do
        case "\$a" in -*) ;; "\$root"/*) ;; *) fail "rm \$a: outside the root" ;; esac
    done
    command rm "\${rooted[@]}"
}
# Starts the installed service as its manager would, and waits for /healthz.
start_daemon() { # command...
    "\$@" >>"$tmp/daemon.log" 2>&1 &
    echo \$! >"\$daemon_pid_file"
    local i
    for i in \$(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:\$listen_port/healthz" 2>/dev/null && return 0
        kill -0 "\$(cat "\$daemon_pid_file")" 2>/dev/null || fail "the service exited at start: \$(tail -n 5 $tmp/daemon.log)"
        sleep 0.1
    done
    fail "the service did not answer /healthz"
}
stop_daemon() {
    [ -f "\$daemon_pid_file" ] || return 0
    local pid rc=0
    pid=\$(cat "\$daemon_pid_file")
    kill -TERM "\$pid"
    wait "\$pid" || rc=\$?
    command rm -f "\$daemon_pid_file"
    [ "\$rc" -eq 0 ] || fail "the service exited \$rc on SIGTERM"
}
# systemd: enable links the unit inside the root (the real systemctl --root); start runs the
# unit's ExecStartPre copy of the config into the state directory and its ExecStart, as systemd
# would; reload copies again and sends SIGHUP, as its ExecReload does.
# The unit's ExecStartPre/ExecReload copy of /etc/pushrelay/pushrelay.toml into the state dir.
copy_config() {
    local unit="\$root/etc/systemd/system/pushrelay.service"
    command grep -q "^ExecStartPre=+.*install -m 0600 .* /etc/pushrelay/pushrelay.toml /var/lib/pushrelay/pushrelay.toml" "\$unit" || fail "the unit's config copy changed; update this test"
    mkdir -p "\$root/var/lib/pushrelay"
    install -m 0600 "\$root/etc/pushrelay/pushrelay.toml" "\$root/var/lib/pushrelay/pushrelay.toml"
}
systemctl() {
    local unit="\$root/etc/systemd/system/pushrelay.service" exec
    case "\$*" in
    "enable --now pushrelay" | "restart pushrelay")
        if [ "\$1" = enable ]; then
            "$systemctl_bin" --root="\$root" enable pushrelay.service >/dev/null 2>&1 || fail "systemctl --root enable failed"
            [ -L "\$root/etc/systemd/system/multi-user.target.wants/pushrelay.service" ] || fail "the unit was not enabled"
        fi
        stop_daemon
        copy_config
        exec=\$(sed -n 's/^ExecStart=//p' "\$unit")
        # shellcheck disable=SC2086
        rooted_args \$exec
        start_daemon "\${rooted[@]}"
        ;;
    "reload pushrelay")
        copy_config
        kill -HUP "\$(cat "\$daemon_pid_file")"
        ;;
    *) fail "systemctl \$*: not a command the README should need" ;;
    esac
}
# OpenWrt: enable makes the rc.d link as /etc/rc.common does; start runs what the procd script
# asks procd to run.
function /etc/init.d/pushrelay {
    local script="\$root/etc/init.d/pushrelay" cmd
    [ -x "\$script" ] || fail "/etc/init.d/pushrelay was not installed"
    case "\$1" in
    enable)
        mkdir -p "\$root/etc/rc.d"
        ln -sf ../init.d/pushrelay "\$root/etc/rc.d/S\$(sed -n 's/^START=//p' "\$script")pushrelay"
        ;;
    start)
        cmd=\$(sh -c '
            procd_open_instance() { :; }
            procd_close_instance() { :; }
            procd_set_param() { [ "\$1" = command ] && { shift; echo "\$*"; }; :; }
            mkdir() { :; }
            chmod() { :; }
            . "\$1"
            start_service' sh "\$script")
        rooted_args \$cmd
        start_daemon "\${rooted[@]}"
        ;;
    *) fail "/etc/init.d/pushrelay \$1: not a command the README should need" ;;
    esac
}
EOF
}

run_session() { # name root binary-path, then blocks and steps as: block:TAG or step:FUNCTION
    local name="$1" root="$2" bin="$3" script="$tmp/$1.sh" item
    shift 3
    prelude "$root" "$bin" >"$script"
    for item in "$@"; do
        case "$item" in
        block:*)
            echo "echo '--- README block ${item#block:}' >&2" >>"$script"
            block "${item#block:}" | localize >>"$script"
            ;;
        *) echo "${item#step:}" >>"$script" ;;
        esac
    done
    echo "stop_daemon" >>"$script"
    mkdir -p "$tmp/$name-home"
    (builtin cd "$tmp/$name-home" && bash "$script") || fail "the $name commands failed (script: $script)"
}
# --- Raspberry Pi OS / Debian (systemd) ---------------------------------------------------------
sys_root="$tmp/root-systemd"
mkdir -p "$sys_root"
sys_port=$(free_port)
run_session systemd "$sys_root" /usr/local/bin/pushrelay \
    block:systemd-install \
    "step:[ -f \"\$root/etc/pushrelay/pushrelay.toml\" ] || fail 'no config skeleton'" \
    "step:pushrelay config --config /etc/pushrelay/pushrelay.toml >/dev/null || fail 'the skeleton config does not validate'" \
    "step:user_config \"\$root\" $sys_port; listen_port=$sys_port" \
    block:systemd-start \
    "step:wait_delivered install 7" \
    "step:serve_value upgrade 8" \
    block:upgrade \
    "step:wait_delivered upgrade 8" \
    "step:stop_daemon" \
    block:remove \
    "step:[ ! -e \"\$root/usr/local/bin/pushrelay\" ] && [ ! -e \"\$root/etc/pushrelay\" ] && [ ! -e \"\$root/var/lib/pushrelay\" ] || fail 'remove left files'"
echo "readme test: ok: Raspberry Pi OS / Debian: download, verify, install, check, enable --now (delivered), upgrade, remove"

# --- OpenWrt ------------------------------------------------------------------------------------
owrt_root="$tmp/root-openwrt"
mkdir -p "$owrt_root/etc" "$owrt_root/tmp"
printf "DISTRIB_ID='OpenWrt'\nDISTRIB_ARCH='x86_64'\n" >"$owrt_root/etc/openwrt_release"
# (the which-device block runs first: its grep must find this file inside the root)
owrt_port=$(free_port)
run_session openwrt "$owrt_root" /usr/bin/pushrelay \
    block:which-device \
    block:openwrt-install \
    "step:[ -x \"\$root/usr/bin/pushrelay\" ] && [ -x \"\$root/etc/init.d/pushrelay\" ] || fail 'not installed the OpenWrt way'" \
    "step:user_config \"\$root\" $owrt_port; listen_port=$owrt_port" \
    "step:serve_value openwrt 9" \
    block:openwrt-start \
    "step:[ -L \"\$root/etc/rc.d/S95pushrelay\" ] || fail 'not enabled'" \
    "step:wait_delivered openwrt 9"
echo "readme test: ok: OpenWrt: download with wget, verify, install, check, enable, start (delivered)"
# Every block of the section is run: here, or (from-source) by scripts/test-release.sh.
ran="from-source $(grep -o 'block:[a-z0-9-]*' "${BASH_SOURCE[0]}" | sed 's/^block://' | sort -u | tr '\n' ' ')"
for tag in $(python3 "$repo_root/scripts/readme-install.py" tags); do
    [[ " $ran " == *" $tag "* ]] || fail "the README block '$tag' is run by no test"
done
echo "readme test: ok: every block of the Install section is run"
echo "readme test: 3 passed, 0 failed"
