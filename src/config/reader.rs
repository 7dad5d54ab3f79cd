//! What reading a file needs: positions for errors, `${ENV}` expansion, secrets from the
//! value or a `*_file`, URLs and names; [`Section`] is the same for one `[[source]]` or
//! `[[sink]]` table, so a component's validation names its keys without repeating the prefix.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::{ConfigError, RelayConfig, Secret};

/// One file being read: its text (for positions), its name and the environment; and what
/// reading it found worth a warning.
pub struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a str,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    /// Settings that work but deserve a line at start-up.
    pub(super) warnings: std::cell::RefCell<Vec<String>>,
    /// Whether a secret is written in the file itself (not `${VAR}` or `*_file`).
    pub(super) inline_secret: std::cell::Cell<bool>,
}

/// True when `value` is nothing but one `${VAR}` reference.
fn is_env_reference(value: &str) -> bool {
    let v = value.trim();
    v.starts_with("${") && v.ends_with('}') && v[2..].find('}') == Some(v.len() - 3)
}

/// Deserializes one spanned TOML value, keeping positions for errors.
pub(super) fn de_value<'de, T: Deserialize<'de>>(
    v: &Spanned<DeValue<'de>>,
) -> Result<T, toml::de::Error> {
    T::deserialize(toml::de::ValueDeserializer::from(v.clone()))
}

impl Ctx<'_> {
    /// An error at `span` of the file.
    pub(super) fn at(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::At {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// An error about `key` with no better position.
    pub(super) fn key_err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            file: self.file.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Turns a TOML/serde error into a located error naming the key it is about.
    pub(super) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        self.error_at_span(e.message(), e.span())
    }

    /// A located error naming the key at `span` (or the file, without one). serde quotes the
    /// offending value (`invalid type: string "user:pw"`); for a key that holds a secret the
    /// quoted text is replaced, so a misplaced password never reaches the terminal or a log.
    pub(super) fn error_at_span(&self, message: &str, span: Option<Range<usize>>) -> ConfigError {
        let message = with_suggestion(message.trim());
        match span {
            Some(span) => {
                let key = key_at(self.text, span.start, &message);
                let message = if super::header_looks_secret(&key) {
                    redact_quoted(&message)
                } else {
                    message
                };
                self.at(span, &key, message)
            }
            None => self.key_err("(file)", redact_quoted(&message)),
        }
    }

    /// Replaces `${VAR}` with the environment's value; a missing variable is an error located
    /// at its reference. `$$` stands for a literal `$`.
    pub(super) fn expand(
        &self,
        s: &str,
        key: &str,
        near: Option<Range<usize>>,
    ) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    self.locate(s, key, near.clone(), "unclosed ${ in value".to_string())
                })?;
                let var = &body[..end];
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.locate(
                        &format!("${{{var}}}"),
                        key,
                        near,
                        format!("invalid environment variable name {var:?}"),
                    ));
                }
                match (self.env)(var) {
                    Some(v) => out.push_str(&v),
                    None => {
                        return Err(self.locate(
                            &format!("${{{var}}}"),
                            key,
                            near,
                            format!("environment variable {var} is not set"),
                        ))
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Locates `needle` in the file (searching from `near` if known) for an error message.
    pub(super) fn locate(
        &self,
        needle: &str,
        key: &str,
        near: Option<Range<usize>>,
        message: String,
    ) -> ConfigError {
        let from = near.map(|r| r.start).unwrap_or(0);
        let pos = self.text[from.min(self.text.len())..]
            .find(needle)
            .map(|p| p + from)
            .or_else(|| self.text.find(needle));
        match pos {
            Some(p) => self.at(p..p + needle.len(), key, message),
            None => self.key_err(key, message),
        }
    }

    /// Resolves a secret given inline (possibly as `${VAR}`) or as a `*_file` path.
    fn secret(
        &self,
        inline: Option<&str>,
        file: Option<&Path>,
        key: &str,
        near: Option<Range<usize>>,
    ) -> Result<Option<Secret>, ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                Err(self.key_err(key, format!("give either {key} or {key}_file, not both")))
            }
            (Some(s), None) => {
                if !is_env_reference(s) {
                    self.inline_secret.set(true);
                }
                let v = self.expand(s, key, near)?;
                if v.is_empty() {
                    self.warnings.borrow_mut().push(format!(
                        "{key}: the secret is empty (an unset or empty environment variable?)"
                    ));
                }
                Ok(Some(Secret::new(v)))
            }
            (None, Some(p)) => {
                let p = PathBuf::from(self.expand(&p.to_string_lossy(), key, near)?);
                let s = std::fs::read_to_string(&p).map_err(|e| {
                    self.key_err(
                        &format!("{key}_file"),
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?;
                Ok(Some(Secret::new(s.trim_end_matches(['\n', '\r']))))
            }
            (None, None) => Ok(None),
        }
    }

    fn url(&self, s: &str, key: &str, span: Range<usize>) -> Result<reqwest::Url, ConfigError> {
        let expanded = self.expand(s, key, Some(span.clone()))?;
        let u = reqwest::Url::parse(&expanded)
            .map_err(|e| self.at(span.clone(), key, format!("invalid URL: {e}")))?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err(self.at(span, key, "URL must start with http:// or https://"));
        }
        if u.host_str().is_none() {
            return Err(self.at(span, key, "URL has no host"));
        }
        Ok(u)
    }

    /// Source and sink names become label values and URL path parts: keep them plain.
    pub(super) fn check_name(
        &self,
        name: &str,
        prefix: &str,
        span: Range<usize>,
    ) -> Result<(), ConfigError> {
        // Names become directory names (a sink's queue) too: `..` or `.x` must not pass.
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if ok {
            Ok(())
        } else {
            Err(self.locate(
                &format!("\"{name}\""),
                &format!("{prefix}.name"),
                Some(span),
                format!("invalid name {name:?}: use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"),
            ))
        }
    }
}

