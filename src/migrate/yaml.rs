//! The small part of YAML that hand-written exporter configs use: block mappings, block
//! sequences (of scalars or of mappings), `[]`/`{}` and one-line flow lists of scalars, plain
//! and quoted scalars, comments and a leading `---`. Anything else (anchors, tags, multi-line
//! strings, several documents) is refused with its line number, so a config is never half read.

use std::collections::BTreeMap;

/// A YAML value; scalars stay text until asked for as a type.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Scalar(String),
    /// A quoted scalar: never a number, a boolean or null.
    Quoted(String),
    Null,
    List(Vec<Yaml>),
    Map(BTreeMap<String, Yaml>),
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// The text of a scalar (quoted or not).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) | Yaml::Quoted(s) => Some(s),
            _ => None,
        }
    }

    /// A YAML 1.1 boolean as PyYAML reads one (`true`, `False`, `yes`, `off`, …).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Yaml::Scalar(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "y" => Some(true),
                "false" | "no" | "off" | "n" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Yaml::Scalar(s) => s.replace('_', "").parse().ok(),
            _ => None,
        }
    }
}

/// A line of the document: its number (from 1), indentation and content without comment.
struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

/// Parses `text`; an error names the line and what is not understood.
pub fn parse(text: &str) -> Result<Yaml, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let body = strip_comment(raw);
        let trimmed = body.trim_end();
        if trimmed.trim().is_empty() {
            continue;
        }
        if raw.starts_with('\t') || trimmed.trim_start().starts_with('\t') {
            return Err(format!("line {no}: tabs are not YAML indentation"));
        }
        let indent = trimmed.len() - trimmed.trim_start().len();
        let content = trimmed.trim_start();
        if indent == 0 && (content == "---" || content.starts_with("%")) && lines.is_empty() {
            continue;
        }
        if content == "---" || content == "..." {
            return Err(format!("line {no}: only one YAML document is read"));
        }
        lines.push(Line {
            no,
            indent,
            text: content,
        });
    }
    if lines.is_empty() {
        return Ok(Yaml::Null);
    }
    let mut pos = 0;
    let v = block(&lines, &mut pos, lines[0].indent)?;
    if let Some(l) = lines.get(pos) {
        return Err(format!("line {}: unexpected indentation", l.no));
    }
    Ok(v)
}

/// The text before a `#` that starts a comment (outside quotes, after a space or at the start).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// A block (mapping or sequence) whose lines start at `indent`.
fn block(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    let first = &lines[*pos];
    if first.text == "-" || first.text.starts_with("- ") {
        sequence(lines, pos, indent)
    } else {
        mapping(lines, pos, indent, None)
    }
}

fn sequence(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    let mut items = Vec::new();
    while let Some(l) = lines.get(*pos) {
        if l.indent < indent {
            break;
        }
        if l.indent > indent {
            return Err(format!("line {}: unexpected indentation", l.no));
        }
        let Some(rest) = l.text.strip_prefix('-') else {
            break;
        };
        let rest = rest.trim_start();
        *pos += 1;
        if rest.is_empty() {
            items.push(nested(lines, pos, indent)?);
        } else if split_key(rest).is_some() {
            // `- key: value` opens a mapping whose other keys align with `key`.
            let key_indent = indent + (l.text.len() - rest.len());
            items.push(mapping(lines, pos, key_indent, Some((l.no, rest)))?);
        } else {
            items.push(scalar(rest, l.no)?);
        }
    }
    Ok(Yaml::List(items))
}

/// A mapping at `indent`; `first` is a `key: value` already taken from a `- ` line.
fn mapping(
    lines: &[Line],
    pos: &mut usize,
    indent: usize,
    first: Option<(usize, &str)>,
) -> Result<Yaml, String> {
    let mut m = BTreeMap::new();
    let mut pending = first;
    loop {
        let (no, text) = match pending.take() {
            Some(p) => p,
            None => match lines.get(*pos) {
                Some(l) if l.indent == indent && !l.text.starts_with("- ") && l.text != "-" => {
                    *pos += 1;
                    (l.no, l.text)
                }
                Some(l) if l.indent > indent => {
                    return Err(format!("line {}: unexpected indentation", l.no))
                }
                _ => break,
            },
        };
        let (key, value) =
            split_key(text).ok_or_else(|| format!("line {no}: expected `key: value`"))?;
        let key = match scalar(key, no)? {
            Yaml::Scalar(k) | Yaml::Quoted(k) => k,
            _ => return Err(format!("line {no}: a key must be text")),
        };
        let v = if value.is_empty() {
            nested(lines, pos, indent)?
        } else {
            scalar(value, no)?
        };
        if m.insert(key.clone(), v).is_some() {
            return Err(format!("line {no}: {key} appears twice"));
        }
    }
    Ok(Yaml::Map(m))
}

