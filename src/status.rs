//! What the relay is doing, for people and for supervisors: each source's last poll, each
//! sink's state, the recent state changes, readiness (`/-/ready`) and the status page (`GET /`
//! on `listen`: one small HTML page, no scripts, no external assets, so it works offline on a
//! router).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::self_metrics::SelfMetrics;

/// State changes kept for the page.
const EVENTS: usize = 30;

/// The shared state behind the page and readiness; cheap to update from any task.
#[derive(Default)]
pub struct Status {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sources: BTreeMap<String, SourceStatus>,
    sinks: BTreeMap<String, SinkStatus>,
    events: VecDeque<Event>,
}

#[derive(Debug, Clone, Default)]
struct SourceStatus {
    /// `None` until the first poll ended.
    up: Option<bool>,
    last_poll_ms: Option<i64>,
    duration_seconds: f64,
    series: usize,
    last_error: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct SinkStatus {
    /// `None` until the first delivery or failure.
    online: Option<bool>,
    /// What the last failure was, while offline.
    reason: Option<String>,
    /// The wire protocol in use (e.g. `remote-write 1.0, snappy`).
    protocol: String,
}

/// One state change.
#[derive(Debug, Clone)]
struct Event {
    at_ms: i64,
    part: String,
    message: String,
}

impl Status {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means a panic mid-update of plain fields.
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A state change worth showing ("source down: …").
    pub fn event(&self, at_ms: i64, part: &str, message: impl Into<String>) {
        self.with(|i| push_event(i, at_ms, part, message.into()));
    }

    /// Registers a component, so it shows (and counts for readiness) before it first reports.
    pub fn register(&self, part: Part<'_>) {
        self.with(|i| match part {
            Part::Source(n) => {
                i.sources.entry(n.to_string()).or_default();
            }
            Part::Sink(n, protocol) => {
                i.sinks.entry(n.to_string()).or_default().protocol = protocol.to_string();
            }
        });
    }

    /// Forgets a component (removed by a reload).
    pub fn forget(&self, part: Part<'_>) {
        self.with(|i| match part {
            Part::Source(n) => {
                i.sources.remove(n);
            }
            Part::Sink(n, _) => {
                i.sinks.remove(n);
            }
        });
    }

    /// One poll of a source ended.
    pub fn source_polled(
        &self,
        name: &str,
        at_ms: i64,
        duration_seconds: f64,
        series: usize,
        error: Option<&str>,
    ) {
        self.with(|i| {
            let s = i.sources.entry(name.to_string()).or_default();
            let was = s.up;
            s.up = Some(error.is_none());
            s.last_poll_ms = Some(at_ms);
            s.duration_seconds = duration_seconds;
            s.series = series;
            if let Some(e) = error {
                s.last_error = Some(e.to_string());
            }
            match (was, error) {
                (Some(true) | None, Some(e)) => {
                    push_event(i, at_ms, &format!("source {name}"), format!("down: {e}"))
                }
                (Some(false), None) => {
                    push_event(i, at_ms, &format!("source {name}"), "up again".into())
                }
                _ => {}
            }
        });
    }

    /// A sink delivered (`Ok`) or failed to (`Err(reason)`); only a change is an event.
    pub fn sink_state(&self, name: &str, at_ms: i64, result: Result<(), &str>) {
        self.with(|i| {
            let s = i.sinks.entry(name.to_string()).or_default();
            let was = s.online;
            s.online = Some(result.is_ok());
            s.reason = result.err().map(str::to_string);
            match (was, result) {
                (Some(true) | None, Err(e)) => {
                    push_event(i, at_ms, &format!("sink {name}"), format!("offline: {e}"))
                }
                (Some(false), Ok(())) => {
                    push_event(i, at_ms, &format!("sink {name}"), "back online".into())
                }
                _ => {}
            }
        });
    }

