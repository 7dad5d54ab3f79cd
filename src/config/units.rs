//! Durations (`"30s"`), sizes (`"16MiB"`) and label maps as they are written in the file and
//! printed back by `pushrelay config`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

use crate::model::Labels;

/// Parses a duration like `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`; zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}); use e.g. \"30s\", \"5m\", \"250ms\"")
    })?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Ok(d)
}

/// Parses a size like `"16MiB"`, `"512KiB"`, `"1GB"` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}; use e.g. \"16MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => {
            return Err(format!(
                "invalid size unit {u:?} in {s:?}; use B, KiB, MiB, GiB"
            ))
        }
    };
    let v = n * mult as f64;
    if !(1.0..1e15).contains(&v) {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(v as u64)
}

/// Reads an optional duration field (`#[serde(default, deserialize_with = "de_duration_opt")]`).
/// A bare number is refused with the fix (`interval = 60` → `"60s"`), not serde's "expected a
/// string".
pub fn de_duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration such as \"30s\"")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "expected a duration such as \"{n}s\" (a string with a unit), not the number {n}"
            )))
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
            self.visit_i64(n.min(i64::MAX as u64) as i64)
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "expected a duration such as \"{n}s\" (a string with a unit), not the number {n}"
            )))
        }
    }
    d.deserialize_any(V).map(Some)
}

/// Reads an optional size field: a number of bytes or a string with a unit.
pub fn de_size_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        N(u64),
        S(String),
    }
    match S::deserialize(d)? {
        S::N(n) if n > 0 => Ok(Some(n)),
        S::N(_) => Err(serde::de::Error::custom("size must be greater than zero")),
        S::S(s) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Prints a duration as it is written in the file (`"1m 30s"` reads back).
pub fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Prints a URL with its user info redacted.
pub fn ser_url<S: Serializer>(u: &reqwest::Url, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::redact_url(u))
}

/// Prints a label set as a table.
pub fn ser_labels<S: Serializer>(l: &Labels, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(l.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_durations_say_how_to_write_them() {
        let e = toml::from_str::<T>("d = 60").err().unwrap().to_string();
        assert!(e.contains("expected a duration such as \"60s\""), "{e}");
        let e = toml::from_str::<T>("d = true").err().unwrap().to_string();
        assert!(e.contains("a duration such as \"30s\""), "{e}");
        assert_eq!(
            toml::from_str::<T>("d = \"1m\"").unwrap().d,
            Some(Duration::from_secs(60))
        );
    }

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "de_duration_opt")]
        d: Option<Duration>,
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
    }
}
