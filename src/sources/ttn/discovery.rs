//! Which gateways to watch: the paged gateway list (discovery), or the configured IDs' registry
//! entries.

use std::collections::HashSet;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use super::api::{self, GatewayInfo};
use super::client::{Api, CallError};
use super::{missing_hint, TtnSource};
use crate::sources::SourceError;

/// What the list and single-gateway GETs ask the Identity Server for.
const FIELD_MASK: &str =
    "name,frequency_plan_ids,antennas,gateway_server_address,status_public,location_public";
/// Gateways per list page asked for (the API's maximum).
const PAGE_LIMIT: usize = 1000;
impl TtnSource {
    /// Fetches the gateway list (all pages) or the configured gateways' registry entries.
    pub(super) async fn discover(
        &mut self,
        deadline: Instant,
    ) -> Result<Vec<GatewayInfo>, SourceError> {
        if !self.cfg.gateways.is_empty() {
            return self.describe_configured(deadline).await;
        }
        let mut all: Vec<GatewayInfo> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: Option<usize> = None;
        for page in 1..=100usize {
            let mut url = Api::endpoint(&self.cfg.url, &["api", "v3", "gateways"]);
            url.query_pairs_mut()
                .append_pair("field_mask", FIELD_MASK)
                .append_pair("limit", &PAGE_LIMIT.to_string())
                .append_pair("page", &page.to_string())
                .append_pair("order", "gateway_id");
            let (body, count) = match self
                .api
                .call("list", Method::GET, url, None, deadline)
                .await
            {
                Ok((h, b)) => (b, total_count(&h)),
                Err(CallError::Status(s, e))
                    if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN =>
                {
                    return Err(self.auth_error("listing gateways", s, &e))
                }
                Err(CallError::Status(s, e)) => {
                    return Err(SourceError::Status {
                        status: s.as_u16(),
                        body: format!("listing gateways: {}", e.label()),
                    })
                }
                Err(e) => return Err(SourceError::Request(format!("listing gateways: {e}"))),
            };
            total = count.or(total);
            let items = api::parse_gateway_list(&body).map_err(SourceError::Invalid)?;
            let before = all.len();
            for g in items {
                if seen.insert(g.id.clone()) {
                    all.push(g);
                }
            }
            // Stop at an empty page (`{}` past the end), a page with nothing new (a server that
            // ignores `page`), or once the announced total is reached.
            if all.len() == before || total.is_some_and(|t| all.len() >= t) {
                break;
            }
        }
        let name = self.cfg.name.clone();
        self.problems.clear(&name, "auth", "");
        if all.is_empty() {
            self.problems.warn(
                &name,
                "empty-list",
                "the API key lists no gateways: a gateway-scoped key cannot list them; \
                 set gateways = [\"your-gateway-id\"] in the source, or use a user or organization key"
                    .to_string(),
            );
        } else {
            self.problems.clear(&name, "empty-list", "");
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// With `gateways = [...]`: one registry GET per gateway for its name, EUI, cluster and
    /// location. A refusal (a gateway key without the info right) leaves just the ID.
    async fn describe_configured(
        &mut self,
        deadline: Instant,
    ) -> Result<Vec<GatewayInfo>, SourceError> {
        let mut out = Vec::new();
        let mut transient = 0;
        for id in self.cfg.gateways.clone() {
            let mut url = Api::endpoint(&self.cfg.url, &["api", "v3", "gateways", &id]);
            url.query_pairs_mut().append_pair("field_mask", FIELD_MASK);
            let name = self.cfg.name.clone();
            let info = match self
                .api
                .call(&format!("get:{id}"), Method::GET, url, None, deadline)
                .await
            {
                Ok((_, b)) => serde_json::from_slice::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| api::parse_gateway(&v))
                    .filter(|g| g.id == id),
                Err(CallError::Status(StatusCode::UNAUTHORIZED, e)) => {
                    return Err(self.auth_error(
                        "reading gateway info",
                        StatusCode::UNAUTHORIZED,
                        &e,
                    ))
                }
                Err(CallError::Status(s, e)) => {
                    self.problems.warn(
                        &name,
                        &format!("info:{id}"),
                        format!(
                            "gateway {id}: registry entry unreadable (HTTP {}: {}{}); watching it by ID only",
                            s.as_u16(),
                            e.label(),
                            missing_hint(&e)
                        ),
                    );
                    None
                }
                Err(e) => {
                    transient += 1;
                    tracing::debug!(source = %name, "gateway {id}: registry entry: {e}");
                    None
                }
            };
            out.push(info.unwrap_or(GatewayInfo {
                id: id.clone(),
                ..GatewayInfo::default()
            }));
        }
        // Names missing for a passing reason are fetched again next cycle.
        self.rediscover_soon = transient > 0;
        if transient == self.cfg.gateways.len() {
            return Err(SourceError::Request(
                "the Identity Server did not answer for any configured gateway".to_string(),
            ));
        }
        Ok(out)
    }
}

/// `X-Total-Count`, when present and numeric.
fn total_count(h: &HeaderMap) -> Option<usize> {
    h.get("x-total-count")?.to_str().ok()?.trim().parse().ok()
}
