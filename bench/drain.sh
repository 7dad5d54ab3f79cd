#!/usr/bin/env bash
# Drain benchmark: how fast pushrelay delivers a backlog of (by default) 1,000,000 queued samples
# to VictoriaMetrics, and how much memory it takes doing so; vmagent does the same, side by side,
# in the same run, for a ratio.
#
# 1. Backlog: the simulated exporter (`pushrelay sim --devices 300`, ~10 300 series) is scraped
#    every second, all at once, by pushrelay (`run`, default sink settings: max_samples_per_send
#    2000, batch_wait 5s, fsync 1s), by a second pushrelay with max_samples_per_send 10000
#    (--big-batches) and by vmagent (default flags), each with its remote-write URL pointing at a
#    closed port, until each has queued --samples samples; then each gets SIGTERM, and its queue
#    directory is kept as its backlog.
# 2. Drain, --repeat times, one sender at a time: a copy of the sender's backlog, a fresh
#    VictoriaMetrics listening on the very port the URL named (vmagent's queue directory is tied to
#    its URL), and the sender started for the drain only, so the peak RSS it reaches (VmHWM) is the
#    drain's. It is polled (/metrics, /proc) every 0.1 s until the backlog is delivered; then
#    VictoriaMetrics is asked (after /internal/force_flush) how many samples of the backlog it
#    stored (plus the NaN samples its count cannot see), to check that all of it arrived. pushrelay's drain config has one extra source (a 1-device simulator polled once an
#    hour, so about 100 fresh samples queue behind the backlog) because `run` needs a source.
# The report goes to bench/out/<run>/drain.md (and standard output); raw JSON next to it.
#
# Usage: bench/drain.sh [--samples N] [--devices N | --node-series N] [--interval DUR] [--repeat R]
#                       [--no-vmagent] [--big-batches N] [--pushrelay BIN | --no-build] [--keep-tmp]
#   --samples N      backlog size, in samples (default 1000000)
#   --devices N      simulator size for the backlog (default 300: 34 series per device + 60)
#   --node-series N  a second exporter shape instead of the simulator: bench/node_like.py's
#                    node-exporter shape with N series (many families, long label sets, every
#                    value changing every scrape)
#   --interval DUR   scrape interval while building the backlog (default 1s)
#   --repeat R       drains per sender (default 3)
#   --no-vmagent     pushrelay only
#   --big-batches N  also a second pushrelay with max_samples_per_send = N (default 10000,
#                    vmagent's block size; 0: leave it out)
#   --pushrelay BIN  use this pushrelay binary (no build)
#   --no-build       use target/release/pushrelay as it is (default: cargo build --release first)
#   --keep-tmp       keep the temporary directory (backlogs, receiver data) for inspection
# Needs: bash, curl, python3 (>= 3.8), Linux /proc, and victoria-metrics + vmagent from
# scripts/fetch-receivers.sh (in .receivers/bin, or $PUSHRELAY_RECEIVERS_DIR).
# Everything listens on 127.0.0.1 on free ports; every child is stopped on exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

target=1000000
devices=300
node_series=0
interval=1s
repeat=3
with_vmagent=1
big=10000
build=1
pushrelay="$repo/target/release/pushrelay"
keep_tmp=0
orig_args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
    --samples) target="$2"; shift 2 ;;
    --devices) devices="$2"; shift 2 ;;
    --node-series) node_series="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --no-vmagent) with_vmagent=0; shift ;;
    --big-batches) big="$2"; shift 2 ;;
    --pushrelay) pushrelay="$2"; build=0; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep-tmp) keep_tmp=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "drain: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[[ "$target" =~ ^[0-9]+$ ]] || { echo "drain: --samples must be a number" >&2; exit 2; }
