//! Compiles the protobuf definitions in `proto/` with protox (pure Rust: no system `protoc`), and
//! records what `pushrelay --version` and `pushrelay_build_info` report (see `src/build_info.rs`).
use std::path::Path;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/remote_write_v1.proto", "proto/remote_write_v2.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    build_info();
    Ok(())
}

/// Sets PUSHRELAY_BUILD_COMMIT, PUSHRELAY_BUILD_TARGET and PUSHRELAY_BUILD_FEATURES for the crate.
fn build_info() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_lowercase().replace('_', "-"))
        })
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!("cargo:rustc-env=PUSHRELAY_BUILD_TARGET={target}");
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(",")
    };
    println!("cargo:rustc-env=PUSHRELAY_BUILD_FEATURES={features}");
    println!("cargo:rustc-env=PUSHRELAY_BUILD_COMMIT={}", commit());
}

/// The commit being built: `PUSHRELAY_GIT_COMMIT` when set (a packager building from a source
/// tarball), else git's HEAD when the crate is the top of a git checkout, else "unknown".
fn commit() -> String {
    println!("cargo:rerun-if-env-changed=PUSHRELAY_GIT_COMMIT");
    if let Ok(c) = std::env::var("PUSHRELAY_GIT_COMMIT") {
        if !c.trim().is_empty() {
            return c.trim().to_string();
        }
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&manifest_dir)
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    // A source tarball unpacked inside some other repository must not report that one's commit.
    let top = git(&["rev-parse", "--show-toplevel"]).map(|t| Path::new(&t).canonicalize().ok());
    if top.flatten() != Path::new(&manifest_dir).canonicalize().ok() {
        return "unknown".into();
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and packed refs.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for w in watched {
        if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", &w]) {
            if Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
}
