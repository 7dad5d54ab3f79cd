//! The tracked devices as `ttn_device_*` families, and as the `pushrelay check` table.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::tracker::{Device, Saved};
use crate::model::{Family, Labels, MetricType};

/// Settings the families depend on.
pub struct View<'a> {
    pub application: &'a str,
    /// The expected interval of a device, in seconds.
    pub expected: &'a dyn Fn(&str) -> f64,
}

/// Every family in a fixed order; families without samples are left out.
pub fn families(saved: &Saved, view: &View<'_>) -> Vec<Family> {
    use MetricType::{Counter, Gauge};
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
    for (id, d) in &saved.devices {
        let base = labels(view.application, id, d);
        let with = |k: &str, v: &str| {
            let mut l = base.clone();
            l.set(k, v);
            l
        };
        if let Some(t) = d.last_uplink {
            push(
                "ttn_device_last_uplink_timestamp_seconds",
                Gauge,
                "When the device's last uplink reached the Application Server (kept across restarts).",
                base.clone(),
                t,
            );
        }
        push(
            "ttn_device_expected_interval_seconds",
            Gauge,
            "How often the device is expected to send (configured expected_interval).",
            base.clone(),
            (view.expected)(id),
        );
        for (name, help, v) in [
            (
                "ttn_device_uplinks_total",
                "Uplinks received (each frame once: duplicates and retransmissions are not counted again).",
                d.uplinks as f64,
            ),
            (
                "ttn_device_uplinks_lost_total",
                "Uplinks lost on the radio side: gaps in f_cnt within a session while the relay listened.",
                d.lost as f64,
            ),
            (
                "ttn_device_uplinks_missed_total",
                "Gaps in f_cnt spanning a time the relay was not subscribed (not radio loss).",
                d.missed as f64,
            ),
            (
                "ttn_device_joins_total",
                "Join-accepts (new sessions), including joins inferred from a new session key.",
                d.joins as f64,
            ),
            (
                "ttn_device_airtime_seconds_total",
                "Time on air of the uplinks received (consumed_airtime), retransmissions included.",
                d.airtime_seconds,
            ),
        ] {
            push(name, Counter, help, base.clone(), v);
        }
        if d.last_uplink.is_none() {
            continue;
        }
        if let Some(sf) = d.spreading_factor {
            push(
                "ttn_device_spreading_factor",
                Gauge,
                "LoRa spreading factor of the last uplink.",
                base.clone(),
                sf,
            );
        }
        if let Some(hz) = d.frequency_hz {
            push(
                "ttn_device_frequency_hertz",
                Gauge,
                "Frequency of the last uplink.",
                base.clone(),
                hz,
            );
        }
        push(
            "ttn_device_gateways",
            Gauge,
            "How many gateways heard the last uplink.",
            base.clone(),
            d.signals.len() as f64,
        );
        for s in &d.signals {
            if let Some(r) = s.rssi {
                push(
                    "ttn_device_rssi_dbm",
                    Gauge,
                    "RSSI of the last uplink at each gateway that heard it.",
                    with("gateway_id", &s.gateway_id),
                    r,
                );
            }
            if let Some(snr) = s.snr {
                push(
                    "ttn_device_snr_db",
                    Gauge,
                    "SNR of the last uplink at each gateway that heard it.",
                    with("gateway_id", &s.gateway_id),
                    snr,
                );
            }
        }
        for (field, v) in &d.values {
            push(
                "ttn_device_payload_value",
                Gauge,
                "A sensor value from the payload formatter's decoded_payload (last value of each field).",
                with("field", field),
                *v,
            );
        }
    }
    let app = Labels::from_pairs([("application", view.application)]).unwrap_or_default();
    push(
        "ttn_devices_invalid_messages_total",
        Counter,
        "Messages on the subscribed topics that could not be read (not JSON, or not the announced message).",
        app,
        saved.invalid_messages as f64,
    );
    order.into_iter().filter_map(|n| f.remove(n)).collect()
}

/// `application`, `device_id` and, when known, `dev_eui`.
fn labels(application: &str, id: &str, d: &Device) -> Labels {
    let mut l = Labels::new();
    l.set("application", application);
    l.set("device_id", id);
    if let Some(eui) = &d.dev_eui {
        l.set("dev_eui", eui);
    }
    l
}

