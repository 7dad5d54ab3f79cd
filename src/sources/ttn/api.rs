//! The Things Stack v3 JSON as it really arrives, read liberally: uint64 as strings, durations
//! as `"0.067s"`, RFC 3339 with 0–9 fractional digits or an offset, zero timestamps meaning
//! "unset", enums as names or numbers, missing fields and unknown keys.
//!
//! Each gateway or stats object is read from `serde_json::Value` by small helpers rather than
//! derived structs, so one odd field never throws away the rest of an answer; a page is split
//! into its items as borrowed raw slices first, so only one item's tree exists at a time.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::value::RawValue;
use serde_json::Value;

/// One gateway from the Identity Server (the list or a single GET).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GatewayInfo {
    pub id: String,
    /// Upper-case hex, when the gateway has one.
    pub eui: Option<String>,
    pub name: Option<String>,
    /// `frequency_plan_ids` joined with `,`.
    pub frequency_plan: Option<String>,
    /// Where the gateway connects (its cluster), as registered; may be empty.
    pub gateway_server_address: Option<String>,
    /// The registered location of the first antenna.
    pub location: Option<Location>,
}

/// A position in degrees and metres.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub altitude: f64,
}

/// `GatewayConnectionStats`, with every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub connected_at: Option<f64>,
    pub disconnected_at: Option<f64>,
    pub last_status_received_at: Option<f64>,
    pub last_uplink_received_at: Option<f64>,
    pub last_downlink_received_at: Option<f64>,
    pub last_tx_acknowledgment_received_at: Option<f64>,
    pub uplink_count: Option<u64>,
    pub downlink_count: Option<u64>,
    pub tx_acknowledgment_count: Option<u64>,
    pub protocol: Option<String>,
    pub round_trip: Option<RoundTrip>,
    pub sub_bands: Vec<SubBand>,
    /// `last_status.versions["ttn-lw-gateway-server"]`.
    pub stack_version: Option<String>,
    /// `last_status.metrics`: the packet forwarder's counters (keys vary by forwarder).
    pub status_metrics: BTreeMap<String, f64>,
    /// `last_status.antenna_locations[0]`, as the gateway reported it.
    pub reported_location: Option<Location>,
}

/// `round_trip_times`, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoundTrip {
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub max: Option<f64>,
    pub count: u64,
}

/// One entry of `sub_bands`. Frequencies stay integers (label values); zero values are omitted
/// by the API, so a missing `min_frequency` is 0.
#[derive(Debug, Clone, PartialEq)]
pub struct SubBand {
    pub min_frequency: u64,
    pub max_frequency: u64,
    pub utilization: f64,
    /// `None` when the API gave none (or 0): no duty-cycle limit on this band.
    pub limit: Option<f64>,
}

impl Stats {
    /// The Console's rule: connected = `connected_at` present and no `disconnected_at`.
    pub fn is_connected(&self) -> bool {
        self.connected_at.is_some() && self.disconnected_at.is_none()
    }

    /// The latest of the `last_*_received_at` and `disconnected_at` times.
    pub fn last_seen(&self) -> Option<f64> {
        [
            self.last_status_received_at,
            self.last_uplink_received_at,
            self.last_downlink_received_at,
            self.last_tx_acknowledgment_received_at,
            self.disconnected_at,
        ]
        .into_iter()
        .flatten()
        .reduce(f64::max)
    }

    /// The sub-band with the highest use relative to its limit (or absolute use, without limits).
    pub fn worst_sub_band(&self) -> Option<&SubBand> {
        let score = |b: &SubBand| match b.limit {
            Some(l) => b.utilization / l,
            None => b.utilization,
        };
        self.sub_bands
            .iter()
            .max_by(|a, b| score(a).total_cmp(&score(b)))
    }
}

/// An error answer: `{"code":5,"message":"error:pkg/…:name (…)","details":[{namespace,name,attributes}]}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    pub namespace: String,
    pub name: String,
    pub message: String,
    /// `attributes.missing`: the rights the key lacks.
    pub missing: Vec<String>,
}

