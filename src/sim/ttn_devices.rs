//! A simulated The Things Stack Application Server for the `ttn_devices` source: uplink and
//! join-accept messages in the real JSON shapes (docs' "Data Formats", captured messages),
//! published into an MQTT broker (the in-process [`crate::sim::mqtt::Broker`] for the demo,
//! mosquitto in the tests).
//!
//! Quirks reproduced: empty fields omitted (no `f_cnt` for frame 0, no `snr` at 0 dB, no
//! `confirmed` when false), `frequency` as a string, `consumed_airtime` as `"0.061696s"`,
//! `received_at` with nine fraction digits, several gateways per uplink (one without `time`,
//! one seen through Packet Broker without an EUI), unknown fields (`correlation_ids`,
//! `network_ids`, `locations`, `version_ids`, `attributes`, a field from a future version),
//! and payload formatters that return strings and nested objects.

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::sim::mqtt::Broker;
use crate::sim::ttn::rfc3339;

/// One gateway's reception of an uplink.
#[derive(Debug, Clone)]
pub struct Heard {
    pub gateway_id: String,
    /// `None`: a Packet Broker gateway of another network (`gateway_id` is its forwarder ID).
    pub eui: Option<String>,
    pub rssi: f64,
    pub snr: f64,
}

impl Heard {
    pub fn new(gateway_id: &str, eui: Option<&str>, rssi: f64, snr: f64) -> Heard {
        Heard {
            gateway_id: gateway_id.to_string(),
            eui: eui.map(str::to_string),
            rssi,
            snr,
        }
    }
}

/// What an uplink message says.
#[derive(Debug, Clone)]
pub struct UplinkSpec {
    pub device_id: String,
    pub dev_eui: String,
    pub f_cnt: u32,
    pub session_key_id: String,
    pub received_at: SystemTime,
    pub heard: Vec<Heard>,
    pub spreading_factor: u32,
    pub frequency_hz: u64,
    pub airtime_seconds: f64,
    pub decoded: Option<Value>,
    pub confirmed: bool,
}

impl UplinkSpec {
    /// A Feather M0 sending a reading, heard by two gateways.
    pub fn new(device_id: &str, dev_eui: &str, f_cnt: u32) -> UplinkSpec {
        UplinkSpec {
            device_id: device_id.to_string(),
            dev_eui: dev_eui.to_string(),
            f_cnt,
            session_key_id: "AWNbqg4ahNvbR1bVGoZiWA==".to_string(),
            received_at: SystemTime::now(),
            heard: vec![
                Heard::new(
                    "eui-aa555a0000000101",
                    Some("AA555A0000000101"),
                    -68.0,
                    9.25,
                ),
                Heard::new("roof-gw", Some("B827EBFFFE123456"), -103.0, -4.5),
            ],
            spreading_factor: 7,
            frequency_hz: 868_100_000,
            airtime_seconds: 0.061696,
            decoded: Some(json!({"temperature_c": 21.5, "humidity_pct": 48.25, "battery_v": 3.62})),
            confirmed: false,
        }
    }
}

/// `v3/<app>/devices/<device>/<kind>`.
pub fn topic(application: &str, device_id: &str, kind: &str) -> String {
    format!("v3/{application}/devices/{device_id}/{kind}")
}

fn device_ids(application: &str, device_id: &str, dev_eui: &str) -> Value {
    let app_id = application.split('@').next().unwrap_or(application);
    json!({
        "device_id": device_id,
        "application_ids": {"application_id": app_id},
        "dev_eui": dev_eui,
        "join_eui": "0000000000000001",
        "dev_addr": "260BABCD"
    })
}

