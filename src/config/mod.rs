//! Configuration: the TOML file read in two stages, raw (serde, with positions) then validated.
//!
//! Stage one deserializes the text into raw structs that deny unknown keys, so a typo, a wrong
//! type or a bad duration fails with the file, line, column and key. Stage two checks what
//! serde cannot (URLs, unique names, secrets from `${ENV}` or `*_file`) and produces
//! [`Config`], which the rest of the program trusts. Secrets live in [`Secret`], whose `Debug`
//! and `Serialize` never show the value, so they cannot reach a log line or `pushrelay config`.
//!
//! This module holds the `[relay]` section and the shared pieces ([`Secret`], `${ENV}`, durations,
//! sizes, the HTTP/TLS block); each source and sink owns its own table's structs and
//! validation (its `config.rs`), registered by one line in [`registry`].

mod http;
mod reader;
pub mod registry;
mod secret;
pub mod units;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use http::{ser_headers, BasicAuth, HttpConfig, RawBasicAuth, RawHttp, RawTls, TlsConfig};
pub use reader::{line_col, Ctx, Section};
pub use registry::{printable, Component, ComponentType, HttpKeys};
pub use secret::{header_looks_secret, redact_url, Secret};
pub use units::{parse_duration, parse_size};

use crate::model::{is_valid_label_name, Labels};
use crate::sinks::SinkSpec;
use crate::sources::SourceSpec;
use reader::de_value;
use units::{de_duration_opt, ser_duration, ser_labels};

/// Name of the pseudo-source that carries the relay's own metrics; no source may take it.
pub const SELF_JOB: &str = "pushrelay";

/// A configuration error, located in the file where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {key}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{file}: {key}: {message}")]
    Key {
        file: String,
        key: String,
        message: String,
    },
    /// Several of the above, one per line: every error a file has is reported at once.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<ConfigError>),
}

/// The errors found so far while reading a file.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    /// Keeps `r`'s value, or its error for the report.
    fn keep<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    /// `value` if nothing went wrong, else every error (one, or [`ConfigError::Many`]).
    fn finish<T>(mut self, value: T) -> Result<T, ConfigError> {
        match self.0.len() {
            0 => Ok(value),
            1 => Err(self.0.remove(0)),
            _ => Err(ConfigError::Many(self.0)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration: what the rest of the program uses.

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings that work but are probably not meant, each a line to log at start-up.
    pub warnings: Vec<String>,
    pub relay: RelayConfig,
    /// Each `[[source]]`, in file order.
    pub sources: Vec<Arc<dyn SourceSpec>>,
    /// Each `[[sink]]`, in file order.
    pub sinks: Vec<Arc<dyn SinkSpec>>,
}

/// `pushrelay config` prints the file it would read back as the same configuration.
impl Serialize for Config {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        let sources = self
            .sources
            .iter()
            .map(|c| c.printable())
            .collect::<Result<Vec<_>, _>>()
            .map_err(S::Error::custom)?;
        let sinks = self
            .sinks
            .iter()
            .map(|c| c.printable())
            .collect::<Result<Vec<_>, _>>()
            .map_err(S::Error::custom)?;
        let mut st = s.serialize_struct("Config", 3)?;
        st.serialize_field("relay", &self.relay)?;
        st.serialize_field("source", &sources)?;
        st.serialize_field("sink", &sinks)?;
        st.end()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelayConfig {
    /// Default poll interval of every source.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Added to every series pushed, never overriding a series' own label.
    #[serde(serialize_with = "ser_labels")]
    pub external_labels: Labels,
    /// Where durable state (queues, source state) lives.
    pub state_dir: PathBuf,
    /// Optional address for the status page, `/metrics`, `/-/healthy` and `/-/ready`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `/-/ready` answers 200 only if every sink delivered within this window.
    #[serde(serialize_with = "ser_duration")]
    pub ready_window: Duration,
    /// How long a clean shutdown may spend finishing in-flight sends.
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_timeout: Duration,
}

// ---------------------------------------------------------------------------------------------
// Raw configuration: exactly the file's shape.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    #[serde(default, deserialize_with = "de_duration_opt")]
    interval: Option<Duration>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    state_dir: Option<PathBuf>,
    listen: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    ready_window: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    shutdown_timeout: Option<Duration>,
}

/// One `[[source]]`/`[[sink]]` after stage one: where it is, its name, its type's entry and
/// its raw struct (dispatched by hand on `type`: serde's tagged enums would buffer the input
/// and lose the positions errors need).
struct RawComponent<S: ?Sized + 'static> {
    span: Range<usize>,
    name: String,
    kind: &'static ComponentType<S>,
    raw: Box<dyn std::any::Any>,
}

/// The file's three sections.
struct RawConfig {
    /// `None` if `[relay]` itself failed stage one.
    relay: Option<RawRelay>,
    source: Vec<RawComponent<dyn SourceSpec>>,
    sink: Vec<RawComponent<dyn SinkSpec>>,
}

// ---------------------------------------------------------------------------------------------
// Loading and validation.

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    let (mut cfg, inline_secret) =
        parse_noting_secrets(&text, &path.display().to_string(), &|k| {
            std::env::var(k).ok()
        })?;
    if inline_secret && others_can_read(path) {
        cfg.warnings.push(format!(
            "{} holds secrets and other users can read it: chmod 640 (or 600) it, or move the secrets to ${{ENV}} references or *_file paths",
            path.display()
        ));
    }
    Ok(cfg)
}

