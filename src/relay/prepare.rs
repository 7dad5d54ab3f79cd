//! Turns a source's raw families into the snapshot sinks receive: target labels, external
//! labels, the per-poll report series (`up`, ...) and the series that went stale.

use std::collections::HashSet;

use crate::model::{Family, Labels, MetricType, Snapshot};

/// Keeps what one source's preparation needs across polls: its labels and last series set.
pub struct Preparer {
    job: String,
    instance: String,
    external: Labels,
    /// Whether to add `up`, `scrape_duration_seconds` and `scrape_samples_scraped`.
    report: bool,
    /// The series of the previous poll that carried no timestamp of their own.
    previous: HashSet<(String, Labels)>,
}

/// The series the relay adds for every poll, as Prometheus does for every scrape.
const REPORT_NAMES: [&str; 3] = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];

impl Preparer {
    pub fn new(job: &str, instance: &str, external: &Labels, report: bool) -> Preparer {
        Preparer {
            job: job.to_string(),
            instance: instance.to_string(),
            external: external.clone(),
            report,
            previous: HashSet::new(),
        }
    }

    /// The labels a source's series carries once pushed: its own labels, with `job` and
    /// `instance` moved to `exported_job`/`exported_instance`, then the target's `job` and
    /// `instance`, then external labels where the series has none of that name.
    pub fn target_labels(&self, own: &Labels) -> Labels {
        let mut l = own.clone();
        for name in ["job", "instance"] {
            if let Some(v) = l.remove(name) {
                let mut exported = format!("exported_{name}");
                while l.get(&exported).is_some() {
                    exported = format!("exported_{exported}");
                }
                l.set(&exported, &v);
            }
        }
        l.set("job", &self.job);
        l.set("instance", &self.instance);
        for (k, v) in self.external.iter() {
            if l.get(k).is_none() {
                l.set(k, v);
            }
        }
        l
    }

    /// Builds the snapshot of one poll. `result` is the families the source returned, or `None`
    /// if the poll failed; `started_ms` is when it started and `duration` how long it took.
    pub fn prepare(
        &mut self,
        result: Option<Vec<Family>>,
        started_ms: i64,
        duration_seconds: f64,
    ) -> Snapshot {
        let up = result.is_some();
        let raw = result.unwrap_or_default();
        let scraped: usize = raw.iter().map(|f| f.samples.len()).sum();
        let mut families = Vec::with_capacity(raw.len() + 3);
        let mut current: HashSet<(String, Labels)> = HashSet::with_capacity(self.previous.len());
        if self.report {
            let base = self.target_labels(&Labels::new());
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
                current.insert((name.to_string(), base.clone()));
                families.push(f);
            }
        }
        for mut fam in raw {
            let mut samples = Vec::with_capacity(fam.samples.len());
            for mut s in fam.samples {
                s.labels = self.target_labels(&s.labels);
                if s.timestamp_ms.is_none() {
                    // A repeat of a report series or an earlier sample is dropped: one poll
                    // holds one value per series.
                    if !current.insert((s.name.clone(), s.labels.clone())) {
                        continue;
                    }
                }
                samples.push(s);
            }
            fam.samples = samples;
            families.push(fam);
        }
        let mut stale: Vec<(String, Labels)> = self
            .previous
            .iter()
            .filter(|k| !current.contains(*k))
            .cloned()
            .collect();
        stale.sort();
        self.previous = current;
        Snapshot {
            source: self.job.clone(),
            timestamp_ms: started_ms,
            families,
            stale,
        }
    }
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
