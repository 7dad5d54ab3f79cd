//! Groups parsed samples into [`Family`]s, shared by the classic and the OpenMetrics parser.
//!
//! Prometheus itself keeps no families: it stores series. pushrelay needs them for
//! remote-write metadata and for the Pushgateway, whose strict parser wants well-formed
//! families, so the grouping follows the text format and gives way wherever Prometheus is
//! laxer than the format:
//!
//! - A sample goes to the family of its exact name when one is declared (by HELP, TYPE or
//!   UNIT) or already seen. Otherwise a suffix joins a declared family of a type that has
//!   that part (`_bucket`/`_sum`/`_count`/`_created` a histogram, `_sum`/`_count`/`_created` a
//!   summary, `_total`/`_created` a counter, `_info` an info, `_gcount`/`_gsum`/`_bucket` a
//!   gauge histogram). A name that matches nothing becomes its own untyped family.
//! - The first HELP and the first TYPE of a name win; a TYPE for a name whose samples were
//!   already seen, and metadata for a name grouped into another family, change nothing.
//! - A histogram or summary family that is not well formed (a bucket without a numeric,
//!   canonical `le`, a summary sample without one for `quantile`, a bare histogram sample) is
//!   split into untyped families, one per sample name, so a strict reader takes it.
//! - Per series (name and labels), a sample is kept only if its timestamp is later than the
//!   last kept one's (a sample without a timestamp counts as "now", the time of the scrape),
//!   and a sample without a timestamp only if the series was not seen before: repeats and
//!   samples going back in time are dropped, as Prometheus's scrape loop and storage drop them.
//! - Families keep the order in which they first appeared; families left without samples are
//!   not returned.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::float::canonical_label_float;
use crate::model::{Family, Labels, MetricType, Sample, SeriesName};

/// The hasher of the grouper's tables: foldhash, seeded at random per process (a body cannot
/// choose names that collide), several times faster than SipHash over label sets.
type Hasher = foldhash::fast::RandomState;

/// The label pairs of one sample as the parsers read them: borrowed from the body unless an
/// escape had to be undone. The parsers keep one such vector and reuse it for every sample.
pub(crate) type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// A grouper presizes its tables for at most this many series from a body's line count, so a
/// body of empty lines cannot make it reserve much.
const PRESIZE_MAX: usize = 1 << 16;

/// The metric name of a sample: the bare one before the braces or the quoted one inside
/// them; both, neither, or an empty one is an error.
pub(crate) fn sample_name<'a>(
    bare: Option<&'a str>,
    quoted: Option<Cow<'a, str>>,
) -> Result<Cow<'a, str>, String> {
    let name = match (bare, quoted) {
        (Some(_), Some(_)) => return Err("metric name given twice".into()),
        (Some(n), None) => Cow::Borrowed(n),
        (None, Some(n)) => n,
        (None, None) => return Err("series without a metric name".into()),
    };
    if name.is_empty() {
        return Err("empty metric name".into());
    }
    Ok(name)
}

/// Turns the parsed label pairs of sample `name` into its label set, as Prometheus checks and
/// stores them: an empty name or `__name__` is an error; after a TYPE line of `mtype` histogram
/// (summary) `le` (`quantile`) values are normalised; every label of a name given an empty value
/// is removed before repeated names are looked for (a repeat is an error). The pairs are
/// reordered and changed in place; the caller clears them.
pub(crate) fn sample_labels(
    name: &str,
    mtype: Option<MetricType>,
    pairs: &mut Pairs<'_>,
) -> Result<Labels, String> {
    let normalise = match mtype {
        Some(MetricType::Histogram) => Some("le"),
        Some(MetricType::Summary) => Some("quantile"),
        _ => None,
    };
    let mut any_empty = false;
    for (k, v) in pairs.iter_mut() {
        if k.is_empty() {
            return Err(format!("empty label name in {name}"));
        }
        if k == "__name__" {
            return Err(format!("label __name__ repeats the metric name of {name}"));
        }
        if Some(k.as_ref()) == normalise {
            if let Some(c) = canonical_label_float(v) {
                *v = Cow::Owned(c);
            }
        }
        any_empty |= v.is_empty();
    }
    if any_empty {
        let emptied: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(k, _)| k.to_string())
            .collect();
        pairs.retain(|(k, _)| !emptied.iter().any(|e| e == k));
    }
    Labels::from_pairs_in_place(pairs).map_err(|e| format!("{e} in {name}"))
}

