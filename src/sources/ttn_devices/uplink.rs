//! The Things Stack's application messages (`…/up`, `…/join`), read liberally into what the
//! tracker needs.
//!
//! The structs mirror the Stack's JSON (snake_case, `end_device_ids`, `uplink_message`, …) and
//! ignore every field they do not name, so new fields of newer stacks (`locations`,
//! `version_ids`, `attributes`, `packet_broker`, …) pass through. Every field is read
//! leniently: a value of the wrong type counts as absent instead of failing the message, numbers
//! may come as strings, and absent means what the Stack means by it (empty fields are omitted:
//! no `f_cnt` is frame 0, no `snr` on a LoRa uplink is 0 dB).

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use crate::sources::json;
use crate::sources::ttn::api::{duration_secs, normalize_eui, timestamp_secs};

/// Reads `T` from whatever JSON is there; a value of another shape is `T::default()`.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(T::deserialize(v).unwrap_or_default())
}

/// A number from a JSON number or a numeric string.
fn num<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(json::number(&Value::deserialize(d)?))
}

/// An RFC 3339 time (any fraction, `Z` or offset) in epoch seconds.
fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(timestamp_secs(&Value::deserialize(d)?))
}

/// A protobuf duration (`"0.061696s"`) in seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(duration_secs(&Value::deserialize(d)?).filter(|s| *s >= 0.0))
}

/// A non-empty string (numbers written as text too).
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(crate::sources::ttn::api::as_text(&Value::deserialize(d)?))
}

/// An EUI as upper-case hex.
fn eui<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(normalize_eui(&Value::deserialize(d)?))
}

/// `true`, `"true"` or a non-zero number.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        v => json::number(&v).is_some_and(|n| n != 0.0),
    })
}

