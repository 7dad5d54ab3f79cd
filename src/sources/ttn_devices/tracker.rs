//! What the source knows about each device, carried across restarts: counters, the frame
//! counter and session of the last uplink, its radio metadata and sensor values.
//!
//! **Lost uplinks** are gaps in `f_cnt` within one session: after frame 10, frame 14 means 11,
//! 12 and 13 never reached the network. A new session starts the count again without a loss:
//! a join-accept (`…/join`), a new `session_key_id` (a join the relay did not see), or a counter
//! that went back (an ABP device that reset). Its first frame may be 0 or 1; frames before it
//! (a first frame of 5 after a join) are lost. The first uplink of a device the relay has never
//! seen counts nothing. A frame with the same counter as the last one is a retransmission (or,
//! with the same `received_at`, the same message twice): it refreshes last-heard and the radio
//! metadata but is not counted again.
//!
//! **Relay downtime is not radio loss.** The MQTT server keeps nothing for a disconnected
//! client (QoS 0), so every uplink sent while the relay was stopped or its session was down is
//! gone for the relay. Each subscription opens a new *epoch* (a number kept in the state
//! file); each device remembers the epoch of its last message. A gap between two uplinks of
//! the same epoch happened while the relay listened the whole time: lost on the radio side. A
//! gap across epochs spans a time the relay was not listening, so it is counted apart, as
//! `missed` (`ttn_device_uplinks_missed_total`), never as lost. That errs on the side of
//! reporting less loss: radio losses during an outage of the relay are counted as missed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::uplink::{Join, Signal, Uplink};

/// Most devices tracked per source; uplinks of further devices are ignored (memory bound).
pub const MAX_DEVICES: usize = 10_000;

/// The persisted state of one source (`state_dir/sources/<name>.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Saved {
    /// Bumped at every subscription (see the module comment).
    pub epoch: u64,
    pub devices: BTreeMap<String, Device>,
    /// Messages on the subscribed topics that could not be read.
    pub invalid_messages: u64,
}

/// One device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_eui: Option<String>,
    /// When its last uplink reached the Application Server (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_uplink: Option<f64>,
    /// When the relay last had a message from it (local clock, ms), for `forget_after`.
    pub last_heard_ms: i64,
    pub uplinks: u64,
    pub lost: u64,
    pub missed: u64,
    pub joins: u64,
    pub retransmissions: u64,
    pub airtime_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_key_id: Option<String>,
    /// The frame counter of the last uplink of the current session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f_cnt: Option<u32>,
    /// The epoch of its last message.
    pub epoch: u64,
    /// A join was seen since the last uplink: the next one starts a session.
    pub join_pending: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_join_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spreading_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_hz: Option<f64>,
    /// The gateways that heard the last uplink, strongest first.
    pub signals: Vec<Signal>,
    /// Sensor values: the last one of each field.
    pub values: BTreeMap<String, f64>,
}

impl Device {
    /// Lost as a share of the frames sent while the relay listened.
    pub fn loss_ratio(&self) -> Option<f64> {
        let sent = self.uplinks + self.lost;
        (sent > 0).then(|| self.lost as f64 / sent as f64)
    }
}

/// What one uplink did to the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A new frame; `lost`/`missed` frames before it.
    Counted { lost: u64, missed: u64 },
    /// The last frame again, received later.
    Retransmission,
    /// The very same message again.
    Duplicate,
    /// A Console-simulated uplink: not a radio frame, ignored.
    Simulated,
    /// A new device beyond [`MAX_DEVICES`]: ignored.
    TooMany,
}

impl Saved {
    /// Starts a new epoch (a new subscription).
    pub fn new_epoch(&mut self) {
        self.epoch += 1;
    }

    fn device(&mut self, id: &str, dev_eui: &Option<String>) -> Option<&mut Device> {
        if !self.devices.contains_key(id) && self.devices.len() >= MAX_DEVICES {
            return None;
        }
        let d = self.devices.entry(id.to_string()).or_default();
        if dev_eui.is_some() {
            d.dev_eui.clone_from(dev_eui);
        }
        Some(d)
    }

