//! Writes families in the Prometheus text exposition format 0.0.4.
//!
//! Every family gets a `# HELP` line (only when it has help text) and a `# TYPE` line, then
//! its samples, one per line. Staleness markers cannot be expressed in the text format, so
//! samples holding one are skipped, and so are families left without samples. Values are
//! written in Rust's shortest form that reads back to the same bits (`NaN`, `+Inf`, `-Inf`
//! for the special ones, `-0` for negative zero, no `.0` on integers), so that
//! `parse(to_text(parse(x)))` equals `parse(x)`.

use std::fmt::Write as _;

use crate::model::{
    is_legacy_label_name, is_legacy_metric_name, is_stale_nan, write_quoted, Family, Labels,
};

/// Appends `families` to `out` in text format 0.0.4. Timestamps are written only when
/// `with_timestamps` is true (the Pushgateway refuses any sample that has one).
pub fn write_text(out: &mut String, families: &[Family], with_timestamps: bool) {
    for family in families {
        if family.samples.iter().all(|s| is_stale_nan(s.value)) {
            continue;
        }
        if !family.help.is_empty() {
            out.push_str("# HELP ");
            write_metric_name(out, &family.name);
            out.push(' ');
            escape_help(out, &family.help);
            out.push('\n');
        }
        out.push_str("# TYPE ");
        write_metric_name(out, &family.name);
        out.push(' ');
        out.push_str(family.kind.as_text());
        out.push('\n');
        for sample in &family.samples {
            if is_stale_nan(sample.value) {
                continue;
            }
            // Writing to a String cannot fail.
            if is_legacy_metric_name(&sample.name) {
                out.push_str(&sample.name);
                let _ = write!(out, "{}", sample.labels);
            } else {
                // A UTF-8 name goes first inside the braces, quoted (text format 1.0.0).
                out.push('{');
                let _ = write_quoted(out, &sample.name);
                if !sample.labels.is_empty() {
                    out.push(',');
                    let _ = sample.labels.write_pairs(out);
                }
                out.push('}');
            }
            out.push(' ');
            write_value(out, sample.value);
            if let (true, Some(ts)) = (with_timestamps, sample.timestamp_ms) {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
}

fn write_metric_name(out: &mut String, name: &str) {
    if is_legacy_metric_name(name) {
        out.push_str(name);
    } else {
        let _ = write_quoted(out, name);
    }
}

/// Escapes a name outside the legacy character set the way Prometheus's "values" escaping
/// scheme does (`my.metric` → `U__my_2e_metric`: a `U__` prefix, `_` doubled, every other
/// character outside the set as `_<hex code point>_`); a legacy name is returned as it is.
/// For receivers that refuse UTF-8 names, such as a Pushgateway without
/// `--push.enable-utf8-names`.
pub fn escape_name(name: &str, metric: bool) -> String {
    let legacy = if metric {
        is_legacy_metric_name(name)
    } else {
        is_legacy_label_name(name)
    };
    if legacy {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 8);
    out.push_str("U__");
    for (i, c) in name.chars().enumerate() {
        let keep = c.is_ascii_alphabetic() || (c == ':' && metric) || (c.is_ascii_digit() && i > 0);
        if c == '_' {
            out.push_str("__");
        } else if keep {
            out.push(c);
        } else {
            let _ = write!(out, "_{:x}_", c as u32);
        }
    }
    out
}

/// Renders `families` as text format 0.0.4 with every metric and label name outside the
/// legacy character set escaped by [`escape_name`] (what a stock Pushgateway accepts).
pub fn to_text_escaped(families: &[Family], with_timestamps: bool) -> String {
    let needs = |f: &Family| {
        !is_legacy_metric_name(&f.name)
            || f.samples.iter().any(|s| {
                !is_legacy_metric_name(&s.name)
                    || s.labels.iter().any(|(k, _)| !is_legacy_label_name(k))
            })
    };
    if !families.iter().any(needs) {
        return to_text(families, with_timestamps);
    }
    let escaped: Vec<Family> = families
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.name = escape_name(&f.name, true).into();
            for s in &mut f.samples {
                s.name = escape_name(&s.name, true).into();
                let pairs = std::mem::take(&mut s.labels)
                    .into_pairs()
                    .into_iter()
                    .map(|(k, v)| (escape_name(&k, false), v));
                // Escaping is injective on names, so no two labels can collide.
                s.labels = Labels::from_pairs(pairs).unwrap_or_default();
            }
            f
        })
        .collect();
    to_text(&escaped, with_timestamps)
}

/// Renders `families` as text format 0.0.4 (see [`write_text`]).
pub fn to_text(families: &[Family], with_timestamps: bool) -> String {
    let samples: usize = families.iter().map(|f| f.samples.len()).sum();
    let mut out = String::with_capacity(families.len() * 64 + samples * 48);
    write_text(&mut out, families, with_timestamps);
    out
}

/// True if both lists hold the same families, comparing sample values by their bits (so a
/// NaN equals the same NaN and `-0` differs from `0`). Meant for round-trip checks.
pub fn same_families(a: &[Family], b: &[Family]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.kind == y.kind
                && x.help == y.help
                && x.unit == y.unit
                && x.samples.len() == y.samples.len()
                && x.samples.iter().zip(&y.samples).all(|(s, t)| {
                    s.name == t.name
                        && s.labels == t.labels
                        && s.value.to_bits() == t.value.to_bits()
                        && s.timestamp_ms == t.timestamp_ms
                })
        })
}

