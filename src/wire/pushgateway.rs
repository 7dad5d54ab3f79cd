//! Pushgateway grouping-key paths: `/metrics/job/<job>/<label>/<value>` with `@base64` where needed.

use base64::Engine;

/// Appends one `/<name>/<value>` path segment pair, using `<name>@base64/<url-safe base64>` when
/// the value contains `/` or is empty (`=` stands for the empty value), and percent-encoding
/// otherwise.
pub fn push_segment(path: &mut String, name: &str, value: &str) {
    path.push('/');
    if value.is_empty() {
        path.push_str(name);
        path.push_str("@base64/=");
    } else if value.contains('/') {
        path.push_str(name);
        path.push_str("@base64/");
        path.push_str(&base64::engine::general_purpose::URL_SAFE.encode(value));
    } else {
        path.push_str(name);
        path.push('/');
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                path.push(b as char);
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
    }
}

/// The grouping path of one source's group: `/metrics/job/<job>/relay/<relay>`.
pub fn group_path(job: &str, relay: &str) -> String {
    let mut p = String::from("/metrics");
    push_segment(&mut p, "job", job);
    push_segment(&mut p, "relay", relay);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_base64_segments() {
        assert_eq!(
            group_path("node", "pi-gw-1"),
            "/metrics/job/node/relay/pi-gw-1"
        );
        assert_eq!(
            group_path("node", "a/b"),
            "/metrics/job/node/relay@base64/YS9i"
        );
        assert_eq!(group_path("node", ""), "/metrics/job/node/relay@base64/=");
        assert_eq!(group_path("n", "a b"), "/metrics/job/n/relay/a%20b");
    }
}