impl ApiError {
    /// True for `pkg/gatewayserver:not_connected` (or any `not_connected`).
    pub fn is_not_connected(&self) -> bool {
        self.name == "not_connected"
    }

    /// `namespace:name`, or the message when the body named nothing.
    pub fn label(&self) -> String {
        match (self.namespace.is_empty(), self.name.is_empty()) {
            (_, true) if !self.message.is_empty() => self.message.clone(),
            (true, true) => "no error details".to_string(),
            (true, false) => self.name.clone(),
            (false, _) => format!("{}:{}", self.namespace, self.name),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars.

/// A uint64 sent as a JSON string (`"9043"`) or a number; also `"9.043e3"` and floats.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
        }
        _ => None,
    }
}

/// A number sent as a number or a string (finite values only), or a boolean as 1/0.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => crate::sources::json::number(v),
    }
}

/// A string, or a number or boolean written as text (enums may come back as numbers).
pub fn as_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A protobuf JSON duration in seconds: `"0.067s"`, `"-1.5s"`, also Go-style `"67ms"`,
/// `"1m2.5s"`, a bare number of seconds, or `{"seconds":"1","nanos":500}`.
pub fn duration_secs(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => parse_duration(s),
        Value::Object(o) => {
            let secs = o.get("seconds").and_then(as_f64).unwrap_or(0.0);
            let nanos = o.get("nanos").and_then(as_f64).unwrap_or(0.0);
            (o.contains_key("seconds") || o.contains_key("nanos")).then(|| secs + nanos / 1e9)
        }
        _ => None,
    }
}

fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(f) = s.parse::<f64>() {
        return f.is_finite().then_some(f);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E'))
            .unwrap_or(rest.len());
        // An exponent sign belongs to the number ("1e-3s").
        let num_end = if num_end < rest.len()
            && num_end > 0
            && matches!(rest.as_bytes()[num_end], b'-' | b'+')
            && matches!(rest.as_bytes()[num_end - 1], b'e' | b'E')
        {
            num_end
                + 1
                + rest[num_end + 1..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len() - num_end - 1)
        } else {
            num_end
        };
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    let total = if neg { -total } else { total };
    total.is_finite().then_some(total)
}

/// An RFC 3339 timestamp in seconds since the epoch, read as `sources::json::rfc3339` reads it (any
/// number of fractional digits, `Z` or an offset; also `{seconds, nanos}`). Returns `None` for
/// anything unparseable and for "unset" values: `0001-01-01T00:00:00Z`, the epoch, or earlier.
pub fn timestamp_secs(v: &Value) -> Option<f64> {
    let t = match v {
        Value::String(s) => parse_rfc3339(s)?,
        Value::Object(o) => {
            o.get("seconds").and_then(as_f64)?
                + o.get("nanos").and_then(as_f64).unwrap_or(0.0) / 1e9
        }
        _ => return None,
    };
    // Later than 9999-12-31 is junk too (and would not fit a `SystemTime` everywhere).
    (t > 0.0 && t < 253_402_300_800.0).then_some(t)
}

/// An RFC 3339 date in epoch seconds, with up to nanoseconds (see `sources::json::rfc3339`).
fn parse_rfc3339(s: &str) -> Option<f64> {
    let (secs, nanos) = crate::sources::json::rfc3339(s)?;
    Some(secs as f64 + f64::from(nanos) / 1e9)
}

/// An EUI as upper-case hex: from hex (any case, with or without `-`/`:`), or from the
/// base64 protobuf JSON gives `bytes` fields.
pub fn normalize_eui(v: &Value) -> Option<String> {
    let s = as_text(v)?;
    let hex: String = s.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    if hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(hex.to_ascii_uppercase());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .ok()?;
    (bytes.len() == 8).then(|| bytes.iter().map(|b| format!("{b:02X}")).collect())
}

