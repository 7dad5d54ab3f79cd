//! The sample model every source produces and every sink consumes: families, series, labels.
//!
//! A [`Snapshot`] is what one collection of one source yields. It is made of [`Family`]s (a metric
//! name with its type, help and unit) that hold [`Sample`]s (one series' value at one time). Label
//! sets are [`Labels`]: sorted by name, unique, never empty-valued, never holding `__name__` (the
//! series name travels separately in [`Sample::name`]). Sinks can rely on those rules because the
//! only way to build a `Labels` is through its validating constructors.

use std::fmt;

/// The bit pattern Prometheus uses for a staleness marker. Any other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Returns the staleness-marker NaN.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True only for the exact staleness-marker bit pattern (never arithmetic on NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The metric types of the exposition format and of remote-write metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    #[default]
    Unknown,
    Counter,
    Gauge,
    Histogram,
    Summary,
    Info,
    StateSet,
    GaugeHistogram,
}

impl MetricType {
    /// The word used on a `# TYPE` line (text format 0.0.4 knows only the first five).
    pub fn as_text(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge | MetricType::Info | MetricType::StateSet => "gauge",
            MetricType::Histogram | MetricType::GaugeHistogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Unknown => "untyped",
        }
    }

    /// Parses the word of a `# TYPE` line.
    pub fn from_text(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" => MetricType::Unknown,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "gaugehistogram" => MetricType::GaugeHistogram,
            _ => return None,
        })
    }
}

/// Why a label set or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    #[error("repeated label name {0:?}")]
    Repeated(String),
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
}

/// True if `s` is a valid label name. Prometheus 3 accepts any non-empty UTF-8 string (a
/// Rust `str` is always UTF-8); [`is_legacy_label_name`] is the older, narrower rule.
pub fn is_valid_label_name(s: &str) -> bool {
    !s.is_empty()
}

/// True if `s` is a valid metric name: any non-empty UTF-8 string, as in Prometheus 3.
pub fn is_valid_metric_name(s: &str) -> bool {
    !s.is_empty()
}

/// True if `s` is a label name of the legacy character set, `[a-zA-Z_][a-zA-Z0-9_]*`: one that
/// needs no quoting in the text format and no escaping for receivers without UTF-8 support.
pub fn is_legacy_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True if `s` is a metric name of the legacy character set, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_legacy_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Writes `s` between double quotes with the text format's escapes (`\\`, `\"`, `\n`).
pub fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// A validated label set: sorted by name, unique names, no empty values, no `__name__`.
///
/// Stored compactly, as one shared allocation per set (none for the empty set): every name and value followed by the
/// byte `0xFF` (which never occurs in UTF-8), so a set costs its text plus two bytes a label and
/// a 16-byte handle, not two `String`s a label, and a clone (the staleness index, a sink's
/// batch) shares the text instead of copying it. A relay holding a few hundred thousand series
/// spends most of its memory on label sets, so this layout is what keeps the per-series cost
/// small; the methods below are the only ways in and out.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Option<std::sync::Arc<[u8]>>);

/// Ends every name and every value in a [`Labels`] buffer; no UTF-8 string contains it.
const SEP: u8 = 0xFF;

/// Iterates the pairs of a [`Labels`] buffer.
#[derive(Clone)]
pub struct LabelIter<'a>(&'a [u8]);

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.0.is_empty() {
            return None;
        }
        let k_end = self.0.iter().position(|&b| b == SEP)?;
        let rest = &self.0[k_end + 1..];
        let v_end = rest.iter().position(|&b| b == SEP)?;
        let (k, v) = (&self.0[..k_end], &rest[..v_end]);
        self.0 = &rest[v_end + 1..];
        // SAFETY: a `Labels` buffer is built only from `&str`s, each followed by `SEP`, and
        // `SEP` (0xFF) never occurs inside UTF-8, so every piece between two `SEP`s is a whole
        // string that was valid UTF-8 when it was copied in.
        unsafe {
            Some((
                std::str::from_utf8_unchecked(k),
                std::str::from_utf8_unchecked(v),
            ))
        }
    }
}

