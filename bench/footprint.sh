#!/usr/bin/env bash
# Footprint benchmark: pushrelay against vmagent, side by side on the same workload, in one run.
#
# Starts the simulated exporter (`pushrelay sim --devices 7`, ~320 series with moving values), a
# real Prometheus 3.5 remote-write receiver, one byte-counting proxy route per sender
# (bench/tcpcount.py), and three senders that scrape the exporter every 15 s and push to the
# receiver through their own route:
#   - pushrelay with batch_wait = "5s" (the default),
#   - pushrelay with batch_wait = "60s" (the metered-link setting: several scrapes per request),
#   - vmagent, forced to Prometheus remote write (snappy), the baseline;
# and optionally (--with-vm-zstd) a second vmagent pushing its own zstd protocol to a real
# VictoriaMetrics. It samples memory and CPU of each sender every few seconds, stops the senders
# with SIGTERM (noting how each exits), then writes a Markdown report to bench/out/<run>/report.md
# (and prints it; copy what you keep into bench/RESULTS.md, which holds the history of every
# benchmark and is never overwritten); the raw data stays in bench/out/<run>/, from which the
# report can be made again:
#   bench/footprint_stats.py report --samples bench/out/<run>/samples.jsonl --meta bench/out/<run>/meta.json
#
# Usage: bench/footprint.sh [--duration SECONDS] [--every SECONDS] [--devices N] [--out FILE]
#                           [--no-build] [--encode-bench] [--with-vm-zstd] [--keep-tmp]
#   --duration S     how long to measure after start-up (default 300)
#   --every S        seconds between memory/CPU samples (default 5)
#   --devices N      simulator size (default 7: ~320 series)
#   --out FILE       where the Markdown report goes (default bench/out/<run>/report.md)
#   --no-build       use target/release/pushrelay as it is (default: cargo build --release first)
#   --encode-bench   also run `cargo bench --bench encode` (after the measurement) and report it
#   --with-vm-zstd   also run vmagent -> VictoriaMetrics (zstd), for reference
#   --keep-tmp       keep the temporary directory (receiver data, queues) for inspection
# Needs: bash, curl, python3 (>= 3.8), a Linux /proc, and the receivers that
# scripts/fetch-receivers.sh puts in .receivers/bin (run here when missing).
# Everything listens on 127.0.0.1 on free ports; every child is stopped on exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

duration=300
every=5
devices=7
out=""
build=1
encode_bench=0
with_vm=0
keep_tmp=0
orig_args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --duration=*) duration="${1#*=}"; shift ;;
    --every) every="$2"; shift 2 ;;
    --every=*) every="${1#*=}"; shift ;;
    --devices) devices="$2"; shift 2 ;;
    --devices=*) devices="${1#*=}"; shift ;;
    --out) out="$2"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    --no-build) build=0; shift ;;
    --encode-bench) encode_bench=1; shift ;;
    --with-vm-zstd) with_vm=1; shift ;;
    --keep-tmp) keep_tmp=1; shift ;;
    -h | --help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "footprint: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 30 ]; then
    echo "footprint: --duration must be a whole number of seconds, at least 30" >&2
    exit 2
fi
[[ "$every" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "footprint: --every must be a number of seconds" >&2; exit 2; }
[[ "$devices" =~ ^[0-9]+$ ]] || { echo "footprint: --devices must be a number" >&2; exit 2; }

bench=footprint
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh" # say, die, alive, stop_pid, start, wait_http, free_ports

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done

bin_dir="${PUSHRELAY_RECEIVERS_DIR:-$repo/.receivers/bin}"
prometheus="$bin_dir/prometheus"
vmagent="$bin_dir/vmagent"
victoria="$bin_dir/victoria-metrics"
if [ ! -x "$prometheus" ] || [ ! -x "$vmagent" ] || { [ "$with_vm" -eq 1 ] && [ ! -x "$victoria" ]; }; then
    say "receivers missing; running scripts/fetch-receivers.sh"
    scripts/fetch-receivers.sh
fi

if [ "$build" -eq 1 ]; then
    say "cargo build --release"
    cargo build --release --quiet
fi
pushrelay="$repo/target/release/pushrelay"
[ -x "$pushrelay" ] || die "$pushrelay not found (build it, or drop --no-build)"

run_id="footprint-$(date -u +%Y%m%dT%H%M%SZ)"
keep_dir="$repo/bench/out/$run_id"
mkdir -p "$keep_dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-footprint.XXXXXX")"