fn location(v: &Value) -> Option<Location> {
    let o = v.as_object()?;
    let lat = o.get("latitude").and_then(as_f64);
    let lon = o.get("longitude").and_then(as_f64);
    // Zero values are omitted, so one coordinate alone is a real position on the equator or
    // the prime meridian; neither means no position at all.
    if lat.is_none() && lon.is_none() {
        return None;
    }
    Some(Location {
        latitude: lat.unwrap_or(0.0),
        longitude: lon.unwrap_or(0.0),
        altitude: o.get("altitude").and_then(as_f64).unwrap_or(0.0),
    })
}

// ---------------------------------------------------------------------------------------------
// Documents.

/// A gateway object from the Identity Server; `None` without `ids.gateway_id`.
pub fn parse_gateway(v: &Value) -> Option<GatewayInfo> {
    let ids = v.get("ids")?;
    let id = ids.get("gateway_id").and_then(as_text)?;
    let frequency_plan = match v.get("frequency_plan_ids") {
        Some(Value::Array(a)) => {
            let ids: Vec<String> = a.iter().filter_map(as_text).collect();
            (!ids.is_empty()).then(|| ids.join(","))
        }
        Some(other) => as_text(other),
        None => v.get("frequency_plan_id").and_then(as_text),
    };
    let location = v.get("antennas").and_then(Value::as_array).and_then(|a| {
        a.iter()
            .find_map(|ant| ant.get("location").and_then(location))
    });
    Some(GatewayInfo {
        id,
        eui: ids.get("eui").and_then(normalize_eui),
        name: v.get("name").and_then(as_text),
        frequency_plan,
        gateway_server_address: v.get("gateway_server_address").and_then(as_text),
        location,
    })
}

/// A page of `GET /api/v3/gateways`: `{"gateways":[…]}`, or `{}` past the end.
///
/// Read gateway by gateway from borrowed slices of the body: only one gateway's JSON tree
/// exists at a time (a whole page as one tree is about 15× the body).
pub fn parse_gateway_list(body: &[u8]) -> Result<Vec<GatewayInfo>, String> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow, default)]
        gateways: Option<&'a RawValue>,
    }
    let page: Page = top_object(body, "gateway list")?;
    Ok(match page.gateways.and_then(raw_items) {
        Some(items) => items
            .into_iter()
            .filter_map(|g| serde_json::from_str::<Value>(g.get()).ok())
            .filter_map(|g| parse_gateway(&g))
            .collect(),
        None => Vec::new(),
    })
}

/// `body` as the typed top-level object `T` (unknown keys ignored), or why not: not JSON, or
/// JSON that is not an object (serde would otherwise read a struct from an array).
fn top_object<'a, T: serde::Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, String> {
    let first = body.iter().find(|c| !c.is_ascii_whitespace());
    match serde_json::from_slice::<T>(body) {
        Ok(t) if first == Some(&b'{') => Ok(t),
        Ok(_) => Err(format!("{what} is not a JSON object")),
        Err(_) if first != Some(&b'{') && serde_json::from_slice::<&RawValue>(body).is_ok() => {
            Err(format!("{what} is not a JSON object"))
        }
        Err(e) => Err(format!("{what} is not JSON: {e}")),
    }
}

