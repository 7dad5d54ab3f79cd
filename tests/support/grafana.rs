//! Grafana dashboards (`examples/grafana/*.json`) as the tests read them: loading one, every
//! `expr` in it (panels, table targets, annotations) with where it was found, Grafana's
//! variables filled in as Grafana would, and the check that each query returns data from a
//! real Prometheus.

use serde_json::Value;

use super::receivers::Receiver;

/// `examples/grafana/<name>.json`, parsed.
pub fn load(name: &str) -> Value {
    let path = format!(
        "{}/examples/grafana/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Asserts the dashboard imports into Grafana (Cloud) as it is: one `DS_PROMETHEUS` input,
/// used by every query, and no `${datasource}` variable left over.
pub fn assert_uses_ds_prometheus_input(d: &Value) {
    assert_eq!(
        d["__inputs"][0]["name"], "DS_PROMETHEUS",
        "no DS_PROMETHEUS input"
    );
    let text = d.to_string();
    assert!(
        !text.contains("\"uid\":\"${datasource}\""),
        "every query uses the DS_PROMETHEUS input"
    );
}

/// Every `expr` anywhere in `v`, with where it was found (`/row/panel` titles).
pub fn exprs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            let title = m.get("title").or(m.get("name")).and_then(Value::as_str);
            let here = match title {
                Some(t) => format!("{at}/{t}"),
                None => at.to_string(),
            };
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(s)) => out.push((here.clone(), s.clone())),
                    _ => exprs(x, &here, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, at, out)),
        _ => {}
    }
}

/// Every `expr` in the dashboard, without where.
pub fn all_exprs(d: &Value) -> Vec<String> {
    let mut found = Vec::new();
    exprs(d, "", &mut found);
    found.into_iter().map(|(_, e)| e).collect()
}

/// `expr` with Grafana's interval variables filled in for a test's short time range and the
/// dashboard's own variables replaced by `vars` (`("job", "router")` replaces `${job}` and
/// `$job`).
pub fn concrete(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut q = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "10s")
        .replace("$__range", "5m");
    for (name, value) in vars {
        q = q
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    q
}

/// Runs every query of `d` over `start..end` (step 1 s) and, for targets marked `instant`, at
/// `end`; panics naming each one that returned nothing.
pub async fn assert_every_query_returns_data(
    prom: &Receiver,
    d: &Value,
    vars: &[(&str, &str)],
    start: f64,
    end: f64,
) {
    let mut found = Vec::new();
    exprs(d, "", &mut found);
    let mut empty = Vec::new();
    for (at, expr) in &found {
        let q = concrete(expr, vars);
        assert!(!q.contains('$'), "unsubstituted variable in {q}");
        let r = prom.query_range(&q, start, end, 1.0).await;
        let points: usize = r
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["values"].as_array().map_or(0, |v| v.len()))
                    .sum()
            })
            .unwrap_or(0);
        if points == 0 {
            empty.push(format!("{at}: {q}"));
        }
    }
    let mut targets = Vec::new();
    collect_targets(d, &mut targets);
    for t in targets.into_iter().filter(|t| t["instant"] == true) {
        let q = concrete(t["expr"].as_str().unwrap_or_default(), vars);
        let r = prom.query(&q, end).await;
        if r.as_array().is_none_or(|a| a.is_empty()) {
            empty.push(format!("instant: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );
}

/// The targets of every panel, also inside rows.
fn collect_targets<'a>(d: &'a Value, out: &mut Vec<&'a Value>) {
    for p in d["panels"].as_array().into_iter().flatten() {
        out.extend(p["targets"].as_array().into_iter().flatten());
        collect_targets(p, out);
    }
}

/// Asserts that the variable `name` is `label_values(<metric>, <label>)` and that Prometheus
/// lists `want` among that label's values.
pub async fn assert_variable_lists(prom: &Receiver, d: &Value, name: &str, want: &str) {
    let var = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no {name} variable"));
    let def = var["definition"].as_str().unwrap();
    let (metric, label) = def
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| s.rsplit_once(", "))
        .unwrap_or_else(|| panic!("unexpected variable query {def}"));
    let series = prom.series(metric).await;
    assert!(
        series.as_array().unwrap().iter().any(|s| s[label] == want),
        "{def}: {series}"
    );
}
