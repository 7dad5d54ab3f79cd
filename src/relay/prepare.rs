//! Turns a source's raw families into the snapshot sinks receive: target labels,
//! `metric_relabel_configs` and limits ([`SeriesRules`]), external labels, the per-poll report
//! series (`up`, ...) and the series that went stale.

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;

use crate::model::{Family, Labels, MetricType, SeriesName, Snapshot};
pub use crate::relabel::SeriesRules;

/// Keeps what one source's preparation needs across polls: its labels and last series set.
pub struct Preparer {
    job: String,
    instance: String,
    external: Labels,
    /// Whether to add `up`, `scrape_duration_seconds` and `scrape_samples_scraped`.
    report: bool,
    /// The series of the previous poll that carried no timestamp of their own, by key.
    previous: HashTable<(SeriesKey, SeriesName, Labels)>,
    /// Two independently seeded hashers: a series' key is both hashes of its name and labels,
    /// so two different series share a key with odds of about 2^-128 per pair. foldhash, not
    /// SipHash: hashing every series of every poll was a fifth of the relay's instructions,
    /// and its per-process random seeds keep the keys unpredictable to whoever names a series.
    hashers: (
        foldhash::quality::RandomState,
        foldhash::quality::RandomState,
    ),
    rules: SeriesRules,
}

/// A series (name and labels) as two 64-bit hashes.
type SeriesKey = (u64, u64);

/// Within one poll: the target labels of each label set several series of the source share,
/// by [`Labels::buffer_id`], with the source's set kept alive so its address stays its own.
type SharedTargets =
    std::collections::HashMap<usize, (Labels, Labels), foldhash::fast::RandomState>;

/// The series the relay adds for every poll, as Prometheus does for every scrape.
const REPORT_NAMES: [&str; 3] = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];

impl Preparer {
    pub fn new(job: &str, instance: &str, external: &Labels, report: bool) -> Preparer {
        Preparer {
            job: job.to_string(),
            instance: instance.to_string(),
            external: external.clone(),
            report,
            previous: HashTable::new(),
            hashers: Default::default(),
            rules: SeriesRules::default(),
        }
    }

    /// The same source after a reload changed its configuration: new target labels and rules,
    /// the series set kept, so what vanishes with the change still gets its stale marker.
    pub fn retarget(&mut self, instance: &str, external: &Labels, rules: SeriesRules) {
        self.instance = instance.to_string();
        self.external = external.clone();
        self.rules = rules;
    }

    /// The last snapshot of a source that is gone (removed by a reload): no samples, every
    /// series it had ends with a stale marker, as Prometheus does for a removed target.
    pub fn retire(&mut self, at_ms: i64) -> Snapshot {
        let mut stale: Vec<(SeriesName, Labels)> = std::mem::take(&mut self.previous)
            .into_iter()
            .map(|(_, name, labels)| (name, labels))
            .collect();
        stale.sort();
        Snapshot {
            source: self.job.clone(),
            timestamp_ms: at_ms,
            families: Vec::new(),
            stale,
        }
    }

    fn key(&self, name: &str, labels: &Labels) -> SeriesKey {
        let hash = |b: &foldhash::quality::RandomState| {
            let mut h = b.build_hasher();
            name.hash(&mut h);
            labels.hash(&mut h);
            h.finish()
        };
        (hash(&self.hashers.0), hash(&self.hashers.1))
    }

    /// Applies `rules` to every series of every later poll.
    pub fn with_rules(mut self, rules: SeriesRules) -> Preparer {
        self.rules = rules;
        self
    }

