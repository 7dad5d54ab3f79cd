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

/// A family being built for every row, or `None` when its flag is off (nothing is built for
/// it then: at 10,000 clients the families left out by default are 140,000 series).
struct Slot(Option<Family>);

impl Slot {
    /// `per_row` samples reserved a row: every family's vector is sized once.
    fn new(
        on: bool,
        kind: MetricType,
        name: &str,
        help: &str,
        rows: usize,
        per_row: usize,
    ) -> Slot {
        Slot(on.then(|| {
            let mut f = family(name, kind, help);
            f.samples.reserve_exact(rows * per_row);
            f
        }))
    }

    fn push(&mut self, labels: &Labels, value: f64) {
        if let Some(f) = &mut self.0 {
            f.push(labels.clone(), value);
        }
    }

    /// Pushes a sample whose labels are built only when the family is on.
    fn push_with(&mut self, labels: impl FnOnce() -> Labels, value: f64) {
        if let Some(f) = &mut self.0 {
            f.push(labels(), value);
        }
    }

    fn is_on(&self) -> bool {
        self.0.is_some()
    }
}

/// Builds every family for `rows`, in emqx-client-monitor's order, then the additions. The
/// series of one client with the same labels share one label set.
pub fn build(broker: &str, flags: &EmqxFlags, monotonic: bool, rows: &[Row]) -> Vec<Family> {
    let f = flags;
    let n = rows.len();
    let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);
    let mut connected = Slot::new(true, gauge, "connected", "Is client connected", n, 1);
    let mut subs = Slot::new(
        f.enable_subscription_count,
        gauge,
        "subscriptions",
        "Number of subscriptions",
        n,
        1,
    );
    let mut inflight = Slot::new(
        f.enable_inflight_metrics,
        gauge,
        "inflights",
        "Number of inflight messages",
        n,
        1,
    );
    let mut created = Slot::new(
        f.enable_dates,
        gauge,
        "created_at",
        "Client creation time (epoch seconds)",
        n,
        1,
    );
    let mut conn_at = Slot::new(
        f.enable_dates,
        gauge,
        "connected_at",
        "Client last connected time (epoch seconds)",
        n,
        1,
    );
    let on = f.enable_processed_counters;
    let mut processed = Slot::new(on, counter, PROCESSED.0, PROCESSED.1, n, 2);
    let mut by_qos = Slot::new(
        on && f.enable_qos_split,
        counter,
        "messages_processed_by_qos",
        "Number of received messages processed split by QoS",
        n,
        BY_QOS.len(),
    );
    let on = f.enable_dropped_counters;
    let mut dropped = Slot::new(on, counter, DROPPED.0, DROPPED.1, n, 2);
    let mut by_reason = Slot::new(
        on && f.enable_reason_split,
        counter,
        "messages_dropped_by_reason",
        "Number of received messages dropped split by reason",
        n,
        BY_REASON.len(),
    );
    let mut bytes = Slot::new(f.enable_bytes_metrics, counter, BYTES.0, BYTES.1, n, 2);
    let mut packets = Slot::new(f.enable_packet_metrics, counter, PACKETS.0, PACKETS.1, n, 2);
    let mut last_seen = Slot::new(
        true,
        gauge,
        "last_seen_timestamp_seconds",
        "When the EMQX API last listed the client (epoch seconds)",
        n,
        1,
    );
    let mut reconnects = Slot::new(
        true,
        counter,
        "reconnects",
        "Reconnects pushrelay has seen (a new connected_at, or counters restarting)",
        n,
        1,
    );
    let mut mqueue = Slot::new(
        true,
        gauge,
        "mqueue_length",
        "Messages waiting in the client's session queue",
        n,
        1,
    );
    let mut mqueue_dropped = Slot::new(
        true,
        counter,
        "mqueue_dropped",
        "Messages dropped from the client's session queue because it was full",
        n,
        1,
    );
    let directed = [&processed, &dropped, &bytes, &packets]
        .iter()
        .any(|s| s.is_on());

    for row in rows {
        let l = |extra: &[(&str, &str)]| labels(broker, row, extra);
        let base = l(&[]);
        let Some(t) = row.tracked else {
            connected.push(&base, 0.0);
            continue;
        };
        connected.push(&base, if t.present && t.connected { 1.0 } else { 0.0 });
        subs.push(&base, t.subscriptions.unwrap_or(0.0));
        inflight.push(&base, t.inflight.unwrap_or(0.0));
        if let Some(v) = t.created_at {
            created.push(&base, v);
        }
        if let Some(v) = t.connected_at {
            conn_at.push(&base, v);
        }
        let c = |k: &str| t.counter(k, monotonic);
        if directed {
            let rx = l(&[("direction", "rx")]);
            let tx = l(&[("direction", "tx")]);
            for (fam, split) in [
                (&mut processed, PROCESSED),
                (&mut dropped, DROPPED),
                (&mut bytes, BYTES),
                (&mut packets, PACKETS),
            ] {
                fam.push(&rx, c(split.2));
                fam.push(&tx, c(split.3));
            }
        }
        for (dir, qos, key) in BY_QOS {
            by_qos.push_with(|| l(&[("direction", dir), ("qos", qos)]), c(key));
        }
        for (dir, reason, key) in BY_REASON {
            by_reason.push_with(|| l(&[("direction", dir), ("reason", reason)]), c(key));
        }
        last_seen.push(&base, t.last_seen_ms as f64 / 1000.0);
        reconnects.push(&base, t.reconnects as f64);
        if let Some(v) = t.mqueue_len {
            mqueue.push(&base, v);
        }
        mqueue_dropped.push(&base, c("mqueue_dropped"));
    }

    // `connected` even when empty (no client yet), the others only when they hold a sample.
    let connected = connected.0.into_iter();
    connected
        .chain(
            [
                subs,
                inflight,
                created,
                conn_at,
                processed,
                by_qos,
                dropped,
                by_reason,
                bytes,
                packets,
                last_seen,
                reconnects,
                mqueue,
                mqueue_dropped,
            ]
            .into_iter()
            .filter_map(|s| s.0)
            .filter(|fam| !fam.samples.is_empty()),
        )
        .collect()
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
