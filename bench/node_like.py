#!/usr/bin/env python3
"""A node-exporter-shaped exporter for the wire benchmark (bench/wire.sh starts it).

Serves GET /metrics: about --series series in node_exporter's shape (per-CPU mode counters,
per-device disk, network and filesystem families, memory gauges, a few singletons) with HELP and
TYPE lines, counters that grow at different rates and gauges that wander, so consecutive scrapes
differ the way a real host's do. It is the second, differently shaped exporter next to
`pushrelay sim` (the demo's devices): long label sets with few distinct values, many families.

Usage: bench/node_like.py --listen 127.0.0.1:PORT [--series 300] [--seed 1]
Standard library only (Python >= 3.8). Stops on SIGTERM/SIGINT.
"""

import argparse
import http.server
import math
import random
import signal
import sys
import threading
import time

START = time.time()


def build_series(target, rng):
    """The series list: (family, type, help, labels, kind, rate). kind: counter | gauge."""
    cpus, disks, nics, mounts = 0, 0, 0, 0
    # Grow each dimension in turn until the target is reached.
    while True:
        fam = []
        for c in range(cpus):
            for mode in ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"):
                fam.append(("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.",
                            {"cpu": str(c), "mode": mode}, "counter", rng.uniform(0.01, 1.0)))
        for d in range(disks):
            dev = "mmcblk%d" % d if d < 2 else "sd%s" % chr(ord("a") + d - 2)
            for name, h in (("node_disk_read_bytes_total", "The total number of bytes read successfully."),
                            ("node_disk_written_bytes_total", "The total number of bytes written successfully."),
                            ("node_disk_reads_completed_total", "The total number of reads completed successfully."),
                            ("node_disk_writes_completed_total", "The total number of writes completed successfully."),
                            ("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.")):
                out_rate = rng.uniform(1, 5000) if "bytes" in name else rng.uniform(0.01, 5)
                fam.append((name, "counter", h, {"device": dev}, "counter", out_rate))
        for n in range(nics):
            dev = ("eth%d" % n) if n < 2 else ("wwan%d" % (n - 2))
            for name, h in (("node_network_receive_bytes_total", "Network device statistic receive_bytes."),
                            ("node_network_transmit_bytes_total", "Network device statistic transmit_bytes."),
                            ("node_network_receive_packets_total", "Network device statistic receive_packets."),
                            ("node_network_transmit_packets_total", "Network device statistic transmit_packets."),
                            ("node_network_receive_errs_total", "Network device statistic receive_errs."),
                            ("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.")):
                kind = "gauge" if name == "node_network_up" else "counter"
                fam.append((name, kind if kind == "gauge" else "counter", h, {"device": dev}, kind,
                            rng.uniform(1, 20000) if "bytes" in name else rng.uniform(0, 20)))
        for m in range(mounts):
            mp = ["/", "/boot", "/var/log", "/data", "/srv", "/tmp"][m % 6] + ("" if m < 6 else str(m))
            labels = {"device": "/dev/mmcblk0p%d" % (m + 1), "fstype": "ext4", "mountpoint": mp}
            for name, h in (("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
                            ("node_filesystem_free_bytes", "Filesystem free space in bytes."),
                            ("node_filesystem_size_bytes", "Filesystem size in bytes."),
                            ("node_filesystem_files_free", "Filesystem total free file nodes.")):
                fam.append((name, "gauge", h, labels, "gauge", rng.uniform(0, 1)))
        for name in ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree",
                     "Active", "Inactive", "Dirty", "Slab", "Shmem"):
            fam.append(("node_memory_%s_bytes" % name, "gauge", "Memory information field %s_bytes." % name,
                        {}, "gauge", rng.uniform(0, 1)))
        for name, kind, h in (("node_load1", "gauge", "1m load average."),
                              ("node_load5", "gauge", "5m load average."),
                              ("node_load15", "gauge", "15m load average."),
                              ("node_context_switches_total", "counter", "Total number of context switches."),
                              ("node_intr_total", "counter", "Total number of interrupts serviced."),
                              ("node_forks_total", "counter", "Total number of forks."),
                              ("node_procs_running", "gauge", "Number of processes in runnable state."),
                              ("node_boot_time_seconds", "gauge", "Node boot time, in unixtime."),
                              ("node_time_seconds", "gauge", "System time in seconds since epoch (1970).")):
            fam.append((name, kind, h, {}, kind, rng.uniform(1, 500)))
        if len(fam) >= target:
            return fam[:target]
        if cpus > 256:
            # Past a 256-CPU host (about 4,000 series; bench/steady.py asks for up to 100,000):
            # a quarter more of everything at a time, the list being built again each time.
            cpus += cpus // 4
            disks = nics = mounts = cpus // 2
            continue
        cpus += 1
        if cpus % 2 == 0:
            disks += 1
            nics += 1
            mounts += 1


def fmt(v):
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def render(series, seed):
    t = time.time() - START
    lines = []
    last = None
    for i, (name, typ, h, labels, kind, rate) in enumerate(series):
        if name != last:
            lines.append("# HELP %s %s" % (name, h))
            lines.append("# TYPE %s %s" % (name, typ))
            last = name
        if kind == "counter":
            # Integral counters for byte/packet counts, fractional for seconds.
            v = rate * t * (1 + 0.2 * math.sin(t / 37 + i))
            v = round(v, 2) if "seconds" in name else float(int(v))
        elif name == "node_network_up":
            v = 1.0
        elif name.endswith("_size_bytes") or name == "node_memory_MemTotal_bytes":
            v = float(int(3.2e10 * (0.5 + rate)))
        elif name == "node_boot_time_seconds":
            v = float(int(START - 86400))
        elif name == "node_time_seconds":
            v = round(time.time(), 3)
        elif name.endswith("_bytes"):
            v = float(int(1e9 * (1 + rate) + 5e7 * math.sin(t / 60 + i)) // 4096 * 4096)
        else:
            v = round(rate * (1 + 0.3 * math.sin(t / 45 + i)), 2)
        lab = ",".join('%s="%s"' % kv for kv in labels.items())
        lines.append("%s{%s} %s" % (name, lab, fmt(v)) if lab else "%s %s" % (name, fmt(v)))
    return ("\n".join(lines) + "\n").encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="host:port")
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    series = build_series(max(1, a.series), random.Random(a.seed))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render(series, a.seed)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    host, port = a.listen.rsplit(":", 1)
    srv = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