/// The `check` table: one row per device.
pub fn check_table(saved: &Saved, view: &View<'_>, now: f64) -> String {
    let header = [
        "DEVICE",
        "LAST HEARD",
        "UPLINKS",
        "LOSS",
        "BEST GATEWAY",
        "RSSI/SNR",
        "GWS",
        "VALUES",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    for (id, d) in &saved.devices {
        let heard = match d.last_uplink {
            Some(t) => {
                let ago = now - t;
                let silent = ago > 3.0 * (view.expected)(id);
                format!(
                    "{} ago{}",
                    ago_text(ago),
                    if silent { " SILENT" } else { "" }
                )
            }
            None => "never (joined)".to_string(),
        };
        let loss = match d.loss_ratio() {
            Some(r) => format!("{:.1}% ({} lost)", r * 100.0, d.lost),
            None => "-".to_string(),
        };
        let (gw, sig) = match d.signals.first() {
            Some(s) => (
                s.gateway_id.clone(),
                format!(
                    "{} / {}",
                    s.rssi.map_or("-".into(), |r| format!("{r} dBm")),
                    s.snr.map_or("-".into(), |r| format!("{r} dB"))
                ),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        let values = d
            .values
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::report::format_value(*v)))
            .collect::<Vec<_>>()
            .join(" ");
        rows.push([
            id.clone(),
            heard,
            d.uplinks.to_string(),
            loss,
            gw,
            sig,
            d.signals.len().to_string(),
            values,
        ]);
    }
    let mut o = crate::report::aligned_table(header, &rows, "(no devices heard yet)");
    if saved.invalid_messages > 0 {
        let _ = writeln!(o, "  {} unreadable messages", saved.invalid_messages);
    }
    o.push('\n');
    o
}

/// A coarse human duration: `42s`, `5m`, `3h12m`, `2d4h`.
fn ago_text(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ttn_devices::uplink::{Signal, Uplink};

    #[test]
    fn every_family_and_the_table() {
        let mut s = Saved::default();
        s.new_epoch();
        let mut u = Uplink {
            device_id: "feather-1".into(),
            dev_eui: Some("70B3D57ED005B89A".into()),
            f_cnt: 10,
            received_at: Some(1000.0),
            spreading_factor: Some(7.0),
            frequency_hz: Some(868_100_000.0),
            airtime_seconds: Some(0.0617),
            signals: vec![
                Signal {
                    gateway_id: "gw-a".into(),
                    rssi: Some(-68.0),
                    snr: Some(9.2),
                },
                Signal {
                    gateway_id: "gw-b".into(),
                    rssi: Some(-101.0),
                    snr: None,
                },
            ],
            ..Default::default()
        };
        s.uplink(
            &u,
            Some([("temperature_c".to_string(), 29.9)].into()),
            32,
            1_000_000,
        );
        u.f_cnt = 13;
        s.uplink(&u, None, 32, 1_001_000);
        let exp = |_: &str| 300.0;
        let view = View {
            application: "app1@ttn",
            expected: &exp,
        };
        let t = crate::expfmt::to_text(&families(&s, &view), false);
        let l = "application=\"app1@ttn\",dev_eui=\"70B3D57ED005B89A\",device_id=\"feather-1\"";
        for want in [
            format!("ttn_device_last_uplink_timestamp_seconds{{{l}}} 1000"),
            format!("ttn_device_expected_interval_seconds{{{l}}} 300"),
            format!("ttn_device_uplinks_total{{{l}}} 2"),
            format!("ttn_device_uplinks_lost_total{{{l}}} 2"),
            format!("ttn_device_uplinks_missed_total{{{l}}} 0"),
            format!("ttn_device_joins_total{{{l}}} 0"),
            format!("ttn_device_airtime_seconds_total{{{l}}} 0.1234"),
            format!("ttn_device_spreading_factor{{{l}}} 7"),
            format!("ttn_device_frequency_hertz{{{l}}} 868100000"),
            format!("ttn_device_gateways{{{l}}} 2"),
            format!("ttn_device_rssi_dbm{{{l},gateway_id=\"gw-b\"}} -101"),
            format!("ttn_device_snr_db{{{l},gateway_id=\"gw-a\"}} 9.2"),
            format!("ttn_device_payload_value{{{l},field=\"temperature_c\"}} 29.9"),
            "ttn_devices_invalid_messages_total{application=\"app1@ttn\"} 0".to_string(),
        ] {
            assert!(t.contains(&want), "missing {want} in\n{t}");
        }
        assert!(!t.contains("ttn_device_snr_db{application=\"app1@ttn\",dev_eui=\"70B3D57ED005B89A\",device_id=\"feather-1\",gateway_id=\"gw-b\"}"));
        let table = check_table(&s, &view, 1000.0 + 3600.0);
        assert!(table.contains("feather-1"), "{table}");
        assert!(table.contains("1h0m ago SILENT"), "{table}");
        assert!(table.contains("50.0% (2 lost)"), "{table}");
        assert!(
            table.contains("gw-a") && table.contains("-68 dBm / 9.2 dB"),
            "{table}"
        );
        assert!(table.contains("temperature_c=29.9"), "{table}");
    }
}
