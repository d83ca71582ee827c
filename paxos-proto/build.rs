//! Compiles `proto/paxos.proto` with protox (pure Rust), so building needs no
//! system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/paxos.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let mut config = prost_build::Config::new();
    // Payloads are `bytes::Bytes`: cloning an entry never copies its data.
    config.bytes(["."]);
    config.type_attribute(".paxos.Ballot", "#[derive(PartialOrd, Ord)]");
    config.compile_fds(fds)?;
    Ok(())
}
