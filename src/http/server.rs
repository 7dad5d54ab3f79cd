//! A tiny HTTP/1 server on hyper: [`serve_public`] for the relay's `listen` address (the
//! network can reach it: GET/HEAD only, no bodies, slow clients timed out, connections
//! capped), and [`serve`] for the demo receiver and the simulators (loopback, bodies read).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A request with its whole body read.
pub type Request = hyper::Request<Bytes>;
/// A response with an in-memory body.
pub type Response = hyper::Response<Full<Bytes>>;

/// Largest request body [`serve`] reads (remote-write batches are far smaller).
const MAX_BODY: usize = 64 << 20;

/// What a server reachable from the network allows.
#[derive(Debug, Clone, Copy)]
pub struct PublicLimits {
    /// Connections served at once; more are closed at once (so a flood cannot take the file
    /// descriptors the disk queue needs).
    pub max_connections: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// The longest a connection may stay open, idle or not.
    pub connection_lifetime: Duration,
    /// Largest request head (request line and headers) read.
    pub max_head_bytes: usize,
}

impl Default for PublicLimits {
    fn default() -> Self {
        PublicLimits {
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(60),
            max_head_bytes: 16 << 10,
        }
    }
}

/// Builds a response with a status, content type and body.
pub fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// How a server treats its clients.
#[derive(Clone, Copy)]
enum Policy {
    /// Loopback peers of our own (demo, simulators): bodies read up to [`MAX_BODY`].
    Trusted,
    /// The network: see [`PublicLimits`].
    Public(PublicLimits),
}

/// Serves `handler` on `listener` until `cancel` fires, for trusted local clients (the demo
/// receiver, the simulators). Each connection runs in its own task; a failing connection is
/// dropped and the server goes on.
pub async fn serve<H, F>(listener: TcpListener, cancel: CancellationToken, handler: H)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    serve_with(listener, cancel, handler, Policy::Trusted).await
}

/// Serves `handler` to whoever can reach `listener`: GET and HEAD only (405 otherwise), no
/// request bodies (413, never read), request heads within [`PublicLimits`], at most
/// `max_connections` at once.
pub async fn serve_public<H, F>(
    listener: TcpListener,
    cancel: CancellationToken,
    limits: PublicLimits,
    handler: H,
) where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    serve_with(listener, cancel, handler, Policy::Public(limits)).await
}

async fn serve_with<H, F>(
    listener: TcpListener,
    cancel: CancellationToken,
    handler: H,
    policy: Policy,
) where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    let slots = match policy {
        Policy::Public(l) => Some(Arc::new(Semaphore::new(l.max_connections))),
        Policy::Trusted => None,
    };
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match &slots {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                // Over the cap: close at once, keeping the descriptor free.
                Err(_) => continue,
            },
            None => None,
        };
        let handler = handler.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(answer(req, policy, handler.as_ref()).await) }
            });
            let mut builder = http1::Builder::new();
            let lifetime = match policy {
                Policy::Public(l) => {
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(l.header_timeout)
                        .max_buf_size(l.max_head_bytes.max(8192));
                    Some(l.connection_lifetime)
                }
                Policy::Trusted => None,
            };
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let until_end = async {
                match lifetime {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = until_end => {}
                _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

/// One request under `policy`.
async fn answer<H, F>(req: hyper::Request<Incoming>, policy: Policy, handler: &H) -> Response
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let (parts, body) = req.into_parts();
    match policy {
        Policy::Trusted => match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => handler(hyper::Request::from_parts(parts, b.to_bytes())).await,
            Err(_) => response(413, "text/plain", "request body too large\n"),
        },
        Policy::Public(_) => {
            if parts.method != hyper::Method::GET && parts.method != hyper::Method::HEAD {
                let mut r = response(405, "text/plain", "only GET and HEAD are served here\n");
                r.headers_mut().insert(
                    hyper::header::ALLOW,
                    hyper::header::HeaderValue::from_static("GET, HEAD"),
                );
                return close(r);
            }
            // A body (announced, or chunked) is refused unread.
            if body.size_hint().upper() != Some(0) {
                return close(response(
                    413,
                    "text/plain",
                    "request bodies are not accepted\n",
                ));
            }
            handler(hyper::Request::from_parts(parts, Bytes::new())).await
        }
    }
}

/// Marks a response as the connection's last (its request's body was not read).
fn close(mut r: Response) -> Response {
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}
