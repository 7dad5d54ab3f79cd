//! The router's JSON-RPC 2.0 web API (`POST /jrd/webapi`): one call, its headers, and what an
//! answer means (a result, "method not found", "auth failed", another error, or garbage).

use serde_json::{json, Map, Value};

use crate::http::{body_excerpt, client};

/// The largest answer read; real answers are a few hundred bytes.
const MAX_BODY: u64 = 1 << 20;

/// The JSON-RPC "method not found" code.
const METHOD_NOT_FOUND: i64 = -32601;
/// What the web UI's clients treat as "authentication failed".
const AUTH_FAILED: i64 = -32699;

/// The headers the web UI sends, and where it sends them.
pub struct Endpoint {
    /// `<url>/jrd/webapi`.
    pub api: reqwest::Url,
    /// `<url>/index.html`: the router refuses calls that do not seem to come from its UI.
    pub referer: String,
}

impl Endpoint {
    /// From the configured web UI address: `http://192.168.1.1`, `http://192.168.1.1/` or
    /// `http://192.168.1.1/index.html` all mean the same router.
    pub fn new(url: &reqwest::Url) -> anyhow::Result<Endpoint> {
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let path = base.path().trim_end_matches('/');
        let path = path.strip_suffix("/index.html").unwrap_or(path).to_string();
        base.set_path(&path);
        let root = base.as_str().trim_end_matches('/').to_string();
        Ok(Endpoint {
            api: reqwest::Url::parse(&format!("{root}/jrd/webapi"))?,
            referer: format!("{root}/index.html"),
        })
    }
}

/// What one call came back with.
#[derive(Debug)]
pub enum Reply {
    /// `result` (an empty object when the router sent none or `null`).
    Result(Map<String, Value>),
    /// The model does not have this method.
    MethodNotFound(String),
    /// The key or token was refused.
    AuthFailed(String),
    /// Any other JSON-RPC error (code and message, for the log).
    Error(String),
}

/// Why a call got no JSON-RPC answer at all: the poll fails.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Transport(String),
    #[error("answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{0}")]
    Invalid(String),
}

/// A JSON-RPC caller bound to one router.
pub struct Rpc {
    /// One client per router, so the connection is reused between polls.
    http: reqwest::Client,
    /// Headers, TLS and timeout, as configured.
    cfg: crate::config::HttpConfig,
    ep: Endpoint,
}

impl Rpc {
    pub fn new(url: &reqwest::Url, cfg: &crate::config::HttpConfig) -> anyhow::Result<Rpc> {
        Ok(Rpc {
            http: client::build(cfg)?,
            cfg: cfg.clone(),
            ep: Endpoint::new(url)?,
        })
    }

    /// Calls `method` with `params` (none when `None`), with the key (and token, once logged in).
    pub async fn call(
        &self,
        key: &str,
        token: Option<&str>,
        method: &str,
        params: Option<Value>,
        id: u64,
    ) -> Result<Reply, CallError> {
        let mut body = json!({"jsonrpc": "2.0", "method": method, "id": id.to_string()});
        if let Some(p) = params {
            body["params"] = p;
        }
        let mut req = self
            .http
            .post(self.ep.api.clone())
            .header("_TclRequestVerificationKey", key)
            .header(reqwest::header::REFERER, &self.ep.referer)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.header("_TclRequestVerificationToken", t);
        }
        send(req, &self.cfg).await
    }
}

async fn send(
    req: reqwest::RequestBuilder,
    cfg: &crate::config::HttpConfig,
) -> Result<Reply, CallError> {
    let resp = client::authorize(req, cfg)
        .send()
        .await
        .map_err(|e| CallError::Transport(client::error_chain(&e.without_url())))?;
    let status = resp.status();
    if let Some(note) = client::redirect_note(&resp) {
        return Err(CallError::Status {
            status: status.as_u16(),
            body: note,
        });
    }
    let bytes = client::read_limited(resp, MAX_BODY)
        .await
        .map_err(CallError::Transport)?;
    if status == 401 || status == 403 {
        return Ok(Reply::AuthFailed(format!("HTTP {}", status.as_u16())));
    }
    if !status.is_success() {
        return Err(CallError::Status {
            status: status.as_u16(),
            body: body_excerpt(&bytes, 120),
        });
    }
    interpret(&bytes)
}

