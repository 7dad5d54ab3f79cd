//! EMQX v5 source: per-client presence and traffic, a drop-in for emqx-client-monitor.

use super::{BuildContext, Source};
use crate::config::EmqxConfig;

/// Builds the source (placeholder until implemented).
pub fn build(cfg: EmqxConfig, _ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
    anyhow::bail!("source {}: type \"emqx\" is not implemented yet", cfg.name)
}