impl Labels {
    /// The empty label set.
    pub fn new() -> Labels {
        Labels(None)
    }

    /// Builds the buffer from pairs already sorted by name, unique, without empty values.
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Labels {
        let len: usize = pairs.clone().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut buf = Vec::with_capacity(len);
        for (k, v) in pairs {
            buf.extend_from_slice(k.as_bytes());
            buf.push(SEP);
            buf.extend_from_slice(v.as_bytes());
            buf.push(SEP);
        }
        Labels((!buf.is_empty()).then(|| buf.into()))
    }

    /// Builds a label set from pairs in any order. Pairs with an empty value are dropped (as
    /// Prometheus treats an empty label as absent); a repeated or invalid name is an error;
    /// `__name__` is refused because the series name is carried beside the labels.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Labels, LabelError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut v: Vec<(K, V)> = pairs.into_iter().collect();
        Labels::from_pairs_in_place(&mut v)
    }

    /// [`Labels::from_pairs`] over pairs the caller owns (and may reuse): they are checked and
    /// sorted where they lie, so a parser's scratch vector costs no allocation per sample.
    pub fn from_pairs_in_place<K, V>(v: &mut [(K, V)]) -> Result<Labels, LabelError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (k, _) in v.iter() {
            let name = k.as_ref();
            if !is_valid_label_name(name) || name == "__name__" {
                return Err(LabelError::InvalidName(name.to_string()));
            }
        }
        // Unstable is enough: two pairs that compare equal have one name, which is an error.
        v.sort_unstable_by(|a, b| (a.0.as_ref(), a.1.as_ref()).cmp(&(b.0.as_ref(), b.1.as_ref())));
        // Repeats are checked before empty values are dropped: `a="",a="x"` is still a repeat.
        if let Some(w) = v.windows(2).find(|w| w[0].0.as_ref() == w[1].0.as_ref()) {
            return Err(LabelError::Repeated(w[0].0.as_ref().to_string()));
        }
        Ok(Labels::from_sorted(
            v.iter()
                .map(|(k, val)| (k.as_ref(), val.as_ref()))
                .filter(|(_, val)| !val.is_empty()),
        ))
    }

    /// This set laid over `under`: every label of both, this set's value where both have a
    /// name. One sorted merge, so it costs one buffer and no sort.
    pub fn over(&self, under: &Labels) -> Labels {
        if under.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return under.clone();
        }
        Labels::from_sorted(Over {
            a: self.iter().peekable(),
            b: under.iter().peekable(),
        })
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|&(k, _)| k == name).map(|(_, v)| v)
    }

    /// Sets `name` to `value` (replacing it if present; an empty value removes it).
    /// The name must be valid; it is checked in debug builds only because every caller passes a
    /// name it validated or a constant.
    pub fn set(&mut self, name: &str, value: &str) {
        debug_assert!(is_valid_label_name(name) && name != "__name__");
        let present = self.get(name);
        if present == Some(value) || (present.is_none() && value.is_empty()) {
            return;
        }
        let others = self.iter().filter(|&(k, _)| k != name);
        let new = (!value.is_empty()).then_some((name, value));
        let merged = MergeSorted {
            a: others.peekable(),
            b: new,
        };
        *self = Labels::from_sorted(merged);
    }

    /// Removes `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let value = self.get(name)?.to_string();
        *self = Labels::from_sorted(self.iter().filter(|&(k, _)| k != name));
        Some(value)
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> LabelIter<'_> {
        LabelIter(self.bytes())
    }

    /// The pairs, sorted by name, as owned strings.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.bytes().iter().filter(|&&b| b == SEP).count() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Whether another handle shares this set's buffer (several series of a source built
    /// from one set).
    pub fn is_shared(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|b| std::sync::Arc::strong_count(b) > 1)
    }

    /// The address of the set's buffer (0 for the empty set): the same for every clone of one
    /// set while any of them lives.
    pub fn buffer_id(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.as_ptr() as usize)
    }

    /// Heap bytes this set holds (its text and two separators a label).
    pub fn heap_bytes(&self) -> usize {
        self.bytes().len()
    }

    /// The buffer (empty for the empty set, which allocates nothing).
    fn bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

