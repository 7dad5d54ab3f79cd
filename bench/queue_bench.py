#!/usr/bin/env python3
"""Measurement and report halves of the durable-queue benchmarks (bench/drain.sh, bench/sdwear.sh).

  queued       prints how many samples a running sender has queued (pushrelay: the
               pushrelay_queue_samples gauge; vmagent: rows pushed to its remote-write queue);
               with --target N, waits until it is at least N (printing progress).
  pr-queue     reads a stopped pushrelay's queue directory (segments after the cursor) and prints
               {"samples", "records", "bytes"} as JSON: the exact backlog on disk.
  drain-watch  polls a draining sender every --every seconds (its /metrics, /proc/PID/status,
               CPU time) until its backlog is delivered, and writes one JSON result.
  vm-count     asks VictoriaMetrics (after /internal/force_flush) how many raw samples and
               series match a selector; prints JSON.
  snap         one snapshot (JSON line appended to --out) of processes (/proc: CPU, memory, I/O),
               block devices (/sys/block/DEV/stat) and senders' /metrics; --sync PATH runs
               syncfs on PATH first, so dirty pages are counted when they are written.
  drain-report / wear-report   turn the JSON results into the Markdown report.

Standard library only; Linux /proc and /sys.
"""

import argparse
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
SECTOR = 512

LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")


# ------------------------------------------------------------------------------------- helpers


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def scrape(url, timeout=5):
    """[(name, labels text, value)] from a Prometheus text exposition."""
    out = []
    for line in http_get(url, timeout).decode("utf-8", "replace").splitlines():
        if not line or line[0] == "#":
            continue
        m = LINE.match(line)
        if not m:
            continue
        try:
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
        except ValueError:
            pass
    return out


def msum(samples, name, contains=""):
    return sum(v for n, lab, v in samples if n == name and contains in lab)


def queued_samples(kind, samples):
    if kind == "pushrelay":
        return msum(samples, "pushrelay_queue_samples")
    return msum(samples, "vmagent_remotewrite_rows_pushed_after_relabel_total")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    return out


def proc_cpu(pid):
    """(schedstat ns summed over live threads, utime+stime seconds incl. exited threads)."""
    ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ns, ticks / CLK_TCK


def proc_io(pid):
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k.strip()] = int(v)
    return out


DEV_FIELDS = ("reads", "reads_merged", "sectors_read", "read_ms", "writes", "writes_merged",
              "sectors_written", "write_ms", "in_flight", "io_ms", "weighted_ms",
              "discards", "discards_merged", "sectors_discarded", "discard_ms",
              "flushes", "flush_ms")


def dev_stat(dev):
    with open(f"/sys/block/{dev}/stat") as f:
        vals = [int(x) for x in f.read().split()]
    return dict(zip(DEV_FIELDS, vals))


def dir_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def pr_queue(path):
    """The records a pushrelay queue directory holds after its cursor (see src/buffer/disk.rs)."""
    seg_no, seg_off = 0, 0
    try:
        with open(os.path.join(path, "cursor")) as f:
            a, b = f.read().split()[:2]
            seg_no, seg_off = int(a), int(b)
    except (FileNotFoundError, ValueError):
        pass
    segs = sorted(int(n[:-4]) for n in os.listdir(path) if n.endswith(".seg") and n[:-4].isdigit())
    samples = records = size = 0
    for seq in segs:
        if seq < seg_no:
            continue
        with open(os.path.join(path, f"{seq:020}.seg"), "rb") as f:
            if seq == seg_no:
                f.seek(seg_off)
            while True:
                head = f.read(8)
                if len(head) < 8:
                    break
                length, _crc = struct.unpack("<II", head)
                payload = f.read(length)
                if len(payload) < length or length < 12:
                    break
                samples += struct.unpack("<I", payload[:4])[0]
                records += 1
                size += 8 + length
    return {"samples": samples, "records": records, "bytes": size}


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, int) or digits == 0 or (v.is_integer() and abs(v) >= 1000):
        return f"{round(v):,}".replace(",", " ")
    return f"{v:.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.{digits}f}×"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return f"{os.cpu_count()} CPU(s) ({cpu}), {mem_kib / MIB:.1f} GiB RAM, Linux {platform.release()}"


