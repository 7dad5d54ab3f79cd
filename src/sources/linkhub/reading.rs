//! One poll's answers read into plain values, and those values as metric families and as the
//! `check` summary. A value the router did not give, or gave as a placeholder, is `None` and
//! emits no sample (the relay then sends that series a stale marker).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{Map, Value};

use super::values::{self, field, identifier, in_range, non_negative, text, Band};
use crate::model::{Family, Labels, MetricType};

/// The cell the router is attached to (all `None` when there is no service).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Network {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub cell_id: Option<String>,
    pub enb_id: Option<String>,
    pub band: Option<String>,
    pub plmn: Option<String>,
}

/// The device, without IMEI, IMSI or ICCID (personal data, never read into here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Device {
    pub name: Option<String>,
    pub software: Option<String>,
    pub hardware: Option<String>,
}

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub sinr: Option<f64>,
    pub rsrp: Option<f64>,
    pub rsrq: Option<f64>,
    pub rssi: Option<f64>,
    pub bars: Option<f64>,
    pub network: Network,
    pub connection_status: Option<f64>,
    pub connection_seconds: Option<f64>,
    pub devices: Option<f64>,
    pub month_upload: Option<f64>,
    pub month_download: Option<f64>,
    /// `HUseData`, or upload + download when the router gives no total.
    pub month_total: Option<f64>,
    /// `MonthlyPlan` when set (0 means no plan).
    pub month_plan: Option<f64>,
    pub session_upload: Option<f64>,
    pub session_download: Option<f64>,
    pub device: Device,
}

/// A whole number within `lo..=hi`.
fn code(v: Option<&Value>, lo: f64, hi: f64) -> Option<f64> {
    in_range(v, lo, hi).filter(|x| x.fract() == 0.0)
}

