#!/usr/bin/env python3
"""Markdown report of a bench/wire.sh run, from the files it leaves in bench/out/<run>/.

Usage: bench/wire_report.py bench/out/<run>
Reads meta.json, proxy.json (bench/tcpcount.py's counts per route), vm.json and prom.json (the
exporter samples each receiver holds, per sender) and prints one table per exporter shape.
Standard library only.
"""

import json
import os
import sys

KINDS = {"pd": "pushrelay, defaults", "pm": "pushrelay, profile = \"metered\"", "va": "vmagent, defaults"}
RCVS = {"v": "VictoriaMetrics", "p": "Prometheus"}


def received(path):
    with open(path) as f:
        res = json.load(f)["data"]["result"]
    out = {}
    for r in res:
        sender = r["metric"].get("sender", "?")
        out[sender] = out.get(sender, 0) + len(r.get("values", []))
    return out


def main():
    d = sys.argv[1]
    meta = json.load(open(os.path.join(d, "meta.json")))
    routes = json.load(open(os.path.join(d, "proxy.json")))["routes"]
    got = {}
    for f in ("vm.json", "prom.json"):
        got.update(received(os.path.join(d, f)))
    scrapes = {}
    for f in ("vm-scrapes.json", "prom-scrapes.json"):
        if os.path.exists(os.path.join(d, f)):
            scrapes.update(received(os.path.join(d, f)))
    out = []
    out.append("Run %s, `%s`, %d s; pushrelay %s; Prometheus %s; VictoriaMetrics %s." % (
        meta["date"], meta["command"], meta["duration"], meta["pushrelay"], meta["prometheus"],
        meta["victoria_metrics"]))
    out.append("")
    for shape, (nseries, interval) in meta["shapes"].items():
        expect = nseries * meta["duration"] / interval
        out.append("**%s**: %d series every %d s (about %d exporter samples per sender in the run)" % (
            shape, nseries, interval, expect))
        out.append("")
        out.append("| sender → receiver | requests | connections | encodings | sent B | received B "
                   "| exporter samples | sent B/sample | sent+received B/sample | × vmagent (sent) "
                   "| scrapes | sent B/scraped sample | × vmagent |")
        out.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in RCVS:
            base = None
            base_scraped = None
            for k in ("va", "pd", "pm"):
                sid = shape + k + r
                st = routes.get(sid)
                if st is None:
                    continue
                n = got.get(sid, 0.0)
                sent, recv = st["req_bytes"], st["resp_bytes"]
                per = sent / n if n else float("nan")
                tot = (sent + recv) / n if n else float("nan")
                if k == "va":
                    base = per
                ratio = "%.2f" % (per / base) if base and n else "-"
                nscr = scrapes.get(sid, 0)
                per_scraped = sent / (nscr * nseries) if nscr else float("nan")
                if k == "va":
                    base_scraped = per_scraped
                ratio_scraped = "%.2f" % (per_scraped / base_scraped) if base_scraped and nscr else "-"
                enc = ", ".join("%s %d" % (e or "none", c) for e, c in sorted(st["encodings"].items()))
                stat = ", ".join("%s×%d" % (c, v) for c, v in sorted(st["statuses"].items()))
                out.append("| %s → %s | %d | %d | %s (answers %s) | %d | %d | %d | %.1f | %.1f | %s | %d | %.1f | %s |" % (
                    KINDS[k], RCVS[r], st["requests"], st["connections"], enc, stat, sent, recv, n, per,
                    tot, ratio, nscr, per_scraped, ratio_scraped))
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
