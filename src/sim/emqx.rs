//! A simulated EMQX v5 REST API (`/api/v5/clients`), with the shapes and quirks of the real
//! one: HTTP Basic with an API key and secret, paging with `meta.hasnext` (and `count` that may
//! be left out), `limit` above 10000 refused, a repeated `clientid` filter honoured (5.6+) or
//! only its last value kept (older brokers), `null` usernames and dates, `"infinity"` maxima,
//! dotted literal keys, `+HH:MM` offsets with 3 fractional digits, unknown extra keys, durable
//! sessions without counters, and switches for faults (5xx `NODE_DOWN`, a page that fails).
//!
//! Tests hold an [`EmqxSim`] and drive it: add, remove, connect, disconnect and reconnect
//! clients, advance traffic with [`EmqxSim::tick`], flip modes, and count requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::server::{response, serve, Request, Response};

/// One simulated MQTT client (or session).
#[derive(Debug, Clone)]
pub struct SimClient {
    pub id: String,
    /// `None` is sent as `null`, as EMQX does for clients without one.
    pub username: Option<String>,
    pub connected: bool,
    /// A clean-session client vanishes from the list the moment it disconnects.
    pub clean_start: bool,
    /// A durable session (5.7+): listed while disconnected, without any counters.
    pub durable: bool,
    pub created_at_ms: i64,
    pub connected_at_ms: i64,
    pub disconnected_at_ms: Option<i64>,
    /// Send `created_at` and `connected_at` as `null`.
    pub null_dates: bool,
    pub keepalive: u64,
    pub subscriptions: u64,
    pub mqueue_len: u64,
    /// Counters by EMQX key; they restart at 0 on every reconnect.
    pub counters: BTreeMap<String, u64>,
    /// Messages published per [`EmqxSim::tick`] (half QoS 0, half QoS 1).
    pub publish_per_tick: u64,
    /// Messages delivered to the client per tick (QoS 0).
    pub deliver_per_tick: u64,
    /// Messages dropped per tick on the way to the client (queue full).
    pub drop_per_tick: u64,
}

impl SimClient {
    /// A connected clean-session client that publishes one message per tick.
    pub fn new(id: &str) -> SimClient {
        let now = crate::clock::system_now_ms();
        SimClient {
            id: id.to_string(),
            username: Some(format!("user-{id}")),
            connected: true,
            clean_start: true,
            durable: false,
            created_at_ms: now,
            connected_at_ms: now,
            disconnected_at_ms: None,
            null_dates: false,
            keepalive: 60,
            subscriptions: 1,
            mqueue_len: 0,
            counters: BTreeMap::new(),
            publish_per_tick: 1,
            deliver_per_tick: 0,
            drop_per_tick: 0,
        }
    }
    pub fn publishing(mut self, per_tick: u64) -> SimClient {
        self.publish_per_tick = per_tick;
        self
    }
    pub fn receiving(mut self, per_tick: u64) -> SimClient {
        self.deliver_per_tick = per_tick;
        self
    }
    pub fn dropping(mut self, per_tick: u64) -> SimClient {
        self.drop_per_tick = per_tick;
        self
    }
    /// A persistent session (`clean_start: false`): stays listed when it disconnects.
    pub fn persistent(mut self) -> SimClient {
        self.clean_start = false;
        self
    }
    /// A durable persistent session: listed without counters while disconnected.
    pub fn durable(mut self) -> SimClient {
        self.clean_start = false;
        self.durable = true;
        self
    }
    pub fn without_username(mut self) -> SimClient {
        self.username = None;
        self
    }
    pub fn with_null_dates(mut self) -> SimClient {
        self.null_dates = true;
        self
    }
    /// Created and connected `secs` ago.
    pub fn aged(mut self, secs: i64) -> SimClient {
        self.created_at_ms -= secs * 1000;
        self.connected_at_ms -= secs * 1000;
        self
    }

    fn add(&mut self, key: &str, n: u64) {
        *self.counters.entry(key.to_string()).or_insert(0) += n;
    }

