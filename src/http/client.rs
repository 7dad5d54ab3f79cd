//! Builds `reqwest` clients from [`HttpConfig`]: timeouts, TLS roots, auth and extra headers.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::HttpConfig;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("pushrelay/", env!("CARGO_PKG_VERSION"));

/// One client per endpoint, so its connection is reused (keep-alive).
pub fn build(cfg: &HttpConfig) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(cfg.timeout.min(std::time::Duration::from_secs(10)))
        .timeout(cfg.timeout)
        .pool_max_idle_per_host(1)
        // A redirect would carry secrets to another place; a 3xx is an answer to report.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_keepalive(std::time::Duration::from_secs(60));
    if let Some(ca) = &cfg.tls.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("cannot read ca_file {}: {e}", ca.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("ca_file {}: {e}", ca.display()))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    if cfg.tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &cfg.headers {
        // Names and values were validated when the configuration was loaded.
        let name = HeaderName::from_bytes(k.as_bytes())?;
        let mut value = HeaderValue::from_str(v)?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    b = b.default_headers(headers);
    Ok(b.build()?)
}

/// Adds the configured credentials to a request.
pub fn authorize(req: reqwest::RequestBuilder, cfg: &HttpConfig) -> reqwest::RequestBuilder {
    if let Some(b) = &cfg.basic_auth {
        req.basic_auth(&b.username, Some(b.password.expose()))
    } else if let Some(t) = &cfg.bearer_token {
        req.bearer_auth(t.expose())
    } else {
        req
    }
}

/// Reads a response body, refusing more than `limit` bytes.
pub async fn read_limited(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    if let Some(len) = resp.content_length() {
        if len > limit {
            return Err(format!(
                "body of {len} bytes exceeds the limit of {limit} bytes"
            ));
        }
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(format!("body exceeds the limit of {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An error with its causes, on one line, without the URL's user info (reqwest strips it).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
