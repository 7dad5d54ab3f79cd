//! `metric_relabel_configs`: Prometheus's relabelling rules, applied to every series of every
//! source before staleness tracking and before the sinks.
//!
//! [`RawRelabelConfig`] is one rule as written in the config file; [`validate`] checks it the
//! way Prometheus does and compiles its regex into a [`RelabelConfig`]; [`process`] runs a
//! list of rules over one series. The semantics are Prometheus's (`model/relabel`):
//!
//! - `source_labels` values (a missing label reads as empty) are joined by `separator`
//!   (default `;`) and matched against `regex` (default `(.*)`), which is fully anchored:
//!   `^(?s:<regex>)$`.
//! - `replace` (default): on a match, `target_label` and `replacement` (default `$1`) are
//!   expanded with the groups (`$1`, `${1}`, `$name`; the longest name wins, as in Go) and the
//!   target is set to the result, or removed when it is empty; no match, no change.
//! - `keep` / `drop`: the series is kept only if / dropped if the value matches.
//! - `keepequal` / `dropequal`: kept only if / dropped if the value equals `target_label`'s.
//! - `hashmod`: `target_label` is set to the MD5 of the value (its last 8 bytes, big-endian)
//!   modulo `modulus`.
//! - `labelmap`: every label whose name matches is copied to the name `replacement` makes of it.
//! - `labeldrop` / `labelkeep`: labels whose names match are removed / kept.
//! - `lowercase` / `uppercase`: `target_label` is set to the value in lower / upper case.
//!
//! The series name is the label `__name__` here, as in Prometheus: rules can read and set it.
//! A series whose name is removed is an error that fails the poll, as a scrape fails in
//! Prometheus. Regexes use the `regex-lite` crate: RE2's syntax (as Go's) with RE2's ASCII-only
//! `\d`, `\w`, `\s` and `\b`, linear-time matching, but no Unicode classes (`\pL` is refused
//! when the configuration is loaded) and ASCII-only case folding under `(?i)`. It costs
//! 0.92 MiB less binary than the full `regex` crate (see the README).

use std::fmt::Write as _;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize, Serializer};

use crate::model::Labels;

/// One relabelling rule as written in the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelabelConfig {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    /// Whether the action can remove a series (so fewer samples leave relabelling than enter).
    pub fn can_drop(self) -> bool {
        matches!(
            self,
            Action::Keep | Action::Drop | Action::KeepEqual | Action::DropEqual
        )
    }

    fn from_text(s: &str) -> Option<Action> {
        Some(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => return None,
        })
    }
}

/// A validated rule with its regex compiled. Printed back as the keys it was read from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelabelConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    pub separator: String,
    #[serde(serialize_with = "ser_regex")]
    pub regex: Regex,
    #[serde(skip_serializing_if = "is_zero")]
    pub modulus: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A rule's regex: the text as written and the anchored compiled form.
#[derive(Debug, Clone)]
pub struct Regex {
    pub text: String,
    compiled: regex_lite::Regex,
}

/// Two regexes are the same when written the same (the compiled form follows from the text).
impl PartialEq for Regex {
    fn eq(&self, other: &Regex) -> bool {
        self.text == other.text
    }
}

fn ser_regex<S: Serializer>(r: &Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&r.text)
}