/// The pairs of a sorted iterator with at most one more pair put in its place.
#[derive(Clone)]
struct MergeSorted<'a, I: Iterator<Item = (&'a str, &'a str)>> {
    a: std::iter::Peekable<I>,
    b: Option<(&'a str, &'a str)>,
}

impl<'a, I: Iterator<Item = (&'a str, &'a str)>> Iterator for MergeSorted<'a, I> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match (self.a.peek(), self.b) {
            (Some(&(ak, _)), Some((bk, _))) if bk < ak => self.b.take(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.take(),
        }
    }
}

/// The pairs of two sorted label sets, merged; `a` wins where both have a name.
#[derive(Clone)]
struct Over<'a> {
    a: std::iter::Peekable<LabelIter<'a>>,
    b: std::iter::Peekable<LabelIter<'a>>,
}

impl<'a> Iterator for Over<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match (self.a.peek(), self.b.peek()) {
            (Some(&(ak, _)), Some(&(bk, _))) => match ak.cmp(bk) {
                std::cmp::Ordering::Less => self.a.next(),
                std::cmp::Ordering::Greater => self.b.next(),
                std::cmp::Ordering::Equal => {
                    self.b.next();
                    self.a.next()
                }
            },
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Pair by pair, names then values, as strings (what sorting a list of pairs would give).
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The name of a series or family: a shared string, so the samples of a family (and the
/// relay's indexes) point at one copy of it; cloning copies a pointer. Reads as a `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SeriesName(std::sync::Arc<str>);

impl SeriesName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SeriesName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SeriesName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SeriesName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SeriesName {
    fn from(s: &str) -> SeriesName {
        SeriesName(s.into())
    }
}

impl From<String> for SeriesName {
    fn from(s: String) -> SeriesName {
        SeriesName(s.into())
    }
}

impl From<&String> for SeriesName {
    fn from(s: &String) -> SeriesName {
        SeriesName(s.as_str().into())
    }
}

impl From<SeriesName> for String {
    fn from(s: SeriesName) -> String {
        s.0.to_string()
    }
}

impl PartialEq<str> for SeriesName {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SeriesName {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SeriesName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SeriesName> for str {
    fn eq(&self, other: &SeriesName) -> bool {
        *self == *other.0
    }
}

impl PartialEq<SeriesName> for &str {
    fn eq(&self, other: &SeriesName) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SeriesName> for String {
    fn eq(&self, other: &SeriesName) -> bool {
        **self == *other.0
    }
}

impl fmt::Debug for SeriesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SeriesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One value of one series. The series is `name` plus `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The full series name: for a histogram family `foo` this is `foo_bucket`, `foo_sum` or
    /// `foo_count`; for a summary, `foo`, `foo_sum` or `foo_count`.
    pub name: SeriesName,
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch, when the source gave one; otherwise the snapshot's time applies.
    pub timestamp_ms: Option<i64>,
}

/// A metric family: one name with its metadata and its samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Family {
    pub name: SeriesName,
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: impl Into<SeriesName>, kind: MetricType, help: impl Into<String>) -> Family {
        Family {
            name: name.into(),
            kind,
            help: help.into(),
            unit: String::new(),
            samples: Vec::new(),
        }
    }

    /// Adds a sample named like the family.
    pub fn push(&mut self, labels: Labels, value: f64) {
        self.samples.push(Sample {
            name: self.name.clone(),
            labels,
            value,
            timestamp_ms: None,
        });
    }
}

/// What one collection of one source produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// The source's configured name (its `job`).
    pub source: String,
    /// When the collection started, in milliseconds since the epoch; the timestamp of every
    /// sample that has none of its own.
    pub timestamp_ms: i64,
    pub families: Vec<Family>,
    /// Series (name, labels) present in the previous collection and absent from this one:
    /// remote-write sinks send one staleness marker for each at `timestamp_ms`.
    pub stale: Vec<(SeriesName, Labels)>,
}

impl Snapshot {
    /// The number of samples in all families.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }
}

impl fmt::Display for Labels {
    /// `{a="1",b="2"}` with text-format escaping (a name outside the legacy character set is
    /// quoted, `{"a.b"="1"}`); nothing for an empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        self.write_pairs(f)?;
        f.write_str("}")
    }
}

impl Labels {
    /// The pairs as the inside of a text-format label block: `a="1",b="2"`.
    pub fn write_pairs(&self, f: &mut impl fmt::Write) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if is_legacy_label_name(k) {
                f.write_str(k)?;
            } else {
                write_quoted(f, k)?;
            }
            f.write_str("=")?;
            write_quoted(f, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_unique_nonempty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]).unwrap();
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "2")]);
        assert_eq!(
            Labels::from_pairs([("a", "1"), ("a", "2")]),
            Err(LabelError::Repeated("a".into()))
        );
        assert!(Labels::from_pairs([("__name__", "x")]).is_err());
        assert_eq!(
            Labels::from_pairs([("a", ""), ("a", "x")]),
            Err(LabelError::Repeated("a".into()))
        );
        assert!(Labels::from_pairs([("", "x")]).is_err());
        // Prometheus 3 names: any non-empty UTF-8.
        assert!(Labels::from_pairs([("1a", "x"), ("l.é", "y")]).is_ok());
    }

    #[test]
    fn set_and_remove_keep_order() {
        let mut l = Labels::from_pairs([("b", "2")]).unwrap();
        l.set("a", "1");
        l.set("c", "3");
        l.set("b", "");
        assert_eq!(l.to_string(), r#"{a="1",c="3"}"#);
        assert_eq!(l.remove("a").as_deref(), Some("1"));
        assert_eq!(l.get("c"), Some("3"));
    }

    #[test]
    fn compact_layout_round_trips_any_utf8() {
        let pairs = [
            ("a", "1"),
            ("ab", ""),
            ("b", "x\u{ff}y"),
            ("é", "\0"),
            ("z", "last"),
        ];
        let l = Labels::from_pairs(pairs).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![("a", "1"), ("b", "x\u{ff}y"), ("z", "last"), ("é", "\0")]
        );
        assert_eq!(l.get("é"), Some("\0"));
        assert_eq!(l.get("ab"), None);
        assert_eq!(l.heap_bytes(), "a1bx\u{ff}yzlast\u{e9}\0".len() + 8);
        let mut m = l.clone();
        m.set("0", "first");
        m.set("b", "changed");
        m.set("zz", "end");
        m.set("a", "");
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![
                ("0", "first"),
                ("b", "changed"),
                ("z", "last"),
                ("zz", "end"),
                ("é", "\0")
            ]
        );
        assert_eq!(m.remove("z").as_deref(), Some("last"));
        assert_eq!(m.remove("z"), None);
        assert_eq!(Labels::new().iter().count(), 0);
        assert!(Labels::from_pairs([("a", "")]).unwrap().is_empty());
        // Ordered as lists of pairs are: a shorter name sorts first even when the other
        // continues with a byte below 0xFF.
        let short = Labels::from_pairs([("a", "2")]).unwrap();
        let long = Labels::from_pairs([("ab", "1")]).unwrap();
        assert!(short < long);
        assert!(Labels::from_pairs([("a", "1")]).unwrap() < short);
    }

    #[test]
    fn stale_marker_is_exact_bits() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }

    #[test]
    fn display_escapes() {
        let l = Labels::from_pairs([("a", "x\"y\\z\nw")]).unwrap();
        assert_eq!(l.to_string(), r#"{a="x\"y\\z\nw"}"#);
        let l = Labels::from_pairs([("l.x", "1"), ("a\"b", "2")]).unwrap();
        assert_eq!(l.to_string(), r#"{"a\"b"="2","l.x"="1"}"#);
        assert!(is_legacy_metric_name("a:b_1") && !is_legacy_metric_name("1a"));
        assert!(is_legacy_label_name("_a1") && !is_legacy_label_name("a:b"));
    }
}
