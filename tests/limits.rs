//! Rate limits and queue bounds of the remote-write sink, against the built-in receiver.
//! Assertions are upper bounds on what may arrive in a window, so a slow machine cannot make
//! them fail (it only sends less).

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pushrelay::sim::receiver::{serve_receiver, Store};
use support::fakes::{start_relay, Exporter};
use tokio_util::sync::CancellationToken;

/// 300 series in one family.
fn many_series() -> String {
    let mut s = String::from("# TYPE g gauge\n");
    for i in 0..300 {
        s.push_str(&format!("g{{i=\"{i}\"}} {i}\n"));
    }
    s
}

async fn receiver() -> (String, Store, CancellationToken) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
    let store: Store = Arc::default();
    let cancel = CancellationToken::new();
    tokio::spawn(serve_receiver(l, cancel.clone(), store.clone()));
    (url, store, cancel)
}

fn config(source: &str, sink: &str, extra: &str) -> String {
    format!(
        "[relay]\ninterval = \"1s\"\nshutdown_timeout = \"1s\"\n[[source]]\ntype = \"scrape\"\nname = \"s\"\nurl = \"{source}\"\n\
         [[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"{sink}\"\nbatch_wait = \"100ms\"\n{extra}\n"
    )
}

#[tokio::test]
async fn requests_per_second_is_respected() {
    let exporter = Exporter::start(&many_series()).await;
    let (url, store, rx_cancel) = receiver().await;
    // 300+ samples per scrape in batches of 10 would be 30+ requests per second unlimited.
    let (cancel, h, _) = start_relay(&config(
        &exporter.url,
        &url,
        "max_samples_per_send = 10\nrate_limit = { requests_per_second = 2.0 }",
    ));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = store.lock().unwrap().remote_write_requests;
    let allowed = (t0.elapsed().as_secs_f64() * 2.0).ceil() as u64 + 1;
    assert!(n >= 1, "something was sent");
    assert!(
        n <= allowed,
        "{n} requests in {:?}, limit allows {allowed}",
        t0.elapsed()
    );
    cancel.cancel();
    let _ = h.await;
    rx_cancel.cancel();
}

#[tokio::test]
async fn samples_per_second_is_respected() {
    let exporter = Exporter::start(&many_series()).await;
    let (url, store, rx_cancel) = receiver().await;
    let (cancel, h, _) = start_relay(&config(
        &exporter.url,
        &url,
        "max_samples_per_send = 50\nrate_limit = { samples_per_second = 100 }",
    ));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got: usize = store.lock().unwrap().series.values().map(|v| v.len()).sum();
    // Burst is max(100, 50) = 100 samples, then 100 per second.
    let allowed = (t0.elapsed().as_secs_f64() * 100.0).ceil() as usize + 100;
    assert!(got >= 50, "something was sent");
    assert!(
        got <= allowed,
        "{got} samples in {:?}, limit allows {allowed}",
        t0.elapsed()
    );
    cancel.cancel();
    let _ = h.await;
    rx_cancel.cancel();
}

#[tokio::test]
async fn queue_is_bounded_and_drops_oldest_while_receiver_is_down() {
    let exporter = Exporter::start(&many_series()).await;
    // Nothing listens here: every send fails with a network error and is retried.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (cancel, h, metrics) = start_relay(&config(
        &exporter.url,
        &format!("http://{dead}/api/v1/write"),
        "max_samples_per_send = 100\nmax_queued_samples = 1000\nmin_backoff = \"50ms\"\nmax_backoff = \"100ms\"",
    ));
    support::receivers::wait_for(Duration::from_secs(20), || async {
        (metrics.dropped_total("rw") > 0).then_some(())
    })
    .await;
    let fams = metrics.families(pushrelay::clock::system_now_ms());
    let queue = fams
        .iter()
        .find(|f| f.name == "pushrelay_queue_samples")
        .unwrap();
    assert!(
        queue.samples[0].value <= 1000.0,
        "queue stays within its bound"
    );
    let dropped = fams
        .iter()
        .find(|f| f.name == "pushrelay_samples_dropped_total")
        .unwrap();
    assert_eq!(dropped.samples[0].labels.get("reason"), Some("buffer_full"));
    let retries = fams
        .iter()
        .find(|f| f.name == "pushrelay_send_retries_total")
        .unwrap();
    assert!(retries.samples[0].value > 0.0);
    cancel.cancel();
    let _ = h.await;
}

#[tokio::test]
async fn scrape_body_size_and_time_are_limited() {
    let big = Exporter::start(&many_series()).await;
    let slow = Exporter::start("x 1\n").await;
    slow.set_delay(Duration::from_secs(3));
    let cfg = format!(
        "[[source]]\ntype = \"scrape\"\nname = \"big\"\nurl = \"{}\"\nbody_size_limit = \"1KiB\"\n\
         [[source]]\ntype = \"scrape\"\nname = \"slow\"\nurl = \"{}\"\ntimeout = \"300ms\"\n",
        big.url, slow.url
    );
    let cfg = pushrelay::config::parse(&cfg, "t.toml", &|_| None).unwrap();
    let t0 = Instant::now();
    let r = pushrelay::relay::poll_all_once(&cfg, pushrelay::relay::OneShot::Push)
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the timeout cut the slow scrape"
    );
    assert!(
        r[0].error
            .as_deref()
            .unwrap()
            .contains("exceeds the limit of 1024 bytes"),
        "{:?}",
        r[0].error
    );
    assert!(
        r[1].error.as_deref().unwrap().contains("timed out")
            || r[1].error.as_deref().unwrap().contains("timeout"),
        "{:?}",
        r[1].error
    );
    for p in &r {
        let up = p.snapshot.families.iter().find(|f| f.name == "up").unwrap();
        assert_eq!(up.samples[0].value, 0.0);
    }
}
