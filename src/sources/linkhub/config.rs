//! `type = "linkhub"`: the table of an Alcatel/TCL router source, raw and validated.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::{de_duration_opt, ser_duration, ser_url};
use crate::config::{Component, ConfigError, HttpConfig, HttpKeys, RawHttp, Secret, Section};
use crate::sources::{BuildContext, Source, SourceConfig};

/// `type = "linkhub"`: an Alcatel/TCL 4G router's JSON-RPC web API (see `sources::linkhub`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkhubConfig {
    pub name: String,
    /// The router's web UI, e.g. `http://192.168.1.1`.
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    /// `_TclRequestVerificationKey` (HH41: the credential; login models: the public key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_key: Option<Secret>,
    /// For models that log in (`Login` → `_TclRequestVerificationToken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Longest one poll may take. Not printed: `http.timeout` holds the same value and is
    /// flattened into the same table (printing both would repeat the `timeout` key).
    #[serde(skip_serializing)]
    pub timeout: Duration,
    /// Also emit linkhub-prometheus-exporter's unprefixed names.
    pub compat_names: bool,
    /// Headers, TLS and per-request timeout.
    #[serde(flatten)]
    pub http: HttpConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinkhub {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    request_key: Option<String>,
    request_key_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    #[serde(default)]
    compat_names: bool,
}

impl Component for LinkhubConfig {
    const TYPE: &'static str = "linkhub";
    const HTTP: HttpKeys = HttpKeys::Transport;
    type Raw = RawLinkhub;

    fn validate(s: RawLinkhub, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        let interval = s.interval.unwrap_or(Duration::from_secs(10));
        let timeout = sec.source_timeout(s.timeout, Duration::from_secs(5), interval);
        let request_key = sec.secret(
            s.request_key.as_deref(),
            s.request_key_file.as_deref(),
            "request_key",
        )?;
        let password = sec.secret(
            s.password.as_deref(),
            s.password_file.as_deref(),
            "password",
        )?;
        let username = match s.username {
            Some(u) => Some(sec.expand(&u, "username")?),
            None => None,
        };
        if password.is_some() && username.is_none() {
            return Err(sec.error("username", "password is set but username is not"));
        }
        if username.is_some() && password.is_none() {
            return Err(sec.error(
                "password",
                "username is set but neither password nor password_file is",
            ));
        }
        if request_key.is_none() {
            // Models that log in also send a key: the web UI's constant public key, which is
            // not known here, so it must be configured too.
            return Err(sec.error(
                "request_key",
                "a linkhub source needs request_key (or request_key_file): the HH41's key, or for models that log in (username/password) the web UI's public key",
            ));
        }
        let url = sec.url(&s.url, "url")?;
        let http = sec.http(
            http,
            timeout,
            &[
                "_tclrequestverificationkey",
                "_tclrequestverificationtoken",
                "content-type",
            ],
        )?;
        sec.check_transport(&url, &http, true);
        Ok(LinkhubConfig {
            url,
            request_key,
            username,
            password,
            interval,
            timeout,
            compat_names: s.compat_names,
            http,
            name: s.name,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl SourceConfig for LinkhubConfig {
    fn build(&self, ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
        Ok(Box::new(super::LinkhubSource::new(self.clone(), ctx)?))
    }
}
