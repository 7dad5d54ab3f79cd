//! Prometheus's `promtool` (from .receivers/bin, like the receivers): `check rules` and
//! `test rules` on alert files, and the `expr:` of each rule for tests that run them on real data.

use std::path::Path;
use std::process::Command;

use super::receivers::binary_path;

/// Runs `promtool <args> <file>`; panics with promtool's output unless it succeeds. A missing
/// promtool panics too (`binary_path`): these tests never skip.
fn run(args: &[&str], file: &Path) -> String {
    let o = Command::new(binary_path("promtool"))
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("promtool {args:?} {}: {e}", file.display()));
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && out.contains("SUCCESS"),
        "promtool {} {}:\n{out}",
        args.join(" "),
        file.display()
    );
    out
}

/// `promtool check rules <file>`, asserting that it finds `rules` rules.
pub fn check_rules(file: &Path, rules: usize) {
    let out = run(&["check", "rules"], file);
    assert!(
        out.contains(&format!("SUCCESS: {rules} rules found")),
        "{}: expected {rules} rules:\n{out}",
        file.display()
    );
}

/// `promtool test rules <file>` (a unit-test file naming its rule files).
pub fn test_rules(file: &Path) {
    run(&["test", "rules"], file);
}

/// The `expr:` of every rule in an alert file (one-line and `|` block forms).
pub fn rule_exprs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if let Some(e) = t.strip_prefix("expr: ") {
            if e.trim() == "|" {
                let indent = lines.peek().map_or(0, |n| n.len() - n.trim_start().len());
                let mut block = Vec::new();
                while let Some(n) = lines.peek() {
                    if n.trim().is_empty() || n.len() - n.trim_start().len() < indent {
                        break;
                    }
                    block.push(n.trim().to_string());
                    lines.next();
                }
                out.push(block.join(" "));
            } else {
                out.push(e.to_string());
            }
        }
    }
    out
}