impl Regex {
    pub fn new(text: &str) -> Result<Regex, String> {
        let compiled = regex_lite::RegexBuilder::new(&format!("^(?s:{text})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("invalid regex {text:?}: {e}"))?;
        Ok(Regex {
            text: text.to_string(),
            compiled,
        })
    }
}

const DEFAULT_REGEX: &str = "(.*)";

/// Checks one rule as Prometheus does and compiles it. The message names what is wrong.
pub fn validate(raw: &RawRelabelConfig) -> Result<RelabelConfig, String> {
    let action = match &raw.action {
        None => Action::Replace,
        Some(a) => Action::from_text(a).ok_or_else(|| {
            format!("unknown relabel action {a:?}, expected one of: replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase")
        })?,
    };
    let regex = Regex::new(raw.regex.as_deref().unwrap_or(DEFAULT_REGEX))?;
    let cfg = RelabelConfig {
        source_labels: raw.source_labels.clone().unwrap_or_default(),
        separator: raw.separator.clone().unwrap_or_else(|| ";".into()),
        regex,
        modulus: raw.modulus.unwrap_or(0),
        target_label: raw.target_label.clone().unwrap_or_default(),
        replacement: raw.replacement.clone().unwrap_or_else(|| "$1".into()),
        action,
    };
    let name = serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if action == Action::HashMod && cfg.modulus == 0 {
        return Err("relabel action hashmod needs a non-zero modulus".into());
    }
    let needs_target = matches!(
        action,
        Action::Replace
            | Action::HashMod
            | Action::Lowercase
            | Action::Uppercase
            | Action::KeepEqual
            | Action::DropEqual
    );
    if needs_target && cfg.target_label.is_empty() {
        return Err(format!("relabel action {name} needs target_label"));
    }
    if matches!(
        action,
        Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
    ) && cfg.target_label.contains('$')
    {
        return Err(format!(
            "target_label of relabel action {name} cannot use groups"
        ));
    }
    // Keys left at their defaults count as not given, as in Prometheus.
    let defaults = cfg.regex.text == DEFAULT_REGEX
        && cfg.modulus == 0
        && cfg.separator == ";"
        && cfg.replacement == "$1";
    if matches!(action, Action::KeepEqual | Action::DropEqual) && !defaults {
        return Err(format!(
            "relabel action {name} takes only source_labels and target_label"
        ));
    }
    if matches!(action, Action::LabelDrop | Action::LabelKeep)
        && (raw.source_labels.is_some()
            || !cfg.target_label.is_empty()
            || cfg.modulus != 0
            || cfg.separator != ";"
            || cfg.replacement != "$1")
    {
        return Err(format!("relabel action {name} takes only regex"));
    }
    Ok(cfg)
}

/// A series as the rules see it: every label including `__name__`, sorted by name.
struct Builder(Vec<(String, String)>);

impl Builder {
    fn get(&self, name: &str) -> &str {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map_or("", |i| self.0[i].1.as_str())
    }

    fn set(&mut self, name: &str, value: String) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value)),
        }
    }
}

/// Why relabelling made a series unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    #[error("relabelling removed the metric name of a series with labels {0}")]
    NoName(String),
}

/// Runs `rules` over the series `name`/`labels`. `Ok(None)` if a rule dropped it; otherwise
/// the new name and labels.
pub fn process(
    rules: &[RelabelConfig],
    name: &str,
    labels: &Labels,
) -> Result<Option<(String, Labels)>, RelabelError> {
    if rules.is_empty() {
        return Ok(Some((name.to_string(), labels.clone())));
    }
    let mut pairs: Vec<(String, String)> = labels.clone().into_pairs();
    let at = pairs
        .binary_search_by(|(n, _)| n.as_str().cmp("__name__"))
        .unwrap_or_else(|i| i);
    pairs.insert(at, ("__name__".to_string(), name.to_string()));
    let mut b = Builder(pairs);
    for rule in rules {
        if !apply(rule, &mut b) {
            return Ok(None);
        }
    }
    let mut name = None;
    let rest: Vec<(String, String)> =
        b.0.into_iter()
            .filter_map(|(k, v)| {
                if k == "__name__" {
                    name = Some(v);
                    None
                } else {
                    Some((k, v))
                }
            })
            .collect();
    // Names were set only from non-empty strings and are unique in the builder.
    let labels = Labels::from_pairs(rest).unwrap_or_default();
    match name {
        Some(n) => Ok(Some((n, labels))),
        None => Err(RelabelError::NoName(labels.to_string())),
    }
}