    /// Takes in an uplink, with its sensor values already read from `decoded_payload`; a
    /// device keeps at most `max_values` fields (the first ones it sent).
    pub fn uplink(
        &mut self,
        u: &Uplink,
        values: Option<BTreeMap<String, f64>>,
        max_values: usize,
        now_ms: i64,
    ) -> Seen {
        if u.simulated {
            return Seen::Simulated;
        }
        let epoch = self.epoch;
        let Some(d) = self.device(&u.device_id, &u.dev_eui) else {
            return Seen::TooMany;
        };
        let now = now_ms as f64 / 1000.0;
        // A clock far ahead of ours is not believed.
        let at = u.received_at.filter(|t| *t <= now + 300.0).unwrap_or(now);
        d.last_heard_ms = now_ms;
        let f = u.f_cnt;
        let same_key = match (&u.session_key_id, &d.session_key_id) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if !d.join_pending && same_key && d.f_cnt == Some(f) {
            if d.last_uplink == Some(at) {
                return Seen::Duplicate;
            }
            d.retransmissions += 1;
            d.airtime_seconds += u.airtime_seconds.unwrap_or(0.0);
            radio(d, u, at, values, max_values);
            d.epoch = epoch;
            return Seen::Retransmission;
        }
        let continuous = d.epoch == epoch;
        let first = d.f_cnt.is_none() && !d.join_pending;
        let went_back = d.f_cnt.is_some_and(|last| f < last);
        let gap = if first {
            0
        } else if d.join_pending || !same_key || went_back {
            if !same_key && !d.join_pending {
                // A new session key without a join-accept: a join the relay did not see.
                d.joins += 1;
            }
            // A new session: frames 0 and 1 are clean starts.
            u64::from(f.saturating_sub(1))
        } else {
            u64::from(f - d.f_cnt.unwrap_or(f)).saturating_sub(1)
        };
        let (lost, missed) = if continuous { (gap, 0) } else { (0, gap) };
        d.lost += lost;
        d.missed += missed;
        d.uplinks += 1;
        d.airtime_seconds += u.airtime_seconds.unwrap_or(0.0);
        d.f_cnt = Some(f);
        if u.session_key_id.is_some() {
            d.session_key_id.clone_from(&u.session_key_id);
        }
        d.join_pending = false;
        d.epoch = epoch;
        radio(d, u, at, values, max_values);
        Seen::Counted { lost, missed }
    }

    /// Takes in a join-accept; false for the same join-accept twice (or too many devices).
    pub fn join(&mut self, j: &Join, now_ms: i64) -> bool {
        let epoch = self.epoch;
        let Some(d) = self.device(&j.device_id, &j.dev_eui) else {
            return false;
        };
        d.last_heard_ms = now_ms;
        let same = match (&j.session_key_id, &d.session_key_id) {
            (Some(a), Some(b)) => a == b,
            _ => d.join_pending && j.received_at.is_some() && j.received_at == d.last_join_at,
        };
        if same && d.join_pending {
            return false;
        }
        d.joins += 1;
        d.join_pending = true;
        d.last_join_at = j.received_at;
        if j.session_key_id.is_some() {
            d.session_key_id.clone_from(&j.session_key_id);
        }
        d.epoch = epoch;
        true
    }

    /// Drops devices not heard from for `forget_after_ms`, except those `keep` names.
    pub fn forget(&mut self, now_ms: i64, forget_after_ms: i64, keep: impl Fn(&str) -> bool) {
        self.devices
            .retain(|id, d| keep(id) || now_ms.saturating_sub(d.last_heard_ms) <= forget_after_ms);
    }
}

