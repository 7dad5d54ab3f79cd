//! The metric families: emqx-client-monitor 0.3.1's names, help texts, types, labels and flags,
//! then pushrelay's own additions under the same prefix.

use super::EmqxFlags;
use crate::model::{Family, Labels, MetricType};

use super::tracker::Tracked;

const P: &str = "emqx_client_monitor";

/// One row to emit: a client's labels and what is known of it (`None`: never seen, or
/// forgotten; only `connected 0` is emitted then).
pub struct Row<'a> {
    pub alias: &'a str,
    pub client_id: &'a str,
    pub tracked: Option<&'a Tracked>,
}

/// A direction-split counter family: (family name, help, rx key, tx key).
type Split = (&'static str, &'static str, &'static str, &'static str);

const PROCESSED: Split = (
    "messages_processed",
    "Number of received messages processed (total)",
    "recv_msg",
    "send_msg",
);
const DROPPED: Split = (
    "messages_dropped",
    "Number of received messages dropped (total)",
    "recv_msg.dropped",
    "send_msg.dropped",
);
const BYTES: Split = (
    "bytes",
    "Number of received raw octets (bytes)",
    "recv_oct",
    "send_oct",
);
const PACKETS: Split = (
    "packets",
    "Number of received MQTT packets",
    "recv_pkt",
    "send_pkt",
);

/// (direction, qos, key) of the QoS split.
const BY_QOS: [(&str, &str, &str); 6] = [
    ("rx", "0", "recv_msg.qos0"),
    ("rx", "1", "recv_msg.qos1"),
    ("rx", "2", "recv_msg.qos2"),
    ("tx", "0", "send_msg.qos0"),
    ("tx", "1", "send_msg.qos1"),
    ("tx", "2", "send_msg.qos2"),
];

/// (direction, reason, key) of the drop-reason split.
const BY_REASON: [(&str, &str, &str); 4] = [
    (
        "rx",
        "await_pubrel_timeout",
        "recv_msg.dropped.await_pubrel_timeout",
    ),
    ("tx", "expired", "send_msg.dropped.expired"),
    ("tx", "queue_full", "send_msg.dropped.queue_full"),
    ("tx", "too_large", "send_msg.dropped.too_large"),
];

fn labels(broker: &str, row: &Row, extra: &[(&str, &str)]) -> Labels {
    let base = [
        ("broker", broker),
        ("alias", row.alias),
        ("client_id", row.client_id),
    ];
    // Names are constants and distinct, so this cannot fail; a failure would drop the sample.
    Labels::from_pairs(base.iter().chain(extra).map(|(k, v)| (*k, *v))).unwrap_or_default()
}

fn family(name: &str, kind: MetricType, help: &str) -> Family {
    // A counter's family is named with `_total`, as emqx-client-monitor's `# TYPE` lines have it.
    let suffix = if kind == MetricType::Counter {
        "_total"
    } else {
        ""
    };
    Family::new(format!("{P}_{name}{suffix}"), kind, help)
}

fn push(f: &mut Family, labels: Labels, value: f64) {
    f.push(labels, value);
}

