//! Alcatel LinkHub / TCL 4G router source: signal quality, cell, connection and data usage
//! from the router's JSON-RPC web API, robust to "no service" answers.
//!
//! Each poll calls `GetSystemInfo`, `GetNetworkInfo`, `GetSystemStatus`, `GetUsageRecord` and
//! `GetConnectionState` in turn ([`rpc`]), reads their loosely typed fields ([`values`]) into a
//! [`reading::Reading`], and turns that into families ([`reading`]). A method the model lacks is
//! dropped for good after its first "method not found"; an auth failure fails the poll (after one
//! fresh login on models that log in). The count of cell changes is carried in the source's
//! state file so it survives restarts.

pub mod config;
mod reading;
mod rpc;
mod values;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{BoxFuture, BuildContext, Source, SourceError, SourceMeta, StateFile};
use crate::model::Family;
pub use config::LinkhubConfig;
use reading::Reading;
use rpc::{CallError, Reply, Rpc};

/// The methods polled, in order. `GetSystemInfo` first: it is the cheapest and tells the model.
const METHODS: [&str; 5] = [
    "GetSystemInfo",
    "GetNetworkInfo",
    "GetSystemStatus",
    "GetUsageRecord",
    "GetConnectionState",
];

/// What survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Carried {
    /// `linkhub_cell_changes_total`.
    cell_changes_total: u64,
    /// The last valid cell id seen, so a change across a restart or a no-service gap counts.
    last_cell: Option<String>,
}

pub struct LinkhubSource {
    cfg: LinkhubConfig,
    /// Name, `instance`, interval and timeout.
    meta: SourceMeta,
    rpc: Rpc,
    state_file: StateFile,
    carried: Carried,
    /// Login models: the current `_TclRequestVerificationToken`, if logged in.
    token: Option<String>,
    /// Methods this model answered "method not found" to: never called again.
    missing: BTreeSet<&'static str>,
    /// Methods answering another error now, with the error (so it is logged once, not per poll).
    failing: BTreeMap<&'static str, String>,
    /// JSON-RPC request id.
    next_id: u64,
    /// The last successful poll, for `check`.
    last: Option<Reading>,
}

impl LinkhubSource {
    pub fn new(cfg: LinkhubConfig, ctx: &BuildContext) -> anyhow::Result<LinkhubSource> {
        if cfg.request_key.is_none() {
            // The facts do not give the family's constant public key, so it is not guessed.
            anyhow::bail!(
                "source {}: request_key is required (the HH41's key, or the public key of models that log in)",
                cfg.name
            );
        }
        let state_file = ctx.state_file(&cfg.name);
        let carried = state_file.load().unwrap_or_default();
        Ok(LinkhubSource {
            meta: SourceMeta::for_url(&cfg.name, &cfg.url, cfg.interval, cfg.timeout),
            rpc: Rpc::new(&cfg.url, &cfg.http)?,
            state_file,
            carried,
            token: None,
            missing: BTreeSet::new(),
            failing: BTreeMap::new(),
            next_id: 0,
            last: None,
            cfg,
        })
    }

    fn logs_in(&self) -> bool {
        self.cfg.username.is_some() && self.cfg.password.is_some()
    }

    async fn call(&mut self, method: &str, params: Option<Value>) -> Result<Reply, SourceError> {
        self.next_id = self.next_id.wrapping_add(1);
        let key = self
            .cfg
            .request_key
            .as_ref()
            .map(|k| k.expose())
            .unwrap_or("");
        self.rpc
            .call(key, self.token.as_deref(), method, params, self.next_id)
            .await
            .map_err(|e| match e {
                CallError::Transport(m) => SourceError::Request(format!("{method}: {m}")),
                CallError::Status { status, body } => SourceError::Status { status, body },
                CallError::Invalid(m) => SourceError::Invalid(format!("{method}: {m}")),
            })
    }

