//! A simulated The Things Stack v3: the Identity Server's gateway list and the Gateway Server's
//! connection stats on two "clusters" (two ports), with the real API's shapes and quirks.
//!
//! Quirks reproduced: paged list with `X-Total-Count` and `{}` past the end, only `ids` and
//! timestamps without `field_mask`; uint64 as strings, durations as `"0.067s"`, RFC 3339 with
//! 0–9 fractional digits (varying per answer), `0001-01-01T00:00:00Z` for "never", zero fields
//! omitted, unknown keys, enums as numbers in the batch answer; a batch answer that silently
//! leaves out disconnected gateways and gateways of the other cluster (`{}` when none is left);
//! 200 with `disconnected_at` for 48 h after a disconnect, then 404 `not_connected`; Basics
//! Station gateways without status metrics; a sub-band with no `min_frequency` and
//! `max_frequency` 2^64−1; error bodies with `details` and `attributes.missing`; 429 with
//! `X-Rate-Limit-*` and no `Retry-After`. Tests flip modes and count calls through [`TtnSim`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::server::{response, serve, Request, Response};

/// How long the Gateway Server keeps a disconnected gateway's stats.
const RETENTION: Duration = Duration::from_secs(48 * 3600);

/// A gateway's connection as the Gateway Server sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Connected since then; counters count from then.
    Connected { since: SystemTime },
    /// Was connected from `since` to `at`; counters frozen at `at`.
    Disconnected { since: SystemTime, at: SystemTime },
    /// Never connected (or long ago): 404 `not_connected`.
    Never,
}

/// One simulated gateway.
#[derive(Debug, Clone)]
pub struct SimGateway {
    pub id: String,
    /// Upper-case hex EUI, or none (some gateways have none).
    pub eui: Option<String>,
    pub name: String,
    pub frequency_plan: String,
    /// 0: the home cluster (Identity Server + Gateway Server at `url`); 1: the other one.
    pub cluster: usize,
    /// `udp`, `mqtt`, `grpc`, `ttigw`, `ws` or `semtechws/lbslns`.
    pub protocol: String,
    pub link: Link,
    /// Uplinks per second while connected.
    pub uplink_rate: f64,
    /// Downlinks per uplink.
    pub downlink_share: f64,
    /// Downlink duty-cycle use of the first sub-band (limit 1 %).
    pub utilization: f64,
    pub location: Option<(f64, f64, f64)>,
    /// Registered `gateway_server_address` override (else the cluster's address).
    pub server_address: Option<String>,
}

impl SimGateway {
    /// A connected UDP gateway on the home cluster, seen a while ago.
    pub fn new(id: &str, eui: Option<&str>) -> SimGateway {
        SimGateway {
            id: id.to_string(),
            eui: eui.map(str::to_string),
            name: format!("Gateway {id}"),
            frequency_plan: "EU_863_870_TTN".to_string(),
            cluster: 0,
            protocol: "udp".to_string(),
            link: Link::Connected {
                since: SystemTime::now() - Duration::from_secs(3600),
            },
            uplink_rate: 0.5,
            downlink_share: 0.1,
            utilization: 0.0012,
            location: Some((52.3702, 4.8952, 12.0)),
            server_address: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Connected { .. })
    }

    /// Counters restart: connected from now.
    pub fn reconnect(&mut self) {
        self.link = Link::Connected {
            since: SystemTime::now(),
        };
    }

    /// Disconnects now; the stats stay readable (200 with `disconnected_at`) for 48 h.
    pub fn disconnect(&mut self) {
        self.disconnect_at(SystemTime::now());
    }

    /// Disconnected at `at` (more than 48 h ago means 404).
    pub fn disconnect_at(&mut self, at: SystemTime) {
        let since = match self.link {
            Link::Connected { since } | Link::Disconnected { since, .. } => since.min(at),
            Link::Never => at - Duration::from_secs(3600),
        };
        self.link = Link::Disconnected { since, at };
    }
}

