"""What the Python benchmarks under bench/ share: the repository root and a free local port."""
import os
import socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def serve_exposition(body):
    """Serves GET /… with `body()` (bytes, the exposition text) on a free port, in a thread;
    returns the port."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except BrokenPipeError:
                pass

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def start_victoria_metrics(data_dir):
    """A real VictoriaMetrics (.receivers/bin) on a free port, storing in `data_dir`; returns
    (process, port). Give it a second or two before the first write."""
    import subprocess

    port = free_port()
    proc = subprocess.Popen([os.path.join(ROOT, ".receivers", "bin", "victoria-metrics"),
                             "-httpListenAddr", f"127.0.0.1:{port}", "-storageDataPath", data_dir,
                             "-loggerLevel", "ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port