    /// Whether the relay is doing its job: every source's last poll succeeded and every sink
    /// delivered within `window`. `Err` holds one plain-text reason per failing part.
    pub fn readiness(
        &self,
        metrics: &SelfMetrics,
        now_ms: i64,
        window: Duration,
    ) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        self.with(|i| {
            for (name, s) in &i.sources {
                match (s.up, &s.last_error) {
                    (None, _) => why.push(format!("source {name}: not polled yet")),
                    (Some(false), Some(e)) => why.push(format!("source {name}: down: {e}")),
                    (Some(false), None) => why.push(format!("source {name}: down")),
                    (Some(true), _) => {}
                }
            }
            for (name, s) in &i.sinks {
                let last = metrics.last_success(name);
                let fresh =
                    last.is_some_and(|t| now_ms as f64 / 1000.0 - t <= window.as_secs_f64());
                if fresh {
                    continue;
                }
                let when = match last {
                    Some(t) => format!("last delivered {} ago", ago(now_ms - (t * 1000.0) as i64)),
                    None => "nothing delivered yet".to_string(),
                };
                match &s.reason {
                    Some(r) => why.push(format!("sink {name}: {when}; {r}")),
                    None => why.push(format!("sink {name}: {when}")),
                }
            }
        });
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }

    /// The status page.
    pub fn html(&self, metrics: &SelfMetrics, now_ms: i64, window: Duration) -> String {
        let ready = self.readiness(metrics, now_ms, window);
        self.with(|i| {
            let mut o = String::with_capacity(4096);
            o.push_str(concat!(
                "<!doctype html><html><head><meta charset=utf-8>",
                "<meta name=viewport content=\"width=device-width\">",
                "<meta http-equiv=refresh content=10><title>pushrelay</title><style>",
                "body{font:14px sans-serif;margin:1em;color:#222}",
                "table{border-collapse:collapse;margin-bottom:1em}",
                "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}",
                ".ok{color:#070}.bad{color:#b00;font-weight:bold}.dim{color:#777}",
                "</style></head><body>"
            ));
            let _ = write!(
                o,
                "<h1>pushrelay {}</h1><p>",
                env!("CARGO_PKG_VERSION")
            );
            match &ready {
                Ok(()) => o.push_str("<span class=ok>READY</span>: every source up, every sink delivering"),
                Err(why) => {
                    o.push_str("<span class=bad>NOT READY</span>: ");
                    o.push_str(&esc(&why.join("; ")));
                }
            }
            o.push_str("</p><h2>Sources</h2><table><tr><th>source</th><th>state</th><th>last poll</th><th>took</th><th>series</th><th>last error</th></tr>");
            for (name, s) in &i.sources {
                let state = match s.up {
                    Some(true) => "<span class=ok>up</span>",
                    Some(false) => "<span class=bad>DOWN</span>",
                    None => "<span class=dim>waiting</span>",
                };
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{state}</td><td>{}</td><td>{:.3}s</td><td>{}</td><td>{}</td></tr>",
                    esc(name),
                    s.last_poll_ms.map(|t| format!("{} ago", ago(now_ms - t))).unwrap_or_else(|| "never".into()),
                    s.duration_seconds,
                    s.series,
                    esc(s.last_error.as_deref().unwrap_or("")),
                );
            }
            o.push_str("</table><h2>Sinks</h2><table><tr><th>sink</th><th>state</th><th>queued</th><th>oldest queued</th><th>last delivery</th><th>sent</th><th>protocol</th></tr>");
            for (name, s) in &i.sinks {
                let state = match s.online {
                    Some(true) => "<span class=ok>online</span>".to_string(),
                    Some(false) => format!(
                        "<span class=bad>OFFLINE</span> {}",
                        esc(s.reason.as_deref().unwrap_or(""))
                    ),
                    None => "<span class=dim>waiting</span>".into(),
                };
                let q = metrics.sink_queue(name);
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{state}</td><td>{} samples, {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(name),
                    q.samples,
                    bytes(q.bytes),
                    q.oldest_ms.map(|t| ago(now_ms - t)).unwrap_or_else(|| "-".into()),
                    metrics
                        .last_success(name)
                        .map(|t| format!("{} ago", ago(now_ms - (t * 1000.0) as i64)))
                        .unwrap_or_else(|| "never".into()),
                    sent(metrics, name),
                    esc(&s.protocol),
                );
            }
            o.push_str("</table><h2>Recent changes</h2><table>");
            if i.events.is_empty() {
                o.push_str("<tr><td class=dim>none since start</td></tr>");
            }
            for e in i.events.iter().rev() {
                let _ = write!(
                    o,
                    "<tr><td class=dim>{} ago</td><td>{}</td><td>{}</td></tr>",
                    ago(now_ms - e.at_ms),
                    esc(&e.part),
                    esc(&e.message)
                );
            }
            o.push_str("</table><p class=dim><a href=/metrics>/metrics</a> · <a href=/-/ready>/-/ready</a></p></body></html>\n");
            o
        })
    }
}

