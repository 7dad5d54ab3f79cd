//! LoRaWAN devices from The Things Stack's MQTT server (the source follows in the next commit).

pub mod config;

pub use config::TtnDevicesConfig;

/// Builds the source.
pub fn build(
    _cfg: TtnDevicesConfig,
    _ctx: &super::BuildContext,
) -> anyhow::Result<Box<dyn super::Source>> {
    anyhow::bail!("the ttn_devices source is not built yet")
}
