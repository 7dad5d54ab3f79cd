//! The Things Stack v3 source: gateway connection state, traffic, round-trip times and duty cycle.

use super::{BuildContext, Source};
use crate::config::TtnConfig;

/// Builds the source (placeholder until implemented).
pub fn build(cfg: TtnConfig, _ctx: &BuildContext) -> anyhow::Result<Box<dyn Source>> {
    anyhow::bail!("source {}: type \"ttn\" is not implemented yet", cfg.name)
}
