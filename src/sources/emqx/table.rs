//! The `check` table, with emqx-client-monitor's columns.

use std::fmt::Write;

use super::object::ClientObject;

/// "16 hours", "a minute", "3 days": how long ago, roughly.
pub fn ago(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let (n, unit) = match s {
        0..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        86_400..=2_591_999 => (s / 86_400, "day"),
        2_592_000..=31_535_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    match n {
        0 => "now".to_string(),
        1 => format!("a {unit}"),
        n => format!("{n} {unit}s"),
    }
}

/// "10s", "2m", "1h30m": a keepalive, abbreviated.
pub fn short_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut o = String::new();
    for (v, u) in [(h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            let _ = write!(o, "{v}{u}");
        }
    }
    if o.is_empty() {
        o.push_str("0s");
    }
    o
}

/// Renders rows of (first column, client as last listed or `None` when absent).
pub fn render(first: &str, rows: &[(&str, Option<&ClientObject>)], now_secs: f64) -> String {
    let head1 = [
        "",
        "Created",
        "Keep",
        "Connected",
        "Sub",
        "MsgIn",
        "RX",
        "RX",
        "TX",
        "TX",
    ];
    let head2 = [
        first,
        "(time ago)",
        "alive",
        "(time ago)",
        "Cnt",
        "Flght",
        "Msg",
        "Drop",
        "Msg",
        "Drop",
    ];
    let mut sorted: Vec<&(&str, Option<&ClientObject>)> = rows.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut body: Vec<[String; 10]> = Vec::new();
    for (name, c) in sorted {
        let Some(c) = c else {
            let mut r: [String; 10] = Default::default();
            r[0] = name.to_string();
            r[3] = "absent".into();
            for cell in r.iter_mut().skip(1) {
                if cell.is_empty() {
                    *cell = "-".into();
                }
            }
            body.push(r);
            continue;
        };
        let count = |k: &str| {
            c.counters
                .get(k)
                .map(|v| format!("{v}"))
                .unwrap_or_else(|| "-".into())
        };
        let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_else(|| "-".into());
        body.push([
            name.to_string(),
            c.created_at
                .map(|t| ago(now_secs - t))
                .unwrap_or_else(|| "never".into()),
            c.keepalive
                .map(short_duration)
                .unwrap_or_else(|| "-".into()),
            match (c.connected, c.connected_at) {
                (true, Some(t)) => ago(now_secs - t),
                (true, None) => "yes".into(),
                (false, _) => "never".into(),
            },
            opt(c.subscriptions),
            opt(c.inflight),
            count("recv_msg"),
            count("recv_msg.dropped"),
            count("send_msg"),
            count("send_msg.dropped"),
        ]);
    }
    let mut widths = [0usize; 10];
    for r in std::iter::once(&head1.map(String::from))
        .chain(std::iter::once(&head2.map(String::from)))
        .chain(body.iter())
    {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut o = String::new();
    let line = |o: &mut String, cells: &[String]| {
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 0 {
                let _ = write!(o, "{cell:<w$}");
            } else {
                let _ = write!(o, "  {cell:>w$}");
            }
        }
        o.push('\n');
    };
    line(&mut o, &head1.map(String::from));
    line(&mut o, &head2.map(String::from));
    for r in &body {
        line(&mut o, r);
    }
    if body.is_empty() {
        o.push_str("(no clients)\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humane_times() {
        assert_eq!(ago(1.0), "a second");
        assert_eq!(ago(39.0 * 60.0 + 5.0), "39 minutes");
        assert_eq!(ago(16.0 * 3600.0), "16 hours");
        assert_eq!(ago(13.0 * 86400.0), "13 days");
        assert_eq!(short_duration(60.0), "1m");
        assert_eq!(short_duration(10.0), "10s");
        assert_eq!(short_duration(90.0), "1m30s");
    }

    #[test]
    fn columns_and_absent_rows() {
        let mut c = ClientObject {
            client_id: "dev-1".into(),
            connected: true,
            created_at: Some(1000.0),
            connected_at: Some(1900.0),
            keepalive: Some(120.0),
            subscriptions: Some(1.0),
            inflight: Some(0.0),
            ..Default::default()
        };
        c.counters.insert("recv_msg", 38455.0);
        let t = render("Alias", &[("Room3", Some(&c)), ("Room1", None)], 2000.0);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("Created") && lines[0].contains("MsgIn"));
        assert!(lines[1].starts_with("Alias") && lines[1].contains("Flght"));
        assert!(lines[2].starts_with("Room1") && lines[2].contains("absent"));
        assert!(lines[3].starts_with("Room3"));
        assert!(lines[3].contains("16 minutes") && lines[3].contains("2m"));
        assert!(lines[3].contains("38455"));
    }
}
