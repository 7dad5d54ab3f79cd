//! A single-pass parser for the Prometheus text exposition format (0.0.4 and its 1.0.0 form
//! with UTF-8 names) that accepts and stores what Prometheus 3.5 does.
//!
//! [`parse_bytes`] turns a whole scrape body into [`Family`]s or refuses it whole with a
//! [`ParseError`] naming the line where the bad entry starts. It walks the bytes once, without
//! regular expressions, following the tokens of Prometheus's own text lexer; grouping into
//! families is [`super::group`]'s. The rules (see docs/scrape.md for the differential test
//! that holds them to a real Prometheus 3.5.3):
//!
//! - Lines end with `\n` only (a `\r` makes a value or type unreadable, so CRLF bodies are
//!   refused, as by Prometheus); blank lines are skipped; a NUL byte where an entry would start
//!   ends the body there (Prometheus's lexer reads it as the end).
//! - `#` followed by a blank starts a comment that may be `HELP` or `TYPE` metadata (the
//!   keyword must be followed by a blank and a name); `#` followed by anything else, and any
//!   other comment, is skipped whatever bytes it holds (invalid UTF-8 included). `# HELP` or
//!   `# TYPE` with nothing after the keyword is a comment; with a blank but no name, an error.
//! - A metadata name is `[a-zA-Z_:][a-zA-Z0-9_:]*` or a quoted string. The text after it loses
//!   exactly its first character (the separating blank, as in Prometheus). TYPE words are
//!   `counter`, `gauge`, `histogram`, `summary`, `untyped`, in lower case; anything else is an
//!   error. HELP text must be UTF-8 and unescapes `\\` and `\n` only.
//! - A sample is `name{labels} value [timestamp]` or `{"name",labels} value [timestamp]`.
//!   Label names are `[a-zA-Z_][a-zA-Z0-9_]*` or quoted; values are quoted. In quoted strings
//!   `\\`, `\"` and `\n` are unescaped and every other backslash pair is kept as written; a
//!   raw newline is part of the string. Commas between labels may be left out and one may
//!   trail. Every label of a name given an empty value is removed; then a repeated label name,
//!   `__name__`, an empty name and a value that is not UTF-8 are errors.
//! - Values are read by Go's `ParseFloat` rules (see [`super::float`]), `-0` keeps its sign
//!   and every NaN becomes Prometheus's NaN bits. The timestamp is unsigned base-10
//!   milliseconds that fit an int64.
//! - After a `# TYPE x histogram` line, `le` values of the following samples are rewritten to
//!   the canonical float text (`1` → `1.0`, `+inf` → `+Inf`); after `# TYPE x summary`,
//!   `quantile` values are. Like Prometheus, this follows the latest TYPE line, whatever
//!   family it names; a value that is not a number stays as written.
//!
//! One deliberate difference from Prometheus: blanks before a metric name are skipped
//! (Prometheus keeps them in the name, storing `  a 1` as a metric called `"  a"`).

use std::borrow::Cow;

use super::float::parse_float;
use super::group::Grouper;
use crate::model::MetricType;

/// Why an input was refused: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole text-format body (see the module docs for the rules).
pub fn parse(text: &str) -> Result<Vec<crate::model::Family>, ParseError> {
    parse_bytes(text.as_bytes())
}

/// Parses a whole text-format body given as bytes (comments need not be UTF-8), scraped now.
pub fn parse_bytes(body: &[u8]) -> Result<Vec<crate::model::Family>, ParseError> {
    parse_bytes_at(body, crate::clock::system_now_ms())
}

/// [`parse_bytes`] for a body scraped at `now_ms` (wall clock): which of a series' repeated
/// explicit timestamps are kept depends on it, as in Prometheus.
pub fn parse_bytes_at(body: &[u8], now_ms: i64) -> Result<Vec<crate::model::Family>, ParseError> {
    parse_bytes_capped(body, now_ms, 0)
}

