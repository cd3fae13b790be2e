//! What the learned agents' tests share: the committed models' folder, ONNX Runtime
//! (a missing library fails the test with the fix, never skips), test policies compiled
//! as if they lived next to the models, and the agents the catalog builds for them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use conclave_runtime::models::OrtEnvironment;
use conclave_runtime::{Agent, Policy};

/// `agents/models/`.
pub(crate) fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The process's ONNX Runtime; a missing library fails the test with the command that
/// installs it.
pub(crate) fn require_ort() {
    if let Err(e) = OrtEnvironment::global() {
        panic!("ONNX Runtime is needed for this test: {e}");
    }
}

/// `yaml` compiled as the policy file `file` (model paths resolve against its folder).
pub(crate) fn compile_at(file: &Path, yaml: &str) -> Arc<Policy> {
    match conclave_runtime::policy::compile_str(&file.display().to_string(), yaml, &crate::Catalog)
    {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("test policy does not compile: {e:?}"),
    }
}

/// The agent `name` as the catalog builds it for `policy` (its model loaded).
pub(crate) fn built_agent(policy: &Arc<Policy>, name: &str) -> Box<dyn Agent> {
    let specs = match crate::agent_specs(policy) {
        Ok(specs) => specs,
        Err(e) => panic!("agent_specs failed: {e:?}"),
    };
    let spec = specs
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("the policy runs the {name}"));
    (spec.factory)()
}
