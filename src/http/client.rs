//! Builds `reqwest` clients from [`HttpConfig`]: timeouts, TLS roots, auth and extra headers;
//! no client follows redirects (a redirect could carry credentials to another host).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::HttpConfig;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("pushrelay/", env!("CARGO_PKG_VERSION"));

/// One client per endpoint, so its connection is reused (keep-alive).
pub fn build(cfg: &HttpConfig) -> anyhow::Result<reqwest::Client> {
    Ok(builder(cfg)?.build()?)
}

/// [`build`]'s builder, for a caller that adjusts it (the remote-write sink turns off gzip).
pub fn builder(cfg: &HttpConfig) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(cfg.timeout.min(std::time::Duration::from_secs(10)))
        .timeout(cfg.timeout)
        .pool_max_idle_per_host(1)
        .tcp_keepalive(std::time::Duration::from_secs(60))
        // Secrets travel in custom headers and bodies too (LinkHub's key, its login), which
        // reqwest's policy would re-send to wherever a 3xx points: follow none, and say where
        // it pointed (see `redirect_note`).
        .redirect(reqwest::redirect::Policy::none());
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
    Ok(b)
}

/// For a 3xx answer: where it pointed and what to do, for the error message. The target is
/// shown redacted (it may carry a token); `None` for any other status.
pub fn redirect_note(resp: &reqwest::Response) -> Option<String> {
    if !resp.status().is_redirection() {
        return None;
    }
    let target = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| resp.url().join(l).ok());
    Some(match target {
        Some(t) if t.scheme() != resp.url().scheme() || t.host() != resp.url().host() => format!(
            "redirected to {}: pushrelay follows no redirects (they could carry credentials elsewhere); if that is the right place, put it in the configuration",
            crate::config::redact_url(&t)
        ),
        Some(t) => format!(
            "redirected to {}: pushrelay follows no redirects; put that URL in the configuration",
            crate::config::redact_url(&t)
        ),
        None => "redirected without a usable Location: pushrelay follows no redirects; check the URL".to_string(),
    })
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

/// `message` from [`read_limited`], with the key to raise when it is about the limit.
pub fn over_limit_hint(message: String, source: &str) -> String {
    if message.contains("exceeds the limit of") {
        format!("{message}; raise source.{source}.body_size_limit if the answer is real")
    } else {
        message
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
    // The announced length (within the limit) is reserved at once, so the buffer never grows
    // by doubling past what the body needs.
    let mut out = Vec::with_capacity(resp.content_length().unwrap_or(0).min(limit) as usize);
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
    // TLS spoken to a plain-HTTP port fails deep in rustls with words nobody can act on.
    if s.contains("InvalidContentType") || s.contains("corrupt message") {
        return format!(
            "this port speaks plain HTTP, not TLS: use http:// or the server's TLS port ({s})"
        );
    }
    s
}

/// For a 404 or 405: the URL that was asked (redacted) and, where a common mistake fits, the
/// likely fix, so a path mistake is visible (`…/api/v3/api/v3`, `/jrd/webapi/jrd/webapi`).
pub fn not_found_hint(url: &reqwest::Url, status: u16) -> Option<String> {
    if status != 404 && status != 405 {
        return None;
    }
    let segs: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let repeats = (1..=segs.len() / 2).any(|n| {
        segs.windows(2 * n)
            .any(|w| w[..n] == w[n..] && w[..n].iter().any(|s| !s.is_empty()))
    });
    let shown = crate::config::redact_url(url);
    Some(if repeats {
        format!("{shown} repeats part of its path: configure the base URL only (pushrelay adds the API path)")
    } else {
        format!("asked {shown}: is that the right path?")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_url_and_a_repeated_path() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let h = not_found_hint(
            &u("https://eu1.example/api/v3/api/v3/gateways?token=x"),
            404,
        )
        .unwrap();
        assert!(
            h.contains("api/v3/api/v3") && h.contains("repeats part of its path"),
            "{h}"
        );
        assert!(!h.contains("token=x"), "{h}");
        let h = not_found_hint(&u("http://r/jrd/webapi/jrd/webapi"), 405).unwrap();
        assert!(h.contains("repeats"), "{h}");
        let h = not_found_hint(&u("http://prom:9090/api/v1/writ"), 404).unwrap();
        assert_eq!(
            h,
            "asked http://prom:9090/api/v1/writ: is that the right path?"
        );
        assert_eq!(not_found_hint(&u("http://x/"), 500), None);
    }
}
