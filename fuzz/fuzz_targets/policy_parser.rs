//! Fuzzes the policy parser and compiler: any bytes must give a policy or located errors,
//! never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

const AGENTS: [&str; 4] = ["breaker", "compliance", "router", "scaler"];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match conclave_runtime::policy::compile_str("fuzz.yaml", text, &AGENTS) {
            Ok(p) => {
                let _ = conclave_runtime::policy::explain(&p);
            }
            Err(errors) => {
                assert!(!errors.is_empty());
                for e in errors {
                    let _ = e.to_string();
                }
            }
        }
    }
});