/// Builds every family for `rows`, in emqx-client-monitor's order, then the additions.
pub fn build(broker: &str, flags: &EmqxFlags, monotonic: bool, rows: &[Row]) -> Vec<Family> {
    let gauge = |n: &str, h: &str| family(n, MetricType::Gauge, h);
    let counter = |n: &str, h: &str| family(n, MetricType::Counter, h);
    let mut connected = gauge("connected", "Is client connected");
    let mut subs = gauge("subscriptions", "Number of subscriptions");
    let mut inflight = gauge("inflights", "Number of inflight messages");
    let mut created = gauge("created_at", "Client creation time (epoch seconds)");
    let mut conn_at = gauge("connected_at", "Client last connected time (epoch seconds)");
    let mut processed = counter(PROCESSED.0, PROCESSED.1);
    let mut by_qos = counter(
        "messages_processed_by_qos",
        "Number of received messages processed split by QoS",
    );
    let mut dropped = counter(DROPPED.0, DROPPED.1);
    let mut by_reason = counter(
        "messages_dropped_by_reason",
        "Number of received messages dropped split by reason",
    );
    let mut bytes = counter(BYTES.0, BYTES.1);
    let mut packets = counter(PACKETS.0, PACKETS.1);
    let mut last_seen = gauge(
        "last_seen_timestamp_seconds",
        "When the EMQX API last listed the client (epoch seconds)",
    );
    let mut reconnects = counter(
        "reconnects",
        "Reconnects pushrelay has seen (a new connected_at, or counters restarting)",
    );
    let mut mqueue = gauge(
        "mqueue_length",
        "Messages waiting in the client's session queue",
    );
    let mut mqueue_dropped = counter(
        "mqueue_dropped",
        "Messages dropped from the client's session queue because it was full",
    );

    for row in rows {
        let l = |extra: &[(&str, &str)]| labels(broker, row, extra);
        let Some(t) = row.tracked else {
            push(&mut connected, l(&[]), 0.0);
            continue;
        };
        push(
            &mut connected,
            l(&[]),
            if t.present && t.connected { 1.0 } else { 0.0 },
        );
        push(&mut subs, l(&[]), t.subscriptions.unwrap_or(0.0));
        push(&mut inflight, l(&[]), t.inflight.unwrap_or(0.0));
        if let Some(v) = t.created_at {
            push(&mut created, l(&[]), v);
        }
        if let Some(v) = t.connected_at {
            push(&mut conn_at, l(&[]), v);
        }
        let c = |k: &str| t.counter(k, monotonic);
        for (fam, split) in [
            (&mut processed, PROCESSED),
            (&mut dropped, DROPPED),
            (&mut bytes, BYTES),
            (&mut packets, PACKETS),
        ] {
            push(fam, l(&[("direction", "rx")]), c(split.2));
            push(fam, l(&[("direction", "tx")]), c(split.3));
        }
        for (dir, qos, key) in BY_QOS {
            push(&mut by_qos, l(&[("direction", dir), ("qos", qos)]), c(key));
        }
        for (dir, reason, key) in BY_REASON {
            push(
                &mut by_reason,
                l(&[("direction", dir), ("reason", reason)]),
                c(key),
            );
        }
        push(&mut last_seen, l(&[]), t.last_seen_ms as f64 / 1000.0);
        push(&mut reconnects, l(&[]), t.reconnects as f64);
        if let Some(v) = t.mqueue_len {
            push(&mut mqueue, l(&[]), v);
        }
        push(&mut mqueue_dropped, l(&[]), c("mqueue_dropped"));
    }

    let mut out = vec![connected];
    let f = flags;
    let gated = [
        (f.enable_subscription_count, subs),
        (f.enable_inflight_metrics, inflight),
        (f.enable_dates, created),
        (f.enable_dates, conn_at),
        (f.enable_processed_counters, processed),
        (f.enable_processed_counters && f.enable_qos_split, by_qos),
        (f.enable_dropped_counters, dropped),
        (
            f.enable_dropped_counters && f.enable_reason_split,
            by_reason,
        ),
        (f.enable_bytes_metrics, bytes),
        (f.enable_packet_metrics, packets),
        (true, last_seen),
        (true, reconnects),
        (true, mqueue),
        (true, mqueue_dropped),
    ];
    out.extend(
        gated
            .into_iter()
            .filter(|(on, fam)| *on && !fam.samples.is_empty())
            .map(|(_, fam)| fam),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_gate_families_like_emqx_client_monitor() {
        let t = Tracked {
            present: true,
            connected: true,
            created_at: Some(10.5),
            ..Default::default()
        };
        let rows = [
            Row {
                alias: "Room1",
                client_id: "dev-1",
                tracked: Some(&t),
            },
            Row {
                alias: "gone",
                client_id: "dev-2",
                tracked: None,
            },
        ];
        let names = |flags: &EmqxFlags| -> Vec<String> {
            build("LocalEMQX", flags, true, &rows)
                .into_iter()
                .map(|f| f.name.into())
                .collect()
        };
        let d = EmqxFlags::default();
        assert_eq!(
            names(&d),
            [
                "connected",
                "subscriptions",
                "inflights",
                "messages_processed_total",
                "bytes_total",
                "packets_total",
                "last_seen_timestamp_seconds",
                "reconnects_total",
                "mqueue_dropped_total"
            ]
            .map(|n| format!("{P}_{n}"))
        );
        // The splits need their parent flag, as in emqx-client-monitor.
        let only_splits = EmqxFlags {
            enable_processed_counters: false,
            enable_qos_split: true,
            enable_reason_split: true,
            enable_dates: true,
            ..d.clone()
        };
        let n = names(&only_splits);
        assert!(n.contains(&format!("{P}_created_at")));
        assert!(!n.contains(&format!("{P}_connected_at")), "no date known");
        assert!(!n
            .iter()
            .any(|x| x.contains("by_qos") || x.contains("by_reason")));
        let fams = build("LocalEMQX", &d, true, &rows);
        let connected = &fams[0];
        assert_eq!(connected.samples.len(), 2);
        assert_eq!(
            connected.samples[1].labels.to_string(),
            r#"{alias="gone",broker="LocalEMQX",client_id="dev-2"}"#
        );
        assert_eq!(connected.samples[1].value, 0.0);
        let bytes = fams
            .iter()
            .find(|f| f.name.ends_with("_bytes_total"))
            .unwrap();
        assert_eq!(bytes.kind, MetricType::Counter);
        assert_eq!(bytes.samples[0].name, format!("{P}_bytes_total"));
    }
}
