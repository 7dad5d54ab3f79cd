//! Sensor values from `decoded_payload` (whatever the application's payload formatter returns)
//! as `ttn_device_payload_value{field=…}` samples.
//!
//! Rules (docs/ttn-devices.md repeats them for users):
//! - A value is a JSON number, a boolean (1/0), or a string holding a number (`"23.50"`, what
//!   JavaScript's `toFixed` returns). Other strings, `null`, arrays and deeper objects are left out.
//! - Without `decoded_fields`, every value at the top level and one level down is taken.
//!   With it, only the listed fields: `name` (top level) or `parent.child`.
//! - The `field` label is the path joined with `_`, every character other than ASCII letters,
//!   digits and `_` replaced by `_`: `{"battery":{"voltage":3.6}}` → `battery_voltage`,
//!   `"temp-°C"` → `temp__C`. Units are whatever the formatter's names say; nothing is
//!   converted (name fields with their unit, `temperature_c`, `humidity_pct`, `battery_v`).
//! - At most `max` fields per message, in the order of their labels; two paths giving the same
//!   label keep the first.

use std::collections::BTreeMap;

use serde_json::Value;

/// The field label of a path.
pub fn label(path: &[&str]) -> String {
    path.iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// A sensor value, if `v` is one.
pub fn value(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(_) | Value::String(_) => crate::sources::json::number(v),
        _ => None,
    }
}

/// The values of one decoded payload: label → value, and how many were left out by the cap.
pub fn values(
    decoded: &Value,
    fields: Option<&[String]>,
    max: usize,
) -> (BTreeMap<String, f64>, usize) {
    let mut all: BTreeMap<String, f64> = BTreeMap::new();
    let mut add = |path: &[&str], v: &Value| {
        if let Some(x) = value(v) {
            all.entry(label(path)).or_insert(x);
        }
    };
    let Some(top) = decoded.as_object() else {
        return (BTreeMap::new(), 0);
    };
    match fields {
        Some(list) => {
            for f in list {
                let path: Vec<&str> = f.split('.').collect();
                let v = match path.as_slice() {
                    [a] => top.get(*a),
                    [a, b] => top.get(*a).and_then(|o| o.get(*b)),
                    _ => None,
                };
                if let Some(v) = v {
                    add(&path, v);
                }
            }
        }
        None => {
            for (k, v) in top {
                match v {
                    Value::Object(inner) => {
                        for (k2, v2) in inner {
                            add(&[k, k2], v2);
                        }
                    }
                    _ => add(&[k], v),
                }
            }
        }
    }
    let over = all.len().saturating_sub(max);
    (all.into_iter().take(max).collect(), over)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formatter_output_of_every_shape() {
        let d = json!({
            "temperature_c": 21.5, "humidity_pct": "48.20", "status": "OK", "alarm": true,
            "battery": {"voltage": 3.61, "low": false, "chem": "LiPo", "deep": {"x": 1}},
            "samples": [1, 2, 3], "nothing": null, "temp-°C": 5, "big": 1e300
        });
        let (v, over) = values(&d, None, 100);
        assert_eq!(over, 0);
        let want: BTreeMap<String, f64> = [
            ("alarm", 1.0),
            ("battery_low", 0.0),
            ("battery_voltage", 3.61),
            ("big", 1e300),
            ("humidity_pct", 48.2),
            ("temp__C", 5.0),
            ("temperature_c", 21.5),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(v, want);
        let (v, over) = values(&d, None, 3);
        assert_eq!((v.len(), over), (3, 4));
        assert!(v.contains_key("alarm"));
    }

    #[test]
    fn listed_fields_only() {
        let d = json!({"a": 1, "b": {"c": "2", "d": 3}, "e": "x"});
        let list = vec![
            "b.c".to_string(),
            "e".to_string(),
            "zz".to_string(),
            "a".to_string(),
        ];
        let (v, _) = values(&d, Some(&list), 10);
        assert_eq!(v.len(), 2);
        assert_eq!(v["b_c"], 2.0);
        assert_eq!(v["a"], 1.0);
        assert!(values(&json!([1, 2]), None, 10).0.is_empty());
        assert!(values(&json!(17), None, 10).0.is_empty());
    }
}