/// One application message, any kind.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Message {
    #[serde(deserialize_with = "lenient")]
    end_device_ids: DeviceIds,
    #[serde(deserialize_with = "time")]
    received_at: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    uplink_message: Option<UplinkMessage>,
    #[serde(deserialize_with = "lenient")]
    join_accept: Option<JoinAccept>,
    #[serde(deserialize_with = "flag")]
    simulated: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeviceIds {
    #[serde(deserialize_with = "text")]
    device_id: Option<String>,
    #[serde(deserialize_with = "eui")]
    dev_eui: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UplinkMessage {
    #[serde(deserialize_with = "text")]
    session_key_id: Option<String>,
    #[serde(deserialize_with = "num")]
    f_cnt: Option<f64>,
    #[serde(deserialize_with = "num")]
    f_port: Option<f64>,
    decoded_payload: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    rx_metadata: Vec<Lenient<RxMetadata>>,
    #[serde(deserialize_with = "lenient")]
    settings: Settings,
    #[serde(deserialize_with = "time")]
    received_at: Option<f64>,
    #[serde(deserialize_with = "duration")]
    consumed_airtime: Option<f64>,
}

/// A list element read leniently: a malformed entry is `None`, not a failed list.
#[derive(Debug, Default)]
struct Lenient<T>(Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lenient(T::deserialize(Value::deserialize(d)?).ok()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RxMetadata {
    #[serde(deserialize_with = "lenient")]
    gateway_ids: GatewayIds,
    #[serde(deserialize_with = "lenient")]
    packet_broker: Option<PacketBroker>,
    #[serde(deserialize_with = "num")]
    rssi: Option<f64>,
    #[serde(deserialize_with = "num")]
    channel_rssi: Option<f64>,
    #[serde(deserialize_with = "num")]
    snr: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GatewayIds {
    #[serde(deserialize_with = "text")]
    gateway_id: Option<String>,
    #[serde(deserialize_with = "eui")]
    eui: Option<String>,
}

/// Packet Broker's details on an uplink heard by another network's gateway.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PacketBroker {
    #[serde(deserialize_with = "text")]
    forwarder_gateway_id: Option<String>,
    #[serde(deserialize_with = "eui")]
    forwarder_gateway_eui: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    #[serde(deserialize_with = "lenient")]
    data_rate: DataRate,
    #[serde(deserialize_with = "num")]
    frequency: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DataRate {
    #[serde(deserialize_with = "lenient")]
    lora: Option<Lora>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Lora {
    #[serde(deserialize_with = "num")]
    spreading_factor: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JoinAccept {
    #[serde(deserialize_with = "text")]
    session_key_id: Option<String>,
    #[serde(deserialize_with = "time")]
    received_at: Option<f64>,
}

/// How well one gateway heard an uplink.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Signal {
    /// The gateway ID; `packetbroker/<forwarder gateway>` for another network's gateway seen
    /// through Packet Broker; `eui-<eui>` when only the EUI is given.
    pub gateway_id: String,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
}

/// One uplink as the tracker needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Uplink {
    pub device_id: String,
    pub dev_eui: Option<String>,
    /// When the Application Server received it (epoch seconds), if the message says.
    pub received_at: Option<f64>,
    pub session_key_id: Option<String>,
    /// The frame counter (an absent `f_cnt` is frame 0).
    pub f_cnt: u32,
    pub f_port: Option<u32>,
    /// A simulated uplink (the Console's "simulate uplink"): not a radio frame.
    pub simulated: bool,
    /// The payload formatter's output, as sent.
    pub decoded: Option<Value>,
    /// One entry per gateway (the strongest antenna), strongest first.
    pub signals: Vec<Signal>,
    pub spreading_factor: Option<f64>,
    pub frequency_hz: Option<f64>,
    pub airtime_seconds: Option<f64>,
}

/// A join-accept: the device's frame counter starts again.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Join {
    pub device_id: String,
    pub dev_eui: Option<String>,
    pub session_key_id: Option<String>,
    pub received_at: Option<f64>,
}

/// What a message on a subscribed topic says.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Uplink(Box<Uplink>),
    Join(Join),
}

/// The device ID and message kind in a topic `v3/<app>/devices/<device>/<kind…>`.
pub fn topic_parts(topic: &str) -> Option<(&str, &str)> {
    let mut it = topic.splitn(5, '/');
    let (v3, _app, devices, device, kind) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    (v3 == "v3" && devices == "devices" && !device.is_empty()).then_some((device, kind))
}

/// Reads one message. `Ok(None)` for a topic this source does not use; `Err` (with a short
/// reason) for a payload that is not JSON or not the message its topic announces.
pub fn parse(topic: &str, payload: &[u8]) -> Result<Option<Event>, String> {
    let Some((topic_device, kind)) = topic_parts(topic) else {
        return Ok(None);
    };
    if kind != "up" && kind != "join" {
        return Ok(None);
    }
    let m: Message =
        serde_json::from_slice(payload).map_err(|e| format!("not a JSON message ({e})"))?;
    // The topic names the device too; the body's ID wins when both are there.
    let device_id = m
        .end_device_ids
        .device_id
        .clone()
        .unwrap_or_else(|| topic_device.to_string());
    if kind == "join" {
        let j = m
            .join_accept
            .ok_or("a join message without \"join_accept\"")?;
        return Ok(Some(Event::Join(Join {
            device_id,
            dev_eui: m.end_device_ids.dev_eui,
            session_key_id: j.session_key_id,
            received_at: m.received_at.or(j.received_at),
        })));
    }
    let u = m
        .uplink_message
        .ok_or("an uplink message without \"uplink_message\"")?;
    let lora = u.settings.data_rate.lora.as_ref();
    let signals = signals(&u.rx_metadata, lora.is_some());
    let f_cnt = u.f_cnt.unwrap_or(0.0);
    if !(0.0..=f64::from(u32::MAX)).contains(&f_cnt) {
        return Err(format!("f_cnt {f_cnt} is not a 32-bit frame counter"));
    }
    Ok(Some(Event::Uplink(Box::new(Uplink {
        device_id,
        dev_eui: m.end_device_ids.dev_eui,
        received_at: m.received_at.or(u.received_at),
        session_key_id: u.session_key_id,
        f_cnt: f_cnt as u32,
        f_port: u
            .f_port
            .filter(|p| (0.0..=255.0).contains(p))
            .map(|p| p as u32),
        simulated: m.simulated,
        decoded: u.decoded_payload,
        signals,
        spreading_factor: lora.and_then(|l| l.spreading_factor),
        frequency_hz: u.settings.frequency.filter(|f| *f > 0.0),
        airtime_seconds: u.consumed_airtime,
    }))))
}

/// One signal per gateway: its strongest antenna (by RSSI), strongest gateway first. A LoRa
/// uplink's missing SNR is 0 dB (omitted as empty); other modulations have none.
fn signals(rx: &[Lenient<RxMetadata>], lora: bool) -> Vec<Signal> {
    let mut best: BTreeMap<String, Signal> = BTreeMap::new();
    for m in rx.iter().filter_map(|l| l.0.as_ref()) {
        let id = match (&m.gateway_ids.gateway_id, &m.packet_broker) {
            (Some(id), Some(pb)) if id == "packetbroker" => {
                match pb
                    .forwarder_gateway_id
                    .as_ref()
                    .or(pb.forwarder_gateway_eui.as_ref())
                {
                    Some(fw) => format!("packetbroker/{fw}"),
                    None => id.clone(),
                }
            }
            (Some(id), _) => id.clone(),
            (None, _) => match &m.gateway_ids.eui {
                Some(e) => format!("eui-{}", e.to_ascii_lowercase()),
                None => continue,
            },
        };
        let s = Signal {
            gateway_id: id.clone(),
            rssi: m.rssi.or(m.channel_rssi),
            snr: m.snr.or(lora.then_some(0.0)),
        };
        let stronger =
            |a: &Signal, b: &Signal| a.rssi.unwrap_or(f64::MIN) > b.rssi.unwrap_or(f64::MIN);
        match best.get(&id) {
            Some(old) if !stronger(&s, old) => {}
            _ => {
                best.insert(id, s);
            }
        }
    }
    let mut v: Vec<Signal> = best.into_values().collect();
    v.sort_by(|a, b| {
        b.rssi
            .unwrap_or(f64::MIN)
            .total_cmp(&a.rssi.unwrap_or(f64::MIN))
            .then_with(|| a.gateway_id.cmp(&b.gateway_id))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: &str = r#"{"end_device_ids":{"device_id":"dev1","application_ids":{"application_id":"app1"},
      "dev_eui":"70b3d57ed005b89a","dev_addr":"260BABCD"},"correlation_ids":["as:up:01H"],
      "received_at":"2026-05-25T13:42:11.412Z",
      "uplink_message":{"session_key_id":"AWNb","f_port":2,"f_cnt":1834,"frm_payload":"ASsBKAAA",
        "decoded_payload":{"temperature_c":29.9},
        "rx_metadata":[
          {"gateway_ids":{"gateway_id":"gw-a","eui":"AA555A0000000101"},"rssi":-68,"channel_rssi":-68,"snr":9.2},
          {"gateway_ids":{"gateway_id":"gw-b"},"channel_rssi":-101},
          {"gateway_ids":{"gateway_id":"gw-a"},"rssi":-90,"snr":1},
          {"gateway_ids":{"gateway_id":"packetbroker"},"packet_broker":{"forwarder_net_id":"000013","forwarder_gateway_id":"rincon"},"rssi":-25,"snr":8.75},
          "junk", {"rssi":-1}],
        "settings":{"data_rate":{"lora":{"bandwidth":125000,"spreading_factor":7}},"frequency":"868100000"},
        "consumed_airtime":"0.061696s","confirmed":true,"new_field":{"x":[1]}}}"#;

    fn up(s: &str) -> Uplink {
        match parse("v3/app1@ttn/devices/dev1/up", s.as_bytes()) {
            Ok(Some(Event::Uplink(u))) => *u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn real_uplink_shape() {
        let u = up(UP);
        assert_eq!(u.device_id, "dev1");
        assert_eq!(u.dev_eui.as_deref(), Some("70B3D57ED005B89A"));
        assert_eq!(u.f_cnt, 1834);
        assert_eq!(u.f_port, Some(2));
        assert_eq!(u.spreading_factor, Some(7.0));
        assert_eq!(u.frequency_hz, Some(868_100_000.0));
        assert_eq!(u.airtime_seconds, Some(0.061696));
        assert!((u.received_at.unwrap() - 1_779_716_531.412).abs() < 1e-3);
        let ids: Vec<&str> = u.signals.iter().map(|s| s.gateway_id.as_str()).collect();
        assert_eq!(ids, ["packetbroker/rincon", "gw-a", "gw-b"]);
        assert_eq!(u.signals[1].rssi, Some(-68.0));
        assert_eq!(u.signals[1].snr, Some(9.2));
        // channel_rssi stands in for rssi; LoRa's omitted SNR is 0.
        assert_eq!(
            (u.signals[2].rssi, u.signals[2].snr),
            (Some(-101.0), Some(0.0))
        );
    }

    #[test]
    fn omitted_zero_fields_and_wrong_types() {
        let u = up(
            r#"{"end_device_ids":{"device_id":"dev1"},"uplink_message":{"rx_metadata":{"not":"a list"},"settings":"x","f_port":"3"}}"#,
        );
        assert_eq!((u.f_cnt, u.f_port), (0, Some(3)));
        assert!(u.signals.is_empty() && u.spreading_factor.is_none() && u.received_at.is_none());
        // FSK: no SNR means none.
        let u = up(
            r#"{"uplink_message":{"f_cnt":"12","rx_metadata":[{"gateway_ids":{"eui":"AA555A0000000101"},"rssi":-70}],"settings":{"data_rate":{"fsk":{"bit_rate":50000}}}}}"#,
        );
        assert_eq!(u.device_id, "dev1", "from the topic");
        assert_eq!(u.f_cnt, 12);
        assert_eq!(u.signals[0].gateway_id, "eui-aa555a0000000101");
        assert_eq!(u.signals[0].snr, None);
    }

    #[test]
    fn joins_other_topics_and_junk() {
        let j = parse(
            "v3/app1/devices/dev2/join",
            br#"{"end_device_ids":{"device_id":"dev2"},"received_at":"2020-02-17T07:49:09.935284891Z","join_accept":{"session_key_id":"AXBS","received_at":"2020-02-17T07:49:09.736Z"}}"#,
        );
        match j {
            Ok(Some(Event::Join(j))) => {
                assert_eq!(j.session_key_id.as_deref(), Some("AXBS"));
                assert!(j.received_at.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("v3/app1/devices/dev2/down/queued", b"{}"), Ok(None));
        assert_eq!(parse("elsewhere", b"{}"), Ok(None));
        assert!(parse("v3/app1/devices/dev2/up", b"{not json").is_err());
        assert!(parse("v3/app1/devices/dev2/up", br#"{"end_device_ids":{}}"#).is_err());
        assert!(parse(
            "v3/app1/devices/dev2/up",
            br#"{"uplink_message":{"f_cnt":-4}}"#
        )
        .is_err());
        let sim = up(r#"{"simulated":true,"uplink_message":{"f_cnt":5}}"#);
        assert!(sim.simulated);
    }
}
