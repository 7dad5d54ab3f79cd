//! Shared helpers for the integration tests (`mod support;` in a test file).
//!
//! Each test binary uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod fakes;
pub mod mosquitto;
pub mod receivers;
