//! Compiles the protobuf definitions in `proto/` with protox (pure Rust: no system `protoc`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/remote_write_v1.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