    /// `Login {UserName, Password}` → `result.token`.
    async fn login(&mut self) -> Result<(), SourceError> {
        self.token = None;
        let params = json!({
            "UserName": self.cfg.username.clone().unwrap_or_default(),
            "Password": self.cfg.password.as_ref().map(|p| p.expose()).unwrap_or(""),
        });
        match self.call("Login", Some(params)).await? {
            Reply::Result(r) => match values::text(values::field(&r, "token")) {
                Some(t) => {
                    self.token = Some(t);
                    Ok(())
                }
                None => Err(SourceError::Invalid(
                    "Login answered no token".to_string(),
                )),
            },
            Reply::AuthFailed(e) | Reply::Error(e) => Err(SourceError::Request(format!(
                "login refused ({e}): the username, password or request key is wrong"
            ))),
            Reply::MethodNotFound(e) => Err(SourceError::Request(format!(
                "the router has no Login method ({e}): remove username and password (an HH41 needs only request_key)"
            ))),
        }
    }

    /// Calls a method; on models that log in, an auth failure gets one fresh login and retry.
    async fn call_authed(&mut self, method: &'static str) -> Result<Reply, SourceError> {
        if self.logs_in() && self.token.is_none() {
            self.login().await?;
        }
        let reply = self.call(method, None).await?;
        if matches!(reply, Reply::AuthFailed(_)) && self.logs_in() {
            tracing::debug!(source = %self.cfg.name, "{method}: token refused; logging in again");
            self.login().await?;
            return self.call(method, None).await;
        }
        Ok(reply)
    }

    async fn poll(&mut self) -> Result<Vec<Family>, SourceError> {
        self.last = None;
        let mut answers: BTreeMap<&'static str, Map<String, Value>> = BTreeMap::new();
        let mut first_error = None;
        for method in METHODS {
            if self.missing.contains(method) {
                continue;
            }
            match self.call_authed(method).await? {
                Reply::Result(r) => {
                    if self.failing.remove(method).is_some() {
                        tracing::info!(source = %self.cfg.name, "{method} answers again");
                    }
                    answers.insert(method, r);
                }
                Reply::MethodNotFound(e) => {
                    tracing::info!(
                        source = %self.cfg.name,
                        "the router does not offer {method} ({e}); not asking again, its metrics are left out"
                    );
                    self.missing.insert(method);
                }
                Reply::AuthFailed(e) => {
                    if self.logs_in() {
                        self.token = None;
                        return Err(SourceError::Request(format!(
                            "{method}: the router refused the login token right after a fresh login ({e}); the request key may be wrong"
                        )));
                    }
                    return Err(SourceError::Request(format!(
                        "{method}: the router refused the request key, it is wrong or expired ({e}); copy _TclRequestVerificationKey again from the web UI"
                    )));
                }
                Reply::Error(e) => {
                    if self.failing.get(method) != Some(&e) {
                        tracing::warn!(
                            source = %self.cfg.name,
                            "{method} answered {e}; its metrics are left out until it answers"
                        );
                        self.failing.insert(method, e.clone());
                    }
                    first_error.get_or_insert(format!("{method} answered {e}"));
                }
            }
        }
        if answers.is_empty() {
            return Err(SourceError::Invalid(first_error.unwrap_or_else(|| {
                format!("the router offers none of {}", METHODS.join(", "))
            })));
        }
        let reading = Reading::from_answers(&answers);
        self.track_cell(reading.network.cell_id.as_deref());
        let fams = reading.families(self.carried.cell_changes_total, self.cfg.compat_names);
        self.last = Some(reading);
        Ok(fams)
    }

    /// Counts a change of valid cell id (a no-service gap is not a change; a different cell
    /// after the gap is) and saves the carried state when it changed.
    fn track_cell(&mut self, cell: Option<&str>) {
        let Some(cell) = cell else { return };
        if let Some(prev) = &self.carried.last_cell {
            if prev != cell {
                self.carried.cell_changes_total += 1;
            }
        }
        self.carried.last_cell = Some(cell.to_string());
        self.state_file.save(&self.carried);
    }
}

impl Source for LinkhubSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }
    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, SourceError>> {
        Box::pin(self.poll())
    }
    fn check_summary(&self, _all: bool) -> Option<String> {
        Some(match &self.last {
            Some(r) => r.summary(self.carried.cell_changes_total, &self.missing),
            None => "  no answer from the router\n".to_string(),
        })
    }
}
