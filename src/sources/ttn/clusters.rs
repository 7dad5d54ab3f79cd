//! Which cluster (Gateway Server) serves a gateway's stats, read from its
//! `gateway_server_address`, and what the source remembers about each cluster.

use std::collections::HashMap;

use reqwest::Url;

use super::api::Stats;

/// Ports that belong to a gateway protocol, not to the HTTP API, in a `gateway_server_address`.
const GATEWAY_PORTS: [u16; 8] = [1700, 1881, 1882, 1883, 1887, 8881, 8882, 8887];

/// How a cluster's stats are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsMethod {
    Batch,
    PerGateway,
}

/// What the source remembers about one cluster (Gateway Server).
#[derive(Debug, Default)]
pub struct Cluster {
    /// `None` until the batch call was tried since the last discovery.
    pub method: Option<StatsMethod>,
    /// Gateways absent from the last batch answer, with what a single GET told about them
    /// (`None`: 404 or unreadable). Asked once per absence, not every cycle.
    pub absent: HashMap<String, Option<Stats>>,
}

/// The HTTP base of the cluster a `gateway_server_address` names. Bare hosts and `host:port`
/// take `url`'s scheme; ports of gateway protocols (UDP 1700, MQTT, LNS) and non-HTTP schemes
/// are dropped in favour of the scheme's default; empty or `url`'s own host gives `url`.
pub fn cluster_base(url: &Url, address: Option<&str>) -> Url {
    let Some(addr) = address.map(str::trim).filter(|a| !a.is_empty()) else {
        return url.clone();
    };
    let (scheme, rest) = match addr.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, addr),
    };
    let hostport = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            (h, p.parse::<u16>().ok())
        }
        _ => (hostport, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let http_scheme = scheme.as_deref().filter(|s| *s == "http" || *s == "https");
    let use_scheme = http_scheme.unwrap_or(url.scheme());
    let port = match (http_scheme, port) {
        (Some(_), p) => p,
        (None, Some(p)) if scheme.is_none() && !GATEWAY_PORTS.contains(&p) => Some(p),
        _ => None,
    };
    let url_host = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
    if host.is_empty()
        || (Some(host) == url_host && port.is_none_or(|p| url.port_or_known_default() == Some(p)))
    {
        return url.clone();
    }
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let text = match port {
        Some(p) => format!("{use_scheme}://{host_part}:{p}/"),
        None => format!("{use_scheme}://{host_part}/"),
    };
    Url::parse(&text).unwrap_or_else(|_| url.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_from_gateway_server_addresses() {
        let eu = Url::parse("https://eu1.cloud.thethings.network").unwrap();
        let c = |a: &str| cluster_base(&eu, Some(a)).to_string();
        assert_eq!(c(""), "https://eu1.cloud.thethings.network/");
        assert_eq!(
            c("eu1.cloud.thethings.network"),
            "https://eu1.cloud.thethings.network/"
        );
        assert_eq!(
            c("nam1.cloud.thethings.network"),
            "https://nam1.cloud.thethings.network/"
        );
        assert_eq!(
            c("nam1.cloud.thethings.network:1700"),
            "https://nam1.cloud.thethings.network/"
        );
        assert_eq!(
            c("wss://au1.cloud.thethings.network:8887"),
            "https://au1.cloud.thethings.network/"
        );
        assert_eq!(c("mqtts://x.example:8882"), "https://x.example/");
        assert_eq!(
            c("https://nam1.cloud.thethings.network"),
            "https://nam1.cloud.thethings.network/"
        );
        assert_eq!(c("http://10.0.0.5:1885/api"), "http://10.0.0.5:1885/");
        let local = Url::parse("http://127.0.0.1:8080/prefix").unwrap();
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1:8080")).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1")).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1:1700")).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("127.0.0.1:9999")).to_string(),
            "http://127.0.0.1:9999/"
        );
        assert_eq!(
            cluster_base(&local, Some("localhost:9999")).to_string(),
            "http://localhost:9999/"
        );
        assert_eq!(
            cluster_base(&local, None).to_string(),
            "http://127.0.0.1:8080/prefix"
        );
        assert_eq!(
            cluster_base(&local, Some("[::1]:9000")).to_string(),
            "http://[::1]:9000/"
        );
    }
}
