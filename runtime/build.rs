//! Generates KEDA's external scaler service (feature `keda`) from the vendored proto.

fn main() {
    #[cfg(feature = "keda")]
    {
        println!("cargo:rerun-if-changed=proto/externalscaler.proto");
        // The client (KEDA's side) only for tests: feature `keda-client`.
        if let Err(e) = tonic_prost_build::configure()
            .build_client(true)
            .client_mod_attribute("externalscaler", "#[cfg(feature = \"keda-client\")]")
            .compile_protos(&["proto/externalscaler.proto"], &["proto"])
        {
            // `protoc` comes from Debian's protobuf-compiler (deploy/setup/deps.sh).
            panic!("generating the KEDA external scaler from proto/externalscaler.proto: {e}");
        }
    }
}
