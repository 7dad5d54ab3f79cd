//! The one table of component types. A source or sink is its own folder, with a `config.rs`
//! that implements [`Component`] (and [`SourceConfig`](crate::sources::SourceConfig) or
//! [`SinkConfig`](crate::sinks::SinkConfig)); registering it is one line in [`SOURCE_TYPES`]
//! or [`SINK_TYPES`]. Reading the file dispatches each `[[source]]`/`[[sink]]` on its `type`
//! through these tables, so nothing else in `config` knows the components.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::de::DeValue;
use toml::Spanned;

use super::reader::de_value;
use super::{ConfigError, RawHttp, Section};
use crate::relabel::RawRelabelConfig;
use crate::sinks::{SinkConfig, SinkSpec};
use crate::sources::{Configured, SourceConfig, SourceSpec};

/// Every source type, by its `type` name.
pub const SOURCE_TYPES: &[ComponentType<dyn SourceSpec>] = &[
    ComponentType::source::<crate::sources::scrape::ScrapeConfig>(),
    ComponentType::source::<crate::sources::ttn::TtnConfig>(),
    ComponentType::source::<crate::sources::emqx::EmqxConfig>(),
    ComponentType::source::<crate::sources::linkhub::LinkhubConfig>(),
    ComponentType::source::<crate::sources::ttn_devices::TtnDevicesConfig>(),
];

/// Every sink type, by its `type` name.
pub const SINK_TYPES: &[ComponentType<dyn SinkSpec>] = &[
    ComponentType::sink::<crate::sinks::remote_write::RemoteWriteConfig>(),
    ComponentType::sink::<crate::sinks::pushgateway::PushgatewayConfig>(),
];

/// A component's validated configuration, read from its table in two stages: serde into
/// [`Component::Raw`] (the file's shape, denying unknown keys) and [`RawHttp`] (the shared HTTP
/// keys it accepts, see [`HttpKeys`]), then [`Component::validate`].
/// `PartialEq` lets a reload tell an unchanged component (kept running) from a changed one.
pub trait Component: Serialize + fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The `type = "..."` value that selects it.
    const TYPE: &'static str;
    /// Which shared HTTP keys its table takes; they are read into the [`RawHttp`] handed to
    /// `validate`, so `Raw` does not list them.
    const HTTP: HttpKeys;
    /// The rest of the table as written (`#[serde(deny_unknown_fields)]`, including `type`
    /// and `name`).
    type Raw: DeserializeOwned + 'static;
    /// Checks what serde cannot and resolves secrets; `section` names keys in errors and
    /// gives the component's `name` (already checked) and the `[relay]` defaults; `http` is
    /// for [`Section::http`].
    fn validate(raw: Self::Raw, http: RawHttp, section: &Section<'_>) -> Result<Self, ConfigError>;
    /// The configured name.
    fn name(&self) -> &str;
}

/// The shared HTTP keys a component's table accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpKeys {
    /// `tls` only (not an HTTP client: an MQTT session).
    TlsOnly,
    /// `headers` and `tls` (the component has its own credentials, e.g. an API key).
    Transport,
    /// `headers`, `tls`, `basic_auth`, `bearer_token` and `bearer_token_file`.
    WithAuth,
}

impl HttpKeys {
    fn names(self) -> &'static [&'static str] {
        match self {
            HttpKeys::TlsOnly => &["tls"],
            HttpKeys::Transport => &["headers", "tls"],
            HttpKeys::WithAuth => &[
                "headers",
                "tls",
                "basic_auth",
                "bearer_token",
                "bearer_token_file",
            ],
        }
    }
}

/// The table as `pushrelay config` prints it: `type` first, then the component's fields.
pub fn printable<C: Component>(c: &C) -> Result<toml::Table, String> {
    let mut t = toml::Table::new();
    t.insert("type".into(), toml::Value::String(C::TYPE.into()));
    t.extend(toml::Table::try_from(c).map_err(|e| e.to_string())?);
    Ok(t)
}