/// What part of its family a sample name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Plain,
    Bucket,
    Sum,
    Count,
    Created,
    Total,
    Info,
    GCount,
    GSum,
}

const SUFFIXES: [(&str, Role); 8] = [
    ("_bucket", Role::Bucket),
    ("_sum", Role::Sum),
    ("_count", Role::Count),
    ("_created", Role::Created),
    ("_total", Role::Total),
    ("_info", Role::Info),
    ("_gcount", Role::GCount),
    ("_gsum", Role::GSum),
];

/// True if a family of type `kind` collects the samples named `family` + the suffix of `role`.
fn accepts(kind: MetricType, role: Role) -> bool {
    use Role::*;
    match kind {
        MetricType::Histogram => matches!(role, Bucket | Sum | Count | Created),
        MetricType::Summary => matches!(role, Sum | Count | Created),
        MetricType::Counter => matches!(role, Total | Created),
        MetricType::Info => matches!(role, Info),
        MetricType::GaugeHistogram => matches!(role, Bucket | GCount | GSum),
        _ => false,
    }
}

/// A series seen so far: its first kept sample, by position, and the latest timestamp kept for
/// it (a sample without one counts as [`Grouper::now`]).
#[derive(Debug, Clone, Copy)]
struct Seen {
    family: u32,
    sample: u32,
    last_ts: i64,
    /// The series' hash, kept so that growing the table does not hash every series again.
    hash: u64,
}

#[derive(Default)]
pub(crate) struct Grouper {
    /// The time a sample without a timestamp stands for (the scrape's), in milliseconds.
    now: i64,
    families: Vec<Family>,
    typed: Vec<bool>,
    helped: Vec<bool>,
    /// Family index by family name. The table holds indexes only and compares the names in
    /// `families`, so a name is stored once however many indexes point at it: at a few hundred
    /// thousand series these tables would otherwise be as large as the families.
    by_name: HashTable<u32>,
    /// Whether samples of exactly the family's name were seen (routed to it, role `Plain`).
    sampled: Vec<bool>,
    /// Sample names routed to a family of another name (`foo_bucket` to `foo`) and their role.
    routes: HashMap<SeriesName, (u32, Role), Hasher>,
    /// The series kept so far, as indexes into `seen`, found by their name and labels.
    series: HashTable<u32>,
    seen: Vec<Seen>,
    hasher: Hasher,
    /// Samples kept so far (what a `sample_limit` counts before relabelling).
    kept: usize,
    /// Set when the grouper only counts what it would keep: the latest timestamp per series
    /// hash, nothing else (see [`Grouper::counting`]).
    counting: Option<HashMap<u64, i64, Hasher>>,
}

impl Grouper {
    /// A grouper for a body of `lines` lines scraped at `now_ms`, its series table sized for
    /// that many series (at most [`PRESIZE_MAX`]), so a large scrape grows it fewer times.
    pub fn with_capacity(now_ms: i64, lines: usize) -> Grouper {
        let n = lines.min(PRESIZE_MAX);
        Grouper {
            now: now_ms,
            series: HashTable::with_capacity(n),
            seen: Vec::with_capacity(n),
            ..Grouper::default()
        }
    }

    /// A grouper that keeps no sample, only counts those [`Grouper::sample`] would keep (by a
    /// 64-bit hash per series: a few bytes each instead of the samples themselves), so a body
    /// that may be over a `sample_limit` is judged before anything is built from it.
    pub fn counting(now_ms: i64) -> Grouper {
        Grouper {
            now: now_ms,
            counting: Some(HashMap::default()),
            ..Grouper::default()
        }
    }

    /// The family called `name`, created (untyped, without help) if there is none yet.
    fn family(&mut self, name: &str) -> usize {
        if let Some(i) = self.family_named(name) {
            return i;
        }
        let i = self.families.len();
        let mut family = Family::new(name, MetricType::Unknown, String::new());
        // Room for exactly one sample: most families of a large exposition have one, and a
        // first push would otherwise reserve four (a Vec's smallest growth).
        family.samples.reserve_exact(1);
        self.families.push(family);
        self.typed.push(false);
        self.helped.push(false);
        self.sampled.push(false);
        let (families, hasher) = (&self.families, &self.hasher);
        self.by_name
            .insert_unique(hasher.hash_one(name), i as u32, |&j| {
                hasher.hash_one(&*families[j as usize].name)
            });
        i
    }