    /// The labels a source's series carries once pushed: its own labels, with `job` and
    /// `instance` moved to `exported_job`/`exported_instance`, then the target's `job` and
    /// `instance`, then external labels where the series has none of that name.
    pub fn target_labels(&self, own: &Labels) -> Labels {
        // Built in one go (one allocation for the result), not by repeated `set`s: this runs
        // for every series of every poll.
        let target = [
            ("job", self.job.as_str()),
            ("instance", self.instance.as_str()),
        ];
        let mut pairs: Vec<(std::borrow::Cow<'_, str>, &str)> =
            Vec::with_capacity(own.len() + 2 + self.external.len());
        if self.rules.honor_labels {
            // The series' own labels win; the target's fill in what is missing.
            pairs.extend(own.iter().map(|(k, v)| (k.into(), v)));
            for (k, v) in target {
                if own.get(k).is_none() {
                    pairs.push((k.into(), v));
                }
            }
        } else {
            for (k, v) in own.iter() {
                if k == "job" || k == "instance" {
                    let mut exported = format!("exported_{k}");
                    while own.get(&exported).is_some() {
                        exported = format!("exported_{exported}");
                    }
                    pairs.push((exported.into(), v));
                } else {
                    pairs.push((k.into(), v));
                }
            }
            pairs.extend(target.map(|(k, v)| (k.into(), v)));
        }
        // External labels fill in names the series has none of, in either case.
        for (k, v) in self.external.iter() {
            if !pairs.iter().any(|(n, _)| n == k) {
                pairs.push((k.into(), v));
            }
        }
        // Every name is unique and valid by construction, so this cannot fail.
        Labels::from_pairs(pairs).unwrap_or_else(|_| own.clone())
    }

    /// Target labels, relabelling and limits for every series of one poll; an error (a limit
    /// exceeded, a name relabelled away) fails the whole poll.
    /// `bare` is what [`Preparer::target_labels`] gives a series without labels of its own:
    /// every such series shares that one copy.
    fn apply_rules(&self, mut raw: Vec<Family>, bare: &Labels) -> Result<Vec<Family>, String> {
        // In place: the families and their samples are kept where they are, only the labels
        // (and, with relabelling, names) are replaced; a poll of a few hundred thousand series
        // would otherwise hold two copies of every vector for a moment.
        let mut count: u64 = 0;
        let mut error: Option<String> = None;
        let mut shared = SharedTargets::default();
        raw.retain_mut(|fam| {
            if error.is_some() {
                return false;
            }
            let had_samples = !fam.samples.is_empty();
            fam.samples.retain_mut(|s| {
                if error.is_some() {
                    return false;
                }
                match self.rule_sample(s, bare, &mut shared, &mut count) {
                    Ok(keep) => keep,
                    Err(e) => {
                        error = Some(e);
                        false
                    }
                }
            });
            // Relabelled away whole: no metadata for it either.
            !(had_samples && fam.samples.is_empty())
        });
        match error {
            Some(e) => Err(e),
            None => Ok(raw),
        }
    }

    /// Target labels, relabelling and limits for one sample: `Ok(false)` if a rule dropped it.
    /// `bare` is what [`Preparer::target_labels`] gives a series without labels.
    fn rule_sample(
        &self,
        s: &mut crate::model::Sample,
        bare: &Labels,
        shared: &mut SharedTargets,
        count: &mut u64,
    ) -> Result<bool, String> {
        let labels = if s.labels.is_empty() {
            bare.clone()
        } else if s.labels.is_shared() {
            // One target set for every series sharing the source's set (an EMQX client's
            // dozen series), not one each.
            let (_, target) = shared
                .entry(s.labels.buffer_id())
                .or_insert_with(|| (s.labels.clone(), self.target_labels(&s.labels)));
            target.clone()
        } else if self.rules.honor_labels || !has_job_or_instance(&s.labels) {
            // Nothing to move to `exported_*`: the target set is the series' own labels laid
            // over the bare one, one sorted merge instead of a sort per series.
            s.labels.over(bare)
        } else {
            self.target_labels(&s.labels)
        };
        let (name, labels) = if self.rules.relabel.is_empty() {
            (None, labels)
        } else {
            match crate::relabel::process(&self.rules.relabel, &s.name, &labels)
                .map_err(|e| e.to_string())?
            {
                None => return Ok(false),
                Some((name, labels)) => (Some(name), labels),
            }
        };
        self.rules
            .check_labels(name.as_deref().unwrap_or(&s.name), &labels)?;
        *count += 1;
        if self.rules.sample_limit > 0 && *count > self.rules.sample_limit {
            return Err(format!(
                "sample_limit exceeded: more than {} samples",
                self.rules.sample_limit
            ));
        }
        if let Some(name) = name {
            s.name = name.into();
        }
        s.labels = labels;
        Ok(true)
    }

    /// Builds the snapshot of one poll. `result` is the families the source returned, or `None`
    /// if the poll failed; `started_ms` is when it started and `duration` how long it took.
    pub fn prepare(
        &mut self,
        result: Option<Vec<Family>>,
        started_ms: i64,
        duration_seconds: f64,
    ) -> Snapshot {
        self.prepare_checked(result, started_ms, duration_seconds).0
    }

    /// [`Preparer::prepare`], also returning why the rules failed the poll, if they did.
    pub fn prepare_checked(
        &mut self,
        result: Option<Vec<Family>>,
        started_ms: i64,
        duration_seconds: f64,
    ) -> (Snapshot, Option<String>) {
        let scraped: usize = result.iter().flatten().map(|f| f.samples.len()).sum();
        // The target labels of a series without labels: the report series and every bare series
        // of the poll share them.
        let base = self.target_labels(&Labels::new());
        let (result, error) = match result.map(|r| self.apply_rules(r, &base)) {
            Some(Ok(r)) => (Some(r), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let up = result.is_some();
        let mut raw = result.unwrap_or_default();
        // This poll's series by key only: the labels stay in the samples, not in a second copy.
        // Each key is computed once; `keys` holds them in sample order for the new index.
        let mut current: HashTable<SeriesKey> = HashTable::with_capacity(self.previous.len());
        let mut keys: Vec<SeriesKey> = Vec::with_capacity(self.previous.len() + 3);
        let mut first = |k: SeriesKey| match current.entry(k.0, |c| *c == k, |c| c.0) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(k);
                keys.push(k);
                true
            }
        };
        let mut report = Vec::with_capacity(3);
        if self.report {
            for (name, help, value) in [
                (
                    "up",
                    "1 if the last poll of the target succeeded, 0 if not.",
                    if up { 1.0 } else { 0.0 },
                ),
                (
                    "scrape_duration_seconds",
                    "How long the last poll took.",
                    duration_seconds,
                ),
                (
                    "scrape_samples_scraped",
                    "Samples the last poll returned.",
                    scraped as f64,
                ),
            ] {
                let mut f = Family::new(name, MetricType::Gauge, help);
                f.push(base.clone(), value);
                first(self.key(name, &base));
                report.push(f);
            }
        }
        for fam in &mut raw {
            fam.samples.retain(|s| {
                // A repeat of a report series or an earlier sample is dropped: one poll holds
                // one value per series.
                s.timestamp_ms.is_some() || first(self.key(&s.name, &s.labels))
            });
        }
        // The report families go first; the others stay in their vector (grown by three).
        raw.reserve_exact(report.len());
        raw.splice(0..0, report);
        let families = raw;
        // What vanished moves out of the old set (no copy); the old set is gone before the new
        // one is built, so at most one copy of the series' labels is ever held besides the
        // snapshot.
        let mut stale: Vec<(SeriesName, Labels)> = std::mem::take(&mut self.previous)
            .into_iter()
            .filter(|(k, ..)| current.find(k.0, |c| c == k).is_none())
            .map(|(_, name, labels)| (name, labels))
            .collect();
        drop(current);
        stale.sort();
        // `keys` follows the samples without a timestamp, in order, each series once.
        let mut previous = HashTable::with_capacity(keys.len());
        let untimed = families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.timestamp_ms.is_none());
        for (s, k) in untimed.zip(keys) {
            previous.insert_unique(k.0, (k, s.name.clone(), s.labels.clone()), |e| e.0 .0);
        }
        self.previous = previous;
        let snapshot = Snapshot {
            source: self.job.clone(),
            timestamp_ms: started_ms,
            families,
            stale,
        };
        (snapshot, error)
    }
}