# ---- Children and clean-up ---------------------------------------------------------------------
pids=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    # Stop in reverse start order: senders first (so they do not log a vanished receiver), then
    # the proxy, the receivers and the simulator.
    local rev=()
    for pid in "${pids[@]}"; do
        rev=("$pid" "${rev[@]}")
    done
    for pid in "${rev[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # Logs and configs are worth keeping; receiver data and queues are not.
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

# Free ports (distinct, released before use).
read -r -a ports <<<"$(free_ports 14)"
p_sim=${ports[0]} p_prom=${ports[1]}
p_px_pr05=${ports[2]} p_px_pr60=${ports[3]} p_px_vmag=${ports[4]} p_px_vmzs=${ports[5]}
p_pr05=${ports[6]} p_pr60=${ports[7]} p_vmag=${ports[8]} p_vmzs=${ports[9]} p_vm=${ports[10]}

# ---- Workload and receivers ---------------------------------------------------------------------
start sim "$pushrelay" sim --listen "127.0.0.1:$p_sim" --devices "$devices"
pid_sim=$last_pid
wait_http "http://127.0.0.1:$p_sim/metrics" "$pid_sim" sim
series_scraped=$(curl -fsS "http://127.0.0.1:$p_sim/metrics" | grep -vc '^#' || true)
say "simulator on :$p_sim serves $series_scraped series"

cat >"$tmp/prometheus.yml" <<EOF
# Receiver only: scrapes nothing.
global:
  scrape_interval: 15s
EOF
start prometheus "$prometheus" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus-data" \
    --web.listen-address="127.0.0.1:$p_prom" --web.enable-remote-write-receiver
pid_prom=$last_pid
wait_http "http://127.0.0.1:$p_prom/-/ready" "$pid_prom" prometheus

routes=(--route "pr05=$p_px_pr05=127.0.0.1:$p_prom" --route "pr60=$p_px_pr60=127.0.0.1:$p_prom"
    --route "vmag=$p_px_vmag=127.0.0.1:$p_prom")
if [ "$with_vm" -eq 1 ]; then
    start victoria-metrics "$victoria" -httpListenAddr="127.0.0.1:$p_vm" -storageDataPath="$tmp/vm-data" \
        -retentionPeriod=1d -search.latencyOffset=1s
    pid_vm=$last_pid
    wait_http "http://127.0.0.1:$p_vm/health" "$pid_vm" victoria-metrics
    routes+=(--route "vmzs=$p_px_vmzs=127.0.0.1:$p_vm")
fi
start proxy python3 "$repo/bench/tcpcount.py" --stats "$tmp/proxy.json" "${routes[@]}"
pid_proxy=$last_pid
for _ in $(seq 100); do
    [ -s "$tmp/proxy.json" ] && break
    kill -0 "$pid_proxy" 2>/dev/null || { cat "$tmp/proxy.log" >&2; die "proxy exited at start-up"; }
    sleep 0.1
done
[ -s "$tmp/proxy.json" ] || die "proxy did not start"

# ---- Senders ------------------------------------------------------------------------------------
# Each sender adds sender="<4 letters>" (same length for all) so the receiver can count per sender.
pushrelay_config() { # NAME BATCH_WAIT LISTEN_PORT PROXY_PORT
    cat >"$tmp/$1.toml" <<EOF
# pushrelay for the footprint benchmark: one scrape source, one remote-write sink.
[relay]
external_labels = { sender = "$1" }
state_dir = "$tmp/$1-state"
listen = "127.0.0.1:$3"

[[source]]
type = "scrape"
name = "sim"
url = "http://127.0.0.1:$p_sim/metrics"
interval = "15s"

[[sink]]
type = "remote_write"
name = "prom"
url = "http://127.0.0.1:$4/api/v1/write"
batch_wait = "$2"
EOF
}
vmagent_config() { # NAME
    cat >"$tmp/$1.yml" <<EOF
# vmagent for the footprint benchmark: the same target and interval as pushrelay.
global:
  scrape_interval: 15s
  external_labels: { sender: $1 }
scrape_configs:
  - job_name: sim
    static_configs:
      - targets: ["127.0.0.1:$p_sim"]
EOF
}