    /// The family called `name`, if there is one.
    fn family_named(&self, name: &str) -> Option<usize> {
        let families = &self.families;
        self.by_name
            .find(self.hasher.hash_one(name), |&i| {
                *families[i as usize].name == *name
            })
            .map(|&i| i as usize)
    }

    /// Where samples named `name` went, if any were seen.
    fn routed(&self, name: &str) -> Option<(usize, Role)> {
        if let Some(&(fi, role)) = self.routes.get(name) {
            return Some((fi as usize, role));
        }
        let fi = self.family_named(name)?;
        self.sampled[fi].then_some((fi, Role::Plain))
    }

    /// True if samples named `name` were already grouped into a family of another name.
    fn grouped_elsewhere(&self, name: &str) -> bool {
        // `routes` holds exactly the names routed to a family of another name.
        self.routes.contains_key(name)
    }

    /// The family a declaration for `name` may change, if any.
    fn declared(&mut self, name: &str) -> Option<usize> {
        if self.grouped_elsewhere(name) {
            None
        } else {
            Some(self.family(name))
        }
    }

    pub fn help(&mut self, name: &str, text: String) {
        if let Some(fi) = self.declared(name) {
            if !self.helped[fi] {
                self.helped[fi] = true;
                self.families[fi].help = text;
            }
        }
    }

    pub fn unit(&mut self, name: &str, unit: String) {
        if let Some(fi) = self.declared(name) {
            if self.families[fi].unit.is_empty() {
                self.families[fi].unit = unit;
            }
        }
    }

    /// Declares the type of `name`, unless it was declared or its samples were seen already.
    pub fn type_of(&mut self, name: &str, kind: MetricType) {
        if self.routed(name).is_some() {
            return;
        }
        if let Some(fi) = self.declared(name) {
            if !self.typed[fi] {
                self.typed[fi] = true;
                self.families[fi].kind = kind;
            }
        }
    }

    /// Finds (and remembers) the family and role of a sample name.
    fn route(&mut self, name: &str) -> (usize, Role) {
        if let Some(r) = self.routed(name) {
            return r;
        }
        let r = if let Some(fi) = self.family_named(name) {
            (fi, Role::Plain)
        } else {
            let parent = SUFFIXES.iter().find_map(|&(suffix, role)| {
                let base = name.strip_suffix(suffix)?;
                let fi = self.family_named(base)?;
                accepts(self.families[fi].kind, role).then_some((fi, role))
            });
            match parent {
                Some(r) => r,
                None => (self.family(name), Role::Plain),
            }
        };
        match r {
            // A plain route always leads to the family of the sample's own name.
            (fi, Role::Plain) => self.sampled[fi] = true,
            (fi, role) => {
                self.routes.insert(name.into(), (fi as u32, role));
            }
        }
        r
    }

