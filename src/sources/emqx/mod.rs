//! EMQX v5 source: per-client presence and traffic, a drop-in for emqx-client-monitor 0.3.1
//! that polls on its own interval, keeps counters across reconnects and remembers vanished
//! clients until `forget_after`.
//!
//! Monitored-clients mode asks for many ids in one request when the broker honours a repeated
//! `clientid` (EMQX 5.6+), detected once, and otherwise asks `GET /clients/{id}` per client.
//! All-clients mode pages `GET /clients` with `page`/`limit` until `hasnext` is false.

pub mod config;
mod families;
pub mod object;
mod table;
mod tracker;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::{BoxFuture, BuildContext, Source, SourceError, SourceMeta, StateFile};
use crate::clock::WallClock;
use crate::http::{body_excerpt, client};
use crate::model::Family;
pub use config::{EmqxClient, EmqxConfig, EmqxFlags};
use object::ClientObject;
use tracker::Saved;

/// Clients asked for per list page.
const PAGE_LIMIT: usize = 1000;
/// Monitored ids asked for per request (keeps the query string short).
const IDS_PER_REQUEST: usize = 100;
/// A bound on pages per poll, against a server whose `hasnext` never turns false.
const MAX_PAGES: usize = 1000;
/// Largest answer accepted, in bytes: a page of `PAGE_LIMIT` clients is about 1.1–2 MB (1.1 KB
/// per client in EMQX 5's shape, more with version-specific extras). Each client becomes about
/// 40 series, ~25 KB of memory in all, so this bounds one answer to ~100 MiB (bench/memory.py).
pub(crate) const BODY_LIMIT: u64 = 4 << 20;
/// A client id no broker has: the second id of the multi-`clientid` probe.
const PROBE_ID: &str = "pushrelay-multi-clientid-probe-\u{2400}";

/// How the last poll ended, so a wrong key is reported once per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Fine,
    Unauthorized,
    Failed,
}

pub struct EmqxSource {
    cfg: EmqxConfig,
    /// The API base, always ending in `/api/v5`.
    api: reqwest::Url,
    /// Name, `instance`, interval and timeout.
    meta: SourceMeta,
    /// Dates last-seen times and `forget_after`.
    clock: WallClock,
    client: reqwest::Client,
    state_file: StateFile,
    /// Carried state: last-known values, offsets, last-seen times.
    saved: Saved,
    /// Whether the broker honours a repeated `clientid` (None: not yet known).
    multi_id: Option<bool>,
    /// `check` (all-clients mode) or `check --all`: keep the full listing for the table.
    inspect: bool,
    /// Monitored-clients mode: the clients of the last successful poll, by id (raw, for the
    /// `check` table; all-clients mode lists them in `listing` when inspecting).
    last_objects: BTreeMap<String, ClientObject>,
    /// Every client the broker listed (inspection only).
    listing: Option<Result<Vec<ClientObject>, String>>,
    outcome: Outcome,
}

/// `…/api/v5` from the configured URL: added when missing, `/api` completed.
pub fn api_base(url: &reqwest::Url) -> reqwest::Url {
    let mut u = url.clone();
    let path = u.path().trim_end_matches('/').to_string();
    let path = if path.ends_with("/api/v5") {
        path
    } else if path.ends_with("/api") {
        format!("{path}/v5")
    } else {
        format!("{path}/api/v5")
    };
    u.set_path(&path);
    u.set_query(None);
    u.set_fragment(None);
    u
}

impl EmqxSource {
    pub fn new(cfg: EmqxConfig, ctx: &BuildContext) -> anyhow::Result<EmqxSource> {
        let state_file = ctx.state_file(&cfg.name);
        let saved: Saved = state_file.load().unwrap_or_default();
        Ok(EmqxSource {
            api: api_base(&cfg.url),
            meta: SourceMeta::for_url(&cfg.name, &cfg.url, cfg.interval, cfg.timeout),
            clock: ctx.clock.clone(),
            client: client::build(&cfg.http)?,
            state_file,
            saved,
            multi_id: None,
            inspect: !ctx.persist && (ctx.check_all || cfg.clients.is_empty()),
            last_objects: BTreeMap::new(),
            listing: None,
            outcome: Outcome::Fine,
            cfg,
        })
    }

    fn url(&self, tail: &[&str]) -> reqwest::Url {
        let mut u = self.api.clone();
        if let Ok(mut segs) = u.path_segments_mut() {
            // `push` percent-encodes, so any client id is one path segment.
            segs.pop_if_empty().extend(tail);
        }
        u
    }