[[ "$devices" =~ ^[0-9]+$ ]] || { echo "drain: --devices must be a number" >&2; exit 2; }
[[ "$node_series" =~ ^[0-9]+$ ]] || { echo "drain: --node-series must be a number" >&2; exit 2; }
[[ "$big" =~ ^[0-9]+$ ]] || { echo "drain: --big-batches must be a number (0: off)" >&2; exit 2; }
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || { echo "drain: --repeat must be at least 1" >&2; exit 2; }
[[ "$interval" =~ ^[0-9]+(ms|s|m)$ ]] || { echo "drain: --interval must look like 1s or 500ms" >&2; exit 2; }

bench=drain
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh" # say, die, alive, stop_pid, start, wait_http, free_ports

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done
bin_dir="${PUSHRELAY_RECEIVERS_DIR:-$repo/.receivers/bin}"
victoria="$bin_dir/victoria-metrics"
vmagent="$bin_dir/vmagent"
[ -x "$victoria" ] || die "$victoria not found: run scripts/fetch-receivers.sh"
if [ "$with_vmagent" -eq 1 ] && [ ! -x "$vmagent" ]; then
    die "$vmagent not found: run scripts/fetch-receivers.sh (or pass --no-vmagent)"
fi
if [ "$build" -eq 1 ]; then
    say "cargo build --release"
    cargo build --release --quiet
fi
[ -x "$pushrelay" ] || die "$pushrelay not found (build it, or pass --pushrelay BIN)"
stats=("python3" "$repo/bench/queue_bench.py")

