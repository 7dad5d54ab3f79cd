//! Turns what the source knows about each gateway into `ttn_gateway_*` families, and into the
//! `pushrelay check` table.

use std::collections::BTreeMap;

use super::api::{GatewayInfo, Location, Stats};
use crate::model::{Family, Labels, MetricType};

/// Whether a gateway is connected, by the Console's rule; `Unknown` when its stats could not be
/// read this cycle (then no `connected` series is sent rather than a guess).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    Connected,
    Disconnected,
    Unknown,
}

/// Everything known about one gateway after a cycle.
#[derive(Debug, Clone)]
pub struct GatewayView {
    pub info: GatewayInfo,
    pub conn: Conn,
    /// The stats of a 200 answer (connected, or disconnected within 48 h).
    pub stats: Option<Stats>,
    /// Carried across cycles and restarts: the latest sighting ever seen.
    pub last_seen: Option<f64>,
    /// When it went offline (`disconnected_at`, or when the relay first saw it gone).
    pub offline_since: Option<f64>,
    /// Last known protocol and stack version, kept so `ttn_gateway_info` stays one series.
    pub protocol: Option<String>,
    pub stack_version: Option<String>,
}

impl GatewayView {
    fn location(&self) -> Option<Location> {
        self.info
            .location
            .or_else(|| self.stats.as_ref().and_then(|s| s.reported_location))
    }

    /// Stats that describe a live connection (none for a disconnected gateway).
    fn live(&self) -> Option<&Stats> {
        self.stats.as_ref().filter(|_| self.conn == Conn::Connected)
    }
}

/// Every family in a fixed order; families without samples are left out.
pub fn families(views: &[GatewayView], compat_names: bool) -> Vec<Family> {
    let mut f: BTreeMap<&'static str, Family> = BTreeMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    let mut push = |name: &'static str, kind: MetricType, help: &str, labels: Labels, v: f64| {
        f.entry(name)
            .or_insert_with(|| {
                order.push(name);
                Family::new(name, kind, help)
            })
            .push(labels, v);
    };
    use MetricType::{Counter, Gauge};
    for g in views {
        let base = base_labels(&g.info);
        let with = |extra: &[(&str, &str)]| {
            let mut l = base.clone();
            for (k, v) in extra {
                l.set(k, v);
            }
            l
        };
        push(
            "ttn_gateway_info",
            Gauge,
            "Facts about the gateway; always 1.",
            with(&[
                ("name", g.info.name.as_deref().unwrap_or("")),
                (
                    "frequency_plan",
                    g.info.frequency_plan.as_deref().unwrap_or(""),
                ),
                ("protocol", g.protocol.as_deref().unwrap_or("")),
                ("stack_version", g.stack_version.as_deref().unwrap_or("")),
            ]),
            1.0,
        );
        match g.conn {
            Conn::Connected => push(
                "ttn_gateway_connected",
                Gauge,
                "1 if the gateway is connected to its Gateway Server, 0 if not.",
                base.clone(),
                1.0,
            ),
            Conn::Disconnected => push(
                "ttn_gateway_connected",
                Gauge,
                "1 if the gateway is connected to its Gateway Server, 0 if not.",
                base.clone(),
                0.0,
            ),
            Conn::Unknown => {}
        }
        if let Some(t) = g.last_seen {
            push(
                "ttn_gateway_last_seen_timestamp_seconds",
                Gauge,
                "Latest sighting: last status, uplink, downlink, TX ack or disconnection (kept across restarts).",
                base.clone(),
                t,
            );
        }
        // Last-event times are facts even after a disconnect (the API keeps them 48 h).
        if let Some(s) = g.stats.as_ref().filter(|_| g.conn != Conn::Unknown) {
            for (name, help, t) in [
                (
                    "ttn_gateway_last_uplink_timestamp_seconds",
                    "When the last uplink was received.",
                    s.last_uplink_received_at,
                ),
                (
                    "ttn_gateway_last_downlink_timestamp_seconds",
                    "When the last downlink was sent.",
                    s.last_downlink_received_at,
                ),
                (
                    "ttn_gateway_last_status_timestamp_seconds",
                    "When the last status message was received.",
                    s.last_status_received_at,
                ),
            ] {
                if let Some(t) = t {
                    push(name, Gauge, help, base.clone(), t);
                }
            }
        }
        if let Some(s) = g.live() {
            if let Some(t) = s.connected_at {
                push(
                    "ttn_gateway_connected_since_timestamp_seconds",
                    Gauge,
                    "When the current connection started.",
                    base.clone(),
                    t,
                );
            }
            // A connected gateway's omitted counts are real zeros (the API omits zero values).
            let up = s.uplink_count.unwrap_or(0) as f64;
            let down = s.downlink_count.unwrap_or(0) as f64;
            push(
                "ttn_gateway_uplink_messages_total",
                Counter,
                "Uplink messages received in the current connection (restarts at reconnect).",
                base.clone(),
                up,
            );
            push(
                "ttn_gateway_downlink_messages_total",
                Counter,
                "Downlink messages sent in the current connection (restarts at reconnect).",
                base.clone(),
                down,
            );
            push(
                "ttn_gateway_tx_acknowledgments_total",
                Counter,
                "TX acknowledgments received in the current connection (restarts at reconnect).",
                base.clone(),
                s.tx_acknowledgment_count.unwrap_or(0) as f64,
            );
            if compat_names {
                let id_only =
                    Labels::from_pairs([("gateway_id", g.info.id.as_str())]).unwrap_or_default();
                push(
                    "ttn_gateway_messages_uplink_count",
                    Gauge,
                    "Deprecated name of ttn_gateway_uplink_messages_total (compat_names).",
                    id_only.clone(),
                    up,
                );
                push(
                    "ttn_gateway_messages_downlink_count",
                    Gauge,
                    "Deprecated name of ttn_gateway_downlink_messages_total (compat_names).",
                    id_only,
                    down,
                );
            }
            if let Some(rt) = s.round_trip {
                for (q, v) in [("0", rt.min), ("0.5", rt.median), ("1", rt.max)] {
                    if let Some(v) = v {
                        push(
                            "ttn_gateway_round_trip_seconds",
                            Gauge,
                            "Downlink round-trip time: min (0), median (0.5), max (1).",
                            with(&[("quantile", q)]),
                            v,
                        );
                    }
                }
                push(
                    "ttn_gateway_round_trip_samples",
                    Gauge,
                    "How many round trips the round_trip_seconds figures cover.",
                    base.clone(),
                    rt.count as f64,
                );
            }
            for b in &s.sub_bands {
                let (lo, hi) = (b.min_frequency.to_string(), b.max_frequency.to_string());
                let l = with(&[("min_frequency_hz", &lo), ("max_frequency_hz", &hi)]);
                push(
                    "ttn_gateway_sub_band_downlink_utilization_ratio",
                    Gauge,
                    "Share of airtime used by downlinks in the sub-band (duty cycle).",
                    l.clone(),
                    b.utilization,
                );
                if let Some(limit) = b.limit {
                    push(
                        "ttn_gateway_sub_band_downlink_utilization_limit_ratio",
                        Gauge,
                        "The sub-band's duty-cycle limit.",
                        l,
                        limit,
                    );
                }
            }
            for (k, v) in &s.status_metrics {
                push(
                    "ttn_gateway_status_metric",
                    Gauge,
                    "A counter from the packet forwarder's last status message (rxin, rxok, txok, ...).",
                    with(&[("metric", k)]),
                    *v,
                );
            }
        }
        if let Some(loc) = g.location() {
            for (name, help, v) in [
                (
                    "ttn_gateway_latitude_degrees",
                    "Gateway latitude.",
                    loc.latitude,
                ),
                (
                    "ttn_gateway_longitude_degrees",
                    "Gateway longitude.",
                    loc.longitude,
                ),
                (
                    "ttn_gateway_altitude_meters",
                    "Gateway altitude.",
                    loc.altitude,
                ),
            ] {
                push(name, Gauge, help, base.clone(), v);
            }
        }
    }
    order.into_iter().filter_map(|n| f.remove(n)).collect()
}