    /// GETs a JSON answer; `Ok(None)` for a 404 when `missing_ok`.
    async fn get_json(
        &self,
        url: reqwest::Url,
        query: &[(&str, String)],
        missing_ok: bool,
    ) -> Result<Option<Value>, SourceError> {
        let Some(body) = self.get_body(url, query, missing_ok).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| SourceError::Invalid(format!("answer is not JSON: {e}")))
    }

    /// GETs an answer's body (at most `body_size_limit`); `Ok(None)` for a 404 when `missing_ok`.
    async fn get_body(
        &self,
        url: reqwest::Url,
        query: &[(&str, String)],
        missing_ok: bool,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let req = self
            .client
            .get(url)
            .query(query)
            .basic_auth(&self.cfg.api_key, Some(self.cfg.api_secret.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        let resp = req
            .send()
            .await
            .map_err(|e| SourceError::Request(client::error_chain(&e.without_url())))?;
        let status = resp.status().as_u16();
        if let Some(note) = client::redirect_note(&resp) {
            return Err(SourceError::Status { status, body: note });
        }
        if status == 404 && missing_ok {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            let body = client::read_limited(resp, 4096).await.unwrap_or_default();
            let body = if status == 401 {
                format!(
                    "EMQX refused the API key or secret ({}); check api_key and api_secret",
                    error_code(&body).unwrap_or_else(|| "no error code".into())
                )
            } else {
                body_excerpt(&body, 200)
            };
            return Err(SourceError::Status { status, body });
        }
        let body = client::read_limited(resp, self.cfg.body_size_limit)
            .await
            .map_err(|e| SourceError::Invalid(client::over_limit_hint(e, &self.cfg.name)))?;
        Ok(Some(body))
    }

    /// Every client `GET /clients` lists (only `ids` when given), paged.
    async fn list(&self, ids: &[&str]) -> Result<Vec<ClientObject>, SourceError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut pages = MAX_PAGES;
        for page in 1..=MAX_PAGES {
            let mut q = vec![
                ("page", page.to_string()),
                ("limit", PAGE_LIMIT.to_string()),
            ];
            q.extend(ids.iter().map(|id| ("clientid", id.to_string())));
            let body = self
                .get_body(self.url(&["clients"]), &q, false)
                .await?
                .unwrap_or_default();
            let page_of = ClientPage::read(&body)?;
            let (data, meta) = (&page_of.data, page_of.meta.as_ref());
            let mut new = 0;
            for raw in data {
                // One client at a time, and of it only the keys read: a page is never a tree.
                let item = ClientObject::from_text(raw.get())
                    .map_err(|e| SourceError::Invalid(format!("answer is not JSON: {e}")))?;
                match item {
                    Some(c) if seen.insert(c.client_id.clone()) => {
                        new += 1;
                        out.push(c);
                    }
                    Some(_) => {}
                    None => {
                        tracing::debug!(source = %self.cfg.name, "skipping a list entry without a clientid")
                    }
                }
            }
            let meta_num = |k: &str| meta.and_then(|m| m.get(k)).and_then(object::number);
            // A server may cap `limit` below what was asked; its own `meta.limit` then counts.
            let limit = meta_num("limit").map_or(PAGE_LIMIT, |l| (l as usize).max(1));
            if let Some(count) = meta_num("count") {
                pages = pages.min((count as usize).div_ceil(limit).max(1) + 1);
            }
            let hasnext = match meta.and_then(|m| m.get("hasnext")) {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s == "true",
                _ => data.len() >= limit,
            };
            // An empty page, or one with nothing new (a server ignoring `page`), ends it too.
            if !hasnext || data.is_empty() || new == 0 || page >= pages {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /clients/{id}`: `None` when the broker does not know the client.
    async fn one(&self, id: &str) -> Result<Option<ClientObject>, SourceError> {
        let Some(v) = self.get_json(self.url(&["clients", id]), &[], true).await? else {
            return Ok(None);
        };
        let v = match v.get("data") {
            Some(d) if d.is_object() => d,
            _ => &v,
        };
        match ClientObject::from_json(v) {
            Some(c) if c.client_id == id => Ok(Some(c)),
            Some(c) => Err(SourceError::Invalid(format!(
                "asked for client {id:?}, got {:?}",
                c.client_id
            ))),
            None => Err(SourceError::Invalid(format!(
                "the answer for client {id:?} is not a client object"
            ))),
        }
    }

    async fn one_by_one(&self, ids: &[&str]) -> Result<Vec<ClientObject>, SourceError> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.one(id).await?);
        }
        Ok(out)
    }

    /// The monitored clients the broker knows, asking as few requests as the broker allows.
    async fn fetch_monitored(&mut self) -> Result<Vec<ClientObject>, SourceError> {
        let ids: Vec<&str> = self
            .cfg
            .clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect();
        let wanted: HashSet<&str> = ids.iter().copied().collect();
        if ids.len() == 1 {
            return self.one_by_one(&ids).await;
        }
        if self.multi_id == Some(false) {
            return self.one_by_one(&ids).await;
        }
        let mut out = Vec::new();
        let mut answered_others = false;
        for chunk in ids.chunks(IDS_PER_REQUEST) {
            let got = self.list(chunk).await?;
            let last = chunk[chunk.len() - 1];
            answered_others |= got.iter().any(|c| c.client_id != last);
            out.extend(
                got.into_iter()
                    .filter(|c| wanted.contains(c.client_id.as_str())),
            );
        }
        if self.multi_id == Some(true) {
            return Ok(out);
        }
        if answered_others {
            self.note_multi_id(true);
            return Ok(out);
        }
        // Ambiguous: the others may be offline, or the broker kept only the last id. Ask one
        // by one (always right), then probe with a client that exists: [it, unknown id] lists
        // it only if the broker honours more than the last `clientid`.
        let out = self.one_by_one(&ids).await?;
        if let Some(known) = out.first() {
            let probe = self.list(&[known.client_id.as_str(), PROBE_ID]).await?;
            let multi = probe.iter().any(|c| c.client_id == known.client_id);
            self.note_multi_id(multi);
        }
        Ok(out)
    }

    fn note_multi_id(&mut self, multi: bool) {
        self.multi_id = Some(multi);
        if multi {
            tracing::info!(source = %self.cfg.name, "the broker honours a repeated clientid (EMQX 5.6+): one request per poll");
        } else {
            tracing::info!(source = %self.cfg.name, "the broker keeps only the last clientid filter (EMQX before 5.6): asking per client");
        }
    }

    async fn fetch(&mut self) -> Result<Vec<ClientObject>, SourceError> {
        if self.cfg.clients.is_empty() {
            self.list(&[]).await
        } else {
            self.fetch_monitored().await
        }
    }

    fn note_outcome<T>(&mut self, r: &Result<T, SourceError>) {
        let now = match r {
            Ok(_) => Outcome::Fine,
            Err(SourceError::Status { status: 401, .. }) => Outcome::Unauthorized,
            Err(_) => Outcome::Failed,
        };
        // The relay logs the first failure after success; a change from another failure to a
        // refused key would go unsaid, so it is said here.
        if now == Outcome::Unauthorized && self.outcome == Outcome::Failed {
            tracing::warn!(source = %self.cfg.name, "EMQX now refuses the API key or secret (HTTP 401); check api_key and api_secret");
        }
        self.outcome = now;
    }

    async fn poll(&mut self) -> Result<Vec<Family>, SourceError> {
        let fetched = self.fetch().await;
        self.note_outcome(&fetched);
        let fetched = fetched?;
        if self.inspect {
            self.listing = Some(if self.cfg.clients.is_empty() {
                Ok(fetched.clone())
            } else {
                self.list(&[]).await.map_err(|e| e.to_string())
            });
        }
        // Nothing above changed the carried state: a failed or timed-out poll leaves it as it was.
        let now = self.clock.now_ms();
        let reconnected = self.apply(fetched, now);
        // A grown offset is written at once: losing it to a crash could make a carried counter
        // go backwards. The rest (current counters, last-seen times) at most every
        // STATE_WRITE_EVERY, and on drop.
        self.state_file
            .save_bounded(&self.saved, STATE_WRITE_EVERY, reconnected);
        Ok(self.families())
    }

    /// Folds a successful poll into the carried state; true when a client reconnected (its
    /// counter offsets grew).
    fn apply(&mut self, fetched: Vec<ClientObject>, now: i64) -> bool {
        let by_id: BTreeMap<String, ClientObject> = fetched
            .into_iter()
            .map(|c| (c.client_id.clone(), c))
            .collect();
        let mut reconnected = false;
        for (id, obj) in &by_id {
            let t = self.saved.clients.entry(id.clone()).or_default();
            if t.observe(obj, now) {
                reconnected = true;
                tracing::debug!(source = %self.cfg.name, client = %id, "client reconnected; counters carried over");
            }
        }
        for (id, t) in self.saved.clients.iter_mut() {
            if !by_id.contains_key(id) {
                t.vanish();
            }
        }
        let monitored: HashSet<&str> = self
            .cfg
            .clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect();
        let forget_ms = self.cfg.forget_after.as_millis() as i64;
        self.saved.clients.retain(|id, t| {
            (monitored.is_empty() || monitored.contains(id.as_str()))
                && !t.forgotten(now, forget_ms)
        });
        // Kept for `check`'s table of monitored clients; all-clients mode has `listing`.
        if !self.cfg.clients.is_empty() {
            self.last_objects = by_id;
        }
        reconnected
    }

    fn families(&self) -> Vec<Family> {
        let rows: Vec<families::Row> = if self.cfg.clients.is_empty() {
            self.saved
                .clients
                .iter()
                .map(|(id, t)| families::Row {
                    alias: id,
                    client_id: id,
                    tracked: Some(t),
                })
                .collect()
        } else {
            self.cfg
                .clients
                .iter()
                .map(|c| families::Row {
                    alias: c.alias.as_deref().unwrap_or(&c.client_id),
                    client_id: &c.client_id,
                    tracked: self.saved.clients.get(&c.client_id),
                })
                .collect()
        };
        families::build(
            &self.cfg.broker,
            &self.cfg.flags,
            self.cfg.monotonic_counters,
            &rows,
        )
    }
}

/// The `code` of an EMQX error body, if it has one.
fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some(v.get("code")?.as_str()?.to_string())
}

/// How often the carried state is written when only current counters and last-seen times
/// changed (a 10,000-client state is ~8 MB). A SIGKILL or power cut loses at most this much of
/// them; offsets are written as soon as they grow, and the state is written when the source is
/// dropped (SIGTERM, reload).
pub const STATE_WRITE_EVERY: Duration = Duration::from_secs(300);

impl Drop for EmqxSource {
    fn drop(&mut self) {
        self.state_file.save(&self.saved);
    }
}

impl Source for EmqxSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }
    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>> {
        Box::pin(self.poll())
    }
    fn check_summary(&self, all: bool) -> Option<String> {
        let now = self.clock.now_seconds();
        if self.outcome != Outcome::Fine {
            return Some("no answer from the EMQX API\n".into());
        }
        Some(if all || self.cfg.clients.is_empty() {
            match &self.listing {
                Some(Ok(list)) => {
                    let rows: Vec<(&str, Option<&ClientObject>)> = list
                        .iter()
                        .map(|c| (c.client_id.as_str(), Some(c)))
                        .collect();
                    table::render("Client ID", &rows, now)
                }
                Some(Err(e)) => format!("cannot list every client: {e}\n"),
                None => String::new(),
            }
        } else {
            let rows: Vec<(&str, Option<&ClientObject>)> = self
                .cfg
                .clients
                .iter()
                .map(|c| {
                    (
                        c.alias.as_deref().unwrap_or(&c.client_id),
                        self.last_objects.get(&c.client_id),
                    )
                })
                .collect();
            table::render("Alias", &rows, now)
        })
    }
}

/// One page of `GET /clients`, read without building the page as one JSON tree: each client
/// stays a borrowed slice of the body until it is read on its own. EMQX 5 answers
/// `{"data": [...], "meta": {...}}`; a bare list is taken too.
struct ClientPage<'a> {
    data: Vec<&'a serde_json::value::RawValue>,
    meta: Option<Value>,
}

impl<'a> ClientPage<'a> {
    fn read(body: &'a [u8]) -> Result<ClientPage<'a>, SourceError> {
        #[derive(serde::Deserialize)]
        struct Paged<'a> {
            #[serde(borrow, default)]
            data: Option<Vec<&'a serde_json::value::RawValue>>,
            #[serde(default)]
            meta: Option<Value>,
        }
        let not_json =
            |e: serde_json::Error| SourceError::Invalid(format!("answer is not JSON: {e}"));
        match body.iter().find(|c| !c.is_ascii_whitespace()) {
            Some(b'[') => Ok(ClientPage {
                data: serde_json::from_slice(body).map_err(not_json)?,
                meta: None,
            }),
            Some(b'{') => {
                let p: Paged = serde_json::from_slice(body).map_err(not_json)?;
                let data = p
                    .data
                    .ok_or_else(|| SourceError::Invalid("answer has no \"data\" list".into()))?;
                Ok(ClientPage { data, meta: p.meta })
            }
            _ => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Err(SourceError::Invalid("answer is not a client list".into())),
                Err(e) => Err(not_json(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_is_completed() {
        let b = |s: &str| api_base(&reqwest::Url::parse(s).unwrap()).to_string();
        assert_eq!(b("http://emqx:18083"), "http://emqx:18083/api/v5");
        assert_eq!(b("http://emqx:18083/"), "http://emqx:18083/api/v5");
        assert_eq!(b("http://emqx:18083/api"), "http://emqx:18083/api/v5");
        assert_eq!(b("http://emqx:18083/api/"), "http://emqx:18083/api/v5");
        assert_eq!(b("http://emqx:18083/api/v5/"), "http://emqx:18083/api/v5");
        assert_eq!(b("https://h/emqx/api/v5?x=1"), "https://h/emqx/api/v5");
        assert_eq!(b("https://h/emqx"), "https://h/emqx/api/v5");
    }
}
