//! The HTTP/TLS block every component that makes requests shares: auth, extra headers, TLS and
//! the request timeout, read from the file as [`RawHttp`] and validated into [`HttpConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::units::ser_duration;
use super::{header_looks_secret, ConfigError, Secret, Section};

/// HTTP client settings shared by every component that makes requests.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct HttpConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(serialize_with = "ser_headers")]
    pub headers: Vec<(String, String)>,
    pub tls: TlsConfig,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Prints headers as a table, with secret-looking values redacted.
pub fn ser_headers<S: Serializer>(h: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(h.iter().map(|(k, v)| {
        let shown = if header_looks_secret(k) {
            "<redacted>"
        } else {
            v.as_str()
        };
        (k, shown)
    }))
}

/// The shared HTTP keys of a component's table, as written. The registry takes them out of the
/// table before the component's own raw struct reads the rest (serde cannot deny unknown keys
/// through `flatten`), so only the keys the component accepts ever reach here.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    basic_auth: Option<RawBasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

impl Section<'_> {
    /// Validates a component's HTTP block: secrets resolved, headers checked (none of
    /// `reserved_headers`, which pushrelay sets itself, and no `Authorization` beside
    /// configured auth), the CA file present.
    pub fn http(
        &self,
        raw: RawHttp,
        timeout: Duration,
        reserved_headers: &[&str],
    ) -> Result<HttpConfig, ConfigError> {
        let basic_auth = match raw.basic_auth {
            Some(b) => {
                let password = self.required_secret(
                    b.password.as_deref(),
                    b.password_file.as_deref(),
                    "basic_auth.password",
                    "basic_auth needs password or password_file",
                )?;
                Some(BasicAuth {
                    username: self.expand(&b.username, "basic_auth.username")?,
                    password,
                })
            }
            None => None,
        };
        let bearer_token = self.secret(
            raw.bearer_token.as_deref(),
            raw.bearer_token_file.as_deref(),
            "bearer_token",
        )?;
        if basic_auth.is_some() && bearer_token.is_some() {
            return Err(self.error_here("give basic_auth or bearer_token, not both"));
        }
        let mut hs = Vec::new();
        for (k, v) in raw.headers {
            let sub = format!("headers.{k}");
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(self.error_at_text(&k, &sub, "invalid header name"));
            }
            let lower = k.to_ascii_lowercase();
            let auth_set = basic_auth.is_some() || bearer_token.is_some();
            if reserved_headers.contains(&lower.as_str()) || (lower == "authorization" && auth_set)
            {
                return Err(self.error_at_text(
                    &k,
                    &sub,
                    format!("header {k} is set by pushrelay and may not be overridden"),
                ));
            }
            if header_looks_secret(&k) {
                self.note_inline_secret(&v);
            }
            let v = self.expand(&v, &sub)?;
            if reqwest::header::HeaderValue::from_str(&v).is_err() {
                return Err(self.error(&sub, "invalid header value"));
            }
            hs.push((k, v));
        }
        let tls = match raw.tls {
            Some(t) => TlsConfig {
                ca_file: t.ca_file,
                insecure_skip_verify: t.insecure_skip_verify,
            },
            None => TlsConfig::default(),
        };
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca).map_err(|_| {
                self.error(
                    "tls.ca_file",
                    format!("{} is not a readable file", ca.display()),
                )
            })?;
            // Refused here, at start-up, rather than as `UnknownIssuer` on the first request.
            match reqwest::Certificate::from_pem_bundle(&pem) {
                Ok(certs) if !certs.is_empty() => {}
                _ => {
                    return Err(self.error(
                        "tls.ca_file",
                        format!(
                            "{} holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" block)",
                            ca.display()
                        ),
                    ))
                }
            }
        }
        Ok(HttpConfig {
            basic_auth,
            bearer_token,
            headers: hs,
            tls,
            timeout,
        })
    }
}