    fn tick(&mut self) {
        let p = self.publish_per_tick;
        let (q0, q1) = (p / 2 + p % 2, p / 2);
        self.add("recv_msg", p);
        self.add("recv_msg.qos0", q0);
        self.add("recv_msg.qos1", q1);
        self.add("recv_pkt", p + q1 + 1);
        self.add("recv_cnt", p + q1 + 1);
        self.add("recv_oct", p * 120 + q1 * 4 + 2);
        let d = self.deliver_per_tick;
        self.add("send_msg", d);
        self.add("send_msg.qos0", d);
        self.add("send_pkt", d + q1 + 1);
        self.add("send_cnt", d + q1 + 1);
        self.add("send_oct", d * 80 + q1 * 4 + 2);
        self.add("send_msg.dropped", self.drop_per_tick);
        self.add("send_msg.dropped.queue_full", self.drop_per_tick);
        self.add("mqueue_dropped", self.drop_per_tick);
    }
}

/// A fault the simulator answers with instead of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Every request: 500 `{"code":"NODE_DOWN"}`.
    NodeDown,
    /// List pages from this one on answer 500 (page 1 still works).
    FailFromPage(u64),
    /// Every request: 200 with a body that is not JSON.
    Garbage,
}

/// Everything the simulator holds; tests change it through [`EmqxSim`].
#[derive(Debug)]
pub struct SimState {
    pub api_key: String,
    pub api_secret: String,
    /// Clients in the order the broker lists them.
    pub clients: Vec<SimClient>,
    /// EMQX 5.6+: every `clientid` counts and `fields` is honoured; before, only the last
    /// `clientid` counts and `fields` is ignored.
    pub multi_clientid: bool,
    pub fault: Fault,
    /// Leave `meta.count` out (as some versions and large listings do).
    pub omit_count: bool,
    /// Silently serve at most this many clients per page (a proxy or a patched broker),
    /// saying so only in `meta.limit`.
    pub cap_limit: Option<u64>,
    /// Serve every client on one page whatever `limit` asks (a broken proxy or broker).
    pub ignore_limit: bool,
    /// Stop the demo's background traffic (tests never start it).
    pub frozen: bool,
    /// The node's UTC offset in minutes, used in every date.
    pub offset_minutes: i32,
    /// Every request, as `path?query`, in order.
    pub requests: Vec<String>,
}

