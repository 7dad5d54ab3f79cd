//! Reads one EMQX client object liberally: dotted literal keys, `null`s, `"infinity"`, numbers
//! sent as strings, RFC 3339 dates with any offset, unknown keys ignored.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
    pub counters: Counters,
}

/// The keys of a client object pushrelay reads besides [`COUNTER_KEYS`].
const FIELD_KEYS: [&str; 8] = [
    "clientid",
    "connected",
    "created_at",
    "connected_at",
    "keepalive",
    "subscriptions_cnt",
    "inflight_cnt",
    "mqueue_len",
];

/// How many keys pushrelay reads: [`FIELD_KEYS`] then [`COUNTER_KEYS`].
const READ_KEYS: usize = FIELD_KEYS.len() + COUNTER_KEYS.len();

/// The index of `key` among [`FIELD_KEYS`] then [`COUNTER_KEYS`]. A `match`, not a search: it runs for every key of every
/// client object (about 50 each), and most are not read.
fn read_index(key: &str) -> Option<usize> {
    let field = match key {
        "clientid" => 0,
        "connected" => 1,
        "created_at" => 2,
        "connected_at" => 3,
        "keepalive" => 4,
        "subscriptions_cnt" => 5,
        "inflight_cnt" => 6,
        "mqueue_len" => 7,
        _ => return Counters::index(key).map(|i| FIELD_KEYS.len() + i),
    };
    debug_assert_eq!(FIELD_KEYS[field], key);
    Some(field)
}

impl ClientObject {
    /// Reads a client object; `None` when it is not an object or has no usable `clientid`.
    pub fn from_json(v: &Value) -> Option<ClientObject> {
        let o = v.as_object()?;
        ClientObject::read(|k| o.get(k))
    }

    /// Reads a client object from its JSON text, building only the values of the keys it reads
    /// (an EMQX 5 client object has about 50 keys; a tree of all of them cost most of a poll).
    /// `Ok(None)` where [`ClientObject::from_json`] gives `None`; `Err` when it is not JSON.
    pub fn from_text(text: &str) -> Result<Option<ClientObject>, serde_json::Error> {
        // As `ClientPage::read` tells a page: by its first byte; anything but an object is
        // only checked to be JSON.
        if !text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
        {
            serde_json::from_str::<IgnoredAny>(text)?;
            return Ok(None);
        }
        let Picked(v) = serde_json::from_str(text)?;
        Ok(ClientObject::read(|k| {
            read_index(k).and_then(|i| v[i].as_ref())
        }))
    }

    /// The liberal reading of the keys `get` finds (a `null` counts as missing).
    fn read<'v>(get: impl Fn(&str) -> Option<&'v Value>) -> Option<ClientObject> {
        let client_id = match get("clientid")? {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let num = |k: &str| get(k).and_then(number);
        let mut counters = Counters::default();
        for k in COUNTER_KEYS {
            if let Some(v) = num(k) {
                counters.insert(k, v);
            }
        }
        Some(ClientObject {
            client_id,
            connected: get("connected").is_some_and(truthy),
            created_at: get("created_at").and_then(timestamp),
            connected_at: get("connected_at").and_then(timestamp),
            keepalive: num("keepalive"),
            subscriptions: num("subscriptions_cnt"),
            inflight: num("inflight_cnt"),
            mqueue_len: num("mqueue_len"),
            counters,
        })
    }
}

/// The values of the keys pushrelay reads, by [`read_index`], of one JSON object (the last of a
/// repeated key, as a JSON tree keeps it).
struct Picked(Vec<Option<Value>>);

impl<'de> Deserialize<'de> for Picked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Picked, D::Error> {
        struct PickedVisitor;
        impl<'de> Visitor<'de> for PickedVisitor {
            type Value = Picked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a client object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked, A::Error> {
                let mut values = vec![None; READ_KEYS];
                while let Some(key) = map.next_key_seed(KeyIndex)? {
                    match key {
                        Some(i) => values[i] = Some(map.next_value::<Value>()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Picked(values))
            }
        }
        d.deserialize_map(PickedVisitor)
    }
}

/// A key of a client object as the index of a key pushrelay reads (`None`: one it skips),
/// compared without copying it.
struct KeyIndex;

impl<'de> DeserializeSeed<'de> for KeyIndex {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(KeyIndex)
    }
}

impl Visitor<'_> for KeyIndex {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(read_index(key))
    }
}

/// One value per [`COUNTER_KEYS`] entry, each known or not, in a fixed array (a map of owned
/// keys per client cost ~2 KB; this is 168 bytes). Stored as a JSON object of the known ones,
/// the same shape as before it was an array.
#[derive(Clone, Copy)]
pub struct Counters([f64; COUNTER_KEYS.len()]);

impl Default for Counters {
    fn default() -> Counters {
        // NaN marks "not known": every value stored is finite (see `number`).
        Counters([f64::NAN; COUNTER_KEYS.len()])
    }
}

