//! Simulated upstreams and a built-in receiver, for `pushrelay demo`, benchmarks and tests.
//!
//! Behind the default `sim` cargo feature, so a router build can leave it out.

pub mod emqx;
pub mod exposition;
pub mod linkhub;
pub mod mqtt;
pub mod receiver;
pub mod ttn;
pub mod ttn_devices;

/// A simulated upstream started for `pushrelay demo`.
pub struct DemoUpstream {
    /// A `[[source]]` table (TOML) that polls it.
    pub source_toml: String,
    /// One line for the demo's banner, e.g. "a simulated EMQX at http://127.0.0.1:1234".
    pub banner: String,
    /// Series (receiver keys start with `name{`) worth showing in the demo's table.
    pub showcase: Vec<String>,
}