/// What the batch call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    Works,
    /// 403 `no_gateway_rights` (a gateway key, or a missing right on one ID).
    Forbidden,
    /// 404 as a stack before v3.21 answers an unknown route.
    NotImplemented,
}

/// What listing gateways does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListMode {
    Works,
    /// A gateway-scoped key: `{}`.
    GatewayKey,
    /// 403 `insufficient_gateway_rights` naming the missing right.
    Forbidden,
}

/// Switches and counters shared with the server tasks; tests change them through
/// [`TtnSim::with`].
#[derive(Debug)]
pub struct SimState {
    pub api_key: String,
    pub gateways: Vec<SimGateway>,
    pub batch: BatchMode,
    pub list: ListMode,
    /// The largest page served, whatever `limit` asks (to force pagination).
    pub page_cap: usize,
    /// The next this many requests answer 429 with `X-Rate-Limit-Retry: retry_secs`.
    pub rate_limit_next: u32,
    pub retry_secs: u64,
    /// Every endpoint answers 503.
    pub down: bool,
    /// Every endpoint answers 200 with an HTML page (a captive portal or a misconfigured proxy).
    pub garbage: bool,
    /// Stats of these gateways answer 403 `insufficient_gateway_rights` (missing status right).
    pub stats_forbidden: Vec<String>,
    /// Calls per endpoint: `list`, `get`, `stats`, `batch`, each also as `<kind>@<cluster>`.
    pub calls: BTreeMap<String, u64>,
    /// When each per-gateway stats call arrived, to see they are spread out.
    pub stats_times: Vec<std::time::Instant>,
    /// Query strings of the list calls.
    pub list_queries: Vec<String>,
    /// Requests without the right key.
    pub unauthorized: u64,
    /// The host:port of each cluster.
    pub cluster_addrs: [String; 2],
    answers: u64,
}

impl SimState {
    pub fn gateway(&mut self, id: &str) -> &mut SimGateway {
        self.gateways
            .iter_mut()
            .find(|g| g.id == id)
            .unwrap_or_else(|| panic!("no simulated gateway {id}"))
    }

    pub fn calls(&self, kind: &str) -> u64 {
        self.calls.get(kind).copied().unwrap_or(0)
    }
}

/// A running simulated Stack.
pub struct TtnSim {
    /// `http://127.0.0.1:PORT`: Identity Server and home Gateway Server.
    pub url: String,
    /// `127.0.0.1:PORT` of the other cluster (Gateway Server only).
    pub other_cluster: String,
    state: Arc<Mutex<SimState>>,
}

impl TtnSim {
    /// Starts both clusters with `gateways`, accepting `api_key`, until `cancel` fires.
    pub async fn start(
        cancel: CancellationToken,
        api_key: &str,
        gateways: Vec<SimGateway>,
    ) -> anyhow::Result<TtnSim> {
        let home = TcpListener::bind("127.0.0.1:0").await?;
        let other = TcpListener::bind("127.0.0.1:0").await?;
        let addrs = [
            home.local_addr()?.to_string(),
            other.local_addr()?.to_string(),
        ];
        let state = Arc::new(Mutex::new(SimState {
            api_key: api_key.to_string(),
            gateways,
            batch: BatchMode::Works,
            list: ListMode::Works,
            page_cap: 1000,
            rate_limit_next: 0,
            retry_secs: 1,
            down: false,
            garbage: false,
            stats_forbidden: Vec::new(),
            calls: BTreeMap::new(),
            stats_times: Vec::new(),
            list_queries: Vec::new(),
            unauthorized: 0,
            cluster_addrs: addrs.clone(),
            answers: 0,
        }));
        for (cluster, listener) in [(0usize, home), (1, other)] {
            let st = state.clone();
            tokio::spawn(serve(listener, cancel.clone(), move |req| {
                let st = st.clone();
                async move { handle(&st, cluster, req) }
            }));
        }
        Ok(TtnSim {
            url: format!("http://{}", addrs[0]),
            other_cluster: addrs[1].clone(),
            state,
        })
    }