impl Reading {
    /// Reads the answers of the methods that answered (keyed by method name).
    pub fn from_answers(answers: &BTreeMap<&'static str, Map<String, Value>>) -> Reading {
        let empty = Map::new();
        let get = |m: &str| answers.get(m).unwrap_or(&empty);
        let (ni, ss, ur, cs, si) = (
            get("GetNetworkInfo"),
            get("GetSystemStatus"),
            get("GetUsageRecord"),
            get("GetConnectionState"),
            get("GetSystemInfo"),
        );
        let range =
            |o: &Map<String, Value>, k: &str, (lo, hi): (f64, f64)| in_range(field(o, k), lo, hi);
        let either = |a: Option<f64>, b: Option<f64>| a.or(b);

        let plmn = identifier(field(ni, "PLMN")).or_else(|| {
            match (identifier(field(ni, "mcc")), text(field(ni, "mnc"))) {
                (Some(mcc), Some(mnc)) => Some(format!("{mcc}{mnc}")),
                _ => None,
            }
        });
        let network_type = values::network_type_name(field(ni, "NetworkType"))
            .or_else(|| values::network_type_name(field(ss, "NetworkType")));
        let mut network = Network {
            name: text(field(ni, "NetworkName")),
            kind: network_type,
            cell_id: identifier(field(ni, "CellId")),
            enb_id: identifier(field(ni, "eNBID")),
            band: identifier(field(ni, "Band")),
            plmn,
        };
        if network.cell_id.is_none() && network.name.is_none() {
            // No service: a network type or band alone names no cell.
            network = Network::default();
        }
        let devices = non_negative(field(ss, "TotalConnNum")).or_else(|| {
            match (
                non_negative(field(ss, "curr_num_2g")),
                non_negative(field(ss, "curr_num_5g")),
            ) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            }
        });
        let month_upload = non_negative(field(ur, "HCurrUseUL"));
        let month_download = non_negative(field(ur, "HCurrUseDL"));
        let month_total =
            non_negative(field(ur, "HUseData")).or(match (month_upload, month_download) {
                (Some(u), Some(d)) => Some(u + d),
                _ => None,
            });
        Reading {
            sinr: range(ni, "SINR", values::SINR_DB),
            rsrp: range(ni, "RSRP", values::RSRP_DBM),
            rsrq: range(ni, "RSRQ", values::RSRQ_DB),
            rssi: range(ni, "RSSI", values::RSSI_DBM),
            bars: either(
                code(field(ni, "SignalStrength"), values::BARS.0, values::BARS.1),
                code(field(ss, "SignalStrength"), values::BARS.0, values::BARS.1),
            ),
            network,
            connection_status: either(
                code(field(ss, "ConnectionStatus"), 0.0, 3.0),
                code(field(cs, "ConnectionStatus"), 0.0, 3.0),
            ),
            connection_seconds: either(
                non_negative(field(cs, "ConnectionTime")),
                non_negative(field(ur, "CurrConnTimes")),
            ),
            devices,
            month_upload,
            month_download,
            month_total,
            month_plan: non_negative(field(ur, "MonthlyPlan")).filter(|p| *p > 0.0),
            session_upload: non_negative(field(cs, "UlBytes")),
            session_download: non_negative(field(cs, "DlBytes")),
            device: Device {
                name: text(field(si, "DeviceName")),
                software: text(field(si, "SwVersion")),
                hardware: text(field(si, "HwVersion")),
            },
        }
    }

    /// The families of this reading; `cell_changes` is the carried counter.
    pub fn families(&self, cell_changes: u64, compat: bool) -> Vec<Family> {
        let mut out = Vec::new();
        let gauge = |out: &mut Vec<Family>, name: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                let mut f = Family::new(name, MetricType::Gauge, help);
                f.push(Labels::new(), v);
                out.push(f);
            }
        };
        gauge(
            &mut out,
            "linkhub_sinr_db",
            "Signal to interference plus noise ratio (dB).",
            self.sinr,
        );
        gauge(
            &mut out,
            "linkhub_rsrp_dbm",
            "Reference signal received power (dBm).",
            self.rsrp,
        );
        gauge(
            &mut out,
            "linkhub_rsrq_db",
            "Reference signal received quality (dB).",
            self.rsrq,
        );
        gauge(
            &mut out,
            "linkhub_rssi_dbm",
            "Received signal strength indicator (dBm).",
            self.rssi,
        );
        gauge(
            &mut out,
            "linkhub_signal_bars",
            "Signal bars shown by the router (0-4).",
            self.bars,
        );
        if let Some(l) = self.present_labels(&[
            ("network_name", &self.network.name),
            ("network_type", &self.network.kind),
            ("cell_id", &self.network.cell_id),
            ("enb_id", &self.network.enb_id),
            ("band", &self.network.band),
            ("plmn", &self.network.plmn),
        ]) {
            let mut f = Family::new(
                "linkhub_network_info",
                MetricType::Gauge,
                "The cell the router is attached to (1); absent without service.",
            );
            f.push(l, 1.0);
            out.push(f);
        }
        let mut f = Family::new(
            "linkhub_cell_changes_total",
            MetricType::Counter,
            "Cell changes seen between polls (handovers).",
        );
        f.push(Labels::new(), cell_changes as f64);
        out.push(f);
        gauge(
            &mut out,
            "linkhub_connection_status",
            "Mobile data connection: 0 disconnected, 1 connecting, 2 connected, 3 disconnecting.",
            self.connection_status,
        );
        gauge(
            &mut out,
            "linkhub_connection_seconds",
            "Time since the mobile data connection was set up.",
            self.connection_seconds,
        );
        gauge(
            &mut out,
            "linkhub_connected_devices",
            "Devices attached to the router.",
            self.devices,
        );
        gauge(
            &mut out,
            "linkhub_month_upload_bytes",
            "Bytes uploaded this month on the home network (drops at the month boundary).",
            self.month_upload,
        );
        gauge(
            &mut out,
            "linkhub_month_download_bytes",
            "Bytes downloaded this month on the home network (drops at the month boundary).",
            self.month_download,
        );
        gauge(
            &mut out,
            "linkhub_month_plan_bytes",
            "Monthly data plan, when one is set.",
            self.month_plan,
        );
        gauge(
            &mut out,
            "linkhub_session_upload_bytes",
            "Bytes uploaded in this connection.",
            self.session_upload,
        );
        gauge(
            &mut out,
            "linkhub_session_download_bytes",
            "Bytes downloaded in this connection.",
            self.session_download,
        );
        if let Some(l) = self.present_labels(&[
            ("device_name", &self.device.name),
            ("software_version", &self.device.software),
            ("hardware_version", &self.device.hardware),
        ]) {
            let mut f = Family::new(
                "linkhub_device_info",
                MetricType::Gauge,
                "The router's model and versions (1).",
            );
            f.push(l, 1.0);
            out.push(f);
        }
        if compat {
            self.compat_families(&mut out);
        }
        out
    }

    /// linkhub-prometheus-exporter 0.4.0's names, for its dashboard.
    fn compat_families(&self, out: &mut Vec<Family>) {
        let mut gauge = |name: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                let mut f = Family::new(name, MetricType::Gauge, help);
                f.push(Labels::new(), v);
                out.push(f);
            }
        };
        gauge(
            "sinr",
            "SINR (dB), linkhub-prometheus-exporter name.",
            self.sinr,
        );
        gauge(
            "rssi",
            "RSSI (dBm), linkhub-prometheus-exporter name.",
            self.rssi,
        );
        gauge(
            "rsrp",
            "RSRP (dBm), linkhub-prometheus-exporter name.",
            self.rsrp,
        );
        gauge(
            "rsrq",
            "RSRQ (dB), linkhub-prometheus-exporter name.",
            self.rsrq,
        );
        gauge(
            "signal_strength",
            "Signal bars, linkhub-prometheus-exporter name.",
            self.bars,
        );
        gauge(
            "connected_devices",
            "Attached devices, linkhub-prometheus-exporter name.",
            self.devices,
        );
        gauge(
            "connection_time",
            "Connection time (s), linkhub-prometheus-exporter name.",
            self.connection_seconds,
        );
        gauge(
            "total_upload_this_month",
            "Bytes uploaded this month, linkhub-prometheus-exporter name.",
            self.month_upload,
        );
        gauge(
            "total_download_this_month",
            "Bytes downloaded this month, linkhub-prometheus-exporter name.",
            self.month_download,
        );
        gauge(
            "total_transfer_this_month",
            "Bytes moved this month, linkhub-prometheus-exporter name.",
            self.month_total,
        );
        gauge(
            "linkhub_up",
            "1: the router answered this poll (linkhub-prometheus-exporter name).",
            Some(1.0),
        );
        if let Some(l) = self.present_labels(&[
            ("cell_id", &self.network.cell_id),
            ("network_name", &self.network.name),
        ]) {
            let mut f = Family::new(
                "network_info_info",
                MetricType::Gauge,
                "Cell and network, linkhub-prometheus-exporter name.",
            );
            f.push(l, 1.0);
            out.push(f);
        }
    }

    /// A label set of the values present, or `None` when none is.
    fn present_labels(&self, pairs: &[(&str, &Option<String>)]) -> Option<Labels> {
        let present: Vec<(&str, &str)> = pairs
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
            .collect();
        if present.is_empty() {
            return None;
        }
        // The names are constants and valid; values are never empty here.
        Labels::from_pairs(present).ok()
    }

    /// The `check` table: signal with quality bands, cell, connection, this month's usage.
    pub fn summary(&self, cell_changes: u64, missing: &BTreeSet<&'static str>) -> String {
        let mut o = String::new();
        let sig = |name: &str, v: Option<f64>, unit: &str, band: fn(f64) -> Band| match v {
            Some(x) => format!("{name} {} {unit} ({})", num(x), band(x).as_str()),
            None => format!("{name} absent"),
        };
        let bars = match self.bars {
            Some(b) => format!("{} of 4 bars", num(b)),
            None => "no bars".to_string(),
        };
        let _ = writeln!(
            o,
            "  signal      {}, {}, {}, {}, {bars}",
            sig("SINR", self.sinr, "dB", Band::sinr),
            sig("RSRP", self.rsrp, "dBm", Band::rsrp),
            sig("RSRQ", self.rsrq, "dB", Band::rsrq),
            sig("RSSI", self.rssi, "dBm", Band::rssi),
        );
        let n = &self.network;
        let cell = if n.cell_id.is_none() && n.name.is_none() {
            "no service".to_string()
        } else {
            let mut parts = Vec::new();
            let mut add = |label: &str, v: &Option<String>| {
                if let Some(v) = v {
                    parts.push(format!("{label}{v}"));
                }
            };
            add("", &n.kind);
            add("", &n.name);
            add("cell ", &n.cell_id);
            add("eNB ", &n.enb_id);
            add("band ", &n.band);
            add("PLMN ", &n.plmn);
            parts.join(", ")
        };
        let _ = writeln!(o, "  cell        {cell}; {cell_changes} cell changes seen");
        let status = match self.connection_status.map(|s| s as i64) {
            Some(0) => "disconnected",
            Some(1) => "connecting",
            Some(2) => "connected",
            Some(3) => "disconnecting",
            _ => "status unknown",
        };
        let mut conn = status.to_string();
        if let Some(s) = self.connection_seconds {
            let d = std::time::Duration::from_secs(s as u64);
            let _ = write!(conn, " for {}", humantime::format_duration(d));
        }
        if let Some(d) = self.devices {
            let _ = write!(conn, ", {} devices", num(d));
        }
        if let (Some(u), Some(d)) = (self.session_upload, self.session_download) {
            let _ = write!(conn, ", this session {} up, {} down", bytes(u), bytes(d));
        }
        let _ = writeln!(o, "  connection  {conn}");
        let mut month = match (self.month_upload, self.month_download) {
            (Some(u), Some(d)) => format!("{} up, {} down", bytes(u), bytes(d)),
            _ => "usage not offered".to_string(),
        };
        if let (Some(t), Some(p)) = (self.month_total, self.month_plan) {
            let _ = write!(
                month,
                ", {} of a {} plan ({:.0}%)",
                bytes(t),
                bytes(p),
                100.0 * t / p
            );
        } else if let Some(t) = self.month_total {
            let _ = write!(month, ", {} in all, no plan set", bytes(t));
        }
        let _ = writeln!(o, "  month       {month}");
        let d = &self.device;
        if let Some(name) = &d.name {
            let _ = writeln!(
                o,
                "  device      {name} (software {}, hardware {})",
                d.software.as_deref().unwrap_or("?"),
                d.hardware.as_deref().unwrap_or("?")
            );
        }
        if !missing.is_empty() {
            let list: Vec<&str> = missing.iter().copied().collect();
            let _ = writeln!(o, "  not offered {}", list.join(", "));
        }
        o
    }
}