/// Applies one rule; false if the series is to be dropped.
fn apply(rule: &RelabelConfig, b: &mut Builder) -> bool {
    let re = &rule.regex.compiled;
    let value = || {
        let mut v = String::new();
        for (i, l) in rule.source_labels.iter().enumerate() {
            if i > 0 {
                v.push_str(&rule.separator);
            }
            v.push_str(b.get(l));
        }
        v
    };
    match rule.action {
        Action::Keep => return re.is_match(&value()),
        Action::Drop => return !re.is_match(&value()),
        Action::KeepEqual => return value() == b.get(&rule.target_label),
        Action::DropEqual => return value() != b.get(&rule.target_label),
        Action::Replace => {
            let v = value();
            let Some(caps) = re.captures(&v) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&rule.target_label, &mut target);
            if target.is_empty() {
                return true;
            }
            let mut res = String::new();
            caps.expand(&rule.replacement, &mut res);
            b.set(&target, res);
        }
        Action::Lowercase => {
            let v = value().to_lowercase();
            b.set(&rule.target_label, v);
        }
        Action::Uppercase => {
            let v = value().to_uppercase();
            b.set(&rule.target_label, v);
        }
        Action::HashMod => {
            let digest = Md5::digest(value().as_bytes());
            let mut last = [0u8; 8];
            last.copy_from_slice(&digest[8..16]);
            let m = u64::from_be_bytes(last) % rule.modulus;
            let mut s = String::new();
            let _ = write!(s, "{m}");
            b.set(&rule.target_label, s);
        }
        Action::LabelMap => {
            let current = b.0.clone();
            for (k, v) in current {
                if re.is_match(&k) {
                    let to = re.replace_all(&k, rule.replacement.as_str()).into_owned();
                    b.set(&to, v);
                }
            }
        }
        Action::LabelDrop => b.0.retain(|(k, _)| !re.is_match(k)),
        Action::LabelKeep => b.0.retain(|(k, _)| re.is_match(k)),
    }
    true
}

/// What happens to each series of a source before staleness tracking and the sinks, in
/// Prometheus's order: target labels (`honor_labels`), `metric_relabel_configs`, then the
/// limits (exceeding one fails the whole poll).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesRules {
    pub honor_labels: bool,
    pub relabel: Vec<RelabelConfig>,
    /// `sample_limit`, `label_limit`, `label_name_length_limit`, `label_value_length_limit`
    /// (0: no limit).
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
}

