//! A strict, single-pass parser for the Prometheus text exposition format 0.0.4.
//!
//! [`parse`] turns a whole scrape body into [`Family`]s or refuses it whole with a
//! [`ParseError`] naming the first bad line. It reads the input once, line by line, without
//! regular expressions; the only allocations per sample are the ones the model needs (the
//! series name and the label strings).
//!
//! Rules, including the choices made where the format leaves room:
//!
//! - Lines end with `\n`; any `\r` at the end of a line is dropped, so `\r\n` input works.
//!   Blank lines, leading spaces or tabs and a byte-order mark opening the input are ignored.
//! - `#` starts a comment. `# HELP name text` and `# TYPE name type` (spaces or tabs, and
//!   none needed between `#` and the keyword) are metadata; every other comment is ignored,
//!   including an OpenMetrics `# EOF` wherever it stands.
//! - HELP text runs to the end of the line, trailing blanks included. `\\` and `\n` are
//!   unescaped; any other backslash is kept as it is (help is prose, so it is not worth
//!   refusing a scrape over). A repeated HELP line for a name is ignored (the first wins), as
//!   Prometheus's own scraper does: buggy exporters emit them and the data is still good.
//! - TYPE words are `counter`, `gauge`, `histogram`, `summary`, `untyped` and `unknown`, in
//!   any letter case. Anything else (OpenMetrics `info`, `stateset`, `gaugehistogram`
//!   included) is an error, as is a second TYPE line naming a different type (a repeat of the
//!   same type is ignored) or a TYPE line that comes
//!   after samples of its family.
//! - A sample is `name{labels} value [timestamp]` with spaces or tabs between the parts (the
//!   one after the label block may be missing). The label block may be empty and may end
//!   with a comma. Label values know the escapes `\\`, `\"` and `\n`; any other escape is an
//!   error. A repeated label name (even one whose value is empty), an invalid label name and
//!   `__name__` inside the block are errors. Labels whose value is empty are dropped.
//! - Values are read like Go's `strconv.ParseFloat` reads them (`NaN`, `Inf`, `+Inf`,
//!   `-inf`, `Infinity` in any case, `1e3`, `-0`, `.5`), except that hexadecimal floats are
//!   refused; a finite literal too large for an f64 is an error (as in Go) rather than
//!   infinity, and a signed NaN is an error (as in Go). Every NaN comes out as `f64::NAN`.
//!   The timestamp is a base-10 int64 of milliseconds; nothing may follow it.
//! - Grouping: a sample goes to the family of its exact name when one is declared (by HELP
//!   or TYPE) or already seen. Otherwise a `_bucket`, `_sum`, `_count` or `_created` suffix
//!   joins a declared histogram, `_sum`, `_count` or `_created` a declared summary, and
//!   `_total` or `_created` a declared counter. A name that matches nothing becomes its own
//!   untyped family without help. A histogram bucket needs a numeric `le` label and a
//!   summary's bare sample a numeric `quantile` label; a histogram's bare name is refused.
//!   Families keep the order in which they first appeared; a family whose samples are
//!   scattered through the input is merged into one.
//! - Metadata given for a name whose samples were already grouped into another family (a
//!   `# HELP foo_sum` after `foo_sum` samples joined summary `foo`) is an error, so every
//!   name always lands in one family.
//! - An exact duplicate series (same name and same labels after dropping empty ones) keeps
//!   its first sample; later ones are dropped silently.
//! - Families that end up without samples (a HELP or TYPE line alone) are not returned.

use std::borrow::Cow;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use crate::model::{is_valid_label_name, is_valid_metric_name, Family, Labels, MetricType, Sample};

/// Why an input was refused: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole text-format 0.0.4 body into families (see the module docs for the rules).
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    let mut parser = Parser::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.split('\n').enumerate() {
        parser.line(raw).map_err(|message| ParseError {
            line: i + 1,
            message,
        })?;
    }
    Ok(parser.finish())
}

/// What part of its family a sample name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    Bucket,
    Sum,
    Count,
    Created,
    Total,
}

const SUFFIXES: [(&str, Role); 5] = [
    ("_bucket", Role::Bucket),
    ("_sum", Role::Sum),
    ("_count", Role::Count),
    ("_created", Role::Created),
    ("_total", Role::Total),
];

/// True if a family of type `kind` collects the samples named `family` + the suffix of `role`.
fn accepts(kind: MetricType, role: Role) -> bool {
    use Role::*;
    match kind {
        MetricType::Histogram => matches!(role, Bucket | Sum | Count | Created),
        MetricType::Summary => matches!(role, Sum | Count | Created),
        MetricType::Counter => matches!(role, Total | Created),
        _ => false,
    }
}

/// What the metadata lines said about a family.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    typed: bool,
    helped: bool,
}

/// One link of the duplicate-series chains: a sample already kept, by position.
#[derive(Debug, Clone, Copy)]
struct Seen {
    family: usize,
    sample: usize,
    next: usize,
}

const NO_NEXT: usize = usize::MAX;

#[derive(Default)]
struct Parser<'a> {
    families: Vec<Family>,
    meta: Vec<Meta>,
    /// Family index by family name.
    by_name: HashMap<&'a str, usize>,
    /// Where each sample name seen so far went: family index and role.
    routes: HashMap<&'a str, (usize, Role)>,
    /// Hash of (name, labels) to the head of a chain in `seen`.
    series: HashMap<u64, usize>,
    seen: Vec<Seen>,
    hasher: RandomState,
    /// Scratch space for the label pairs of the current line.
    pairs: Vec<(&'a str, Cow<'a, str>)>,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_blanks(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// Splits `s` at its first blank: the token before it and the rest (starting at the blank).
fn split_token(s: &str) -> (&str, &str) {
    match s.bytes().position(is_blank) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    }
}

fn skip_blanks(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && is_blank(b[p]) {
        p += 1;
    }
    p
}

