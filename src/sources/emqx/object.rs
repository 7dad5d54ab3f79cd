//! Reads one EMQX client object liberally: dotted literal keys, `null`s, `"infinity"`, numbers
//! sent as strings, RFC 3339 dates with any offset, unknown keys ignored.

use std::collections::BTreeMap;

use serde_json::Value;

/// The per-connection counters pushrelay tracks, by their EMQX key. Every one of them restarts
/// at 0 when the client reconnects.
pub const COUNTER_KEYS: [&str; 21] = [
    "recv_msg",
    "send_msg",
    "recv_msg.qos0",
    "recv_msg.qos1",
    "recv_msg.qos2",
    "send_msg.qos0",
    "send_msg.qos1",
    "send_msg.qos2",
    "recv_msg.dropped",
    "send_msg.dropped",
    "recv_msg.dropped.await_pubrel_timeout",
    "send_msg.dropped.expired",
    "send_msg.dropped.queue_full",
    "send_msg.dropped.too_large",
    "recv_oct",
    "send_oct",
    "recv_pkt",
    "send_pkt",
    "recv_cnt",
    "send_cnt",
    "mqueue_dropped",
];

/// What one client object says, with everything optional that EMQX may leave out or `null`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientObject {
    pub client_id: String,
    /// `connected`; a missing value counts as not connected (as emqx-client-monitor reads it).
    pub connected: bool,
    /// Epoch seconds.
    pub created_at: Option<f64>,
    pub connected_at: Option<f64>,
    pub keepalive: Option<f64>,
    pub subscriptions: Option<f64>,
    pub inflight: Option<f64>,
    pub mqueue_len: Option<f64>,
    /// The counters present in the object (durable sessions may have none).
    pub counters: BTreeMap<&'static str, f64>,
}

impl ClientObject {
    /// Reads a client object; `None` when it is not an object or has no usable `clientid`.
    pub fn from_json(v: &Value) -> Option<ClientObject> {
        let o = v.as_object()?;
        let client_id = match o.get("clientid")? {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let num = |k: &str| o.get(k).and_then(number);
        let mut counters = BTreeMap::new();
        for k in COUNTER_KEYS {
            if let Some(v) = num(k) {
                counters.insert(k, v);
            }
        }
        Some(ClientObject {
            client_id,
            connected: o.get("connected").is_some_and(truthy),
            created_at: o.get("created_at").and_then(timestamp),
            connected_at: o.get("connected_at").and_then(timestamp),
            keepalive: num("keepalive"),
            subscriptions: num("subscriptions_cnt"),
            inflight: num("inflight_cnt"),
            mqueue_len: num("mqueue_len"),
            counters,
        })
    }
}

/// A finite, non-negative number from a JSON number or a numeric string; `null`, `"infinity"`
/// and anything else are "unknown".
pub fn number(v: &Value) -> Option<f64> {
    crate::sources::json::number(v).filter(|x| *x >= 0.0)
}

/// `true`, a non-zero number, or the strings `"true"`/`"connected"`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => matches!(s.trim(), "true" | "connected" | "1"),
        _ => false,
    }
}

/// Epoch seconds from an RFC 3339 string (any offset, `Z`, or none meaning UTC; `T` or a
/// space; any number of fractional digits) or from a number (milliseconds when it is too large
/// to be seconds). `null`, `""` and garbage are "unknown".
pub fn timestamp(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => {
            let x = n.as_f64()?;
            Some(if x.abs() > 1e11 { x / 1000.0 } else { x })
        }
        Value::String(s) => parse_rfc3339(s.trim()),
        _ => None,
    }
}

/// Parses an RFC 3339 date into epoch seconds, keeping microseconds as Python's
/// `datetime.timestamp()` does (further digits are cut), so values match emqx-client-monitor's.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let (secs, nanos) = crate::sources::json::rfc3339(s)?;
    // Exact integers divided once: the nearest double to the written decimal.
    Some((secs * 1_000_000 + i64::from(nanos / 1000)) as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_with_offsets_and_fractions() {
        let utc = parse_rfc3339("2025-11-22T00:51:28.905Z").unwrap();
        assert!((utc - 1763772688.905).abs() < 1e-6, "{utc}");
        assert_eq!(parse_rfc3339("2025-11-22T01:51:28.905+01:00"), Some(utc));
        assert_eq!(parse_rfc3339("2025-11-21T19:21:28.905-05:30"), Some(utc));
        assert_eq!(parse_rfc3339("2025-11-22 02:51:28.905+0200"), Some(utc));
        assert_eq!(parse_rfc3339("2025-11-22T00:51:28"), Some(1763772688.0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+00:00"), Some(0.0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.5+00:00"),
            Some(1709208000.5)
        );
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-11-22T00:51:28+1",
            "2025-11-22",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(timestamp(&json!(null)), None);
        assert_eq!(timestamp(&json!(1763772688905i64)), Some(1763772688.905));
        assert_eq!(timestamp(&json!(1763772688)), Some(1763772688.0));
    }

    #[test]
    fn liberal_object() {
        let v = json!({
            "clientid": "dev/1 ü", "username": null, "connected": true,
            "created_at": "2025-11-22T01:51:28.905+01:00", "connected_at": null,
            "keepalive": 60, "subscriptions_cnt": "3", "subscriptions_max": "infinity",
            "inflight_cnt": 0, "inflight_max": 32, "mqueue_len": null, "mqueue_max": "infinity",
            "recv_msg": 10, "recv_msg.qos1": "4", "send_msg.dropped.too_large": 1,
            "recv_oct": 1.0e3, "send_pkt": -1, "something_new": {"nested": [1, 2]}
        });
        let c = ClientObject::from_json(&v).unwrap();
        assert_eq!(c.client_id, "dev/1 ü");
        assert!(c.connected);
        assert_eq!(c.created_at, Some(1763772688.905));
        assert_eq!(c.connected_at, None);
        assert_eq!(c.subscriptions, Some(3.0));
        assert_eq!(c.mqueue_len, None);
        assert_eq!(c.counters.get("recv_msg"), Some(&10.0));
        assert_eq!(c.counters.get("recv_msg.qos1"), Some(&4.0));
        assert_eq!(c.counters.get("send_msg.dropped.too_large"), Some(&1.0));
        assert_eq!(c.counters.get("recv_oct"), Some(&1000.0));
        assert_eq!(c.counters.get("send_pkt"), None, "negative is unknown");
        assert_eq!(c.counters.get("send_msg"), None);
    }

    #[test]
    fn refuses_what_is_not_a_client() {
        assert_eq!(ClientObject::from_json(&json!([1])), None);
        assert_eq!(ClientObject::from_json(&json!({"clientid": null})), None);
        assert_eq!(ClientObject::from_json(&json!({"clientid": ""})), None);
        assert_eq!(ClientObject::from_json(&json!({"username": "x"})), None);
        let c = ClientObject::from_json(&json!({"clientid": "a", "connected": "false"})).unwrap();
        assert!(!c.connected);
    }
}
