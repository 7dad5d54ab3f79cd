#!/usr/bin/env bash
# SD-wear benchmark: what queueing costs while the receiver is down, pushrelay against vmagent,
# side by side on the same workload, in one run.
#
# Four senders scrape one simulated exporter (`pushrelay sim --devices 7`, ~315 series) every
# --interval seconds, all with their remote-write URL pointing at a closed port, so every sample
# goes to the sender's persistent queue:
#   pr    pushrelay, default sink settings (batch_wait 5s, fsync "1s");
#   pra   pushrelay with buffer.fsync = "always";
#   vmag  vmagent, default flags (its queue holds zstd blocks for VictoriaMetrics' protocol);
#   vmpp  vmagent with -remoteWrite.forcePromProto (snappy blocks, as pushrelay).
# Run as root (the default), each queue directory is on its own freshly made ext4 file system
# on its own loop device, so /sys/block/loopN/stat counts exactly what a storage device (an SD
# card) would have been asked to write for that sender: data, metadata and journal, and cache
# flushes. Without root (or with --no-loop) only /proc/PID/io is measured.
#
# After --warmup seconds, it measures for --duration seconds (rounded to whole cycles, so every
# sender queues exactly that many scrapes): device sectors and requests written (after syncfs at
# both ends, so lazily written pages are counted), CPU time (per-thread schedstat), /proc/PID/io,
# samples queued (pushrelay_queue_samples; vmagent's rows pushed to remote write), and, with perf,
# the system calls each sender made (write, fsync/fdatasync, openat/rename, all). Then the senders
# get SIGTERM, and the whole run (start to exit, including the final flush) is counted too.
# The report goes to bench/out/<run>/sdwear.md (and standard output); raw data next to it.
#
# Usage: bench/sdwear.sh [--duration S] [--warmup S] [--interval S] [--devices N] [--no-loop]
#                        [--no-perf] [--pushrelay BIN | --no-build] [--keep-tmp]
#   --duration S     seconds measured, rounded down to whole cycles (default 300)
#   --warmup S       seconds before measuring (default 2.6 cycles: boundaries fall mid-cycle)
#   --interval S     scrape interval in whole seconds (default 15)
#   --devices N      simulator size (default 7: ~315 series)
#   --no-loop        plain directories under the temporary directory, no loop devices
#   --no-perf        do not count system calls with `perf stat`
#   --pushrelay BIN  use this pushrelay binary (no build)
#   --no-build       use target/release/pushrelay as it is (default: cargo build --release first)
#   --keep-tmp       keep the temporary directory (queues, logs) for inspection
# Needs: bash, curl, python3 (>= 3.8), Linux /proc, vmagent from scripts/fetch-receivers.sh;
# for loop devices: root, losetup, mkfs.ext4, mount; for system calls: perf with tracepoints.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

duration=300
warmup=""
interval=15
devices=7
use_loop=1
use_perf=1
build=1
pushrelay="$repo/target/release/pushrelay"
keep_tmp=0
loop_size=256M
orig_args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --devices) devices="$2"; shift 2 ;;
    --no-loop) use_loop=0; shift ;;
    --no-perf) use_perf=0; shift ;;
    --pushrelay) pushrelay="$2"; build=0; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep-tmp) keep_tmp=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "sdwear: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[[ "$interval" =~ ^[1-9][0-9]*$ ]] || { echo "sdwear: --interval must be whole seconds" >&2; exit 2; }
[[ "$duration" =~ ^[0-9]+$ ]] || { echo "sdwear: --duration must be whole seconds" >&2; exit 2; }
[[ "$devices" =~ ^[0-9]+$ ]] || { echo "sdwear: --devices must be a number" >&2; exit 2; }
cycles=$((duration / interval))
[ "$cycles" -ge 2 ] || { echo "sdwear: --duration must cover at least 2 intervals" >&2; exit 2; }
duration=$((cycles * interval))
if [ -z "$warmup" ]; then
    warmup=$(awk -v i="$interval" 'BEGIN { printf "%.1f", 2.6 * i }')