/// Reads a float the way Go's `strconv.ParseFloat` does (minus hexadecimal forms).
pub(crate) fn parse_float(tok: &str) -> Result<f64, String> {
    let v: f64 = tok.parse().map_err(|_| format!("invalid number {tok:?}"))?;
    if v.is_nan() {
        if tok.starts_with(['+', '-']) {
            return Err(format!("invalid number {tok:?}"));
        }
        return Ok(f64::NAN);
    }
    if v.is_infinite() && !tok.bytes().any(|b| b == b'i' || b == b'I') {
        return Err(format!("number {tok:?} out of range"));
    }
    Ok(v)
}

/// Undoes the HELP escapes `\\` and `\n`; other backslashes stay as they are.
fn unescape_help(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Reads a quoted label value starting just after its opening quote. Returns the value and
/// the position just after the closing quote.
fn parse_quoted<'a>(
    line: &'a str,
    start: usize,
    label: &str,
) -> Result<(Cow<'a, str>, usize), String> {
    let b = line.as_bytes();
    let mut p = start;
    while p < b.len() && b[p] != b'"' && b[p] != b'\\' {
        p += 1;
    }
    if p >= b.len() {
        return Err(format!("unterminated value of label {label}"));
    }
    if b[p] == b'"' {
        return Ok((Cow::Borrowed(&line[start..p]), p + 1));
    }
    let mut out = String::with_capacity(p - start + 16);
    out.push_str(&line[start..p]);
    loop {
        // b[p] is a quote or a backslash here.
        if b[p] == b'"' {
            return Ok((Cow::Owned(out), p + 1));
        }
        match b.get(p + 1) {
            Some(b'\\') => out.push('\\'),
            Some(b'"') => out.push('"'),
            Some(b'n') => out.push('\n'),
            Some(_) => {
                let c = line[p + 1..].chars().next().unwrap_or_default();
                return Err(format!(
                    "invalid escape sequence \\{} in value of label {label}",
                    c.escape_debug()
                ));
            }
            None => return Err(format!("unterminated value of label {label}")),
        }
        p += 2;
        let run = p;
        while p < b.len() && b[p] != b'"' && b[p] != b'\\' {
            p += 1;
        }
        if p >= b.len() {
            return Err(format!("unterminated value of label {label}"));
        }
        out.push_str(&line[run..p]);
    }
}

impl<'a> Parser<'a> {
    fn line(&mut self, raw: &'a str) -> Result<(), String> {
        let line = trim_blanks(raw.trim_end_matches('\r'));
        if line.is_empty() {
            return Ok(());
        }
        match line.strip_prefix('#') {
            Some(rest) => self.comment(rest),
            None => self.sample(line),
        }
    }

    fn comment(&mut self, rest: &'a str) -> Result<(), String> {
        let (word, after) = split_token(trim_blanks(rest));
        match word {
            "HELP" => self.help(after),
            "TYPE" => self.type_line(after),
            _ => Ok(()),
        }
    }

    /// The family called `name`, created (untyped, without help) if there is none yet.
    fn family(&mut self, name: &'a str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let i = self.families.len();
        self.families
            .push(Family::new(name, MetricType::Unknown, String::new()));
        self.meta.push(Meta::default());
        self.by_name.insert(name, i);
        i
    }

    /// Refuses metadata for a name whose samples already went to another family.
    fn check_not_grouped_elsewhere(&self, name: &str, what: &str) -> Result<(), String> {
        if let Some(&(fi, _)) = self.routes.get(name) {
            let owner = &self.families[fi].name;
            if owner != name {
                return Err(format!(
                    "samples of {name} were grouped into family {owner} before this {what} line"
                ));
            }
        }
        Ok(())
    }