/// A component, for [`Status::register`] and [`Status::forget`].
pub enum Part<'a> {
    Source(&'a str),
    /// A sink and the protocol it speaks.
    Sink(&'a str, &'a str),
}

fn push_event(i: &mut Inner, at_ms: i64, part: &str, message: String) {
    if i.events.len() == EVENTS {
        i.events.pop_front();
    }
    i.events.push_back(Event {
        at_ms,
        part: part.to_string(),
        message,
    });
}

/// "3m 12s" for a span of milliseconds (0s for the future).
pub(crate) fn ago(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// What a sink sent: samples, and bytes on the wire where the sink counts them (today, UTC,
/// and since the relay started).
fn sent(metrics: &SelfMetrics, sink: &str) -> String {
    let samples = metrics.sent_total(sink);
    match metrics.wire_bytes_total(sink).0 {
        0 => format!("{samples} samples"),
        total => format!(
            "{samples} samples, {} today ({} since start)",
            bytes(metrics.sent_bytes_today(sink)),
            bytes(total)
        ),
    }
}

/// Text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_says_why_per_part() {
        let m = SelfMetrics::default();
        let s = Status::default();
        s.register(Part::Source("node"));
        s.register(Part::Sink("rw", "remote-write 1.0"));
        let w = Duration::from_secs(300);
        let why = s.readiness(&m, 1_000_000, w).unwrap_err();
        assert_eq!(
            why,
            [
                "source node: not polled yet",
                "sink rw: nothing delivered yet"
            ]
        );
        s.source_polled("node", 1_000_000, 0.1, 5, None);
        m.sent("rw", 10, 1000.0);
        assert_eq!(s.readiness(&m, 1_000_000, w), Ok(()));
        s.source_polled("node", 1_010_000, 0.1, 0, Some("connection refused"));
        s.sink_state("rw", 1_010_000, Err("HTTP 503"));
        let why = s.readiness(&m, 1_400_000, w).unwrap_err();
        assert_eq!(
            why,
            [
                "source node: down: connection refused",
                "sink rw: last delivered 6m 40s ago; HTTP 503"
            ]
        );
        let page = s.html(&m, 1_400_000, w);
        assert!(page.contains("NOT READY") && page.contains("DOWN") && page.contains("OFFLINE"));
        assert!(page.contains("down: connection refused") && page.contains("offline: HTTP 503"));
        assert!(page.len() < 6 * 1024, "{}", page.len());
        assert!(
            !page.contains("<script") && !page.contains("http://") && !page.contains("https://")
        );
    }

    #[test]
    fn html_is_escaped() {
        let m = SelfMetrics::default();
        let s = Status::default();
        s.source_polled("n", 1, 0.0, 0, Some("<b>&"));
        assert!(s
            .html(&m, 1, Duration::from_secs(1))
            .contains("&lt;b&gt;&amp;"));
    }

    #[test]
    fn sinks_show_bytes_today_and_since_start() {
        let m = SelfMetrics::default();
        let s = Status::default();
        s.register(Part::Sink("rw", "remote-write 1.0, snappy"));
        m.sent("rw", 10, 1000.0);
        m.wire_bytes("rw", 3 << 10, 100);
        let page = s.html(&m, 1, Duration::from_secs(1));
        assert!(
            page.contains("10 samples, 3.0 KiB today (3.0 KiB since start)"),
            "{page}"
        );
        assert!(page.contains("remote-write 1.0, snappy"), "{page}");
    }
}