/// The uplink message JSON, with the Stack's omissions and extras.
pub fn uplink_json(application: &str, u: &UplinkSpec) -> String {
    let at = rfc3339(u.received_at, 9);
    let gw_time = rfc3339(u.received_at - Duration::from_millis(20), 3);
    let rx: Vec<Value> = u
        .heard
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut m = Map::new();
            match &h.eui {
                Some(eui) => {
                    m.insert("gateway_ids".into(), json!({"gateway_id": h.gateway_id, "eui": eui}));
                }
                None => {
                    m.insert("gateway_ids".into(), json!({"gateway_id": "packetbroker"}));
                    m.insert(
                        "packet_broker".into(),
                        json!({"message_id": "01G2D76ZVZV5B2SRRMG92D569M", "forwarder_net_id": "000013",
                               "forwarder_tenant_id": "ttnv2", "forwarder_cluster_id": "ttn-v2-legacy-eu",
                               "forwarder_gateway_id": h.gateway_id, "home_network_net_id": "000013"}),
                    );
                }
            }
            // The second gateway's entry has no `time` (seen on real uplinks).
            if i != 1 {
                m.insert("time".into(), json!(gw_time));
            }
            m.insert("timestamp".into(), json!(3_895_211_423u64 + i as u64));
            // Whole numbers are written without a fraction, as protobuf's JSON does.
            let rssi = if h.rssi.fract() == 0.0 { json!(h.rssi as i64) } else { json!(h.rssi) };
            m.insert("rssi".into(), rssi.clone());
            m.insert("channel_rssi".into(), rssi);
            if h.snr != 0.0 {
                m.insert("snr".into(), json!(h.snr));
            }
            m.insert(
                "location".into(),
                json!({"latitude": 47.0, "longitude": 8.0, "altitude": 430, "source": "SOURCE_REGISTRY"}),
            );
            m.insert("uplink_token".into(), json!("ChIKEAoEZ3R3MRIInFyOAAAaBcQQ6L3Vlgk="));
            m.insert("channel_index".into(), json!(2 + i));
            Value::Object(m)
        })
        .collect();
    let mut up = Map::new();
    up.insert("session_key_id".into(), json!(u.session_key_id));
    up.insert("f_port".into(), json!(2));
    if u.f_cnt != 0 {
        up.insert("f_cnt".into(), json!(u.f_cnt));
    }
    up.insert("frm_payload".into(), json!("ASsBKAAA"));
    if let Some(d) = &u.decoded {
        up.insert("decoded_payload".into(), d.clone());
    }
    up.insert("rx_metadata".into(), Value::Array(rx));
    up.insert(
        "settings".into(),
        json!({"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": u.spreading_factor,
                "coding_rate": "4/5"}},
               "frequency": u.frequency_hz.to_string(), "timestamp": 3_895_211_423u64}),
    );
    up.insert(
        "received_at".into(),
        json!(rfc3339(u.received_at - Duration::from_millis(5), 9)),
    );
    up.insert(
        "consumed_airtime".into(),
        json!(format!("{}s", u.airtime_seconds)),
    );
    if u.confirmed {
        up.insert("confirmed".into(), json!(true));
    }
    up.insert(
        "locations".into(),
        json!({"user": {"latitude": 47.37, "longitude": 8.54, "altitude": 410, "source": "SOURCE_REGISTRY"}}),
    );
    up.insert(
        "version_ids".into(),
        json!({"brand_id": "adafruit", "model_id": "feather-m0", "hardware_version": "1.0", "band_id": "EU_863_870"}),
    );
    up.insert(
        "network_ids".into(),
        json!({"net_id": "000013", "tenant_id": "ttn", "cluster_id": "eu1",
               "cluster_address": "eu1.cloud.thethings.network"}),
    );
    up.insert(
        "last_battery_percentage".into(),
        json!({"f_cnt": 1, "value": 78.5}),
    );
    json!({
        "end_device_ids": device_ids(application, &u.device_id, &u.dev_eui),
        "correlation_ids": ["as:up:01H0WZGT6Y7657CPFPE5WEYDSQ", "gs:conn:01H0WDEC6T5T4XXBAX7S1VMFKE"],
        "received_at": at,
        "uplink_message": Value::Object(up),
        "attributes": {"site": "greenhouse"},
        "a_field_of_a_future_version": {"x": [1, 2, 3]}
    })
    .to_string()
}

/// The join-accept message JSON.
pub fn join_json(
    application: &str,
    device_id: &str,
    dev_eui: &str,
    session_key_id: &str,
) -> String {
    let now = SystemTime::now();
    json!({
        "end_device_ids": device_ids(application, device_id, dev_eui),
        "correlation_ids": ["as:up:01E191YN5F2HMBQCBCVRF731VY"],
        "received_at": rfc3339(now, 9),
        "join_accept": {"session_key_id": session_key_id, "received_at": rfc3339(now - Duration::from_millis(200), 9)}
    })
    .to_string()
}

/// How a demo device behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Every frame arrives.
    Healthy,
    /// Every `n`th frame is lost on the radio side.
    Lossy(u32),
    /// Sends `n` frames, then nothing.
    Silent(u32),
    /// Joins again after every `n` frames (the counter restarts).
    Rejoining(u32),
}

/// A simulated device: its counter, session and what it is heard with.
#[derive(Debug, Clone)]
pub struct SimDevice {
    pub id: String,
    pub dev_eui: String,
    pub behaviour: Behaviour,
    pub f_cnt: u32,
    pub session: u32,
    pub sent: u32,
}

impl SimDevice {
    pub fn new(id: &str, dev_eui: &str, behaviour: Behaviour) -> SimDevice {
        SimDevice {
            id: id.to_string(),
            dev_eui: dev_eui.to_string(),
            behaviour,
            f_cnt: 0,
            session: 1,
            sent: 0,
        }
    }

    fn session_key(&self) -> String {
        format!("AXBSH1Pk6Z0G166RlH16C{:02}==", self.session % 100)
    }