/// `gateway_id` and, when known, `gateway_eui`.
fn base_labels(info: &GatewayInfo) -> Labels {
    let mut l = Labels::new();
    l.set("gateway_id", &info.id);
    if let Some(eui) = &info.eui {
        l.set("gateway_eui", eui);
    }
    l
}

/// The `check` table: one row per gateway.
pub fn check_table(views: &[GatewayView], now: f64) -> String {
    let header = [
        "GATEWAY",
        "NAME",
        "STATE",
        "LAST SEEN",
        "UPLINKS",
        "DOWNLINKS",
        "RTT P50",
        "DUTY CYCLE",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    for g in views {
        let state = match g.conn {
            Conn::Connected => match g.live().and_then(|s| s.connected_at) {
                Some(t) => format!("connected {}", ago(now - t)),
                None => "connected".to_string(),
            },
            Conn::Disconnected => match g.offline_since {
                Some(t) => format!("offline since {} ({} ago)", when(t), ago(now - t)),
                None => "offline".to_string(),
            },
            Conn::Unknown => "unknown (stats unavailable)".to_string(),
        };
        let seen = match g.last_seen {
            Some(t) => format!("{} ago", ago(now - t)),
            None => "never".to_string(),
        };
        let live = g.live();
        let count = |c: Option<u64>| match live {
            Some(_) => c.unwrap_or(0).to_string(),
            None => "-".to_string(),
        };
        let rtt = live
            .and_then(|s| s.round_trip)
            .and_then(|r| r.median)
            .map(|m| format!("{:.0}ms", m * 1000.0))
            .unwrap_or_else(|| "-".to_string());
        let duty = live
            .and_then(|s| s.worst_sub_band())
            .map(|b| match b.limit {
                Some(l) => format!("{} of {}", pct(b.utilization), pct(l)),
                None => format!("{} (no limit)", pct(b.utilization)),
            })
            .unwrap_or_else(|| "-".to_string());
        rows.push([
            g.info.id.clone(),
            g.info.name.clone().unwrap_or_default(),
            state,
            seen,
            count(live.and_then(|s| s.uplink_count)),
            count(live.and_then(|s| s.downlink_count)),
            rtt,
            duty,
        ]);
    }
    let mut o = crate::report::aligned_table(header, &rows, "(no gateways)");
    o.push('\n');
    o
}

fn pct(r: f64) -> String {
    let p = r * 100.0;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.2}%")
    }
}