/// Stage one of a table: the raw struct, type-erased until stage two.
type ParseFn = fn(&Spanned<DeValue<'_>>) -> Result<Box<dyn Any>, StageOneError>;

/// Why stage one refused a table: serde's message and where.
pub(super) struct StageOneError {
    pub message: String,
    pub span: Option<std::ops::Range<usize>>,
}

impl From<toml::de::Error> for StageOneError {
    fn from(e: toml::de::Error) -> Self {
        StageOneError {
            message: e.message().to_string(),
            span: e.span(),
        }
    }
}

/// Stage two: the raw struct checked and turned into the component's configuration.
type ValidateFn<S> = fn(Box<dyn Any>, &Section<'_>) -> Result<Arc<S>, ConfigError>;

/// One entry of a table: a `type` name and its two reading stages.
pub struct ComponentType<S: ?Sized + 'static> {
    pub name: &'static str,
    pub(super) parse: ParseFn,
    pub(super) validate: ValidateFn<S>,
}

impl ComponentType<dyn SourceSpec> {
    pub const fn source<C: SourceConfig>() -> Self {
        ComponentType {
            name: C::TYPE,
            parse: parse_raw::<C, true>,
            validate: validate_source::<C>,
        }
    }
}

impl ComponentType<dyn SinkSpec> {
    pub const fn sink<C: SinkConfig>() -> Self {
        ComponentType {
            name: C::TYPE,
            parse: parse_raw::<C, false>,
            validate: validate_sink::<C>,
        }
    }
}

/// Keys every source type takes, read by the registry (see [`RawCommon`]).
const SOURCE_KEYS: [&str; 1] = ["metric_relabel_configs"];

/// The keys every source type takes, as written (with the positions of the rules).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    #[serde(default)]
    metric_relabel_configs: Vec<Spanned<RawRelabelConfig>>,
}

/// What stage one keeps of a table for stage two.
type Parsed<C> = (<C as Component>::Raw, RawHttp, RawCommon);

/// Stage one of one table: the shared HTTP keys (with their positions) into [`RawHttp`], for a
/// source (`SOURCE`) the keys every source takes into [`RawCommon`], the rest into `C::Raw`.
fn parse_raw<C: Component, const SOURCE: bool>(
    v: &Spanned<DeValue<'_>>,
) -> Result<Box<dyn Any>, StageOneError> {
    let mut rest = v.clone();
    let mut http = toml::de::DeTable::new();
    let mut common = toml::de::DeTable::new();
    let common_keys: &[&str] = if SOURCE { &SOURCE_KEYS } else { &[] };
    if let DeValue::Table(t) = rest.get_mut() {
        for (keys, into) in [(C::HTTP.names(), &mut http), (common_keys, &mut common)] {
            for key in keys {
                if let Some((k, val)) = t.remove_entry(*key) {
                    into.insert(k, val);
                }
            }
        }
    }
    let raw = de_value::<C::Raw>(&rest).map_err(|e| {
        // An unknown key's message lists what the table takes: the shared keys too.
        let mut e = StageOneError::from(e);
        if e.message.starts_with("unknown field") && e.message.contains("expected one of") {
            for key in C::HTTP.names().iter().chain(common_keys) {
                e.message.push_str(&format!(", `{key}`"));
            }
        }
        e
    })?;
    let table = |t| Spanned::new(v.span(), DeValue::Table(t));
    let http = de_value::<RawHttp>(&table(http))?;
    let common = de_value::<RawCommon>(&table(common))?;
    Ok(Box::new((raw, http, common)))
}

/// The raw parts stage one kept (the same entry's `parse` made them, so they are this type).
fn parts<C: Component>(raw: Box<dyn Any>) -> Parsed<C> {
    *raw.downcast::<Parsed<C>>().expect("raw table of this type")
}

fn validate_source<C: SourceConfig>(
    raw: Box<dyn Any>,
    section: &Section<'_>,
) -> Result<Arc<dyn SourceSpec>, ConfigError> {
    let (raw, http, common) = parts::<C>(raw);
    let config = C::validate(raw, http, section)?;
    let relabel = common
        .metric_relabel_configs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            crate::relabel::validate(r.get_ref()).map_err(|m| {
                section.error_at_span(r.span(), &format!("metric_relabel_configs[{i}]"), m)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Configured { config, relabel }))
}

fn validate_sink<C: SinkConfig>(
    raw: Box<dyn Any>,
    section: &Section<'_>,
) -> Result<Arc<dyn SinkSpec>, ConfigError> {
    let (raw, http, _) = parts::<C>(raw);
    Ok(Arc::new(C::validate(raw, http, section)?))
}