/// True if `labels` has a `job` or an `instance` label (names sorted: `instance` < `job`, so the
/// scan stops at the first name after `job`).
fn has_job_or_instance(labels: &Labels) -> bool {
    labels
        .iter()
        .take_while(|&(k, _)| k <= "job")
        .any(|(k, _)| k == "job" || k == "instance")
}

/// True if `name` is one of the series the relay adds for every poll.
pub fn is_report_series(name: &str) -> bool {
    REPORT_NAMES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;

    fn fam(name: &str, series: &[(&[(&str, &str)], f64)]) -> Family {
        let mut f = Family::new(name, MetricType::Gauge, "");
        for (l, v) in series {
            f.samples.push(Sample {
                name: name.into(),
                labels: Labels::from_pairs(l.iter().copied()).unwrap(),
                value: *v,
                timestamp_ms: None,
            });
        }
        f
    }

    fn ext() -> Labels {
        Labels::from_pairs([("site", "home"), ("env", "x")]).unwrap()
    }

    #[test]
    fn labels_job_instance_exported_and_external() {
        let p = Preparer::new("node", "h:9100", &ext(), true);
        let own =
            Labels::from_pairs([("job", "other"), ("instance", "i"), ("env", "mine")]).unwrap();
        let l = p.target_labels(&own);
        assert_eq!(
            l.to_string(),
            r#"{env="mine",exported_instance="i",exported_job="other",instance="h:9100",job="node",site="home"}"#
        );
    }

    #[test]
    fn own_labels_over_the_bare_set_are_the_target_labels() {
        let owns = [
            vec![],
            vec![("env", "mine")],
            vec![("a", "1"), ("site", "mine"), ("zz", "2")],
            vec![("instance", "own"), ("x", "1")],
            vec![("job", "own"), ("jobs", "1")],
            vec![("exported_job", "e"), ("ia", "1"), ("jo", "2")],
        ];
        for honor in [false, true] {
            for instance in ["h:9100", ""] {
                for external in [
                    ext(),
                    Labels::new(),
                    Labels::from_pairs([("instance", "x")]).unwrap(),
                ] {
                    let rules = SeriesRules {
                        honor_labels: honor,
                        ..SeriesRules::default()
                    };
                    let p = Preparer::new("node", instance, &external, false).with_rules(rules);
                    let bare = p.target_labels(&Labels::new());
                    for own in &owns {
                        let own = Labels::from_pairs(own.iter().copied()).unwrap();
                        if honor || !has_job_or_instance(&own) {
                            assert_eq!(
                                own.over(&bare),
                                p.target_labels(&own),
                                "honor {honor}, instance {instance:?}, external {external}, own {own}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn series_sharing_a_label_set_share_their_target_set() {
        let mut p = Preparer::new("emqx", "h:18083", &ext(), false);
        let client = Labels::from_pairs([("client_id", "c1")]).unwrap();
        let other = Labels::from_pairs([("client_id", "c2")]).unwrap();
        let mut a = Family::new("a", MetricType::Gauge, "");
        let mut b = Family::new("b", MetricType::Gauge, "");
        a.push(client.clone(), 1.0);
        a.push(other, 2.0);
        b.push(client.clone(), 3.0);
        drop(client);
        let s = p.prepare(Some(vec![a, b]), 1, 0.0);
        let (a, b) = (&s.families[0].samples, &s.families[1].samples);
        let want = r#"{client_id="c1",env="x",instance="h:18083",job="emqx",site="home"}"#;
        assert_eq!(a[0].labels.to_string(), want);
        assert_eq!(b[0].labels, a[0].labels);
        assert_eq!(
            b[0].labels.buffer_id(),
            a[0].labels.buffer_id(),
            "one buffer"
        );
        assert!(a[1].labels.to_string().contains(r#"client_id="c2""#));
        assert_ne!(a[1].labels.buffer_id(), a[0].labels.buffer_id());
    }

    #[test]
    fn up_report_and_staleness() {
        let mut p = Preparer::new("node", "h:1", &Labels::new(), true);
        let s1 = p.prepare(
            Some(vec![fam(
                "a",
                &[(&[("x", "1")], 1.0), (&[("x", "2")], 2.0)],
            )]),
            1000,
            0.5,
        );
        assert!(s1.stale.is_empty());
        assert_eq!(s1.families[0].name, "up");
        assert_eq!(s1.families[0].samples[0].value, 1.0);
        assert_eq!(s1.families[2].samples[0].value, 2.0, "samples scraped");
        let s2 = p.prepare(Some(vec![fam("a", &[(&[("x", "1")], 1.0)])]), 2000, 0.5);
        assert_eq!(s2.stale.len(), 1);
        assert_eq!(s2.stale[0].1.get("x"), Some("2"));
        let s3 = p.prepare(None, 3000, 0.1);
        assert_eq!(s3.families[0].samples[0].value, 0.0, "up 0");
        assert_eq!(s3.stale.len(), 1, "the remaining series goes stale, not up");
        assert_eq!(s3.stale[0].0, "a");
        let s4 = p.prepare(None, 4000, 0.1);
        assert!(s4.stale.is_empty(), "stale markers are sent once");
    }

    fn rules(toml_rules: &str) -> SeriesRules {
        #[derive(serde::Deserialize)]
        struct R {
            r: Vec<crate::relabel::RawRelabelConfig>,
        }
        let raw: R = toml::from_str(toml_rules).unwrap();
        SeriesRules {
            relabel: raw
                .r
                .iter()
                .map(|r| crate::relabel::validate(r).unwrap())
                .collect(),
            ..SeriesRules::default()
        }
    }

    #[test]
    fn relabel_runs_before_staleness_and_sees_target_labels() {
        let r = rules(
            "[[r]]\nsource_labels = [\"job\", \"x\"]\nregex = \"node;2\"\naction = \"drop\"\n",
        );
        let mut p = Preparer::new("node", "h:1", &Labels::new(), true).with_rules(r);
        let s = p.prepare(
            Some(vec![fam(
                "a",
                &[(&[("x", "1")], 1.0), (&[("x", "2")], 2.0)],
            )]),
            1000,
            0.0,
        );
        let a: Vec<_> = s
            .families
            .iter()
            .filter(|f| f.name == "a")
            .flat_map(|f| &f.samples)
            .collect();
        assert_eq!(a.len(), 1);
        assert_eq!(
            s.families[2].samples[0].value, 2.0,
            "scraped counts before relabelling"
        );
        // The dropped series never goes stale.
        let s2 = p.prepare(Some(vec![fam("a", &[(&[("x", "1")], 1.0)])]), 2000, 0.0);
        assert!(s2.stale.is_empty(), "{:?}", s2.stale);
    }

    #[test]
    fn every_source_type_gets_its_relabel_rules() {
        let text = "[[source]]\ntype = \"linkhub\"\nname = \"l\"\nurl = \"http://x\"\nrequest_key = \"k\"\n[[source.metric_relabel_configs]]\nsource_labels = [\"__name__\"]\nregex = \"x\"\naction = \"drop\"\n[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"http://x:1/w\"\n";
        let cfg = crate::config::parse(text, "t.toml", &|_| None).unwrap();
        let r = cfg.sources[0].series_rules();
        assert_eq!(r.relabel.len(), 1);
        assert_eq!(
            (r.sample_limit, r.honor_labels),
            (0, false),
            "scrape options only for scrape"
        );
        let mut p = Preparer::new("l", "x:80", &Labels::new(), true).with_rules(r);
        let s = p.prepare(
            Some(vec![fam("x", &[(&[], 1.0)]), fam("y", &[(&[], 2.0)])]),
            1,
            0.0,
        );
        let names: Vec<_> = s
            .families
            .iter()
            .skip(3)
            .map(|f| (f.name.as_str(), f.samples.len()))
            .collect();
        assert_eq!(names, [("y", 1)], "a family relabelled away goes whole");
    }

    #[test]
    fn honor_labels_and_limits() {
        let own = Labels::from_pairs([("job", "mine"), ("instance", "i")]).unwrap();
        let p = Preparer::new("node", "h:1", &ext(), true).with_rules(SeriesRules {
            honor_labels: true,
            ..SeriesRules::default()
        });
        assert_eq!(
            p.target_labels(&own).to_string(),
            r#"{env="x",instance="i",job="mine",site="home"}"#
        );
        let limited = |r: SeriesRules, f: Vec<Family>| {
            let mut p = Preparer::new("n", "h:1", &Labels::new(), true).with_rules(r);
            let (s, e) = p.prepare_checked(Some(f), 1, 0.0);
            (s.families[0].samples[0].value, e)
        };
        let two = || vec![fam("a", &[(&[("x", "1")], 1.0), (&[("x", "2")], 2.0)])];
        let (up, e) = limited(
            SeriesRules {
                sample_limit: 1,
                ..SeriesRules::default()
            },
            two(),
        );
        assert_eq!(up, 0.0);
        assert!(e.unwrap().contains("sample_limit exceeded"));
        let (up, e) = limited(
            SeriesRules {
                sample_limit: 2,
                ..SeriesRules::default()
            },
            two(),
        );
        assert_eq!((up, e), (1.0, None));
        // Name, job, instance and x: four labels.
        let (_, e) = limited(
            SeriesRules {
                label_limit: 3,
                ..SeriesRules::default()
            },
            two(),
        );
        assert!(e.unwrap().contains("label_limit exceeded"));
        let (_, e) = limited(
            SeriesRules {
                label_name_length_limit: 7,
                ..SeriesRules::default()
            },
            two(),
        );
        assert!(e.unwrap().contains("label name: __name__"));
        let (_, e) = limited(
            SeriesRules {
                label_value_length_limit: 2,
                ..SeriesRules::default()
            },
            two(),
        );
        assert!(e.unwrap().contains("label_value_length_limit exceeded"));
    }

    #[test]
    fn duplicate_of_report_series_dropped() {
        let mut p = Preparer::new("n", "h:1", &Labels::new(), true);
        let s = p.prepare(Some(vec![fam("up", &[(&[], 0.0)])]), 1, 0.0);
        let ups: Vec<_> = s
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == "up")
            .collect();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].value, 1.0);
    }
}