# ------------------------------------------------------------------------------------- commands


def cmd_queued(a):
    deadline = time.time() + a.timeout
    last_print = 0.0
    while True:
        try:
            n = queued_samples(a.kind, scrape(a.url))
        except OSError:
            n = 0
        if a.target is None or n >= a.target:
            print(int(n))
            return 0
        if a.pid and not os.path.exists(f"/proc/{a.pid}"):
            sys.exit(f"queued: process {a.pid} exited while queueing ({int(n)} samples queued)")
        if time.time() > deadline:
            sys.exit(f"queued: only {int(n)} of {a.target} samples queued after {a.timeout} s")
        if a.progress and time.time() - last_print >= 15:
            last_print = time.time()
            print(f"  {a.kind}: {int(n):,} of {a.target:,} samples queued", file=sys.stderr)
        time.sleep(1)


def cmd_pr_queue(a):
    print(json.dumps(pr_queue(a.dir)))


def cmd_drain_watch(a):
    t0 = a.t0
    deadline = time.time() + a.timeout
    timeline = []
    first_sent = None
    last_val = None
    last_change = None
    done = None
    max_status = {}
    while True:
        now = time.time()
        if not os.path.exists(f"/proc/{a.pid}"):
            sys.exit(f"drain-watch: {a.kind} (pid {a.pid}) exited during the drain")
        st = proc_status(a.pid)
        for k, v in st.items():
            max_status[k] = max(max_status.get(k, 0), v)
        try:
            m = scrape(a.url, timeout=2)
        except OSError:
            m = None
        point = {"t": round(now - t0, 3), "rss_kib": st.get("VmRSS"), "anon_kib": st.get("RssAnon")}
        if m is not None:
            if a.kind == "pushrelay":
                sent = msum(m, "pushrelay_samples_sent_total")
                point["sent"] = sent
                point["queued"] = msum(m, "pushrelay_queue_samples")
                if first_sent is None and sent > 0:
                    first_sent = now
                if sent >= a.expect:
                    done = now
            else:
                sent = msum(m, "vmagent_remotewrite_blocks_sent_total")
                pending = msum(m, "vmagent_remotewrite_pending_data_bytes")
                inmem = msum(m, "vmagent_remotewrite_pending_inmemory_blocks")
                point.update(blocks_sent=sent, pending_bytes=pending)
                if first_sent is None and sent > 0:
                    first_sent = now
                if sent != last_val:
                    last_val, last_change = sent, now
                if sent > 0 and pending == 0 and inmem == 0 and now - last_change >= a.quiet:
                    done = last_change
        timeline.append(point)
        if done is not None:
            break
        if now > deadline:
            sys.exit(f"drain-watch: {a.kind} did not finish draining within {a.timeout} s")
        time.sleep(a.every)
    st = proc_status(a.pid)
    for k, v in st.items():
        max_status[k] = max(max_status.get(k, 0), v)
    ns, ticks_s = proc_cpu(a.pid)
    final = scrape(a.url)
    res = {
        "kind": a.kind,
        "expect": a.expect,
        "seconds": done - t0,
        "seconds_from_first_send": (done - first_sent) if first_sent else None,
        "start_to_first_send": (first_sent - t0) if first_sent else None,
        "vmhwm_kib": st.get("VmHWM"),
        "max_seen": max_status,
        "cpu_ns": ns,
        "cpu_ticks_s": ticks_s,
        "threads": st.get("Threads"),
        "polls": len(timeline),
        "timeline": timeline,
    }
    if a.kind == "pushrelay":
        res["sent"] = msum(final, "pushrelay_samples_sent_total")
        res["retries"] = msum(final, "pushrelay_send_retries_total")
        res["dropped"] = msum(final, "pushrelay_samples_dropped_total")
    else:
        res["blocks_sent"] = msum(final, "vmagent_remotewrite_blocks_sent_total")
        res["bytes_sent"] = msum(final, "vmagent_remotewrite_bytes_sent_total")
        res["retries"] = msum(final, "vmagent_remotewrite_retries_count_total")
        res["requests_2xx"] = msum(final, "vmagent_remotewrite_requests_total", 'status_code="2XX"')
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"  {a.kind}: drained in {res['seconds']:.2f} s, VmHWM {res['vmhwm_kib'] / 1024:.2f} MiB, "
          f"CPU {ns / 1e9:.2f} s", file=sys.stderr)