impl Counters {
    /// The [`COUNTER_KEYS`] index of `key`: every counter key starts `recv_`, `send_` or
    /// `mqueue_`, so most keys of an object are turned away after a byte or two.
    fn index(key: &str) -> Option<usize> {
        if !(key.starts_with("recv_") || key.starts_with("send_") || key.starts_with("mqueue_")) {
            return None;
        }
        COUNTER_KEYS.iter().position(|k| *k == key)
    }

    /// The value of `key`, when known.
    pub fn get(&self, key: &str) -> Option<&f64> {
        Counters::index(key)
            .map(|i| &self.0[i])
            .filter(|v| !v.is_nan())
    }

    /// Sets `key` (one of [`COUNTER_KEYS`]; any other key is ignored) to a finite `value`.
    pub fn insert(&mut self, key: &str, value: f64) {
        if let (Some(i), true) = (Counters::index(key), value.is_finite()) {
            self.0[i] = value;
        }
    }

    /// The known values, in [`COUNTER_KEYS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        COUNTER_KEYS
            .iter()
            .zip(self.0)
            .filter(|(_, v)| !v.is_nan())
            .map(|(k, v)| (*k, v))
    }
}

impl PartialEq for Counters {
    fn eq(&self, other: &Counters) -> bool {
        let same = |(a, b): (&f64, &f64)| a == b || (a.is_nan() && b.is_nan());
        self.0.iter().zip(&other.0).all(same)
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Counters {
    /// A map of counter key to number; keys pushrelay does not track are skipped.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Counters, D::Error> {
        struct CountersVisitor;
        impl<'de> Visitor<'de> for CountersVisitor {
            type Value = Counters;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of counters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counters, A::Error> {
                let mut c = Counters::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let v = map.next_value::<f64>()?;
                    c.insert(&key, v);
                }
                Ok(c)
            }
        }
        d.deserialize_map(CountersVisitor)
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
    fn reading_the_text_matches_reading_the_tree() {
        let texts = [
            r#"{"clientid": "dev/1 ü", "username": null, "connected": true,
                "created_at": "2025-11-22T01:51:28.905+01:00", "connected_at": null,
                "keepalive": 60, "subscriptions_cnt": "3", "inflight_cnt": 0, "mqueue_len": null,
                "recv_msg": 10, "recv_msg.qos1": "4", "send_msg.dropped.too_large": 1,
                "recv_oct": 1.0e3, "send_pkt": -1, "something_new": {"nested": [1, {"recv_msg": 9}]}}"#,
            r#"{"clientid": "a", "recv_msg": 1, "recv_msg": 2, "connected": "true"}"#,
            r#"{"client\u0069d": 42, "recv\u005fmsg": 3, "mqueue_len": "7"}"#,
            r#"{"clientid": null}"#,
            r#"{"clientid": ["a"]}"#,
            r#"[{"clientid": "a"}]"#,
            r#""a""#,
            "12",
            "true",
            "null",
        ];
        for text in texts {
            let tree: Value = serde_json::from_str(text).unwrap();
            let read = ClientObject::from_text(text).unwrap();
            assert_eq!(read, ClientObject::from_json(&tree), "{text}");
        }
        let dup = ClientObject::from_text(texts[1]).unwrap().unwrap();
        assert_eq!(
            dup.counters.get("recv_msg"),
            Some(&2.0),
            "the last one, as a tree"
        );
        let escaped = ClientObject::from_text(texts[2]).unwrap().unwrap();
        assert_eq!(escaped.client_id, "42");
        assert_eq!(escaped.counters.get("recv_msg"), Some(&3.0));
        assert!(ClientObject::from_text(r#"{"clientid": "#).is_err());
    }

    #[test]
    fn every_read_key_has_its_own_index() {
        let keys: Vec<&str> = FIELD_KEYS.iter().chain(&COUNTER_KEYS).copied().collect();
        assert_eq!(keys.len(), READ_KEYS);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(read_index(k), Some(i), "{k}");
        }
        for other in ["", "recv_", "username", "mqueue_max", "send_msg.qos3"] {
            assert_eq!(read_index(other), None, "{other}");
        }
    }

    #[test]
    fn counters_are_stored_as_a_map_of_the_known_ones() {
        let mut c = Counters::default();
        assert_eq!(c.iter().next(), None);
        c.insert("recv_msg", 5.0);
        c.insert("send_oct", 0.0);
        c.insert("not_a_counter", 1.0);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"recv_msg":5.0,"send_oct":0.0}"#);
        let back: Counters =
            serde_json::from_str(r#"{"recv_msg":5,"send_oct":0,"gone_key":3}"#).unwrap();
        assert_eq!(back, c);
        assert_eq!(std::mem::take(&mut c), back);
        assert!(c.iter().next().is_none() && c.get("recv_msg").is_none());
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