impl SeriesRules {
    /// Checks one series against the label limits, with Prometheus's messages.
    pub fn check_labels(&self, name: &str, labels: &Labels) -> Result<(), String> {
        let over = |limit: u64, n: usize| limit > 0 && n as u64 > limit;
        if over(self.label_limit, labels.len() + 1) {
            return Err(format!(
                "label_limit exceeded (metric: {name}, number of labels: {}, limit: {})",
                labels.len() + 1,
                self.label_limit
            ));
        }
        for (k, v) in [("__name__", name)].into_iter().chain(labels.iter()) {
            if over(self.label_name_length_limit, k.len()) {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {name}, label name: {k}, length: {}, limit: {})",
                    k.len(),
                    self.label_name_length_limit
                ));
            }
            if over(self.label_value_length_limit, v.len()) {
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {name}, label name: {k}, value: {v:?}, length: {}, limit: {})",
                    v.len(),
                    self.label_value_length_limit
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> RelabelConfig {
        let raw: RawRelabelConfig = toml::from_str(toml_text).unwrap();
        validate(&raw).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
    }

    fn run(rules: &[RelabelConfig], name: &str, pairs: &[(&str, &str)]) -> Option<String> {
        let l = Labels::from_pairs(pairs.iter().copied()).unwrap();
        process(rules, name, &l)
            .unwrap()
            .map(|(n, l)| format!("{n}{l}"))
    }

    #[test]
    fn keep_drop_and_anchoring() {
        let keep = rule("source_labels = [\"__name__\"]\nregex = \"node_.*\"\naction = \"keep\"");
        assert_eq!(
            run(std::slice::from_ref(&keep), "node_load1", &[]).as_deref(),
            Some("node_load1")
        );
        assert_eq!(
            run(&[keep], "go_node_x", &[]),
            None,
            "anchored at both ends"
        );
        let drop = rule("source_labels = [\"a\", \"b\"]\nregex = \"1;\"\naction = \"DROP\"");
        assert_eq!(
            run(std::slice::from_ref(&drop), "m", &[("a", "1")]),
            None,
            "missing label is empty"
        );
        assert!(run(&[drop], "m", &[("a", "1"), ("b", "2")]).is_some());
    }

    #[test]
    fn replace_and_expansion() {
        let r = rule("source_labels = [\"instance\"]\nregex = \"(.*):(\\\\d+)\"\ntarget_label = \"host\"\nreplacement = \"${1}-$2\"");
        assert_eq!(
            run(std::slice::from_ref(&r), "m", &[("instance", "h:9100")]).as_deref(),
            Some("m{host=\"h-9100\",instance=\"h:9100\"}")
        );
        assert_eq!(
            run(&[r], "m", &[("instance", "nope")]).as_deref(),
            Some("m{instance=\"nope\"}")
        );
        // $1x is the group named "1x": empty, so the target is removed.
        let r = rule("source_labels = [\"a\"]\ntarget_label = \"a\"\nreplacement = \"$1x\"");
        assert_eq!(run(&[r], "m", &[("a", "v")]).as_deref(), Some("m"));
        // Setting __name__ renames; removing it is an error.
        let r = rule("target_label = \"__name__\"\nreplacement = \"renamed\"");
        assert_eq!(run(&[r], "m", &[]).as_deref(), Some("renamed"));
        let r = rule("regex = \"__name__\"\naction = \"labeldrop\"");
        assert!(process(&[r], "m", &Labels::new()).is_err());
    }

    #[test]
    fn label_actions_and_hashmod() {
        let m = rule("regex = \"meta_(.+)\"\naction = \"labelmap\"");
        assert_eq!(
            run(&[m], "m", &[("meta_x", "1")]).as_deref(),
            Some("m{meta_x=\"1\",x=\"1\"}")
        );
        let d = rule("regex = \"x|y\"\naction = \"labeldrop\"");
        assert_eq!(
            run(&[d], "m", &[("x", "1"), ("z", "2")]).as_deref(),
            Some("m{z=\"2\"}")
        );
        let k = rule("regex = \"__name__|z\"\naction = \"labelkeep\"");
        assert_eq!(
            run(&[k], "m", &[("x", "1"), ("z", "2")]).as_deref(),
            Some("m{z=\"2\"}")
        );
        let h = rule(
            "source_labels = [\"a\"]\nmodulus = 8\ntarget_label = \"shard\"\naction = \"hashmod\"",
        );
        let out = run(&[h], "m", &[("a", "foo")]).unwrap();
        assert!(out.contains("shard=\""), "{out}");
        let lc = rule("source_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"lowercase\"");
        assert_eq!(
            run(&[lc], "m", &[("a", "AbC")]).as_deref(),
            Some("m{a=\"AbC\",b=\"abc\"}")
        );
        let eq = rule("source_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"keepequal\"");
        assert!(run(std::slice::from_ref(&eq), "m", &[("a", "1"), ("b", "1")]).is_some());
        assert!(run(&[eq], "m", &[("a", "1"), ("b", "2")]).is_none());
    }

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        let keep = rule("source_labels = [\"a\"]\nregex = '\\d+'\naction = \"keep\"");
        assert!(run(std::slice::from_ref(&keep), "m", &[("a", "42")]).is_some());
        assert!(
            run(&[keep], "m", &[("a", "\u{661}\u{662}")]).is_none(),
            "Arabic digits are not \\d"
        );
        let w = rule("source_labels = [\"a\"]\nregex = '[\\w.]+'\naction = \"keep\"");
        assert!(run(std::slice::from_ref(&w), "m", &[("a", "a_b.c9")]).is_some());
        assert!(run(&[w], "m", &[("a", "é")]).is_none());
        let bad: RawRelabelConfig = toml::from_str("regex = '\\pL+'").unwrap();
        assert!(validate(&bad).unwrap_err().contains("invalid regex"));
    }

    #[test]
    fn validation() {
        let bad = |t: &str| {
            let raw: RawRelabelConfig = toml::from_str(t).unwrap();
            validate(&raw).unwrap_err()
        };
        assert!(bad("action = \"nope\"").contains("unknown relabel action"));
        assert!(
            bad("action = \"hashmod\"\nsource_labels=[\"a\"]\ntarget_label=\"b\"")
                .contains("modulus")
        );
        assert!(bad("regex = \"(\"").contains("invalid regex"));
        assert!(
            bad("action = \"labeldrop\"\nregex=\"a\"\ntarget_label=\"b\"").contains("only regex")
        );
        assert!(bad("action = \"lowercase\"\nsource_labels=[\"a\"]").contains("target_label"));
    }
}
