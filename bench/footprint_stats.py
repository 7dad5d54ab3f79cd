#!/usr/bin/env python3
"""Measurement and report halves of the footprint benchmark (bench/footprint.sh calls both).

  sample: every --every seconds for --duration seconds, records each watched process's memory
          (VmRSS, VmHWM, RssAnon, RssFile from /proc/PID/status) and CPU time (utime+stime from
          /proc/PID/stat), and the byte counts of bench/tcpcount.py; at the end, once (so the
          senders are not disturbed while measured), reads the senders' own counters from their
          /metrics and asks the Prometheus receiver how many samples it stored per sender.
          Writes one JSON object per line to --out.
  report: turns that file into the Markdown results (a table plus method and reproduction).

Usage:
  bench/footprint_stats.py sample --out S.jsonl --duration 300 --every 5 \\
      --proc NAME=PID ... --proxy-stats FILE --metrics NAME=URL ... --prom URL
  bench/footprint_stats.py report --samples S.jsonl --meta META.json [--markdown OUT.md]
Standard library only.
"""

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# Sender counters worth keeping (prefix match on the metric name).
COUNTER_PREFIXES = (
    "pushrelay_samples_sent_total",
    "pushrelay_samples_dropped_total",
    "pushrelay_send_retries_total",
    "pushrelay_queue_samples",
    "vmagent_remotewrite_rows_pushed_after_relabel_total",
    "vmagent_remotewrite_bytes_sent_total",
    "vmagent_remotewrite_blocks_sent_total",
    "vmagent_remotewrite_requests_total",
    "vmagent_remotewrite_retries_count_total",
    "vmagent_remotewrite_samples_dropped_total",
    "vmagent_remotewrite_packets_dropped_total",
    "vmagent_remotewrite_block_size_rows_sum",
    "vmagent_remotewrite_block_metadata_rows_sum",
)


# ------------------------------------------------------------------------------------- sample