/// True if both lists hold the same series samples (name, labels, value bits, timestamp), in
/// whatever families and order: what a receiver would store from either.
pub fn same_series(a: &[Family], b: &[Family]) -> bool {
    fn keys(fs: &[Family]) -> Vec<(&str, &Labels, u64, Option<i64>)> {
        let mut v: Vec<_> = fs
            .iter()
            .flat_map(|f| &f.samples)
            .map(|s| {
                (
                    s.name.as_str(),
                    &s.labels,
                    s.value.to_bits(),
                    s.timestamp_ms,
                )
            })
            .collect();
        v.sort();
        v
    }
    keys(a) == keys(b)
}

fn escape_help(out: &mut String, help: &str) {
    let mut rest = help;
    while let Some(i) = rest.find(['\\', '\n']) {
        out.push_str(&rest[..i]);
        out.push_str(if rest.as_bytes()[i] == b'\\' {
            "\\\\"
        } else {
            "\\n"
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Writes `v` so that parsing the text gives back exactly `v` (any NaN reads back as
/// `f64::NAN`).
pub(crate) fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let start = out.len();
        // Debug is the shortest round-tripping form and switches to exponents for very
        // large or small magnitudes (Display would spell out 1e300 in 301 digits).
        let _ = write!(out, "{v:?}");
        if out[start..].ends_with(".0") {
            out.truncate(out.len() - 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::parse;
    use crate::model::{stale_nan, Labels, MetricType, Sample};

    fn sample(name: &str, pairs: &[(&str, &str)], value: f64, ts: Option<i64>) -> Sample {
        Sample {
            name: name.into(),
            labels: Labels::from_pairs(pairs.iter().copied()).unwrap(),
            value,
            timestamp_ms: ts,
        }
    }

    fn value_text(v: f64) -> String {
        let mut s = String::new();
        write_value(&mut s, v);
        s
    }

    #[test]
    fn utf8_names_quoted_or_escaped() {
        let mut f = Family::new("my.metric", MetricType::Gauge, "h");
        f.samples
            .push(sample("my.metric", &[("l.x", "v"), ("a", "1")], 1.0, None));
        f.samples.push(sample("my.metric", &[], 2.0, None));
        let text = to_text(std::slice::from_ref(&f), false);
        assert_eq!(
            text,
            "# HELP \"my.metric\" h\n# TYPE \"my.metric\" gauge\n{\"my.metric\",a=\"1\",\"l.x\"=\"v\"} 1\n{\"my.metric\"} 2\n"
        );
        assert!(same_families(
            &parse(&text).unwrap(),
            std::slice::from_ref(&f)
        ));
        let esc = to_text_escaped(&[f], false);
        assert!(
            esc.contains("U__my_2e_metric{U__l_2e_x=\"v\",a=\"1\"} 1\n"),
            "{esc}"
        );
        assert_eq!(escape_name("a_b.c", true), "U__a__b_2e_c");
        assert_eq!(escape_name("1a", true), "U___31_a");
        assert_eq!(escape_name("a:b", false), "U__a_3a_b");
        assert_eq!(escape_name("a:b", true), "a:b");
        assert_eq!(escape_name("é", true), "U___e9_");
    }

    #[test]
    fn values_are_short_and_exact() {
        let cases: [(f64, &str); 16] = [
            (1.0, "1"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e15, "1000000000000000"),
            (1e16, "1e16"),
            (1e300, "1e300"),
            (1.25e-7, "1.25e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (9007199254740993.0, "9007199254740992"),
        ];
        for (v, text) in cases {
            assert_eq!(value_text(v), text);
            let back = crate::expfmt::float::parse_float(text).unwrap();
            if v.is_nan() {
                assert!(back.is_nan());
            } else {
                assert_eq!(back.to_bits(), v.to_bits(), "{text}");
            }
        }
        // Any NaN payload is written as plain NaN.
        assert_eq!(value_text(f64::from_bits(0x7ff8_0000_0000_0123)), "NaN");
    }

    #[test]
    fn values_round_trip_over_many_bit_patterns() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_nan() {
                continue;
            }
            let text = value_text(v);
            assert_eq!(
                crate::expfmt::float::parse_float(&text).unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn writes_help_type_and_samples() {
        let mut h = Family::new(
            "req_seconds",
            MetricType::Histogram,
            "Time\\taken\nper request.",
        );
        h.samples = vec![
            sample(
                "req_seconds_bucket",
                &[("le", "0.5"), ("path", "/a\"b")],
                3.0,
                Some(17),
            ),
            sample(
                "req_seconds_bucket",
                &[("le", "+Inf"), ("path", "/a\"b")],
                4.0,
                None,
            ),
            sample("req_seconds_sum", &[("path", "/a\"b")], 1.25, None),
            sample("req_seconds_count", &[("path", "/a\"b")], 4.0, None),
        ];
        let mut g = Family::new("temp", MetricType::Unknown, "");
        g.push(Labels::new(), -0.5);
        let families = vec![h, g];
        let expected = "\
# HELP req_seconds Time\\\\taken\\nper request.
# TYPE req_seconds histogram
req_seconds_bucket{le=\"0.5\",path=\"/a\\\"b\"} 3 17
req_seconds_bucket{le=\"+Inf\",path=\"/a\\\"b\"} 4
req_seconds_sum{path=\"/a\\\"b\"} 1.25
req_seconds_count{path=\"/a\\\"b\"} 4
# TYPE temp untyped
temp -0.5
";
        assert_eq!(to_text(&families, true), expected);
        assert_eq!(
            to_text(&families, false),
            expected.replace(" 3 17\n", " 3\n")
        );
        let back = parse::parse(expected).unwrap();
        assert!(same_families(&families, &back));
        // write_text appends.
        let mut out = String::from("# start\n");
        write_text(&mut out, &families, true);
        assert_eq!(out, format!("# start\n{expected}"));
    }

    #[test]
    fn never_writes_timestamps_when_told_not_to() {
        let mut f = Family::new("a", MetricType::Gauge, "h");
        f.samples
            .push(sample("a", &[("x", "1 2 3")], 1.0, Some(1_700_000_000_000)));
        f.samples.push(sample("a", &[("x", "2")], 2.0, Some(-5)));
        let text = to_text(&[f], false);
        assert_eq!(
            text,
            "# HELP a h\n# TYPE a gauge\na{x=\"1 2 3\"} 1\na{x=\"2\"} 2\n"
        );
    }

    #[test]
    fn skips_stale_markers_and_empty_families() {
        let mut a = Family::new("a", MetricType::Gauge, "");
        a.push(Labels::new(), stale_nan());
        let mut b = Family::new("b", MetricType::Counter, "");
        b.push(Labels::from_pairs([("i", "1")]).unwrap(), stale_nan());
        b.push(Labels::from_pairs([("i", "2")]).unwrap(), f64::NAN);
        let c = Family::new("c", MetricType::Gauge, "no samples at all");
        let text = to_text(&[a, b, c], true);
        assert_eq!(text, "# TYPE b counter\nb{i=\"2\"} NaN\n");
        assert_eq!(to_text(&[], true), "");
    }

    #[test]
    fn types_use_text_format_words() {
        for (kind, word) in [
            (MetricType::Counter, "counter"),
            (MetricType::Gauge, "gauge"),
            (MetricType::Histogram, "histogram"),
            (MetricType::Summary, "summary"),
            (MetricType::Unknown, "untyped"),
            (MetricType::Info, "gauge"),
            (MetricType::StateSet, "gauge"),
            (MetricType::GaugeHistogram, "histogram"),
        ] {
            let f = Family::new("x", kind, "");
            let mut f = f;
            f.push(Labels::new(), 1.0);
            assert_eq!(to_text(&[f], true), format!("# TYPE x {word}\nx 1\n"));
        }
    }

    #[test]
    fn same_families_compares_nan_by_bits() {
        let mut a = Family::new("a", MetricType::Gauge, "");
        a.push(Labels::new(), f64::NAN);
        let b = vec![a.clone()];
        assert!(same_families(std::slice::from_ref(&a), &b));
        assert_ne!(a, b[0], "derived PartialEq says NaN != NaN");
        let mut c = a.clone();
        c.samples[0].value = stale_nan();
        assert!(!same_families(&[a.clone()], &[c]));
        let mut z = a.clone();
        z.samples[0].value = 0.0;
        let mut nz = a.clone();
        nz.samples[0].value = -0.0;
        assert!(!same_families(&[z], &[nz]));
        assert!(!same_families(&[a.clone()], &[]));
    }
}
