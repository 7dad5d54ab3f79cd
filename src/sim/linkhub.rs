//! A simulated Alcatel LinkHub / TCL 4G router: `POST /jrd/webapi` JSON-RPC 2.0 with the real
//! methods, field names and types (numbers as strings, `IPv4Adrress`), the key and `Referer`
//! checks, HH41 and login models, and the quirks: "no service" payloads, error codes as numbers
//! or strings (always HTTP 200), a model lacking a method, an HTML error page, slow answers, a
//! reboot (connections dropped), signal drift, cell hops and the month-boundary usage reset.
//!
//! Tests drive it through [`Router`]: [`Router::with`] changes anything in [`RouterState`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::server::{response, Response};

/// How the router checks who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// HH41: `_TclRequestVerificationKey` is the credential.
    Hh41 { key: String },
    /// Models that log in: a constant public key, then `Login` → token header.
    Login {
        public_key: String,
        username: String,
        password: String,
    },
}

/// What the router does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// A web server error page (HTML, HTTP 200) instead of JSON.
    Html,
    /// Every answer waits this long first.
    Slow(Duration),
    /// Rebooting: connections are accepted and dropped without an answer.
    Rebooting,
}

/// Everything the simulated router knows; tests change it through [`Router::with`].
#[derive(Debug, Clone)]
pub struct RouterState {
    pub mode: Mode,
    pub auth: Auth,
    /// Login models: the token currently accepted (`None`: logged out or expired).
    pub token: Option<String>,
    /// Methods this model lacks (answered with "method not found").
    pub missing: BTreeSet<String>,
    /// No service: `GetNetworkInfo` answers the placeholders (`"SINR":"FF"`, `"CellId":"0"`…).
    pub no_service: bool,
    /// The `code` of an auth error (the HH41 sends `-32699`; `json!("-32699")` tests strings).
    pub auth_error_code: Value,
    /// The `code` of a "method not found" error.
    pub missing_error_code: Value,
    /// `result` of each method while in service, keyed by method name.
    pub results: BTreeMap<String, Map<String, Value>>,
    /// Requests per method (including refused ones).
    pub requests: BTreeMap<String, u64>,
    /// Successful logins.
    pub logins: u64,
    /// Requests refused for a wrong key, token or `Referer`.
    pub refused: u64,
    /// Requests whose `Referer` was not `http://<host>/index.html`.
    pub bad_referer: u64,
    /// Index into [`CELLS`] of the current cell.
    pub cell: usize,
    /// State of the pseudo-random drift.
    seed: u64,
}