/// The items of a raw JSON array, each still unparsed; `None` if it is not an array.
fn raw_items(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// One `GatewayConnectionStats` object.
pub fn parse_stats(v: &Value) -> Stats {
    let ts = |k: &str| v.get(k).and_then(timestamp_secs);
    let count = |k: &str| v.get(k).and_then(as_u64);
    let round_trip = v
        .get("round_trip_times")
        .filter(|r| r.is_object())
        .map(|r| RoundTrip {
            min: r.get("min").and_then(duration_secs),
            median: r.get("median").and_then(duration_secs),
            max: r.get("max").and_then(duration_secs),
            count: r.get("count").and_then(as_u64).unwrap_or(0),
        });
    let sub_bands = v
        .get("sub_bands")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|b| b.is_object())
                .map(|b| SubBand {
                    min_frequency: b.get("min_frequency").and_then(as_u64).unwrap_or(0),
                    max_frequency: b.get("max_frequency").and_then(as_u64).unwrap_or(0),
                    utilization: b
                        .get("downlink_utilization")
                        .and_then(as_f64)
                        .unwrap_or(0.0),
                    limit: b
                        .get("downlink_utilization_limit")
                        .and_then(as_f64)
                        .filter(|l| *l > 0.0),
                })
                .collect()
        })
        .unwrap_or_default();
    let status = v.get("last_status").filter(|s| s.is_object());
    let stack_version = status
        .and_then(|s| s.get("versions"))
        .and_then(|vs| vs.get("ttn-lw-gateway-server"))
        .and_then(as_text);
    let status_metrics = status
        .and_then(|s| s.get("metrics"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| Some((k.clone(), as_f64(x)?)))
                .filter(|(k, _)| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let reported_location = status
        .and_then(|s| s.get("antenna_locations"))
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find_map(location));
    Stats {
        connected_at: ts("connected_at"),
        disconnected_at: ts("disconnected_at"),
        last_status_received_at: ts("last_status_received_at"),
        last_uplink_received_at: ts("last_uplink_received_at"),
        last_downlink_received_at: ts("last_downlink_received_at"),
        last_tx_acknowledgment_received_at: ts("last_tx_acknowledgment_received_at"),
        uplink_count: count("uplink_count"),
        downlink_count: count("downlink_count"),
        tx_acknowledgment_count: count("tx_acknowledgment_count"),
        protocol: v.get("protocol").and_then(as_text),
        round_trip,
        sub_bands,
        stack_version,
        status_metrics,
        reported_location,
    }
}

/// The body of a per-gateway stats GET.
pub fn parse_stats_body(body: &[u8]) -> Result<Stats, String> {
    let fields: StatsFields = top_object(body, "stats")?;
    Ok(parse_stats(&fields.tree()))
}

/// The keys of `GatewayConnectionStats` [`parse_stats`] reads, each still unparsed: every other
/// key (and `last_status.advanced`, whatever a forwarder puts there) is skipped, not built.
#[derive(serde::Deserialize)]
struct StatsFields<'a> {
    #[serde(borrow, default)]
    connected_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    disconnected_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last_status_received_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last_uplink_received_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last_downlink_received_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last_tx_acknowledgment_received_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uplink_count: Option<&'a RawValue>,
    #[serde(borrow, default)]
    downlink_count: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tx_acknowledgment_count: Option<&'a RawValue>,
    #[serde(borrow, default)]
    protocol: Option<&'a RawValue>,
    #[serde(borrow, default)]
    round_trip_times: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sub_bands: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last_status: Option<&'a RawValue>,
}

/// The parts of `last_status` [`parse_stats`] reads.
#[derive(serde::Deserialize)]
struct LastStatusFields<'a> {
    #[serde(borrow, default)]
    versions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metrics: Option<&'a RawValue>,
    #[serde(borrow, default)]
    antenna_locations: Option<&'a RawValue>,
}

/// An object of the given raw fields that are present (each parsed on its own).
fn object_of(fields: &[(&str, Option<&RawValue>)]) -> Value {
    let map = fields
        .iter()
        .filter_map(|(k, raw)| {
            let v = serde_json::from_str::<Value>((*raw)?.get()).ok()?;
            Some((k.to_string(), v))
        })
        .collect();
    Value::Object(map)
}

impl StatsFields<'_> {
    /// The small tree [`parse_stats`] reads: only the known keys.
    fn tree(&self) -> Value {
        let mut v = object_of(&[
            ("connected_at", self.connected_at),
            ("disconnected_at", self.disconnected_at),
            ("last_status_received_at", self.last_status_received_at),
            ("last_uplink_received_at", self.last_uplink_received_at),
            ("last_downlink_received_at", self.last_downlink_received_at),
            (
                "last_tx_acknowledgment_received_at",
                self.last_tx_acknowledgment_received_at,
            ),
            ("uplink_count", self.uplink_count),
            ("downlink_count", self.downlink_count),
            ("tx_acknowledgment_count", self.tx_acknowledgment_count),
            ("protocol", self.protocol),
            ("round_trip_times", self.round_trip_times),
            ("sub_bands", self.sub_bands),
        ]);
        // A `last_status` that is not an object reads as absent, as `parse_stats` reads it.
        let status = self
            .last_status
            .and_then(|raw| serde_json::from_str::<LastStatusFields>(raw.get()).ok())
            .filter(|_| self.last_status.is_some_and(|r| r.get().starts_with('{')));
        if let (Some(s), Value::Object(m)) = (status, &mut v) {
            m.insert(
                "last_status".into(),
                object_of(&[
                    ("versions", s.versions),
                    ("metrics", s.metrics),
                    ("antenna_locations", s.antenna_locations),
                ]),
            );
        }
        v
    }
}

