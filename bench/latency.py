#!/usr/bin/env python3
"""Does a queue keep up over a slow link? pushrelay with default sink settings scrapes an
exporter every second and remote-writes into a real VictoriaMetrics through a proxy that holds
every answer for --latency seconds before passing it on (a 4G link's round trips under load);
the relay's queue (pushrelay_queue_samples) is sampled every 5 s. With one poll per request it
would grow without end (one request per `latency`, a poll every second); merged requests
(several polls and any backlog, up to max_samples_per_send, on max_shards connections) should
hold it flat.

Usage: bench/latency.py [--binary target/release/pushrelay] [--series 300] [--latency 2 5]
                        [--seconds 90]
Needs .receivers/bin/victoria-metrics (scripts/fetch-receivers.sh). Standard library only.
"""
import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import ROOT, free_port, serve_exposition, start_victoria_metrics


def exporter(n):
    t0 = time.time()

    def body():
        t = time.time() - t0
        return "".join(f'lat_metric_{i % 40}{{id="{i}"}} {int(t * (1 + i % 7))}\n' for i in range(n)).encode()

    return serve_exposition(body)


def delay_proxy(listen, target, latency):
    """Forwards each connection; holds every server->client chunk that starts an answer for
    `latency` seconds (so each request takes at least that long; the receiver itself sees the
    request at once and does not time the connection out)."""

    async def pipe(r, w, delay):
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                if delay and data.startswith(b"HTTP/"):
                    await asyncio.sleep(delay)
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, sw, 0), pipe(sr, cw, latency))

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", listen)
        async with srv:
            await srv.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()


def metric(url, name):
    try:
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def run(binary, series, latency, seconds, tmp):
    vm, vm_port = start_victoria_metrics(os.path.join(tmp, f"vm-{latency}"))
    proxy_port = free_port()
    delay_proxy(proxy_port, vm_port, latency)
    exp = exporter(series)
    listen = free_port()
    cfg = os.path.join(tmp, f"relay-{latency}.toml")
    with open(cfg, "w") as f:
        f.write(f'''[relay]
interval = "1s"
state_dir = "{tmp}/state-{latency}"
listen = "127.0.0.1:{listen}"

[[source]]
type = "scrape"
name = "lat"
url = "http://127.0.0.1:{exp}/metrics"

[[sink]]
type = "remote_write"
name = "rw"
url = "http://127.0.0.1:{proxy_port}/api/v1/write"
timeout = "30s"
''')
    time.sleep(1.5)
    relay = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(tmp, f"relay-{latency}.log"), "w"))
    url = f"http://127.0.0.1:{listen}/metrics"
    rows = []
    t0 = time.time()
    while time.time() - t0 < seconds:
        time.sleep(5)
        rows.append((round(time.time() - t0), metric(url, "pushrelay_queue_samples"),
                     metric(url, "pushrelay_samples_sent_total")))
    relay.send_signal(signal.SIGTERM)
    relay.wait()
    vm.terminate()
    vm.wait()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "pushrelay"))
    ap.add_argument("--series", type=int, default=300)
    ap.add_argument("--latency", type=float, nargs="+", default=[2.0, 5.0])
    ap.add_argument("--seconds", type=int, default=90)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pushrelay-latency-")
    print(f"{a.series} series scraped every 1 s ({a.series} samples/s), default sink settings, "
          f"{a.seconds} s per latency; queue = pushrelay_queue_samples\n")
    for lat in a.latency:
        rows = run(a.binary, a.series, lat, a.seconds, tmp)
        print(f"latency {lat:g} s per request:")
        print("| t (s) | queued samples | sent samples |\n|---:|---:|---:|")
        for t, q, s in rows:
            print(f"| {t} | {'' if q is None else int(q)} | {'' if s is None else int(s)} |")
        qs = [q for _, q, _ in rows if q is not None]
        if len(qs) >= 4:
            half = len(qs) // 2
            first, last = max(qs[:half]), max(qs[half:])
            print(f"\nqueue, highest in the first half {int(first)}, in the second half {int(last)}: "
                  + ("not growing" if last <= first * 1.2 + a.series else "GROWING"))
        print()


if __name__ == "__main__":
    sys.exit(main())
