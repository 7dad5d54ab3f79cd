#!/usr/bin/env python3
"""Byte-counting TCP proxy for the footprint benchmark (bench/footprint.sh starts it).

Forwards each route's connections to its target unchanged and counts what passes, per route:
bytes client->server and server->client, and, by following the HTTP/1.1 messages in each
direction, how many requests there were, how many of the request bytes were headers (request
line included) and how many were bodies, and which status codes came back. Stats are written
as JSON to --stats (atomically, every --every seconds and on exit).

Usage:
  bench/tcpcount.py --stats FILE [--every 1] --route NAME=LISTEN_PORT=TARGET_HOST:TARGET_PORT ...
Listens on 127.0.0.1 only. Standard library only (Python >= 3.8). Stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time


class HttpCounter:
    """Follows the HTTP/1.x messages of one direction of one connection, counting header and
    body bytes. Handles Content-Length and chunked bodies; for responses, 1xx/204/304 have
    none. Anything it cannot follow is counted as unparsed body bytes from then on."""

    def __init__(self, stats, response):
        self.stats = stats
        self.response = response
        self.buf = b""
        self.state = "head"  # head | body | chunk_size | chunk_data | chunk_crlf | trailer | lost
        self.remaining = 0

    def feed(self, data):
        st = self.stats
        pre = "resp_" if self.response else "req_"
        st[pre + "bytes"] += len(data)
        if self.state == "lost":
            st[pre + "unparsed_bytes"] += len(data)
            return
        self.buf += data
        while self.buf:
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > 1 << 20:
                        self._lose()
                    return
                head = self.buf[: end + 4]
                self.buf = self.buf[end + 4:]
                st[pre + "header_bytes"] += len(head)
                self._start_message(head)
            elif self.state == "body":
                n = min(self.remaining, len(self.buf))
                st[pre + "body_bytes"] += n
                self.remaining -= n
                self.buf = self.buf[n:]
                if self.remaining == 0:
                    self.state = "head"
            elif self.state == "chunk_size":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                line = self.buf[: end + 2]
                self.buf = self.buf[end + 2:]
                st[pre + "header_bytes"] += len(line)  # chunk framing is not payload
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self._lose()
                    return
                if size == 0:
                    self.state = "trailer"
                else:
                    self.remaining = size
                    self.state = "chunk_data"
            elif self.state == "chunk_data":
                n = min(self.remaining, len(self.buf))
                st[pre + "body_bytes"] += n
                self.remaining -= n
                self.buf = self.buf[n:]
                if self.remaining == 0:
                    self.state = "chunk_crlf"
            elif self.state == "chunk_crlf":
                if len(self.buf) < 2:
                    return
                st[pre + "header_bytes"] += 2
                self.buf = self.buf[2:]
                self.state = "chunk_size"
            elif self.state == "trailer":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                st[pre + "header_bytes"] += end + 2
                self.buf = self.buf[end + 2:]
                if end == 0:
                    self.state = "head"
            else:
                return

    def _lose(self):
        self.stats[("resp_" if self.response else "req_") + "unparsed_bytes"] += len(self.buf)
        self.buf = b""
        self.state = "lost"

    def _start_message(self, head):
        st = self.stats
        lines = head.decode("latin-1").split("\r\n")
        first = lines[0]
        headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        no_body = False
        if self.response:
            parts = first.split(" ")
            code = parts[1] if len(parts) > 1 else "?"
            st["statuses"][code] = st["statuses"].get(code, 0) + 1
            no_body = code.startswith("1") or code in ("204", "304")
        else:
            st["requests"] += 1
            method = first.split(" ")[0]
            st["methods"][method] = st["methods"].get(method, 0) + 1
            enc = headers.get("content-encoding", "")
            st["encodings"][enc] = st["encodings"].get(enc, 0) + 1
        if no_body:
            self.state = "head"
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = "chunk_size"
        elif "content-length" in headers:
            try:
                self.remaining = int(headers["content-length"])
            except ValueError:
                self._lose()
                return
            self.state = "body" if self.remaining > 0 else "head"
        elif self.response:
            # A response without length runs until the connection closes.
            self.state = "lost"
        else:
            self.state = "head"


def new_stats(name, listen_port, target):
    return {
        "name": name,
        "listen_port": listen_port,
        "target": target,
        "connections": 0,
        "requests": 0,
        "req_bytes": 0,
        "req_header_bytes": 0,
        "req_body_bytes": 0,
        "req_unparsed_bytes": 0,
        "resp_bytes": 0,
        "resp_header_bytes": 0,
        "resp_body_bytes": 0,
        "resp_unparsed_bytes": 0,
        "statuses": {},
        "methods": {},
        "encodings": {},
    }


async def pump(reader, writer, counter):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            counter.feed(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass


def make_handler(stats, thost, tport):
    async def handle(creader, cwriter):
        stats["connections"] += 1
        try:
            ureader, uwriter = await asyncio.open_connection(thost, tport)
        except OSError:
            cwriter.close()
            return
        try:
            await asyncio.gather(
                pump(creader, uwriter, HttpCounter(stats, response=False)),
                pump(ureader, cwriter, HttpCounter(stats, response=True)),
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        for w in (uwriter, cwriter):
            try:
                w.close()
            except (ConnectionError, OSError, RuntimeError):
                pass

    return handle


def write_stats(path, all_stats):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"time": time.time(), "routes": all_stats}, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stats", required=True, help="JSON file the counts are written to")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between stats writes")
    ap.add_argument("--route", action="append", required=True, help="NAME=LISTEN_PORT=TARGET_HOST:TARGET_PORT")
    args = ap.parse_args()

    all_stats = {}
    servers = []
    for r in args.route:
        name, lport, target = r.split("=", 2)
        thost, tport = target.rsplit(":", 1)
        st = new_stats(name, int(lport), target)
        all_stats[name] = st
        servers.append(await asyncio.start_server(make_handler(st, thost, int(tport)), "127.0.0.1", int(lport)))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    write_stats(args.stats, all_stats)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=args.every)
        except asyncio.TimeoutError:
            pass
        write_stats(args.stats, all_stats)
    for s in servers:
        s.close()
    write_stats(args.stats, all_stats)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
