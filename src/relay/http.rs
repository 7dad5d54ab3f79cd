//! The relay's `listen` address: the status page (`/`), `/metrics` (the latest snapshot of
//! every source and the relay's own metrics), liveness (`/-/healthy`, and `/healthz` as its
//! alias) and readiness (`/-/ready`), served with [`crate::http::server::serve_public`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{merge_families, self_snapshot, Env, LastSnapshots};
use crate::http::server::{response, serve_public, PublicLimits};
use crate::model::{Labels, Snapshot};

/// What the routes need.
#[derive(Clone)]
pub(super) struct Routes {
    pub last: LastSnapshots,
    pub env: Env,
    pub external: Labels,
    /// How recent a sink's last delivery must be for readiness.
    pub ready_window: std::time::Duration,
}

/// Serves the routes until `cancel` fires.
pub(super) async fn serve(listener: tokio::net::TcpListener, cancel: CancellationToken, r: Routes) {
    serve_public(listener, cancel, PublicLimits::default(), move |req| {
        let r = r.clone();
        // HEAD is answered like GET; hyper sends no body for it.
        async move { r.answer(req.uri().path()) }
    })
    .await
}

impl Routes {
    fn answer(&self, path: &str) -> crate::http::server::Response {
        let now = self.env.clock.now_ms();
        match path {
            "/" => response(
                200,
                "text/html; charset=utf-8",
                self.env
                    .status
                    .html(&self.env.metrics, now, self.ready_window),
            ),
            "/metrics" => response(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.exposition(),
            ),
            // Liveness: the process runs and answers. `/healthz` is kept as its alias.
            "/-/healthy" | "/healthz" => response(200, "text/plain", "ok\n"),
            "/-/ready" => match self
                .env
                .status
                .readiness(&self.env.metrics, now, self.ready_window)
            {
                Ok(()) => response(200, "text/plain", "ready\n"),
                Err(why) => response(503, "text/plain", format!("{}\n", why.join("\n"))),
            },
            _ => response(404, "text/plain", "not found\n"),
        }
    }

    fn exposition(&self) -> String {
        let snaps: Vec<Arc<Snapshot>> = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let own = self_snapshot(&self.env, &self.external, &mut None);
        let fams = merge_families(
            snaps
                .iter()
                .map(|s| s.families.as_slice())
                .chain([own.families.as_slice()]),
        );
        let mut out = String::new();
        crate::expfmt::write_text(&mut out, &fams, false);
        out
    }
}