def cmd_vm_count(a):
    http_get(a.vm + "/internal/force_flush")
    time.sleep(a.settle)
    def query(q):
        url = a.vm + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        return json.loads(http_get(url, timeout=60))["data"]["result"]

    by_job = {r["metric"].get("job", ""): int(float(r["value"][1]))
              for r in query(f"sum by (job) (count_over_time({a.match}[{a.window}]))")}
    series = query(f"count(count_over_time({a.match}[{a.window}]))")
    out = {"samples": sum(by_job.values()), "by_job": by_job,
           "series": int(float(series[0]["value"][1])) if series else 0}
    def export(metric):
        sel = "{" + f'__name__="{metric}",' + a.match.lstrip("{")
        body = http_get(a.vm + "/api/v1/export?" + urllib.parse.urlencode({"match[]": sel}), timeout=60)
        values = nans = 0
        for line in body.decode().splitlines():
            if line.strip():
                for v in json.loads(line)["values"]:
                    values += 1
                    nans += v is None or (isinstance(v, float) and v != v)
        return values, nans

    # What count_over_time cannot see: staleness markers (exported as null) and plain NaN samples
    # (the simulator serves one per scrape, next to a +Inf one; VictoriaMetrics drops the NaN).
    if a.stale_of:
        out["stale_markers"] = export(a.stale_of)[1]
    if a.nan_per_value_of:
        out["nan_samples"] = export(a.nan_per_value_of)[0]
    if a.stale_of or a.nan_per_value_of:
        out["uncounted"] = out.get("stale_markers", 0) + out.get("nan_samples", 0)
    print(json.dumps(out))


def cmd_snap(a):
    if a.at:
        time.sleep(max(0.0, a.at - time.time()))
    t = time.time()
    for path in a.sync or []:
        subprocess.run(["sync", "-f", path], check=True)
    snap = {"label": a.label, "t": t, "proc": {}, "dev": {}, "metrics": {}, "dir": {}}
    # Process and device counters first, /metrics last: reading /metrics costs the sender a
    # little CPU, which then falls outside the window a snapshot opens or closes.
    for spec in a.proc or []:
        name, pid = spec.split("=", 1)
        if not os.path.exists(f"/proc/{pid}"):
            snap["proc"][name] = None
            continue
        ns, ticks_s = proc_cpu(pid)
        snap["proc"][name] = {"cpu_ns": ns, "cpu_ticks_s": ticks_s, "io": proc_io(pid),
                              "status": proc_status(pid)}
    for spec in a.dev or []:
        name, dev = spec.split("=", 1)
        snap["dev"][name] = dev_stat(dev)
    for spec in a.dir or []:
        name, path = spec.split("=", 1)
        snap["dir"][name] = {"bytes": dir_bytes(path)}
        if name.startswith("pr"):
            try:
                snap["dir"][name]["pr_queue"] = pr_queue(path)
            except OSError:
                pass
    for spec in a.metrics or []:
        name, kind, url = spec.split("=", 2)
        try:
            m = scrape(url)
            snap["metrics"][name] = {"queued": queued_samples(kind, m),
                                     "scrapes": msum(m, "vm_promscrape_scraped_samples_count")}
        except OSError:
            snap["metrics"][name] = None
    with open(a.out, "a") as f:
        f.write(json.dumps(snap) + "\n")
    print(f"{t:.3f}")


# ------------------------------------------------------------------------------------- reports


