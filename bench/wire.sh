#!/usr/bin/env bash
# Wire benchmark: bytes on the wire per exporter sample, pushrelay against vmagent, side by side in
# one run, into a real VictoriaMetrics and a real Prometheus, on differently shaped exporters.
#
# For each exporter shape it starts the exporter and six senders scraping it on the shape's
# interval, each through its own route of a byte-counting proxy (bench/tcpcount.py):
#   pushrelay with defaults (batch_wait 5s) -> VictoriaMetrics, and -> Prometheus,
#   pushrelay with profile = "metered"      -> VictoriaMetrics, and -> Prometheus,
#   vmagent with defaults                   -> VictoriaMetrics (it negotiates zstd there),
#                                           -> Prometheus (it tries zstd, gets 415, falls back to snappy).
# Shapes (all by default): `sim` = the demo's exporter (`pushrelay sim --devices 7`, ~320 series)
# every 15 s; `node` = a node-exporter-shaped body (bench/node_like.py, 300 series) every 15 s;
# `small` = the node shape with 20 series every 10 s. After --duration it stops the senders with
# SIGTERM (so what they hold is flushed and counted), asks each receiver how many exporter
# samples (not up/scrape_*, not pushrelay's self-metrics) arrived per sender, and prints a
# Markdown report (also in bench/out/<run>/report.md, raw data next to it): bytes sent (request
# lines, headers, bodies) and received (answers) per exporter sample delivered, and the ratio to
# vmagent's on the same receiver; and per exporter sample scraped (scrapes, counted from
# scrape_duration_seconds, x series), the fair figure for a sender that holds back unchanged
# samples (send_unchanged_every). Copy what you keep into bench/RESULTS.md.
#
# Usage: bench/wire.sh [--duration SECONDS] [--shapes "sim node small"] [--no-build] [--keep-tmp]
#   --duration S    how long the senders run (default 330)
#   --shapes LIST   which exporter shapes (default "sim node small")
#   --no-build      use target/release/pushrelay as it is (default: cargo build --release first)
#   --keep-tmp      keep the temporary directory (receiver data, queues, logs)
# Needs: bash, curl, python3 (>= 3.8) and .receivers/bin (scripts/fetch-receivers.sh).
# Everything listens on 127.0.0.1 on free ports; every child is stopped on exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

duration=330
shapes="sim node small"
build=1
keep_tmp=0
orig_args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --duration=*) duration="${1#*=}"; shift ;;
    --shapes) shapes="$2"; shift 2 ;;
    --shapes=*) shapes="${1#*=}"; shift ;;
    --no-build) build=0; shift ;;
    --keep-tmp) keep_tmp=1; shift ;;
    -h | --help) sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "wire: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 30 ]; then
    echo "wire: --duration must be a whole number of seconds, at least 30" >&2
    exit 2
fi
for s in $shapes; do
    case "$s" in sim | node | small) ;; *) echo "wire: unknown shape '$s' (sim, node, small)" >&2; exit 2 ;; esac
done

bench=wire
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh" # say, die, alive, stop_pid, start, wait_http, free_ports

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done
bin_dir="${PUSHRELAY_RECEIVERS_DIR:-$repo/.receivers/bin}"
prometheus="$bin_dir/prometheus"
vmagent="$bin_dir/vmagent"
victoria="$bin_dir/victoria-metrics"
if [ ! -x "$prometheus" ] || [ ! -x "$vmagent" ] || [ ! -x "$victoria" ]; then
    say "receivers missing; running scripts/fetch-receivers.sh"
    scripts/fetch-receivers.sh
fi
if [ "$build" -eq 1 ]; then
    say "cargo build --release"
    cargo build --release --quiet
fi
pushrelay="$repo/target/release/pushrelay"
[ -x "$pushrelay" ] || die "$pushrelay not found (build it, or drop --no-build)"

run_id="wire-$(date -u +%Y%m%dT%H%M%SZ)"
keep_dir="$repo/bench/out/$run_id"
mkdir -p "$keep_dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-wire.XXXXXX")"

pids=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
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

read -r -a ports <<<"$(free_ports 48)"
next_port=0
port() { # sets $p to the next free port
    p=${ports[$next_port]}
    next_port=$((next_port + 1))
}

