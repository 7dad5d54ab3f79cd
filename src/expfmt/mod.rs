//! The exposition formats: careful parsers for the Prometheus text format (0.0.4/1.0.0) and
//! OpenMetrics text 1.0, content negotiation, and a writer.
//!
//! [`parse`] reads a scrape body into [`Family`](crate::model::Family)s and refuses a
//! malformed body whole, naming the line; [`write_text`] and [`to_text`] write families back
//! (for the Pushgateway and `print`). Writing what was parsed and parsing it again gives the
//! same families; the fuzz target in `fuzz/` checks exactly that.

pub mod float;
mod group;
pub mod negotiate;
pub mod openmetrics;
pub mod parse;
pub mod write;

pub use parse::{parse, parse_bytes, ParseError};
pub use write::{escape_name, same_families, same_series, to_text, to_text_escaped, write_text};