pushrelay_config pr05 5s "$p_pr05" "$p_px_pr05"
pushrelay_config pr60 60s "$p_pr60" "$p_px_pr60"
vmagent_config vmag
cmd_pr05=("$pushrelay" run --config "$tmp/pr05.toml")
cmd_pr60=("$pushrelay" run --config "$tmp/pr60.toml")
cmd_vmag=("$vmagent" -httpListenAddr="127.0.0.1:$p_vmag" -promscrape.config="$tmp/vmag.yml"
    -remoteWrite.url="http://127.0.0.1:$p_px_vmag/api/v1/write" -remoteWrite.tmpDataPath="$tmp/vmag-queue"
    -remoteWrite.forcePromProto=true)

start pr05 "${cmd_pr05[@]}"
pid_pr05=$last_pid
start pr60 "${cmd_pr60[@]}"
pid_pr60=$last_pid
start vmag "${cmd_vmag[@]}"
pid_vmag=$last_pid
if [ "$with_vm" -eq 1 ]; then
    vmagent_config vmzs
    cmd_vmzs=("$vmagent" -httpListenAddr="127.0.0.1:$p_vmzs" -promscrape.config="$tmp/vmzs.yml"
        -remoteWrite.url="http://127.0.0.1:$p_px_vmzs/api/v1/write" -remoteWrite.tmpDataPath="$tmp/vmzs-queue")
    start vmzs "${cmd_vmzs[@]}"
    pid_vmzs=$last_pid
fi
wait_http "http://127.0.0.1:$p_pr05/healthz" "$pid_pr05" pr05
wait_http "http://127.0.0.1:$p_pr60/healthz" "$pid_pr60" pr60
wait_http "http://127.0.0.1:$p_vmag/health" "$pid_vmag" vmag
if [ "$with_vm" -eq 1 ]; then
    wait_http "http://127.0.0.1:$p_vmzs/health" "$pid_vmzs" vmzs
fi
say "senders up: pushrelay pids $pid_pr05 (5s) $pid_pr60 (60s), vmagent pid $pid_vmag; measuring for $duration s"

# ---- Measure --------------------------------------------------------------------------------------
procs=(--proc "pr05=$pid_pr05" --proc "pr60=$pid_pr60" --proc "vmag=$pid_vmag" --proc "sim=$pid_sim" --proc "prometheus=$pid_prom")
metrics=(--metrics "pr05=http://127.0.0.1:$p_pr05/metrics" --metrics "pr60=http://127.0.0.1:$p_pr60/metrics"
    --metrics "vmag=http://127.0.0.1:$p_vmag/metrics")
if [ "$with_vm" -eq 1 ]; then
    procs+=(--proc "vmzs=$pid_vmzs")
    metrics+=(--metrics "vmzs=http://127.0.0.1:$p_vmzs/metrics")
fi
python3 "$repo/bench/footprint_stats.py" sample --out "$keep_dir/samples.jsonl" --duration "$duration" \
    --every "$every" --proxy-stats "$tmp/proxy.json" --prom "http://127.0.0.1:$p_prom" --progress \
    "${procs[@]}" "${metrics[@]}"
if [ "$with_vm" -eq 1 ]; then
    # Samples VictoriaMetrics stored from the zstd vmagent (it keeps the last second in memory).
    sleep 2
    curl -fsS "http://127.0.0.1:$p_vm/api/v1/query" \
        --data-urlencode "query=sum by (sender, job) (count_over_time({sender!=\"\"}[$((duration + 600))s]))" \
        >"$keep_dir/vm-received.json" || true
fi

