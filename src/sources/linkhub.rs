//! Alcatel LinkHub / TCL 4G router source: signal quality, cell, connection and data usage.

use super::{BuildContext, Source};
use crate::config::LinkhubConfig;

/// Builds the source (placeholder until implemented).
pub fn build(cfg: LinkhubConfig, _ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
    anyhow::bail!(
        "source {}: type \"linkhub\" is not implemented yet",
        cfg.name
    )
}