/// A coarse human duration: `42s`, `5m`, `3h12m`, `2d4h`.
fn ago(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A UTC time to the second, RFC 3339.
fn when(t: f64) -> String {
    let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0));
    humantime::format_rfc3339_seconds(st).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ttn::api::{parse_stats, RoundTrip, SubBand};

    fn view(id: &str, conn: Conn, stats: Option<Stats>) -> GatewayView {
        GatewayView {
            info: GatewayInfo {
                id: id.into(),
                eui: Some("B827EBFFFE123456".into()),
                name: Some("Roof".into()),
                frequency_plan: Some("EU_863_870_TTN".into()),
                ..Default::default()
            },
            conn,
            stats,
            last_seen: Some(1000.0),
            offline_since: None,
            protocol: Some("udp".into()),
            stack_version: None,
        }
    }

    fn text(f: &[Family]) -> String {
        crate::expfmt::to_text(f, false)
    }

    #[test]
    fn disconnected_gateway_has_no_fake_counts() {
        let s = parse_stats(&serde_json::json!({
            "connected_at": "2024-05-01T12:00:00Z", "disconnected_at": "2024-05-01T13:00:00Z",
            "uplink_count": "77", "last_uplink_received_at": "2024-05-01T12:59:00Z"}));
        let t = text(&families(&[view("gw", Conn::Disconnected, Some(s))], true));
        assert!(
            t.contains(
                "ttn_gateway_connected{gateway_eui=\"B827EBFFFE123456\",gateway_id=\"gw\"} 0"
            ),
            "{t}"
        );
        assert!(
            t.contains("ttn_gateway_last_uplink_timestamp_seconds{"),
            "{t}"
        );
        assert!(!t.contains("_total"), "{t}");
        assert!(!t.contains("messages_uplink_count"), "{t}");
        assert!(!t.contains("connected_since"), "{t}");
        // Unknown: neither 1 nor 0.
        let t = text(&families(&[view("gw", Conn::Unknown, None)], false));
        assert!(!t.contains("ttn_gateway_connected{"), "{t}");
        assert!(t.contains("ttn_gateway_info{"), "{t}");
        assert!(
            t.contains("ttn_gateway_last_seen_timestamp_seconds{"),
            "{t}"
        );
    }

    #[test]
    fn connected_gateway_every_family() {
        let s = Stats {
            connected_at: Some(900.0),
            uplink_count: Some(5),
            round_trip: Some(RoundTrip {
                min: Some(0.04),
                median: Some(0.067),
                max: Some(0.2),
                count: 20,
            }),
            sub_bands: vec![SubBand {
                min_frequency: 0,
                max_frequency: u64::MAX,
                utilization: 0.002,
                limit: Some(0.01),
            }],
            status_metrics: [("rxok".to_string(), 9.0)].into(),
            ..Default::default()
        };
        let mut v = view("gw", Conn::Connected, Some(s));
        v.info.eui = None;
        let t = text(&families(&[v], true));
        for want in [
            "ttn_gateway_connected{gateway_id=\"gw\"} 1",
            "ttn_gateway_info{frequency_plan=\"EU_863_870_TTN\",gateway_id=\"gw\",name=\"Roof\",protocol=\"udp\"} 1",
            "ttn_gateway_uplink_messages_total{gateway_id=\"gw\"} 5",
            "ttn_gateway_downlink_messages_total{gateway_id=\"gw\"} 0",
            "ttn_gateway_tx_acknowledgments_total{gateway_id=\"gw\"} 0",
            "ttn_gateway_connected_since_timestamp_seconds{gateway_id=\"gw\"} 900",
            "ttn_gateway_round_trip_seconds{gateway_id=\"gw\",quantile=\"0.5\"} 0.067",
            "ttn_gateway_round_trip_samples{gateway_id=\"gw\"} 20",
            "ttn_gateway_sub_band_downlink_utilization_ratio{gateway_id=\"gw\",max_frequency_hz=\"18446744073709551615\",min_frequency_hz=\"0\"} 0.002",
            "ttn_gateway_sub_band_downlink_utilization_limit_ratio{gateway_id=\"gw\",max_frequency_hz=\"18446744073709551615\",min_frequency_hz=\"0\"} 0.01",
            "ttn_gateway_status_metric{gateway_id=\"gw\",metric=\"rxok\"} 9",
            "ttn_gateway_messages_uplink_count{gateway_id=\"gw\"} 5",
            "ttn_gateway_messages_downlink_count{gateway_id=\"gw\"} 0",
        ] {
            assert!(t.contains(want), "missing {want} in\n{t}");
        }
        assert!(check_table(&[view("gw", Conn::Connected, None)], 2000.0).contains("GATEWAY"));
    }
}