    /// Changes or reads the simulation.
    pub fn with<T>(&self, f: impl FnOnce(&mut SimState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Calls so far to one endpoint kind (`list`, `get`, `stats`, `batch`, or `stats@1` …).
    pub fn calls(&self, kind: &str) -> u64 {
        self.with(|s| s.calls(kind))
    }

    /// The quirky standard fleet: a healthy UDP gateway, a busy one near its duty-cycle limit,
    /// one disconnected 3 h ago (200 with `disconnected_at`), one gone for days (404), a Basics
    /// Station gateway without EUI on the other cluster.
    pub fn fleet(prefix: &str) -> Vec<SimGateway> {
        let now = SystemTime::now();
        let healthy = SimGateway {
            name: "Rooftop \"Noord\"".to_string(),
            ..SimGateway::new(&format!("{prefix}healthy"), Some("B827EBFFFE000001"))
        };
        let busy = SimGateway {
            name: "Harbour".to_string(),
            uplink_rate: 20.0,
            downlink_share: 0.3,
            utilization: 0.0093,
            protocol: "mqtt".to_string(),
            ..SimGateway::new(&format!("{prefix}busy"), Some("B827EBFFFE000002"))
        };
        let mut recent = SimGateway {
            name: "Farm".to_string(),
            ..SimGateway::new(&format!("{prefix}disconnected"), Some("B827EBFFFE000003"))
        };
        recent.link = Link::Disconnected {
            since: now - Duration::from_secs(30 * 3600),
            at: now - Duration::from_secs(3 * 3600),
        };
        let gone = SimGateway {
            name: "Old barn".to_string(),
            link: Link::Never,
            location: None,
            ..SimGateway::new(&format!("{prefix}gone"), Some("B827EBFFFE000004"))
        };
        let station = SimGateway {
            name: "Station on nam1".to_string(),
            cluster: 1,
            protocol: "semtechws/lbslns".to_string(),
            frequency_plan: "US_902_928_FSB_2".to_string(),
            utilization: 0.0,
            location: Some((40.7128, -74.006, 0.0)),
            ..SimGateway::new(&format!("{prefix}station"), None)
        };
        vec![healthy, busy, recent, gone, station]
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// RFC 3339 UTC with exactly `digits` (0–9) fractional digits.
pub fn rfc3339(t: SystemTime, digits: usize) -> String {
    let s = humantime::format_rfc3339_nanos(t).to_string();
    // "2024-05-01T12:34:56.123456789Z"
    let (head, frac) = s.trim_end_matches('Z').split_once('.').unwrap_or((&s, ""));
    let d = digits.min(9).min(frac.len());
    if d == 0 {
        format!("{head}Z")
    } else {
        format!("{head}.{}Z", &frac[..d])
    }
}

fn secs_since(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).unwrap_or_default().as_secs_f64()
}

/// The gateway as the Identity Server returns it (`masked`: with the asked fields).
fn registry_json(g: &SimGateway, masked: bool, addrs: &[String; 2]) -> Value {
    let mut ids = Map::new();
    ids.insert("gateway_id".into(), json!(g.id));
    if let Some(e) = &g.eui {
        ids.insert("eui".into(), json!(e));
    }
    let mut o = Map::new();
    o.insert("ids".into(), Value::Object(ids));
    o.insert("created_at".into(), json!("2021-03-04T05:06:07.891Z"));
    o.insert("updated_at".into(), json!("2024-01-02T03:04:05Z"));
    if masked {
        o.insert("name".into(), json!(g.name));
        o.insert("frequency_plan_ids".into(), json!([g.frequency_plan]));
        let addr = g
            .server_address
            .clone()
            .unwrap_or_else(|| addrs[g.cluster].clone());
        o.insert("gateway_server_address".into(), json!(addr));
        o.insert("status_public".into(), json!(true));
        // location_public false is omitted, as false booleans are.
        if let Some((lat, lon, alt)) = g.location {
            o.insert(
                "antennas".into(),
                json!([{"gain": 3, "location": {"latitude": lat, "longitude": lon,
                    "altitude": alt, "source": "SOURCE_REGISTRY"}}]),
            );
        }
    }
    Value::Object(o)
}

/// `GatewayConnectionStats` of a gateway with a connection (live or ended), else `None`.
fn stats_json(
    g: &SimGateway,
    now: SystemTime,
    digits: usize,
    enums_as_numbers: bool,
) -> Option<Value> {
    let (since, end) = match g.link {
        Link::Connected { since } => (since, now),
        Link::Disconnected { since, at } if secs_since(at, now) < RETENTION.as_secs_f64() => {
            (since, at)
        }
        _ => return None,
    };
    let ts = |t: SystemTime| json!(rfc3339(t, digits));
    let up_secs = secs_since(since, end);
    let uplinks = (up_secs * g.uplink_rate) as u64;
    let downlinks = (uplinks as f64 * g.downlink_share) as u64;
    let acks = downlinks * 9 / 10;
    let mut o = Map::new();
    o.insert("connected_at".into(), ts(since));
    if let Link::Disconnected { at, .. } = g.link {
        o.insert("disconnected_at".into(), ts(at));
    }
    o.insert("protocol".into(), json!(g.protocol));
    let lbs = g.protocol.starts_with("semtechws");
    let status_at = end - Duration::from_millis(((up_secs * 1000.0) as u64).min(4_500));
    if lbs {
        // Basics Station: no periodic status; versions only.
        o.insert(
            "last_status".into(),
            json!({"versions": {"station": "2.0.6(rpi/std)", "firmware": "1.0", "package": "2.0.6"}}),
        );
    } else {
        o.insert("last_status_received_at".into(), ts(status_at));
        let source = if enums_as_numbers {
            json!(1)
        } else {
            json!("SOURCE_GPS")
        };
        let loc = g.location.unwrap_or((0.0, 0.0, 0.0));
        o.insert(
            "last_status".into(),
            json!({
                "time": ts(status_at),
                "boot_time": ts(since - Duration::from_secs(600)),
                "versions": {"ttn-lw-gateway-server": "3.35.2", "fpga": "31", "hal": "5.0.1"},
                "antenna_locations": [{"latitude": loc.0, "longitude": loc.1, "altitude": loc.2 as i64, "accuracy": 5, "source": source}],
                "ip": ["192.0.2.10"],
                "metrics": {"rxin": (uplinks % 50) + 14, "rxok": (uplinks % 40) + 9, "rxfw": (uplinks % 40) + 9,
                    "ackr": 100, "txin": downlinks % 5, "txok": downlinks % 5, "temp": 41.5},
                "advanced": {"pkt_fwd": {"platform": "sim"}}
            }),
        );
    }
    if uplinks > 0 {
        o.insert(
            "last_uplink_received_at".into(),
            ts(end - Duration::from_millis(700)),
        );
        o.insert("uplink_count".into(), json!(uplinks.to_string()));
    }
    if downlinks > 0 {
        o.insert(
            "last_downlink_received_at".into(),
            ts(end - Duration::from_secs(2)),
        );
        o.insert("downlink_count".into(), json!(downlinks.to_string()));
        o.insert(
            "round_trip_times".into(),
            json!({"min": "0.041s", "max": "0.188002113s", "median": "0.067s", "count": downlinks.min(20)}),
        );
    } else {
        // "Never" sometimes arrives as the zero time rather than being left out.
        o.insert(
            "last_downlink_received_at".into(),
            json!("0001-01-01T00:00:00Z"),
        );
    }
    if acks > 0 {
        o.insert(
            "last_tx_acknowledgment_received_at".into(),
            ts(end - Duration::from_secs(2)),
        );
        o.insert("tx_acknowledgment_count".into(), json!(acks.to_string()));
    }
    let mut band = Map::new();
    band.insert("min_frequency".into(), json!("863000000"));
    band.insert("max_frequency".into(), json!("865000000"));
    band.insert("downlink_utilization_limit".into(), json!(0.001));
    let mut main = Map::new();
    main.insert("min_frequency".into(), json!("868000000"));
    main.insert("max_frequency".into(), json!("868600000"));
    main.insert("downlink_utilization_limit".into(), json!(0.01));
    if g.utilization > 0.0 {
        main.insert("downlink_utilization".into(), json!(g.utilization));
    }
    o.insert(
        "sub_bands".into(),
        json!([band, main, {"max_frequency": "18446744073709551615", "downlink_utilization_limit": 1}]),
    );
    o.insert("gateway_remote_address".into(), json!({"ip": "192.0.2.10"}));
    o.insert("some_future_field".into(), json!({"nested": [1, "two"]}));
    Some(Value::Object(o))
}

// ---------------------------------------------------------------------------------------------
// Serving.

fn error_body(code: u32, namespace: &str, name: &str, message: &str, attributes: Value) -> String {
    json!({
        "code": code,
        "message": format!("error:{namespace}:{name} ({message})"),
        "details": [{
            "@type": "type.googleapis.com/ttn.lorawan.v3.ErrorDetails",
            "namespace": namespace, "name": name, "message_format": message,
            "attributes": attributes, "correlation_id": "5f1e9a0c2b7d4e3f", "code": code
        }]
    })
    .to_string()
}

fn with_limits(mut r: Response, available: u64, retry: Option<u64>) -> Response {
    let h = r.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("x-rate-limit-limit", "600".into());
    put("x-rate-limit-available", available.to_string());
    put("x-rate-limit-reset", "60".into());
    if let Some(s) = retry {
        put("x-rate-limit-retry", s.to_string());
    }
    r
}

fn json_response(status: u16, body: String) -> Response {
    with_limits(response(status, "application/json", body), 599, None)
}

fn not_connected(id: &str) -> Response {
    json_response(
        404,
        error_body(
            5,
            "pkg/gatewayserver",
            "not_connected",
            &format!("gateway `{id}@ttn` not connected"),
            json!({"gateway_uid": format!("{id}@ttn")}),
        ),
    )
}

fn no_rights(id: &str) -> Response {
    json_response(
        403,
        error_body(
            7,
            "pkg/auth/rights",
            "no_gateway_rights",
            &format!("no rights for gateway `{id}`"),
            json!({"uid": id}),
        ),
    )
}

fn handle(st: &Mutex<SimState>, cluster: usize, req: Request) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().as_str().to_string();
    let kind = match (method.as_str(), path.as_str()) {
        ("GET", "/api/v3/gateways") => "list",
        ("POST", "/api/v3/gs/gateways/connection/stats") => "batch",
        ("GET", p) if p.starts_with("/api/v3/gs/gateways/") && p.ends_with("/connection/stats") => {
            "stats"
        }
        ("GET", p) if p.starts_with("/api/v3/gateways/") => "get",
        _ => "other",
    };
    *s.calls.entry(kind.to_string()).or_default() += 1;
    *s.calls.entry(format!("{kind}@{cluster}")).or_default() += 1;
    s.answers += 1;
    let digits = (s.answers % 10) as usize;

    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.api_key) {
        s.unauthorized += 1;
        return json_response(
            401,
            error_body(
                16,
                "pkg/auth",
                "api_key_not_found",
                "API key not found",
                json!({}),
            ),
        );
    }
    if s.rate_limit_next > 0 {
        s.rate_limit_next -= 1;
        let body = error_body(
            8,
            "pkg/ratelimit",
            "rate_limit_exceeded",
            "rate limit exceeded",
            json!({"key": "gs:conn:stats"}),
        );
        return with_limits(
            response(429, "application/json", body),
            0,
            Some(s.retry_secs),
        );
    }
    if s.down {
        return json_response(
            503,
            json!({"code": 14, "message": "upstream unavailable"}).to_string(),
        );
    }
    if s.garbage {
        return response(200, "text/html", "<html><body>Please log in</body></html>");
    }
    let now = SystemTime::now();
    match kind {
        "list" if cluster == 0 => {
            s.list_queries.push(query.clone());
            match s.list {
                ListMode::GatewayKey => return json_response(200, "{}".into()),
                ListMode::Forbidden => {
                    return json_response(
                        403,
                        error_body(
                            7,
                            "pkg/auth/rights",
                            "insufficient_gateway_rights",
                            "insufficient rights for user `alice`",
                            json!({"missing": ["RIGHT_USER_GATEWAYS_LIST"], "uid": "alice"}),
                        ),
                    )
                }
                ListMode::Works => {}
            }
            let q: BTreeMap<String, String> = url_query(&query);
            let masked = q.get("field_mask").is_some_and(|m| m.contains("name"));
            let total = s.gateways.len();
            let limit = q
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0)
                .unwrap_or(total.max(1))
                .min(s.page_cap.max(1));
            let page = q
                .get("page")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            let mut sorted: Vec<&SimGateway> = s.gateways.iter().collect();
            sorted.sort_by(|a, b| a.id.cmp(&b.id));
            let items: Vec<Value> = sorted
                .iter()
                .skip((page - 1) * limit)
                .take(limit)
                .map(|g| registry_json(g, masked, &s.cluster_addrs))
                .collect();
            let body = if items.is_empty() {
                "{}".to_string()
            } else {
                json!({ "gateways": items }).to_string()
            };
            let mut r = json_response(200, body);
            if let Ok(v) = hyper::header::HeaderValue::from_str(&total.to_string()) {
                r.headers_mut().insert("x-total-count", v);
            }
            r
        }
        "get" if cluster == 0 => {
            let id = path.trim_start_matches("/api/v3/gateways/").to_string();
            let masked = url_query(&query)
                .get("field_mask")
                .is_some_and(|m| m.contains("name"));
            match s.gateways.iter().find(|g| g.id == id) {
                Some(g) => {
                    json_response(200, registry_json(g, masked, &s.cluster_addrs).to_string())
                }
                None => no_rights(&id),
            }
        }
        "stats" => {
            s.stats_times.push(std::time::Instant::now());
            let id = path
                .trim_start_matches("/api/v3/gs/gateways/")
                .trim_end_matches("/connection/stats")
                .to_string();
            if s.stats_forbidden.contains(&id) {
                return json_response(
                    403,
                    error_body(
                        7,
                        "pkg/auth/rights",
                        "insufficient_gateway_rights",
                        &format!("insufficient rights for gateway `{id}@ttn`"),
                        json!({"missing": ["RIGHT_GATEWAY_STATUS_READ"], "uid": format!("{id}@ttn")}),
                    ),
                );
            }
            let Some(g) = s.gateways.iter().find(|g| g.id == id) else {
                return no_rights(&id);
            };
            if g.cluster != cluster {
                return not_connected(&id);
            }
            match stats_json(g, now, digits, false) {
                Some(v) => json_response(200, v.to_string()),
                None => not_connected(&id),
            }
        }
        "batch" => {
            match s.batch {
                BatchMode::Forbidden => {
                    return json_response(
                        403,
                        error_body(
                            7,
                            "pkg/auth/rights",
                            "no_gateway_rights",
                            "no rights for gateway `gw@ttn`",
                            json!({"uid": "gw@ttn"}),
                        ),
                    )
                }
                BatchMode::NotImplemented => {
                    return json_response(
                        404,
                        json!({"code": 5, "message": "Not Found"}).to_string(),
                    )
                }
                BatchMode::Works => {}
            }
            let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
            let ids: Vec<String> = body
                .get("gateway_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("gateway_id").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() || ids.len() > 100 {
                return json_response(
                    400,
                    error_body(
                        3,
                        "pkg/errors",
                        "validation",
                        "invalid `gateway_ids`",
                        json!({"field": "gateway_ids", "reason": "must contain between 1 and 100 items"}),
                    ),
                );
            }
            if let Some(bad) = ids
                .iter()
                .find(|id| !s.gateways.iter().any(|g| &g.id == *id))
            {
                return no_rights(bad);
            }
            let mut entries = Map::new();
            for id in &ids {
                let g = s
                    .gateways
                    .iter()
                    .find(|g| &g.id == id)
                    .expect("checked above");
                if g.cluster == cluster && g.is_connected() {
                    if let Some(v) = stats_json(g, now, digits, true) {
                        entries.insert(id.clone(), v);
                    }
                }
            }
            if entries.is_empty() {
                json_response(200, "{}".into())
            } else {
                json_response(200, json!({ "entries": entries }).to_string())
            }
        }
        _ => json_response(404, json!({"code": 5, "message": "Not Found"}).to_string()),
    }
}

