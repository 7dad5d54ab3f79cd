//! Running the daemon for months, tried with the real binary and a real Prometheus: reload by
//! SIGHUP and by `pushrelay reload` (unchanged parts keep running without a gap, changed ones
//! are rebuilt, removed ones stopped, new ones started, a bad file refused), readiness that
//! tells the truth, and the status page (rendered in headless Chromium).

use crate::support;
use crate::support::{free_port, now};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fakes::Exporter;
use support::receivers::{wait_for, Receiver};

/// A daemon whose config file the test rewrites, with its stderr collected.
struct Daemon {
    child: Child,
    config: PathBuf,
    listen: String,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(dir: tempfile::TempDir, text: &str) -> Daemon {
        let config = dir.path().join("pushrelay.toml");
        std::fs::write(&config, text).unwrap();
        let listen = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = \""))
            .map(|l| l.trim_end_matches('"').to_string())
            .expect("a listen address");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .args(["run", "-c", config.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log: Arc<Mutex<String>> = Arc::default();
        let (mut err, l) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                l.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Daemon {
            child,
            config,
            listen,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("http://{}{path}", self.listen))
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    /// Rewrites the config and runs `pushrelay reload` against it.
    fn reload(&self, text: &str) -> std::process::Output {
        std::fs::write(&self.config, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .args(["reload", "-c", self.config.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// Waits for the log to hold `needle` `n` times.
    async fn wait_log(&self, needle: &str, n: usize) {
        let t0 = std::time::Instant::now();
        while self.log().matches(needle).count() < n {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{needle:?} not logged {n} time(s):\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(
    state: &Path,
    listen: &str,
    sources: &[(&str, &str)],
    rw: &str,
    batch_wait: &str,
) -> String {
    let mut t = format!(
        "[relay]\ninterval = \"1s\"\nstate_dir = \"{}\"\nlisten = \"{listen}\"\nready_window = \"10s\"\n\n",
        state.display()
    );
    for (name, url) in sources {
        t.push_str(&format!(
            "[[source]]\ntype = \"scrape\"\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"1s\"\n\n"
        ));
    }
    t.push_str(&format!(
        "[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{rw}\"\nbatch_wait = \"{batch_wait}\"\nmin_backoff = \"100ms\"\nmax_backoff = \"500ms\"\n"
    ));
    t
}

/// Raw sample timestamps (ms) Prometheus holds for `selector` over the last `secs`.
async fn timestamps(prom: &Receiver, selector: &str, secs: u64) -> Vec<i64> {
    let r = prom.query(&format!("{selector}[{secs}s]"), now()).await;
    let mut out: Vec<i64> = r
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .map(|v| (v[0].as_f64().unwrap() * 1000.0).round() as i64)
        .collect();
    out.sort();
    out
}

/// The value of the `/metrics` line of `name` whose labels hold `label` (e.g. `source="b"`).
fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn max_gap_ms(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// Reload by `pushrelay reload` (SIGHUP through the pid file): a new source starts, the
/// unchanged one and the sink go on without a gap, a bad file is refused with its location and
/// the old configuration keeps running, a removed source's series end at once.
#[tokio::test]
async fn reload_keeps_what_is_unchanged_and_refuses_a_bad_file() {
    let prom = Receiver::prometheus().await;
    let a = Exporter::start("# TYPE a_value gauge\na_value 1\n").await;
    let b = Exporter::start("# TYPE b_value gauge\nb_value 2\n").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let listen = format!("127.0.0.1:{}", free_port());
    let rw = prom.remote_write_url();
    let one = config(&state, &listen, &[("a", &a.url)], &rw, "200ms");
    let d = Daemon::start(dir, &one);
    let cur = |q: &'static str| {
        let prom = &prom;
        async move {
            let r = prom.query(q, now()).await;
            r.as_array()?.first()?["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()
        }
    };
    wait_for(Duration::from_secs(20), || cur("a_value")).await;
    assert!(state.join("pushrelay.pid").exists());

    // A second source: started, the first untouched.
    let two = config(
        &state,
        &listen,
        &[("a", &a.url), ("b", &b.url)],
        &rw,
        "200ms",
    );
    let out = d.reload(&two);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_log(
        "configuration reloaded: sources 1 kept, 0 changed, 1 added, 0 removed; sinks 1 kept",
        1,
    )
    .await;
    wait_for(Duration::from_secs(20), || cur("b_value")).await;

    // A broken file: refused with its position, nothing stops.
    let bad = format!("{two}\nthis is = = not toml\n");
    let out = d.reload(&bad);
    assert_eq!(
        out.status.code(),
        Some(2),
        "pushrelay reload checks the file first"
    );
    // Sent anyway (as a supervisor's SIGHUP would be): the daemon refuses it itself.
    std::fs::write(&d.config, &bad).unwrap();
    Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    d.wait_log("reload refused, the running configuration goes on: ", 1)
        .await;
    let log = d.log();
    assert!(log.contains("pushrelay.toml:"), "{log}");
    wait_for(Duration::from_secs(10), || async {
        let (_, m) = d.get("/metrics").await?;
        (metric(&m, "pushrelay_config_last_reload_successful", "")? == 0.0).then_some(())
    })
    .await;

    // Remove `a`: its series end (stale) while `b` goes on; the sink was never rebuilt, so
    // `b`'s samples have no gap.
    let t_reload = now();
    let only_b = config(&state, &listen, &[("b", &b.url)], &rw, "200ms");
    assert!(d.reload(&only_b).status.success());
    d.wait_log(
        "sources 1 kept, 0 changed, 0 added, 1 removed; sinks 1 kept",
        1,
    )
    .await;
    wait_for(Duration::from_secs(20), || async {
        let r = prom.query("a_value", now()).await;
        r.as_array()?.is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bs = timestamps(&prom, "b_value", (now() - t_reload) as u64 + 5).await;
    assert!(bs.len() >= 4, "{bs:?}");
    assert!(
        max_gap_ms(&bs) < 2_500,
        "a gap in b across the reload: {bs:?}"
    );
    let (_, m) = d.get("/metrics").await.unwrap();
    assert_eq!(
        metric(&m, "pushrelay_config_last_reload_successful", ""),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "pushrelay_source_up", "source=\"a\""),
        None,
        "{m}"
    );
    assert_eq!(
        metric(&m, "pushrelay_source_up", "source=\"b\""),
        Some(1.0),
        "{m}"
    );
}

/// A changed sink is rebuilt on the same queue: what was queued while the receiver was down
/// is delivered after the reload, in order, nothing lost.
#[tokio::test]
async fn a_rebuilt_sink_keeps_its_queue() {
    let mut prom = Receiver::prometheus().await;
    let a = Exporter::start("# TYPE a_value gauge\na_value 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let listen = format!("127.0.0.1:{}", free_port());
    let rw = prom.remote_write_url();
    let d = Daemon::start(
        dir,
        &config(&state, &listen, &[("a", &a.url)], &rw, "200ms"),
    );
    wait_for(Duration::from_secs(20), || async {
        let r = prom.query("a_value", now()).await;
        (!r.as_array()?.is_empty()).then_some(())
    })
    .await;
    let t0 = now();
    prom.stop().await;
    d.wait_log("offline", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The sink changes (another batch_wait) while its queue holds the outage's samples.
    let out = d.reload(&config(&state, &listen, &[("a", &a.url)], &rw, "300ms"));
    assert!(out.status.success());
    d.wait_log("sinks 0 kept, 1 changed, 0 added, 0 removed", 1)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    prom.restart().await;
    let t1 = now();
    // Every second from before the outage to after the reload is there.
    let started = std::time::Instant::now();
    loop {
        let ts = timestamps(&prom, "a_value", (now() - t0) as u64 + 10).await;
        if ts.last().is_some_and(|&t| t as f64 / 1000.0 > t1) && max_gap_ms(&ts) < 2_500 {
            assert!(ts.len() >= 6, "{ts:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "samples {ts:?} (t0 {t0}, t1 {t1})\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `/-/healthy` answers while the process runs; `/-/ready` only while every source is up and
/// every sink delivers, with one plain-text reason per failing part.
#[tokio::test]
async fn readiness_tells_the_truth() {
    let mut prom = Receiver::prometheus().await;
    let a = Exporter::start("# TYPE a_value gauge\na_value 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let listen = format!("127.0.0.1:{}", free_port());
    let rw = prom.remote_write_url();
    let d = Daemon::start(
        dir,
        &config(&state, &listen, &[("a", &a.url)], &rw, "200ms"),
    );
    wait_for(Duration::from_secs(20), || async {
        (d.get("/-/ready").await? == (200, "ready\n".to_string())).then_some(())
    })
    .await;
    a.set_status(500);
    prom.stop().await;
    let why = wait_for(Duration::from_secs(30), || async {
        let (code, body) = d.get("/-/ready").await?;
        (code == 503 && body.contains("sink rw: last delivered")).then_some(body)
    })
    .await;
    assert!(why.contains("source a: down: answered HTTP 500"), "{why}");
    assert_eq!(d.get("/-/healthy").await.unwrap().0, 200);
    assert_eq!(d.get("/healthz").await.unwrap(), (200, "ok\n".to_string()));
    // The status page says the same.
    let (code, page) = d.get("/").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        page.contains("NOT READY") && page.contains("OFFLINE") || page.contains("DOWN"),
        "{page}"
    );
    a.set_status(200);
    prom.restart().await;
    wait_for(Duration::from_secs(30), || async {
        (d.get("/-/ready").await?.0 == 200).then_some(())
    })
    .await;
}

/// Reads what a headless Chromium renders of `url`: the page's text (`--dump-dom`) and a
/// screenshot, read back by OCR (tesseract) for the key texts.
fn chromium(url: &str, dir: &Path) -> (String, String) {
    let bin = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: run scripts/fetch-browser.sh (Debian's chromium)");
    let common = |profile: &str| {
        let mut c = Command::new(bin);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=2",
            "--window-size=1100,900",
        ])
        .arg(format!("--user-data-dir={}", dir.join(profile).display()));
        c
    };
    let dom = common("p1").args(["--dump-dom", url]).output().unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let png = dir.join("status.png");
    let shot = common("p2")
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        shot.status.success() && png.exists(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let ocr = Command::new("tesseract")
        .arg(&png)
        .arg("stdout")
        .output()
        .expect(
            "tesseract is not installed: run scripts/fetch-browser.sh (Debian's tesseract-ocr)",
        );
    assert!(
        ocr.status.success(),
        "{}",
        String::from_utf8_lossy(&ocr.stderr)
    );
    // Keep the picture for a person to look at.
    if let Ok(keep) = std::env::var("PUSHRELAY_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&png, keep);
    }
    (
        String::from_utf8_lossy(&dom.stdout).into_owned(),
        String::from_utf8_lossy(&ocr.stdout).into_owned(),
    )
}

/// The status page as a browser shows it: each source and sink with its state, the recent
/// changes; small, with no script and no external asset.
#[tokio::test]
async fn the_status_page_renders_in_chromium() {
    let prom = Receiver::prometheus().await;
    let a = Exporter::start("# TYPE a_value gauge\na_value 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let shots = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let listen = format!("127.0.0.1:{}", free_port());
    let rw = prom.remote_write_url();
    let d = Daemon::start(
        dir,
        &config(
            &state,
            &listen,
            &[("node", &a.url), ("router", "http://127.0.0.1:9/")],
            &rw,
            "200ms",
        ),
    );
    wait_for(Duration::from_secs(20), || async {
        let (_, p) = d.get("/").await?;
        (p.contains(">online<") && p.contains("DOWN")).then_some(())
    })
    .await;
    let (_, html) = d.get("/").await.unwrap();
    assert!(html.len() < 8 * 1024, "{} bytes", html.len());
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "{html}"
    );
    let url = format!("http://{}/", d.listen);
    let (dom, seen) = tokio::task::spawn_blocking({
        let p = shots.path().to_path_buf();
        move || chromium(&url, &p)
    })
    .await
    .unwrap();
    for text in [
        "NOT READY",
        "Sources",
        "Sinks",
        "Recent changes",
        "node",
        "router",
        "online",
    ] {
        assert!(dom.contains(text), "{text} not rendered:\n{dom}");
    }
    let seen_flat = seen.replace('\n', " ");
    for text in ["NOT READY", "Sources", "Sinks", "router", "DOWN", "online"] {
        assert!(
            seen_flat.contains(text),
            "{text} not seen in the screenshot:\n{seen}"
        );
    }
}

/// Mistakes a newcomer makes get messages that say what to fix: TLS to a plain-HTTP port (a
/// real server's: Prometheus's), a receiver path that answers 404 (with the URL that was
/// asked).
#[tokio::test]
async fn messages_name_the_url_and_the_fix() {
    let prom = Receiver::prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pushrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[relay]\nstate_dir = \"{}\"\n\n[[source]]\ntype = \"scrape\"\nname = \"tls\"\nurl = \"https://{}/metrics\"\n\n[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{}/api/v1/writ\"\n",
            dir.path().join("state").display(),
            prom.base_url.trim_start_matches("http://"),
            prom.base_url
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushrelay"))
        .args(["once", "-c", cfg.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("this port speaks plain HTTP, not TLS: use http:// or the server's TLS port"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "asked {}/api/v1/writ: is that the right path?",
            prom.base_url
        )) && err.contains("remote-write URLs end in /api/v1/write"),
        "{err}"
    );
}

/// A refused TTN key is one log line, not the source's and the relay's both.
#[tokio::test]
async fn a_refused_ttn_key_is_logged_once() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let sim = pushrelay::sim::ttn::TtnSim::start(
        cancel.clone(),
        "NNSXS.RIGHT.KEY",
        pushrelay::sim::ttn::TtnSim::fleet("g-"),
    )
    .await
    .unwrap();
    let prom = Receiver::prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let listen = format!("127.0.0.1:{}", free_port());
    let text = format!(
        "[relay]\ninterval = \"1s\"\nstate_dir = \"{}\"\nlisten = \"{listen}\"\n\n[[source]]\ntype = \"ttn\"\nname = \"ttn\"\nurl = \"{}\"\napi_key = \"NNSXS.WRONG.KEY\"\ninterval = \"1s\"\n\n[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{}\"\n",
        state.display(),
        sim.url,
        prom.remote_write_url()
    );
    let d = Daemon::start(dir, &text);
    // Three polls or more, all refused.
    wait_for(Duration::from_secs(20), || async {
        let (_, m) = d.get("/metrics").await?;
        (metric(&m, "pushrelay_source_up", "source=\"ttn\"")? == 0.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = d.log();
    assert_eq!(log.matches("the API key was refused").count(), 1, "{log}");
    cancel.cancel();
}
