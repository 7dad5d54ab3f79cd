//! HTTP plumbing shared by sources and sinks: client construction, body excerpts for log lines,
//! and a tiny server for `listen`, the demo and the simulated upstreams. (How a sink reads a
//! receiver's answer is in [`crate::sinks::send`].)

pub mod client;
pub mod server;

/// The first `max` characters of a response body, on one line, for a log message.
pub fn body_excerpt(body: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.trim().chars().take(max).collect();
    out = out.replace(['\n', '\r'], " ");
    if s.trim().chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_one_line_and_cut() {
        assert_eq!(body_excerpt(b"  a\nb\r\n ", 10), "a b");
        assert_eq!(body_excerpt(b"abcdef", 3), "abc…");
    }
}
