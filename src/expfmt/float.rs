//! Numbers as Prometheus reads and writes them: Go's `strconv.ParseFloat` rules for sample
//! values, and the canonical float text Prometheus 3 rewrites `le` and `quantile` values to.

use std::fmt::Write as _;

/// The NaN bit pattern Prometheus stores for every parsed NaN (`value.NormalNaN`), so a NaN
/// relayed by pushrelay has the same bits as one stored by Prometheus.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Prometheus's canonical NaN.
pub fn normal_nan() -> f64 {
    f64::from_bits(NORMAL_NAN_BITS)
}

/// Reads a float the way Go's `strconv.ParseFloat` does, minus the forms Prometheus refuses
/// (anything with `p`, `P` or `_`, hence every hexadecimal float). `NaN`, `Inf`, `+Inf`,
/// `-inf`, `Infinity` (any case), `1e3`, `-0`, `.5`, `5.` are numbers; a signed NaN is not; a
/// finite literal too large for an f64 is an error (Go's range error) rather than infinity.
/// Every NaN comes out as [`normal_nan`].
pub(crate) fn parse_float(tok: &str) -> Result<f64, String> {
    if tok.contains(['p', 'P', '_']) {
        return Err(format!("invalid number {tok:?}"));
    }
    parse_go_float(tok).map_err(|e| e.unwrap_or_else(|| format!("invalid number {tok:?}")))
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal forms: `Err(None)` for bad syntax,
/// `Err(Some(reason))` for a range error.
fn parse_go_float(tok: &str) -> Result<f64, Option<String>> {
    // Rust's parser accepts what Go's does for decimal input, except that Rust takes "nan"
    // with a sign and the words in any case (as Go does); Go refuses a signed NaN.
    let v: f64 = tok.parse().map_err(|_| None)?;
    if v.is_nan() {
        if tok.starts_with(['+', '-']) {
            return Err(None);
        }
        return Ok(normal_nan());
    }
    if v.is_infinite() && !tok.bytes().any(|b| b == b'i' || b == b'I') {
        return Err(Some(format!("number {tok:?} out of range")));
    }
    Ok(v)
}

/// The canonical text Prometheus 3 gives a `le` or `quantile` value (its OpenMetrics float
/// formatting): `NaN`, `+Inf`, `-Inf`, else Go's shortest `%g` form (`1e+06`, `1e-05`,
/// `0.0001`, `123456`) with `.0` added when that has neither a dot nor an exponent. `None` when
/// `text` is not a number by Go's `ParseFloat` (then Prometheus keeps the text as it is).
/// Here Go's full syntax applies, as Prometheus uses `ParseFloat` directly: `_` between digits
/// (`1_000`) and hexadecimal floats (`0x1p3`) are numbers.
pub fn canonical_label_float(text: &str) -> Option<String> {
    let v = parse_go_float_full(text)?;
    Some(format_float(v))
}

/// Go's `strconv.ParseFloat(s, 64)` with its whole syntax: decimal forms, `_` separators and
/// hexadecimal mantissas with a binary exponent.
fn parse_go_float_full(s: &str) -> Option<f64> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let lower = body.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return parse_hex_float(hex).map(|v| sign * v);
    }
    if !s.contains('_') {
        return parse_go_float(s).ok();
    }
    // Go: an underscore must sit between two digits.
    let b = body.as_bytes();
    let ok = b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit())
    });
    if !ok {
        return None;
    }
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    parse_go_float(&cleaned).ok()
}

/// The part of a Go hexadecimal float after `0x`: hex digits with an optional point (and `_`
/// between digits), then a mandatory `p` and a decimal exponent of two.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = s.split_once('p')?;
    let exp: i32 = exp.replace('_', "").parse().ok()?;
    let mut value = 0f64;
    let mut scale = 0i32;
    let mut seen_point = false;
    let mut digits = 0;
    for c in mant.chars() {
        match c {
            '.' if !seen_point => seen_point = true,
            '_' => {}
            c => {
                let d = c.to_digit(16)?;
                value = value * 16.0 + d as f64;
                digits += 1;
                if seen_point {
                    scale -= 4;
                }
            }
        }
    }
    if digits == 0 {
        return None;
    }
    let v = value * 2f64.powi(exp + scale);
    v.is_finite().then_some(v)
}

/// Formats `v` as Prometheus's OpenMetrics float formatting does (see [`canonical_label_float`]).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        // Prometheus writes both zeros as "0.0".
        return "0.0".into();
    }
    let mut out = format_go_g(v);
    if !out.contains(['.', 'e']) {
        out.push_str(".0");
    }
    out
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` for a finite `v`: the shortest digits that read
/// back to `v`, in exponent form (`d.ddde±XX`, at least two exponent digits) when the decimal
/// exponent is below -4 or at least 6 (Go's cut-off for the shortest form), else plain.
fn format_go_g(v: f64) -> String {
    // Rust's `{:e}` gives the same shortest round-tripping digits: "d.dddde[-]x".
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent digits");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let nd = digits.len();
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_label_floats_match_prometheus() {
        for (input, want) in [
            ("1", "1.0"),
            ("1.0", "1.0"),
            ("1e3", "1000.0"),
            ("0.50", "0.5"),
            ("+inf", "+Inf"),
            ("Inf", "+Inf"),
            ("+Inf", "+Inf"),
            ("-inf", "-Inf"),
            ("nan", "NaN"),
            ("0", "0.0"),
            ("-0", "0.0"),
            ("1_000", "1000.0"),
            ("0x1p3", "8.0"),
            ("0x1.8p1", "3.0"),
            ("-0x10p-4", "-1.0"),
            ("100000", "100000.0"),
            ("999999", "999999.0"),
            ("1000000", "1e+06"),
            ("1234567", "1.234567e+06"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("0.000123", "0.000123"),
            ("0.0000123", "1.23e-05"),
            ("2.5", "2.5"),
            ("0.1", "0.1"),
            ("1e21", "1e+21"),
            ("1e-300", "1e-300"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("123456.7", "123456.7"),
            ("12345678.9", "1.23456789e+07"),
        ] {
            assert_eq!(
                canonical_label_float(input).as_deref(),
                Some(want),
                "{input}"
            );
        }
        for bad in [
            "bla", "", "1e400", "+nan", "0x10", "1,5", "_1", "1__0", "1_", "0xp1",
        ] {
            assert_eq!(canonical_label_float(bad), None, "{bad}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(parse_float("NaN").unwrap().to_bits(), NORMAL_NAN_BITS);
        assert_eq!(parse_float("-0").unwrap().to_bits(), (-0.0f64).to_bits());
        assert!(parse_float("0x1p3").is_err());
        assert!(parse_float("1_0").is_err());
        assert!(parse_float("-nan").is_err());
        assert!(parse_float("1e400").unwrap_err().contains("out of range"));
        assert_eq!(parse_float("Infinity").unwrap(), f64::INFINITY);
    }
}