/// [`parse_bytes_at`] that gives up as soon as more than `cap` samples are kept (0: no cap), so
/// a body that can only fail its `sample_limit` is never held in memory whole.
pub fn parse_bytes_capped(
    body: &[u8],
    now_ms: i64,
    cap: usize,
) -> Result<Vec<crate::model::Family>, ParseError> {
    let lines = line_count(body);
    if cap > 0 && lines >= cap {
        // Count first, keeping a hash per series only: a body over the cap is refused
        // without holding up to `cap` samples, and one under it is parsed as usual.
        run(body, Grouper::counting(now_ms), cap)?;
    }
    run(body, Grouper::with_capacity(now_ms, lines), cap)
}

/// The number of line ends in `body`: at least its number of samples, less one.
pub(crate) fn line_count(body: &[u8]) -> usize {
    body.iter().filter(|&&c| c == b'\n').count()
}

fn run(body: &[u8], group: Grouper, cap: usize) -> Result<Vec<crate::model::Family>, ParseError> {
    let mut p = Parser {
        b: body,
        pos: 0,
        mtype: None,
        group,
        pairs: Vec::new(),
    };
    loop {
        let start = p.pos;
        match p.entry() {
            Ok(true) if cap > 0 && p.group.kept() > cap => {
                return Err(ParseError {
                    line: 1 + body[..p.pos.min(body.len())]
                        .iter()
                        .filter(|&&c| c == b'\n')
                        .count(),
                    message: over_cap(cap),
                });
            }
            Ok(true) => {}
            Ok(false) => break,
            Err(message) => {
                let line = 1 + body[..start.min(body.len())]
                    .iter()
                    .filter(|&&c| c == b'\n')
                    .count();
                // An entry that starts with blank lines reports the line it really starts on.
                let skipped = body[start.min(body.len())..]
                    .iter()
                    .take_while(|&&c| matches!(c, b'\n' | b' ' | b'\t'))
                    .filter(|&&c| c == b'\n')
                    .count();
                return Err(ParseError {
                    line: line + skipped,
                    message,
                });
            }
        }
    }
    Ok(p.group.finish())
}

/// What a parse stopped by its sample cap says (the words of the relay's `sample_limit` check).
pub(crate) fn over_cap(cap: usize) -> String {
    format!("sample_limit exceeded: more than {cap} samples")
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Undoes `\\`, `\"` and `\n` (and, for help text, only `\\` and `\n`); every other backslash
/// stays as it is.
pub(crate) fn unescape(s: &str, quotes: bool) -> Cow<'_, str> {
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
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

fn utf8<'a>(b: &'a [u8], what: &str) -> Result<&'a str, String> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s),
        Err(_) => Err(format!(
            "{what} {:?} is not valid UTF-8",
            String::from_utf8_lossy(b)
        )),
    }
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    /// The type of the latest TYPE line: decides `le`/`quantile` normalisation.
    mtype: Option<MetricType>,
    group: Grouper,
    /// Scratch space for the label pairs of the current sample, cleared after each one.
    pairs: super::group::Pairs<'a>,
}

impl<'a> Parser<'a> {
    /// The byte at `pos`; the body ends with a virtual `\n`.
    fn peek(&self) -> u8 {
        self.b.get(self.pos).copied().unwrap_or(b'\n')
    }

    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn skip_blanks(&mut self) {
        while self.pos < self.b.len() && is_blank(self.b[self.pos]) {
            self.pos += 1;
        }
    }

    /// Moves past the end of the current line (past its `\n`).
    fn skip_line(&mut self) {
        match self.b[self.pos.min(self.b.len())..]
            .iter()
            .position(|&c| c == b'\n')
        {
            Some(i) => self.pos += i + 1,
            None => self.pos = self.b.len(),
        }
    }

