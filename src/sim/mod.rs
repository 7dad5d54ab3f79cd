//! Simulated upstreams and a built-in receiver, for `pushrelay demo`, benchmarks and tests.
//!
//! Behind the default `sim` cargo feature, so a router build can leave it out.

pub mod exposition;
pub mod receiver;
