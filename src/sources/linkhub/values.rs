//! Reading the router's loosely typed fields: numbers as strings or numbers, "no service"
//! placeholders (`"FF"`, `"N/A"`, `"-1"`, empty), 3GPP ranges, network types and quality bands.

use serde_json::{Map, Value};

/// A field of a JSON object by its exact name, or else by the same name in any letter case
/// (firmware versions differ: `eNBID`, `eNBId`, `ENBID`).
pub fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A finite number from a JSON number or a string holding one (`"-95"`, `" 12.5 "`, `"-95dBm"`).
/// Anything else (`"FF"`, `"N/A"`, `""`, `null`, `true`, NaN) is absent.
pub fn number(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    if let Some(x) = crate::sources::json::number(v) {
        return Some(x);
    }
    // A unit after the number, as some firmware writes it: "-95dBm", "12 dB".
    let s = v.as_str()?.trim();
    let head = s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim();
    if head.is_empty() || head.len() == s.len() {
        return None;
    }
    // `"inf"` and `"NaN"` parse as floats but are not readings.
    head.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A number within `lo..=hi`; values outside are the router's placeholders, not readings.
pub fn in_range(v: Option<&Value>, lo: f64, hi: f64) -> Option<f64> {
    number(v).filter(|x| (lo..=hi).contains(x))
}

/// A non-negative count or byte total (counts above 2^53 lose precision in `f64`, as in
/// Prometheus itself).
pub fn non_negative(v: Option<&Value>) -> Option<f64> {
    number(v).filter(|x| *x >= 0.0)
}

/// Text a label can carry: trimmed, and absent when it is a "no service" placeholder.
pub fn text(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => n.to_string(),
        },
        _ => return None,
    };
    let placeholder = s.is_empty()
        || ["n/a", "na", "ff", "null", "none", "unknown", "--", "-"]
            .iter()
            .any(|p| s.eq_ignore_ascii_case(p));
    (!placeholder).then_some(s)
}

/// An identifier (cell id, eNB id): like [`text`], and also absent when it is `0` or `-1`,
/// which routers answer when they are not attached to a cell.
pub fn identifier(v: Option<&Value>) -> Option<String> {
    text(v).filter(|s| {
        let zero = s.trim_start_matches("0x").chars().all(|c| c == '0');
        !zero && s != "-1" && !s.eq_ignore_ascii_case("ffffffff")
    })
}

/// Signal ranges outside which a value is a placeholder. RSRP and RSRQ are the 3GPP
/// TS 36.133 reporting ranges; SINR and RSSI have no single 3GPP range, so these are wide
/// bounds that no real reading leaves (and that exclude `"FF"` = 255 and `"-1"`).
pub const RSRP_DBM: (f64, f64) = (-140.0, -44.0);
pub const RSRQ_DB: (f64, f64) = (-19.5, -3.0);
pub const SINR_DB: (f64, f64) = (-30.0, 50.0);
pub const RSSI_DBM: (f64, f64) = (-120.0, -20.0);
/// Bars: 0–4 on the HH41 (−1 = no service); some family members show 5.
pub const BARS: (f64, f64) = (0.0, 5.0);

/// `NetworkType` as a readable name. Codes the facts do not name are shown as their number.
pub fn network_type_name(v: Option<&Value>) -> Option<String> {
    let code = match number(v) {
        Some(x) if x.fract() == 0.0 => x as i64,
        // A firmware that already sends a name ("LTE").
        _ => return text(v),
    };
    let name = match code {
        0 => return None,
        1 => "GPRS",
        2 => "EDGE",
        3 => "HSPA",
        4 => "HSUPA",
        5 => "UMTS",
        6 => "HSPA+",
        7 => "DC-HSPA+",
        8 => "LTE",
        9 => "LTE+",
        16 => "5G",
        c if c < 0 => return None,
        c => return Some(c.to_string()),
    };
    Some(name.to_string())
}