/// A running simulator; stops when dropped.
pub struct EmqxSim {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port` (the dashboard base; the API is under `/api/v5`).
    pub url: String,
    state: Arc<Mutex<SimState>>,
    cancel: CancellationToken,
}

impl Drop for EmqxSim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl EmqxSim {
    /// Starts on 127.0.0.1 with an empty broker (5.6+ mode, `+02:00` dates).
    pub async fn start(api_key: &str, api_secret: &str) -> anyhow::Result<EmqxSim> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(SimState {
            api_key: api_key.to_string(),
            api_secret: api_secret.to_string(),
            clients: Vec::new(),
            multi_clientid: true,
            fault: Fault::None,
            omit_count: false,
            cap_limit: None,
            ignore_limit: false,
            frozen: false,
            offset_minutes: 120,
            requests: Vec::new(),
        }));
        let cancel = CancellationToken::new();
        let s = state.clone();
        tokio::spawn(serve(listener, cancel.clone(), move |req| {
            let s = s.clone();
            async move { handle(&s, &req) }
        }));
        Ok(EmqxSim {
            addr,
            url: format!("http://{addr}"),
            state,
            cancel,
        })
    }

    /// The state, locked (a panicked holder cannot leave it half-changed in a way that matters).
    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, c: SimClient) {
        let mut s = self.state();
        s.clients.retain(|x| x.id != c.id);
        s.clients.push(c);
    }

    pub fn remove(&self, id: &str) {
        self.state().clients.retain(|c| c.id != id);
    }

    fn with_client<R>(&self, id: &str, f: impl FnOnce(&mut SimClient) -> R) -> Option<R> {
        self.state().clients.iter_mut().find(|c| c.id == id).map(f)
    }

    /// Advances traffic: every connected client publishes and receives once.
    pub fn tick(&self) {
        for c in self.state().clients.iter_mut().filter(|c| c.connected) {
            c.tick();
        }
    }

    /// The client drops its connection and connects again: counters restart at 0, a new
    /// `connected_at`, the same `created_at` for a persistent session (a clean one is new).
    pub fn reconnect(&self, id: &str) {
        self.with_client(id, |c| {
            let now = crate::clock::system_now_ms().max(c.connected_at_ms + 1);
            c.counters.clear();
            c.connected = true;
            c.connected_at_ms = now;
            c.disconnected_at_ms = None;
        });
    }

    /// The client disconnects: a clean session vanishes; a persistent one stays listed with
    /// `connected: false` and `disconnected_at`.
    pub fn disconnect(&self, id: &str) {
        let mut s = self.state();
        let Some(i) = s.clients.iter().position(|c| c.id == id) else {
            return;
        };
        if s.clients[i].clean_start {
            s.clients.remove(i);
        } else {
            let c = &mut s.clients[i];
            c.connected = false;
            c.disconnected_at_ms = Some(crate::clock::system_now_ms());
        }
    }

    /// Changes one client's counter (e.g. to make it jump or go back).
    pub fn set_counter(&self, id: &str, key: &str, value: u64) {
        self.with_client(id, |c| {
            c.counters.insert(key.to_string(), value);
        });
    }

    pub fn set_fault(&self, f: Fault) {
        self.state().fault = f;
    }

    /// True: EMQX 5.6+ (repeated `clientid` honoured); false: only the last one counts.
    pub fn set_multi_clientid(&self, on: bool) {
        self.state().multi_clientid = on;
    }

    /// True: every client on one page, whatever `limit` asks.
    pub fn set_page_limit_ignored(&self, on: bool) {
        self.state().ignore_limit = on;
    }

    pub fn set_credentials(&self, key: &str, secret: &str) {
        let mut s = self.state();
        s.api_key = key.to_string();
        s.api_secret = secret.to_string();
    }

    /// Every request so far, as `path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

fn json_response(status: u16, v: &Value) -> Response {
    response(status, "application/json", v.to_string())
}

fn error(status: u16, code: &str, message: &str) -> Response {
    json_response(status, &json!({ "code": code, "message": message }))
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn authorized(req: &Request, s: &SimState) -> bool {
    let Some(h) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    raw == format!("{}:{}", s.api_key, s.api_secret).as_bytes()
}

fn handle(state: &Mutex<SimState>, req: &Request) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    s.requests.push(pq.clone());
    if !authorized(req, &s) {
        return error(401, "BAD_API_KEY_OR_SECRET", "Check api_key/api_secret");
    }
    if req.method() != hyper::Method::GET {
        return error(405, "METHOD_NOT_ALLOWED", "Method not allowed");
    }
    match s.fault {
        Fault::NodeDown => return error(500, "NODE_DOWN", "emqx@127.0.0.1 is down"),
        Fault::Garbage => return response(200, "application/json", "<html>proxy error</html>"),
        _ => {}
    }
    // Repeated slashes (a base URL ending in `/`) are harmless, as behind most proxies.
    let segs: Vec<&str> = req
        .uri()
        .path()
        .split('/')
        .filter(|x| !x.is_empty())
        .collect();
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://sim{pq}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    match segs.as_slice() {
        ["api", "v5", "clients"] => list(&s, &query),
        ["api", "v5", "clients", id] => {
            let Some(id) = percent_decode(id) else {
                return error(400, "BAD_REQUEST", "bad client id");
            };
            match s.clients.iter().find(|c| c.id == id) {
                Some(c) => json_response(200, &render(c, s.offset_minutes)),
                None => error(404, "CLIENTID_NOT_FOUND", "Client ID not found"),
            }
        }
        _ => error(404, "NOT_FOUND", "Request Path Not Found"),
    }
}

