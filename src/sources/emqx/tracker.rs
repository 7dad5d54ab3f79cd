//! What pushrelay remembers per client between polls (and across restarts): the last-known
//! values, when it was last listed, and the counter offsets that keep `_total` series monotonic
//! across reconnects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::object::{ClientObject, Counters};

/// The persisted state of one source (`state_dir/sources/<name>.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// Per client id.
    #[serde(default)]
    pub clients: BTreeMap<String, Tracked>,
}

/// One client as last seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tracked {
    /// When the API last listed it (milliseconds since the epoch).
    pub last_seen_ms: i64,
    /// Listed by the last successful poll.
    pub present: bool,
    /// `connected` as last listed.
    pub connected: bool,
    /// The last non-null dates (epoch seconds): a `null` never erases what was known.
    pub created_at: Option<f64>,
    pub connected_at: Option<f64>,
    pub keepalive: Option<f64>,
    pub subscriptions: Option<f64>,
    pub inflight: Option<f64>,
    pub mqueue_len: Option<f64>,
    /// The current connection's counters as EMQX last reported them.
    pub raw: Counters,
    /// The sum of each counter's last value on every earlier connection.
    pub offset: Counters,
    /// Reconnects seen (a new `connected_at`, or counters that went backwards).
    pub reconnects: u64,
}

impl Tracked {
    /// Takes in a fresh listing of the client; returns true when it reconnected since the last.
    pub fn observe(&mut self, obj: &ClientObject, now_ms: i64) -> bool {
        let new_connection = matches!(
            (self.connected_at, obj.connected_at),
            (Some(old), Some(new)) if (old - new).abs() >= 0.0005
        );
        let went_back = obj
            .counters
            .iter()
            .any(|(k, v)| self.raw.get(k).is_some_and(|old| v < *old));
        let reconnected = new_connection || went_back;
        if reconnected {
            self.reconnects += 1;
            for (k, old) in std::mem::take(&mut self.raw).iter() {
                let before = self.offset.get(k).copied().unwrap_or(0.0);
                self.offset.insert(k, before + old);
            }
        }
        // A counter the object leaves out (durable sessions) keeps its last value.
        for (k, v) in obj.counters.iter() {
            self.raw.insert(k, v);
        }
        self.last_seen_ms = now_ms;
        self.present = true;
        self.connected = obj.connected;
        self.created_at = obj.created_at.or(self.created_at);
        self.connected_at = obj.connected_at.or(self.connected_at);
        self.keepalive = obj.keepalive.or(self.keepalive);
        self.subscriptions = obj.subscriptions.or(self.subscriptions);
        self.inflight = obj.inflight.or(self.inflight);
        self.mqueue_len = obj.mqueue_len.or(self.mqueue_len);
        reconnected
    }

    /// Marks the client as not listed by this poll (last-known values stay).
    pub fn vanish(&mut self) {
        self.present = false;
        self.connected = false;
    }

    /// A counter's value: carried across reconnects when `monotonic`, else EMQX's own; 0 when
    /// EMQX never reported it (as emqx-client-monitor does).
    pub fn counter(&self, key: &str, monotonic: bool) -> f64 {
        let raw = self.raw.get(key).copied().unwrap_or(0.0);
        if monotonic {
            raw + self.offset.get(key).copied().unwrap_or(0.0)
        } else {
            raw
        }
    }

    /// True once `forget_after` has passed since the client was last listed.
    pub fn forgotten(&self, now_ms: i64, forget_after_ms: i64) -> bool {
        !self.present && now_ms.saturating_sub(self.last_seen_ms) > forget_after_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(connected_at: Option<f64>, recv: Option<f64>) -> ClientObject {
        let mut o = ClientObject {
            client_id: "c".into(),
            connected: true,
            connected_at,
            ..Default::default()
        };
        if let Some(r) = recv {
            o.counters.insert("recv_msg", r);
        }
        o
    }

    #[test]
    fn counters_carry_across_reconnects() {
        let mut t = Tracked::default();
        assert!(!t.observe(&obj(Some(100.0), Some(5.0)), 1));
        assert!(!t.observe(&obj(Some(100.0), Some(9.0)), 2));
        assert_eq!(t.counter("recv_msg", true), 9.0);
        // Reconnect: new connected_at, counter restarted (and already grew past the old value).
        assert!(t.observe(&obj(Some(200.0), Some(12.0)), 3));
        assert_eq!(t.counter("recv_msg", true), 21.0);
        assert_eq!(t.counter("recv_msg", false), 12.0);
        // A durable session without counters and without a date: nothing moves.
        assert!(!t.observe(&obj(None, None), 4));
        assert_eq!(t.counter("recv_msg", true), 21.0);
        assert_eq!(t.connected_at, Some(200.0));
        // Counters going backwards with the same date also count as a new connection.
        assert!(t.observe(&obj(Some(200.0), Some(1.0)), 5));
        assert_eq!(t.counter("recv_msg", true), 22.0);
        assert_eq!(t.reconnects, 2);
        assert_eq!(t.counter("send_msg", true), 0.0);
    }

    #[test]
    fn forgetting_needs_absence_and_time() {
        let mut t = Tracked::default();
        t.observe(&obj(Some(1.0), Some(1.0)), 1_000);
        assert!(!t.forgotten(1_000_000, 10));
        t.vanish();
        assert!(!t.forgotten(1_010, 10));
        assert!(t.forgotten(1_011, 10));
    }
}
