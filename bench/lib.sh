# shellcheck shell=bash
# Shared by the benchmark scripts (footprint.sh, drain.sh, sdwear.sh): logging, child processes
# in the background with their logs in $tmp, waiting for HTTP readiness, and free ports.
# A script sets `bench` (its name, the prefix of its messages), `tmp` and an empty `pids` array
# before calling these, then `. "$repo/bench/lib.sh"`.

say() { echo "$bench: $*" >&2; }
die() { echo "$bench: ERROR: $*" >&2; exit 1; }

alive() { # PID: running (not gone, not a zombie waiting to be reaped)
    local st
    st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

stop_pid() { # PID [SIGNAL]: signal (TERM), up to 15 s, then SIGKILL, then reap; sets $stop_rc, $stop_secs
    local pid="$1" sig="${2:-TERM}" t0
    t0=$(date +%s%N)
    stop_rc=0
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "WARNING: pid $pid did not exit within 15 s of SIG$sig; killed"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || stop_rc=$?
    stop_secs=$(awk -v ns="$(($(date +%s%N) - t0))" 'BEGIN { printf "%.2f", ns / 1e9 }')
}

start() { # NAME CMD...: runs CMD in the background, output in $tmp/NAME.log; sets $last_pid
    local name="$1"
    shift
    "$@" >"$tmp/$name.log" 2>&1 &
    last_pid=$!
    pids+=("$last_pid")
}

wait_http() { # URL PID NAME: until URL answers 2xx (60 s at most), failing early if PID exits
    local url="$1" pid="$2" name="$3"
    for _ in $(seq 600); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
            return 0
        fi
        alive "$pid" || { tail -n 20 "$tmp/$name.log" >&2; die "$name exited at start-up (log above)"; }
        sleep 0.1
    done
    tail -n 20 "$tmp/$name.log" >&2
    die "$name did not answer at $url within 60 s"
}

free_ports() { # N: prints N distinct free TCP ports on 127.0.0.1 (bound all at once, then released)
    python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()
' "$1"
}
