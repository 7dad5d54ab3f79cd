//! `pushrelay demo`: the real relay pipeline against a simulated exporter and a built-in
//! receiver (or a real remote-write URL), then a table of what arrived.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::report::format_value;
use crate::self_metrics::SelfMetrics;
use crate::sim::receiver::{serve_receiver, Received, Store};

/// What `pushrelay demo` was asked for (the command line's `demo` flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Poll cycles to run before exiting; 0 runs until Ctrl-C.
    pub cycles: u32,
    /// Seconds between polls.
    pub interval_secs: u64,
    /// Push to this remote-write URL instead of the built-in receiver.
    pub remote_write_url: Option<String>,
    /// `user:password` for `remote_write_url`.
    pub basic_auth: Option<String>,
}

/// A temporary directory removed when dropped (the standard library has none; tempfile is a
/// dev-dependency only).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir_for_demo() -> anyhow::Result<TempDir> {
    let p = std::env::temp_dir().join(format!("pushrelay-demo-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(TempDir(p))
}

/// Quotes a string as a TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub async fn run(a: DemoOptions) -> ExitCode {
    match run_inner(a).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run_inner(a: DemoOptions) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let sim = TcpListener::bind("127.0.0.1:0").await?;
    let sim_addr = sim.local_addr()?;
    tokio::spawn(crate::sim::exposition::serve_exposition(
        sim,
        cancel.clone(),
        7,
    ));

    let interval = a.interval_secs.max(1);
    // The simulated upstreams of the other source types, each polled on the demo's interval.
    let upstreams = demo_upstreams(&cancel, interval).await?;
    // The demo's queue lives in a temporary directory, removed on exit.
    let state = tempdir_for_demo()?;
    let mut toml_text = format!(
        "[relay]\ninterval = \"{interval}s\"\nexternal_labels = {{ site = \"demo\" }}\nshutdown_timeout = \"10s\"\nstate_dir = {}\n\n\
         [[source]]\ntype = \"scrape\"\nname = \"demo-exporter\"\nurl = {}\n\n",
        q(&state.0.to_string_lossy()),
        q(&format!("http://{sim_addr}/metrics"))
    );
    for u in &upstreams {
        toml_text.push_str(&u.source_toml);
        toml_text.push('\n');
    }
    let showcase: Vec<String> = upstreams.iter().flat_map(|u| u.showcase.clone()).collect();
    let store: Store = Arc::default();
    let receiver_addr = match &a.remote_write_url {
        Some(url) => {
            toml_text.push_str(&format!(
                "[[sink]]\ntype = \"remote_write\"\nname = \"remote\"\nurl = {}\nbatch_wait = \"1s\"\n",
                q(url)
            ));
            if let Some(ba) = &a.basic_auth {
                let (user, pass) = ba
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--basic-auth must be user:password"))?;
                toml_text.push_str(&format!(
                    "basic_auth = {{ username = {}, password = {} }}\n",
                    q(user),
                    q(pass)
                ));
            }
            None
        }
        None => {
            let rx = TcpListener::bind("127.0.0.1:0").await?;
            let addr = rx.local_addr()?;
            tokio::spawn(serve_receiver(rx, cancel.clone(), store.clone()));
            toml_text.push_str(&format!(
                "[[sink]]\ntype = \"remote_write\"\nname = \"receiver\"\nurl = {}\nbatch_wait = \"500ms\"\n\n\
                 [[sink]]\ntype = \"pushgateway\"\nname = \"pushgateway\"\nurl = {}\nrelay = \"demo\"\n",
                q(&format!("http://{addr}/api/v1/write")),
                q(&format!("http://{addr}"))
            ));
            Some(addr)
        }
    };
    let cfg = crate::config::parse(&toml_text, "(demo)", &|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    crate::outln!("pushrelay demo: polling a simulated exporter at http://{sim_addr}/metrics every {interval}s");
    for u in &upstreams {
        crate::outln!("  and {}", u.banner);
    }
    match (&a.remote_write_url, receiver_addr) {
        (Some(url), _) => crate::outln!("pushing by remote-write to {url}"),
        (None, Some(addr)) => crate::outln!(
            "pushing by remote-write and to a Pushgateway-compatible receiver at http://{addr}"
        ),
        (None, None) => {}
    }
    let metrics = Arc::new(SelfMetrics::default());
    let relay_cancel = CancellationToken::new();
    let env = crate::relay::Env {
        metrics: metrics.clone(),
        ..Default::default()
    };
    let relay = tokio::spawn(crate::relay::run_with(cfg, relay_cancel.clone(), env));

    if a.cycles == 0 {
        crate::outln!("running until Ctrl-C");
        let c = relay_cancel.clone();
        tokio::spawn(crate::signals::cancel_on_signal(c));
        let mut tick = tokio::time::interval(Duration::from_secs(interval));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => progress(&a, &store, &metrics),
                _ = relay_cancel.cancelled() => break,
            }
        }
    } else {
        for cycle in 1..=a.cycles {
            let wait = if cycle == 1 {
                Duration::from_millis(interval * 500)
            } else {
                Duration::from_secs(interval)
            };
            tokio::time::sleep(wait).await;
            crate::out!("cycle {cycle}/{}: ", a.cycles);
            progress(&a, &store, &metrics);
        }
        relay_cancel.cancel();
    }
    relay.await??;
    cancel.cancel();

    if a.remote_write_url.is_some() {
        let sent = metrics.sent_total("remote");
        let dropped = metrics.dropped_total("remote");
        crate::outln!("\nthe receiver accepted {sent} samples; {dropped} were refused or dropped");
        return Ok(if sent > 0 && dropped == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let got = store.lock().unwrap_or_else(|p| p.into_inner()).clone();
    crate::out!("{}", table(&got, &showcase));
    let ok = !got.series.is_empty() && !got.groups.is_empty() && got.bad_requests.is_empty();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Starts the simulated upstreams of the ttn, emqx, linkhub and ttn_devices sources.
async fn demo_upstreams(
    cancel: &CancellationToken,
    interval_secs: u64,
) -> anyhow::Result<Vec<crate::sim::DemoUpstream>> {
    let _ = (cancel, interval_secs);
    #[allow(unused_mut)]
    let mut v = Vec::new();
    v.push(crate::sim::ttn::start_demo(cancel.clone(), interval_secs).await?);
    v.push(crate::sim::emqx::start_demo(cancel.clone(), interval_secs).await?);
    v.push(crate::sim::linkhub::start_demo(cancel.clone(), interval_secs).await?);
    v.push(crate::sim::ttn_devices::start_demo(cancel.clone(), interval_secs).await?);
    Ok(v)
}

fn progress(a: &DemoOptions, store: &Store, metrics: &SelfMetrics) {
    if a.remote_write_url.is_some() {
        crate::outln!(
            "{} samples accepted, {} refused so far",
            metrics.sent_total("remote"),
            metrics.dropped_total("remote")
        );
    } else {
        let r = store.lock().unwrap_or_else(|p| p.into_inner());
        let samples: usize = r.series.values().map(|v| v.len()).sum();
        crate::outln!(
            "receiver has {samples} samples in {} series from {} remote-write requests, {} pushgateway groups",
            r.series.len(),
            r.remote_write_requests,
            r.groups.len()
        );
    }
}

/// The receiver's contents as a table: totals, a selection of series, Pushgateway groups.
pub fn table(r: &Received, showcase: &[String]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let samples: usize = r.series.values().map(|v| v.len()).sum();
    let _ = writeln!(
        o,
        "\nremote-write: {} requests, {samples} samples in {} series, {} stale markers, {:.2} bytes per sample on the wire",
        r.remote_write_requests,
        r.series.len(),
        r.stale_markers,
        r.remote_write_bytes as f64 / samples.max(1) as f64
    );
    let wanted = [
        "up{",
        "scrape_duration_seconds{",
        "scrape_samples_scraped{",
        "node_load1{",
        "sensor_temperature_celsius{building=\"main\",instance",
        "device_bytes_total{device=\"dev-0\"",
        "http_request_duration_seconds_count{handler=\"/api\"",
        "job:requests:rate5m{",
        "battery_voltage_volts{",
        "flapping_link_up{",
        "pushrelay_samples_sent_total{",
        "pushrelay_source_up{",
    ];
    let rows: Vec<(&String, &Vec<(i64, f64)>)> = r
        .series
        .iter()
        .filter(|(k, _)| wanted.iter().any(|w| k.starts_with(w)))
        .take(18)
        .chain(
            r.series
                .iter()
                .filter(|(k, _)| showcase.iter().any(|w| k.starts_with(w.as_str()))),
        )
        .collect();
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(6)
        .min(110);
    let _ = writeln!(o, "  {:<w$}  SAMPLES  LAST VALUE", "SERIES (a selection)");
    for (k, v) in rows {
        let shown: String = if k.chars().count() > w {
            k.chars().take(w - 1).chain(['…']).collect()
        } else {
            k.clone()
        };
        let last = v.last().map(|(_, x)| *x).unwrap_or(f64::NAN);
        let last = if crate::model::is_stale_nan(last) {
            "stale marker".to_string()
        } else {
            format_value(last)
        };
        let _ = writeln!(o, "  {shown:<w$}  {:>7}  {last}", v.len());
    }
    let _ = writeln!(
        o,
        "\npushgateway: {} pushes, {} groups",
        r.pushes,
        r.groups.len()
    );
    for (g, body) in &r.groups {
        let n = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        let _ = writeln!(o, "  {g:<40}  {n} samples");
    }
    if !r.bad_requests.is_empty() {
        let _ = writeln!(o, "\nrefused requests: {:?}", r.bad_requests);
    }
    o
}