/// A reading as text: integers without a fraction.
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Bytes in binary units.
fn bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{} B", num(b))
    } else {
        format!("{v:.2} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answers(pairs: &[(&'static str, Value)]) -> BTreeMap<&'static str, Map<String, Value>> {
        pairs
            .iter()
            .map(|(k, v)| (*k, v.as_object().unwrap().clone()))
            .collect()
    }

    fn text_of(fams: &[Family]) -> String {
        crate::expfmt::to_text(fams, false)
    }

    #[test]
    fn hh41_payload() {
        let r = Reading::from_answers(&answers(&[
            (
                "GetNetworkInfo",
                json!({"PLMN":"26202","NetworkType":8,"NetworkName":"Vodafone.de","Spn":"",
                       "Roaming":0,"SignalStrength":3,"CellId":"27948290","eNBID":"109173",
                       "Band":"3","SINR":"14","RSRP":"-87","RSRQ":"-9","RSSI":"-63","mcc":"262","mnc":"02"}),
            ),
            (
                "GetSystemStatus",
                json!({"ConnectionStatus":2,"TotalConnNum":4,"curr_num_2g":3,"curr_num_5g":1,"SignalStrength":3,"NetworkType":8}),
            ),
            (
                "GetUsageRecord",
                json!({"CurrConnTimes":"7385","HCurrUseUL":"1288490188","HCurrUseDL":"11106127462",
                       "HUseData":"12394617650","RCurrUseUL":0,"RCurrUseDL":0,"RoamUseData":0,"MonthlyPlan":"53687091200"}),
            ),
            (
                "GetConnectionState",
                json!({"ConnectionStatus":2,"ConnectionTime":7385,"UlBytes":12910592,"DlBytes":362344448,
                       "UlRate":"1200","DlRate":"56000","IPv4Adrress":"10.64.12.7"}),
            ),
            (
                "GetSystemInfo",
                json!({"DeviceName":"LINKHUB HH41","SwVersion":"HH41_UD_02.00_05","HwVersion":"HH41NH-2",
                       "IMEI":"359999999999999","IMSI":"262029999999999","ICCID":"8949029999999999999"}),
            ),
        ]));
        let t = text_of(&r.families(2, false));
        for want in [
            "linkhub_sinr_db 14\n",
            "linkhub_rsrp_dbm -87\n",
            "linkhub_rsrq_db -9\n",
            "linkhub_rssi_dbm -63\n",
            "linkhub_signal_bars 3\n",
            "linkhub_network_info{band=\"3\",cell_id=\"27948290\",enb_id=\"109173\",network_name=\"Vodafone.de\",network_type=\"LTE\",plmn=\"26202\"} 1\n",
            "linkhub_cell_changes_total 2\n",
            "linkhub_connection_status 2\n",
            "linkhub_connection_seconds 7385\n",
            "linkhub_connected_devices 4\n",
            "linkhub_month_upload_bytes 1288490188\n",
            "linkhub_month_download_bytes 11106127462\n",
            "linkhub_month_plan_bytes 53687091200\n",
            "linkhub_session_upload_bytes 12910592\n",
            "linkhub_session_download_bytes 362344448\n",
            "linkhub_device_info{device_name=\"LINKHUB HH41\",hardware_version=\"HH41NH-2\",software_version=\"HH41_UD_02.00_05\"} 1\n",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        for never in [
            "359999999999999",
            "262029999999999",
            "8949029999999999999",
            "10.64.12.7",
            "sinr ",
        ] {
            assert!(!t.contains(never), "{never} in\n{t}");
        }
        let c = text_of(&r.families(2, true));
        for want in [
            "sinr 14\n",
            "rssi -63\n",
            "rsrp -87\n",
            "rsrq -9\n",
            "signal_strength 3\n",
            "connected_devices 4\n",
            "connection_time 7385\n",
            "network_info_info{cell_id=\"27948290\",network_name=\"Vodafone.de\"} 1\n",
            "total_upload_this_month 1288490188\n",
            "total_download_this_month 11106127462\n",
            "total_transfer_this_month 12394617650\n",
            "linkhub_up 1\n",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        let s = r.summary(2, &BTreeSet::new());
        assert!(s.contains("SINR 14 dB (good)"), "{s}");
        assert!(s.contains("RSRP -87 dBm (good)"), "{s}");
        assert!(s.contains("RSRQ -9 dB (excellent)"), "{s}");
        assert!(s.contains("RSSI -63 dBm (excellent)"), "{s}");
        assert!(s.contains("LTE, Vodafone.de, cell 27948290"), "{s}");
        assert!(s.contains("2 cell changes"), "{s}");
        assert!(s.contains("connected for 2h 3m 5s, 4 devices"), "{s}");
        assert!(
            s.contains("1.20 GiB up, 10.34 GiB down, 11.54 GiB of a 50.00 GiB plan (23%)"),
            "{s}"
        );
    }

    #[test]
    fn no_service_is_absent_and_zero_is_a_value() {
        let r = Reading::from_answers(&answers(&[
            (
                "GetNetworkInfo",
                json!({"PLMN":"","NetworkType":0,"NetworkName":"N/A","SignalStrength":-1,"CellId":"0",
                       "eNBID":"","Band":"","SINR":"FF","RSRP":"-1","RSRQ":"","RSSI":"N/A"}),
            ),
            (
                "GetSystemStatus",
                json!({"ConnectionStatus":0,"TotalConnNum":0,"NetworkType":0}),
            ),
            (
                "GetUsageRecord",
                json!({"HCurrUseUL":0,"HCurrUseDL":"0","HUseData":0,"MonthlyPlan":0}),
            ),
        ]));
        let t = text_of(&r.families(0, true));
        for never in [
            "linkhub_sinr_db",
            "linkhub_rsrp_dbm",
            "linkhub_rsrq_db",
            "linkhub_rssi_dbm",
            "linkhub_signal_bars",
            "linkhub_network_info",
            "network_info_info",
            "linkhub_month_plan_bytes",
            "\nsinr",
            "\nrsrp",
        ] {
            assert!(!t.contains(never), "{never} in\n{t}");
        }
        for want in [
            "linkhub_connection_status 0\n",
            "linkhub_connected_devices 0\n",
            "linkhub_month_upload_bytes 0\n",
            "linkhub_month_download_bytes 0\n",
            "total_transfer_this_month 0\n",
            "linkhub_cell_changes_total 0\n",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        let s = r.summary(0, &BTreeSet::new());
        assert!(s.contains("SINR absent") && s.contains("no service"), "{s}");

        // A real 0 dB SINR is a reading.
        let r = Reading::from_answers(&answers(&[(
            "GetNetworkInfo",
            json!({"SINR":"0","SignalStrength":0}),
        )]));
        let t = text_of(&r.families(0, false));
        assert!(
            t.contains("linkhub_sinr_db 0\n") && t.contains("linkhub_signal_bars 0\n"),
            "{t}"
        );
    }

    #[test]
    fn liberal_shapes() {
        // Numbers instead of strings, unknown keys, odd letter case, mcc+mnc instead of PLMN,
        // device counts split by band, usage past 2^32 as JSON numbers.
        let r = Reading::from_answers(&answers(&[
            (
                "GetNetworkInfo",
                json!({"sinr":12.5,"rsrp":-101,"RSRQ":-15.5,"CellID":"0A1B2C","mcc":"208","mnc":"01","NetworkName":"Orange F","NetworkType":"LTE","NewField":[1]}),
            ),
            (
                "GetSystemStatus",
                json!({"curr_num_2g":"2","curr_num_5g":"1","ConnectionStatus":"2"}),
            ),
            (
                "GetUsageRecord",
                json!({"HCurrUseUL":5000000000u64,"HCurrUseDL":6000000000u64}),
            ),
        ]));
        assert_eq!(r.sinr, Some(12.5));
        assert_eq!(r.rsrp, Some(-101.0));
        assert_eq!(r.rsrq, Some(-15.5));
        assert_eq!(r.network.cell_id.as_deref(), Some("0A1B2C"));
        assert_eq!(r.network.plmn.as_deref(), Some("20801"));
        assert_eq!(r.network.kind.as_deref(), Some("LTE"));
        assert_eq!(r.devices, Some(3.0));
        assert_eq!(r.connection_status, Some(2.0));
        assert_eq!(r.month_total, Some(11e9));
        assert_eq!(r.month_plan, None);
    }
}
