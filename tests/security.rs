//! What an attacker or a careless setup could get out of the relay, tried with the real binary:
//! secrets followed through redirects or to hosts named by API data, the `listen` server
//! flooded, secrets in URLs, config errors and files, settings that leak, start-up refusals.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pushrelay::http::server::{response, serve};
use pushrelay::sim::ttn::{SimGateway, TtnSim};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "s3cret-VALUE-never-shown";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pushrelay"))
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = crate::support::write_config(dir, text);
    // Private by default here; the test about readable files loosens it itself.
    set_mode(&p, 0o600);
    p
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

async fn run_bin(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        bin()
            .args(&args)
            .env("NO_COLOR", "1")
            .env("PR_SECRET", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One request a [`Capture`] server saw.
#[derive(Debug, Clone)]
struct Seen {
    #[allow(dead_code)] // shown in assertion messages
    method: String,
    #[allow(dead_code)]
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A server that records every request and answers with `answer`.
struct Capture {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _cancel: tokio_util::sync::DropGuard,
}

impl Capture {
    async fn start(
        answer: impl Fn(&Seen) -> pushrelay::http::server::Response + Send + Sync + 'static,
    ) -> Capture {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let cancel = CancellationToken::new();
        let (s, answer) = (seen.clone(), Arc::new(answer));
        tokio::spawn(serve(l, cancel.clone(), move |req| {
            let (s, answer) = (s.clone(), answer.clone());
            async move {
                let r = Seen {
                    method: req.method().to_string(),
                    path: req.uri().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                        .collect(),
                    body: req.body().to_vec(),
                };
                let resp = answer(&r);
                s.lock().unwrap().push(r);
                resp
            }
        }));
        Capture {
            addr,
            seen,
            _cancel: cancel.drop_guard(),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Whether `needle` appears in any header value or body it received.
    fn got(&self, needle: &str) -> bool {
        self.seen().iter().any(|s| {
            s.headers.iter().any(|(_, v)| v.contains(needle))
                || String::from_utf8_lossy(&s.body).contains(needle)
        })
    }
}

/// A server answering every request with a redirect to `target`.
async fn redirector(target: String) -> Capture {
    Capture::start(move |_| {
        let mut r = response(307, "text/plain", "moved\n");
        r.headers_mut()
            .insert("location", target.parse().expect("a header value"));
        r
    })
    .await
}

/// Custom secret headers, LinkHub's key and its login body must not follow a redirect to
/// another host (reqwest's default policy would re-send all but `Authorization`); the error
/// names where the redirect pointed.
#[tokio::test]
async fn redirects_are_never_followed_and_say_where_they_pointed() {
    let elsewhere = Capture::start(|_| response(200, "text/plain", "a 1\n")).await;
    // "localhost" is another host than the 127.0.0.1 the relay was pointed at.
    let target = format!(
        "http://localhost:{}/stolen?token=abc",
        elsewhere.addr.port()
    );
    let scrape_redirect = redirector(target.clone()).await;
    let router_redirect = redirector(target.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"[relay]
state_dir = "{state}"

[[source]]
type = "scrape"
name = "node"
url = "http://{scrape}/metrics"
headers = {{ "X-Api-Key" = "${{PR_SECRET}}" }}

[[source]]
type = "linkhub"
name = "router"
url = "http://{router}"
request_key = "${{PR_SECRET}}"
username = "admin"
password = "${{PR_SECRET}}"
"#,
            state = dir.path().join("state").display(),
            scrape = scrape_redirect.addr,
            router = router_redirect.addr,
        ),
    );
    let out = run_bin(&["print", "-c", cfg.to_str().unwrap()]).await;
    let text = all_output(&out);
    assert!(!out.status.success(), "{text}");
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    assert!(!scrape_redirect.seen().is_empty() && !router_redirect.seen().is_empty());
    assert!(
        text.contains(&format!(
            "redirected to http://localhost:{}/stolen?token=redacted",
            elsewhere.addr.port()
        )),
        "{text}"
    );
    assert!(text.contains("follows no redirects"), "{text}");
    assert!(
        !text.contains(SECRET) && !text.contains("token=abc"),
        "{text}"
    );
}

/// The TTN key goes only to the configured host and the deployment's clusters: a gateway whose
/// `gateway_server_address` names another host is reported and not asked.
#[tokio::test]
async fn the_ttn_key_never_goes_to_a_host_named_by_a_gateway() {
    const KEY: &str = "NNSXS.SECURITYTEST.DONOTSEND";
    let cancel = CancellationToken::new();
    let thief = Capture::start(|_| response(200, "application/json", "{}")).await;
    let mut evil = SimGateway::new("evil-gw", Some("0000000000000BAD"));
    evil.server_address = Some(format!("http://localhost:{}", thief.addr.port()));
    let good = SimGateway::new("good-gw", Some("0000000000000600"));
    let sim = TtnSim::start(cancel.clone(), KEY, vec![good, evil])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[relay]\nstate_dir = \"{}\"\n\n[[source]]\ntype = \"ttn\"\nname = \"ttn\"\nurl = \"{}\"\napi_key = \"{KEY}\"\n",
        dir.path().join("state").display(),
        sim.url
    );
    let cfg = write_config(dir.path(), &text);
    let out = run_bin(&["print", "-c", cfg.to_str().unwrap()]).await;
    let all = all_output(&out);
    assert!(out.status.success(), "{all}");
    assert!(!thief.got(KEY), "the key reached a foreign host");
    assert!(thief.seen().is_empty(), "{:?}", thief.seen());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "ttn_gateway_connected{gateway_eui=\"0000000000000600\",gateway_id=\"good-gw\""
        ),
        "{stdout}"
    );
    assert!(
        !stdout
            .lines()
            .any(|l| l.starts_with("ttn_gateway_connected{") && l.contains("evil-gw")),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("evil-gw")).collect();
    assert_eq!(lines.len(), 1, "{all}");
    assert!(
        lines[0].contains(&format!("localhost:{}", thief.addr.port()))
            && lines[0].contains("allowed_stats_hosts"),
        "{all}"
    );

    // Allowed explicitly, it is asked (with the key, since the user said so).
    let allowed = format!(
        "{text}allowed_stats_hosts = [\"localhost:{}\"]\n",
        thief.addr.port()
    );
    let cfg = write_config(dir.path(), &allowed);
    let out = run_bin(&["print", "-c", cfg.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(thief.got(KEY));
    cancel.cancel();
}

/// Reads `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A daemon with `listen`, killed when dropped.
struct Daemon {
    child: std::process::Child,
    listen: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let cfg = write_config(
            dir.path(),
            &format!(
                "[relay]\ninterval = \"1s\"\nlisten = \"{listen}\"\nstate_dir = \"{}\"\n",
                dir.path().join("state").display()
            ),
        );
        let child = bin()
            .args(["run", "-c", cfg.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            listen,
            _dir: dir,
        };
        let t0 = Instant::now();
        while d.get("/healthz").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "daemon never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// A plain GET; the status line and body, or `None` if the connection failed.
    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.listen, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        (!out.is_empty()).then_some(out)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `listen` faces the network: any method but GET/HEAD is refused without reading a body,
/// slow request heads are cut off, connections are capped, and it keeps answering.
#[tokio::test]
async fn the_listen_server_cannot_be_exhausted() {
    let d = Daemon::start();
    let pid = d.child.id();
    let before = rss_kib(pid);

    // Six 60 MB POSTs (the testers' attack took RSS to 252 MB): refused, bodies unread.
    for _ in 0..6 {
        let mut s = TcpStream::connect(d.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n"
        )
        .unwrap();
        // Send a part of the body; the answer comes without waiting for the rest.
        let _ = s.write_all(&vec![b'x'; 1 << 20]);
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 405"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("allow: get, head"),
            "{head}"
        );
    }
    // A GET with a body is refused too.
    let mut s = TcpStream::connect(d.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"));
    let after = rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );

    // 200 connections that never finish their request head.
    let slow: Vec<TcpStream> = (0..200)
        .filter_map(|_| {
            let mut s = TcpStream::connect(d.listen).ok()?;
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
            Some(s)
        })
        .collect();
    // The server still answers within its cap once the slow heads time out (a few seconds),
    // and the over-cap connections were closed at once.
    let t0 = Instant::now();
    let answered = loop {
        if let Some(r) = d.get("/metrics") {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no answer while flooded"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.contains("pushrelay_build_info"), "{answered}");
    // Every slow connection is closed by the server (EOF) within the header timeout.
    let t0 = Instant::now();
    let mut closed = 0;
    for mut s in slow {
        let left = Duration::from_secs(15).saturating_sub(t0.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut b = [0u8; 512];
        // EOF, or a reset (an over-cap connection closed with its request unread): closed.
        // A timeout means the server kept it open.
        match s.read(&mut b) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            _ => closed += 1,
        }
    }
    assert_eq!(closed, 200, "slow connections left open");
    // The descriptors are back: the daemon holds few sockets now.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(fds < 64, "{fds} descriptors still open");
    // HEAD answers like GET, without a body.
    let mut s = TcpStream::connect(d.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 200") && !out.contains("ok\n"),
        "{out}"
    );
}

/// Tokens passed in a URL's query never appear in `once` output, `config` output or the
/// daemon's offline log line.
#[tokio::test]
async fn query_tokens_are_redacted_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"[relay]
interval = "1s"
state_dir = "{state}"
shutdown_timeout = "1s"

[[source]]
type = "scrape"
name = "node"
url = "http://127.0.0.1:{port}/metrics?token=QTOKEN1"

[[sink]]
type = "remote_write"
name = "rw"
url = "http://127.0.0.1:{port}/api/v1/write?api_key=QTOKEN2"
min_backoff = "50ms"
max_backoff = "100ms"
"#,
            state = dir.path().join("state").display()
        ),
    );
    let c = cfg.to_str().unwrap();
    for args in [vec!["config", "-c", c], vec!["once", "-c", c]] {
        let out = run_bin(&args).await;
        let text = all_output(&out);
        assert!(!text.contains("QTOKEN"), "{args:?}: {text}");
        assert!(
            text.contains("token=redacted") || text.contains("failed"),
            "{text}"
        );
    }
    let mut child = bin()
        .args(["run", "-c", c])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = reader.join().unwrap();
    assert!(log.contains("offline"), "{log}");
    assert!(!log.contains("QTOKEN"), "{log}");
}

/// A config type error on a secret-bearing key does not echo the value.
#[tokio::test]
async fn config_errors_never_echo_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("basic_auth", format!("\"user:{SECRET}\"")),
        ("bearer_token", format!("[\"{SECRET}\"]")),
        (
            "headers",
            format!("{{ \"Authorization\" = [\"{SECRET}\"] }}"),
        ),
    ] {
        let cfg = write_config(
            dir.path(),
            &format!(
                "[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"http://127.0.0.1:9/w\"\n{key} = {value}\n"
            ),
        );
        let out = run_bin(&["config", "-c", cfg.to_str().unwrap()]).await;
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains("pushrelay.toml:5:"), "{text}");
        assert!(!text.contains(SECRET), "{key}: {text}");
    }
}