    fn metadata_name(after: &'a str, what: &str) -> Result<(&'a str, &'a str), String> {
        let (name, rest) = split_token(trim_blanks(after));
        if name.is_empty() {
            return Err(format!("missing metric name in {what} line"));
        }
        if !is_valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in {what} line"));
        }
        Ok((name, rest))
    }

    fn help(&mut self, after: &'a str) -> Result<(), String> {
        let (name, rest) = Self::metadata_name(after, "HELP")?;
        self.check_not_grouped_elsewhere(name, "HELP")?;
        let text = unescape_help(trim_blanks(rest));
        let fi = self.family(name);
        if self.meta[fi].helped {
            return Ok(());
        }
        self.meta[fi].helped = true;
        self.families[fi].help = text.into_owned();
        Ok(())
    }

    fn type_line(&mut self, after: &'a str) -> Result<(), String> {
        let (name, rest) = Self::metadata_name(after, "TYPE")?;
        self.check_not_grouped_elsewhere(name, "TYPE")?;
        let (word, rest) = split_token(trim_blanks(rest));
        if word.is_empty() {
            return Err(format!("missing type in TYPE line for {name}"));
        }
        if !trim_blanks(rest).is_empty() {
            return Err(format!(
                "unexpected text after the type in TYPE line for {name}"
            ));
        }
        let kind = match MetricType::from_text(word)
            .or_else(|| MetricType::from_text(&word.to_ascii_lowercase()))
        {
            Some(
                k @ (MetricType::Counter
                | MetricType::Gauge
                | MetricType::Histogram
                | MetricType::Summary
                | MetricType::Unknown),
            ) => k,
            _ => return Err(format!("unknown metric type {word:?} for {name}")),
        };
        if let Some(&fi) = self.by_name.get(name) {
            if self.meta[fi].typed {
                if self.families[fi].kind == kind {
                    return Ok(());
                }
                return Err(format!("second TYPE line for {name} with a different type"));
            }
        }
        if self.routes.contains_key(name) {
            return Err(format!("samples of {name} came before its TYPE line"));
        }
        // Samples named like this family's parts that came before it formed families of
        // their own; by the format they belong here, so the TYPE line is too late.
        let mut buf = String::with_capacity(name.len() + 8);
        for (suffix, role) in SUFFIXES {
            if !accepts(kind, role) {
                continue;
            }
            buf.clear();
            buf.push_str(name);
            buf.push_str(suffix);
            if let Some(&fi) = self.by_name.get(buf.as_str()) {
                if !self.meta[fi].typed && !self.families[fi].samples.is_empty() {
                    return Err(format!(
                        "samples of {buf} came before the TYPE line of {name}"
                    ));
                }
            }
        }
        let fi = self.family(name);
        self.meta[fi].typed = true;
        self.families[fi].kind = kind;
        Ok(())
    }

    /// Finds (and remembers) the family and role of a sample name.
    fn route(&mut self, name: &'a str) -> Result<(usize, Role), String> {
        if let Some(&r) = self.routes.get(name) {
            return Ok(r);
        }
        let r = if let Some(&fi) = self.by_name.get(name) {
            if self.families[fi].kind == MetricType::Histogram {
                return Err(format!(
                    "sample {name} of histogram {name} needs a _bucket, _sum or _count suffix"
                ));
            }
            (fi, Role::Plain)
        } else {
            let parent = SUFFIXES.iter().find_map(|&(suffix, role)| {
                let base = name.strip_suffix(suffix)?;
                let &fi = self.by_name.get(base)?;
                accepts(self.families[fi].kind, role).then_some((fi, role))
            });
            match parent {
                Some(r) => r,
                None => (self.family(name), Role::Plain),
            }
        };
        self.routes.insert(name, r);
        Ok(r)
    }

    /// Reads a label block starting just after its `{`; returns the position after the `}`.
    /// The pairs are left in `self.pairs`.
    fn labels(&mut self, line: &'a str, mut p: usize) -> Result<usize, String> {
        let b = line.as_bytes();
        self.pairs.clear();
        loop {
            p = skip_blanks(b, p);
            if p >= b.len() {
                return Err("unterminated label block".into());
            }
            if b[p] == b'}' {
                return Ok(p + 1);
            }
            let start = p;
            while p < b.len() && !matches!(b[p], b'=' | b' ' | b'\t' | b',' | b'}' | b'"') {
                p += 1;
            }
            let label = &line[start..p];
            if label.is_empty() {
                let c = line[p..].chars().next().unwrap_or_default();
                return Err(format!("expected a label name, found {c:?}"));
            }
            if !is_valid_label_name(label) {
                return Err(format!("invalid label name {label:?}"));
            }
            if label == "__name__" {
                return Err("label __name__ is not allowed in a label block".into());
            }
            p = skip_blanks(b, p);
            if p >= b.len() || b[p] != b'=' {
                return Err(format!("expected '=' after label name {label}"));
            }
            p = skip_blanks(b, p + 1);
            if p >= b.len() || b[p] != b'"' {
                return Err(format!("expected '\"' to open the value of label {label}"));
            }
            let (value, next) = parse_quoted(line, p + 1, label)?;
            p = next;
            if self.pairs.iter().any(|(n, _)| *n == label) {
                return Err(format!("repeated label name {label}"));
            }
            self.pairs.push((label, value));
            p = skip_blanks(b, p);
            if p >= b.len() {
                return Err("unterminated label block".into());
            }
            match b[p] {
                b',' => p += 1,
                b'}' => return Ok(p + 1),
                _ => {
                    let c = line[p..].chars().next().unwrap_or_default();
                    return Err(format!(
                        "expected ',' or '}}' after the value of label {label}, found {c:?}"
                    ));
                }
            }
        }
    }

    fn sample(&mut self, line: &'a str) -> Result<(), String> {
        let b = line.as_bytes();
        let mut p = 0;
        while p < b.len() && !matches!(b[p], b'{' | b' ' | b'\t') {
            p += 1;
        }
        let name = &line[..p];
        if name.is_empty() {
            return Err("series without a metric name".into());
        }
        if !is_valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        p = skip_blanks(b, p);
        let labels = if p < b.len() && b[p] == b'{' {
            p = self.labels(line, p + 1)?;
            if self.pairs.is_empty() {
                Labels::new()
            } else {
                Labels::from_pairs(self.pairs.drain(..)).map_err(|e| e.to_string())?
            }
        } else {
            Labels::new()
        };
        p = skip_blanks(b, p);
        let (tok, rest) = split_token(&line[p..]);
        if tok.is_empty() {
            return Err(format!("missing value for {name}"));
        }
        let value = parse_float(tok).map_err(|e| format!("{e} as value of {name}"))?;
        let (tok, rest) = split_token(trim_blanks(rest));
        let timestamp_ms = if tok.is_empty() {
            None
        } else {
            let ts: i64 = tok
                .parse()
                .map_err(|_| format!("invalid timestamp {tok:?} for {name}"))?;
            if !trim_blanks(rest).is_empty() {
                return Err(format!("unexpected text after the timestamp of {name}"));
            }
            Some(ts)
        };

        let (fi, role) = self.route(name)?;
        match (role, self.families[fi].kind) {
            (Role::Bucket, _) => match labels.get("le") {
                Some(le) => {
                    parse_float(le).map_err(|e| format!("{e} as le of {name}"))?;
                }
                None => return Err(format!("histogram bucket {name} without an le label")),
            },
            (Role::Plain, MetricType::Summary) => match labels.get("quantile") {
                Some(q) => {
                    parse_float(q).map_err(|e| format!("{e} as quantile of {name}"))?;
                }
                None => return Err(format!("summary sample {name} without a quantile label")),
            },
            _ => {}
        }

        // Exact duplicates keep their first sample.
        let mut h = self.hasher.build_hasher();
        name.hash(&mut h);
        labels.hash(&mut h);
        let key = h.finish();
        let new_link = self.seen.len();
        let next = match self.series.entry(key) {
            Entry::Vacant(v) => {
                v.insert(new_link);
                NO_NEXT
            }
            Entry::Occupied(mut o) => {
                let mut cur = *o.get();
                while cur != NO_NEXT {
                    let link = self.seen[cur];
                    let s = &self.families[link.family].samples[link.sample];
                    if s.name == name && s.labels == labels {
                        return Ok(());
                    }
                    cur = link.next;
                }
                o.insert(new_link)
            }
        };
        let family = &mut self.families[fi];
        self.seen.push(Seen {
            family: fi,
            sample: family.samples.len(),
            next,
        });
        family.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
            timestamp_ms,
        });
        Ok(())
    }

    fn finish(self) -> Vec<Family> {
        let mut families = self.families;
        families.retain(|f| !f.samples.is_empty());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::{same_families, to_text};

    fn ok(text: &str) -> Vec<Family> {
        parse(text).unwrap_or_else(|e| panic!("{text:?} failed: {e}"))
    }

    /// Parses, checks the round trip through the writer, and returns the families.
    fn rt(text: &str) -> Vec<Family> {
        let first = ok(text);
        for with_ts in [true, false] {
            let written = to_text(&first, with_ts);
            let again = parse(&written).unwrap_or_else(|e| panic!("{written:?} failed: {e}"));
            let mut expected = first.clone();
            if !with_ts {
                for s in expected.iter_mut().flat_map(|f| f.samples.iter_mut()) {
                    s.timestamp_ms = None;
                }
            }
            assert!(
                same_families(&expected, &again),
                "round trip differs\ninput: {text:?}\nwritten: {written:?}\n{expected:#?}\n{again:#?}"
            );
        }
        first
    }

    fn err(text: &str) -> ParseError {
        match parse(text) {
            Ok(f) => panic!("{text:?} parsed: {f:#?}"),
            Err(e) => e,
        }
    }

    fn err_has(text: &str, line: usize, needle: &str) {
        let e = err(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e} lacks {needle:?}");
        assert_eq!(e.to_string(), format!("line {line}: {}", e.message));
        let first = e.message.chars().next().unwrap();
        assert!(first.is_lowercase(), "{e}");
    }

    fn one(text: &str) -> Sample {
        let fams = rt(text);
        assert_eq!(fams.len(), 1, "{fams:#?}");
        assert_eq!(fams[0].samples.len(), 1, "{fams:#?}");
        fams[0].samples[0].clone()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn empty_and_comment_only_inputs() {
        assert!(ok("").is_empty());
        assert!(ok("\n\n  \n\t\n").is_empty());
        assert!(ok("# just a comment\n#\n# HELPER not help\n#TYPO x\n").is_empty());
        assert!(ok("# EOF\n").is_empty());
        assert!(ok("# EOF").is_empty());
        // HELP and TYPE alone make no family.
        assert!(ok("# HELP a b\n# TYPE a gauge\n").is_empty());
    }

    #[test]
    fn byte_order_mark_is_skipped_only_at_the_start() {
        assert_eq!(
            rt("\u{feff}# TYPE a gauge\na 1\n")[0].kind,
            MetricType::Gauge
        );
        err_has("a 1\n\u{feff}b 2\n", 2, "invalid metric name");
    }

    #[test]
    fn simple_sample_and_no_final_newline() {
        let s = one("up 1");
        assert_eq!(s.name, "up");
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 1.0);
        assert_eq!(s.timestamp_ms, None);
        let fams = ok("up 1\n");
        assert_eq!(fams[0].name, "up");
        assert_eq!(fams[0].kind, MetricType::Unknown);
        assert_eq!(fams[0].help, "");
    }

    #[test]
    fn crlf_and_eof_are_tolerated() {
        let fams = rt("# HELP a the a\r\n# TYPE a gauge\r\na{x=\"1\"} 2 3\r\n# EOF\r\n");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].help, "the a");
        assert_eq!(fams[0].kind, MetricType::Gauge);
        assert_eq!(fams[0].samples[0].timestamp_ms, Some(3));
        assert_eq!(fams[0].samples[0].labels, labels(&[("x", "1")]));
        // A stray \r at the end of a help line never survives.
        assert_eq!(ok("# HELP a x\r\r\na 1\n")[0].help, "x");
        // Content after # EOF is read like any comment would let it be.
        assert_eq!(rt("a 1\n# EOF\nb 2\n").len(), 2);
    }

    #[test]
    fn help_escapes_and_rules() {
        let fams =
            rt("# HELP a back\\\\slash new\\nline \\t kept \"quotes\" {x=\"y\"} #hash \\\na 1\n");
        assert_eq!(
            fams[0].help,
            "back\\slash new\nline \\t kept \"quotes\" {x=\"y\"} #hash \\"
        );
        assert_eq!(rt("# HELP a\na 1\n")[0].help, "");
        assert_eq!(rt("# HELP a \t\na 1\n")[0].help, "");
        assert_eq!(
            rt("# HELP a   lead and trail  \na 1\n")[0].help,
            "lead and trail  "
        );
        assert_eq!(rt("#HELP a x\na 1\n")[0].help, "x");
        assert_eq!(rt("  #  HELP  a x\na 1\n")[0].help, "x");
        assert_eq!(rt("# HELP a ünïcödé ✓\na 1\n")[0].help, "ünïcödé ✓");
        let f = ok("# HELP a x\n# HELP a y\na 1\n");
        assert_eq!(f[0].help, "x", "a repeated HELP is ignored, the first wins");
        err_has("a 1\n# HELP\n", 2, "missing metric name in HELP line");
        err_has("# HELP 1a x\n", 1, "invalid metric name \"1a\"");
        err_has("# HELP a{b=\"c\"} x\n", 1, "invalid metric name");
        // Help after the family's samples is fine.
        assert_eq!(rt("a 1\n# HELP a late\n")[0].help, "late");
    }

    #[test]
    fn type_lines() {
        for (word, kind) in [
            ("counter", MetricType::Counter),
            ("gauge", MetricType::Gauge),
            ("untyped", MetricType::Unknown),
            ("unknown", MetricType::Unknown),
            ("GAUGE", MetricType::Gauge),
            ("Counter", MetricType::Counter),
        ] {
            let fams = rt(&format!("# TYPE a {word}\na 1\n"));
            assert_eq!(fams[0].kind, kind, "{word}");
        }
        err_has("# TYPE a gauges\n", 1, "unknown metric type \"gauges\"");
        err_has("# TYPE a info\n", 1, "unknown metric type");
        err_has("# TYPE a stateset\n", 1, "unknown metric type");
        err_has("# TYPE a gaugehistogram\n", 1, "unknown metric type");
        err_has("# TYPE a\n", 1, "missing type in TYPE line for a");
        err_has(
            "# TYPE a gauge extra\n",
            1,
            "unexpected text after the type",
        );
        err_has(
            "\n# TYPE a gauge\n# TYPE a counter\n",
            3,
            "second TYPE line for a",
        );
        let f = ok("# TYPE a gauge\n# TYPE a gauge\na 1\n");
        assert_eq!(
            f[0].kind,
            MetricType::Gauge,
            "a repeated identical TYPE is ignored"
        );
        err_has("# TYPE\n", 1, "missing metric name in TYPE line");
        err_has("# TYPE a-b gauge\n", 1, "invalid metric name \"a-b\"");
        err_has(
            "a 1\n# TYPE a gauge\n",
            2,
            "samples of a came before its TYPE line",
        );
        err_has(
            "a_sum 1\n# TYPE a summary\n",
            2,
            "samples of a_sum came before the TYPE line of a",
        );
        err_has(
            "a_bucket{le=\"1\"} 1\n# TYPE a histogram\n",
            2,
            "samples of a_bucket came before",
        );
        err_has(
            "a_total 1\n# TYPE a counter\n",
            2,
            "samples of a_total came before",
        );
        // ...but a gauge a does not claim a_total.
        assert_eq!(rt("a_total 1\n# TYPE a gauge\n").len(), 1);
        // Trailing blanks after the type are fine.
        assert_eq!(rt("# TYPE a gauge \t\na 1\n")[0].kind, MetricType::Gauge);
    }

    #[test]
    fn label_blocks() {
        let s = one("a{b=\"1\",c=\"2\"} 3");
        assert_eq!(s.labels, labels(&[("b", "1"), ("c", "2")]));
        // Sorted whatever the input order.
        assert_eq!(one("a{c=\"2\",b=\"1\"} 3").labels, s.labels);
        assert!(one("a{} 3").labels.is_empty());
        assert!(one("a{ } 3").labels.is_empty());
        assert_eq!(one("a{b=\"1\",} 3").labels, labels(&[("b", "1")]));
        assert_eq!(
            one("a { b = \"1\" , c=\"2\" , } 3").labels,
            labels(&[("b", "1"), ("c", "2")])
        );
        assert_eq!(one("a{b=\"1\"}3").labels, labels(&[("b", "1")]));
        assert_eq!(one("a\t{b=\"1\"}\t3").labels, labels(&[("b", "1")]));
        // Empty values are dropped.
        assert!(one("a{b=\"\"} 3").labels.is_empty());
        assert_eq!(one("a{b=\"\",c=\"x\"} 3").labels, labels(&[("c", "x")]));
        // Underscore-led names are fine.
        assert_eq!(one("a{_b=\"1\",__c=\"2\"} 3").labels.len(), 2);
    }

    #[test]
    fn label_value_escapes_and_data() {
        let s = one(r#"a{b="x\\y\"z\nw"} 1"#);
        assert_eq!(s.labels.get("b"), Some("x\\y\"z\nw"));
        let s = one(r##"a{b="}",c=",",d="=",e="#",f="{"} 1"##);
        assert_eq!(
            s.labels.iter().collect::<Vec<_>>(),
            vec![("b", "}"), ("c", ","), ("d", "="), ("e", "#"), ("f", "{")]
        );
        let s = one("a{b=\"a b\tc # d\"} 1");
        assert_eq!(s.labels.get("b"), Some("a b\tc # d"));
        err_has("a{b=\"#\"} 1 # not a comment", 1, "invalid timestamp \"#\"");
        let s = one("a{b=\"日本語 ✓ émoji 🦀\"} 1");
        assert_eq!(s.labels.get("b"), Some("日本語 ✓ émoji 🦀"));
        let s = one(r#"a{b="\\\\",c="\"\"",d="\\n"} 1"#);
        assert_eq!(s.labels.get("b"), Some("\\\\"));
        assert_eq!(s.labels.get("c"), Some("\"\""));
        assert_eq!(s.labels.get("d"), Some("\\n"));
        let s = one("a{b=\"\\\"}\"} 1");
        assert_eq!(s.labels.get("b"), Some("\"}"));
        let s = one("a{b=\"x\r y\"} 1");
        assert_eq!(s.labels.get("b"), Some("x\r y"));
    }

    #[test]
    fn bad_label_blocks() {
        err_has("a{b=\"\\t\"} 1", 1, "invalid escape sequence \\t");
        err_has("a{b=\"\\é\"} 1", 1, "invalid escape sequence \\é");
        err_has("a{b=\"x\\", 1, "unterminated value of label b");
        err_has("a{b=\"x} 1", 1, "unterminated value of label b");
        err_has("a{b=\"x\"", 1, "unterminated label block");
        err_has("a{b=\"x\",", 1, "unterminated label block");
        err_has("a{", 1, "unterminated label block");
        err_has("a{,} 1", 1, "expected a label name, found ','");
        err_has("a{b=\"1\",,} 1", 1, "expected a label name");
        err_has("a{=\"1\"} 1", 1, "expected a label name");
        err_has("a{b} 1", 1, "expected '=' after label name b");
        err_has("a{b=1} 1", 1, "expected '\"' to open the value of label b");
        err_has("a{b='1'} 1", 1, "expected '\"'");
        err_has("a{b=\"1\" c=\"2\"} 1", 1, "expected ',' or '}'");
        err_has("a{b=\"1\"c=\"2\"} 1", 1, "expected ',' or '}'");
        err_has("a{b=\"1\",b=\"2\"} 1", 1, "repeated label name b");
        err_has("a{b=\"\",b=\"2\"} 1", 1, "repeated label name b");
        err_has("a{b=\"1\",c=\"\",b=\"\"} 1", 1, "repeated label name b");
        err_has("a{1b=\"1\"} 1", 1, "invalid label name \"1b\"");
        err_has("a{b-c=\"1\"} 1", 1, "invalid label name \"b-c\"");
        err_has("a{b:c=\"1\"} 1", 1, "invalid label name \"b:c\"");
        err_has("a{é=\"1\"} 1", 1, "invalid label name");
        err_has("a{__name__=\"x\"} 1", 1, "__name__");
        err_has("{__name__=\"x\"} 1", 1, "series without a metric name");
        err_has("{a=\"b\"} 1", 1, "series without a metric name");
        err_has("a{b=\"1\"}{c=\"2\"} 1", 1, "invalid number");
    }

    #[test]
    fn metric_names() {
        assert_eq!(one("a:b:c_d 1").name, "a:b:c_d");
        assert_eq!(one(":a 1").name, ":a");
        assert_eq!(one("_ 1").name, "_");
        err_has("1a 1", 1, "invalid metric name \"1a\"");
        err_has("a-b 1", 1, "invalid metric name \"a-b\"");
        err_has("a.b 1", 1, "invalid metric name");
        err_has("mötley 1", 1, "invalid metric name");
        err_has("a\"b 1", 1, "invalid metric name");
        err_has("a}b 1", 1, "invalid metric name");
    }

    #[test]
    fn values() {
        let v = |t: &str| one(&format!("a {t}")).value;
        assert!(v("NaN").is_nan());
        assert_eq!(v("NaN").to_bits(), f64::NAN.to_bits());
        assert_eq!(v("nan").to_bits(), f64::NAN.to_bits());
        for t in ["+Inf", "Inf", "inf", "INF", "+inf", "Infinity", "+infinity"] {
            assert_eq!(v(t), f64::INFINITY, "{t}");
        }
        for t in ["-Inf", "-inf", "-Infinity"] {
            assert_eq!(v(t), f64::NEG_INFINITY, "{t}");
        }
        assert_eq!(v("1e3"), 1000.0);
        assert_eq!(v("1E3"), 1000.0);
        assert_eq!(v("2.5e-3"), 0.0025);
        assert_eq!(v("-0").to_bits(), (-0.0f64).to_bits());
        assert_eq!(v("0").to_bits(), 0.0f64.to_bits());
        assert_eq!(v(".5"), 0.5);
        assert_eq!(v("5."), 5.0);
        assert_eq!(v("+7"), 7.0);
        assert_eq!(v("007"), 7.0);
        assert_eq!(v("1.7976931348623157e308"), f64::MAX);
        assert_eq!(v("-1.7976931348623157e308"), f64::MIN);
        assert_eq!(v("5e-324"), 5e-324);
        assert_eq!(v("1e-400"), 0.0);
        assert_eq!(v("123456789012345678901234567890"), 1.2345678901234568e29);
        assert_eq!(v("9007199254740993"), 9007199254740992.0);
        assert_eq!(v("0.1"), 0.1);
        err_has("a 1e400", 1, "out of range");
        err_has("a -1e400", 1, "out of range");
        err_has("a -NaN", 1, "invalid number \"-NaN\"");
        err_has("a +nan", 1, "invalid number");
        err_has("a 0x10", 1, "invalid number \"0x10\"");
        err_has("a 1_000", 1, "invalid number");
        err_has("a one", 1, "invalid number \"one\" as value of a");
        err_has("a 1,5", 1, "invalid number");
        err_has("a .", 1, "invalid number");
        err_has("a 1e", 1, "invalid number");
        err_has("a --1", 1, "invalid number");
        err_has("a Infinityy", 1, "invalid number");
        err_has("a", 1, "missing value for a");
        err_has("a ", 1, "missing value for a");
        err_has("a{b=\"c\"}", 1, "missing value for a");
        err_has("a{b=\"c\"}  \t", 1, "missing value for a");
        err_has("a 1#x", 1, "invalid number \"1#x\"");
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            one("a 1 1700000000000").timestamp_ms,
            Some(1_700_000_000_000)
        );
        assert_eq!(one("a 1 -1").timestamp_ms, Some(-1));
        assert_eq!(
            one("a 1 -1700000000000").timestamp_ms,
            Some(-1_700_000_000_000)
        );
        assert_eq!(one("a 1 0").timestamp_ms, Some(0));
        assert_eq!(one("a 1 +5").timestamp_ms, Some(5));
        assert_eq!(one("a 1 9223372036854775807").timestamp_ms, Some(i64::MAX));
        assert_eq!(one("a 1 -9223372036854775808").timestamp_ms, Some(i64::MIN));
        assert_eq!(one("a\t1\t2\t").timestamp_ms, Some(2));
        assert_eq!(one("a 1 \t ").timestamp_ms, None);
        err_has("a 1 9223372036854775808", 1, "invalid timestamp");
        err_has("a 1 1.5", 1, "invalid timestamp \"1.5\"");
        err_has("a 1 1e3", 1, "invalid timestamp");
        err_has("a 1 NaN", 1, "invalid timestamp");
        err_has("a 1 2 3", 1, "unexpected text after the timestamp of a");
        err_has("a 1 2 # comment", 1, "unexpected text after the timestamp");
        err_has("a 1 2x", 1, "invalid timestamp");
    }

    #[test]
    fn blanks_between_tokens() {
        let s = one("  \t a \t {b=\"1\"} \t 2 \t 3 \t ");
        assert_eq!(s.name, "a");
        assert_eq!(s.value, 2.0);
        assert_eq!(s.timestamp_ms, Some(3));
        assert_eq!(one("a\t2").value, 2.0);
    }

    #[test]
    fn error_line_numbers_count_every_line() {
        err_has(
            "# HELP a x\n\n\r\na 1\n  \nb{c=\"\\q\"} 1\n",
            6,
            "invalid escape",
        );
        err_has("a 1\r\nb 2\r\nc\r\n", 3, "missing value for c");
    }

    #[test]
    fn histogram_grouping() {
        let text = "\
# HELP h Request time.
# TYPE h histogram
h_bucket{le=\"0.1\"} 1
h_bucket{le=\"1\"} 2
h_bucket{le=\"+Inf\"} 3
h_sum 1.5
h_count 3
h_created 1.7e9
other 4
";
        let fams = rt(text);
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].name, "h");
        assert_eq!(fams[0].kind, MetricType::Histogram);
        assert_eq!(fams[0].help, "Request time.");
        let names: Vec<_> = fams[0].samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "h_bucket",
                "h_bucket",
                "h_bucket",
                "h_sum",
                "h_count",
                "h_created"
            ]
        );
        assert_eq!(fams[0].samples[2].labels.get("le"), Some("+Inf"));
        assert_eq!(fams[1].name, "other");
        assert_eq!(fams[1].kind, MetricType::Unknown);

        err_has(
            "# TYPE h histogram\nh_bucket 1\n",
            2,
            "histogram bucket h_bucket without an le label",
        );
        err_has(
            "# TYPE h histogram\nh_bucket{le=\"\"} 1\n",
            2,
            "without an le label",
        );
        err_has(
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            2,
            "invalid number \"x\" as le of h_bucket",
        );
        err_has(
            "# TYPE h histogram\nh 1\n",
            2,
            "needs a _bucket, _sum or _count suffix",
        );
        // A histogram does not take _total; that becomes its own family.
        let fams = rt("# TYPE h histogram\nh_sum 1\nh_total 2\n");
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[1].name, "h_total");
        // Without a TYPE line nothing is grouped and le is not required.
        let fams = rt("h_bucket 1\nh_sum 2\n");
        assert_eq!(fams.len(), 2);
    }

    #[test]
    fn summary_grouping() {
        let text = "\
# TYPE s summary
s{quantile=\"0.5\"} 1
s{quantile=\"0.99\",path=\"/x\"} 2
s_sum 10
s_count 5
";
        let fams = rt(text);
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].kind, MetricType::Summary);
        assert_eq!(fams[0].samples.len(), 4);
        err_has(
            "# TYPE s summary\ns 1\n",
            2,
            "summary sample s without a quantile label",
        );
        err_has(
            "# TYPE s summary\ns{quantile=\"high\"} 1\n",
            2,
            "as quantile of s",
        );
        // A summary does not take _bucket.
        let fams = rt("# TYPE s summary\ns_sum 1\ns_bucket 1\n");
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[1].name, "s_bucket");
    }

    #[test]
    fn counter_grouping() {
        let fams = rt("# TYPE c counter\nc_total{a=\"1\"} 1\nc{a=\"2\"} 2\nc_created 3\n");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].samples.len(), 3);
        // A gauge does not take _total.
        let fams = rt("# TYPE g gauge\ng_total 1\n");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name, "g_total");
        assert_eq!(fams[0].kind, MetricType::Unknown);
        // An exact declaration beats the suffix rule.
        let fams = rt("# TYPE c counter\n# TYPE c_total gauge\nc_total 1\nc 2\n");
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].name, "c");
        assert_eq!(fams[1].name, "c_total");
        assert_eq!(fams[1].kind, MetricType::Gauge);
        // Only HELP (no TYPE) does not make a counter.
        let fams = rt("# HELP c x\nc_total 1\n");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].name, "c_total");
        assert_eq!(fams[0].help, "");
    }

    #[test]
    fn metadata_after_grouping_elsewhere_is_refused() {
        err_has(
            "# TYPE s summary\ns_sum 1\n# HELP s_sum x\n",
            3,
            "grouped into family s",
        );
        err_has(
            "# TYPE s summary\ns_sum 1\n# TYPE s_sum gauge\n",
            3,
            "grouped into family s",
        );
        // Before any sample, a separate declaration is fine.
        assert_eq!(
            rt("# TYPE s summary\n# TYPE s_sum gauge\ns_sum 1\n")[0].name,
            "s_sum"
        );
    }

    #[test]
    fn family_order_and_merging() {
        let fams = rt("b 1\n# TYPE a gauge\na{x=\"1\"} 1\nb{y=\"1\"} 2\nc 3\na{x=\"2\"} 4\n");
        let names: Vec<_> = fams.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(fams[0].samples.len(), 2);
        assert_eq!(fams[1].samples.len(), 2);
        assert_eq!(fams[1].samples[1].value, 4.0);
        // A family declared first keeps its place even if its samples come late.
        let fams = rt("# HELP z last\nq 1\nz 2\n");
        assert_eq!(fams[0].name, "z");
        assert_eq!(fams[0].help, "last");
    }

    #[test]
    fn duplicates_keep_the_first() {
        let fams = rt(
            "a{x=\"1\"} 1\na{x=\"2\"} 2\na{x=\"1\"} 3\na{x=\"1\",y=\"\"} 4\nb 5\na{x=\"2\"} 6 7\n",
        );
        let a = &fams[0];
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.samples[0].value, 1.0);
        assert_eq!(a.samples[1].value, 2.0);
        assert_eq!(a.samples[1].timestamp_ms, None);
        // Same labels, other names: not duplicates.
        let fams = rt("# TYPE h histogram\nh_sum 1\nh_count 1\nh_sum 2\n");
        assert_eq!(fams[0].samples.len(), 2);
        // Many series stay distinct.
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!("m{{i=\"{i}\"}} {i}\n"));
        }
        text.push_str("m{i=\"1999\"} 0\n");
        let fams = ok(&text);
        assert_eq!(fams[0].samples.len(), 2000);
        assert_eq!(fams[0].samples[1999].value, 1999.0);
    }

    #[test]
    fn go_client_node_exporter_output() {
        let text = r##"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.2592e-05
go_gc_duration_seconds{quantile="0.25"} 3.3722e-05
go_gc_duration_seconds{quantile="0.5"} 4.1074e-05
go_gc_duration_seconds{quantile="0.75"} 5.8463e-05
go_gc_duration_seconds{quantile="1"} 0.000298813
go_gc_duration_seconds_sum 0.045717823
go_gc_duration_seconds_count 863
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP go_info Information about the Go environment.
# TYPE go_info gauge
go_info{version="go1.21.4"} 1
# HELP go_memstats_alloc_bytes Number of bytes allocated and still in use.
# TYPE go_memstats_alloc_bytes gauge
go_memstats_alloc_bytes 2.651336e+06
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 1.17487921e+06
node_cpu_seconds_total{cpu="0",mode="iowait"} 2113.52
node_cpu_seconds_total{cpu="0",mode="system"} 6841.3
node_cpu_seconds_total{cpu="1",mode="idle"} 1.17632469e+06
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/mmcblk0p1",fstype="vfat",mountpoint="/boot/firmware"} 4.5367296e+08
node_filesystem_avail_bytes{device="/dev/mmcblk0p2",fstype="ext4",mountpoint="/"} 2.4081989632e+10
# HELP node_hwmon_temp_celsius Hardware monitor for temperature (input)
# TYPE node_hwmon_temp_celsius gauge
node_hwmon_temp_celsius{chip="thermal_thermal_zone0",sensor="temp0"} 47.236
# HELP node_network_info Non-numeric data from /sys/class/net/<iface>, value is always 1.
# TYPE node_network_info gauge
node_network_info{address="dc:a6:32:aa:bb:cc",adminstate="up",broadcast="ff:ff:ff:ff:ff:ff",device="eth0",duplex="full",ifalias="",operstate="up"} 1
# HELP node_network_receive_bytes_total Network device statistic receive_bytes.
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{device="eth0"} 9.87654321e+08
node_network_receive_bytes_total{device="lo"} 123456
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="cpu"} 1
node_scrape_collector_success{collector="textfile"} 0
# HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise
# TYPE node_textfile_scrape_error gauge
node_textfile_scrape_error 0
# HELP node_time_seconds System time in seconds since epoch (1970).
# TYPE node_time_seconds gauge
node_time_seconds 1.7005806412345e+09
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{domainname="(none)",machine="aarch64",nodename="raspberrypi",release="6.1.0-rpi7-rpi-v8",sysname="Linux",version="#1 SMP PREEMPT Debian 1:6.1.63-1+rpt1 (2023-11-24)"} 1
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.70049843107e+09
# HELP promhttp_metric_handler_requests_in_flight Current number of scrapes being served.
# TYPE promhttp_metric_handler_requests_in_flight gauge
promhttp_metric_handler_requests_in_flight 1
# HELP promhttp_metric_handler_requests_total Total number of scrapes by HTTP status code.
# TYPE promhttp_metric_handler_requests_total counter
promhttp_metric_handler_requests_total{code="200"} 8631
promhttp_metric_handler_requests_total{code="500"} 0
promhttp_metric_handler_requests_total{code="503"} 0
# HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.
# TYPE prometheus_http_request_duration_seconds histogram
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.1"} 8630
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="0.2"} 8631
prometheus_http_request_duration_seconds_bucket{handler="/metrics",le="+Inf"} 8631
prometheus_http_request_duration_seconds_sum 52.1
prometheus_http_request_duration_seconds_count 8631
"##;
        let fams = rt(text);
        assert_eq!(fams.len(), 17);
        assert!(fams.iter().all(|f| !f.help.is_empty()));
        let gc = &fams[0];
        assert_eq!(gc.kind, MetricType::Summary);
        assert_eq!(gc.samples.len(), 7);
        assert_eq!(gc.samples[6].value, 863.0);
        let net = fams.iter().find(|f| f.name == "node_network_info").unwrap();
        assert_eq!(net.samples[0].labels.len(), 6, "empty ifalias dropped");
        let uname = fams.iter().find(|f| f.name == "node_uname_info").unwrap();
        assert_eq!(
            uname.samples[0].labels.get("version"),
            Some("#1 SMP PREEMPT Debian 1:6.1.63-1+rpt1 (2023-11-24)")
        );
        let h = fams.last().unwrap();
        assert_eq!(h.kind, MetricType::Histogram);
        assert_eq!(h.samples.len(), 5);
        let total: usize = fams.iter().map(|f| f.samples.len()).sum();
        assert_eq!(total, 35);
    }

    #[test]
    fn nasty_inputs_round_trip() {
        for text in [
            "a{b=\"\\\\\\\"\\n}{,=#\"} NaN -5\n",
            "a{b=\"\u{0}\u{7f}\u{feff}\"} -Inf\n",
            "# HELP a \\\\n\\\\\\n\\\na -0 -0\n",
            "a 1e308\nb 2.2250738585072014e-308\nc 4.9e-324\n",
            "a 123456789.123456789\nb -0.000001\nc 1e21\nd 1e-7\n",
            "x:y 1\nx:y_total 2\n",
            "a{b=\" \"} 1\n",
            "a{b=\"\t\"} 1\n",
        ] {
            rt(text);
        }
    }

    #[test]
    fn errors_display_as_line_and_message() {
        let e = err("ok 1\nbad\n");
        assert_eq!(
            e,
            ParseError {
                line: 2,
                message: "missing value for bad".into()
            }
        );
        assert_eq!(e.to_string(), "line 2: missing value for bad");
    }
}