# Stop the senders now (before anything else runs, e.g. cargo relinking the binary they run),
# one at a time, noting how each one exits on SIGTERM: its status and how long it took.
senders=(pr05 pr60 vmag)
if [ "$with_vm" -eq 1 ]; then
    senders+=(vmzs)
fi
shutdown_json="{"
for name in "${senders[@]}"; do
    pid_var="pid_$name"
    pid="${!pid_var}"
    if ! alive "$pid"; then
        say "WARNING: $name exited during the run (see $keep_dir/$name.log)"
    fi
    stop_pid "$pid"
    say "$name exited with status $stop_rc, $stop_secs s after SIGTERM"
    shutdown_json+="\"$name\": {\"status\": $stop_rc, \"seconds\": $stop_secs},"
done
shutdown_json="${shutdown_json%,}}"

# ---- Optional encode benchmark (after the run, so it does not compete with the senders) -----------
criterion_dir="$keep_dir/criterion"
encode_summary=""
encode_error=""
if [ "$encode_bench" -eq 1 ]; then
    say "cargo bench --bench encode"
    encode_summary="$keep_dir/encode-sizes.md"
    if CRITERION_HOME="$criterion_dir" PUSHRELAY_BENCH_SUMMARY="$encode_summary" \
        cargo bench --quiet --bench encode >"$keep_dir/encode-bench.txt" 2>&1; then
        grep -E 'time:|thrpt:' "$keep_dir/encode-bench.txt" >&2 || true
    else
        encode_error="cargo bench --bench encode failed: $(grep -m 1 -E '^error' "$keep_dir/encode-bench.txt" || tail -n 1 "$keep_dir/encode-bench.txt")"
        say "WARNING: $encode_error (full output in ${keep_dir#"$repo"/}/encode-bench.txt); the report will have no encode section"
        encode_summary=""
    fi
fi

# ---- Report --------------------------------------------------------------------------------------
warn_lines() { # LOG PATTERN -> JSON list of up to 20 distinct matching lines
    { sed -E $'s/\x1b\\[[0-9;]*m//g' "$1" 2>/dev/null || true; } | { grep -E "$2" || true; } |
        sed -E 's/^[0-9TZ:.+-]+[[:space:]]+//' | sort | uniq -c | sort -rn |
        head -n 20 | python3 -c 'import json,sys; print(json.dumps([l.strip() for l in sys.stdin]))'
}
size_of() { stat -c %s "$1"; }

