#!/usr/bin/env python3
"""Steady-state RSS and CPU of one scrape at N series every 2 s, remote-write into a real
VictoriaMetrics, for pushrelay binaries and vmagent side by side in one run (30 s each).

Usage: bench/steady.py [--shape flat|node] N BINARY|vmagent [...]   (receivers from
scripts/fetch-receivers.sh)
  flat (default): 50 names x 2 labels, values fixed; node: bench/node_like.py's node-exporter
  shape (many families with HELP/TYPE, long label sets, values changing every scrape; the body
  is rendered again every 2 s, off the request path).
"""
import http.server, threading, subprocess, sys, time, os, socket, tempfile
RECEIVERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".receivers", "bin")
TMP = tempfile.mkdtemp(prefix="pushrelay-steady-")
args=sys.argv[1:]
shape="flat"
if args[:1]==["--shape"]:
    shape=args[1]; args=args[2:]
n=int(args[0]); bins=args[1:]
if shape=="flat":
    body="".join(f'metric_{i%50}{{instance_id="host-{i}",zone="z{i%7}"}} {i}\n' for i in range(n)).encode()
elif shape=="node":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import node_like, random
    node_series=node_like.build_series(n, random.Random(1))
    body=node_like.render(node_series, 1)
    def rerender():
        global body
        while True:
            time.sleep(2)
            body=node_like.render(node_series, 1)
    threading.Thread(target=rerender,daemon=True).start()
else:
    sys.exit(f"steady: unknown shape {shape!r} (flat or node)")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b=body
        self.send_response(200); self.send_header("Content-Type","text/plain; version=0.0.4"); self.send_header("Content-Length",str(len(b))); self.end_headers()
        try: self.wfile.write(b)
        except BrokenPipeError: pass
    def log_message(self,*a): pass
srv=http.server.ThreadingHTTPServer(("127.0.0.1",0),H); threading.Thread(target=srv.serve_forever,daemon=True).start()
def port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
vp=port(); vm=subprocess.Popen([os.path.join(RECEIVERS, "victoria-metrics"),"-httpListenAddr",f"127.0.0.1:{vp}","-storageDataPath",TMP + "/vmdata","-loggerLevel","ERROR"],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(2)
def measure(p):
    rss=[]
    for _ in range(20):
        time.sleep(1.5)
        st=open(f"/proc/{p.pid}/status").read()
        rss.append(int([l for l in st.splitlines() if l.startswith("VmRSS")][0].split()[1])/1024)
    hwm=int([l for l in open(f"/proc/{p.pid}/status").read().splitlines() if l.startswith("VmHWM")][0].split()[1])/1024
    cpu=sum(int(x) for x in open(f"/proc/{p.pid}/stat").read().split(")")[1].split()[11:13])/os.sysconf("SC_CLK_TCK")
    return sorted(rss[10:])[5], hwm, cpu
for b in bins:
    if b=="vmagent":
        open(TMP + "/vma.yml","w").write(f"scrape_configs:\n- job_name: node\n  scrape_interval: 2s\n  static_configs:\n  - targets: ['127.0.0.1:{srv.server_address[1]}']\n")
        subprocess.run(["rm","-rf",TMP + "/vmadata"])
        p=subprocess.Popen([os.path.join(RECEIVERS, "vmagent"),"-promscrape.config",TMP + "/vma.yml",f"-remoteWrite.url=http://127.0.0.1:{vp}/api/v1/write","-remoteWrite.tmpDataPath",TMP + "/vmadata","-httpListenAddr",f"127.0.0.1:{port()}","-loggerLevel","ERROR"],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
        r,h,c=measure(p); p.terminate(); p.wait()
        print(f"vmagent {shape} n={n}: steady RSS {r:.1f} MiB, HWM {h:.1f} MiB, CPU {c:.2f} s in 30 s"); continue
    d=f"{TMP}/st-{os.path.basename(b)}"; subprocess.run(["rm","-rf",d])
    cfg=f"{TMP}/{os.path.basename(b)}.toml"
    fd=os.open(cfg,os.O_WRONLY|os.O_CREAT|os.O_TRUNC,0o600)
    os.write(fd,f'[relay]\ninterval="2s"\nstate_dir="{d}"\n[[source]]\ntype="scrape"\nname="node"\nurl="http://127.0.0.1:{srv.server_address[1]}/metrics"\n[[sink]]\ntype="remote_write"\nname="vm"\nurl="http://127.0.0.1:{vp}/api/v1/write"\n'.encode()); os.close(fd)
    p=subprocess.Popen([b,"run","--config",cfg],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    r,h,c=measure(p); p.terminate(); p.wait()
    print(f"{os.path.basename(b)} {shape} n={n}: steady RSS {r:.1f} MiB, HWM {h:.1f} MiB, CPU {c:.2f} s in 30 s")
vm.terminate()