/// Settings that work but leak say so once at start-up; the file's own permissions too.
#[tokio::test]
async fn risky_settings_warn_once_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[[sink]]
type = "remote_write"
name = "cloud"
url = "http://203.0.113.7:9090/api/v1/write"
bearer_token = "{SECRET}"
tls = {{ insecure_skip_verify = true }}

[[sink]]
type = "remote_write"
name = "local"
url = "http://127.0.0.1:9090/api/v1/write"
bearer_token = "${{PR_SECRET}}"
"#
    );
    let cfg = write_config(dir.path(), &text);
    set_mode(&cfg, 0o644);
    let out = run_bin(&["config", "-c", cfg.to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let warn = |needle: &str| err.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(warn("insecure_skip_verify"), 1, "{err}");
    assert_eq!(warn("clear text over http:// to 203.0.113.7"), 1, "{err}");
    assert_eq!(warn("clear text over http:// to 127.0.0.1"), 0, "{err}");
    assert_eq!(warn("other users can read it"), 1, "{err}");
    assert!(!err.contains(SECRET));
    // Private file: no warning about it.
    set_mode(&cfg, 0o640);
    let out = run_bin(&["config", "-c", cfg.to_str().unwrap()]).await;
    assert!(!String::from_utf8_lossy(&out.stderr).contains("other users can read it"));
}

/// What is refused at start-up, naming the key: a CA file with no certificate, a name that
/// would put a queue outside `state_dir`.
#[tokio::test]
async fn bad_ca_files_and_escaping_names_fail_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "this is not a certificate\n").unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"https://127.0.0.1:9/w\"\ntls = {{ ca_file = \"{}\" }}\n",
            ca.display()
        ),
    );
    let out = run_bin(&["config", "-c", cfg.to_str().unwrap()]).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("sink.rw.tls.ca_file") && text.contains("holds no PEM certificate"),
        "{text}"
    );
    for name in ["..", ".hidden", "."] {
        let cfg = write_config(
            dir.path(),
            &format!("[[sink]]\ntype = \"remote_write\"\nname = \"{name}\"\nurl = \"http://127.0.0.1:9/w\"\n"),
        );
        let out = run_bin(&["config", "-c", cfg.to_str().unwrap()]).await;
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {text}");
        assert!(
            text.contains("pushrelay.toml:3:") && text.contains("invalid name"),
            "{text}"
        );
    }
}

