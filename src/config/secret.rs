//! Secrets and what may be shown of them: [`Secret`] never prints its value, [`redact_url`]
//! hides a URL's user info, and secret-looking header values are redacted when printed.

use std::fmt;

use serde::{Serialize, Serializer};

/// A secret string: a password, token or key. Never printed, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself; call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Header names whose values are credentials and must not be printed.
pub fn header_looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["auth", "token", "key", "secret", "cookie", "password"]
        .iter()
        .any(|w| n.contains(w))
}

/// The URL as it may appear in a log line or printed config: any user info replaced, and the
/// value of every query parameter (`?token=…` is a common way to pass a key), with the names
/// kept so the URL still says what it asks.
pub fn redact_url(u: &reqwest::Url) -> String {
    let has_query_values = u.query_pairs().any(|(_, v)| !v.is_empty());
    if u.username().is_empty() && u.password().is_none() && !has_query_values {
        return u.to_string();
    }
    let mut u = u.clone();
    if !u.username().is_empty() || u.password().is_some() {
        // Setting user info only fails for URLs that cannot have it, and those have none.
        let _ = u.set_username("redacted");
        let _ = u.set_password(None);
    }
    if has_query_values {
        let pairs: Vec<(String, bool)> = u
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), !v.is_empty()))
            .collect();
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, had_value) in pairs {
            q.append_pair(&k, if had_value { "redacted" } else { "" });
        }
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_and_query_values_are_hidden() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            redact_url(&u("https://user:pw@h.example/p?token=abc&page=2&flag")),
            "https://redacted@h.example/p?token=redacted&page=redacted&flag="
        );
        assert_eq!(redact_url(&u("http://h:9/metrics")), "http://h:9/metrics");
    }
}
