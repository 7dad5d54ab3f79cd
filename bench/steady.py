#!/usr/bin/env python3
"""Steady-state RSS and CPU of one scrape at N series every 2 s, remote-write into a real
VictoriaMetrics, for pushrelay binaries and vmagent side by side in one run (30 s each).

Usage: bench/steady.py N BINARY|vmagent [...]   (receivers from scripts/fetch-receivers.sh)
"""
import http.server, threading, subprocess, sys, time, os, socket, tempfile
RECEIVERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".receivers", "bin")
TMP = tempfile.mkdtemp(prefix="pushrelay-steady-")
n=int(sys.argv[1]); bins=sys.argv[2:]
body="".join(f'metric_{i%50}{{instance_id="host-{i}",zone="z{i%7}"}} {i}\n' for i in range(n)).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type","text/plain; version=0.0.4"); self.send_header("Content-Length",str(len(body))); self.end_headers()
        try: self.wfile.write(body)
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
        print(f"vmagent n={n}: steady RSS {r:.1f} MiB, HWM {h:.1f} MiB, CPU {c:.2f} s in 30 s"); continue
    d=f"{TMP}/st-{os.path.basename(b)}"; subprocess.run(["rm","-rf",d])
    cfg=f"{TMP}/{os.path.basename(b)}.toml"
    fd=os.open(cfg,os.O_WRONLY|os.O_CREAT|os.O_TRUNC,0o600)
    os.write(fd,f'[relay]\ninterval="2s"\nstate_dir="{d}"\n[[source]]\ntype="scrape"\nname="node"\nurl="http://127.0.0.1:{srv.server_address[1]}/metrics"\n[[sink]]\ntype="remote_write"\nname="vm"\nurl="http://127.0.0.1:{vp}/api/v1/write"\n'.encode()); os.close(fd)
    p=subprocess.Popen([b,"run","--config",cfg],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    r,h,c=measure(p); p.terminate(); p.wait()
    print(f"{os.path.basename(b)} n={n}: steady RSS {r:.1f} MiB, HWM {h:.1f} MiB, CPU {c:.2f} s in 30 s")
vm.terminate()