/// A signal quality band, from Teltonika's LTE table (the exporter's dashboard uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Excellent,
    Good,
    Fair,
    Poor,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Excellent => "excellent",
            Band::Good => "good",
            Band::Fair => "fair",
            Band::Poor => "poor",
        }
    }

    /// RSRP (dBm): ≥ −80 excellent, −80…−90 good, −90…−100 fair, < −100 poor.
    pub fn rsrp(x: f64) -> Band {
        Self::by_floor(x, [-80.0, -90.0, -100.0])
    }
    /// RSRQ (dB): ≥ −10, −10…−15, −15…−20, < −20.
    pub fn rsrq(x: f64) -> Band {
        Self::by_floor(x, [-10.0, -15.0, -20.0])
    }
    /// SINR (dB): ≥ 20, 13…20, 0…13, < 0.
    pub fn sinr(x: f64) -> Band {
        Self::by_floor(x, [20.0, 13.0, 0.0])
    }
    /// RSSI (dBm): > −65, −65…−75, −75…−85, below −85 poor (the table's last two rows,
    /// −85…−95 and < −95, are both "poor" here).
    pub fn rssi(x: f64) -> Band {
        if x > -65.0 {
            Band::Excellent
        } else if x > -75.0 {
            Band::Good
        } else if x > -85.0 {
            Band::Fair
        } else {
            Band::Poor
        }
    }

    fn by_floor(x: f64, floors: [f64; 3]) -> Band {
        if x >= floors[0] {
            Band::Excellent
        } else if x >= floors[1] {
            Band::Good
        } else if x >= floors[2] {
            Band::Fair
        } else {
            Band::Poor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(v: Value) -> Option<f64> {
        number(Some(&v))
    }

    #[test]
    fn numbers_as_strings_or_numbers() {
        assert_eq!(n(json!("-95")), Some(-95.0));
        assert_eq!(n(json!(" 12.5 ")), Some(12.5));
        assert_eq!(n(json!(-7)), Some(-7.0));
        assert_eq!(n(json!("-95dBm")), Some(-95.0));
        assert_eq!(n(json!("8589934592")), Some(8589934592.0));
        assert_eq!(
            n(json!(18446744073709551615u64)),
            Some(1.8446744073709552e19)
        );
        for bad in [
            json!("FF"),
            json!("N/A"),
            json!(""),
            json!(null),
            json!(true),
            json!("NaN"),
            json!("inf"),
            json!({}),
            json!("dBm"),
        ] {
            assert_eq!(n(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn ranges_make_placeholders_absent_and_keep_zero() {
        let r = |v: Value, (lo, hi): (f64, f64)| in_range(Some(&v), lo, hi);
        assert_eq!(r(json!("FF"), SINR_DB), None);
        assert_eq!(r(json!("255"), SINR_DB), None);
        assert_eq!(r(json!("0"), SINR_DB), Some(0.0));
        assert_eq!(r(json!("-1"), RSRP_DBM), None);
        assert_eq!(r(json!("-141"), RSRP_DBM), None);
        assert_eq!(r(json!("-140"), RSRP_DBM), Some(-140.0));
        assert_eq!(r(json!("-44"), RSRP_DBM), Some(-44.0));
        assert_eq!(r(json!("-19.5"), RSRQ_DB), Some(-19.5));
        assert_eq!(r(json!("-20"), RSRQ_DB), None);
        assert_eq!(r(json!("0"), RSRQ_DB), None);
        assert_eq!(r(json!(-1), BARS), None);
        assert_eq!(r(json!(0), BARS), Some(0.0));
        assert_eq!(r(json!("-1"), RSSI_DBM), None);
    }

    #[test]
    fn placeholders_in_text_and_identifiers() {
        let t = |v: Value| text(Some(&v));
        let i = |v: Value| identifier(Some(&v));
        assert_eq!(t(json!("N/A")), None);
        assert_eq!(t(json!("  ")), None);
        assert_eq!(t(json!(" Vodafone ")), Some("Vodafone".into()));
        assert_eq!(t(json!(26202)), Some("26202".into()));
        assert_eq!(i(json!("0")), None);
        assert_eq!(i(json!(0)), None);
        assert_eq!(i(json!("-1")), None);
        assert_eq!(i(json!("000")), None);
        assert_eq!(i(json!("12345678")), Some("12345678".into()));
        assert_eq!(i(json!(12345678)), Some("12345678".into()));
        assert_eq!(i(json!("0A1B2C")), Some("0A1B2C".into()));
    }

    #[test]
    fn network_types() {
        let t = |v: Value| network_type_name(Some(&v));
        assert_eq!(t(json!(8)), Some("LTE".into()));
        assert_eq!(t(json!("9")), Some("LTE+".into()));
        assert_eq!(t(json!("16")), Some("5G".into()));
        assert_eq!(t(json!(0)), None);
        assert_eq!(t(json!("12")), Some("12".into()));
        assert_eq!(t(json!("LTE")), Some("LTE".into()));
        assert_eq!(t(json!("")), None);
    }

    #[test]
    fn case_insensitive_fields() {
        let o = json!({"eNBId": "1", "CellId": "2"});
        let o = o.as_object().unwrap();
        assert_eq!(field(o, "eNBID"), Some(&json!("1")));
        assert_eq!(field(o, "CellId"), Some(&json!("2")));
        assert_eq!(field(o, "Band"), None);
    }

    #[test]
    fn quality_bands() {
        assert_eq!(Band::rsrp(-80.0), Band::Excellent);
        assert_eq!(Band::rsrp(-85.0), Band::Good);
        assert_eq!(Band::rsrp(-100.0), Band::Fair);
        assert_eq!(Band::rsrp(-100.5), Band::Poor);
        assert_eq!(Band::rsrq(-12.0), Band::Good);
        assert_eq!(Band::sinr(13.0), Band::Good);
        assert_eq!(Band::sinr(-0.5), Band::Poor);
        assert_eq!(Band::rssi(-65.0), Band::Good);
        assert_eq!(Band::rssi(-60.0), Band::Excellent);
        assert_eq!(Band::rssi(-90.0), Band::Poor);
    }
}
