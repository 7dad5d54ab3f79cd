#!/usr/bin/env python3
"""Does RSS creep up at constant load? One exporter of N series (labels as in bench/steady.py,
values moving every scrape) scraped every 2 s by `pushrelay run` and remote-written into a real
VictoriaMetrics, for --minutes minutes; VmRSS sampled every 10 s. Prints RSS per minute (median
of its samples) and compares the last third of the run with the second third (the first third is
warm-up): an upward ratchet shows as a last third above the second.

Usage: bench/ratchet.py [--binary target/release/pushrelay] [--series 30000] [--minutes 30]
Needs .receivers/bin/victoria-metrics (scripts/fetch-receivers.sh). Standard library only.
"""
import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time

from benchlib import ROOT, serve_exposition, start_victoria_metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "pushrelay"))
    ap.add_argument("--series", type=int, default=30000)
    ap.add_argument("--minutes", type=int, default=30)
    a = ap.parse_args()
    if a.minutes < 3:
        ap.error("--minutes must be at least 3 (warm-up, then two thirds to compare)")
    tmp = tempfile.mkdtemp(prefix="pushrelay-ratchet-")
    n = a.series
    scrapes = [0]

    def body():
        scrapes[0] += 1
        k = scrapes[0]
        return "".join(f'metric_{i % 50}{{instance_id="host-{i}",zone="z{i % 7}"}} {i + k}\n'
                       for i in range(n)).encode()

    exporter = serve_exposition(body)
    vm, vp = start_victoria_metrics(tmp + "/vm")
    time.sleep(2)
    cfg = tmp + "/relay.toml"
    with open(cfg, "w") as f:
        f.write(f'''[relay]
interval = "2s"
state_dir = "{tmp}/state"

[[source]]
type = "scrape"
name = "node"
url = "http://127.0.0.1:{exporter}/metrics"

[[sink]]
type = "remote_write"
name = "rw"
url = "http://127.0.0.1:{vp}/api/v1/write"
''')
    p = subprocess.Popen([a.binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                         stderr=open(tmp + "/relay.log", "w"))
    per_minute = []
    t0 = time.time()
    for minute in range(a.minutes):
        samples = []
        while time.time() - t0 < (minute + 1) * 60:
            time.sleep(10)
            st = open(f"/proc/{p.pid}/status").read()
            samples.append(int([l for l in st.splitlines() if l.startswith("VmRSS")][0].split()[1]) / 1024)
        per_minute.append(statistics.median(samples))
        print(f"minute {minute + 1}: RSS {per_minute[-1]:.1f} MiB", flush=True)
    hwm = int([l for l in open(f"/proc/{p.pid}/status").read().splitlines() if l.startswith("VmHWM")][0].split()[1]) / 1024
    p.send_signal(signal.SIGTERM)
    p.wait()
    vm.terminate()
    vm.wait()
    third = max(1, a.minutes // 3)
    mid = per_minute[third:2 * third]
    last = per_minute[2 * third:]
    print(f"\n{n} series every 2 s for {a.minutes} min ({scrapes[0]} scrapes): RSS median of minutes "
          f"{third + 1}-{2 * third} {statistics.median(mid):.1f} MiB, of minutes {2 * third + 1}-{a.minutes} "
          f"{statistics.median(last):.1f} MiB, highest minute {max(per_minute):.1f} MiB, VmHWM {hwm:.1f} MiB")


if __name__ == "__main__":
    main()
