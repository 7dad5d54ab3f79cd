#!/usr/bin/env python3
"""Peak RSS of one poll on the largest answer each source may read with its default limits.

Serves one generated answer on 127.0.0.1 for every GET (an EMQX clients page, a TTN gateway
list, a scrape exposition of tiny series), runs `BINARY print --config ...` once per case and
reads the child's peak RSS (ru_maxrss of the waited-for process). Several binaries can be given
(e.g. the build before and after a change) and are measured side by side in one run.

The answers just under a limit are also measured in the daemon (`BINARY run`, the whole
pipeline: parse, relabel, staleness, a remote-write sink delivering to a local receiver that
answers 204), polled every 10 s for 35 s, three runs each; the table gives the highest peak
(VmHWM) of the three, because the peak depends on how a poll meets the previous one's delivery.

Usage: bench/memory.py BINARY [BINARY...]   (release builds; see bench/RESULTS.md)
"""
import http.server
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20


def emqx_client(i):
    c = {
        "clientid": f"device-{i:07d}",
        "username": None,
        "connected": True,
        "created_at": "2026-11-30T10:00:00.123+01:00",
        "connected_at": "2026-11-30T10:00:00.456+01:00",
        "keepalive": 60,
        "clean_start": True,
        "expiry_interval": 0,
        "proto_name": "MQTT",
        "proto_ver": 4,
        "ip_address": "192.168.1.23",
        "port": 50000 + i % 10000,
        "node": "emqx@127.0.0.1",
        "listener": "tcp:default",
        "is_bridge": False,
        "durable": False,
        "is_persistent": False,
        "subscriptions_cnt": 2,
        "subscriptions_max": "infinity",
        "inflight_cnt": 0,
        "inflight_max": 32,
        "mqueue_len": 0,
        "mqueue_max": 1000,
        "mqueue_dropped": 0,
        "awaiting_rel_cnt": 0,
        "awaiting_rel_max": 100,
        "heap_size": 2586,
        "mailbox_len": 0,
        "reductions": 123456 + i,
    }
    for k in ["recv_cnt", "recv_msg", "recv_msg.qos0", "recv_msg.qos1", "recv_msg.qos2",
              "recv_msg.dropped", "recv_msg.dropped.await_pubrel_timeout", "recv_oct", "recv_pkt",
              "send_cnt", "send_msg", "send_msg.qos0", "send_msg.qos1", "send_msg.qos2",
              "send_msg.dropped", "send_msg.dropped.expired", "send_msg.dropped.queue_full",
              "send_msg.dropped.too_large", "send_oct", "send_pkt"]:
        c[k] = i * 7 % 100000
    return c