fi
[[ "$warmup" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "sdwear: --warmup must be seconds" >&2; exit 2; }

bench=sdwear
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh" # say, die, alive, stop_pid, start, wait_http, free_ports

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done
bin_dir="${PUSHRELAY_RECEIVERS_DIR:-$repo/.receivers/bin}"
vmagent="$bin_dir/vmagent"
[ -x "$vmagent" ] || die "$vmagent not found: run scripts/fetch-receivers.sh"
if [ "$use_loop" -eq 1 ]; then
    [ "$(id -u)" -eq 0 ] || die "loop devices need root: run as root, or pass --no-loop (then only /proc/PID/io is measured)"
    for tool in losetup mkfs.ext4 mount umount; do
        command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (or pass --no-loop)"
    done
fi
perf_events="raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_pwrite64"
perf_events+=",syscalls:sys_enter_pwritev,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync"
perf_events+=",syscalls:sys_enter_sync_file_range,syscalls:sys_enter_openat,syscalls:sys_enter_rename"
perf_events+=",syscalls:sys_enter_renameat,syscalls:sys_enter_renameat2,ext4:ext4_sync_file_enter"
if [ "$use_perf" -eq 1 ]; then
    command -v perf >/dev/null 2>&1 || die "'perf' not found (or pass --no-perf)"
    perf stat -x, -e "$perf_events" -o /dev/null -- true 2>/dev/null ||
        die "perf cannot count the syscall tracepoints here ($perf_events); pass --no-perf"
fi
if [ "$build" -eq 1 ]; then
    say "cargo build --release"
    cargo build --release --quiet
fi
[ -x "$pushrelay" ] || die "$pushrelay not found (build it, or pass --pushrelay BIN)"
stats=("python3" "$repo/bench/queue_bench.py")

run_id="sdwear-$(date -u +%Y%m%dT%H%M%SZ)"
keep_dir="$repo/bench/out/$run_id"
mkdir -p "$keep_dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-sdwear.XXXXXX")"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- Children, loop devices and clean-up ----------------------------------------------------------
pids=()
mounts=()
loops=()
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        stop_pid "${pids[$i]}"
    done
    cp "$tmp"/*.log "$tmp"/*.toml "$tmp"/*.yml "$keep_dir"/ 2>/dev/null || true
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[$i]}" 2>/dev/null || say "WARNING: could not unmount ${mounts[$i]}"
    done
    for ((i = ${#loops[@]} - 1; i >= 0; i--)); do
        losetup -d "${loops[$i]}" 2>/dev/null || say "WARNING: could not detach ${loops[$i]}"
    done
    if [ "$keep_tmp" -eq 1 ]; then
        say "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

senders=(pr pra vmag vmpp)
declare -A dev_of=()
# make_store NAME: the directory NAME's queue lives under ($tmp/store-NAME), on its own ext4 loop
# file system unless --no-loop.
make_store() {
    local name="$1" dir="$tmp/store-$1" dev
    mkdir -p "$dir"
    if [ "$use_loop" -eq 1 ]; then
        truncate -s "$loop_size" "$tmp/$name.img"
        dev=$(losetup -f --show "$tmp/$name.img")
        loops+=("$dev")
        # No lazy initialisation: nothing but the sender writes to the device afterwards.
        mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$dev"
        mount "$dev" "$dir"
        mounts+=("$dir")
        dev_of[$name]="${dev#/dev/}"
    fi
}
for s in "${senders[@]}"; do
    make_store "$s"
done

read -r -a ports <<<"$(free_ports 7)"
p_sim=${ports[0]} p_dead=${ports[1]}
declare -A port_of=([pr]=${ports[2]} [pra]=${ports[3]} [vmag]=${ports[4]} [vmpp]=${ports[5]})
rw_url="http://127.0.0.1:$p_dead/api/v1/write" # nothing listens: connection refused

# ---- Workload and senders -------------------------------------------------------------------------
start sim "$pushrelay" sim --listen "127.0.0.1:$p_sim" --devices "$devices"
pid_sim=$last_pid
wait_http "http://127.0.0.1:$p_sim/metrics" "$pid_sim" sim
series=$(curl -fsS "http://127.0.0.1:$p_sim/metrics" | grep -vc '^#' || true)
say "simulator on :$p_sim serves $series series; scraped every $interval s; receiver down ($rw_url)"

pushrelay_config() { # NAME FSYNC
    cat >"$tmp/$1.toml" <<EOF
# pushrelay for the SD-wear benchmark: one scrape source, one remote-write sink that is down.
[relay]
external_labels = { sender = "$1" }
state_dir = "$tmp/store-$1/state"
listen = "127.0.0.1:${port_of[$1]}"
shutdown_timeout = "1s"

[[source]]
type = "scrape"
name = "sim"
url = "http://127.0.0.1:$p_sim/metrics"
interval = "${interval}s"

[[sink]]
type = "remote_write"
name = "rw"
url = "$rw_url"
buffer = { fsync = "$2" }
EOF
}
vmagent_config() { # NAME
    cat >"$tmp/$1.yml" <<EOF
# vmagent for the SD-wear benchmark: the same target and interval as pushrelay.
global:
  scrape_interval: ${interval}s
  scrape_timeout: $((interval < 10 ? interval : 10))s
  external_labels: { sender: $1 }
scrape_configs:
  - job_name: sim
    static_configs:
      - targets: ["127.0.0.1:$p_sim"]
EOF
}
pushrelay_config pr 1s
pushrelay_config pra always
vmagent_config vmag
vmagent_config vmpp
declare -A cmd_of=(
    [pr]="$pushrelay run --config $tmp/pr.toml"
    [pra]="$pushrelay run --config $tmp/pra.toml"
    [vmag]="$vmagent -httpListenAddr=127.0.0.1:${port_of[vmag]} -promscrape.config=$tmp/vmag.yml -remoteWrite.url=$rw_url -remoteWrite.tmpDataPath=$tmp/store-vmag/queue"
    [vmpp]="$vmagent -httpListenAddr=127.0.0.1:${port_of[vmpp]} -promscrape.config=$tmp/vmpp.yml -remoteWrite.url=$rw_url -remoteWrite.tmpDataPath=$tmp/store-vmpp/queue -remoteWrite.forcePromProto=true"
)
declare -A kind_of=([pr]=pushrelay [pra]=pushrelay [vmag]=vmagent [vmpp]=vmagent)
declare -A health_of=([pr]=healthz [pra]=healthz [vmag]=health [vmpp]=health)
declare -A queue_of=([pr]="$tmp/store-pr/state/rw" [pra]="$tmp/store-pra/state/rw"
    [vmag]="$tmp/store-vmag/queue" [vmpp]="$tmp/store-vmpp/queue")

# snap LABEL [--proc]: one snapshot of everything (devices always; processes and /metrics with --proc)
snap() {
    local label="$1" args=() s
    for s in "${senders[@]}"; do
        if [ "$use_loop" -eq 1 ]; then
            args+=(--dev "$s=${dev_of[$s]}" --sync "$tmp/store-$s")
        fi
        args+=(--dir "$s=${queue_of[$s]}")
        if [ "${2:-}" = --proc ]; then
            args+=(--proc "$s=${pid_of[$s]}" --metrics "$s=${kind_of[$s]}=http://127.0.0.1:${port_of[$s]}/metrics")
        fi
    done
    "${stats[@]}" snap --out "$keep_dir/snaps.jsonl" --label "$label" "${args[@]}"
}

declare -A pid_of=()
snap start >/dev/null
for s in "${senders[@]}"; do
    # shellcheck disable=SC2086 # the command lines above are split on purpose (no spaces in paths)
    start "$s" ${cmd_of[$s]}
    pid_of[$s]=$last_pid
done
for s in "${senders[@]}"; do
    wait_http "http://127.0.0.1:${port_of[$s]}/${health_of[$s]}" "${pid_of[$s]}" "$s"
done
say "senders up (pids: pr ${pid_of[pr]}, pra ${pid_of[pra]}, vmag ${pid_of[vmag]}, vmpp ${pid_of[vmpp]}); warming up for $warmup s"
sleep "$warmup"

# ---- Measure ----------------------------------------------------------------------------------------
t_begin=$(snap begin --proc)
perf_pids=()
if [ "$use_perf" -eq 1 ]; then
    for s in "${senders[@]}"; do
        perf stat -x, -e "$perf_events" -p "${pid_of[$s]}" -o "$keep_dir/perf-$s.csv" &
        perf_pids+=($!)
        pids+=($!)
    done
fi
say "measuring for $duration s ($cycles cycles)"
t_end=$(awk -v t="$t_begin" -v d="$duration" 'BEGIN { printf "%.3f", t + d }')
left() { awk -v t="$t_end" -v now="$(date +%s.%N)" -v m="$1" 'BEGIN { l = t - now - m; printf "%.3f", (l > 0 ? l : 0) }'; }
for ((t = 60; t < duration; t += 60)); do
    sleep "$(awk -v l="$(left $((duration - t)))" 'BEGIN { print l }')"
    for s in "${senders[@]}"; do
        alive "${pid_of[$s]}" || die "$s exited during the run (see $tmp/$s.log)"
    done
    say "  $t of $duration s"
done
sleep "$(left 0.3)"
for p in "${perf_pids[@]}"; do
    stop_pid "$p" INT
done
snap end --proc --at "$t_end" >/dev/null

shutdown_json="{"
for s in "${senders[@]}"; do
    stop_pid "${pid_of[$s]}"
    say "$s exited with status $stop_rc, $stop_secs s after SIGTERM"
    shutdown_json+="\"$s\": {\"status\": $stop_rc, \"seconds\": $stop_secs},"
done
shutdown_json="${shutdown_json%,}}"
snap final >/dev/null
stop_pid "$pid_sim"

# ---- Report -------------------------------------------------------------------------------------------
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
vm_version="$(grep '^victoria-metrics=' "$bin_dir/VERSIONS" 2>/dev/null | cut -d= -f2 || true)"
if [ "$pushrelay" = "$repo/target/release/pushrelay" ]; then
    pr_from="built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes in src/')"
else
    pr_from="binary $pushrelay"
fi
export SW_DATE SW_INTERVAL="$interval" SW_DURATION="$duration" SW_WARMUP="$warmup" SW_DEVICES="$devices"
export SW_SERIES="$series" SW_LOOP="$use_loop" SW_PERF="$use_perf" SW_LOAD_BEFORE="$load_before"
export SW_LOAD_AFTER="$load_after" SW_SHUTDOWN="$shutdown_json" SW_KEEP="$keep_dir" SW_CMD SW_VERSIONS
SW_DATE="$(date -u +'%Y-%m-%d %H:%M UTC')"
SW_CMD="bench/sdwear.sh${orig_args[*]:+ ${orig_args[*]}}"
SW_VERSIONS="pushrelay: $("$pushrelay" --version 2>&1 | head -n 1) ($pr_from); vmagent: ${vm_version:-?} (Debian package)"
python3 - "$keep_dir/meta.json" <<'EOF'
import json, os, sys
e = os.environ
senders = ["pr", "pra", "vmag", "vmpp"]
perf = {}
if e["SW_PERF"] == "1":
    for s in senders:
        counts = {}
        try:
            for line in open(os.path.join(e["SW_KEEP"], f"perf-{s}.csv")):
                f = line.strip().split(",")
                if len(f) < 3 or line.startswith("#"):
                    continue
                try:
                    counts[f[2]] = int(f[0])
                except ValueError:
                    pass
        except FileNotFoundError:
            pass
        perf[s] = counts
meta = {
    "date": e["SW_DATE"], "interval_s": int(e["SW_INTERVAL"]), "interval": f'{e["SW_INTERVAL"]} s',
    "duration": int(e["SW_DURATION"]), "warmup": float(e["SW_WARMUP"]), "devices": int(e["SW_DEVICES"]),
    "series": int(e["SW_SERIES"]), "loop": e["SW_LOOP"] == "1", "load_before": e["SW_LOAD_BEFORE"],
    "load_after": e["SW_LOAD_AFTER"], "senders": senders, "baseline": "vmag", "perf": perf,
    "shutdown": json.loads(e["SW_SHUTDOWN"]),
    "titles": {"pr": "pushrelay, fsync 1s (default)", "pra": "pushrelay, fsync always",
               "vmag": "vmagent (default, zstd)", "vmpp": "vmagent, forcePromProto (snappy)"},
    "notes": [
        f"Command: `{e['SW_CMD']}`; {e['SW_VERSIONS']}.",
        "Per cycle = per scrape interval of the measured window (the window is a whole number of "
        "intervals, so every sender queued exactly that many scrapes). pushrelay's samples include "
        "its own self-metrics (job `pushrelay`, every 30 s), which vmagent does not push.",
        "System calls are counted with `perf stat` on the syscall tracepoints, attached to each "
        "sender for the measured window; writes include socket and log writes (each sender retries "
        "the dead receiver and logs it), fsync/fdatasync are all the queue's.",
        "Exit on SIGTERM: " + ", ".join(f'{k} status {v["status"]} after {v["seconds"]} s'
                                        for k, v in json.loads(e["SW_SHUTDOWN"]).items()) + ".",
    ],
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
"${stats[@]}" wear-report --meta "$keep_dir/meta.json" --snaps "$keep_dir/snaps.jsonl" \
    --markdown "$keep_dir/sdwear.md" --json "$keep_dir/summary.json"
say "report in ${keep_dir#"$repo"/}/sdwear.md"