/// Cells the router hops between: (CellId, eNBID, Band).
pub const CELLS: [(&str, &str, &str); 4] = [
    ("27948290", "109173", "3"),
    ("27948301", "109173", "20"),
    ("31415926", "122718", "7"),
    ("24681357", "96411", "3"),
];

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl RouterState {
    pub fn new(auth: Auth) -> RouterState {
        let mut results = BTreeMap::new();
        results.insert(
            "GetNetworkInfo".to_string(),
            obj(json!({
                "PLMN": "26202", "NetworkType": 8, "NetworkName": "Vodafone.de", "SpnName": "Vodafone",
                "LAC": "", "CellId": CELLS[0].0, "eNBID": CELLS[0].1, "Band": CELLS[0].2,
                "RncId": "", "Roaming": 0, "DomesticRoaming": 0, "SignalStrength": 3,
                "mcc": "262", "mnc": "02", "SINR": "14", "RSRP": "-87", "RSRQ": "-9", "RSSI": "-63",
                "RSCP": "", "EcIo": "", "DL_channel": "1300", "UL_channel": "19300"
            })),
        );
        results.insert(
            "GetSystemStatus".to_string(),
            obj(json!({
                "NetworkType": 8, "NetworkName": "Vodafone.de", "SignalStrength": 3, "Roaming": 0,
                "ConnectionStatus": 2, "Conprofileerror": 0, "ClearCodeReason": 0,
                "TotalConnNum": 4, "curr_num_2g": 3, "curr_num_5g": 1, "WlanState": 1, "SmsState": 1,
                "UsbStatus": 0, "BatteryCap": 0
            })),
        );
        results.insert(
            "GetUsageRecord".to_string(),
            obj(json!({
                "CurrConnTimes": 7385, "HCurrUseUL": 1288490188u64, "HCurrUseDL": 11106127462u64,
                "HUseData": 12394617650u64, "RCurrUseUL": 0, "RCurrUseDL": 0, "RoamUseData": 0,
                "MonthlyPlan": 53687091200u64, "TConnTimes": 918273, "HUseDataValid": 1
            })),
        );
        results.insert(
            "GetConnectionState".to_string(),
            obj(json!({
                "ConnectionStatus": 2, "Conprofileerror": 0, "ClearCodeReason": 0,
                "ConnectionTime": 7385, "UlBytes": 12910592, "DlBytes": 362344448,
                "UlRate": 1200, "DlRate": 56000, "IPv4Adrress": "10.64.12.7", "IPv6Adrress": "",
                "Speed_Dl": 0, "Speed_Ul": 0
            })),
        );
        results.insert(
            "GetSystemInfo".to_string(),
            obj(json!({
                "DeviceName": "LINKHUB HH41", "SwVersion": "HH41_UD_02.00_05", "HwVersion": "HH41NH-2",
                "IMEI": "359999999999999", "IMSI": "262029999999999", "ICCID": "8949029999999999999",
                "MacAddress": "00:11:22:33:44:55", "WebUiVersion": "HH41_UD_02.00_05", "MSISDN": ""
            })),
        );
        RouterState {
            mode: Mode::Normal,
            auth,
            token: None,
            missing: BTreeSet::new(),
            no_service: false,
            auth_error_code: json!(-32699),
            missing_error_code: json!(-32601),
            results,
            requests: BTreeMap::new(),
            logins: 0,
            refused: 0,
            bad_referer: 0,
            cell: 0,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Sets one field of a method's result (e.g. `set("GetNetworkInfo", "SINR", json!("0"))`).
    pub fn set(&mut self, method: &str, field: &str, value: Value) {
        self.results
            .entry(method.to_string())
            .or_default()
            .insert(field.to_string(), value);
    }

    /// A field of a method's result.
    pub fn get(&self, method: &str, field: &str) -> Value {
        self.results
            .get(method)
            .and_then(|m| m.get(field))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Moves to the next cell in [`CELLS`].
    pub fn hop_cell(&mut self) {
        self.set_cell((self.cell + 1) % CELLS.len());
    }

    /// Attaches to cell `i` of [`CELLS`].
    pub fn set_cell(&mut self, i: usize) {
        self.cell = i % CELLS.len();
        let (cell, enb, band) = CELLS[self.cell];
        self.set("GetNetworkInfo", "CellId", json!(cell));
        self.set("GetNetworkInfo", "eNBID", json!(enb));
        self.set("GetNetworkInfo", "Band", json!(band));
    }

    /// The month ends: this month's counters start again near zero.
    pub fn wrap_month(&mut self) {
        self.set("GetUsageRecord", "HCurrUseUL", json!(1024));
        self.set("GetUsageRecord", "HCurrUseDL", json!(4096));
        self.set("GetUsageRecord", "HUseData", json!(5120));
    }

    /// A login token stops being accepted (as after the router's idle timeout).
    pub fn expire_token(&mut self) {
        self.token = None;
    }

    fn next_random(&mut self) -> f64 {
        // xorshift64*: enough for wandering values.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        (self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn wander(&mut self, field: &str, step: f64, lo: f64, hi: f64) {
        let cur = self.get("GetNetworkInfo", field);
        let cur = cur
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .or(cur.as_f64())
            .unwrap_or((lo + hi) / 2.0);
        let next = (cur + (self.next_random() * 2.0 - 1.0) * step).clamp(lo, hi);
        // The router writes these as strings.
        self.set("GetNetworkInfo", field, json!(format!("{}", next.round())));
    }

    /// `secs` pass: signal wanders, the connection ages, data flows.
    pub fn advance(&mut self, secs: u64) {
        self.wander("SINR", 3.0, -5.0, 30.0);
        self.wander("RSRP", 3.0, -115.0, -70.0);
        self.wander("RSRQ", 1.0, -18.0, -5.0);
        self.wander("RSSI", 3.0, -95.0, -50.0);
        let rsrp = self
            .get("GetNetworkInfo", "RSRP")
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(-90.0);
        let bars = ((rsrp + 120.0) / 12.0).clamp(0.0, 4.0).round() as i64;
        self.set("GetNetworkInfo", "SignalStrength", json!(bars));
        self.set("GetSystemStatus", "SignalStrength", json!(bars));
        let up = (secs as f64 * (2000.0 + 8000.0 * self.next_random())) as u64;
        let down = up * 9;
        for (method, field, add) in [
            ("GetUsageRecord", "HCurrUseUL", up),
            ("GetUsageRecord", "HCurrUseDL", down),
            ("GetUsageRecord", "HUseData", up + down),
            ("GetUsageRecord", "CurrConnTimes", secs),
            ("GetConnectionState", "ConnectionTime", secs),
            ("GetConnectionState", "UlBytes", up),
            ("GetConnectionState", "DlBytes", down),
        ] {
            let cur = self.get(method, field).as_u64().unwrap_or(0);
            self.set(method, field, json!(cur + add));
        }
    }

    /// What `method` answers now.
    fn result(&self, method: &str) -> Option<Map<String, Value>> {
        let mut r = self.results.get(method)?.clone();
        if self.no_service {
            match method {
                "GetNetworkInfo" => {
                    for (k, v) in [
                        ("SINR", json!("FF")),
                        ("RSRP", json!("-1")),
                        ("RSRQ", json!("-1")),
                        ("RSSI", json!("")),
                        ("NetworkName", json!("N/A")),
                        ("NetworkType", json!(0)),
                        ("CellId", json!("0")),
                        ("eNBID", json!("")),
                        ("Band", json!("")),
                        ("PLMN", json!("")),
                        ("SignalStrength", json!(-1)),
                    ] {
                        r.insert(k.to_string(), v);
                    }
                }
                "GetSystemStatus" => {
                    r.insert("NetworkType".into(), json!(0));
                    r.insert("NetworkName".into(), json!("N/A"));
                    r.insert("SignalStrength".into(), json!(-1));
                    r.insert("ConnectionStatus".into(), json!(0));
                }
                "GetConnectionState" => {
                    r.insert("ConnectionStatus".into(), json!(0));
                    r.insert("ConnectionTime".into(), json!(0));
                    r.insert("IPv4Adrress".into(), json!(""));
                }
                _ => {}
            }
        }
        Some(r)
    }

    /// Answers one JSON-RPC request body given its headers.
    fn answer(&mut self, body: &[u8], key: &str, token: &str, referer: &str, host: &str) -> Value {
        let req: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return error(Value::Null, json!(-32700), "Parse error"),
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return error(id, json!(-32600), "Invalid Request");
        };
        *self.requests.entry(method.to_string()).or_default() += 1;
        if referer != format!("http://{host}/index.html") {
            self.bad_referer += 1;
            self.refused += 1;
            return error(
                id,
                self.auth_error_code.clone(),
                "Request verification failed",
            );
        }
        let wanted_key = match &self.auth {
            Auth::Hh41 { key } => key,
            Auth::Login { public_key, .. } => public_key,
        };
        if key != wanted_key {
            self.refused += 1;
            return error(
                id,
                self.auth_error_code.clone(),
                "Request verification failed",
            );
        }
        if let Auth::Login {
            username, password, ..
        } = &self.auth
        {
            if method == "Login" {
                let p = req.get("params").cloned().unwrap_or(Value::Null);
                if p.get("UserName").and_then(Value::as_str) != Some(username.as_str())
                    || p.get("Password").and_then(Value::as_str) != Some(password.as_str())
                {
                    return error(id, json!("010101"), "Username or Password is not correct.");
                }
                self.logins += 1;
                let t = format!("tok{}", self.logins * 7919);
                self.token = Some(t.clone());
                return ok(id, json!({"token": t}));
            }
            if self.token.as_deref() != Some(token) || token.is_empty() {
                self.refused += 1;
                return error(id, self.auth_error_code.clone(), "Authentication Failure");
            }
        }
        if self.missing.contains(method) {
            return error(id, self.missing_error_code.clone(), "Method not found");
        }
        match self.result(method) {
            Some(r) => ok(id, Value::Object(r)),
            None => error(id, self.missing_error_code.clone(), "Method not found"),
        }
    }
}

fn ok(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "result": result, "id": id})
}

