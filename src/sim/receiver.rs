//! A built-in receiver that decodes what the relay sends: remote-write 1.0 and Pushgateway pushes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::server::{response, serve, Request, Response};
use crate::model::is_stale_nan;
use crate::wire::remote_write::decode;

/// Everything received so far.
#[derive(Default, Debug, Clone)]
pub struct Received {
    pub remote_write_requests: u64,
    pub remote_write_bytes: u64,
    /// Series (labels rendered as `name{...}`) and their samples (ms, value) in arrival order.
    pub series: BTreeMap<String, Vec<(i64, f64)>>,
    pub metadata: BTreeMap<String, (i32, String)>,
    pub stale_markers: u64,
    /// Pushgateway groups (the path after `/metrics/`) and their latest body.
    pub groups: BTreeMap<String, String>,
    pub pushes: u64,
    /// Requests refused because they broke the protocol (missing headers, bad body).
    pub bad_requests: Vec<String>,
}

/// Shared handle to what the receiver got.
pub type Store = Arc<Mutex<Received>>;

fn header<'a>(req: &'a Request, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn handle(store: &Store, req: Request) -> Response {
    let mut st = store.lock().unwrap_or_else(|p| p.into_inner());
    let path = req.uri().path().to_string();
    match (req.method().as_str(), path.as_str()) {
        ("POST", "/api/v1/write") => {
            // Every form the relay sends: 1.0 with snappy or zstd, 2.0 with snappy.
            let v2 = header(&req, "content-type") == crate::wire::form::V2_CONTENT_TYPE;
            let encoding = header(&req, "content-encoding");
            let version = header(&req, "x-prometheus-remote-write-version");
            let headers_ok = if v2 {
                encoding == "snappy" && version == crate::wire::form::V2_VERSION
            } else {
                (encoding == "snappy" || encoding == "zstd")
                    && header(&req, "content-type") == "application/x-protobuf"
                    && version == "0.1.0"
            };
            if !headers_ok {
                st.bad_requests
                    .push("remote write without the required headers".into());
                return response(400, "text/plain", "missing remote-write headers\n");
            }
            let decoded = if v2 {
                crate::wire::v2::decode(req.body()).map(crate::wire::v2::to_v1)
            } else if encoding == "zstd" {
                crate::wire::form::zstd_decompress(req.body(), 64 << 20)
                    .map_err(Into::into)
                    .and_then(|raw| {
                        use prost::Message;
                        Ok(crate::wire::proto::WriteRequest::decode(raw.as_slice())?)
                    })
            } else {
                decode(req.body())
            };
            let wr = match decoded {
                Ok(w) => w,
                Err(e) => {
                    st.bad_requests.push(format!("undecodable body: {e}"));
                    return response(400, "text/plain", format!("bad body: {e}\n"));
                }
            };
            let samples: usize = wr.timeseries.iter().map(|t| t.samples.len()).sum();
            st.remote_write_requests += 1;
            st.remote_write_bytes += req.body().len() as u64;
            for ts in wr.timeseries {
                let name = ts.metric_name().to_string();
                let rest: Vec<String> = ts
                    .labels
                    .iter()
                    .filter(|l| l.name != "__name__")
                    .map(|l| format!("{}={:?}", l.name, l.value))
                    .collect();
                let key = format!("{name}{{{}}}", rest.join(","));
                for s in ts.samples {
                    if is_stale_nan(s.value) {
                        st.stale_markers += 1;
                    }
                    st.series
                        .entry(key.clone())
                        .or_default()
                        .push((s.timestamp, s.value));
                }
            }
            for m in wr.metadata {
                st.metadata.insert(m.metric_family_name, (m.r#type, m.help));
            }
            let mut r = response(204, "text/plain", "");
            if v2 {
                for (h, n) in crate::wire::form::V2_WRITTEN_HEADERS
                    .iter()
                    .zip([samples, 0, 0])
                {
                    r.headers_mut().insert(*h, n.into());
                }
            }
            r
        }
        ("PUT" | "POST", p) if p.starts_with("/metrics/job/") => {
            let body = String::from_utf8_lossy(req.body()).to_string();
            let fams = match crate::expfmt::parse(&body) {
                Ok(f) => f,
                Err(e) => {
                    st.bad_requests.push(format!("bad push body: {e}"));
                    return response(400, "text/plain", format!("{e}\n"));
                }
            };
            if fams
                .iter()
                .flat_map(|f| &f.samples)
                .any(|s| s.timestamp_ms.is_some())
            {
                st.bad_requests.push("push with timestamps".into());
                return response(
                    400,
                    "text/plain",
                    "pushed metrics must not have timestamps\n",
                );
            }
            st.pushes += 1;
            st.groups.insert(p["/metrics/".len()..].to_string(), body);
            response(200, "text/plain", "")
        }
        ("DELETE", p) if p.starts_with("/metrics/job/") => {
            st.groups.remove(&p["/metrics/".len()..]);
            response(202, "text/plain", "")
        }
        _ => response(404, "text/plain", "not found\n"),
    }
}

/// Serves the receiver until `cancel` fires; what arrives lands in `store`.
pub async fn serve_receiver(listener: TcpListener, cancel: CancellationToken, store: Store) {
    serve(listener, cancel, move |req| {
        let store = store.clone();
        async move { handle(&store, req) }
    })
    .await
}