# ---- Receivers ----------------------------------------------------------------------------------
port; p_vm=$p
port; p_prom=$p
start victoria-metrics "$victoria" -httpListenAddr="127.0.0.1:$p_vm" -storageDataPath="$tmp/vm-data" \
    -retentionPeriod=100y -search.latencyOffset=0s -search.disableCache
pid_vm=$last_pid
cat >"$tmp/prometheus.yml" <<EOF
# Receiver only: scrapes nothing.
global:
  scrape_interval: 15s
EOF
start prometheus "$prometheus" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus-data" \
    --web.listen-address="127.0.0.1:$p_prom" --web.enable-remote-write-receiver
pid_prom=$last_pid
wait_http "http://127.0.0.1:$p_vm/health" "$pid_vm" victoria-metrics
wait_http "http://127.0.0.1:$p_prom/-/ready" "$pid_prom" prometheus

# ---- Exporters ----------------------------------------------------------------------------------
declare -A exporter interval series
for s in $shapes; do
    port
    case "$s" in
    sim) start "exp-$s" "$pushrelay" sim --listen "127.0.0.1:$p" --devices 7; interval[$s]=15 ;;
    node) start "exp-$s" python3 "$repo/bench/node_like.py" --listen "127.0.0.1:$p" --series 300; interval[$s]=15 ;;
    small) start "exp-$s" python3 "$repo/bench/node_like.py" --listen "127.0.0.1:$p" --series 20 --seed 2; interval[$s]=10 ;;
    esac
    exporter[$s]="127.0.0.1:$p"
    wait_http "http://127.0.0.1:$p/metrics" "$last_pid" "exp-$s"
    series[$s]=$(curl -fsS "http://127.0.0.1:$p/metrics" | grep -vc '^#' || true)
    say "exporter $s on :$p serves ${series[$s]} series every ${interval[$s]} s"
done

# ---- Proxy routes and senders -------------------------------------------------------------------
# A sender is <shape>-<kind>-<receiver>; its `sender` label has the same length for every sender of
# a shape (so no sender pays for a longer label): <shape><pd|pm|va><v|p>.
kinds="pd pm va"
rcvs="v p"
routes=()
declare -A sender_port rcv_port
for s in $shapes; do
    for k in $kinds; do
        for r in $rcvs; do
            id="$s$k$r"
            port; sender_port[$id]=$p
            port
            case "$r" in v) target="127.0.0.1:$p_vm" ;; p) target="127.0.0.1:$p_prom" ;; esac
            routes+=(--route "$id=$p=$target")
            rcv_port[$id]=$p
        done
    done
done
start proxy python3 "$repo/bench/tcpcount.py" --stats "$tmp/proxy.json" "${routes[@]}"
pid_proxy=$last_pid
for _ in $(seq 100); do
    [ -s "$tmp/proxy.json" ] && break
    alive "$pid_proxy" || { cat "$tmp/proxy.log" >&2; die "proxy exited at start-up"; }
    sleep 0.1
done
[ -s "$tmp/proxy.json" ] || die "proxy did not start"

senders=()
declare -A sender_pid
for s in $shapes; do
    for k in $kinds; do
        for r in $rcvs; do
            id="$s$k$r"
            url="http://127.0.0.1:${rcv_port[$id]}/api/v1/write"
            case "$k" in
            pd | pm)
                wait_line=""
                [ "$k" = pm ] && wait_line='profile = "metered"'
                cat >"$tmp/$id.toml" <<EOF
# pushrelay for the wire benchmark: one scrape source, one remote-write sink.
[relay]
external_labels = { sender = "$id" }
state_dir = "$tmp/$id-state"
listen = "127.0.0.1:${sender_port[$id]}"

[[source]]
type = "scrape"
name = "$s"
url = "http://${exporter[$s]}/metrics"
interval = "${interval[$s]}s"

[[sink]]
type = "remote_write"
name = "rw"
url = "$url"
$wait_line
EOF
                start "$id" "$pushrelay" run --config "$tmp/$id.toml"
                ;;
            va)
                cat >"$tmp/$id.yml" <<EOF
# vmagent for the wire benchmark: the same target and interval as pushrelay.
global:
  scrape_interval: ${interval[$s]}s
  external_labels: { sender: $id }
scrape_configs:
  - job_name: $s
    static_configs:
      - targets: ["${exporter[$s]}"]