export FP_DATE FP_EVERY FP_DEVICES FP_SERIES FP_CMD FP_PR_VERSION FP_PROM_VERSION FP_VM_VERSION FP_GIT
export FP_SIZE_PR FP_SIZE_VMAGENT FP_CMD_PR05 FP_CMD_PR60 FP_CMD_VMAG FP_CMD_VMZS FP_WITH_VM
export FP_WARN_PR05 FP_WARN_PR60 FP_WARN_VMAG FP_WARN_VMZS FP_ENCODE_SUMMARY FP_CRITERION_DIR FP_VM_RECEIVED
export FP_SHUTDOWN="$shutdown_json" FP_ENCODE_ERROR="$encode_error"
FP_DATE="$(date -u +'%Y-%m-%d %H:%M UTC')"
FP_EVERY="$every"
FP_DEVICES="$devices"
FP_SERIES="$series_scraped"
FP_CMD="bench/footprint.sh${orig_args[*]:+ ${orig_args[*]}}"
FP_PR_VERSION="$("$pushrelay" --version 2>&1 | head -n 1 | sed 's/^pushrelay //')"
FP_GIT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes in src/')"
FP_PROM_VERSION="$("$prometheus" --version 2>&1 | head -n 1 | sed 's/^prometheus, //')"
FP_VM_VERSION="$(grep '^victoria-metrics=' "$bin_dir/VERSIONS" 2>/dev/null | cut -d= -f2 || true)"
FP_VM_VERSION="${FP_VM_VERSION:-?} (Debian package)"
FP_SIZE_PR="$(size_of "$pushrelay")"
FP_SIZE_VMAGENT="$(size_of "$vmagent")"
FP_CMD_PR05="pushrelay run --config pr05.toml (batch_wait = \"5s\")"
FP_CMD_PR60="pushrelay run --config pr60.toml (batch_wait = \"60s\")"
FP_CMD_VMAG="vmagent -promscrape.config=vmag.yml -remoteWrite.url=<proxy>/api/v1/write -remoteWrite.tmpDataPath=<tmp> -remoteWrite.forcePromProto=true -httpListenAddr=127.0.0.1:<port>"
FP_CMD_VMZS="vmagent (same, without -remoteWrite.forcePromProto) -> VictoriaMetrics"
FP_WITH_VM="$with_vm"
FP_WARN_PR05="$(warn_lines "$tmp/pr05.log" '(WARN|ERROR)')"
FP_WARN_PR60="$(warn_lines "$tmp/pr60.log" '(WARN|ERROR)')"
FP_WARN_VMAG="$(warn_lines "$tmp/vmag.log" $'\t(warn|error|fatal|panic)\t')"
FP_WARN_VMZS="$(warn_lines "$tmp/vmzs.log" $'\t(warn|error|fatal|panic)\t')"
FP_ENCODE_SUMMARY="$encode_summary"
FP_CRITERION_DIR="$criterion_dir"
FP_VM_RECEIVED="$keep_dir/vm-received.json"
python3 - "$keep_dir/meta.json" <<'EOF'
import json, os, sys
e = os.environ
senders = [
    {"key": "pr05", "label": "pushrelay, batch_wait 5s", "sender": "pr05", "proc": "pr05", "route": "pr05",
     "kind": "pushrelay", "cmd": e["FP_CMD_PR05"], "config_note": "bench/out/<run>/pr05.toml"},
    {"key": "pr60", "label": "pushrelay, batch_wait 60s", "sender": "pr60", "proc": "pr60", "route": "pr60",
     "kind": "pushrelay", "cmd": e["FP_CMD_PR60"], "config_note": "bench/out/<run>/pr60.toml"},
]
if e["FP_WITH_VM"] == "1":
    senders.append({"key": "vmzs", "label": "vmagent → VictoriaMetrics (zstd)", "sender": "vmzs", "proc": "vmzs",
                    "route": "vmzs", "kind": "vmagent", "cmd": e["FP_CMD_VMZS"], "config_note": "",
                    "received_file": e["FP_VM_RECEIVED"]})
senders.append({"key": "vmag", "label": "vmagent (snappy)", "sender": "vmag", "proc": "vmag", "route": "vmag",
                "kind": "vmagent", "cmd": e["FP_CMD_VMAG"], "config_note": "bench/out/<run>/vmag.yml"})
meta = {
    "date": e["FP_DATE"], "every": e["FP_EVERY"], "devices": e["FP_DEVICES"], "series_scraped": e["FP_SERIES"],
    "command": e["FP_CMD"], "senders": senders, "baseline": "vmag",
    "versions": {"pushrelay": f'{e["FP_PR_VERSION"]} ({e["FP_GIT"]})', "prometheus": e["FP_PROM_VERSION"],
                 "vmagent": e["FP_VM_VERSION"]},
    "binaries": {"pushrelay": int(e["FP_SIZE_PR"]), "vmagent": int(e["FP_SIZE_VMAGENT"])},
    "log_findings": {"pr05": json.loads(e["FP_WARN_PR05"]), "pr60": json.loads(e["FP_WARN_PR60"]),
                     "vmag": json.loads(e["FP_WARN_VMAG"]), "vmzs": json.loads(e["FP_WARN_VMZS"])},
    "encode_summary": e["FP_ENCODE_SUMMARY"], "criterion_dir": e["FP_CRITERION_DIR"],
    "shutdown": json.loads(e["FP_SHUTDOWN"]), "encode_error": e["FP_ENCODE_ERROR"],
}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f, indent=1)
EOF

[ -n "$out" ] || out="$keep_dir/report.md"
mkdir -p "$(dirname "$out")"
python3 "$repo/bench/footprint_stats.py" report --samples "$keep_dir/samples.jsonl" --meta "$keep_dir/meta.json" \
    --markdown "$out" --json "$keep_dir/summary.json"
say "report written to $out; raw data in ${keep_dir#"$repo"/}"