run_id="drain-$(date -u +%Y%m%dT%H%M%SZ)"
keep_dir="$repo/bench/out/$run_id"
mkdir -p "$keep_dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-drain.XXXXXX")"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- Children and clean-up ---------------------------------------------------------------------
pids=()
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        stop_pid "${pids[$i]}"
    done
    cp "$tmp"/*.log "$tmp"/*.toml "$tmp"/*.yml "$keep_dir"/ 2>/dev/null || true
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

read -r -a ports <<<"$(free_ports 6)"
p_sim=${ports[0]} p_small=${ports[1]} p_vmag=${ports[2]} p_vm=${ports[3]}
declare -A port_of=([pr]=${ports[4]} [prb]=${ports[5]})
# While the backlog builds nothing listens on $p_vm (connection refused); VictoriaMetrics gets
# that port for the drains, so every sender keeps the URL its queue was written for.
rw_url="http://127.0.0.1:$p_vm/api/v1/write"

# ---- Workload -------------------------------------------------------------------------------------
if [ "$node_series" -gt 0 ]; then
    start sim python3 "$repo/bench/node_like.py" --listen "127.0.0.1:$p_sim" --series "$node_series"
    workload="node-exporter shape (bench/node_like.py --series $node_series)"
    # No staleness markers or NaN values in this shape: VictoriaMetrics' count is the backlog.
    count_flags=()
else
    start sim "$pushrelay" sim --listen "127.0.0.1:$p_sim" --devices "$devices"
    workload="$devices-device simulator"
    count_flags=(--stale-of flapping_link_up --nan-per-value-of battery_voltage_volts)
fi
pid_sim=$last_pid
start sim-small "$pushrelay" sim --listen "127.0.0.1:$p_small" --devices 1
pid_small=$last_pid
wait_http "http://127.0.0.1:$p_sim/metrics" "$pid_sim" sim
wait_http "http://127.0.0.1:$p_small/metrics" "$pid_small" sim-small
series=$(curl -fsS "http://127.0.0.1:$p_sim/metrics" | grep -vc '^#' || true)
say "$workload on :$p_sim serves $series series; backlog target $target samples, scraped every $interval"

# pushrelay senders: pr (default sink settings) and, with --big-batches N, prb (max_samples_per_send = N).
pr_senders=(pr)
declare -A mssp_of=([pr]=2000)
if [ "$big" -gt 0 ]; then
    pr_senders+=(prb)
    mssp_of[prb]=$big
fi
pushrelay_config() { # SENDER PHASE(build|drain)
    local s="$1" phase="$2" job=backlog url="http://127.0.0.1:$p_sim/metrics" every="$interval"
    if [ "$phase" = drain ]; then
        # The drain's source is a 1-device simulator polled once an hour: about 100 fresh samples,
        # behind the backlog; its own job, so VictoriaMetrics can count the backlog alone.
        job=fresh url="http://127.0.0.1:$p_small/metrics" every=1h
    fi
    cat >"$tmp/$s-$phase.toml" <<EOF
# pushrelay for the drain benchmark ($phase phase).
[relay]
external_labels = { sender = "$s" }
state_dir = "$tmp/$s-$phase"
listen = "127.0.0.1:${port_of[$s]}"
shutdown_timeout = "1s"

[[source]]
type = "scrape"
name = "$job"
url = "$url"
interval = "$every"

[[sink]]
type = "remote_write"
name = "vm"
url = "$rw_url"
max_samples_per_send = ${mssp_of[$s]}
EOF
}
for s in "${pr_senders[@]}"; do
    pushrelay_config "$s" build
    pushrelay_config "$s" drain
done
cat >"$tmp/vmag-build.yml" <<EOF
# vmagent for the drain benchmark: the same target and interval as pushrelay.
global:
  scrape_interval: $interval
  scrape_timeout: $interval
  external_labels: { sender: vmag }
scrape_configs:
  - job_name: backlog
    static_configs:
      - targets: ["127.0.0.1:$p_sim"]
EOF

# ---- 1. Build the backlog ---------------------------------------------------------------------------
t_build=$(date +%s.%N)
declare -A pid_of=()
for s in "${pr_senders[@]}"; do
    start "$s-build" "$pushrelay" run --config "$tmp/$s-build.toml"
    pid_of[$s]=$last_pid
done
if [ "$with_vmagent" -eq 1 ]; then
    start vmag-build "$vmagent" -httpListenAddr="127.0.0.1:$p_vmag" -promscrape.config="$tmp/vmag-build.yml" \
        -remoteWrite.url="$rw_url" -remoteWrite.tmpDataPath="$tmp/vmag-build"
    pid_of[vmag]=$last_pid
    wait_http "http://127.0.0.1:$p_vmag/health" "${pid_of[vmag]}" vmag-build
fi
for s in "${pr_senders[@]}"; do
    wait_http "http://127.0.0.1:${port_of[$s]}/healthz" "${pid_of[$s]}" "$s-build"
done
for s in "${pr_senders[@]}"; do
    "${stats[@]}" queued --kind pushrelay --url "http://127.0.0.1:${port_of[$s]}/metrics" --pid "${pid_of[$s]}" \
        --target "$target" --progress >/dev/null
done
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
build_hwm=""
if [ "$with_vmagent" -eq 1 ]; then
    vmag_queued=$("${stats[@]}" queued --kind vmagent --url "http://127.0.0.1:$p_vmag/metrics" --pid "${pid_of[vmag]}" \
        --target "$target" --progress)
    build_hwm+="vmag $(hwm "${pid_of[vmag]}") kB, "
    stop_pid "${pid_of[vmag]}"
    say "vmagent stopped (status $stop_rc after $stop_secs s), $vmag_queued samples queued"
fi
for s in "${pr_senders[@]}"; do
    build_hwm+="$s $(hwm "${pid_of[$s]}") kB, "
    stop_pid "${pid_of[$s]}"
    say "pushrelay $s stopped (status $stop_rc after $stop_secs s)"
done
build_secs=$(awk -v a="$t_build" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
stop_pid "$pid_sim"
senders=()
declare -A backlog_of=() disk_of=()
for s in "${pr_senders[@]}"; do
    backlog_json=$("${stats[@]}" pr-queue "$tmp/$s-build/vm")
    backlog_of[$s]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["samples"])' "$backlog_json")
    disk_of[$s]=$(du -sb "$tmp/$s-build/vm" | cut -f1)
    say "pushrelay $s backlog: $backlog_json, ${disk_of[$s]} bytes on disk (du)"
    senders+=("$s")
done
if [ "$with_vmagent" -eq 1 ]; then
    disk_of[vmag]=$(du -sb "$tmp/vmag-build" | cut -f1)
    say "vmagent backlog: ${disk_of[vmag]} bytes on disk (du)"
    senders+=(vmag)
fi

# ---- 2. Drain ---------------------------------------------------------------------------------------
results=()
# Both come from Debian's victoria-metrics package (scripts/fetch-receivers.sh notes its version).
vm_version="$(grep '^victoria-metrics=' "$bin_dir/VERSIONS" 2>/dev/null | cut -d= -f2 || true)"
vm_version="${vm_version:-?} (Debian package)"
for rep in $(seq "$repeat"); do
    for s in "${senders[@]}"; do
        rm -rf "$tmp/vm-data" "$tmp/$s-drain"
        start "vm-$s-$rep" "$victoria" -httpListenAddr="127.0.0.1:$p_vm" -storageDataPath="$tmp/vm-data" \
            -retentionPeriod=100y -search.latencyOffset=1s -search.disableCache
        pid_vm=$last_pid
        wait_http "http://127.0.0.1:$p_vm/health" "$pid_vm" "vm-$s-$rep"
        if [ "$s" = vmag ]; then
            cp -a "$tmp/vmag-build" "$tmp/vmag-drain"
            t0=$(date +%s.%N)
            # No scrape config: this vmagent only drains its queue.
            start "vmag-drain-$rep" "$vmagent" -httpListenAddr="127.0.0.1:$p_vmag" \
                -remoteWrite.url="$rw_url" -remoteWrite.tmpDataPath="$tmp/vmag-drain"
            pid_s=$last_pid
            "${stats[@]}" drain-watch --kind vmagent --pid "$pid_s" --url "http://127.0.0.1:$p_vmag/metrics" \
                --t0 "$t0" --out "$tmp/run-$s-$rep.json"
            expect_note="$vmag_queued queued (its rows-pushed counter at SIGTERM, read up to a scrape early)"
        else
            mkdir -p "$tmp/$s-drain"
            cp -a "$tmp/$s-build/vm" "$tmp/$s-drain/vm"
            t0=$(date +%s.%N)
            start "$s-drain-$rep" "$pushrelay" run --config "$tmp/$s-drain.toml"
            pid_s=$last_pid
            "${stats[@]}" drain-watch --kind pushrelay --pid "$pid_s" --url "http://127.0.0.1:${port_of[$s]}/metrics" \
                --expect "${backlog_of[$s]}" --t0 "$t0" --out "$tmp/run-$s-$rep.json"
            expect_note="${backlog_of[$s]} queued (read from the segments)"
        fi
        stop_pid "$pid_s"
        counts=$("${stats[@]}" vm-count --vm "http://127.0.0.1:$p_vm" --match "{sender=\"$s\",job!=\"fresh\"}" \
            "${count_flags[@]}")
        say "$s run $rep: VictoriaMetrics stored $counts"
        stop_pid "$pid_vm"
        queued="${backlog_of[$s]:-${vmag_queued:-0}}"
        python3 - "$tmp/run-$s-$rep.json" "$s" "$rep" "$counts" "$expect_note" "${mssp_of[$s]:-0}" "$queued" <<'EOF'
import json, sys
path, sender, rep, counts, note, mssp, queued = sys.argv[1:]
r = json.load(open(path))
c = json.loads(counts)
arrived = c["samples"] + c.get("uncounted", 0)
# The backlog delivered: pushrelay's, read from its segments; vmagent's, what VictoriaMetrics got
# (that vmagent scraped nothing while draining).
r.update(sender=sender, rep=int(rep), expect_note=note, vm=c, max_samples_per_send=int(mssp),
         backlog=arrived if sender == "vmag" else int(queued), complete=arrived == int(queued))
json.dump(r, open(path, "w"), indent=1)
EOF
        cp "$tmp/run-$s-$rep.json" "$keep_dir/"
        results+=("$keep_dir/run-$s-$rep.json")
    done
done

# ---- Report -------------------------------------------------------------------------------------
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
backlog_json="{"
for s in "${senders[@]}"; do
    backlog_json+="\"$s\": {\"disk_bytes\": ${disk_of[$s]}, \"max_samples_per_send\": ${mssp_of[$s]:-0}},"
done
backlog_json="${backlog_json%,}}"
export DR_DATE DR_TARGET DR_DEVICES DR_SERIES DR_INTERVAL DR_REPEAT DR_BUILD
export DR_WORKLOAD="$workload" DR_LOAD_BEFORE="$load_before" DR_LOAD_AFTER="$load_after" DR_VM_VERSION="$vm_version"
export DR_BACKLOG="$backlog_json" DR_CMD DR_GIT DR_PR_VERSION DR_BUILD_HWM="${build_hwm%, }"
DR_DATE="$(date -u +'%Y-%m-%d %H:%M UTC')"
DR_TARGET="$target" DR_DEVICES="$devices" DR_SERIES="$series" DR_INTERVAL="$interval" DR_REPEAT="$repeat"
DR_BUILD="$build_secs"
DR_CMD="bench/drain.sh${orig_args[*]:+ ${orig_args[*]}}"
DR_PR_VERSION="$("$pushrelay" --version 2>&1 | head -n 1)"
if [ "$pushrelay" = "$repo/target/release/pushrelay" ]; then
    DR_GIT="built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes in src/')"
else
    DR_GIT="binary $pushrelay"
fi
python3 - "$keep_dir/meta.json" <<'EOF'
import json, os, sys
e = os.environ
meta = {
    "date": e["DR_DATE"], "target": int(e["DR_TARGET"]), "devices": int(e["DR_DEVICES"]),
    "workload": e["DR_WORKLOAD"],
    "series": int(e["DR_SERIES"]), "interval": e["DR_INTERVAL"], "repeat": int(e["DR_REPEAT"]),
    "build_seconds": float(e["DR_BUILD"]), "load_before": e["DR_LOAD_BEFORE"],
    "load_after": e["DR_LOAD_AFTER"], "vm_version": e["DR_VM_VERSION"],
    "backlog": json.loads(e["DR_BACKLOG"]),
    "targets": {"rss_mib": 16},
    "notes": [
        f"Command: `{e['DR_CMD']}`; pushrelay: {e['DR_PR_VERSION']} ({e['DR_GIT']}); "
        f"vmagent and VictoriaMetrics: {e['DR_VM_VERSION']}.",
        f"Peak RSS (VmHWM) while building the backlog (scraping {e['DR_SERIES']} series every "
        f"{e['DR_INTERVAL']}, receiver down): {e['DR_BUILD_HWM']}.",
        "pushrelay: default sink settings (`batch_wait = \"5s\"`, `fsync = \"1s\"`, "
        "`max_samples_per_send = 2000` unless said); batches are sealed as the backlog builds, so "
        "the drain sends what was queued, one request at a time (one sender per sink). vmagent: "
        "default flags (VictoriaMetrics' own protocol with zstd, blocks of up to 10 000 samples, "
        "`-remoteWrite.queues` (4 here) concurrent senders).",
        "Drain time runs from the sender's exec to the poll (every 0.1 s) that saw the last "
        "backlog sample delivered: pushrelay_samples_sent_total reaching the backlog read from the "
        "segments; for vmagent, the last change of vmagent_remotewrite_blocks_sent_total once "
        "its pending bytes are 0 and nothing was sent for 1.5 s. It includes start-up (reading "
        "the queue index) and VictoriaMetrics' ingestion, which shares the same 2 cores.",
        "VictoriaMetrics' count (count_over_time) cannot see NaN samples: the staleness markers "
        "of the simulator's flapping series (counted from a raw export, where they are null) and "
        "the simulator's `battery_voltage_volts{cell=\"a\"} NaN`, one per scrape, which "
        "VictoriaMetrics drops (counted as the raw values of its +Inf sibling). Count plus those "
        "should equal the backlog (vmagent's: its rows-pushed counter read just before SIGTERM, so "
        "possibly a scrape short).",
    ],
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
"${stats[@]}" drain-report --meta "$keep_dir/meta.json" --markdown "$keep_dir/drain.md" "${results[@]}"
say "report in ${keep_dir#"$repo"/}/drain.md"