/// A source's carried state, the queue and the pid file are private to the relay's user.
#[tokio::test]
async fn state_files_are_private() {
    let cancel = CancellationToken::new();
    let sim = TtnSim::start(cancel.clone(), "NNSXS.K", TtnSim::fleet("gw"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[relay]\nstate_dir = \"{}\"\n\n[[source]]\ntype = \"ttn\"\nname = \"ttn\"\nurl = \"{}\"\napi_key = \"NNSXS.K\"\n",
            state.display(),
            sim.url
        ),
    );
    let out = run_bin(&["once", "-c", cfg.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", all_output(&out));
    let file = state.join("sources").join("ttn.json");
    assert!(file.exists());
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(mode_of(&state.join("sources")), 0o700);

    // The daemon's queue (the receiver is down, so batches stay on disk) and its pid file.
    std::fs::remove_dir_all(&state).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[relay]\n",
        "[relay]\ninterval = \"1s\"\nshutdown_timeout = \"1s\"\n",
    ) + &format!(
        "\n[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"http://127.0.0.1:{port}/w\"\nbatch_wait = \"100ms\"\nbuffer = {{ fsync = \"always\" }}\n"
    );
    let cfg = write_config(dir.path(), &text);
    let mut child = bin()
        .args(["run", "-c", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let queue = state.join("rw");
    let t0 = Instant::now();
    let segments = loop {
        let segs: Vec<PathBuf> = std::fs::read_dir(&queue)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if segs
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "seg"))
        {
            break segs;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no queue files: {segs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mode_of(&state.join("pushrelay.pid")), 0o600);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(mode_of(&state), 0o700);
    assert_eq!(mode_of(&queue), 0o700);
    for p in segments.iter().filter(|p| p.exists()) {
        assert_eq!(mode_of(p), 0o600, "{}", p.display());
    }
    assert!(
        !state.join("pushrelay.pid").exists(),
        "the pid file goes with the daemon"
    );
    cancel.cancel();
}