/// The body of a batch stats POST: `{"entries":{"id":{…}}}`, or `{}` when none is connected.
/// Read entry by entry from borrowed slices, like [`parse_gateway_list`].
pub fn parse_batch_body(body: &[u8]) -> Result<BTreeMap<String, Stats>, String> {
    #[derive(serde::Deserialize)]
    struct Batch<'a> {
        #[serde(borrow, default)]
        entries: Option<&'a RawValue>,
    }
    let batch: Batch = top_object(body, "batch stats")?;
    let entries: Option<BTreeMap<String, &RawValue>> = batch
        .entries
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, raw)| {
            let fields: StatsFields = top_object(raw.get().as_bytes(), "stats").ok()?;
            Some((k, parse_stats(&fields.tree())))
        })
        .collect())
}

/// An error body; tolerant of bodies that are not JSON at all (a proxy's HTML page).
pub fn parse_error(body: &[u8]) -> ApiError {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return ApiError {
            message: crate::http::body_excerpt(body, 160),
            ..ApiError::default()
        };
    };
    let message = v.get("message").and_then(as_text).unwrap_or_default();
    let detail = v
        .get("details")
        .and_then(Value::as_array)
        .and_then(|d| d.iter().find(|x| x.get("name").is_some()));
    let (mut namespace, mut name) = (String::new(), String::new());
    let mut missing = Vec::new();
    if let Some(d) = detail {
        namespace = d.get("namespace").and_then(as_text).unwrap_or_default();
        name = d.get("name").and_then(as_text).unwrap_or_default();
        match d.get("attributes").and_then(|a| a.get("missing")) {
            Some(Value::Array(a)) => missing = a.iter().filter_map(as_text).collect(),
            Some(Value::String(s)) => {
                missing = s
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            _ => {}
        }
    }
    // Without details, the message still says `error:<namespace>:<name> (…)`.
    if name.is_empty() {
        if let Some(rest) = message.strip_prefix("error:") {
            let head = rest.split_whitespace().next().unwrap_or("");
            if let Some((ns, n)) = head.rsplit_once(':') {
                namespace = ns.to_string();
                name = n.to_string();
            }
        }
    }
    ApiError {
        namespace,
        name,
        message,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uint64_as_strings_numbers_and_junk() {
        assert_eq!(as_u64(&json!("9043")), Some(9043));
        assert_eq!(as_u64(&json!(" 18446744073709551615 ")), Some(u64::MAX));
        assert_eq!(as_u64(&json!(12)), Some(12));
        assert_eq!(as_u64(&json!(12.0)), Some(12));
        assert_eq!(as_u64(&json!("1e3")), Some(1000));
        assert_eq!(as_u64(&json!("-1")), None);
        assert_eq!(as_u64(&json!("abc")), None);
        assert_eq!(as_u64(&json!(null)), None);
        assert_eq!(as_u64(&json!({})), None);
        assert_eq!(as_f64(&json!("41.5")), Some(41.5));
        assert_eq!(as_f64(&json!("NaN")), None);
    }

    #[test]
    fn durations() {
        let d = |s: &str| duration_secs(&json!(s));
        assert_eq!(d("0.067s"), Some(0.067));
        assert_eq!(d("0.188002113s"), Some(0.188002113));
        assert_eq!(d("1s"), Some(1.0));
        assert_eq!(d("-1.5s"), Some(-1.5));
        assert_eq!(d("67ms"), Some(0.067));
        assert_eq!(d("1m2.5s"), Some(62.5));
        assert_eq!(d("1e-3s"), Some(0.001));
        assert_eq!(d("0.25"), Some(0.25));
        assert_eq!(d("s"), None);
        assert_eq!(d("12 parsecs"), None);
        assert_eq!(d(""), None);
        assert_eq!(duration_secs(&json!(0.5)), Some(0.5));
        assert_eq!(
            duration_secs(&json!({"seconds": "1", "nanos": 500_000_000})),
            Some(1.5)
        );
    }

    #[test]
    fn rfc3339_with_every_fraction_length_and_offsets() {
        let t = |s: &str| timestamp_secs(&json!(s));
        // 2024-05-01T12:34:56Z = 1714566896.
        assert_eq!(t("2024-05-01T12:34:56Z"), Some(1714566896.0));
        let digits = "123456789";
        for n in 1..=9 {
            let s = format!("2024-05-01T12:34:56.{}Z", &digits[..n]);
            let want = 1714566896.0 + format!("0.{}", &digits[..n]).parse::<f64>().unwrap();
            assert!((t(&s).unwrap() - want).abs() < 1e-6, "{s}");
        }
        assert_eq!(t("2024-05-01T14:34:56+02:00"), Some(1714566896.0));
        assert_eq!(t("2024-05-01T10:04:56-02:30"), Some(1714566896.0));
        assert_eq!(t("2024-05-01t12:34:56z"), Some(1714566896.0));
        assert_eq!(t("2024-05-01 12:34:56Z"), Some(1714566896.0));
        assert!(
            (t("2024-05-01T12:34:56.1234567891Z").unwrap() - 1_714_566_896.123_456_8).abs() < 1e-6
        );
        assert_eq!(t("2000-02-29T00:00:00Z"), Some(951782400.0));
        // Zero and epoch timestamps mean "unset".
        assert_eq!(t("0001-01-01T00:00:00Z"), None);
        assert_eq!(t("1970-01-01T00:00:00Z"), None);
        assert_eq!(t("1970-01-01T00:00:00.000000000Z"), None);
        // Junk.
        for bad in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2024-05-01T12:34:56.Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
        // Liberal where the meaning is clear: no zone is UTC, `+hhmm` is an offset.
        assert_eq!(t("2024-05-01T12:34:56"), Some(1714566896.0));
        assert_eq!(t("2024-05-01T14:34:56+0200"), Some(1714566896.0));
        assert_eq!(timestamp_secs(&json!(null)), None);
        assert_eq!(timestamp_secs(&json!({"seconds": 1e300})), None);
        assert_eq!(
            timestamp_secs(&json!({"seconds": "1714566896", "nanos": 5e8})),
            Some(1714566896.5)
        );
    }

    #[test]
    fn euis() {
        assert_eq!(
            normalize_eui(&json!("b827ebfffe123456")).as_deref(),
            Some("B827EBFFFE123456")
        );
        assert_eq!(
            normalize_eui(&json!("B8-27-EB-FF-FE-12-34-56")).as_deref(),
            Some("B827EBFFFE123456")
        );
        assert_eq!(
            normalize_eui(&json!("uCfr//4SNFY=")).as_deref(),
            Some("B827EBFFFE123456")
        );
        assert_eq!(normalize_eui(&json!("")), None);
        assert_eq!(normalize_eui(&json!("xyz")), None);
    }

    #[test]
    fn full_stats_with_quirks() {
        let v = json!({
            "connected_at": "2024-05-01T12:00:00.1Z",
            "protocol": "udp",
            "last_status_received_at": "2024-05-01T12:30:00.123456789Z",
            "last_status": {
                "time": "2024-05-01T12:30:00Z",
                "versions": {"ttn-lw-gateway-server": "3.35.2", "fpga": "31"},
                "antenna_locations": [{"latitude": 52.1, "longitude": 4.3, "altitude": 12, "source": 1}],
                "metrics": {"rxin": 14, "rxok": "9", "temp": 41.5, "bad": "x", "nested": {}},
                "advanced": {"anything": [1, 2]}
            },
            "last_uplink_received_at": "2024-05-01T12:31:00.12Z",
            "uplink_count": "9043",
            "last_downlink_received_at": "0001-01-01T00:00:00Z",
            "downlink_count": "12",
            "round_trip_times": {"min": "0.041s", "max": "0.188002113s", "median": "0.067s", "count": 20},
            "sub_bands": [
                {"min_frequency": "863000000", "max_frequency": "865000000",
                 "downlink_utilization_limit": 0.001, "downlink_utilization": 0.0023},
                {"max_frequency": "18446744073709551615", "downlink_utilization_limit": "0.01"},
                "junk"
            ],
            "gateway_remote_address": {"ip": "192.0.2.1"},
            "a_field_from_the_future": {"x": 1}
        });
        let s = parse_stats(&v);
        // The typed, key-by-key reading of a body gives the same stats as the whole tree, with
        // or without keys it skips.
        assert_eq!(parse_stats_body(v.to_string().as_bytes()).unwrap(), s);
        let mut noisy = v.clone();
        noisy["unknown"] = json!({"deep": [1, 2, {"x": "y"}]});
        noisy["last_status"]["advanced"] = json!({"anything": [true]});
        assert_eq!(parse_stats_body(noisy.to_string().as_bytes()).unwrap(), s);
        for junk in [
            json!({"last_status": "up"}),
            json!({"last_status": [1]}),
            json!({"uplink_count": null}),
        ] {
            assert_eq!(
                parse_stats_body(junk.to_string().as_bytes()).unwrap(),
                parse_stats(&junk)
            );
        }
        assert!(s.is_connected());
        assert_eq!(s.uplink_count, Some(9043));
        assert_eq!(s.downlink_count, Some(12));
        assert_eq!(s.tx_acknowledgment_count, None);
        assert_eq!(s.last_downlink_received_at, None);
        assert_eq!(s.protocol.as_deref(), Some("udp"));
        assert_eq!(s.stack_version.as_deref(), Some("3.35.2"));
        let rt = s.round_trip.unwrap();
        assert_eq!(
            (rt.min, rt.median, rt.max, rt.count),
            (Some(0.041), Some(0.067), Some(0.188002113), 20)
        );
        assert_eq!(s.sub_bands.len(), 2);
        assert_eq!(s.sub_bands[1].min_frequency, 0);
        assert_eq!(s.sub_bands[1].max_frequency, u64::MAX);
        assert_eq!(s.sub_bands[1].utilization, 0.0);
        assert_eq!(s.sub_bands[1].limit, Some(0.01));
        assert_eq!(s.worst_sub_band().unwrap().max_frequency, 865000000);
        assert_eq!(s.status_metrics.len(), 3);
        assert_eq!(s.status_metrics["rxok"], 9.0);
        assert_eq!(s.reported_location.unwrap().altitude, 12.0);
        assert!((s.last_seen().unwrap() - 1714566660.12).abs() < 1e-6);
    }

    #[test]
    fn disconnected_and_empty_stats() {
        let s = parse_stats(&json!({
            "connected_at": "2024-05-01T12:00:00Z",
            "disconnected_at": "2024-05-01T13:00:00.5Z",
            "last_uplink_received_at": "2024-05-01T12:59:00Z",
            "protocol": 3
        }));
        assert!(!s.is_connected());
        assert_eq!(s.last_seen(), Some(1714568400.5));
        assert_eq!(s.protocol.as_deref(), Some("3"));
        // `{}`: neither connected nor seen; Basics Station: last_status without time or metrics.
        let e = parse_stats(&json!({}));
        assert!(!e.is_connected());
        assert_eq!(e.last_seen(), None);
        let lbs = parse_stats(&json!({"connected_at": "2024-05-01T12:00:00Z",
            "protocol": "semtechws/lbslns", "last_status": {"versions": {"station": "2.0.6"}}}));
        assert!(lbs.is_connected());
        assert!(lbs.status_metrics.is_empty());
        assert_eq!(lbs.stack_version, None);
        // Wrong types everywhere: nothing panics, nothing is made up.
        let w = parse_stats(
            &json!({"connected_at": 5, "uplink_count": [1], "sub_bands": {},
            "round_trip_times": "fast", "last_status": "up"}),
        );
        assert_eq!(w, Stats::default());
    }

    #[test]
    fn gateway_list_pages() {
        let body = br#"{"gateways":[
            {"ids":{"gateway_id":"gw-a","eui":"b827ebfffe123456"},"name":"Roof",
             "frequency_plan_ids":["EU_863_870_TTN"],"gateway_server_address":"nam1.cloud.thethings.network",
             "antennas":[{"location":{"latitude":52.37,"longitude":4.89,"altitude":3,"source":"SOURCE_REGISTRY"}}],
             "created_at":"2020-01-01T00:00:00Z","unknown":true},
            {"ids":{"gateway_id":"gw-b"}},
            {"ids":{}},
            {"name":"no ids"}
        ]}"#;
        let l = parse_gateway_list(body).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].eui.as_deref(), Some("B827EBFFFE123456"));
        assert_eq!(l[0].frequency_plan.as_deref(), Some("EU_863_870_TTN"));
        assert_eq!(l[0].location.unwrap().latitude, 52.37);
        assert_eq!(
            l[1],
            GatewayInfo {
                id: "gw-b".into(),
                ..Default::default()
            }
        );
        assert!(parse_gateway_list(b"{}").unwrap().is_empty());
        assert!(parse_gateway_list(b"{\"gateways\":null}")
            .unwrap()
            .is_empty());
        assert!(parse_gateway_list(b"<html>").is_err());
        assert!(parse_gateway_list(b"[]").is_err());
        // Read item by item: a junk item is skipped, a non-array list is empty, and what the
        // errors say is unchanged.
        let l = parse_gateway_list(br#" {"gateways":[7,{"ids":{"gateway_id":"x"}}],"x":[1]}"#);
        assert_eq!(l.unwrap().len(), 1);
        assert!(parse_gateway_list(br#"{"gateways":"no"}"#)
            .unwrap()
            .is_empty());
        assert_eq!(
            parse_gateway_list(b"[1]").unwrap_err(),
            "gateway list is not a JSON object"
        );
        assert!(parse_gateway_list(b"{\"gateways\":[")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn batch_answers() {
        let m = parse_batch_body(br#"{"entries":{"a":{"connected_at":"2024-05-01T12:00:00Z","uplink_count":"5"},"b":null}}"#).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"].uplink_count, Some(5));
        assert!(parse_batch_body(b"{}").unwrap().is_empty());
        assert!(parse_batch_body(b"garbage").is_err());
        assert!(parse_batch_body(br#"{"entries":[1]}"#).unwrap().is_empty());
        assert!(parse_batch_body(br#"{"entries":{"a":"x"}}"#)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn error_bodies() {
        let e = parse_error(br#"{"code":7,"message":"error:pkg/auth/rights:insufficient_gateway_rights (insufficient rights for gateway `gw@ttn`)","details":[{"@type":"type.googleapis.com/ttn.lorawan.v3.ErrorDetails","namespace":"pkg/auth/rights","name":"insufficient_gateway_rights","attributes":{"missing":["RIGHT_GATEWAY_STATUS_READ"],"uid":"gw"},"code":7}]}"#);
        assert_eq!(e.label(), "pkg/auth/rights:insufficient_gateway_rights");
        assert_eq!(e.missing, vec!["RIGHT_GATEWAY_STATUS_READ"]);
        let e = parse_error(br#"{"code":5,"message":"error:pkg/gatewayserver:not_connected (gateway `x@ttn` not connected)"}"#);
        assert!(e.is_not_connected());
        assert_eq!(e.namespace, "pkg/gatewayserver");
        let e = parse_error(b"<html>bad gateway</html>");
        assert_eq!(e.label(), "<html>bad gateway</html>");
        let e = parse_error(br#"{"details":[{"name":"x","attributes":{"missing":"A, B"}}]}"#);
        assert_eq!(e.missing, vec!["A", "B"]);
    }
}
