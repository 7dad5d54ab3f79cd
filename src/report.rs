//! What a person reads of one poll: the `check` tables and values written for humans (used by
//! `check` and `demo`).

use std::io::Write;

use crate::model::Sample;
use crate::relay::prepare::is_report_series;
use crate::relay::PollResult;

/// A source's own `check` table under the same heading line as the generic one.
pub fn source_summary(r: &PollResult, table: &str) -> String {
    let status = match &r.error {
        None => "up".to_string(),
        Some(e) => format!("DOWN: {e}"),
    };
    let mut o = format!(
        "source {}: {status}, polled in {:.3}s\n{table}",
        r.source, r.duration_seconds
    );
    if !o.ends_with("\n\n") {
        o.push('\n');
    }
    o
}

/// A human-readable table of one source's poll.
pub fn check_table(r: &PollResult) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let status = match &r.error {
        None => "up".to_string(),
        Some(e) => format!("DOWN: {e}"),
    };
    let samples: Vec<&Sample> = r
        .snapshot
        .families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| !is_report_series(&s.name))
        .collect();
    let _ = writeln!(
        o,
        "source {}: {status}, {} samples in {:.3}s",
        r.source,
        samples.len(),
        r.duration_seconds
    );
    if samples.is_empty() {
        o.push('\n');
        return o;
    }
    let rows: Vec<(String, String, String)> = samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "job" && *k != "instance")
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            (s.name.to_string(), labels.join(","), format_value(s.value))
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let w1 = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, 70);
    let _ = writeln!(o, "  {:<w0$}  {:<w1$}  VALUE", "METRIC", "LABELS");
    for (n, l, v) in rows {
        let l = if l.chars().count() > w1 {
            let cut: String = l.chars().take(w1 - 1).collect();
            format!("{cut}…")
        } else {
            l
        };
        let _ = writeln!(o, "  {n:<w0$}  {l:<w1$}  {v}");
    }
    o.push('\n');
    o
}

/// A value as a person reads it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// An aligned text table with a two-space indent: `header` then `rows`, or `empty` when there
/// are no rows (the sources' `check` tables).
pub fn aligned_table<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    empty: &str,
) -> String {
    use std::fmt::Write as _;
    let mut width = header.map(str::len);
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut o = String::new();
    let line = |o: &mut String, cells: &[&str]| {
        o.push(' ');
        for (c, w) in cells.iter().zip(width) {
            let _ = write!(o, " {c:<w$} ");
        }
        let trimmed = o.trim_end().len();
        o.truncate(trimmed);
        o.push('\n');
    };
    line(&mut o, &header);
    for r in rows {
        line(&mut o, &r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if rows.is_empty() {
        let _ = writeln!(o, "  {empty}");
    }
    o
}

/// Writes command output to standard output. A closed pipe (`pushrelay demo | head`) ends the
/// process quietly with success, as Unix tools do, instead of a panic (an abort in release
/// builds); other write errors are ignored (there is nowhere left to say them).
pub fn write_out(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// `print!` through [`write_out`].
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::report::write_out(&format!($($t)*)) };
}

/// `println!` through [`write_out`].
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => { $crate::report::write_out(&format!("{}\n", format_args!($($t)*))) };
}

/// Request line, headers and the answer's head of one remote-write request, about (what the
/// wire benchmark counted: 300–450 bytes, by receiver and form).
const REQUEST_OVERHEAD: u64 = 400;

/// What each remote-write sink's traffic costs a day and a month (30 days): at the rate the
/// running relay recorded in `state_dir` (see [`crate::sinks::remote_write::usage`]), or,
/// before it has sent anything, estimated from this poll as if each poll went out alone in
/// remote-write 1.0 with snappy (an upper bound: zstd, and `batch_wait` merging several polls
/// into one request, send less).
pub fn data_plan(cfg: &crate::config::Config, results: &[PollResult], now_ms: i64) -> String {
    use crate::sinks::remote_write::usage::Usage;
    use crate::sinks::remote_write::RemoteWriteConfig;
    use crate::status::{ago, bytes};
    use std::fmt::Write;
    let mut o = String::new();
    let month = |per_day: f64| bytes((per_day * 30.0) as u64);
    for spec in &cfg.sinks {
        let Some(rw) = spec.as_any().downcast_ref::<RemoteWriteConfig>() else {
            continue;
        };
        let dir = rw.dir(&cfg.relay.state_dir);
        let recorded = Usage::read(&dir).and_then(|u| u.bytes_per_day().map(|d| (u, d)));
        if let Some((u, per_day)) = recorded {
            let _ = writeln!(
                o,
                "sink {}: {} sent and {} received in the {} up to {} ago: about {} a day, {} a month at this rate",
                rw.name,
                bytes(u.sent_bytes),
                bytes(u.received_bytes),
                ago(u.until_ms - u.since_ms),
                ago(now_ms - u.until_ms),
                bytes(per_day as u64),
                month(per_day),
            );
            continue;
        }
        let (mut per_day, mut samples) = (0.0, 0);
        for r in results.iter().filter(|r| !r.interval.is_zero()) {
            let mut b = crate::wire::remote_write::BatchBuilder::new();
            let ts = r.snapshot.timestamp_ms;
            for f in &r.snapshot.families {
                for s in &f.samples {
                    b.add_shared(&s.name, &s.labels, s.timestamp_ms.unwrap_or(ts), s.value);
                }
            }
            samples += b.len();
            let request = b.finish().body.len() as u64 + REQUEST_OVERHEAD;
            per_day += request as f64 * 86_400.0 / r.interval.as_secs_f64();
        }
        let _ = writeln!(
            o,
            "sink {}: no rate recorded yet in {} (it takes 10 minutes of traffic); this poll's {samples} samples, one request a poll: about {} a day, {} a month (remote-write 1.0 with snappy; zstd and batch_wait merging polls send less)",
            rw.name,
            dir.display(),
            bytes(per_day as u64),
            month(per_day),
        );
    }
    o
}