    /// The messages (topic, body) of this device's next transmission; empty when it is lost
    /// or the device is silent.
    pub fn next(&mut self, application: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Behaviour::Silent(n) = self.behaviour {
            if self.sent >= n {
                return out;
            }
        }
        if let Behaviour::Rejoining(n) = self.behaviour {
            if self.sent > 0 && self.sent.is_multiple_of(n) && self.f_cnt != 0 {
                self.session += 1;
                self.f_cnt = 0;
                out.push((
                    topic(application, &self.id, "join"),
                    join_json(application, &self.id, &self.dev_eui, &self.session_key()),
                ));
            }
        }
        let f = self.f_cnt;
        self.f_cnt += 1;
        self.sent += 1;
        if let Behaviour::Lossy(n) = self.behaviour {
            if f % n == n - 1 {
                return out;
            }
        }
        let mut u = UplinkSpec::new(&self.id, &self.dev_eui, f);
        u.session_key_id = self.session_key();
        let t = 18.0 + f64::from(f % 10) / 4.0;
        u.decoded = Some(json!({"temperature_c": t, "humidity_pct": 40 + f % 7, "battery_v": 3.7}));
        if self.behaviour == Behaviour::Healthy {
            // Heard by one more gateway, through Packet Broker.
            u.heard.push(Heard::new("rincontech", None, -112.0, -8.0));
        }
        out.push((
            topic(application, &self.id, "up"),
            uplink_json(application, &u),
        ));
        out
    }
}

/// The demo's simulated application: a broker and four devices, one transmission each per
/// `tick`, once the relay has subscribed.
pub async fn start_demo(
    cancel: CancellationToken,
    interval_secs: u64,
) -> anyhow::Result<crate::sim::DemoUpstream> {
    let app = "demo-app@ttn";
    let key = "NNSXS.DEMOAPPKEY.NOTASECRET";
    let broker = Broker::start(cancel.clone(), &[(app, key)]).await?;
    let addr = broker.addr;
    let tick = Duration::from_millis(500);
    let mut devices = vec![
        SimDevice::new("feather-healthy", "70B3D57ED0000001", Behaviour::Healthy),
        SimDevice::new("feather-lossy", "70B3D57ED0000002", Behaviour::Lossy(3)),
        SimDevice::new("feather-silent", "70B3D57ED0000003", Behaviour::Silent(2)),
        SimDevice::new(
            "feather-rejoin",
            "70B3D57ED0000004",
            Behaviour::Rejoining(4),
        ),
    ];
    tokio::spawn(async move {
        let mut every = tokio::time::interval(tick);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            // QoS 0: nothing reaches a relay that has not subscribed yet.
            if broker.subscribers() == 0 {
                continue;
            }
            for d in &mut devices {
                for (t, body) in d.next(app) {
                    broker.publish(&t, body.as_bytes());
                }
            }
        }
    });
    Ok(crate::sim::DemoUpstream {
        source_toml: format!(
            "[[source]]\ntype = \"ttn_devices\"\nname = \"ttn-devices\"\nurl = \"mqtt://{addr}\"\napplication = \"{app}\"\napi_key = \"{key}\"\ninterval = \"{}s\"\nexpected_interval = \"1s\"\n",
            interval_secs.max(1)
        ),
        banner: format!(
            "a simulated The Things Stack MQTT server at mqtt://{addr} (4 devices: healthy, lossy, silent, rejoining)"
        ),
        showcase: vec![
            "ttn_device_uplinks_lost_total{".to_string(),
            "ttn_device_joins_total{".to_string(),
            "ttn_device_last_uplink_timestamp_seconds{".to_string(),
            "ttn_device_payload_value{".to_string(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ttn_devices::uplink::{parse, Event};

    #[test]
    fn generated_messages_read_back() {
        let mut u = UplinkSpec::new("d1", "70B3D57ED0000001", 0);
        u.heard.push(Heard::new("far-away", None, -115.0, 0.0));
        let body = uplink_json("app@ttn", &u);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["uplink_message"].get("f_cnt").is_none(),
            "frame 0 omits f_cnt: {body}"
        );
        let Ok(Some(Event::Uplink(up))) = parse(&topic("app@ttn", "d1", "up"), body.as_bytes())
        else {
            panic!("{body}")
        };
        assert_eq!(up.f_cnt, 0);
        assert_eq!(up.signals.len(), 3);
        assert_eq!(up.signals[2].gateway_id, "packetbroker/far-away");
        assert_eq!(up.signals[2].snr, Some(0.0), "omitted SNR of a LoRa uplink");
        assert_eq!(up.frequency_hz, Some(868_100_000.0));
        let mut d = SimDevice::new("r", "70B3D57ED0000004", Behaviour::Rejoining(2));
        let kinds: Vec<usize> = (0..5).map(|_| d.next("app").len()).collect();
        assert_eq!(
            kinds,
            [1, 1, 2, 1, 2],
            "a join before every 3rd transmission"
        );
        let mut l = SimDevice::new("l", "70B3D57ED0000002", Behaviour::Lossy(3));
        let sent: Vec<usize> = (0..6).map(|_| l.next("app").len()).collect();
        assert_eq!(sent, [1, 1, 0, 1, 1, 0]);
    }
}