    /// Adds one sample (see the module docs for what is dropped).
    pub fn sample(&mut self, name: &str, labels: Labels, value: f64, timestamp_ms: Option<i64>) {
        let ts = timestamp_ms.unwrap_or(self.now);
        let key = self.hasher.hash_one((name, &labels));
        if let Some(latest) = &mut self.counting {
            match latest.entry(key) {
                Entry::Vacant(v) => {
                    v.insert(ts);
                }
                Entry::Occupied(mut o) => {
                    if timestamp_ms.is_none() || ts <= *o.get() {
                        return;
                    }
                    o.insert(ts);
                }
            }
            self.kept += 1;
            return;
        }
        let (families, seen) = (&self.families, &self.seen);
        let known = self.series.find(key, |&i| {
            let at = seen[i as usize];
            let s = &families[at.family as usize].samples[at.sample as usize];
            *s.name == *name && s.labels == labels
        });
        if let Some(&i) = known {
            let at = self.seen[i as usize];
            // Prometheus drops a sample without a timestamp for a series this scrape already
            // had, and storage one that does not move time forward.
            if timestamp_ms.is_none() || ts <= at.last_ts {
                return;
            }
            self.seen[i as usize].last_ts = ts;
            self.kept += 1;
            let family = &mut self.families[at.family as usize];
            let name = family.samples[at.sample as usize].name.clone();
            family.samples.push(Sample {
                name,
                labels,
                value,
                timestamp_ms,
            });
            return;
        }
        let (fi, role) = self.route(name);
        self.kept += 1;
        // One copy of the name for every sample of it: the family's, or the route's key.
        let name = match role {
            Role::Plain => self.families[fi].name.clone(),
            _ => match self.routes.get_key_value(name) {
                Some((shared, _)) => shared.clone(),
                None => SeriesName::from(name),
            },
        };
        let family = &mut self.families[fi];
        self.seen.push(Seen {
            family: fi as u32,
            sample: family.samples.len() as u32,
            last_ts: ts,
            hash: key,
        });
        family.samples.push(Sample {
            name,
            labels,
            value,
            timestamp_ms,
        });
        let seen = &self.seen;
        self.series
            .insert_unique(key, (seen.len() - 1) as u32, |&i| seen[i as usize].hash);
    }

    /// True if family `fi` is what a strict reader expects of its type.
    fn well_formed(&self, fi: usize) -> bool {
        let f = &self.families[fi];
        let needs = match f.kind {
            MetricType::Histogram | MetricType::GaugeHistogram => "le",
            MetricType::Summary => "quantile",
            _ => return true,
        };
        // A gauge histogram's `le` is not normalised by Prometheus: numeric is enough.
        let exact = f.kind != MetricType::GaugeHistogram;
        let canonical = |s: &Sample| {
            s.labels.get(needs).is_some_and(|v| {
                v != "NaN" && canonical_label_float(v).is_some_and(|c| !exact || c == v)
            })
        };
        f.samples.iter().all(|s| {
            let role = self
                .routes
                .get(s.name.as_str())
                .map_or(Role::Plain, |r| r.1);
            match (f.kind, role) {
                (MetricType::Summary, Role::Plain) | (_, Role::Bucket) => canonical(s),
                (MetricType::Summary, _) => true,
                (_, Role::Plain) => false,
                _ => true,
            }
        })
    }

    /// Samples kept so far.
    pub fn kept(&self) -> usize {
        self.kept
    }

    pub fn finish(self) -> Vec<Family> {
        let bad: Vec<bool> = (0..self.families.len())
            .map(|fi| !self.well_formed(fi))
            .collect();
        // The indexes are dropped before the result is built: at a few hundred thousand series
        // they are as large as the families themselves.
        let Grouper {
            mut families,
            by_name,
            routes,
            series,
            seen,
            counting,
            ..
        } = self;
        drop((by_name, routes, series, seen, counting));
        if !bad.contains(&true) {
            // The common case: every family stays as it is, in place.
            families.retain(|f| !f.samples.is_empty());
            families.shrink_to_fit();
            return families;
        }
        let mut out: Vec<Family> = Vec::with_capacity(families.len());
        let mut index: HashMap<SeriesName, usize> = HashMap::new();
        for (f, bad) in families.into_iter().zip(bad) {
            if f.samples.is_empty() {
                continue;
            }
            let parts = if bad { split_by_name(f) } else { vec![f] };
            for part in parts {
                match index.entry(part.name.clone()) {
                    Entry::Occupied(o) => out[*o.get()].samples.extend(part.samples),
                    Entry::Vacant(v) => {
                        v.insert(out.len());
                        out.push(part);
                    }
                }
            }
        }
        out
    }
}

/// One untyped family per sample name of `f`, in order of first appearance.
fn split_by_name(f: Family) -> Vec<Family> {
    let mut parts: Vec<Family> = Vec::new();
    for s in f.samples {
        match parts.iter_mut().find(|p| p.name == s.name) {
            Some(p) => p.samples.push(s),
            None => {
                let mut p = Family::new(s.name.clone(), MetricType::Unknown, String::new());
                if s.name == f.name {
                    p.help = f.help.clone();
                }
                p.samples.push(s);
                parts.push(p);
            }
        }
    }
    parts
}