def proc_stats(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                    out[k] = int(v.split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # After the comm field: state is fields[0]; utime and stime are fields 14 and 15 of the
        # full line, i.e. [11] and [12] here.
        out["cpu_ticks"] = int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None
    # CPU time in ns of the live threads (schedstat): far finer than the 10 ms ticks of
    # /proc/PID/stat, which matters for processes that use a few ms per scrape.
    try:
        ns = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns += int(f.read().split()[0])
        out["cpu_ns"] = ns
    except (OSError, ValueError, IndexError):
        pass
    return out


def rss_by_mapping(pid):
    """Resident kB per mapping name (the binary, [heap], libc, ...), from /proc/PID/smaps."""
    out, cur = {}, None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    parts = line.split()
                    cur = os.path.basename(parts[5]) if len(parts) > 5 else "[anonymous]"
                elif line.startswith("Rss:") and cur is not None:
                    out[cur] = out.get(cur, 0) + int(line.split()[1])
    except (OSError, ValueError):
        return None
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


def sender_counters(url):
    """The kept counters of a /metrics page: {series text: value}."""
    out = {}
    try:
        text = http_get(url)
    except OSError as e:
        return {"error": str(e)}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith(COUNTER_PREFIXES):
            continue
        series, _, value = line.rpartition(" ")
        try:
            out[series] = float(value)
        except ValueError:
            pass
    return out


def prom_query(base, q):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        data = json.loads(http_get(url, timeout=30))
    except (OSError, ValueError) as e:
        return {"error": str(e)}
    if data.get("status") != "success":
        return {"error": str(data)}
    return data["data"]["result"]


def cmd_sample(a):
    procs = dict(p.split("=", 1) for p in a.proc)
    metrics = dict(m.split("=", 1) for m in a.metrics or [])
    t0 = time.monotonic()
    wall0 = time.time()
    n = 0
    with open(a.out, "w") as out:
        while True:
            now = time.monotonic()
            rec = {"t": now - t0, "wall": time.time(), "procs": {}, "proxy": None}
            for name, pid in procs.items():
                rec["procs"][name] = proc_stats(pid)
            try:
                with open(a.proxy_stats) as f:
                    rec["proxy"] = json.load(f)["routes"]
            except (OSError, ValueError):
                pass
            out.write(json.dumps(rec) + "\n")
            out.flush()
            n += 1
            if now - t0 >= a.duration:
                break
            if a.progress and n % max(1, int(60 / a.every)) == 0:
                print(f"footprint: {int(now - t0)} s of {a.duration} s", file=sys.stderr, flush=True)
            # Sleep to the next tick of the grid (no drift), but never past the end.
            nxt = t0 + min(n * a.every, a.duration)
            time.sleep(max(0.0, nxt - time.monotonic()))

        final = {"final": True, "t": time.monotonic() - t0, "wall": time.time(), "counters": {}}
        final["rss_by_mapping"] = {name: rss_by_mapping(pid) for name, pid in procs.items()}
        for name, url in metrics.items():
            final["counters"][name] = sender_counters(url)
        if a.prom:
            rng = int(time.time() - wall0) + 600
            # The raw samples of every series, counted here: `count_over_time` would drop the
            # metric name and make series of different names collide before any `sum`.
            raw = prom_query(a.prom, f'{{sender!=""}}[{rng}s]')
            if isinstance(raw, list):
                counts = {}
                for series in raw:
                    key = (series["metric"].get("sender", "?"), series["metric"].get("job", "?"))
                    counts[key] = counts.get(key, 0) + len(series.get("values", []))
                final["received"] = [
                    {"metric": {"sender": s, "job": j}, "value": [0, str(n)]} for (s, j), n in sorted(counts.items())
                ]
                final["received_series"] = len(raw)
            else:
                final["received"] = raw
        out.write(json.dumps(final) + "\n")


# ------------------------------------------------------------------------------------- report


def load_samples(path):
    ticks, final = [], {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("final"):
                final = rec
            else:
                ticks.append(rec)
    return ticks, final


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}".replace(",", " ")
    return f"{v:.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b in (None, 0):
        return "n/a"
    return f"{a / b:.{digits}f}×"


def proc_summary(ticks, name, warmup):
    pts = [(t["t"], t["procs"].get(name)) for t in ticks if t["procs"].get(name)]
    if len(pts) < 2:
        return None
    end = pts[-1][0]
    half = [p for (t, p) in pts if t >= end / 2]
    steady = [(t, p) for (t, p) in pts if t >= warmup] or pts
    (ta, pa), (tb, pb) = steady[0], steady[-1]
    cpu_pct = cpu_pct_ticks = None
    if tb > ta:
        cpu_pct_ticks = (pb["cpu_ticks"] - pa["cpu_ticks"]) / CLK_TCK / (tb - ta) * 100
        if "cpu_ns" in pa and "cpu_ns" in pb and pb["cpu_ns"] >= pa["cpu_ns"]:
            cpu_pct = (pb["cpu_ns"] - pa["cpu_ns"]) / 1e9 / (tb - ta) * 100
    return {
        "rss_median": statistics.median(p["VmRSS"] for p in half) * 1024,
        "rss_max": max(p["VmRSS"] for (_, p) in pts) * 1024,
        "hwm": pts[-1][1].get("VmHWM", 0) * 1024,
        "anon_median": statistics.median(p.get("RssAnon", 0) for p in half) * 1024,
        "file_median": statistics.median(p.get("RssFile", 0) for p in half) * 1024,
        "threads": pts[-1][1].get("Threads"),
        "cpu_pct": cpu_pct,
        "cpu_pct_ticks": cpu_pct_ticks,
        "cpu_seconds": pts[-1][1]["cpu_ticks"] / CLK_TCK,
        "window": (ta, tb),
    }


def received_by_sender(final):
    out = {}
    res = final.get("received")
    if isinstance(res, list):
        for r in res:
            s = r["metric"].get("sender", "?")
            job = r["metric"].get("job", "?")
            out.setdefault(s, {})[job] = int(float(r["value"][1]))
    return out


def counter_sum(counters, prefix, must=""):
    tot, found = 0.0, False
    for k, v in (counters or {}).items():
        if k == "error":
            continue
        if k.split("{")[0] == prefix and must in k:
            tot += v
            found = True
    return int(tot) if found else None


def encode_section(meta):
    """The encode benchmark's tables, if it ran (criterion results under meta['criterion_dir'])."""
    summary = meta.get("encode_summary")
    cdir = meta.get("criterion_dir")
    if not summary or not os.path.exists(summary):
        return ""
    out = ["## Encode + compress throughput (`cargo bench --bench encode`)", ""]
    rows = []
    for group in ("encode", "stages"):
        gdir = os.path.join(cdir or "", group)
        if not os.path.isdir(gdir):
            continue
        for name in sorted(os.listdir(gdir)):
            try:
                with open(os.path.join(gdir, name, "new", "estimates.json")) as f:
                    est = json.load(f)
                with open(os.path.join(gdir, name, "new", "benchmark.json")) as f:
                    bm = json.load(f)
            except (OSError, ValueError):
                continue
            # What criterion prints on its `time:` line: the slope when it has one, else the mean.
            ns = (est.get("slope") or est["mean"])["point_estimate"]
            elems = (bm.get("throughput") or {}).get("Elements")
            rows.append((f"{group}/{name}", elems, ns))
    if rows:
        out += [
            "| benchmark | samples per batch | time per batch | throughput (samples/s) | ns per sample |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, elems, ns in rows:
            thr = f"{elems / (ns * 1e-9) / 1e6:.2f} M" if elems else "n/a"
            per = f"{ns / elems:.0f}" if elems else "n/a"
            out.append(f"| {name} | {elems or 'n/a'} | {ns / 1000:.1f} µs | {thr} | {per} |")
        out.append("")
    with open(summary) as f:
        out += ["Body size per batch shape (snappy block, as sent):", "", f.read().rstrip(), ""]
    out += [
        "`scrape1`: one scrape of the 7-device simulator per batch (the default `batch_wait = \"5s\"`); "
        "`scrape4`: four scrapes (what `batch_wait = \"60s\"` gives); `scrape6`: ~2000 samples "
        "(`max_samples_per_send`) over the same series; `series2000`: one scrape of a 57-device "
        "simulator. Timings are single-threaded, on the same shared machine, after the footprint run (never during it); criterion's own report is in `bench/out/<run>/encode-bench.txt`.",
        "",
    ]
    return "\n".join(out)


def cmd_report(a):
    ticks, final = load_samples(a.samples)
    with open(a.meta) as f:
        meta = json.load(f)
    senders = meta["senders"]  # [{key, label, sender, proc, route, kind}]
    duration = ticks[-1]["t"] if ticks else 0
    warmup = min(30.0, duration / 5)
    received = received_by_sender(final)
    proxy = ticks[-1]["proxy"] if ticks and ticks[-1].get("proxy") else {}

    rows = {}
    for s in senders:
        ps = proc_summary(ticks, s["proc"], warmup)
        px = proxy.get(s["route"], {})
        counters = final.get("counters", {}).get(s["key"], {})
        rec = received.get(s["sender"], {})
        if s.get("received_file"):
            # A sender whose receiver is not the Prometheus queried at the end of `sample`.
            try:
                with open(s["received_file"]) as f:
                    rec = received_by_sender({"received": json.load(f)["data"]["result"]}).get(s["sender"], {})
            except (OSError, ValueError, KeyError):
                rec = {}
        samples_rx = sum(rec.values()) if rec else None
        if s["kind"] == "pushrelay":
            samples_tx = counter_sum(counters, "pushrelay_samples_sent_total")
            dropped = counter_sum(counters, "pushrelay_samples_dropped_total")
            retries = counter_sum(counters, "pushrelay_send_retries_total")
        else:
            samples_tx = counter_sum(counters, "vmagent_remotewrite_rows_pushed_after_relabel_total")
            dropped = counter_sum(counters, "vmagent_remotewrite_samples_dropped_total")
            retries = counter_sum(counters, "vmagent_remotewrite_retries_count_total")
        req_bytes = px.get("req_bytes")
        body_bytes = px.get("req_body_bytes")
        n = samples_rx or samples_tx
        rows[s["key"]] = {
            "ps": ps,
            "requests": px.get("requests"),
            "req_bytes": req_bytes,
            "body_bytes": body_bytes,
            "header_bytes": px.get("req_header_bytes"),
            "resp_bytes": px.get("resp_bytes"),
            "statuses": px.get("statuses", {}),
            "encodings": px.get("encodings", {}),
            "connections": px.get("connections"),
            "samples_rx": samples_rx,
            "samples_rx_jobs": rec,
            "samples_tx": samples_tx,
            "dropped": dropped,
            "retries": retries,
            "wire_bps": req_bytes / n if req_bytes and n else None,
            "body_bps": body_bytes / n if body_bytes and n else None,
            "hdr_per_req": px["req_header_bytes"] / px["requests"] if px.get("requests") else None,
            "samples_per_req": n / px["requests"] if n and px.get("requests") else None,
            "binary": meta["binaries"].get(s["kind"]),
            "metadata_rows": counter_sum(counters, "vmagent_remotewrite_block_metadata_rows_sum"),
        }

    keys = [s["key"] for s in senders]
    base = meta.get("baseline", keys[-1])
    cmp_keys = [k for k in keys if k != base]

    def line(label, get, digits=1, ratio_ok=True):
        cells = [fmt(get(rows[k]), digits) if get(rows[k]) is not None else "n/a" for k in keys]
        ratios = [ratio(get(rows[k]), get(rows[base])) if ratio_ok else "" for k in cmp_keys]
        return f"| {label} | " + " | ".join(cells + ratios) + " |"

    def ps(field, scale=1.0):
        return lambda r: (r["ps"][field] / scale) if r["ps"] and r["ps"].get(field) is not None else None

    labels = {s["key"]: s["label"] for s in senders}
    head = "| | " + " | ".join(labels[k] for k in keys) + " | " + " | ".join(f"{k} / {base}" for k in cmp_keys) + " |"
    sep = "|---|" + "---:|" * (len(keys) + len(cmp_keys))
    table = [
        head,
        sep,
        line("RSS, steady state (median of the last half), MiB", ps("rss_median", MIB), 2),
        line("RSS, max seen, MiB", ps("rss_max", MIB), 2),
        line("VmHWM (peak RSS) at the end, MiB", ps("hwm", MIB), 2),
        line("  of which anonymous (RssAnon, median last half), MiB", ps("anon_median", MIB), 2),
        line("  of which file-backed (RssFile, median last half), MiB", ps("file_median", MIB), 2),
        line("CPU, average after warm-up, % of one core (schedstat, ns)", ps("cpu_pct"), 3),
        line("CPU, average after warm-up, % of one core (utime+stime, 10 ms ticks)", ps("cpu_pct_ticks"), 3),
        line("CPU time, whole run incl. start-up (utime+stime), s", ps("cpu_seconds"), 2),
        line("Threads", lambda r: r["ps"]["threads"] if r["ps"] else None, 0),
        line("Samples stored by the receiver", lambda r: r["samples_rx"], 0),
        line("Samples the sender counted (pushrelay: sent; vmagent: queued to send)", lambda r: r["samples_tx"], 0, ratio_ok=False),
        line("Requests (POSTs through the proxy)", lambda r: r["requests"], 0),
        line("Samples per request", lambda r: r["samples_per_req"], 1),
        line("**Bytes on the wire per sample** (request incl. HTTP headers)", lambda r: r["wire_bps"], 2),
        line("Body bytes per sample (snappy protobuf only)", lambda r: r["body_bps"], 2),
        line("HTTP header bytes per request", lambda r: r["hdr_per_req"], 0),
        line("Request bytes, total", lambda r: r["req_bytes"], 0),
        line("Binary size, MiB", lambda r: r["binary"] / MIB if r["binary"] else None, 2),
    ]
    shutdown = meta.get("shutdown") or {}
    if shutdown:
        cells = []
        for k in keys:
            sd = shutdown.get(k)
            cells.append(f"status {sd['status']} after {sd['seconds']:.2f} s" if sd else "n/a")
        table.append("| Exit on SIGTERM at the end | " + " | ".join(cells + [""] * len(cmp_keys)) + " |")

    notes = []
    for k in keys:
        r = rows[k]
        bad = {c: n for c, n in r["statuses"].items() if not c.startswith("2")}
        if bad:
            notes.append(f"- {labels[k]}: non-2xx answers from the receiver: {bad}")
        if r["dropped"]:
            notes.append(f"- {labels[k]}: the sender counted {r['dropped']} dropped samples")
        if r["retries"]:
            notes.append(f"- {labels[k]}: the sender counted {r['retries']} retries")
        if len(r["encodings"]) > 1 or "snappy" not in r["encodings"]:
            notes.append(f"- {labels[k]}: request Content-Encoding seen: {r['encodings']}")
        if r["samples_rx_jobs"]:
            per_job = ", ".join(f"`{j}` {n}" for j, n in sorted(r["samples_rx_jobs"].items()))
            notes.append(f"- {labels[k]}: samples stored per job: {per_job}")
        if r["metadata_rows"]:
            notes.append(
                f"- {labels[k]}: sent {r['metadata_rows']} metadata entries, in requests of their own "
                "(counted in its requests and bytes)"
            )
    for k, lines in (meta.get("log_findings") or {}).items():
        if lines:
            notes.append(f"- {labels.get(k, k)} log: {len(lines)} warning/error line(s), e.g. `{lines[0][:300]}`")

    pr = rows.get(keys[0])
    target_lines = []
    if pr and pr["ps"]:
        rss = pr["ps"]["rss_median"] / MIB
        target_lines.append(f"- pushrelay steady RSS ≤ 8 MiB: **{'met' if rss <= 8 else 'missed'}** ({rss:.2f} MiB)")
    if pr and pr["binary"]:
        b = pr["binary"] / MIB
        target_lines.append(f"- release binary ≤ 6 MiB: **{'met' if b <= 6 else 'missed'}** ({b:.2f} MiB)")
    if pr and pr["wire_bps"] and rows[base]["wire_bps"]:
        target_lines.append(
            f"- bytes/sample below vmagent's: **{'met' if pr['wire_bps'] < rows[base]['wire_bps'] else 'missed'}** "
            f"({pr['wire_bps']:.2f} vs {rows[base]['wire_bps']:.2f} with `batch_wait = \"5s\"`)"
        )

    m = meta
    cpu_model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_total = "?"
    try:
        with open("/proc/meminfo") as f:
            mem_total = f"{int(f.readline().split()[1]) / MIB:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass

    md = [
        "# pushrelay footprint and bytes on the wire",
        "",
        f"Measured {m['date']} on {os.cpu_count()} CPU(s) ({cpu_model}), {mem_total} RAM, "
        f"{platform.system()} {platform.release()}; the machine was shared with other work, so read "
        "the ratios first: all senders ran side by side in the same run, on the same workload.",
        "",
        f"Run: {int(round(duration))} s, a sample every {m['every']} s "
        f"(steady state = last half; CPU averaged from {int(warmup)} s on).",
        "",
        "\n".join(table),
        "",
        "Targets:",
        "",
        *target_lines,
        "",
    ]
    if notes:
        md += ["Notes from the run:", "", *notes, ""]
    maps = final.get("rss_by_mapping") or {}
    shown = [s for s in senders if maps.get(s["proc"])]
    if shown:
        md += [
            "Where the resident memory is at the end of the run (kB, from `/proc/PID/smaps`; file-backed pages "
            "are clean, shared with other processes running the same file, and counted whole in each RSS):",
            "",
        ]
        for s in shown:
            top = list(maps[s["proc"]].items())
            parts = [f"{k} {v}" for k, v in top[:6]]
            rest = sum(v for _, v in top[6:])
            if rest:
                parts.append(f"other {rest}")
            md.append(f"- {s['label']}: " + ", ".join(parts))
        md.append("")
    md += [
        "## Method",
        "",
        f"- Workload: `pushrelay sim --devices {m['devices']}` (the simulated exporter, "
        f"{m.get('series_scraped', '?')} series per scrape, values moving), scraped every 15 s by every "
        "sender from one shared simulator process (its one flapping series is served on even-numbered "
        "polls of the simulator, so whether a given sender sees it come and go depends on how the "
        "senders' scrapes interleave: a few stale markers at most).",
        "- Senders:",
    ]
    for s in senders:
        md.append(f"  - {s['label']}: `{s['cmd']}`" + (f"; config: {s['config_note']}" if s.get("config_note") else ""))
    md += [
        f"- Receiver: Prometheus ({m['versions'].get('prometheus', '?')}) with "
        "`--web.enable-remote-write-receiver`, temporary storage, on 127.0.0.1. Each sender has "
        "its own route through `bench/tcpcount.py`, a byte-counting TCP proxy that also follows "
        "the HTTP/1.1 messages to split header and body bytes.",
        "- Each sender adds an external label `sender=...` (same length for all) so the receiver "
        "can count samples per sender: at the end of the run, the raw samples of `{sender!=\"\"}` over "
        "the whole run are fetched from the receiver and counted per sender (stale markers are not "
        "counted; pushrelay's own `job=\"pushrelay\"` metrics, pushed every 30 s by default, are "
        "counted because they are on the wire too). A pending batch not yet sent at the end (up to "
        "60 s of samples with `batch_wait = \"60s\"`) is in neither the bytes nor the samples.",
        "- Bytes per sample = bytes the sender wrote to the proxy (request line, headers and body; not TCP/IP "
        "overhead) over the whole run ÷ samples stored. Pushrelay sends type/help metadata in its first "
        "batch and every 10 min; vmagent sends it in blocks of its own.",
        "- Memory from `/proc/PID/status` (VmRSS, VmHWM, RssAnon, RssFile), CPU from the per-thread "
        "`/proc/PID/task/*/schedstat` run time (ns; utime+stime of `/proc/PID/stat` counts in 10 ms ticks, too "
        "coarse here), sampled every few seconds; the senders' own `/metrics` are read once at "
        "the end only, so that reading them does not disturb what is measured.",
        "- Versions: " + "; ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "",
        "Reproduce (from the repository root; needs `scripts/fetch-receivers.sh` to have run, which "
        "the script does when the receivers are missing):",
        "",
        "```sh",
        m["command"],
        "```",
        "",
    ]
    enc = encode_section(meta)
    if enc:
        md.append(enc)
    elif meta.get("encode_error"):
        md += ["## Encode + compress throughput", "", f"Not measured in this run: {meta['encode_error']}.", ""]
    text = "\n".join(md).rstrip() + "\n"
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({k: {kk: vv for kk, vv in r.items()} for k, r in rows.items()}, f, indent=1, default=str)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--out", required=True)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--every", type=float, default=5.0)
    s.add_argument("--proc", action="append", required=True, help="NAME=PID")
    s.add_argument("--proxy-stats", required=True)
    s.add_argument("--metrics", action="append", help="NAME=URL of a sender's /metrics, read at the end")
    s.add_argument("--prom", help="receiver base URL, queried at the end")
    s.add_argument("--progress", action="store_true")
    r = sub.add_parser("report")
    r.add_argument("--samples", required=True)
    r.add_argument("--meta", required=True)
    r.add_argument("--markdown")
    r.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "sample":
        cmd_sample(a)
    else:
        cmd_report(a)


if __name__ == "__main__":
    main()