fn list(s: &SimState, query: &[(String, String)]) -> Response {
    let get = |k: &'static str| {
        query
            .iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    // A missing number takes its default; a bad one is a 400, as EMQX's schema check does.
    let num = |k: &'static str, default: u64| -> Option<u64> {
        match get(k).next_back() {
            None => Some(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1),
        }
    };
    let Some(page) = num("page", 1) else {
        return error(400, "BAD_REQUEST", "page: bad value");
    };
    let limit = match num("limit", 100) {
        Some(l) if l > 10_000 => {
            return error(400, "BAD_REQUEST", "limit: should be less than 10000")
        }
        Some(l) => l,
        None => return error(400, "BAD_REQUEST", "limit: bad value"),
    };
    let limit = s.cap_limit.map_or(limit, |c| limit.min(c));
    let limit = if s.ignore_limit {
        u32::MAX as u64
    } else {
        limit
    };
    if let Fault::FailFromPage(n) = s.fault {
        if page >= n {
            return error(500, "INTERNAL_ERROR", "rpc timeout");
        }
    }
    let mut ids: Vec<&str> = get("clientid").collect();
    if !s.multi_clientid && ids.len() > 1 {
        ids = ids.split_off(ids.len() - 1);
    }
    let like = get("like_clientid").next_back();
    let username = get("username").next_back();
    let conn_state = get("conn_state").next_back();
    let matching: Vec<&SimClient> = s
        .clients
        .iter()
        .filter(|c| ids.is_empty() || ids.contains(&c.id.as_str()))
        .filter(|c| like.is_none_or(|l| c.id.contains(l)))
        .filter(|c| username.is_none_or(|u| c.username.as_deref() == Some(u)))
        .filter(|c| conn_state.is_none_or(|st| (st == "connected") == c.connected))
        .collect();
    let fields: Option<Vec<&str>> = get("fields")
        .next_back()
        .filter(|f| s.multi_clientid && *f != "all")
        .map(|f| f.split(',').map(str::trim).collect());
    let start = ((page - 1) * limit) as usize;
    let data: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(limit as usize)
        .map(|c| {
            let mut v = render(c, s.offset_minutes);
            if let (Some(f), Value::Object(o)) = (&fields, &mut v) {
                o.retain(|k, _| f.contains(&k.as_str()));
            }
            v
        })
        .collect();
    let mut meta = json!({
        "page": page,
        "limit": limit,
        "hasnext": (start + data.len()) < matching.len(),
    });
    if !s.omit_count {
        meta["count"] = json!(matching.len());
    }
    json_response(200, &json!({ "data": data, "meta": meta }))
}

/// A date as EMQX writes it: RFC 3339, 3 fractional digits, the node's `+HH:MM` offset.
pub fn format_date(ms: i64, offset_minutes: i32) -> String {
    let local = ms + offset_minutes as i64 * 60_000;
    let (days, rem) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, frac) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}{sign}{:02}:{:02}",
        off / 60,
        off % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Every counter key a connected client object carries.
const ALL_COUNTERS: [&str; 21] = [
    "recv_cnt",
    "recv_msg",
    "recv_msg.qos0",
    "recv_msg.qos1",
    "recv_msg.qos2",
    "recv_msg.dropped",
    "recv_msg.dropped.await_pubrel_timeout",
    "recv_oct",
    "recv_pkt",
    "send_cnt",
    "send_msg",
    "send_msg.qos0",
    "send_msg.qos1",
    "send_msg.qos2",
    "send_msg.dropped",
    "send_msg.dropped.expired",
    "send_msg.dropped.queue_full",
    "send_msg.dropped.too_large",
    "send_oct",
    "send_pkt",
    "mqueue_dropped",
];