def cmd_drain_report(a):
    meta = json.load(open(a.meta))
    runs = {}
    for path in a.runs:
        r = json.load(open(path))
        runs.setdefault(r["sender"], []).append(r)
    order = ["pr", "prb", "vmag"]
    names = sorted(runs, key=lambda n: order.index(n) if n in order else len(order))
    b = meta["backlog"]

    def title(n):
        if n == "vmag":
            return "vmagent"
        return f"pushrelay, max_samples_per_send {b[n]['max_samples_per_send']}" + (" (default)" if n == "pr" else "")

    base = "vmag" if "vmag" in names else None
    versus = [n for n in names if n != "vmag"] if base else []

    def agg(name, get, how=median):
        vals = [v for v in (get(r) for r in runs[name]) if v is not None]
        return how(vals) if vals else None

    def row(label, get, digits=1, how=median, ratio_ok=True):
        vals = {n: agg(n, get, how) for n in names}
        cells = [fmt(vals[n], digits) for n in names]
        cells += [ratio(vals[n], vals[base]) if ratio_ok else "" for n in versus]
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = []
    lines.append(f"Measured {meta['date']} on {machine()}; load average {meta['load_before']} before "
                 f"the run and {meta['load_after']} after it (the machine was shared with other work: "
                 "read the ratios first).")
    lines.append("")
    workload = meta.get("workload") or f"{meta['devices']}-device simulator"
    lines.append(f"Backlog: {workload} ({fmt(meta['series'])} series per scrape) "
                 f"scraped every {meta['interval']} by every sender at once, their remote-write URL "
                 f"a closed port, until each had queued at least {fmt(meta['target'])} samples "
                 f"({meta['build_seconds']:.0f} s); then each was stopped (SIGTERM), and each drain "
                 f"ran {meta['repeat']} times from a copy of that backlog into a fresh "
                 f"VictoriaMetrics {meta['vm_version']} on the same machine, one sender at a time, the "
                 "sender started for the drain only (so its peak RSS is the drain's).")
    lines.append("")
    lines.append("| | " + " | ".join(title(n) for n in names)
                 + "".join(f" | {n} / vmag" for n in versus) + " |")
    lines.append("|---|" + "---:|" * (len(names) + len(versus)))
    lines.append(row("Backlog, samples", lambda r: r["backlog"], 0, ratio_ok=False))
    lines.append(row("  stored by VictoriaMetrics after the drain (count_over_time)",
                     lambda r: r["vm"]["samples"], 0, how=min, ratio_ok=False))
    lines.append(row("  + NaN samples count_over_time cannot see (stale markers, the simulator's NaN gauge)",
                     lambda r: r["vm"].get("uncounted"), 0, how=min, ratio_ok=False))
    lines.append(row("Backlog on disk, MiB", lambda r: b[r["sender"]]["disk_bytes"] / MIB, 1))
    lines.append(row("Backlog on disk, bytes per sample",
                     lambda r: b[r["sender"]]["disk_bytes"] / r["backlog"], 2))
    lines.append(row(f"**Drain time**, s (median of {meta['repeat']}; exec to last batch delivered)",
                     lambda r: r["seconds"], 2))
    lines.append(row("  of which exec to first batch delivered, s", lambda r: r["start_to_first_send"], 2))
    lines.append(row("**Samples/s** (backlog ÷ drain time, median)", lambda r: r["backlog"] / r["seconds"], 0))
    lines.append(row("Samples/s, slowest run", lambda r: r["backlog"] / r["seconds"], 0, how=min))
    lines.append(row("**Peak RSS while draining** (VmHWM), MiB, highest of the runs",
                     lambda r: r["vmhwm_kib"] / 1024, 2, how=max))
    lines.append(row("  anonymous part (max RssAnon seen), MiB, highest",
                     lambda r: r["max_seen"].get("RssAnon", 0) / 1024, 2, how=max))
    lines.append(row("CPU time of the sender for the drain, s (median)", lambda r: r["cpu_ns"] / 1e9, 2))
    lines.append(row("CPU per million samples, s", lambda r: r["cpu_ns"] / 1e9 / r["backlog"] * 1e6, 2))
    lines.append(row("Threads", lambda r: r["threads"], 0, ratio_ok=False))
    lines.append("")
    t = meta.get("targets", {})
    prs = [n for n in names if n != "vmag"]
    if prs:
        lines.append("Targets:")
        lines.append("")
        for n in prs:
            hwm = max(r["vmhwm_kib"] for r in runs[n]) / 1024
            rate = median([r["backlog"] / r["seconds"] for r in runs[n]])
            lines.append(f"- {title(n)}: peak RSS while draining ≤ {t.get('rss_mib', 16)} MiB: "
                         f"**{'met' if hwm <= t.get('rss_mib', 16) else 'NOT met'}** ({hwm:.2f} MiB); "
                         f"drain rate {fmt(rate, 0)} samples/s (no target in the issue)")
        lines.append("")
    lines.append("Per run:")
    lines.append("")
    for n in names:
        for r in runs[n]:
            lines.append(f"- {n} run {r['rep']}: {r['seconds']:.2f} s, {fmt(r['backlog'] / r['seconds'], 0)} samples/s, "
                         f"VmHWM {r['vmhwm_kib'] / 1024:.2f} MiB, CPU {r['cpu_ns'] / 1e9:.2f} s; "
                         f"VictoriaMetrics stored {r['vm']['samples']} samples {r['vm']['by_job']} "
                         f"in {r['vm']['series']} series, + {r['vm'].get('stale_markers')} stale markers + "
                         f"{r['vm'].get('nan_samples')} NaN samples; "
                         f"backlog {r['backlog']}: {r['expect_note']}; "
                         f"{'all arrived' if r.get('complete') else 'NOT ALL ARRIVED (or vmagent queued more after its counter was read)'}"
                         + (f"; {int(r['retries'])} retries" if r.get("retries") else ""))
    lines.append("")
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    text = "\n".join(lines) + "\n"
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    print(text)