    /// What is left of the current line, up to (not including) its `\n`; moves past the `\n`.
    fn rest_of_line(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.b.len());
        self.skip_line();
        let end = if self.pos > start && self.b.get(self.pos - 1) == Some(&b'\n') {
            self.pos - 1
        } else {
            self.pos
        };
        &self.b[start..end]
    }

    /// A quoted string starting at `pos` (on its opening quote): the raw bytes between the
    /// quotes. A backslash escapes any byte but a newline; raw newlines are part of the string.
    fn quoted(&mut self) -> Option<&'a [u8]> {
        debug_assert_eq!(self.peek(), b'"');
        let start = self.pos + 1;
        let mut p = start;
        while p < self.b.len() {
            match self.b[p] {
                b'"' => {
                    self.pos = p + 1;
                    return Some(&self.b[start..p]);
                }
                b'\\' => {
                    if matches!(self.b.get(p + 1), None | Some(b'\n')) {
                        return None;
                    }
                    p += 2;
                }
                _ => p += 1,
            }
        }
        None
    }

    /// A legacy name (`[a-zA-Z_:][a-zA-Z0-9_:]*`, or without `:` for a label) at `pos`.
    fn bare_name(&mut self, colon: bool) -> &'a str {
        let start = self.pos;
        while self.pos < self.b.len()
            && is_name_char(self.b[self.pos])
            && (colon || self.b[self.pos] != b':')
        {
            self.pos += 1;
        }
        // Only ASCII bytes were taken.
        std::str::from_utf8(&self.b[start..self.pos]).unwrap_or_default()
    }

    /// Reads one entry (line); `Ok(false)` at the end of the body.
    fn entry(&mut self) -> Result<bool, String> {
        loop {
            self.skip_blanks();
            if self.at_end() {
                return Ok(false);
            }
            match self.peek() {
                b'\n' => self.pos += 1,
                0 => return Ok(false),
                b'#' => {
                    self.pos += 1;
                    self.comment()?;
                    return Ok(true);
                }
                b'{' => {
                    self.sample(None)?;
                    return Ok(true);
                }
                c if is_name_start(c) => {
                    let name = self.bare_name(true);
                    self.sample(Some(name))?;
                    return Ok(true);
                }
                _ => {
                    let c = String::from_utf8_lossy(
                        &self.b[self.pos..(self.pos + 4).min(self.b.len())],
                    )
                    .chars()
                    .next()
                    .unwrap_or_default();
                    return Err(format!("expected a metric name or '#', found {c:?}"));
                }
            }
        }
    }

    fn comment(&mut self) -> Result<(), String> {
        if !is_blank(self.peek()) || self.at_end() {
            // `#x...`: a plain comment. Prometheus's lexer ends the body at a NUL in one.
            let line = self.rest_of_line();
            if line.contains(&0) {
                self.pos = self.b.len();
            }
            return Ok(());
        }
        self.skip_blanks();
        let rest = &self.b[self.pos.min(self.b.len())..];
        let keyword = if rest.starts_with(b"HELP") {
            Some(true)
        } else if rest.starts_with(b"TYPE") {
            Some(false)
        } else {
            None
        };
        let Some(is_help) = keyword else {
            self.skip_line();
            return Ok(());
        };
        if !rest.get(4).copied().is_some_and(is_blank) {
            self.skip_line();
            return Ok(());
        }
        let what = if is_help { "HELP" } else { "TYPE" };
        self.pos += 4;
        self.skip_blanks();
        let name: String = match self.peek() {
            b'"' => match self.quoted() {
                Some(raw) => unescape(&String::from_utf8_lossy(raw), true).into_owned(),
                None => return Err(format!("unterminated quoted metric name in {what} line")),
            },
            c if is_name_start(c) && !self.at_end() => self.bare_name(true).to_string(),
            _ => return Err(format!("expected a metric name after {what}")),
        };
        let line = self.rest_of_line();
        // The text loses its first character (normally the separating blank); a text of
        // blanks only is empty.
        let text: &[u8] = if line.iter().all(|&c| is_blank(c)) || line.len() <= 1 {
            b""
        } else {
            &line[1..]
        };
        if is_help {
            let text = utf8(text, "help text")?;
            self.group.help(&name, unescape(text, false).into_owned());
        } else {
            let kind = match text {
                b"counter" => MetricType::Counter,
                b"gauge" => MetricType::Gauge,
                b"histogram" => MetricType::Histogram,
                b"summary" => MetricType::Summary,
                b"untyped" => MetricType::Unknown,
                _ => {
                    return Err(format!(
                        "invalid metric type {:?} for {name}",
                        String::from_utf8_lossy(text)
                    ))
                }
            };
            self.mtype = Some(kind);
            self.group.type_of(&name, kind);
        }
        Ok(())
    }

    /// Reads the label block whose `{` is at `pos`; returns the metric name found inside it,
    /// if any. The pairs (unescaped) are left in `self.pairs`.
    fn labels(&mut self) -> Result<Option<Cow<'a, str>>, String> {
        self.pos += 1;
        let mut name = None;
        loop {
            self.skip_blanks();
            let c = self.peek();
            if self.at_end() {
                return Err("unterminated label block".into());
            }
            let (label, quoted) = match c {
                b'}' => {
                    self.pos += 1;
                    return Ok(name);
                }
                b'"' => match self.quoted() {
                    Some(raw) => (utf8(raw, "quoted name")?, true),
                    None => return Err("unterminated quoted name in label block".into()),
                },
                c if c.is_ascii_alphabetic() || c == b'_' => (self.bare_name(false), false),
                _ => {
                    return Err(format!(
                        "expected a label name, found {:?}",
                        String::from_utf8_lossy(&[c])
                    ))
                }
            };
            self.skip_blanks();
            let next = self.peek();
            if quoted && (next == b',' || next == b'}') {
                if name.is_some() {
                    return Err("metric name given twice".into());
                }
                name = Some(unescape(label, true));
                if next == b',' {
                    self.pos += 1;
                }
                continue;
            }
            if next != b'=' || self.at_end() {
                return Err(format!("expected '=' after label name {label:?}"));
            }
            self.pos += 1;
            self.skip_blanks();
            if self.peek() != b'"' || self.at_end() {
                return Err(format!("expected a quoted value for label {label:?}"));
            }
            let Some(raw) = self.quoted() else {
                return Err(format!("unterminated value of label {label:?}"));
            };
            let value = utf8(raw, "label value")?;
            let label = if quoted {
                unescape(label, true)
            } else {
                Cow::Borrowed(label)
            };
            self.pairs.push((label, unescape(value, true)));
            self.skip_blanks();
            if self.peek() == b',' && !self.at_end() {
                self.pos += 1;
            }
        }
    }

    /// Reads a sample whose bare name (if any) was just read; `pos` is after it.
    fn sample(&mut self, bare: Option<&'a str>) -> Result<(), String> {
        // A sample without braces has no pairs: none of the previous sample's are left.
        self.pairs.clear();
        self.skip_blanks();
        let mut inner = None;
        if self.peek() == b'{' && !self.at_end() {
            inner = self.labels()?;
        }
        let name = super::group::sample_name(bare, inner)?;
        self.skip_blanks();
        let start = self.pos;
        while self.pos < self.b.len()
            && !matches!(self.b[self.pos], b'{' | b' ' | b'\t' | b'\n' | 0)
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("missing value for {name}"));
        }
        let tok = String::from_utf8_lossy(&self.b[start..self.pos]);
        let value = parse_float(&tok).map_err(|e| format!("{e} as value of {name}"))?;
        self.skip_blanks();
        let start = self.pos;
        while self.pos < self.b.len() && self.b[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        let timestamp_ms = if self.pos > start {
            let digits = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or_default();
            Some(
                digits
                    .parse::<i64>()
                    .map_err(|_| format!("timestamp {digits} of {name} out of range"))?,
            )
        } else {
            None
        };
        self.skip_blanks();
        if self.peek() != b'\n' {
            let what = if timestamp_ms.is_some() {
                "after the timestamp"
            } else {
                "after the value"
            };
            let c = String::from_utf8_lossy(&self.b[self.pos..(self.pos + 4).min(self.b.len())])
                .chars()
                .next()
                .unwrap_or_default();
            return Err(format!("unexpected {c:?} {what} of {name}"));
        }
        self.pos += 1;

        let labels = super::group::sample_labels(&name, self.mtype, &mut self.pairs)?;
        self.group.sample(&name, labels, value, timestamp_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expfmt::{same_series, to_text};
    use crate::model::{Family, Labels, Sample};

    fn ok(text: &str) -> Vec<Family> {
        parse(text).unwrap_or_else(|e| panic!("{text:?} failed: {e}"))
    }

    /// Parses, checks the round trip through the writer, and returns the families.
    fn rt(text: &str) -> Vec<Family> {
        let first = ok(text);
        let written = to_text(&first, true);
        let again = parse(&written).unwrap_or_else(|e| panic!("{written:?} failed: {e}"));
        assert!(
            same_series(&first, &again),
            "round trip differs\ninput: {text:?}\nwritten: {written:?}\n{first:#?}\n{again:#?}"
        );
        first
    }

    fn err_has(text: &str, line: usize, needle: &str) {
        let e = match parse(text) {
            Ok(f) => panic!("{text:?} parsed: {f:#?}"),
            Err(e) => e,
        };
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e} lacks {needle:?}");
        assert_eq!(e.to_string(), format!("line {line}: {}", e.message));
    }

    fn all(text: &str) -> Vec<Sample> {
        rt(text).into_iter().flat_map(|f| f.samples).collect()
    }

    fn one(text: &str) -> Sample {
        let s = all(text);
        assert_eq!(s.len(), 1, "{s:#?}");
        s.into_iter().next().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn empty_comments_and_metadata_only() {
        assert!(ok("").is_empty());
        assert!(ok("\n\n  \n\t\n").is_empty());
        assert!(ok("# just a comment\n#\n# HELPER not help\n#TYPE x bogus\n").is_empty());
        assert!(ok("# EOF\n").is_empty());
        assert!(ok("# HELP a b\n# TYPE a gauge\n").is_empty());
        // Bare keywords are comments; invalid UTF-8 in a comment is fine.
        assert!(ok("# TYPE\n# HELP\n# caf\u{e9}\n").is_empty());
        assert!(parse_bytes(b"# bad \xff\xfe\n#\xff\na 1\n").unwrap().len() == 1);
        // A blank after the keyword needs a name.
        err_has("a 1\n# TYPE \n", 2, "expected a metric name after TYPE");
        err_has("# HELP  \n", 1, "expected a metric name after HELP");
    }

    #[test]
    fn type_lines() {
        assert_eq!(rt("# TYPE a gauge\na 1\n")[0].kind, MetricType::Gauge);
        assert_eq!(rt("# TYPE a\tcounter\na 1\n")[0].kind, MetricType::Counter);
        assert_eq!(rt("# TYPE a untyped\na 1\n")[0].kind, MetricType::Unknown);
        err_has("# TYPE a COUNTER\n", 1, "invalid metric type \"COUNTER\"");
        err_has("# TYPE a unknown\n", 1, "invalid metric type");
        err_has("# TYPE a info\n", 1, "invalid metric type");
        err_has("# TYPE a gauge \n", 1, "invalid metric type \"gauge \"");
        err_has("# TYPE a  gauge\n", 1, "invalid metric type \" gauge\"");
        err_has("# TYPE a\n", 1, "invalid metric type \"\"");
        err_has("# TYPE a gauge\r\n", 1, "invalid metric type");
        // Late and second TYPE lines are accepted; the first declaration wins.
        let f = rt("a 1 4\n# TYPE a gauge\n# TYPE a counter\na 2 5\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, MetricType::Unknown);
        assert_eq!(f[0].samples.len(), 2);
        let f = rt("# TYPE \"my.metric\" gauge\n{\"my.metric\"} 1\n");
        assert_eq!(
            (f[0].name.as_str(), f[0].kind),
            ("my.metric", MetricType::Gauge)
        );
    }

    #[test]
    fn help_lines() {
        let f = rt("# HELP a back\\\\slash new\\nline \\t kept \"q\"\na 1\n");
        assert_eq!(f[0].help, "back\\slash new\nline \\t kept \"q\"");
        assert_eq!(rt("# HELP a\na 1\n")[0].help, "");
        assert_eq!(rt("# HELP a   lead  \na 1\n")[0].help, "  lead  ");
        assert_eq!(ok("# HELP a x\n# HELP a y\na 1\n")[0].help, "x");
        assert_eq!(ok("#  HELP \"a.b\" x\n{\"a.b\"} 1\n")[0].help, "x");
        let e = parse_bytes(b"# HELP a \xff\n").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{e}");
    }

    #[test]
    fn label_blocks() {
        assert_eq!(one("a{} 1").labels, Labels::new());
        assert_eq!(one("a{b=\"1\",} 1").labels, labels(&[("b", "1")]));
        assert_eq!(
            one("a { b = \"1\" , c=\"2\" } 1").labels,
            labels(&[("b", "1"), ("c", "2")])
        );
        // Missing commas, as Prometheus allows.
        assert_eq!(
            one("a{b=\"1\" c=\"2\"} 1").labels,
            labels(&[("b", "1"), ("c", "2")])
        );
        assert_eq!(
            one("a{b=\"1\"c=\"2\"} 1").labels,
            labels(&[("b", "1"), ("c", "2")])
        );
        // Escapes: known ones unescaped, unknown ones kept; raw newlines kept.
        assert_eq!(
            one("a{b=\"x\\ty\\q\\u00e9\"} 1").labels.get("b"),
            Some("x\\ty\\q\\u00e9")
        );
        assert_eq!(
            one("a{b=\"\\\\\\\"\\n\"} 1").labels.get("b"),
            Some("\\\"\n")
        );
        assert_eq!(one("a{b=\"x\ny\"} 1").labels.get("b"), Some("x\ny"));
        // Empty values are dropped.
        assert!(one("a{b=\"\"} 1").labels.is_empty());
        err_has("a{b=\"1\",b=\"2\"} 1\n", 1, "repeated label name");
        assert!(
            one("a{b=\"\",b=\"2\"} 1").labels.is_empty(),
            "a name with an empty value goes"
        );
        err_has("a{__name__=\"b\"} 1\n", 1, "__name__");
        err_has("a{,b=\"1\"} 1\n", 1, "expected a label name");
        err_has("a{b=\"1\",,} 1\n", 1, "expected a label name");
        err_has("a{b} 1\n", 1, "expected '='");
        err_has("a{b:c=\"1\"} 1\n", 1, "expected '='");
        err_has("a{b=1} 1\n", 1, "expected a quoted value");
        err_has("a{b=\"1} 1\n", 1, "unterminated");
        err_has("a{b=\"1\"\n", 1, "expected a label name, found \"\\n\"");
        err_has("x 1\na{b=\"\\\n\"} 1\n", 2, "unterminated");
        err_has("a{b=\"1\"}{c=\"2\"} 1\n", 1, "missing value");
        let e = parse_bytes(b"a{b=\"\xff\"} 1\n").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{e}");
    }

    #[test]
    fn utf8_names() {
        let s = one("{\"my.metric\",\"l.x\"=\"v\",a=\"1\"} 1\n");
        assert_eq!(s.name, "my.metric");
        assert_eq!(s.labels, labels(&[("a", "1"), ("l.x", "v")]));
        assert_eq!(one("{\"a\"} 1").name, "a");
        assert_eq!(one("a{\"l.x\"=\"v\"} 1").labels.get("l.x"), Some("v"));
        assert_eq!(one("{\"a\\\"b\"} 1").name, "a\"b");
        err_has("{\"a\",\"b\"} 1\n", 1, "metric name given twice");
        err_has("a{\"b\"} 1\n", 1, "metric name given twice");
        err_has("{a=\"1\"} 1\n", 1, "without a metric name");
        err_has("{\"\"} 1\n", 1, "empty metric name");
        err_has("a{\"\"=\"x\"} 1\n", 1, "empty label name");
    }

    #[test]
    fn values_and_timestamps() {
        let v = |t: &str| one(&format!("a {t}")).value;
        assert_eq!(v("-0").to_bits(), (-0.0f64).to_bits());
        assert_eq!(v("NaN").to_bits(), crate::expfmt::float::NORMAL_NAN_BITS);
        assert_eq!(v("+Inf"), f64::INFINITY);
        assert_eq!(v("1e3"), 1000.0);
        assert_eq!(v(".5"), 0.5);
        err_has("a 1e400\n", 1, "out of range");
        err_has("a 0x10\n", 1, "invalid number");
        err_has("a 0x1p3\n", 1, "invalid number");
        err_has("a 1_0\n", 1, "invalid number");
        err_has("a\n", 1, "missing value for a");
        err_has("a 1\r\n", 1, "invalid number");
        assert_eq!(
            one("a 1 1700000000000").timestamp_ms,
            Some(1_700_000_000_000)
        );
        assert_eq!(one("a\t1\t2\t").timestamp_ms, Some(2));
        err_has("a 1 -1\n", 1, "unexpected '-' after the value");
        err_has("a 1 +1\n", 1, "unexpected");
        err_has("a 1 1.5\n", 1, "unexpected '.' after the timestamp");
        err_has("a 1 2 3\n", 1, "after the timestamp");
        err_has("a 1 9223372036854775808\n", 1, "out of range");
    }

    #[test]
    fn le_and_quantile_normalised_under_their_type() {
        let f = rt("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1e3\"} 2\nh_bucket{le=\"+inf\"} 3\nh_bucket{le=\"Inf\"} 4\nh_sum 1\nh_count 3\n");
        let les: Vec<_> = f[0]
            .samples
            .iter()
            .filter_map(|s| s.labels.get("le"))
            .collect();
        assert_eq!(
            les,
            ["1.0", "1000.0", "+Inf"],
            "two spellings of +Inf are one series"
        );
        assert_eq!(f[0].kind, MetricType::Histogram);
        let f = rt("# TYPE s summary\ns{quantile=\"0.50\"} 1\ns{quantile=\"1\"} 2\ns_sum 1\n");
        assert_eq!(f[0].samples[0].labels.get("quantile"), Some("0.5"));
        assert_eq!(f[0].samples[1].labels.get("quantile"), Some("1.0"));
        // Untyped: kept as written.
        assert_eq!(one("x_bucket{le=\"1\"} 1").labels.get("le"), Some("1"));
        // Not a number: kept, and the family is no longer a histogram.
        let f = rt("# TYPE h histogram\nh_bucket{le=\"bla\"} 1\nh_bucket 2\nh_sum 1\n");
        assert!(f.iter().all(|f| f.kind == MetricType::Unknown));
        assert_eq!(f[0].samples[0].labels.get("le"), Some("bla"));
        assert_eq!(f.iter().map(|f| f.samples.len()).sum::<usize>(), 3);
        // Histogram's bare name and summary without quantile are accepted too.
        assert_eq!(all("# TYPE h histogram\nh 1\n").len(), 1);
        assert_eq!(all("# TYPE s summary\ns 1\n").len(), 1);
    }

    #[test]
    fn repeated_series_and_timestamps() {
        let s = all(
            "a 1\na 2\na 3 1000\na 4 2000\na 5 1500\na 6 2000\nb{x=\"1\"} 7\nb{x=\"1\",y=\"\"} 8\n",
        );
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.name.as_str(), s.value, s.timestamp_ms))
            .collect();
        assert_eq!(got, [("a", 1.0, None), ("b", 7.0, None)]);
        let s = all("a 3 1000\na 4 2000\na 5 1500\na 6 2000\na 7\n");
        let got: Vec<_> = s.iter().map(|s| (s.value, s.timestamp_ms)).collect();
        assert_eq!(
            got,
            [(3.0, Some(1000)), (4.0, Some(2000))],
            "no timestamp: seen already"
        );
        let s = all("a 1\na 2 4102444800000\n");
        assert_eq!(
            s.len(),
            2,
            "a later timestamp after the scrape's time is kept"
        );
    }

    #[test]
    fn a_cap_stops_the_parse_at_the_first_sample_past_it() {
        let body: String = (0..10).map(|i| format!("a_{i} {i}\n")).collect();
        let all = parse_bytes_capped(body.as_bytes(), 0, 10).unwrap();
        assert_eq!(all.iter().map(|f| f.samples.len()).sum::<usize>(), 10);
        let e = parse_bytes_capped(body.as_bytes(), 0, 4).unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (6, "sample_limit exceeded: more than 4 samples")
        );
        // A repeated series without a timestamp is not kept, so it does not count.
        let repeated = "a 1\na 2\na 3\nb 1\n";
        assert!(parse_bytes_capped(repeated.as_bytes(), 0, 2).is_ok());
        let om = "a_total 1\nb_total 2\n# EOF\n";
        let e = crate::expfmt::openmetrics::parse_capped(om.as_bytes(), 0, 1).unwrap_err();
        assert_eq!(e.message, "sample_limit exceeded: more than 1 samples");
    }

    #[test]
    fn counting_keeps_what_the_grouper_keeps() {
        // Repeats without a timestamp, timestamps going back, forward, and new series.
        let body = "a 1\na 2\nb 1 10\nb 2 5\nb 3 20\nc{x=\"1\"} 1\nc{x=\"1\"} 1 7\nc{x=\"2\"} 1\n";
        let (mut full, mut counted) = (Grouper::with_capacity(0, 0), Grouper::counting(0));
        for g in [&mut full, &mut counted] {
            let mut p = Parser {
                b: body.as_bytes(),
                pos: 0,
                mtype: None,
                group: std::mem::take(g),
                pairs: Vec::new(),
            };
            while p.entry().unwrap() {}
            *g = p.group;
        }
        assert_eq!(full.kept(), 6);
        assert_eq!(counted.kept(), full.kept());
        // A cap the body passes only through timestamps is still found by the count.
        let e = parse_bytes_capped(b"b 1 1\nb 2 2\nb 3 3\n", 0, 2).unwrap_err();
        assert_eq!(e.message, "sample_limit exceeded: more than 2 samples");
    }

    #[test]
    fn blanks_nul_and_line_numbers() {
        let s = one("  \t a \t {b=\"1\"} \t 2 \t 3 \t ");
        assert_eq!(
            (s.name.as_str(), s.value, s.timestamp_ms),
            ("a", 2.0, Some(3))
        );
        // A NUL where an entry starts ends the body.
        assert_eq!(all("a 1\n\0b 2\n").len(), 1);
        assert_eq!(one("a{b=\"x\0y\"} 1").labels.get("b"), Some("x\0y"));
        err_has("# HELP a x\n\n\na 1\n  \nb{c=\"\\q} 1\n", 6, "unterminated");
        err_has("a 1\n\n\n9 2\n", 4, "expected a metric name or '#'");
        err_has("\u{feff}a 1\n", 1, "expected a metric name");
        err_has("a{b=\"x\ny\"} 1\nc\n", 3, "missing value for c");
    }

    #[test]
    fn grouping_into_families() {
        let f = rt("# HELP h Request time.\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 1.5\nh_count 3\nh_created 1.7e9\nother 4\n");
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].name.as_str(), f[0].kind),
            ("h", MetricType::Histogram)
        );
        assert_eq!(f[0].samples.len(), 5);
        let f = rt("# TYPE c counter\nc_total{a=\"1\"} 1\nc{a=\"2\"} 2\nc_created 3\n");
        assert_eq!((f.len(), f[0].samples.len()), (1, 3));
        let f = rt("# TYPE g gauge\ng_total 1\n");
        assert_eq!(f[0].name, "g_total");
        let f = rt("b 1\n# TYPE a gauge\na{x=\"1\"} 1\nb{y=\"1\"} 2\nc 3\na{x=\"2\"} 4\n");
        let names: Vec<_> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        // Metadata for a name grouped elsewhere changes nothing.
        let f = rt("# TYPE s summary\ns_sum 1 4\n# HELP s_sum x\n# TYPE s_sum gauge\ns_sum 2 5\n");
        assert_eq!((f.len(), f[0].samples.len()), (1, 2));
    }

    #[test]
    fn errors_display_as_line_and_message() {
        let e = parse("ok 1\nbad\n").unwrap_err();
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