/// A query string as a map (`%2C` and `+` decoded; the sim needs no more).
fn url_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.replace("%2C", ",").replace("%2c", ",").replace('+', " "),
            )
        })
        .collect()
}

/// The demo's simulated Stack: the standard fleet, polled every `interval_secs`.
pub async fn start_demo(
    cancel: CancellationToken,
    interval_secs: u64,
) -> anyhow::Result<crate::sim::DemoUpstream> {
    let key = "NNSXS.DEMOKEY.NOTASECRET";
    let sim = TtnSim::start(cancel, key, TtnSim::fleet("demo-gw-")).await?;
    let source_toml = format!(
        "[[source]]\ntype = \"ttn\"\nname = \"ttn\"\nurl = \"{}\"\napi_key = \"{key}\"\ninterval = \"{}s\"\n",
        sim.url,
        interval_secs.max(1)
    );
    Ok(crate::sim::DemoUpstream {
        source_toml,
        banner: format!(
            "a simulated The Things Stack at {} (5 gateways, a second cluster at {})",
            sim.url, sim.other_cluster
        ),
        showcase: vec![
            "ttn_gateway_connected{".to_string(),
            "ttn_gateway_uplink_messages_total{".to_string(),
            "ttn_gateway_last_seen_timestamp_seconds{".to_string(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ttn::api;

    #[test]
    fn timestamps_with_every_digit_count_parse_back() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_714_566_896_123_456_789);
        for d in 0..=9 {
            let s = rfc3339(t, d);
            let back = api::timestamp_secs(&json!(s)).unwrap();
            assert!((back - 1_714_566_896.123_456_8).abs() < 1.0, "{s}");
        }
        assert_eq!(rfc3339(t, 0), "2024-05-01T12:34:56Z");
        assert_eq!(rfc3339(t, 3), "2024-05-01T12:34:56.123Z");
    }

    #[test]
    fn stats_have_the_quirks() {
        let fleet = TtnSim::fleet("t-");
        let now = SystemTime::now();
        let v = stats_json(&fleet[0], now, 3, false).unwrap();
        assert!(v["uplink_count"].is_string());
        assert_eq!(v["round_trip_times"]["median"], "0.067s");
        let s = api::parse_stats(&v);
        assert!(s.is_connected());
        assert!(s.uplink_count.unwrap() > 1000);
        assert_eq!(
            api::parse_stats(&stats_json(&fleet[0], now, 3, true).unwrap()).reported_location,
            s.reported_location
        );
        let d = api::parse_stats(&stats_json(&fleet[2], now, 5, false).unwrap());
        assert!(!d.is_connected() && d.disconnected_at.is_some());
        assert!(stats_json(&fleet[3], now, 0, false).is_none());
        let lbs = api::parse_stats(&stats_json(&fleet[4], now, 9, false).unwrap());
        assert!(lbs.status_metrics.is_empty() && lbs.last_status_received_at.is_none());
    }
}