/// Whether users other than the owner and group may read the file.
fn others_can_read(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Parses and validates configuration `text`; `file` names it in errors and `env` resolves
/// `${VAR}` references (the process environment in production, a map in tests).
pub fn parse(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_noting_secrets(text, file, env).map(|(c, _)| c)
}

/// [`parse`], also saying whether a secret is written in the text itself.
fn parse_noting_secrets(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, bool), ConfigError> {
    let ctx = Ctx {
        text,
        file,
        env,
        warnings: Default::default(),
        inline_secret: Default::default(),
    };
    let mut errors = Errors::default();
    let raw = parse_raw(&ctx, &mut errors)?;
    let cfg = validate(&ctx, raw, &mut errors);
    let mut cfg = errors
        .finish(cfg)?
        .expect("no errors means a configuration");
    cfg.warnings = ctx.warnings.take();
    Ok((cfg, ctx.inline_secret.get()))
}

/// Stage one: the text into raw sections, dispatching `[[source]]`/`[[sink]]` on `type`. A
/// TOML syntax error ends it; any other error is kept and the rest read on.
fn parse_raw(ctx: &Ctx<'_>, errors: &mut Errors) -> Result<RawConfig, ConfigError> {
    let root = DeTable::parse(ctx.text).map_err(|e| ctx.toml_error(&e))?;
    let mut raw = RawConfig {
        relay: Some(RawRelay::default()),
        source: Vec::new(),
        sink: Vec::new(),
    };
    for (k, v) in root.get_ref().iter() {
        let key: &str = k.get_ref();
        match key {
            "relay" => raw.relay = errors.keep(de_value(v).map_err(|e| ctx.toml_error(&e))),
            "source" => raw.source = components(ctx, key, v, registry::SOURCE_TYPES, errors),
            "sink" => raw.sink = components(ctx, key, v, registry::SINK_TYPES, errors),
            other => errors.0.push(ctx.at(
                k.span(),
                other,
                format!("unknown section `{other}`, expected `relay`, `source` or `sink`"),
            )),
        }
    }
    Ok(raw)
}

/// Stage one of an array of component tables (`[[source]]`): each read by its type's entry;
/// a table with an error is left out (its error kept).
fn components<S: ?Sized>(
    ctx: &Ctx<'_>,
    section: &str,
    v: &Spanned<DeValue<'_>>,
    types: &'static [ComponentType<S>],
    errors: &mut Errors,
) -> Vec<RawComponent<S>> {
    let items = match v.get_ref() {
        DeValue::Array(items) if items.iter().all(|i| i.get_ref().is_table()) => items,
        _ => {
            errors.0.push(ctx.at(
                v.span(),
                section,
                format!("`{section}` must be written as [[{section}]] tables"),
            ));
            return Vec::new();
        }
    };
    items
        .iter()
        .filter_map(|elem| errors.keep(component(ctx, section, elem, types)))
        .collect()
}

/// Stage one of one component table.
fn component<S: ?Sized>(
    ctx: &Ctx<'_>,
    section: &str,
    elem: &Spanned<DeValue<'_>>,
    types: &'static [ComponentType<S>],
) -> Result<RawComponent<S>, ConfigError> {
    let known: Vec<&str> = types.iter().map(|t| t.name).collect();
    let table = elem.get_ref().as_table().expect("checked by components()");
    let Some(t) = table.get("type") else {
        return Err(ctx.at(
            elem.span(),
            section,
            format!("missing `type`, expected one of: {}", known.join(", ")),
        ));
    };
    let kind = match t.get_ref().as_str() {
        Some(s) => types.iter().find(|k| k.name == s).ok_or_else(|| {
            ctx.at(
                t.span(),
                &format!("{section}.type"),
                format!(
                    "unknown {section} type {s:?}, expected one of: {}",
                    known.join(", ")
                ),
            )
        })?,
        None => {
            return Err(ctx.at(
                t.span(),
                &format!("{section}.type"),
                "`type` must be a string",
            ))
        }
    };
    let raw = (kind.parse)(elem).map_err(|e| ctx.error_at_span(&e.message, e.span))?;
    // Every raw struct has a required string `name`, so stage one checked it is there.
    let name = table
        .get("name")
        .and_then(|n| n.get_ref().as_str())
        .unwrap_or_default()
        .to_string();
    Ok(RawComponent {
        span: elem.span(),
        name,
        kind,
        raw,
    })
}

/// Stage two: the relay section, then every component through its type's validation; `None`
/// if anything failed (the errors are in `errors`).
fn validate(ctx: &Ctx<'_>, raw: RawConfig, errors: &mut Errors) -> Option<Config> {
    let relay = raw.relay.and_then(|r| errors.keep(validate_relay(ctx, r)));
    // With a broken [relay], components are still checked (against its defaults), so every
    // error is reported at once.
    let defaults = || validate_relay(ctx, RawRelay::default()).expect("defaults are valid");
    let for_components = relay.clone().unwrap_or_else(defaults);
    let sources = validate_components(ctx, "source", raw.source, &for_components, errors);
    let sinks = validate_components(ctx, "sink", raw.sink, &for_components, errors);
    Some(Config {
        warnings: Vec::new(),
        relay: relay?,
        sources,
        sinks,
    })
}

fn validate_relay(ctx: &Ctx<'_>, r: RawRelay) -> Result<RelayConfig, ConfigError> {
    let interval = r.interval.unwrap_or(Duration::from_secs(30));
    let mut external = Vec::new();
    for (k, v) in &r.external_labels {
        let key = format!("relay.external_labels.{k}");
        if !is_valid_label_name(k) || k.starts_with("__") {
            return Err(ctx.locate(k, &key, None, format!("invalid label name {k:?}")));
        }
        external.push((k.clone(), ctx.expand(v, &key, None)?));
    }
    // Names were checked one by one above and map keys are unique, so this cannot fail.
    let external_labels = Labels::from_pairs(external).expect("checked label names");
    let listen = match r.listen {
        Some(l) => {
            let v = ctx.expand(l.get_ref(), "relay.listen", Some(l.span()))?;
            Some(v.parse::<SocketAddr>().map_err(|_| {
                ctx.at(
                    l.span(),
                    "relay.listen",
                    format!("invalid address {v:?}; use e.g. \"127.0.0.1:9714\""),
                )
            })?)
        }
        None => None,
    };
    Ok(RelayConfig {
        interval,
        external_labels,
        state_dir: r
            .state_dir
            .unwrap_or_else(|| PathBuf::from("./pushrelay-state")),
        listen,
        ready_window: r.ready_window.unwrap_or(Duration::from_secs(300)),
        shutdown_timeout: r.shutdown_timeout.unwrap_or(Duration::from_secs(10)),
    })
}

/// Validates each component of one section: a plain name, its own rules, a unique name (and
/// no source may take the relay's own job name). A component with an error is left out (its
/// error kept).
fn validate_components<S: ?Sized>(
    ctx: &Ctx<'_>,
    section: &str,
    raws: Vec<RawComponent<S>>,
    relay: &RelayConfig,
    errors: &mut Errors,
) -> Vec<Arc<S>> {
    let mut out: Vec<Arc<S>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for rc in raws {
        let prefix = format!("{section}.{}", rc.name);
        if errors
            .keep(ctx.check_name(&rc.name, &prefix, rc.span.clone()))
            .is_none()
        {
            continue;
        }
        let name = rc.name.clone();
        let sec = Section {
            ctx,
            prefix,
            span: rc.span,
            name: rc.name,
            relay,
        };
        let Some(c) = errors.keep((rc.kind.validate)(rc.raw, &sec)) else {
            continue;
        };
        if names.contains(&name) || (section == "source" && name == SELF_JOB) {
            errors.0.push(ctx.locate(
                &format!("\"{name}\""),
                &format!("{section}.{name}.name"),
                None,
                format!("{section} name {name:?} is already used"),
            ));
            continue;
        }
        names.push(name);
        out.push(c);
    }
    out
}

/// This machine's host name, the default `relay` grouping label.
pub fn host_name() -> String {
    for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "pushrelay".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "TOKEN" => Some("s3cret".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse_ok(t: &str) -> Config {
        parse(t, "test.toml", &env).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(t: &str) -> String {
        parse(t, "test.toml", &env).unwrap_err().to_string()
    }

    const FULL: &str = r#"
[relay]
interval = "30s"
external_labels = { site = "home" }
state_dir = "./pushrelay-state"
listen = "127.0.0.1:9714"

[[source]]
type = "scrape"
name = "node"
url = "http://127.0.0.1:9100/metrics"
interval = "15s"
timeout = "10s"

[[sink]]
type = "remote_write"
name = "grafana"
url = "https://prometheus-prod-01-eu-west-0.grafana.net/api/prom/push"
basic_auth = { username = "123456", password = "${TOKEN}" }
headers = { "X-Scope-OrgID" = "home" }
max_samples_per_send = 2000
batch_wait = "5s"
rate_limit = { requests_per_second = 2.0, samples_per_second = 10000 }
tls = { insecure_skip_verify = false }
buffer = { max_bytes = "64MiB", max_age = "1h", fsync = "always" }

[[sink]]
type = "pushgateway"
name = "pgw"
url = "http://pushgateway:9091"
relay = "pi-gw-1"
delete_on_shutdown = false
"#;

    #[test]
    fn full_example_parses() {
        let c = parse_ok(FULL);
        assert_eq!(c.relay.interval, Duration::from_secs(30));
        assert_eq!(c.relay.external_labels.get("site"), Some("home"));
        assert_eq!(c.sources.len(), 1);
        let scrape = c.sources[0]
            .downcast_ref::<crate::sources::scrape::ScrapeConfig>()
            .unwrap();
        assert_eq!(scrape.interval, Duration::from_secs(15));
        let rw = c.sinks[0]
            .downcast_ref::<crate::sinks::remote_write::RemoteWriteConfig>()
            .unwrap();
        assert_eq!(
            rw.http.basic_auth.as_ref().unwrap().password.expose(),
            "s3cret"
        );
        assert_eq!(rw.rate_limit.samples_per_second, Some(10000));
        assert_eq!(rw.buffer.max_bytes, 64 << 20);
        assert_eq!(rw.buffer.fsync, crate::buffer::Fsync::Always);
        let pg = c.sinks[1]
            .downcast_ref::<crate::sinks::pushgateway::PushgatewayConfig>()
            .unwrap();
        assert_eq!(pg.relay, "pi-gw-1");
    }

    #[test]
    fn printed_config_has_no_secret() {
        let c = parse_ok(FULL);
        let s = toml::to_string(&c).unwrap();
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("<redacted>"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    /// `pushrelay config` prints a file that is itself a valid configuration (no key twice, no
    /// key the reader refuses), for every example and every source type.
    #[test]
    fn printed_config_reads_back_the_same() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) != Some("toml") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let env = |_: &str| Some("from-env".to_string());
            let name = p.display().to_string();
            let c = parse(&text, &name, &env).unwrap_or_else(|e| panic!("{e}"));
            let printed = toml::to_string(&c).unwrap();
            let again = parse(&printed, "printed", &env)
                .unwrap_or_else(|e| panic!("{name} printed as:\n{printed}\n{e}"));
            assert_eq!(toml::to_string(&again).unwrap(), printed, "{name}");
            seen += 1;
        }
        assert!(seen >= 4, "examples/*.toml: {seen}");
    }

    #[test]
    fn scrape_options_and_relabel_rules() {
        let base = "[[source]]\ntype = \"scrape\"\nname = \"n\"\nurl = \"http://x:1/m\"\n";
        let c = parse_ok(&format!(
            "{base}metrics_path = \"/probe\"\nparams = {{ module = [\"a\", \"b c\"] }}\nhonor_labels = true\nsample_limit = 5\nscrape_protocols = [\"PrometheusText0.0.4\"]\n[[source.metric_relabel_configs]]\nsource_labels = [\"__name__\"]\nregex = \"x\"\naction = \"keep\"\n"
        ));
        let s = c.sources[0]
            .downcast_ref::<crate::sources::scrape::ScrapeConfig>()
            .unwrap();
        assert_eq!(s.url.as_str(), "http://x:1/probe?module=a&module=b+c");
        assert!(s.honor_labels && s.honor_timestamps);
        assert_eq!(s.sample_limit, 5);
        assert_eq!(
            s.scrape_protocols,
            [crate::expfmt::negotiate::ScrapeProtocol::PrometheusText0_0_4]
        );
        assert_eq!(c.sources[0].series_rules().relabel.len(), 1);
        let e = parse_err(&format!(
            "{base}[[source.metric_relabel_configs]]\naction = \"hashmod\"\nsource_labels = [\"a\"]\ntarget_label = \"b\"\n"
        ));
        assert!(
            e.starts_with("test.toml:5:1: source.n.metric_relabel_configs[0]: relabel action hashmod needs a non-zero modulus"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{base}[[source.metric_relabel_configs]]\nregex = \"(\"\n"
        ));
        assert!(
            e.contains("test.toml:5:1") && e.contains("invalid regex"),
            "{e}"
        );
        let e = parse_err(&format!("{base}scrape_protocols = [\"PrometheusProto\"]\n"));
        assert!(
            e.starts_with("test.toml:5:20: source.n.scrape_protocols: PrometheusProto"),
            "{e}"
        );
        let e = parse_err(&format!("{base}metrics_path = \"probe\"\n"));
        assert!(
            e.starts_with("test.toml:5:16: source.n.metrics_path"),
            "{e}"
        );
        let e = parse_err(&format!("{base}sample_limit = -1\n"));
        assert!(e.contains("test.toml:5:16"), "{e}");
        // Relabelling is for every source type.
        let e = parse_err("[[source]]\ntype = \"linkhub\"\nname = \"l\"\nurl = \"http://x\"\nrequest_key = \"k\"\n[[source.metric_relabel_configs]]\naction = \"bogus\"\n");
        assert!(
            e.contains("source.l.metric_relabel_configs[0]: unknown relabel action"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_located() {
        let e = parse_err("[relay]\ninterval = \"30s\"\nintervall = \"5s\"\n");
        assert!(
            e.starts_with("test.toml:3:1: relay.intervall: unknown field"),
            "{e}"
        );
        let e = parse_err(
            "[[sink]]\ntype = \"pushgateway\"\nname = \"p\"\nurl = \"http://x:1\"\nfoo = 1\n",
        );
        assert!(e.contains("test.toml:") && e.contains("foo"), "{e}");
    }

    #[test]
    fn every_error_is_reported_at_once_with_suggestions() {
        let e = parse_err(
            "[relay]\ninterval = 60\n\n[[source]]\ntype = \"emqx\"\nname = \"e\"\nurl = \"http://x:1\"\napi_key = \"k\"\napi_secret = \"s\"\nmonitored_clients = []\n\n[[sink]]\ntype = \"remote_write\"\nname = \"..\"\nurl = \"http://x:1\"\n",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0]
                .starts_with("test.toml:2:12: relay.interval: expected a duration such as \"60s\""),
            "{e}"
        );
        assert!(
            lines[1].starts_with(
                "test.toml:10:1: source.monitored_clients: unknown field `monitored_clients`"
            ) && lines[1].ends_with("did you mean `clients`?"),
            "{e}"
        );
        assert!(lines[2].contains("invalid name \"..\""), "{e}");
    }

    #[test]
    fn settings_that_cannot_be_meant_warn() {
        let c = parse_ok(
            "[relay]\ninterval = \"10s\"\n\n[[source]]\ntype = \"scrape\"\nname = \"n\"\nurl = \"http://127.0.0.1:1/m\"\ntimeout = \"30s\"\nbearer_token = \"${EMPTY}\"\n\n[[source]]\ntype = \"emqx\"\nname = \"e\"\nurl = \"http://127.0.0.1:1\"\napi_key = \"k\"\napi_secret = \"s\"\nenable_processed_counters = false\nenable_qos_split = true\n",
        );
        let w = c.warnings.join("\n");
        assert!(
            w.contains("source.n: timeout (30s) is longer than interval (10s)"),
            "{w}"
        );
        assert!(
            w.contains("source.n.bearer_token: the secret is empty"),
            "{w}"
        );
        assert!(
            w.contains("source.e: enable_qos_split needs enable_processed_counters"),
            "{w}"
        );
        assert_eq!(c.warnings.len(), 3, "{w}");
    }

    /// A value that parses but a component refuses is located too: at the key where it is
    /// written (also inside an inline table).
    #[test]
    fn refused_values_name_line_and_column() {
        let sink = "[[source]]\ntype = \"scrape\"\nname = \"n\"\nurl = \"http://127.0.0.1:1/m\"\n\n[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"http://127.0.0.1:2/w\"\n";
        let e = parse_err(&format!("{sink}profile = \"meterd\"\n"));
        assert!(
            e.starts_with("test.toml:10:1: sink.rw.profile: unknown profile `meterd`"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{sink}rate_limit = {{ samples_per_second = 0 }}\n"
        ));
        assert!(
            e.starts_with("test.toml:10:16: sink.rw.rate_limit.samples_per_second: must be"),
            "{e}"
        );
    }

    #[test]
    fn bad_duration_located() {
        let e = parse_err("[relay]\ninterval = \"30 parsecs\"\n");
        assert!(
            e.starts_with("test.toml:2:12: relay.interval: invalid duration"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_located() {
        let e = parse_err(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nmax_samples_per_send = \"many\"\n",
        );
        assert!(
            e.contains(":5:") && e.contains("max_samples_per_send"),
            "{e}"
        );
    }

    #[test]
    fn missing_env_names_it() {
        let e = parse_err(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nbearer_token = \"${NOPE}\"\n",
        );
        assert!(
            e.contains("test.toml:5:17") && e.contains("NOPE is not set"),
            "{e}"
        );
    }

    #[test]
    fn secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "filetoken\n").unwrap();
        let t = format!(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nbearer_token_file = \"{}\"\n",
            p.display()
        );
        let c = parse_ok(&t);
        let rw = c.sinks[0]
            .downcast_ref::<crate::sinks::remote_write::RemoteWriteConfig>()
            .unwrap();
        assert_eq!(rw.http.bearer_token.as_ref().unwrap().expose(), "filetoken");
    }

    #[test]
    fn reserved_header_refused() {
        let e = parse_err(
            "[[sink]]\ntype = \"remote_write\"\nname = \"a\"\nurl = \"http://x:1\"\nheaders = { \"Content-Encoding\" = \"gzip\" }\n",
        );
        assert!(
            e.contains("may not be overridden") && e.contains(":5:"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_names_and_bad_urls() {
        let e = parse_err(
            "[[source]]\ntype = \"scrape\"\nname = \"a\"\nurl = \"http://x:1/m\"\n[[source]]\ntype = \"scrape\"\nname = \"a\"\nurl = \"http://y:1/m\"\n",
        );
        assert!(e.contains("already used"), "{e}");
        let e = parse_err("[[source]]\ntype = \"scrape\"\nname = \"a\"\nurl = \"ftp://x/m\"\n");
        assert!(e.contains("test.toml:1:") && e.contains("http://"), "{e}");
        let e = parse_err("[[source]]\ntype = \"snmp\"\nname = \"a\"\n");
        assert!(e.contains("test.toml:") && e.contains("snmp"), "{e}");
    }
}
