//! Which cluster (Gateway Server) serves a gateway's stats, read from its
//! `gateway_server_address`; where the API key may go ([`KeyPolicy`]: a gateway's address is
//! data anyone who can edit that gateway controls); what the source remembers about each
//! cluster.

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

/// TTN's public clusters: a key for one of them may be sent to any of them.
const TTN_CLUSTERS: [&str; 3] = [
    "eu1.cloud.thethings.network",
    "nam1.cloud.thethings.network",
    "au1.cloud.thethings.network",
];

/// Where the API key may be sent: the configured `url`'s host, the official clusters of the
/// same deployment (TTN's three; on The Things Stack Cloud, the tenant's host on any cluster),
/// and the hosts the user allowed (`allowed_stats_hosts`). Never over `http://` when `url` is
/// `https://`.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    url: Url,
    /// Lower-case `host` or `host:port` entries.
    allowed: Vec<String>,
}

impl KeyPolicy {
    pub fn new(url: &Url, allowed: &[String]) -> KeyPolicy {
        KeyPolicy {
            url: url.clone(),
            allowed: allowed.iter().map(|a| a.to_ascii_lowercase()).collect(),
        }
    }

    /// `base` as it may be asked with the key (`https` kept when `url` has it), or the host
    /// that may not be.
    pub fn vet(&self, base: &Url) -> Result<Url, String> {
        let host = base.host_str().unwrap_or("").to_ascii_lowercase();
        let home = self.url.host_str().unwrap_or("").to_ascii_lowercase();
        let port = base.port_or_known_default();
        let listed = self.allowed.iter().any(|a| match a.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                h.trim_matches(['[', ']']) == host.trim_matches(['[', ']'])
                    && p.parse::<u16>().ok() == port
            }
            _ => a.trim_matches(['[', ']']) == host.trim_matches(['[', ']']),
        });
        if !(host == home || same_deployment(&home, &host) || listed) {
            return Err(match base.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            });
        }
        let mut vetted = base.clone();
        if self.url.scheme() == "https" && base.scheme() != "https" {
            // Never downgrade: the key goes over TLS or not at all.
            let _ = vetted.set_scheme("https");
            if base.port() == Some(80) {
                let _ = vetted.set_port(None);
            }
        }
        Ok(vetted)
    }
}

/// Whether `host` is an official cluster of the deployment `home` belongs to.
fn same_deployment(home: &str, host: &str) -> bool {
    if TTN_CLUSTERS.contains(&home) {
        return TTN_CLUSTERS.contains(&host);
    }
    // The Things Stack Cloud: `<tenant>.<cluster>.cloud.thethings.industries`.
    const TTI: &str = ".cloud.thethings.industries";
    let split = |h: &str| -> Option<(String, String)> {
        let rest = h.strip_suffix(TTI)?;
        let (tenant, cluster) = rest.split_once('.')?;
        (!tenant.is_empty() && !cluster.is_empty() && !cluster.contains('.'))
            .then(|| (tenant.to_string(), cluster.to_string()))
    };
    matches!((split(home), split(host)), (Some((t1, _)), Some((t2, _))) if t1 == t2)
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
    fn the_key_goes_only_to_this_deployment_and_never_downgraded() {
        let u = |s: &str| Url::parse(s).unwrap();
        let ttn = KeyPolicy::new(&u("https://eu1.cloud.thethings.network"), &[]);
        let ok = |p: &KeyPolicy, b: &str| p.vet(&u(b)).map(|v| v.to_string());
        assert_eq!(
            ok(&ttn, "https://nam1.cloud.thethings.network/"),
            Ok("https://nam1.cloud.thethings.network/".into())
        );
        assert_eq!(
            ok(&ttn, "http://au1.cloud.thethings.network/"),
            Ok("https://au1.cloud.thethings.network/".into()),
            "upgraded, never downgraded"
        );
        assert_eq!(
            ok(&ttn, "https://evil.example/"),
            Err("evil.example".into())
        );
        assert_eq!(
            ok(&ttn, "https://eu2.cloud.thethings.network/"),
            Err("eu2.cloud.thethings.network".into())
        );
        assert_eq!(
            ok(&ttn, "https://x.eu1.cloud.thethings.industries/"),
            Err("x.eu1.cloud.thethings.industries".into())
        );
        let tti = KeyPolicy::new(&u("https://acme.eu1.cloud.thethings.industries"), &[]);
        assert!(ok(&tti, "https://acme.nam1.cloud.thethings.industries/").is_ok());
        assert!(ok(&tti, "https://other.nam1.cloud.thethings.industries/").is_err());
        assert!(ok(&tti, "https://acme.x.y.cloud.thethings.industries/").is_err());
        assert!(ok(&tti, "https://nam1.cloud.thethings.network/").is_err());
        let own = KeyPolicy::new(
            &u("https://stack.example.org"),
            &["GS.example.org".into(), "10.0.0.5:8443".into()],
        );
        assert!(ok(&own, "https://stack.example.org:8443/").is_ok());
        assert!(ok(&own, "https://gs.example.org/").is_ok());
        assert!(ok(&own, "https://10.0.0.5:8443/").is_ok());
        assert_eq!(
            ok(&own, "https://10.0.0.5:9443/"),
            Err("10.0.0.5:9443".into())
        );
        let plain = KeyPolicy::new(&u("http://127.0.0.1:8080"), &[]);
        assert_eq!(
            ok(&plain, "http://127.0.0.1:9999/"),
            Ok("http://127.0.0.1:9999/".into())
        );
        assert_eq!(
            ok(&plain, "http://localhost:9999/"),
            Err("localhost:9999".into())
        );
    }

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