def wear_rows(snaps, meta):
    by = {s["label"]: s for s in snaps}
    start, begin, end, final = by["start"], by["begin"], by["end"], by["final"]
    window = end["t"] - begin["t"]
    # The window is exactly --duration long (a whole number of intervals, both ends mid-cycle for
    # pushrelay), so every sender scraped exactly this many times in it.
    cycles = meta["duration"] / meta["interval_s"]
    perf = meta.get("perf", {})
    out = {}
    for name in meta["senders"]:
        pb, pe = begin["proc"][name], end["proc"][name]
        db, de = begin["dev"].get(name), end["dev"].get(name)
        ds, df = start["dev"].get(name), final["dev"].get(name)
        mb, me = begin["metrics"][name], end["metrics"][name]
        q_win = me["queued"] - mb["queued"]
        if name.startswith("pr"):
            total_samples = final["dir"][name]["pr_queue"]["samples"]
        else:
            total_samples = me["queued"]
        r = {
            "cycles": cycles,
            "window_s": window,
            "samples_window": q_win,
            "scrapes_counted": (me.get("scrapes", 0) - mb.get("scrapes", 0)) if name.startswith("vm") else None,
            "samples_per_cycle": q_win / cycles,
            "cpu_ms_per_cycle": (pe["cpu_ns"] - pb["cpu_ns"]) / 1e6 / cycles,
            "cpu_pct": (pe["cpu_ns"] - pb["cpu_ns"]) / 1e9 / window * 100,
            "io_write_bytes_per_sample": (pe["io"]["write_bytes"] - pb["io"]["write_bytes"]) / q_win,
            "io_wchar_per_cycle": (pe["io"]["wchar"] - pb["io"]["wchar"]) / cycles,
            "syscw_per_cycle": (pe["io"]["syscw"] - pb["io"]["syscw"]) / cycles,
            "rss_mib": pe["status"]["VmRSS"] / 1024,
            "threads": pe["status"]["Threads"],
            "total_samples": total_samples,
            "queue_bytes_final": final["dir"][name]["bytes"],
        }
        if db and de:
            r["dev_bytes_per_sample"] = (de["sectors_written"] - db["sectors_written"]) * SECTOR / q_win
            r["dev_bytes_per_cycle"] = (de["sectors_written"] - db["sectors_written"]) * SECTOR / cycles
            r["dev_writes_per_cycle"] = (de["writes"] - db["writes"]) / cycles
            r["dev_flushes_per_cycle"] = (de["flushes"] - db["flushes"]) / cycles
        if ds and df:
            r["dev_bytes_total"] = (df["sectors_written"] - ds["sectors_written"]) * SECTOR
            r["dev_bytes_per_sample_total"] = r["dev_bytes_total"] / total_samples
            r["dev_writes_total"] = df["writes"] - ds["writes"]
        r["queue_bytes_per_sample"] = r["queue_bytes_final"] / total_samples
        counts = perf.get(name)
        if counts:
            def per(*evs):
                return sum(counts.get(e, 0) for e in evs) / cycles
            r["sys_all_per_cycle"] = per("raw_syscalls:sys_enter")
            r["sys_write_per_cycle"] = per("syscalls:sys_enter_write", "syscalls:sys_enter_writev",
                                           "syscalls:sys_enter_pwrite64", "syscalls:sys_enter_pwritev")
            r["sys_fsync_per_cycle"] = per("syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync",
                                           "syscalls:sys_enter_sync_file_range")
            r["sys_open_rename_per_cycle"] = per("syscalls:sys_enter_openat", "syscalls:sys_enter_rename",
                                                 "syscalls:sys_enter_renameat", "syscalls:sys_enter_renameat2")
            r["ext4_sync_per_cycle"] = per("ext4:ext4_sync_file_enter")
        out[name] = r
    return out