/// One `[[source]]` or `[[sink]]` table being validated: its keys are named
/// `<section>.<name>.<key>` in errors, and positions are searched from its table.
pub struct Section<'a> {
    pub(super) ctx: &'a Ctx<'a>,
    /// `source.<name>` or `sink.<name>`.
    pub(super) prefix: String,
    pub(super) span: Range<usize>,
    /// The component's `name`.
    pub name: String,
    /// The `[relay]` section, validated first, for defaults such as the poll interval.
    pub relay: &'a RelayConfig,
}

impl Section<'_> {
    /// The full name of key `sub` of this table, as errors show it.
    pub fn key(&self, sub: &str) -> String {
        format!("{}.{sub}", self.prefix)
    }

    /// `${VAR}` expanded in the value of key `sub`.
    pub fn expand(&self, value: &str, sub: &str) -> Result<String, ConfigError> {
        self.ctx
            .expand(value, &self.key(sub), Some(self.span.clone()))
    }

    /// An optional secret: key `sub` (inline or `${VAR}`) or `sub_file`, not both.
    pub fn secret(
        &self,
        inline: Option<&str>,
        file: Option<&Path>,
        sub: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        self.ctx
            .secret(inline, file, &self.key(sub), Some(self.span.clone()))
    }

    /// [`Section::secret`] for a secret that must be given: `missing` is the error when
    /// neither is.
    pub fn required_secret(
        &self,
        inline: Option<&str>,
        file: Option<&Path>,
        sub: &str,
        missing: &str,
    ) -> Result<Secret, ConfigError> {
        self.secret(inline, file, sub)?
            .ok_or_else(|| self.error(sub, missing))
    }

    /// An `http://` or `https://` URL with a host, from key `sub`.
    pub fn url(&self, value: &str, sub: &str) -> Result<reqwest::Url, ConfigError> {
        self.ctx.url(value, &self.key(sub), self.span.clone())
    }

    /// An error about key `sub`.
    /// An error about key `sub` (`rate_limit.samples_per_second` for a nested one), located
    /// where the key is written in this table, else at the table.
    pub fn error(&self, sub: &str, message: impl Into<String>) -> ConfigError {
        let leaf = sub.rsplit('.').next().unwrap_or(sub);
        let span = match self.key_position(leaf) {
            Some(p) => p..p + leaf.len(),
            None => self.span.clone(),
        };
        self.ctx.at(span, &self.key(sub), message)
    }

    /// Where key `leaf` is written in this table (`leaf = …`, also inside an inline table).
    fn key_position(&self, leaf: &str) -> Option<usize> {
        let text = self.ctx.text;
        let start = self.span.start.min(text.len());
        // The table runs from its header to the next header (its span may cover the header
        // only).
        let header_end = text[start..]
            .find('\n')
            .map_or(text.len(), |i| start + i + 1);
        let end = text[header_end..]
            .find("\n[")
            .map_or(text.len(), |i| header_end + i + 1)
            .max(self.span.end.min(text.len()));
        let body = &text[start..end];
        let mut from = 0;
        while let Some(i) = body[from..].find(leaf) {
            let at = from + i;
            let before = at.checked_sub(1).map(|b| body.as_bytes()[b]);
            let after = body[at + leaf.len()..].trim_start_matches([' ', '\t']);
            if matches!(
                before,
                None | Some(b' ' | b'\t' | b'\n' | b'{' | b',' | b'.')
            ) && after.starts_with('=')
            {
                return Some(start + at);
            }
            from = at + leaf.len();
        }
        None
    }

    /// A source's `timeout`: as given (else `default`), at most its `interval`; a given
    /// timeout longer than the interval is cut and warned about.
    pub fn source_timeout(
        &self,
        given: Option<std::time::Duration>,
        default: std::time::Duration,
        interval: std::time::Duration,
    ) -> std::time::Duration {
        if let Some(t) = given.filter(|t| *t > interval) {
            self.warn(format!(
                "timeout ({}) is longer than interval ({}): a poll may not outlast the next one, so it is cut to the interval",
                humantime::format_duration(t),
                humantime::format_duration(interval)
            ));
        }
        given.unwrap_or(default).min(interval)
    }

    /// A line to log at start-up: the setting works but is probably not meant.
    pub fn warn(&self, message: impl Into<String>) {
        self.ctx
            .warnings
            .borrow_mut()
            .push(format!("{}: {}", self.prefix, message.into()));
    }

    /// Warns about what travels unprotected to `url`: anything when certificates are not
    /// checked, and credentials (`http`'s auth, or the component's own secret) over plain
    /// `http://` to a host other than this one.
    pub fn check_transport(&self, url: &reqwest::Url, http: &super::HttpConfig, own_secret: bool) {
        if http.tls.insecure_skip_verify {
            self.warn("tls.insecure_skip_verify = true: the server's certificate is not checked, so anyone on the path can read and change what is sent, credentials included");
        }
        let credentials = own_secret || http.basic_auth.is_some() || http.bearer_token.is_some();
        let host = url.host_str().unwrap_or("");
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        if credentials && matches!(url.scheme(), "http" | "mqtt") && !loopback {
            self.warn(format!(
                "credentials are sent in clear text over {}:// to {}; use {}s:// where the server offers it",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.scheme()
            ));
        }
    }

    /// Notes that a secret-looking value (a header) is written in the file itself.
    pub(super) fn note_inline_secret(&self, value: &str) {
        if !is_env_reference(value) {
            self.ctx.inline_secret.set(true);
        }
    }

    /// An error about the table as a whole.
    pub fn error_here(&self, message: impl Into<String>) -> ConfigError {
        self.ctx.key_err(&self.prefix, message)
    }

    /// An error about key `sub`, located at `span` (a value's position from stage one).
    pub fn error_at_span(
        &self,
        span: Range<usize>,
        sub: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.ctx.at(span, &self.key(sub), message)
    }

    /// An error about key `sub`, located at the start of this table.
    pub fn error_at_table(&self, sub: &str, message: impl Into<String>) -> ConfigError {
        self.ctx.at(self.span.clone(), &self.key(sub), message)
    }

    /// An error about key `sub`, located where `needle` is written in this table.
    pub fn error_at_text(
        &self,
        needle: &str,
        sub: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.ctx.locate(
            needle,
            &self.key(sub),
            Some(self.span.clone()),
            message.into(),
        )
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" with the nearest known key named
/// (`monitored_clients` → `clients`), when one is near enough.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((unknown, rest)) = rest.split_once('`') else {
        return message.to_string();
    };
    let known: Vec<&str> = rest
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, k)| k)
        .collect();
    let u = unknown.to_ascii_lowercase();
    let score = |k: &str| {
        let k = k.to_ascii_lowercase();
        if k.len() >= 4 && (u.contains(&k) || k.contains(&u)) {
            1.0
        } else {
            strsim::jaro_winkler(&u, &k)
        }
    };
    let best = known
        .iter()
        .map(|k| (score(k), *k))
        .filter(|(s, _)| *s >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("{message}; did you mean `{k}`?"),
        None => message.to_string(),
    }
}

/// `message` with the text of every double-quoted string replaced by `<redacted>`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    let mut escaped = false;
    for c in message.chars() {
        if in_quotes {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    out.push_str("<redacted>\"");
                    in_quotes = false;
                }
                _ => escaped = false,
            }
        } else {
            out.push(c);
            if c == '"' {
                in_quotes = true;
            }
        }
    }
    if in_quotes {
        out.push_str("<redacted>");
    }
    out
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[line_start..pos].chars().count() + 1)
}

/// Names the key an error at byte `pos` is about: the table header in force plus the key on
/// that line (or the unknown field the message names).
fn key_at(text: &str, pos: usize, message: &str) -> String {
    let pos = pos.min(text.len());
    let line_start = text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[pos..]
        .find('\n')
        .map(|i| i + pos)
        .unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let mut table = String::new();
    for l in text[..line_start].lines().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            break;
        }
    }
    let mut key = if line.trim_start().starts_with('[') {
        line.trim()
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string()
    } else {
        line.split('=').next().unwrap_or("").trim().to_string()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            key = rest[..end].to_string();
        }
    }
    match (table.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".to_string(),
        (true, false) => key,
        (false, true) => table,
        (false, false) if key == table => key,
        (false, false) => format!("{table}.{key}"),
    }
}
