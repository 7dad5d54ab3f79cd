//! A parser for OpenMetrics text 1.0 that accepts and stores what Prometheus 3.5 does.
//!
//! [`parse`] reads a whole body into [`Family`]s or refuses it whole with a
//! [`ParseError`] naming the line. OpenMetrics is stricter than the classic text format:
//!
//! - The body must end with `# EOF` (a final newline after it is optional) and nothing may
//!   follow it. Blank lines, comments other than `# HELP`, `# TYPE`, `# UNIT` and `# EOF`,
//!   tabs, and more than one space between tokens are errors.
//! - `# TYPE` words are `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`,
//!   `stateset` and `unknown`; `# UNIT` must be a `_`-separated suffix of the family name (or
//!   empty); HELP text must be UTF-8 and unescapes `\\`, `\"` and `\n`.
//! - Samples: `name{labels} value [timestamp] [# {exemplar labels} value [timestamp]]`, names
//!   and label names bare or quoted as in the classic format; labels must be separated by
//!   commas (one may trail); a label value cannot hold a raw newline. Exemplars are checked
//!   and skipped.
//! - Timestamps are seconds, with fractions: the sample gets `trunc(seconds × 1000)`
//!   milliseconds (a NaN or infinite timestamp is an error).
//! - `_created` series are kept as series (Prometheus stores them unless its
//!   created-timestamp feature flag is on). `le` (after a histogram TYPE) and `quantile` (after
//!   a summary TYPE) are normalised as in the classic parser; a gauge histogram's `le` is not.
//!
//! Grouping into families, duplicate handling and the other storage rules are shared with the
//! classic parser ([`super::group`]).

use std::borrow::Cow;

use super::float::parse_float;
use super::group::Grouper;
use super::ParseError;
use crate::model::{Family, MetricType};

/// Parses a whole OpenMetrics text 1.0 body.
pub fn parse(body: &[u8]) -> Result<Vec<Family>, ParseError> {
    parse_at(body, crate::clock::system_now_ms())
}

/// [`parse`] for a body scraped at `now_ms` (wall clock).
pub fn parse_at(body: &[u8], now_ms: i64) -> Result<Vec<Family>, ParseError> {
    parse_capped(body, now_ms, 0)
}

/// [`parse_at`] that gives up once more than `cap` samples are kept (0: no cap).
pub fn parse_capped(body: &[u8], now_ms: i64, cap: usize) -> Result<Vec<Family>, ParseError> {
    let lines = super::parse::line_count(body);
    if cap > 0 && lines >= cap {
        // Counted first, as in the classic parser: over the cap, nothing is built.
        run(body, Grouper::counting(now_ms), cap)?;
    }
    run(body, Grouper::with_capacity(now_ms, lines), cap)
}

fn run(body: &[u8], group: Grouper, cap: usize) -> Result<Vec<Family>, ParseError> {
    let mut p = Om {
        b: body,
        pos: 0,
        mtype: None,
        group,
    };
    let mut line = 1;
    loop {
        let start = p.pos;
        match p.entry() {
            Ok(true) if cap > 0 && p.group.kept() > cap => {
                let message = super::parse::over_cap(cap);
                return Err(ParseError { line, message });
            }
            Ok(true) => {}
            Ok(false) => break,
            Err(message) => return Err(ParseError { line, message }),
        }
        line += body[start..p.pos].iter().filter(|&&c| c == b'\n').count();
    }
    Ok(p.group.finish())
}

/// `\\`, `\"` and `\n` unescaped, other backslashes kept (OpenMetrics help text too).
fn unescape(s: &str) -> Cow<'_, str> {
    super::parse::unescape(s, true)
}

/// What a label block holds: the quoted metric name, if any, and the label pairs.
type LabelBlock<'a> = (Option<Cow<'a, str>>, super::group::Pairs<'a>);

struct Om<'a> {
    b: &'a [u8],
    pos: usize,
    mtype: Option<MetricType>,
    group: Grouper,
}