def cmd_wear_report(a):
    meta = json.load(open(a.meta))
    snaps = [json.loads(line) for line in open(a.snaps) if line.strip()]
    rows = wear_rows(snaps, meta)
    names = meta["senders"]
    titles = meta["titles"]
    base = meta.get("baseline", "vmag")
    cols = names + [n for n in names if n.startswith("pr")]
    lines = []
    lines.append(f"Measured {meta['date']} on {machine()}; load average {meta['load_before']} before the "
                 f"run and {meta['load_after']} after it (shared machine: read the ratios first).")
    lines.append("")
    lines.append(f"Workload: `pushrelay sim --devices {meta['devices']}` ({meta['series']} series per scrape), "
                 f"scraped every {meta['interval']} by every sender at once for "
                 f"{meta['warmup']} s of warm-up + {meta['duration']} s measured "
                 f"({rows[names[0]]['cycles']:.0f} cycles); every sender's remote-write URL is a closed port, "
                 "so everything goes to its on-disk queue. "
                 + ("Each queue directory is on its own freshly made ext4 file system (default mount options: "
                    "journal, `data=ordered`, 5 s commit) on its own loop device, whose "
                    "`/sys/block/loopN/stat` counts what a storage device (an SD card) would be asked to write, "
                    "journal and metadata included." if meta["loop"] else
                    "No loop devices (not root, or --no-loop): only /proc/PID/io figures."))
    lines.append("")
    lines.append("| per scrape cycle unless said | " + " | ".join(titles[n] for n in names)
                 + "".join(f" | {n} / {base}" for n in names if n.startswith("pr")) + " |")
    lines.append("|---|" + "---:|" * len(cols))

    def line(label, key, digits=1):
        vals = [rows[n].get(key) for n in names]
        cells = [fmt(v, digits) for v in vals]
        rs = [ratio(rows[n].get(key), rows[base].get(key)) for n in names if n.startswith("pr")]
        lines.append(f"| {label} | " + " | ".join(cells + rs) + " |")

    line("samples queued per cycle", "samples_per_cycle", 1)
    line("scrapes in the measured window (vmagent's own count)", "scrapes_counted", 0)
    if meta["loop"]:
        line("**bytes written to the device per sample** (measured window)", "dev_bytes_per_sample", 1)
        line("bytes written to the device per cycle", "dev_bytes_per_cycle", 0)
        line("device write requests per cycle", "dev_writes_per_cycle", 2)
        line("device cache flushes per cycle (fsync / journal commit)", "dev_flushes_per_cycle", 2)
        line("bytes written to the device per sample, whole run incl. start and SIGTERM", "dev_bytes_per_sample_total", 1)
    line("queue size on disk per sample, at the end", "queue_bytes_per_sample", 2)
    line("page-cache bytes dirtied per sample (/proc/PID/io write_bytes)", "io_write_bytes_per_sample", 1)
    line("**CPU time per cycle**, ms (schedstat)", "cpu_ms_per_cycle", 2)
    line("CPU, % of one core", "cpu_pct", 3)
    if meta.get("perf"):
        line("fsync/fdatasync calls per cycle", "sys_fsync_per_cycle", 2)
        line("write/writev/pwrite calls per cycle (all fds: queue, sockets, log)", "sys_write_per_cycle", 2)
        line("openat + rename calls per cycle", "sys_open_rename_per_cycle", 2)
        line("system calls of any kind per cycle", "sys_all_per_cycle", 1)
    line("RSS at the end of the window, MiB", "rss_mib", 2)
    line("threads", "threads", 0)
    lines.append("")
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    text = "\n".join(lines) + "\n"
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("queued")
    s.add_argument("--kind", choices=("pushrelay", "vmagent"), required=True)
    s.add_argument("--url", required=True)
    s.add_argument("--target", type=int)
    s.add_argument("--pid", type=int)
    s.add_argument("--timeout", type=float, default=900)
    s.add_argument("--progress", action="store_true")
    s.set_defaults(fn=cmd_queued)

    s = sub.add_parser("pr-queue")
    s.add_argument("dir")
    s.set_defaults(fn=cmd_pr_queue)

    s = sub.add_parser("drain-watch")
    s.add_argument("--kind", choices=("pushrelay", "vmagent"), required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--url", required=True)
    s.add_argument("--expect", type=int, default=0, help="pushrelay: samples to be sent")
    s.add_argument("--t0", type=float, required=True, help="epoch seconds the sender was started")
    s.add_argument("--every", type=float, default=0.1)
    s.add_argument("--quiet", type=float, default=1.5, help="vmagent: seconds without a send = done")
    s.add_argument("--timeout", type=float, default=600)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_drain_watch)

    s = sub.add_parser("vm-count")
    s.add_argument("--vm", required=True)
    s.add_argument("--match", required=True)
    s.add_argument("--window", default="2h")
    s.add_argument("--stale-of", help="count the staleness markers of this metric (raw export)")
    s.add_argument("--nan-per-value-of", help="count one dropped NaN sample per raw value of this metric")
    s.add_argument("--settle", type=float, default=2.0)
    s.set_defaults(fn=cmd_vm_count)

    s = sub.add_parser("snap")
    s.add_argument("--out", required=True)
    s.add_argument("--label", required=True)
    s.add_argument("--proc", action="append")
    s.add_argument("--dev", action="append")
    s.add_argument("--dir", action="append")
    s.add_argument("--metrics", action="append", help="NAME=KIND=URL")
    s.add_argument("--sync", action="append")
    s.add_argument("--at", type=float, help="wait until this epoch time first")
    s.set_defaults(fn=cmd_snap)

    s = sub.add_parser("drain-report")
    s.add_argument("--meta", required=True)
    s.add_argument("--markdown")
    s.add_argument("runs", nargs="+")
    s.set_defaults(fn=cmd_drain_report)

    s = sub.add_parser("wear-report")
    s.add_argument("--meta", required=True)
    s.add_argument("--snaps", required=True)
    s.add_argument("--markdown")
    s.add_argument("--json")
    s.set_defaults(fn=cmd_wear_report)

    a = p.parse_args()
    return a.fn(a) or 0


if __name__ == "__main__":
    sys.exit(main())