/// A client object as EMQX 5.x lists it.
pub fn render(c: &SimClient, offset_minutes: i32) -> Value {
    let date = |ms: i64| json!(format_date(ms, offset_minutes));
    let mut o = Map::new();
    o.insert("clientid".into(), json!(c.id));
    o.insert("username".into(), json!(c.username));
    o.insert("connected".into(), json!(c.connected));
    let (created, connected_at) = if c.null_dates {
        (Value::Null, Value::Null)
    } else {
        (date(c.created_at_ms), date(c.connected_at_ms))
    };
    o.insert("created_at".into(), created);
    o.insert("connected_at".into(), connected_at);
    if let Some(ms) = c.disconnected_at_ms {
        o.insert("disconnected_at".into(), date(ms));
    }
    o.insert("keepalive".into(), json!(c.keepalive));
    o.insert("clean_start".into(), json!(c.clean_start));
    o.insert(
        "expiry_interval".into(),
        json!(if c.clean_start { 0 } else { 7200 }),
    );
    o.insert("node".into(), json!("emqx@127.0.0.1"));
    o.insert("durable".into(), json!(c.durable));
    o.insert("is_persistent".into(), json!(!c.clean_start));
    o.insert("subscriptions_cnt".into(), json!(c.subscriptions));
    o.insert("subscriptions_max".into(), json!("infinity"));
    if c.durable && !c.connected {
        // A durable session at rest: no connection, so no connection counters or process info.
        return Value::Object(o);
    }
    for (k, v) in [
        ("proto_name", json!("MQTT")),
        ("proto_ver", json!(5)),
        ("ip_address", json!("10.0.0.17")),
        ("port", json!(51_234)),
        ("listener", json!("tcp:default")),
        ("is_bridge", json!(false)),
        ("is_expired", json!(false)),
        ("inflight_cnt", json!(0)),
        ("inflight_max", json!(32)),
        ("mqueue_len", json!(c.mqueue_len)),
        ("mqueue_max", json!(1000)),
        ("awaiting_rel_cnt", json!(0)),
        ("awaiting_rel_max", json!(100)),
        ("heap_size", json!(610)),
        ("mailbox_len", json!(0)),
        ("reductions", json!(31_337)),
        ("mountpoint", Value::Null),
        ("peersni", Value::Null),
        ("client_attrs", json!({})),
        ("enable_authn", json!(true)),
        ("auth_expire_at", Value::Null),
        ("x_future_field", json!({"nested": [1, "two", null]})),
    ] {
        o.insert(k.into(), v);
    }
    for k in ALL_COUNTERS {
        o.insert(k.into(), json!(c.counters.get(k).copied().unwrap_or(0)));
    }
    Value::Object(o)
}

