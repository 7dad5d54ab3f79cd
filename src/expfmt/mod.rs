//! The Prometheus text exposition format 0.0.4: a careful parser and a writer.
//!
//! [`parse`] reads a scrape body into [`Family`](crate::model::Family)s and refuses a
//! malformed body whole, naming the line; [`write_text`] and [`to_text`] write families back
//! (for the Pushgateway and `print`). Writing what was parsed and parsing it again gives the
//! same families; the fuzz target in `fuzz/` checks exactly that.

pub mod parse;
pub mod write;

pub use parse::{parse, ParseError};
pub use write::{same_families, to_text, write_text};
