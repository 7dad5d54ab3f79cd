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

/// The URL as it may appear in a log line: any user info replaced.
pub fn redact_url(u: &reqwest::Url) -> String {
    if u.username().is_empty() && u.password().is_none() {
        return u.to_string();
    }
    let mut u = u.clone();
    // Setting user info only fails for URLs that cannot have it, and those have none to hide.
    let _ = u.set_username("redacted");
    let _ = u.set_password(None);
    u.to_string()
}
