//! Values as upstream JSON APIs really send them, read liberally (shared by the ttn, emqx and
//! linkhub sources): numbers as JSON numbers or as strings, RFC 3339 timestamps.

use serde_json::Value;

/// A finite number from a JSON number or a string holding one (`"9043"`, `" 12.5 "`); anything
/// else (`null`, `"FF"`, `""`, `"infinity"`, `"NaN"`, booleans) is `None`.
pub fn number(v: &Value) -> Option<f64> {
    let x = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// Parses `YYYY-MM-DD[T|t| ]HH:MM:SS[.fraction][Z|z|±HH:MM|±HHMM|±HH]` into whole seconds since
/// the epoch and nanoseconds. No zone means UTC; `,` may separate the fraction; fraction digits
/// beyond nine are ignored; a leap second (`:60`) reads as the minute's last second. Anything
/// else (`None`) is junk.
pub fn rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.trim().as_bytes();
    let two = |from: usize| -> Option<i64> {
        match b.get(from..from + 2)? {
            [x, y] if x.is_ascii_digit() && y.is_ascii_digit() => {
                Some(i64::from((x - b'0') * 10 + (y - b'0')))
            }
            _ => None,
        }
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year = b[..4]
        .iter()
        .fold(0i64, |a, d| a * 10 + i64::from(d - b'0'));
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match &b[i..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let secs = match rest {
                [_, _, b':', _, _] => two(i + 1)? * 3600 + two(i + 4)? * 60,
                [_, _, _, _] => two(i + 1)? * 3600 + two(i + 3)? * 60,
                [_, _] => two(i + 1)? * 3600,
                _ => return None,
            };
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset,
        nanos,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_numbers_or_strings() {
        use serde_json::json;
        assert_eq!(number(&json!(9043)), Some(9043.0));
        assert_eq!(number(&json!(" 12.5 ")), Some(12.5));
        assert_eq!(
            number(&json!("18446744073709551615")),
            Some(18446744073709551615.0)
        );
        for absent in [
            json!(null),
            json!("FF"),
            json!(""),
            json!("infinity"),
            json!("NaN"),
            json!(true),
        ] {
            assert_eq!(number(&absent), None, "{absent}");
        }
    }

    #[test]
    fn rfc3339_forms_offsets_and_fractions() {
        let utc = (1_763_772_688, 905_000_000);
        assert_eq!(rfc3339("2025-11-22T00:51:28.905Z"), Some(utc));
        assert_eq!(rfc3339("2025-11-22T01:51:28.905+01:00"), Some(utc));
        assert_eq!(rfc3339("2025-11-21T19:21:28.905-05:30"), Some(utc));
        assert_eq!(rfc3339("2025-11-22 02:51:28,905+0200"), Some(utc));
        assert_eq!(rfc3339("2025-11-22t02:51:28.905+02"), Some(utc));
        assert_eq!(rfc3339(" 2025-11-22T00:51:28.9050000009z "), Some(utc));
        assert_eq!(rfc3339("2025-11-22T00:51:28"), Some((1_763_772_688, 0)));
        assert_eq!(rfc3339("2016-12-31T23:59:60Z"), Some((1_483_228_799, 0)));
        assert_eq!(rfc3339("2000-02-29T00:00:00Z"), Some((951_782_400, 0)));
        assert_eq!(
            rfc3339("0001-01-01T00:00:00Z").map(|t| t.0),
            Some(-62_135_596_800)
        );
        for bad in [
            "",
            "yesterday",
            "2025-11-22",
            "2025-13-01T00:00:00Z",
            "2025-11-22T24:00:00Z",
            "2025-11-22T00:51:28.Z",
            "2025-11-22T00:51:28+1",
            "2025-11-22T00:51:28+01:0",
            "2025-11-22T00:51:28Zjunk",
            "2025-1x-22T00:51:28Z",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }
}
