//! Content negotiation for scrapes, as Prometheus 3 does it: the `Accept` header built from
//! the `scrape_protocols` list, and the parser chosen by the answer's `Content-Type`.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::model::Family;

/// The exposition formats a scrape can ask for, with Prometheus's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeProtocol {
    OpenMetricsText1_0_0,
    OpenMetricsText0_0_1,
    PrometheusText1_0_0,
    PrometheusText0_0_4,
}

/// Prometheus's default order (without protobuf, which pushrelay does not parse).
pub const DEFAULT_PROTOCOLS: [ScrapeProtocol; 4] = [
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

/// How many protocols Prometheus knows (protobuf included): the first `q` value is one more.
const KNOWN_PROTOCOLS: usize = 5;

impl ScrapeProtocol {
    /// The name used in `scrape_protocols` and `fallback_scrape_protocol`.
    pub fn name(self) -> &'static str {
        match self {
            ScrapeProtocol::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "PrometheusText1.0.0",
            ScrapeProtocol::PrometheusText0_0_4 => "PrometheusText0.0.4",
        }
    }

    /// Parses a protocol name; the message lists the known ones.
    pub fn from_name(s: &str) -> Result<ScrapeProtocol, String> {
        let all = [
            ScrapeProtocol::OpenMetricsText1_0_0,
            ScrapeProtocol::OpenMetricsText0_0_1,
            ScrapeProtocol::PrometheusText1_0_0,
            ScrapeProtocol::PrometheusText0_0_4,
        ];
        if s == "PrometheusProto" {
            return Err(
                "PrometheusProto (protobuf) is not supported by pushrelay; use the text formats"
                    .into(),
            );
        }
        all.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            format!(
                "unknown scrape protocol {s:?}, expected one of: {}",
                all.map(|p| p.name()).join(", ")
            )
        })
    }

    /// The media type Prometheus asks for it with (before `escaping` and `q`).
    fn media_type(self) -> &'static str {
        match self {
            ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
        }
    }

    fn is_openmetrics(self) -> bool {
        matches!(
            self,
            ScrapeProtocol::OpenMetricsText1_0_0 | ScrapeProtocol::OpenMetricsText0_0_1
        )
    }
}

impl fmt::Display for ScrapeProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for ScrapeProtocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The `Accept` header Prometheus 3 sends for `protocols`: each media type in order with
/// falling `q` values (`0.6` down for five known protocols), `escaping=allow-utf-8` on the
/// formats that can carry UTF-8 names, then `*/*`.
pub fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    let mut weight = KNOWN_PROTOCOLS + 1;
    let mut parts = Vec::with_capacity(protocols.len() + 1);
    for p in protocols {
        let mut v = p.media_type().to_string();
        if matches!(
            p,
            ScrapeProtocol::PrometheusText1_0_0 | ScrapeProtocol::OpenMetricsText1_0_0
        ) {
            v.push_str(";escaping=allow-utf-8");
        }
        v.push_str(&format!(";q=0.{weight}"));
        parts.push(v);
        weight -= 1;
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// Which parser a `Content-Type` calls for: OpenMetrics for `application/openmetrics-text`,
/// the classic parser for `text/plain`, else `fallback` (also for a missing header).
pub fn protocol_for(content_type: Option<&str>, fallback: ScrapeProtocol) -> ScrapeProtocol {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/openmetrics-text") => ScrapeProtocol::OpenMetricsText1_0_0,
        Some("text/plain") => ScrapeProtocol::PrometheusText0_0_4,
        _ => fallback,
    }
}

/// Parses a scrape body, scraped at `now_ms` (wall clock), with the parser `protocol` calls
/// for. An empty body is no samples in any format (Prometheus takes it even as OpenMetrics).
pub fn parse_as(
    protocol: ScrapeProtocol,
    body: &[u8],
    now_ms: i64,
) -> Result<Vec<Family>, super::ParseError> {
    parse_as_capped(protocol, body, now_ms, 0)
}

/// [`parse_as`] that stops once more than `cap` samples are kept (0: no cap).
pub fn parse_as_capped(
    protocol: ScrapeProtocol,
    body: &[u8],
    now_ms: i64,
    cap: usize,
) -> Result<Vec<Family>, super::ParseError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if protocol.is_openmetrics() {
        super::openmetrics::parse_capped(body, now_ms, cap)
    } else {
        super::parse::parse_bytes_capped(body, now_ms, cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_accept_header() {
        assert_eq!(
            accept_header(&DEFAULT_PROTOCOLS),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        assert_eq!(
            accept_header(&[ScrapeProtocol::PrometheusText0_0_4]),
            "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
        );
    }

    #[test]
    fn content_types() {
        let fb = ScrapeProtocol::PrometheusText0_0_4;
        assert_eq!(
            protocol_for(
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                fb
            ),
            ScrapeProtocol::OpenMetricsText1_0_0
        );
        assert_eq!(
            protocol_for(
                Some("text/plain; version=0.0.4"),
                ScrapeProtocol::OpenMetricsText1_0_0
            ),
            fb
        );
        assert_eq!(
            protocol_for(None, ScrapeProtocol::OpenMetricsText1_0_0),
            ScrapeProtocol::OpenMetricsText1_0_0
        );
        assert_eq!(protocol_for(Some("application/json"), fb), fb);
        assert!(ScrapeProtocol::from_name("PrometheusProto").is_err());
        assert_eq!(
            ScrapeProtocol::from_name("PrometheusText1.0.0"),
            Ok(ScrapeProtocol::PrometheusText1_0_0)
        );
    }
}
