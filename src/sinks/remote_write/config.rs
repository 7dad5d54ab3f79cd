//! `type = "remote_write"`: the table of a remote-write sink, raw and validated, with its
//! queue's bounds and sync policy.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::buffer::Fsync;
use crate::config::units::{de_duration_opt, de_size_opt, parse_duration, ser_duration, ser_url};
use crate::config::{Component, ConfigError, HttpConfig, HttpKeys, RawHttp, Section};
pub use crate::wire::form::{Compression, Protocol};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteWriteConfig {
    pub name: String,
    #[serde(serialize_with = "ser_url")]
    pub url: reqwest::Url,
    #[serde(flatten)]
    pub http: HttpConfig,
    /// At most this many samples a request (default 2,000; 10,000 with `profile = "metered"`).
    /// The sender merges queued batches up to it.
    pub max_samples_per_send: usize,
    /// At most this many requests at once (default 2): with more than a request's worth
    /// queued (a backlog, a large scrape), the sender splits the front of the queue by series
    /// into up to this many requests and sends them on as many connections, so a series never
    /// goes out on two at once and its samples stay in time order.
    pub max_shards: usize,
    /// `batch_wait` (default 5s; 3m with `profile = "metered"`): how long samples wait before
    /// they are sent, so that the polls of that time (and a backlog) go out merged in one
    /// request, each label set once. Every poll is queued durably at once: the wait costs
    /// freshness (dashboards see samples up to this much later), never data. A request's worth
    /// of samples is sent without waiting.
    #[serde(serialize_with = "ser_duration")]
    pub batch_wait: Duration,
    pub rate_limit: RateLimit,
    /// Bound of the queue in samples; the oldest batches go first when it is full.
    pub max_queued_samples: usize,
    /// The durable queue's bounds and sync policy.
    pub buffer: BufferConfig,
    #[serde(serialize_with = "ser_duration")]
    pub min_backoff: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
    /// `compression = "auto" | "snappy" | "zstd"` (default `"auto"`): how request bodies are
    /// compressed. `auto` sends VictoriaMetrics's zstd variant (`Content-Encoding: zstd`,
    /// `X-VictoriaMetrics-Remote-Write-Version: 1`, about 35 % fewer bytes than snappy) and falls
    /// back to snappy, which every receiver takes, when the receiver answers 415 or 400 to it,
    /// as vmagent does. `zstd` never falls back (a receiver without it refuses every batch);
    /// `snappy` is the remote-write specification's only encoding. Remote-write 2.0 is always
    /// snappy.
    pub compression: Choice<Compression>,
    /// `protocol = "auto" | "v1" | "v2"` (default `"auto"`): the remote-write message. `auto`
    /// sends 2.0 (needed by receivers that take only 2.0, such as the OpenTelemetry Collector's)
    /// and falls back to 1.0 when the receiver answers 415, a 400 about the content type, or a
    /// 2xx without the `X-Prometheus-Remote-Write-*-Written` headers (a 1.0 receiver that
    /// ignored the body: the batch is sent again in 1.0, nothing is lost). 2.0 is not smaller
    /// than 1.0 after compression: choose `v1` when bytes matter more than 2.0's metadata per
    /// series. Queued batches are kept on disk in a neutral form (1.0, snappy) and converted
    /// to the negotiated form when sent, so a fall-back or a change of this key never strands
    /// a queued batch. The outcome of `auto` is remembered in `state_dir` and tried again daily.
    pub protocol: Choice<Protocol>,
    /// zstd's strong level for small bodies ([`crate::wire::form::zstd_level`]): set by
    /// `profile = "metered"`.
    #[serde(skip)]
    pub strong_compression: bool,
    /// `send_unchanged_every = "2m"` (default: off, every sample is sent): a gauge's or
    /// counter's sample whose value equals the last one sent for its series is sent only if
    /// that one is at least this old. Fewer samples (Grafana Cloud bills per sample) and fewer
    /// bytes, at a price: a graph's points for a flat series are this far apart, and
    /// `rate()`/`increase()` need a window of at least twice this (a `[1m]` window over a
    /// counter that stands still may hold one point and return nothing). First samples and
    /// stale markers are never held back, and a changed value is sent at once. Must be under
    /// 4 minutes, so receivers (5-minute staleness) never see a series vanish.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_duration_opt"
    )]
    pub send_unchanged_every: Option<Duration>,
}

fn ser_duration_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// A key that is either negotiated with the receiver (`auto`) or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<T> {
    Auto,
    Fixed(T),
}

impl<T: Serialize> Serialize for Choice<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Choice::Auto => s.serialize_str("auto"),
            Choice::Fixed(t) => t.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "auto" {
            return Ok(Choice::Auto);
        }
        T::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(s))
            .map(Choice::Fixed)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or `auto`")))
    }
}

/// `buffer = { max_bytes, max_age, fsync }` of a remote-write sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BufferConfig {
    /// Bytes the queue may take on disk; over it the oldest batches are dropped.
    pub max_bytes: u64,
    /// Batches whose oldest sample is older than this are dropped before sending.
    #[serde(serialize_with = "ser_duration")]
    pub max_age: Duration,
    /// `"always"` or an interval.
    #[serde(serialize_with = "ser_fsync")]
    pub fsync: Fsync,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RateLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_second: Option<u32>,
}

fn ser_fsync<S: Serializer>(f: &Fsync, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Fsync::Always => s.serialize_str("always"),
        Fsync::Every(d) => ser_duration(d, s),
    }
}