fn error(id: Value, code: Value, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id})
}

const HTML_ERROR: &str = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n\
<body><h1>Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>\n";

/// A running simulated router; stops when dropped.
pub struct Router {
    /// `http://127.0.0.1:PORT`: the web UI address a source is configured with.
    pub url: String,
    state: Arc<Mutex<RouterState>>,
    cancel: CancellationToken,
}

impl Router {
    /// Starts a router on 127.0.0.1 (any port).
    pub async fn start(auth: Auth) -> anyhow::Result<Router> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(RouterState::new(auth)));
        let cancel = CancellationToken::new();
        tokio::spawn(serve_router(listener, cancel.clone(), state.clone()));
        Ok(Router { url, state, cancel })
    }

    /// Reads or changes the router's state.
    pub fn with<T>(&self, f: impl FnOnce(&mut RouterState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Requests for `method` so far.
    pub fn requests(&self, method: &str) -> u64 {
        self.with(|s| s.requests.get(method).copied().unwrap_or(0))
    }

    /// The shared state, for a task that drives the router (the demo's drift).
    pub fn state(&self) -> Arc<Mutex<RouterState>> {
        self.state.clone()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn header<'a>(h: &'a hyper::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Why a connection was dropped without an answer (rebooting).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rebooting")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    state: &Mutex<RouterState>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response, Dropped> {
    let mode = state.lock().unwrap_or_else(|p| p.into_inner()).mode;
    match mode {
        Mode::Rebooting => return Err(Dropped),
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Normal | Mode::Html => {}
    }
    if mode == Mode::Html {
        return Ok(response(200, "text/html", HTML_ERROR));
    }
    if req.method() != hyper::Method::POST || req.uri().path() != "/jrd/webapi" {
        return Ok(response(
            404,
            "text/html",
            "<html><body>404 Not Found</body></html>",
        ));
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, 1 << 20).collect().await else {
        return Err(Dropped);
    };
    let body: Bytes = body.to_bytes();
    let h = &parts.headers;
    let answer = state.lock().unwrap_or_else(|p| p.into_inner()).answer(
        &body,
        header(h, "_TclRequestVerificationKey"),
        header(h, "_TclRequestVerificationToken"),
        header(h, "referer"),
        header(h, "host"),
    );
    // The router says text/html even for JSON.
    Ok(response(200, "text/html;charset=utf-8", answer.to_string()))
}

/// Serves the router until `cancel` fires. In [`Mode::Rebooting`] connections are dropped.
pub async fn serve_router(
    listener: TcpListener,
    cancel: CancellationToken,
    state: Arc<Mutex<RouterState>>,
) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if state.lock().unwrap_or_else(|p| p.into_inner()).mode == Mode::Rebooting {
            drop(stream);
            continue;
        }
        let state = state.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { handle(&state, req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

/// Starts the demo's router: its signal drifts, it hops cells now and then and sometimes has
/// no service. Polled every `interval_secs`.
pub async fn start_demo(
    cancel: CancellationToken,
    interval_secs: u64,
) -> anyhow::Result<crate::sim::DemoUpstream> {
    let key = "demo-request-key-not-a-real-one";
    let router = Router::start(Auth::Hh41 { key: key.into() }).await?;
    let url = router.url.clone();
    let state = router.state();
    tokio::spawn(async move {
        let every = Duration::from_secs(interval_secs.max(1));
        let mut tick = tokio::time::interval(every);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            n += 1;
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.advance(every.as_secs());
            // A hop every 4th tick, and one tick in 7 without service.
            if n.is_multiple_of(4) {
                s.hop_cell();
            }
            s.no_service = n % 7 == 5;
        }
        drop(router);
    });
    Ok(crate::sim::DemoUpstream {
        source_toml: format!(
            "[[source]]\ntype = \"linkhub\"\nname = \"demo-router\"\nurl = \"{url}\"\nrequest_key = \"{key}\"\ninterval = \"{interval_secs}s\"\n"
        ),
        banner: format!("a simulated Alcatel LinkHub 4G router at {url}"),
        showcase: vec![
            "linkhub_sinr_db{".into(),
            "linkhub_rsrp_dbm{".into(),
            "linkhub_network_info{".into(),
            "linkhub_cell_changes_total{".into(),
            "linkhub_month_download_bytes{".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(s: &mut RouterState, method: &str, key: &str, token: &str) -> Value {
        let body = json!({"jsonrpc":"2.0","method":method,"id":"1"}).to_string();
        s.answer(body.as_bytes(), key, token, "http://r/index.html", "r")
    }

    #[test]
    fn hh41_checks_key_and_referer() {
        let mut s = RouterState::new(Auth::Hh41 { key: "k".into() });
        let a = ask(&mut s, "GetNetworkInfo", "k", "");
        assert_eq!(a["result"]["SINR"], "14");
        assert_eq!(a["id"], "1");
        let a = ask(&mut s, "GetNetworkInfo", "wrong", "");
        assert_eq!(a["error"]["code"], -32699);
        let body = json!({"jsonrpc":"2.0","method":"GetSystemInfo","id":2}).to_string();
        let a = s.answer(body.as_bytes(), "k", "", "http://evil/index.html", "r");
        assert!(a["error"].is_object());
        assert_eq!(s.bad_referer, 1);
        s.missing.insert("GetConnectionState".into());
        let a = ask(&mut s, "GetConnectionState", "k", "");
        assert_eq!(a["error"]["code"], -32601);
        s.no_service = true;
        let a = ask(&mut s, "GetNetworkInfo", "k", "");
        assert_eq!(a["result"]["SINR"], "FF");
        assert_eq!(a["result"]["CellId"], "0");
        assert_eq!(s.requests["GetNetworkInfo"], 3);
    }

    #[test]
    fn login_model_tokens_expire() {
        let mut s = RouterState::new(Auth::Login {
            public_key: "pk".into(),
            username: "admin".into(),
            password: "pw".into(),
        });
        assert!(ask(&mut s, "GetNetworkInfo", "pk", "")["error"].is_object());
        let body = json!({"jsonrpc":"2.0","method":"Login","params":{"UserName":"admin","Password":"pw"},"id":"1"});
        let a = s.answer(
            body.to_string().as_bytes(),
            "pk",
            "",
            "http://r/index.html",
            "r",
        );
        let t = a["result"]["token"].as_str().unwrap().to_string();
        assert!(ask(&mut s, "GetNetworkInfo", "pk", &t)["result"].is_object());
        s.expire_token();
        assert_eq!(
            ask(&mut s, "GetNetworkInfo", "pk", &t)["error"]["code"],
            -32699
        );
    }

    #[test]
    fn drift_and_month_wrap() {
        let mut s = RouterState::new(Auth::Hh41 { key: "k".into() });
        let before = s.get("GetUsageRecord", "HUseData").as_u64().unwrap();
        s.advance(10);
        assert!(s.get("GetUsageRecord", "HUseData").as_u64().unwrap() > before);
        s.wrap_month();
        assert!(s.get("GetUsageRecord", "HUseData").as_u64().unwrap() < 10_000);
        s.hop_cell();
        assert_eq!(s.get("GetNetworkInfo", "CellId"), CELLS[1].0);
    }
}