impl<'a> Om<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the body".into(),
            Some(c) => format!("{:?}", String::from_utf8_lossy(&[c])),
        }
    }

    /// A legacy name at `pos` (`:` allowed for metric names only).
    fn bare_name(&mut self, metric: bool) -> Option<&'a str> {
        let start = self.pos;
        let ok_start = |c: u8| c.is_ascii_alphabetic() || c == b'_' || (metric && c == b':');
        if !self.peek().is_some_and(ok_start) {
            return None;
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || (metric && c == b':'))
        {
            self.pos += 1;
        }
        std::str::from_utf8(&self.b[start..self.pos]).ok()
    }

    /// A quoted string at `pos`: the raw text between the quotes (no raw newline unless
    /// `newlines`).
    fn quoted(&mut self, newlines: bool) -> Result<&'a [u8], String> {
        if !self.eat(b'"') {
            return Err(format!("expected '\"', found {}", self.found()));
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(&self.b[start..self.pos - 1]);
                }
                b'\\' if !matches!(self.b.get(self.pos + 1), None | Some(b'\n')) => self.pos += 2,
                b'\n' if !newlines => break,
                b'\\' => break,
                _ => self.pos += 1,
            }
        }
        Err("unterminated quoted string".into())
    }

    fn rest_of_line(&mut self) -> Result<&'a [u8], String> {
        let start = self.pos;
        match self.b[start..].iter().position(|&c| c == b'\n') {
            Some(i) => {
                self.pos = start + i + 1;
                Ok(&self.b[start..start + i])
            }
            None => Err("data does not end with # EOF".into()),
        }
    }

    fn entry(&mut self) -> Result<bool, String> {
        match self.peek() {
            None => Err("data does not end with # EOF".into()),
            Some(b'#') => self.comment(),
            Some(b'{') => self.sample(None).map(|_| true),
            Some(_) => match self.bare_name(true) {
                Some(n) => self.sample(Some(n)).map(|_| true),
                None => Err(format!(
                    "expected a metric name or '#', found {}",
                    self.found()
                )),
            },
        }
    }

    fn comment(&mut self) -> Result<bool, String> {
        let rest = &self.b[self.pos..];
        if rest == b"# EOF" || rest == b"# EOF\n" {
            self.pos = self.b.len();
            return Ok(false);
        }
        if rest.starts_with(b"# EOF\n") {
            return Err("unexpected data after # EOF".into());
        }
        let kind = [&b"# HELP "[..], b"# TYPE ", b"# UNIT "]
            .iter()
            .position(|k| rest.starts_with(k))
            .ok_or_else(|| "expected # HELP, # TYPE, # UNIT or # EOF".to_string())?;
        let what = ["HELP", "TYPE", "UNIT"][kind];
        self.pos += 7;
        let name: String = if self.peek() == Some(b'"') {
            let raw = self.quoted(true)?;
            unescape(&String::from_utf8_lossy(raw)).into_owned()
        } else {
            match self.bare_name(true) {
                Some(n) => n.to_string(),
                None => return Err(format!("expected a metric name after {what}")),
            }
        };
        if !self.eat(b' ') {
            return Err(format!("expected text in {what}"));
        }
        let text = self.rest_of_line()?;
        match what {
            "HELP" => {
                let t = std::str::from_utf8(text)
                    .map_err(|_| "help text is not valid UTF-8".to_string())?;
                self.group.help(&name, unescape(t).into_owned());
            }
            "TYPE" => {
                let kind = match text {
                    b"counter" => MetricType::Counter,
                    b"gauge" => MetricType::Gauge,
                    b"histogram" => MetricType::Histogram,
                    b"gaugehistogram" => MetricType::GaugeHistogram,
                    b"summary" => MetricType::Summary,
                    b"info" => MetricType::Info,
                    b"stateset" => MetricType::StateSet,
                    b"unknown" => MetricType::Unknown,
                    _ => {
                        return Err(format!(
                            "invalid metric type {:?}",
                            String::from_utf8_lossy(text)
                        ))
                    }
                };
                self.mtype = Some(kind);
                self.group.type_of(&name, kind);
            }
            _ => {
                let unit = String::from_utf8_lossy(text).into_owned();
                let suffix = name.len() > unit.len()
                    && name.ends_with(&unit)
                    && name.as_bytes()[name.len() - unit.len() - 1] == b'_';
                if !unit.is_empty() && !suffix {
                    return Err(format!("unit {unit:?} not a suffix of metric {name:?}"));
                }
                self.group.unit(&name, unit);
            }
        }
        Ok(true)
    }

    /// A label block at `pos` (on its `{`): the metric name inside, if any, and the pairs.
    fn labels(&mut self, exemplar: bool) -> Result<LabelBlock<'a>, String> {
        self.pos += 1;
        let mut name = None;
        let mut pairs = Vec::new();
        loop {
            if self.eat(b'}') {
                return Ok((name, pairs));
            }
            let (label, quoted) = if self.peek() == Some(b'"') {
                let raw = self.quoted(!exemplar)?;
                let s = std::str::from_utf8(raw).map_err(|_| "quoted name is not valid UTF-8")?;
                (unescape(s), true)
            } else {
                match self.bare_name(false) {
                    Some(n) => (Cow::Borrowed(n), false),
                    None => return Err(format!("expected a label name, found {}", self.found())),
                }
            };
            if quoted && matches!(self.peek(), Some(b',' | b'}')) && !exemplar {
                if name.is_some() {
                    return Err("metric name given twice".into());
                }
                name = Some(label);
                self.eat(b',');
                continue;
            }
            if !self.eat(b'=') {
                return Err(format!("expected '=' after label name {label:?}"));
            }
            let raw = self.quoted(false)?;
            let v = std::str::from_utf8(raw)
                .map_err(|_| format!("value of label {label:?} is not valid UTF-8"))?;
            pairs.push((label, unescape(v)));
            if !self.eat(b',') && self.peek() != Some(b'}') {
                return Err(format!("expected ',' or '}}', found {}", self.found()));
            }
        }
    }

    /// A space and a token (up to the next space or newline).
    fn token(&mut self) -> Option<&'a str> {
        if self.peek() != Some(b' ') {
            return None;
        }
        let start = self.pos + 1;
        let mut p = start;
        while p < self.b.len() && !matches!(self.b[p], b' ' | b'\n') {
            p += 1;
        }
        if p == start {
            return None;
        }
        self.pos = p;
        Some(std::str::from_utf8(&self.b[start..p]).unwrap_or("\u{fffd}"))
    }

    fn timestamp(tok: &str) -> Result<i64, String> {
        let ts = parse_float(tok).map_err(|e| format!("{e} as timestamp"))?;
        if !ts.is_finite() {
            return Err(format!("invalid timestamp {tok:?}"));
        }
        Ok((ts * 1000.0) as i64)
    }

    /// ` # {labels} value [timestamp]`, already past the ` #`.
    fn exemplar(&mut self) -> Result<(), String> {
        if !self.eat(b' ') || self.peek() != Some(b'{') {
            return Err("expected an exemplar label set after '#'".into());
        }
        self.labels(true)?;
        let v = self
            .token()
            .ok_or("expected a value after exemplar labels")?;
        parse_float(v)?;
        if let Some(t) = self.token() {
            Self::timestamp(t)?;
        }
        Ok(())
    }

    fn sample(&mut self, bare: Option<&'a str>) -> Result<(), String> {
        let mut inner = None;
        let mut pairs = Vec::new();
        if self.peek() == Some(b'{') {
            (inner, pairs) = self.labels(false)?;
        }
        let name = super::group::sample_name(bare, inner)?;
        let v = self
            .token()
            .ok_or_else(|| format!("expected a value after {name}, found {}", self.found()))?;
        let value = parse_float(v).map_err(|e| format!("{e} as value of {name}"))?;
        let mut timestamp_ms = None;
        loop {
            if self.eat(b'\n') {
                break;
            }
            if self.b[self.pos..].starts_with(b" #") {
                self.pos += 2;
                self.exemplar()?;
                if !self.eat(b'\n') {
                    return Err(format!(
                        "expected the end of the line after the exemplar of {name}"
                    ));
                }
                break;
            }
            if timestamp_ms.is_some() {
                return Err(format!("unexpected text after the timestamp of {name}"));
            }
            match self.token() {
                Some(t) => timestamp_ms = Some(Self::timestamp(t)?),
                None if self.peek().is_none() => return Err("data does not end with # EOF".into()),
                None => {
                    return Err(format!(
                        "unexpected {} after the value of {name}",
                        self.found()
                    ))
                }
            }
        }
        let labels = super::group::sample_labels(&name, self.mtype, &mut pairs)?;
        self.group.sample(&name, labels, value, timestamp_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<Family> {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err_has(text: &str, line: usize, needle: &str) {
        let e = parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e}");
    }

    #[test]
    fn families_units_and_types() {
        let f = ok("# HELP a_seconds A help \\\"q\\\".\n# TYPE a_seconds counter\n# UNIT a_seconds seconds\na_seconds_total 1\na_seconds_created 1.5e9\n# TYPE i info\ni_info{v=\"1\"} 1\n# TYPE s stateset\ns{s=\"a\"} 1\ns{s=\"b\"} 0\n# TYPE g gaugehistogram\ng_bucket{le=\"1\"} 1\ng_gcount 1\ng_gsum 2\n# EOF\n");
        assert_eq!(f.len(), 4);
        assert_eq!(
            (f[0].kind, f[0].unit.as_str(), f[0].help.as_str()),
            (MetricType::Counter, "seconds", "A help \"q\".")
        );
        assert_eq!(f[0].samples.len(), 2, "_created is a series");
        assert_eq!(f[1].kind, MetricType::Info);
        assert_eq!(f[2].kind, MetricType::StateSet);
        assert_eq!(f[3].kind, MetricType::GaugeHistogram);
        assert_eq!(
            f[3].samples[0].labels.get("le"),
            Some("1"),
            "no normalisation for gauge histograms"
        );
        err_has(
            "# TYPE a_x counter\n# UNIT a_x seconds\n# EOF\n",
            2,
            "not a suffix",
        );
    }

    #[test]
    fn timestamps_are_seconds_and_exemplars_skipped() {
        let f = ok("# TYPE h histogram\nh_bucket{le=\"1\"} 2 1520879607.789 # {id=\"x\"} 0.5 1520879607.1\nh_bucket{le=\"+Inf\"} 3 # {} 1\nh_count 3 1520879607\nh_sum 4\n# EOF");
        let s = &f[0].samples;
        assert_eq!(s[0].timestamp_ms, Some((1520879607.789f64 * 1000.0) as i64));
        assert_eq!(s[0].labels.get("le"), Some("1.0"));
        assert_eq!(s[2].timestamp_ms, Some(1_520_879_607_000));
        err_has("a 1 NaN\n# EOF\n", 1, "invalid timestamp");
    }

    #[test]
    fn strictness() {
        err_has("a 1\n", 2, "does not end with # EOF");
        err_has("a 1", 1, "does not end with # EOF");
        err_has("a 1\n# EOF\nb 2\n", 2, "after # EOF");
        err_has("\na 1\n# EOF\n", 1, "expected a metric name");
        err_has("# comment\n# EOF\n", 1, "expected # HELP");
        err_has("a  1\n# EOF\n", 1, "expected a value");
        err_has("a\t1\n# EOF\n", 1, "expected a value");
        err_has("a{b=\"1\" c=\"2\"} 1\n# EOF\n", 1, "expected ','");
        err_has("a{b=\"x\ny\"} 1\n# EOF\n", 1, "unterminated");
        err_has("# TYPE a untyped\n# EOF\n", 1, "invalid metric type");
        err_has("a 1 2 3\n# EOF\n", 1, "after the timestamp");
        assert_eq!(ok("{\"a.b\",\"c.d\"=\"e\"} 1\n# EOF\n")[0].name, "a.b");
        assert!(ok("# EOF\n").is_empty());
    }
}