def emqx_page(limit_bytes):
    """One `GET /clients` page as large as fits under `limit_bytes`."""
    one = len(json.dumps(emqx_client(0))) + 1
    n = max(1, (limit_bytes - 200) // one)
    data = [emqx_client(i) for i in range(n)]
    meta = {"page": 1, "limit": n, "count": n, "hasnext": False}
    return json.dumps({"data": data, "meta": meta}).encode(), n


def ttn_list(limit_bytes):
    gw = lambda i: {
        "ids": {"gateway_id": f"gw-{i:07d}", "eui": f"{i:016X}"},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "name": f"Gateway {i}",
        "description": "a gateway on a roof somewhere in the city, with a long description",
        "gateway_server_address": "eu1.cloud.thethings.network",
        "antennas": [{"location": {"latitude": 52.1, "longitude": 4.3, "altitude": 10,
                                   "source": "SOURCE_REGISTRY"}}],
        "frequency_plan_id": "EU_863_870_TTN",
    }
    one = len(json.dumps(gw(0))) + 1
    n = max(1, (limit_bytes - 100) // one)
    return json.dumps({"gateways": [gw(i) for i in range(n)]}).encode(), n


def exposition(limit_bytes, name="m{i}", max_series=None):
    lines, size, i = [], 0, 0
    while max_series is None or i < max_series:
        line = name.format(i=i) + " 1\n"
        if size + len(line) > limit_bytes:
            break
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines).encode(), i


def serve(body, content_type):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except BrokenPipeError:  # the relay refused the body part way: that is the point
                pass

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def measure(binary, config):
    code = (
        "import resource,subprocess,sys;"
        "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "print(p.returncode);"
        "print(([l for l in (p.stderr+p.stdout).splitlines() if 'failed' in l or 'ERROR' in l]+[''])[-1])"
    )
    out = subprocess.run([sys.executable, "-c", code, binary, "print", "--config", config],
                         capture_output=True, text=True).stdout.split("\n")
    return int(out[0]) / 1024, out[1], out[2] if len(out) > 2 else ""


def serve_receiver():
    """A remote-write receiver that reads each request and answers 204 (keep-alive)."""
    class R(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), R)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def measure_daemon(binary, config, seconds=35):
    """Peak RSS (VmHWM, MiB) of `BINARY run` over `seconds`, and whether it stopped cleanly."""
    p = subprocess.Popen([binary, "run", "--config", config], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    hwm = 0.0
    deadline = time.time() + seconds
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
        try:
            for line in open(f"/proc/{p.pid}/status"):
                if line.startswith("VmHWM"):
                    hwm = int(line.split()[1]) / 1024
        except FileNotFoundError:
            break
    p.terminate()
    err = p.communicate(timeout=30)[1].decode(errors="replace")
    bad = [l for l in err.splitlines() if " ERROR " in l or "failed" in l]
    return hwm, p.returncode, bad[-1] if bad else ""


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    tmp = tempfile.mkdtemp(prefix="pushrelay-memory-")
    cases = []
    for limit_mib in (64, 4):
        body, n = emqx_page(int(limit_mib * MIB * 0.85))
        cases.append((f"EMQX: one {len(body) / MIB:.1f} MB page ({n} clients)", body,
                      "application/json", "emqx",
                      'api_key = "k"\napi_secret = "s"\n'))
    for limit_mib in (16, 4):
        body, n = ttn_list(int(limit_mib * MIB * 0.85))
        cases.append((f"TTN: one {len(body) / MIB:.1f} MB gateway list ({n} gateways)", body,
                      "application/json", "ttn", 'api_key = "NNSXS.K"\n'))
    for name in ("m{i}", "metric_name_{i:07d}"):
        body, n = exposition(16 * MIB, name)
        cases.append((f"scrape: {len(body) / MIB:.1f} MB exposition ({n} series like "
                      f"`{name.format(i=1)}`)", body, "text/plain; version=0.0.4", "scrape", ""))
    # One family of labelled series (issue 11's shape: ~21 bytes a series).
    body, n = exposition(16 * MIB, 'node_x{{id="{i:07d}"}}')
    cases.append((f"scrape: {len(body) / MIB:.1f} MB exposition ({n} series of one family "
                   "like `node_x{id=\"0000001\"}`)", body, "text/plain; version=0.0.4", "scrape", ""))
    body, n = exposition(16 * MIB, "metric_name_{i:07d}", 199_000)
    cases.append((f"scrape: {len(body) / MIB:.1f} MB exposition ({n} series, just under "
                  "sample_limit: the whole pipeline runs)", body, "text/plain; version=0.0.4",
                  "scrape", ""))
    rows = []
    for title, body, ctype, kind, extra in cases:
        srv = serve(body, ctype)
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        cfg = os.path.join(tmp, f"{kind}.toml")
        with open(os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f'[relay]\nstate_dir = "{tmp}/state"\n\n[[source]]\ntype = "{kind}"\n'
                    f'name = "{kind}"\nurl = "{url}"\ntimeout = "60s"\ninterval = "60s"\n{extra}')
        row = [title]
        for b in binaries:
            mib, rc, err = measure(b, cfg)
            why = "" if rc == "0" else f" (poll failed, up 0{': ' + err[:80] if err else ''})"
            row.append(f"{mib:.1f} MiB{why}")
        rows.append(row)
        srv.shutdown()
    receiver = serve_receiver()
    daemon_cases = []
    for name in ("metric_name_{i:07d}", 'node_x{{id="{i:07d}",instance_type="big"}}'):
        body, n = exposition(64 * MIB, name, 199_000)
        daemon_cases.append((f"daemon with a remote-write sink: {len(body) / MIB:.1f} MB exposition "
                             f"({n} series like `{name.format(i=1)}`, just under sample_limit)",
                             body))
    for title, body in daemon_cases:
        srv = serve(body, "text/plain; version=0.0.4")
        cfg = os.path.join(tmp, "daemon.toml")
        with open(os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f'[relay]\nstate_dir = "{tmp}/state-daemon"\n\n[[source]]\ntype = "scrape"\n'
                    f'name = "scrape"\nurl = "http://127.0.0.1:{srv.server_address[1]}"\n'
                    'interval = "10s"\n\n[[sink]]\ntype = "remote_write"\nname = "rw"\n'
                    f'url = "http://127.0.0.1:{receiver.server_address[1]}/api/v1/write"\n')
        row = [title]
        for b in binaries:
            runs = [measure_daemon(b, cfg) for _ in range(3)]
            worst = max(r[0] for r in runs)
            errs = [r[2] for r in runs if r[2]]
            why = f" (error: {errs[-1][:80]})" if errs else ""
            row.append(f"{worst:.1f} MiB (runs: {', '.join(f'{r[0]:.0f}' for r in runs)}){why}")
        rows.append(row)
        srv.shutdown()
    receiver.shutdown()
    print("| answer (one poll, `print`) | " + " | ".join(os.path.basename(os.path.dirname(
        os.path.dirname(os.path.abspath(b)))) + ":" + os.path.basename(b) for b in binaries) + " |")
    print("|---|" + "---:|" * len(binaries))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
