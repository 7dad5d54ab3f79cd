#!/usr/bin/env python3
"""EMQX all-clients mode at N clients (default 10,000): state-file writes, peak RSS, CPU per poll.

Usage: bench/emqx_state.py BINARY [BINARY...]   (env: CLIENTS, SECONDS, INTERVAL)

Serves a paged EMQX v5 `/api/v5/clients` (client objects of bench/memory.py's real shape,
`page`/`limit`/`hasnext` honoured, counters growing each poll), runs `pushrelay run` with one
emqx source in all-clients mode and the `listen` server only (no sink), for SECONDS, and counts
how often `state_dir/sources/emqx.json` was replaced (inode or mtime changes, sampled every
50 ms), including the write on SIGTERM at the end.
Peak RSS is the daemon's VmHWM; CPU per poll is (utime+stime) / polls served.
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memory import emqx_client  # noqa: E402  (the real client shape, 1,191 bytes)

CLIENTS = int(os.environ.get("CLIENTS", "10000"))
SECONDS = float(os.environ.get("SECONDS", "60"))
INTERVAL = os.environ.get("INTERVAL", "5s")


def serve():
    polls = {"n": 0}
    base = [emqx_client(i) for i in range(CLIENTS)]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            page = int(q.get("page", ["1"])[0])
            limit = int(q.get("limit", ["100"])[0])
            if page == 1:
                polls["n"] += 1
            bump = polls["n"]
            data = []
            for c in base[(page - 1) * limit: page * limit]:
                c = dict(c)
                c["recv_msg"] = c.get("recv_msg", 0) + bump
                data.append(c)
            body = json.dumps({"data": data, "meta": {"page": page, "limit": limit,
                                                      "count": CLIENTS,
                                                      "hasnext": page * limit < CLIENTS}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, polls


def run(binary):
    srv, polls = serve()
    tmp = tempfile.mkdtemp(prefix="pushrelay-emqx-state-")
    cfg = os.path.join(tmp, "c.toml")
    with open(os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(f'[relay]\nstate_dir = "{tmp}/state"\ninterval = "{INTERVAL}"\n'
                f'listen = "127.0.0.1:0"\n\n[[source]]\ntype = "emqx"\nname = "emqx"\n'
                f'url = "http://127.0.0.1:{srv.server_address[1]}"\napi_key = "k"\n'
                f'api_secret = "s"\ntimeout = "30s"\n')
    p = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    state = os.path.join(tmp, "state", "sources", "emqx.json")
    last, writes, size, end = None, 0, 0, time.time() + SECONDS
    while time.time() < end and p.poll() is None:
        try:
            st = os.stat(state)
            now = (st.st_ino, st.st_mtime_ns)
            if now != last:
                writes, last, size = writes + 1, now, st.st_size
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    with open(f"/proc/{p.pid}/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    p.terminate()
    p.wait(30)
    try:
        st = os.stat(state)
        if (st.st_ino, st.st_mtime_ns) != last:
            writes += 1
    except FileNotFoundError:
        pass
    n = polls["n"]
    srv.shutdown()
    shutil.rmtree(tmp)
    return n, writes, size, hwm, cpu


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(f"EMQX all-clients mode, {CLIENTS} clients, interval {INTERVAL}, {SECONDS:.0f} s\n")
    print("| binary | polls | state writes | state file | peak RSS | CPU per poll |")
    print("|---|---:|---:|---:|---:|---:|")
    for b in sys.argv[1:]:
        n, writes, size, hwm, cpu = run(b)
        print(f"| {b} | {n} | {writes} | {size / 1e6:.1f} MB | {hwm:.1f} MiB | "
              f"{cpu / max(n, 1) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