/// Starts the demo's EMQX: two clients publishing, one that reconnects every 2 polls, and a
/// persistent session that stays disconnected. Traffic moves once a second.
pub async fn start_demo(
    cancel: CancellationToken,
    interval_secs: u64,
) -> anyhow::Result<crate::sim::DemoUpstream> {
    let sim = EmqxSim::start("demo-key", "demo-secret").await?;
    sim.add(
        SimClient::new("qingping-DEADBEEF1234")
            .publishing(2)
            .aged(13 * 86_400),
    );
    sim.add(
        SimClient::new("rtl433-livingroom")
            .publishing(5)
            .receiving(1)
            .without_username()
            .aged(3600),
    );
    sim.add(SimClient::new("flaky-plug").publishing(1).persistent());
    let mut archiver = SimClient::new("archiver").persistent().aged(86_400);
    archiver.counters.insert("recv_msg".into(), 42);
    sim.add(archiver);
    sim.disconnect("archiver");
    let url = sim.url.clone();
    let every = Duration::from_secs(2 * interval_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_reconnect = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if sim.state().frozen {
                continue;
            }
            sim.tick();
            if last_reconnect.elapsed() >= every {
                sim.reconnect("flaky-plug");
                last_reconnect = tokio::time::Instant::now();
            }
        }
        drop(sim);
    });
    Ok(crate::sim::DemoUpstream {
        source_toml: format!(
            "[[source]]\ntype = \"emqx\"\nname = \"emqx\"\nurl = \"{url}\"\napi_key = \"demo-key\"\n\
             api_secret = \"demo-secret\"\nbroker = \"DemoEMQX\"\ninterval = \"{interval_secs}s\"\n\
             enable_dates = true\nclients = [\n  {{ client_id = \"qingping-DEADBEEF1234\", alias = \"QingpingCO2_Room1\" }},\n  \
             {{ client_id = \"rtl433-livingroom\", alias = \"RTL433_Room1\" }},\n  {{ client_id = \"flaky-plug\", alias = \"FlakyPlug\" }},\n  \
             {{ client_id = \"archiver\" }},\n]\n"
        ),
        banner: format!("a simulated EMQX at {url} (one client reconnects every {}s)", every.as_secs()),
        showcase: vec![
            "emqx_client_monitor_connected{alias=".into(),
            "emqx_client_monitor_reconnects_total{alias=\"FlakyPlug\"".into(),
            "emqx_client_monitor_messages_processed_total{alias=\"FlakyPlug\",broker=\"DemoEMQX\",client_id=\"flaky-plug\",direction=\"rx\"".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_look_like_emqx() {
        // 2025-11-22T00:51:28.905Z
        assert_eq!(
            format_date(1_763_772_688_905, 120),
            "2025-11-22T02:51:28.905+02:00"
        );
        assert_eq!(
            format_date(1_763_772_688_905, -330),
            "2025-11-21T19:21:28.905-05:30"
        );
        let back = crate::sources::emqx::object::parse_rfc3339(&format_date(1_763_772_688_905, 60));
        assert_eq!(back, Some(1_763_772_688.905));
    }

    #[test]
    fn durable_session_at_rest_has_no_counters() {
        let mut c = SimClient::new("d").durable();
        c.connected = false;
        let v = render(&c, 0);
        assert!(v.get("recv_msg").is_none());
        assert_eq!(v["subscriptions_max"], "infinity");
        c.connected = true;
        let v = render(&c, 0);
        assert_eq!(v["recv_msg.qos0"], 0);
    }

    #[tokio::test]
    async fn pages_filters_and_errors() {
        let sim = EmqxSim::start("k", "s").await.unwrap();
        for i in 0..5 {
            sim.add(SimClient::new(&format!("c{i}")));
        }
        sim.add(SimClient::new("a/b c"));
        let http = reqwest::Client::new();
        let get = |path: String, secret: &'static str| {
            let http = http.clone();
            let url = format!("{}{path}", sim.url);
            async move {
                let r = http
                    .get(url)
                    .basic_auth("k", Some(secret))
                    .send()
                    .await
                    .unwrap();
                let st = r.status().as_u16();
                (
                    st,
                    serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
                )
            }
        };
        let (st, v) = get("/api/v5/clients?page=2&limit=4".into(), "s").await;
        assert_eq!(st, 200);
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["meta"],
            json!({"page": 2, "limit": 4, "count": 6, "hasnext": false})
        );
        let (st, v) = get("/api/v5/clients".into(), "wrong").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (401, Some("BAD_API_KEY_OR_SECRET"))
        );
        let (st, _) = get("/api/v5/clients?limit=10001".into(), "s").await;
        assert_eq!(st, 400);
        let (_, v) = get("/api/v5/clients?clientid=c1&clientid=c3".into(), "s").await;
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        sim.set_multi_clientid(false);
        let (_, v) = get("/api/v5/clients?clientid=c1&clientid=c3".into(), "s").await;
        assert_eq!(v["data"][0]["clientid"], "c3");
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        let (st, v) = get("/api/v5/clients/a%2Fb%20c".into(), "s").await;
        assert_eq!((st, v["clientid"].as_str()), (200, Some("a/b c")));
        let (st, v) = get("/api/v5/clients/nobody".into(), "s").await;
        assert_eq!((st, v["code"].as_str()), (404, Some("CLIENTID_NOT_FOUND")));
        sim.set_fault(Fault::FailFromPage(2));
        assert_eq!(
            get("/api/v5/clients?page=1&limit=2".into(), "s").await.0,
            200
        );
        assert_eq!(
            get("/api/v5/clients?page=2&limit=2".into(), "s").await.0,
            500
        );
        sim.set_fault(Fault::NodeDown);
        let (st, v) = get("/api/v5/clients".into(), "s").await;
        assert_eq!((st, v["code"].as_str()), (500, Some("NODE_DOWN")));
        assert_eq!(sim.requests().len(), 10);
    }
}
