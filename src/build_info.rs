//! What this binary is: version, git commit, target and features, set by `build.rs`; shown by
//! `pushrelay --version` and as the labels of the `pushrelay_build_info` self-metric.

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit built (12 hex digits), or `unknown` when built outside a git checkout.
pub const COMMIT: &str = env!("PUSHRELAY_BUILD_COMMIT");
/// The target triple built for, e.g. `aarch64-unknown-linux-musl`.
pub const TARGET: &str = env!("PUSHRELAY_BUILD_TARGET");
/// The enabled cargo features, comma-separated (`none` when none).
pub const FEATURES: &str = env!("PUSHRELAY_BUILD_FEATURES");

/// What `--version` prints after the program name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PUSHRELAY_BUILD_COMMIT"),
    ", target ",
    env!("PUSHRELAY_BUILD_TARGET"),
    ", features: ",
    env!("PUSHRELAY_BUILD_FEATURES"),
    ")"
);

/// The labels of `pushrelay_build_info`.
pub fn labels() -> [(&'static str, &'static str); 4] {
    [
        ("version", VERSION),
        ("commit", COMMIT),
        ("target", TARGET),
        ("features", FEATURES),
    ]
}