/// The last uplink's radio metadata and values.
fn radio(d: &mut Device, u: &Uplink, at: f64, values: Option<BTreeMap<String, f64>>, max: usize) {
    d.last_uplink = Some(d.last_uplink.map_or(at, |old| old.max(at)));
    if u.spreading_factor.is_some() || u.frequency_hz.is_some() {
        d.spreading_factor = u.spreading_factor;
        d.frequency_hz = u.frequency_hz;
    }
    d.signals.clone_from(&u.signals);
    for (k, v) in values.into_iter().flatten() {
        if d.values.len() < max || d.values.contains_key(&k) {
            d.values.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(f: u32, key: &str) -> Uplink {
        Uplink {
            device_id: "d".into(),
            f_cnt: f,
            session_key_id: (!key.is_empty()).then(|| key.to_string()),
            received_at: Some(1000.0 + f64::from(f)),
            airtime_seconds: Some(0.5),
            ..Default::default()
        }
    }

    fn join(key: &str) -> Join {
        Join {
            device_id: "d".into(),
            session_key_id: Some(key.into()),
            received_at: Some(5.0),
            ..Default::default()
        }
    }

    /// "Now" in the tests, well after the uplinks' `received_at`.
    const T: i64 = 10_000_000;

    fn dev(s: &Saved) -> &Device {
        &s.devices["d"]
    }

    #[test]
    fn gaps_sessions_and_duplicates() {
        let mut s = Saved::default();
        s.new_epoch();
        let c = |lost, missed| Seen::Counted { lost, missed };
        assert_eq!(
            s.uplink(&up(100, "k1"), None, 32, T + 1),
            c(0, 0),
            "first sighting counts nothing"
        );
        assert_eq!(s.uplink(&up(101, "k1"), None, 32, T + 2), c(0, 0));
        assert_eq!(s.uplink(&up(105, "k1"), None, 32, T + 3), c(3, 0));
        // The same message twice, then a retransmission of the same frame.
        assert_eq!(s.uplink(&up(105, "k1"), None, 32, T + 4), Seen::Duplicate);
        let mut re = up(105, "k1");
        re.received_at = Some(2000.0);
        assert_eq!(s.uplink(&re, None, 32, T + 5), Seen::Retransmission);
        assert_eq!(dev(&s).last_uplink, Some(2000.0));
        // A join, then its first frame (0, f_cnt omitted) and a duplicate join.
        assert!(s.join(&join("k2"), T + 6));
        assert!(!s.join(&join("k2"), T + 7));
        assert_eq!(s.uplink(&up(0, "k2"), None, 32, T + 8), c(0, 0));
        assert_eq!(s.uplink(&up(3, "k2"), None, 32, T + 9), c(2, 0));
        // A join missed (new key, no join-accept): a new session, counted as a join.
        assert_eq!(s.uplink(&up(1, "k3"), None, 32, T + 10), c(0, 0));
        assert_eq!(s.uplink(&up(9, "k3"), None, 32, T + 11), c(7, 0));
        // A reset without a new key (ABP): the counter went back.
        assert_eq!(s.uplink(&up(1, ""), None, 32, T + 12), c(0, 0));
        // A join whose first seen frame is 4: frames 1..3 lost.
        assert!(s.join(&join("k4"), T + 13));
        assert_eq!(s.uplink(&up(4, "k4"), None, 32, T + 14), c(3, 0));
        let d = dev(&s);
        assert_eq!(
            (d.uplinks, d.lost, d.missed, d.joins, d.retransmissions),
            (9, 15, 0, 3, 1)
        );
        assert_eq!(d.airtime_seconds, 5.0);
        assert!((d.loss_ratio().unwrap() - 15.0 / 24.0).abs() < 1e-12);
        assert_eq!(
            s.uplink(
                &Uplink {
                    simulated: true,
                    ..up(9, "k4")
                },
                None,
                32,
                T + 15
            ),
            Seen::Simulated
        );
        assert_eq!(dev(&s).f_cnt, Some(4));
    }

    #[test]
    fn gaps_across_a_relay_outage_are_missed_not_lost() {
        let mut s = Saved::default();
        s.new_epoch();
        s.uplink(&up(10, "k"), None, 32, T + 1);
        s.uplink(&up(12, "k"), None, 32, T + 2);
        // The relay restarts (state reloaded), subscribes again: a new epoch.
        let mut s: Saved = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        s.new_epoch();
        assert_eq!(
            s.uplink(&up(20, "k"), None, 32, T + 3),
            Seen::Counted { lost: 0, missed: 7 }
        );
        assert_eq!(
            s.uplink(&up(22, "k"), None, 32, T + 4),
            Seen::Counted { lost: 1, missed: 0 }
        );
        let d = dev(&s);
        assert_eq!((d.uplinks, d.lost, d.missed), (4, 2, 7));
    }

    #[test]
    fn values_radio_and_forgetting() {
        let mut s = Saved::default();
        let mut u = up(1, "k");
        u.spreading_factor = Some(9.0);
        u.signals = vec![Signal {
            gateway_id: "g".into(),
            rssi: Some(-80.0),
            snr: Some(2.0),
        }];
        let v = |k: &str, x: f64| Some([(k.to_string(), x)].into_iter().collect());
        s.uplink(&u, v("t", 1.0), 32, 1_000);
        let mut u2 = up(2, "k");
        u2.received_at = Some(1e12); // far in the future: our clock is used instead
        s.uplink(&u2, v("h", 2.0), 32, 2_000);
        let d = dev(&s);
        assert_eq!(d.values.len(), 2, "a field left out keeps its last value");
        assert_eq!(
            d.spreading_factor,
            Some(9.0),
            "kept when the uplink says nothing"
        );
        assert!(d.signals.is_empty());
        assert_eq!(d.last_uplink, Some(2.0));
        s.forget(10_000, 5_000, |_| false);
        assert!(s.devices.is_empty());
        s.uplink(&up(1, "k"), None, 32, 1_000);
        s.forget(10_000, 5_000, |id| id == "d");
        assert_eq!(s.devices.len(), 1);
    }
}