EOF
                start "$id" "$vmagent" -httpListenAddr="127.0.0.1:${sender_port[$id]}" -promscrape.config="$tmp/$id.yml" \
                    -remoteWrite.url="$url" -remoteWrite.tmpDataPath="$tmp/$id-queue"
                ;;
            esac
            sender_pid[$id]=$last_pid
            senders+=("$id")
        done
    done
done
for id in "${senders[@]}"; do
    case "$id" in
    *va?) wait_http "http://127.0.0.1:${sender_port[$id]}/health" "${sender_pid[$id]}" "$id" ;;
    *) wait_http "http://127.0.0.1:${sender_port[$id]}/healthz" "${sender_pid[$id]}" "$id" ;;
    esac
done
t_start=$(date +%s)
say "${#senders[@]} senders up; running for $duration s"
left=$duration
while [ "$left" -gt 0 ]; do
    step=$((left < 60 ? left : 60))
    sleep "$step"
    left=$((left - step))
    [ "$left" -gt 0 ] && say "$left s left"
done

# ---- Stop the senders (they flush what they hold), then count ------------------------------------
shutdown_json="{"
for id in "${senders[@]}"; do
    alive "${sender_pid[$id]}" || say "WARNING: $id exited during the run (see $keep_dir/$id.log)"
done
# All at once, so none runs longer than another; then wait for each.
for id in "${senders[@]}"; do
    kill -TERM "${sender_pid[$id]}" 2>/dev/null || true
done
# Signal 0 here: a second SIGTERM makes pushrelay exit at once, abandoning its final flush.
for id in "${senders[@]}"; do
    stop_pid "${sender_pid[$id]}" 0
    shutdown_json+="\"$id\": $stop_rc,"
done
shutdown_json="${shutdown_json%,}}"
sleep 3 # the proxy writes its stats every second
# What VictoriaMetrics took last (a metered sender's final batch, at SIGTERM) must be searchable
# and not hidden by a cached result: flush, and ask without the cache.
curl -sS "http://127.0.0.1:$p_vm/internal/force_flush" >/dev/null || true
sleep 2
window=$(($(date +%s) - t_start + 600))
# The raw samples (counted per sender by the report): count_over_time over many names can clash
# in Prometheus once the names are dropped.
query='{sender=~".+", job!="pushrelay", __name__!~"up|scrape_.*"}['"$window"'s]'
curl -sS "http://127.0.0.1:$p_vm/api/v1/query" --data-urlencode "query=$query" --data-urlencode nocache=1 >"$keep_dir/vm.json" || true
curl -sS "http://127.0.0.1:$p_prom/api/v1/query" --data-urlencode "query=$query" >"$keep_dir/prom.json" || true
# One scrape_duration_seconds sample per scrape (it changes every time, so even a sender that holds
# back unchanged samples sends it): scrapes x series = the exporter samples the sender scraped.
query='scrape_duration_seconds{sender=~".+", job!="pushrelay"}['"$window"'s]'
curl -sS "http://127.0.0.1:$p_vm/api/v1/query" --data-urlencode "query=$query" --data-urlencode nocache=1 >"$keep_dir/vm-scrapes.json" || true
curl -sS "http://127.0.0.1:$p_prom/api/v1/query" --data-urlencode "query=$query" >"$keep_dir/prom-scrapes.json" || true
cp "$tmp/proxy.json" "$keep_dir/proxy.json"

declare -p series interval >/dev/null
series_json="{"
for s in $shapes; do
    series_json+="\"$s\": [${series[$s]}, ${interval[$s]}],"
done
series_json="${series_json%,}}"
cat >"$keep_dir/meta.json" <<EOF
{"date": "$(date -u +'%Y-%m-%d %H:%M UTC')", "duration": $duration, "command": "bench/wire.sh${orig_args[*]:+ ${orig_args[*]}}",
 "pushrelay": "$("$pushrelay" --version 2>&1 | head -n 1 | sed 's/^pushrelay //') ($(git rev-parse --short HEAD))",
 "prometheus": "$("$prometheus" --version 2>&1 | head -n 1 | sed 's/^prometheus, //')",
 "victoria_metrics": "$(grep '^victoria-metrics=' "$bin_dir/VERSIONS" 2>/dev/null | cut -d= -f2 || echo '?')",
 "shapes": $series_json, "shutdown": $shutdown_json}
EOF
python3 "$repo/bench/wire_report.py" "$keep_dir" | tee "$keep_dir/report.md"
say "report in ${keep_dir#"$repo"/}/report.md"
