//! Test doubles: an exporter whose body and status the test controls, and a fault-injecting
//! proxy in front of a real receiver (answers scripted statuses, forwards the rest).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pushrelay::http::server::{response, serve};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What an [`Exporter`] serves: the body for the scrape of the given number (0 for the first).
type BodyFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// An exposition endpoint serving whatever the test sets.
pub struct Exporter {
    pub url: String,
    pub addr: std::net::SocketAddr,
    body: Arc<Mutex<BodyFn>>,
    status: Arc<AtomicU16>,
    /// Milliseconds to wait before answering.
    delay_ms: Arc<AtomicU64>,
    /// Scrapes served so far.
    pub scrapes: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl Exporter {
    pub async fn start(body: &str) -> Exporter {
        let body = body.to_string();
        Exporter::start_fn(move |_| body.clone()).await
    }

    /// An exporter whose body is made for each scrape by `body`, from the number of scrapes
    /// served before it (a counter that counts scrapes, the clock, a series that goes away).
    pub async fn start_fn(body: impl Fn(u64) -> String + Send + Sync + 'static) -> Exporter {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let body: Arc<Mutex<BodyFn>> = Arc::new(Mutex::new(Arc::new(body)));
        let status = Arc::new(AtomicU16::new(200));
        let scrapes = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        let (b, s, n, d) = (
            body.clone(),
            status.clone(),
            scrapes.clone(),
            delay_ms.clone(),
        );
        tokio::spawn(serve(l, cancel.clone(), move |_req| {
            let (b, s, n, d) = (b.clone(), s.clone(), n.clone(), d.clone());
            async move {
                let before = n.fetch_add(1, Ordering::SeqCst);
                let wait = d.load(Ordering::SeqCst);
                if wait > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                let make = b.lock().unwrap().clone();
                let text = make(before);
                response(s.load(Ordering::SeqCst), "text/plain; version=0.0.4", text)
            }
        }));
        Exporter {
            url: format!("http://{addr}/metrics"),
            addr,
            body,
            status,
            delay_ms,
            scrapes,
            cancel,
        }
    }

    pub fn set_delay(&self, d: std::time::Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_body(&self, body: &str) {
        let body = body.to_string();
        *self.body.lock().unwrap() = Arc::new(move |_| body.clone());
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::SeqCst)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Which requests a scripted answer is for: any, or those whose body it picks.
type Pick = Option<Arc<dyn Fn(&[u8]) -> bool + Send + Sync>>;

/// A proxy that answers the next scripted statuses itself and forwards everything else.
pub struct FaultProxy {
    pub url: String,
    script: Arc<Mutex<VecDeque<(u16, String, Pick)>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    cancel: CancellationToken,
}

impl FaultProxy {
    /// `upstream` is the receiver's base URL (`http://127.0.0.1:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let script: Arc<Mutex<VecDeque<(u16, String, Pick)>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let cancel = CancellationToken::new();
        let client = reqwest::Client::new();
        let upstream = upstream.trim_end_matches('/').to_string();
        let (sc, se) = (script.clone(), seen.clone());
        tokio::spawn(serve(l, cancel.clone(), move |req| {
            let (sc, se, client, upstream) =
                (sc.clone(), se.clone(), client.clone(), upstream.clone());
            async move {
                let headers: Vec<(String, String)> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let method = req.method().to_string();
                let body = req.body().to_vec();
                let scripted = {
                    let mut sc = sc.lock().unwrap();
                    match sc.front() {
                        Some((_, _, Some(pick))) if !pick(&body) => None,
                        _ => sc.pop_front(),
                    }
                };
                let (status, resp) = match scripted {
                    Some((status, text, _)) => (status, response(status, "text/plain", text)),
                    None => {
                        let mut r = client.request(
                            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                            format!("{upstream}{path}"),
                        );
                        for (k, v) in &headers {
                            if k != "host" && k != "content-length" {
                                r = r.header(k, v);
                            }
                        }
                        match r.body(body.clone()).send().await {
                            Ok(up) => {
                                let st = up.status().as_u16();
                                // Remote-write 2.0's answer headers pass, as through a real proxy.
                                let written: Vec<_> = up
                                    .headers()
                                    .iter()
                                    .filter(|(k, _)| {
                                        k.as_str().starts_with("x-prometheus-remote-write-")
                                    })
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect();
                                let b = up.bytes().await.unwrap_or_default();
                                let mut r = response(st, "text/plain", b);
                                r.headers_mut().extend(written);
                                (st, r)
                            }
                            Err(e) => (502, response(502, "text/plain", e.to_string())),
                        }
                    }
                };
                se.lock().unwrap().push(Seen {
                    method,
                    path,
                    status,
                    body,
                    headers,
                });
                resp
            }
        }));
        FaultProxy {
            url: format!("http://{addr}"),
            script,
            seen,
            cancel,
        }
    }

    /// Queues statuses the proxy answers itself, in order, before forwarding again.
    pub fn fail_next(&self, statuses: &[(u16, &str)]) {
        let mut s = self.script.lock().unwrap();
        for (st, text) in statuses {
            s.push_back((*st, text.to_string(), None));
        }
    }

    /// Queues one status the proxy answers itself to the first request whose body `pick`
    /// holds (after what is queued before it); the requests it passes over are forwarded.
    pub fn fail_next_where(
        &self,
        status: u16,
        text: &str,
        pick: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
    ) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, text.to_string(), Some(Arc::new(pick))));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The config most remote-write tests run: one scrape source `node` polled every second into
/// one remote-write sink `rw` with short waits and backoffs; `relay_extra` goes in `[relay]`,
/// `sink_extra` in the sink.
pub fn scrape_to_remote_write(
    source_url: &str,
    rw_url: &str,
    relay_extra: &str,
    sink_extra: &str,
) -> String {
    format!(
        r#"
[relay]
interval = "1s"
{relay_extra}
shutdown_timeout = "20s"

[[source]]
type = "scrape"
name = "node"
url = "{source_url}"

[[sink]]
type = "remote_write"
name = "rw"
url = "{rw_url}"
batch_wait = "200ms"
min_backoff = "100ms"
max_backoff = "500ms"
{sink_extra}
"#
    )
}

/// Runs the relay in-process on a config text until the returned token is cancelled.
pub fn start_relay(
    config_toml: &str,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    Arc<pushrelay::self_metrics::SelfMetrics>,
) {
    let mut cfg = pushrelay::config::parse(config_toml, "test.toml", &|k| std::env::var(k).ok())
        .unwrap_or_else(|e| panic!("{e}"));
    // Each relay without a `state_dir` gets its own, removed when the relay ends.
    let own_dir = (!config_toml.contains("state_dir")).then(|| tempfile::tempdir().unwrap());
    if let Some(dir) = &own_dir {
        cfg.relay.state_dir = dir.path().to_path_buf();
    }
    let cancel = CancellationToken::new();
    let metrics = Arc::new(pushrelay::self_metrics::SelfMetrics::default());
    let env = pushrelay::relay::Env {
        metrics: metrics.clone(),
        ..Default::default()
    };
    let run = pushrelay::relay::run_with(cfg, cancel.clone(), env);
    let h = tokio::spawn(async move {
        let result = run.await;
        drop(own_dir);
        result
    });
    (cancel, h, metrics)
}