/// What follows a `key:` or `-` with nothing after it: a deeper block (or a sequence at the
/// same indentation, as YAML allows under a key), else null.
fn nested(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    match lines.get(*pos) {
        Some(l) if l.indent > indent => block(lines, pos, l.indent),
        Some(l) if l.indent == indent && (l.text.starts_with("- ") || l.text == "-") => {
            sequence(lines, pos, indent)
        }
        _ => Ok(Yaml::Null),
    }
}

/// `key: rest` (the colon followed by a space or the end), outside quotes.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (mut single, mut double) = (false, false);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            ':' if !single && !double && (i + 1 == bytes.len() || bytes[i + 1] == b' ') => {
                return Some((text[..i].trim(), text[i + 1..].trim()));
            }
            _ => {}
        }
    }
    None
}

fn scalar(text: &str, no: usize) -> Result<Yaml, String> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('"') {
        let body = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("line {no}: unterminated string"))?;
        // The escapes a config uses (\\, \n, \"); others stay as written.
        return Ok(Yaml::Quoted(
            crate::expfmt::parse::unescape(body, true).into_owned(),
        ));
    }
    if let Some(inner) = t.strip_prefix('\'') {
        let body = inner
            .strip_suffix('\'')
            .ok_or_else(|| format!("line {no}: unterminated string"))?;
        return Ok(Yaml::Quoted(body.replace("''", "'")));
    }
    if t == "[]" {
        return Ok(Yaml::List(Vec::new()));
    }
    if t == "{}" {
        return Ok(Yaml::Map(BTreeMap::new()));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        if inner.contains(['[', '{']) {
            return Err(format!("line {no}: nested flow collections are not read"));
        }
        return inner
            .split(',')
            .map(|x| scalar(x, no))
            .collect::<Result<_, _>>()
            .map(Yaml::List);
    }
    if t.starts_with(['{', '&', '*', '!', '|', '>', '%', '@', '`']) {
        return Err(format!(
            "line {no}: `{t}`: this YAML form is not read (write the value on one line)"
        ));
    }
    if t == "~" || t.eq_ignore_ascii_case("null") {
        return Ok(Yaml::Null);
    }
    Ok(Yaml::Scalar(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_exporter_config() {
        let y = parse(
            "---\n# a comment\nemqx:\n  api_key: \"01ab\"  # trailing\n  ssl: true\n  alias: Local # x\n\
             monitored_clients:\n  - alias: A\n    client_id: 'a-1'\n- alias: B\n  client_id: b#2\n\
             prometheus:\n  port: 9671\n  list: [a, \"b\"]\n  empty: []\n",
        );
        // The second item at the parent's indentation belongs to no key: refused.
        assert!(y.is_err(), "{y:?}");
        let y = parse(
            "emqx:\n  api_key: \"01ab\"  # trailing\n  ssl: true\n  alias: Local # x\n\
             monitored_clients:\n  - alias: A\n    client_id: 'a-1'\n  - alias: B\n    client_id: b#2\n\
             prometheus:\n  port: 9671\n  list: [a, \"b\"]\n  empty: []\nnothing:\n",
        )
        .unwrap();
        let e = y.get("emqx").unwrap();
        assert_eq!(e.get("api_key").unwrap().as_str(), Some("01ab"));
        assert_eq!(e.get("ssl").unwrap().as_bool(), Some(true));
        assert_eq!(e.get("alias").unwrap().as_str(), Some("Local"));
        let Yaml::List(c) = y.get("monitored_clients").unwrap() else {
            panic!()
        };
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].get("client_id").unwrap().as_str(), Some("b#2"));
        assert_eq!(c[0].get("client_id").unwrap().as_str(), Some("a-1"));
        let p = y.get("prometheus").unwrap();
        assert_eq!(p.get("port").unwrap().as_u64(), Some(9671));
        assert_eq!(p.get("empty"), Some(&Yaml::List(vec![])));
        assert_eq!(y.get("nothing"), Some(&Yaml::Null));
        // Sequences may sit at their key's indentation.
        let y = parse("clients:\n- a\n- b\nx: 1\n").unwrap();
        assert_eq!(
            y.get("clients"),
            Some(&Yaml::List(vec![
                Yaml::Scalar("a".into()),
                Yaml::Scalar("b".into())
            ]))
        );
    }

    #[test]
    fn refuses_what_it_does_not_read_with_the_line() {
        for (text, want) in [
            ("a: &x 1\n", "line 1"),
            ("a:\n  b: 1\n   c: 2\n", "line 3"),
            ("a: 1\na: 2\n", "appears twice"),
            ("a: |\n  text\n", "line 1"),
            ("a: \"open\n", "unterminated"),
            ("a: 1\n---\nb: 2\n", "one YAML document"),
            ("\ta: 1\n", "tabs"),
            ("just text\n", "expected `key: value`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