/// Makes sense of an answer body.
pub fn interpret(bytes: &[u8]) -> Result<Reply, CallError> {
    // Some embedded web servers put a UTF-8 byte order mark before the JSON.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let what = if bytes.trim_ascii_start().starts_with(b"<") {
                "an HTML page"
            } else {
                "something"
            };
            return Err(CallError::Invalid(format!(
                "answered {what} instead of JSON ({e}): {}",
                body_excerpt(bytes, 120)
            )));
        }
    };
    let Value::Object(mut top) = v else {
        return Err(CallError::Invalid(format!(
            "answered JSON that is not a JSON-RPC object: {}",
            body_excerpt(bytes, 120)
        )));
    };
    if let Some(err) = top.get("error").filter(|e| !e.is_null()) {
        return Ok(classify_error(err));
    }
    match top.remove("result") {
        Some(Value::Object(m)) => Ok(Reply::Result(m)),
        // No result, a null one, or an empty string: nothing to read, not an error.
        None | Some(Value::Null) => Ok(Reply::Result(Map::new())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Reply::Result(Map::new())),
        Some(other) => Err(CallError::Invalid(format!(
            "answered a result that is not an object: {}",
            body_excerpt(other.to_string().as_bytes(), 120)
        ))),
    }
}

/// Sorts a JSON-RPC error object (codes may be numbers or strings, e.g. `-32699`, `"030101"`).
fn classify_error(err: &Value) -> Reply {
    let (code, message) = match err {
        Value::Object(o) => (
            o.get("code").cloned().unwrap_or(Value::Null),
            o.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        Value::String(s) => (Value::Null, s.clone()),
        other => (other.clone(), String::new()),
    };
    let code_num = match &code {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok().filter(|_| {
            // "030101" is a code of its own, not the number 30101.
            !s.trim().starts_with('0')
        }),
        _ => None,
    };
    let code_text = match &code {
        Value::Null => "none".to_string(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let shown = format!(
        "error {code_text}: {}",
        body_excerpt(message.as_bytes(), 120)
    );
    let m = message.to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if code_num == Some(METHOD_NOT_FOUND)
        || says(&[
            "method not found",
            "no such method",
            "unknown method",
            "method not exist",
            "not support",
            "unsupported",
        ])
    {
        Reply::MethodNotFound(shown)
    } else if code_num == Some(AUTH_FAILED)
        || says(&[
            "auth",
            "verification",
            "token",
            "login",
            "unauthori",
            "permission",
            "forbidden",
        ])
    {
        Reply::AuthFailed(shown)
    } else {
        Reply::Error(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(body: &str) -> String {
        match interpret(body.as_bytes()) {
            Ok(Reply::Result(m)) => format!("result {}", m.len()),
            Ok(Reply::MethodNotFound(_)) => "missing".into(),
            Ok(Reply::AuthFailed(_)) => "auth".into(),
            Ok(Reply::Error(e)) => format!("error {e}"),
            Err(e) => format!("invalid {e}"),
        }
    }

    #[test]
    fn endpoint_from_ui_address() {
        for u in [
            "http://192.168.1.1",
            "http://192.168.1.1/",
            "http://192.168.1.1/index.html",
            "http://192.168.1.1/index.html?x=1#top",
        ] {
            let ep = Endpoint::new(&reqwest::Url::parse(u).unwrap()).unwrap();
            assert_eq!(ep.api.as_str(), "http://192.168.1.1/jrd/webapi", "{u}");
            assert_eq!(ep.referer, "http://192.168.1.1/index.html", "{u}");
        }
        let ep = Endpoint::new(&reqwest::Url::parse("https://r.lan:8443/ui/").unwrap()).unwrap();
        assert_eq!(ep.api.as_str(), "https://r.lan:8443/ui/jrd/webapi");
        assert_eq!(ep.referer, "https://r.lan:8443/ui/index.html");
    }

    #[test]
    fn replies() {
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","result":{"SINR":"3"},"id":"1"}"#),
            "result 1"
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","result":null,"id":"1"}"#),
            "result 0"
        );
        assert_eq!(kind(r#"{"jsonrpc":"2.0","id":"1"}"#), "result 0");
        assert_eq!(
            kind(
                r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"1"}"#
            ),
            "missing"
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","error":{"code":"-32601","message":""},"id":"1"}"#),
            "missing"
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","error":{"code":-32699,"message":"x"},"id":"1"}"#),
            "auth"
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","error":{"code":"-32699","message":"x"},"id":"1"}"#),
            "auth"
        );
        assert_eq!(
            kind(r#"{"error":{"code":"010401","message":"Token expired, please login"}}"#),
            "auth"
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","error":{"code":"030101","message":"Get failed"},"id":"1"}"#),
            "error error \"030101\": Get failed"
        );
        assert_eq!(kind(r#"{"error":{"code":30101}}"#), "error error 30101: ");
        assert!(kind("<html><body>500 Internal Error</body></html>")
            .starts_with("invalid answered an HTML page"));
        assert!(kind("").starts_with("invalid answered something"));
        assert_eq!(kind("\u{feff}{\"result\":{\"a\":1}}"), "result 1");
        assert!(kind("[1,2]").starts_with("invalid answered JSON that is not"));
        assert!(kind(r#"{"result":[1]}"#).starts_with("invalid answered a result"));
    }
}