fn de_fsync_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fsync>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim() == "always" {
        return Ok(Some(Fsync::Always));
    }
    parse_duration(&s)
        .map(|d| Some(Fsync::Every(d)))
        .map_err(|e| serde::de::Error::custom(format!("{e}, or \"always\"")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteWrite {
    #[serde(rename = "type")]
    _type: String,
    name: String,
    url: String,
    max_samples_per_send: Option<usize>,
    max_shards: Option<usize>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    batch_wait: Option<Duration>,
    rate_limit: Option<RawRateLimit>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    timeout: Option<Duration>,
    max_queued_samples: Option<usize>,
    buffer: Option<RawBuffer>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    min_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    max_backoff: Option<Duration>,
    compression: Option<Choice<Compression>>,
    protocol: Option<Choice<Protocol>>,
    /// `"default"` or `"metered"`: `metered` changes the defaults of `batch_wait` (3m),
    /// `max_samples_per_send` (10,000) and `send_unchanged_every` (2m); keys set explicitly win.
    profile: Option<String>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    send_unchanged_every: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuffer {
    #[serde(default, deserialize_with = "de_size_opt")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "de_duration_opt")]
    max_age: Option<Duration>,
    #[serde(default, deserialize_with = "de_fsync_opt")]
    fsync: Option<Fsync>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests_per_second: Option<f64>,
    samples_per_second: Option<u32>,
}

impl Component for RemoteWriteConfig {
    const TYPE: &'static str = "remote_write";
    const HTTP: HttpKeys = HttpKeys::WithAuth;
    type Raw = RawRemoteWrite;

    fn validate(s: RawRemoteWrite, http: RawHttp, sec: &Section<'_>) -> Result<Self, ConfigError> {
        // `profile = "metered"`: for links paid per megabyte (4G) or receivers paid per sample.
        // Three minutes of polls per request (each label set once a request: 4-10x fewer bytes
        // than one poll a request, measured in bench/RESULTS.md; samples reach the receiver up
        // to 3 minutes later, well inside the 5 minutes after which receivers call a series
        // stale) and flat series sent every 2 minutes.
        let metered = match s.profile.as_deref() {
            None | Some("default") => false,
            Some("metered") => true,
            Some(other) => {
                return Err(sec.error(
                    "profile",
                    format!("unknown profile `{other}`: expected `default` or `metered`"),
                ))
            }
        };
        let send_unchanged_every = match s.send_unchanged_every {
            Some(d) if d.is_zero() => None,
            Some(d) if d >= Duration::from_secs(240) => {
                return Err(sec.error(
                    "send_unchanged_every",
                    "must be under 4m: receivers consider a series gone after 5 minutes without a sample",
                ))
            }
            Some(d) => Some(d),
            None if metered => Some(Duration::from_secs(120)),
            None => None,
        };
        let max_samples_per_send =
            s.max_samples_per_send
                .unwrap_or(if metered { 10_000 } else { 2000 });
        if max_samples_per_send == 0 {
            return Err(sec.error("max_samples_per_send", "must be at least 1"));
        }
        let max_shards = s.max_shards.unwrap_or(2);
        if !(1..=64).contains(&max_shards) {
            return Err(sec.error("max_shards", "must be from 1 to 64"));
        }
        let rate_limit = match s.rate_limit {
            Some(r) => {
                if r.requests_per_second
                    .is_some_and(|v| !(v > 0.0 && v.is_finite()))
                {
                    return Err(sec.error(
                        "rate_limit.requests_per_second",
                        "must be greater than zero",
                    ));
                }
                if r.samples_per_second == Some(0) {
                    return Err(
                        sec.error("rate_limit.samples_per_second", "must be greater than zero")
                    );
                }
                RateLimit {
                    requests_per_second: r.requests_per_second,
                    samples_per_second: r.samples_per_second,
                }
            }
            None => RateLimit::default(),
        };
        let timeout = s.timeout.unwrap_or(Duration::from_secs(30));
        let url = sec.url(&s.url, "url")?;
        let http = sec.http(
            http,
            timeout,
            &[
                "content-encoding",
                "content-type",
                "content-length",
                "x-prometheus-remote-write-version",
                "x-victoriametrics-remote-write-version",
                "user-agent",
            ],
        )?;
        sec.check_transport(&url, &http, false);
        Ok(RemoteWriteConfig {
            url,
            http,
            max_samples_per_send,
            max_shards,
            batch_wait: s
                .batch_wait
                .unwrap_or(Duration::from_secs(if metered { 180 } else { 5 })),
            send_unchanged_every,
            rate_limit,
            max_queued_samples: s
                .max_queued_samples
                .unwrap_or(10_000_000)
                .max(max_samples_per_send),
            buffer: {
                let b = s.buffer.as_ref();
                BufferConfig {
                    max_bytes: b.and_then(|b| b.max_bytes).unwrap_or(256 << 20),
                    max_age: b
                        .and_then(|b| b.max_age)
                        .unwrap_or(Duration::from_secs(2 * 3600)),
                    fsync: b
                        .and_then(|b| b.fsync)
                        .unwrap_or(Fsync::Every(Duration::from_secs(1))),
                }
            },
            min_backoff: s.min_backoff.unwrap_or(Duration::from_millis(500)),
            max_backoff: s.max_backoff.unwrap_or(Duration::from_secs(60)),
            compression: s.compression.unwrap_or(Choice::Auto),
            protocol: s.protocol.unwrap_or(Choice::Auto),
            strong_compression: metered,
            name: s.name,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}
