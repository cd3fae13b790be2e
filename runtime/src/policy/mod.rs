//! The policy language: YAML in, a validated [`Policy`] out, or every error with its place.
//!
//! Two stages, as in ripgrep's `LowArgs`/`HiArgs`: [`raw`] mirrors the file, [`compile`]
//! checks everything and fills defaults. Nothing after compilation sees a raw type.

mod catalog;
mod compile;
mod condition;
mod error;
mod located;
mod model;
pub mod raw;
mod selector;
pub mod transport;

use std::path::Path;

pub use catalog::{AgentCatalog, SettingsProblem};
pub use condition::{Condition, ConditionCompileError, ConditionEvalError};
pub use error::{PolicyError, Problem};
pub use located::{Loc, Located};
pub use model::{
    AgentPolicy, ApprovalRule, ArbiterPolicy, ConflictStrategy, FallbackMode, Limits, Mode,
    ModelRef, OnViolation, Policy, SafetyClass, TargetSpec, TensorSpec, TensorType,
};
pub use selector::Selector;

pub(crate) use error::from_yaml_error;

/// Largest policy file accepted; larger is a mistake, not a policy.
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// Parses YAML text into `T` with limits against alias bombs and deep nesting, mapping any
/// error to a located [`PolicyError`] for `file`.
///
/// # Errors
/// One [`PolicyError`] for malformed YAML or a document of the wrong shape.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, PolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyError {
            file: file.to_string(),
            loc: Loc::default(),
            path: String::new(),
            problem: Problem::OutOfRange {
                expected: "a file of at most 1 MiB",
                found: format!("{} bytes", text.len()),
            },
        });
    }
    // serde-saphyr's default budget bounds events, aliases and depth, so an alias bomb
    // fails with an error instead of exhausting memory.
    let options = serde_saphyr::Options::default();
    serde_saphyr::from_str_with_options(text, options).map_err(|e| from_yaml_error(file, text, &e))
}

/// Compiles policy YAML `text` read from `file`, checking agent names against `agents`.
///
/// # Errors
/// Every problem found, each located, sorted by position.
pub fn compile_str(
    file: &str,
    text: &str,
    agents: &dyn AgentCatalog,
) -> Result<Policy, Vec<PolicyError>> {
    let raw: raw::RawPolicy = parse_yaml(file, text).map_err(|e| vec![e])?;
    compile::compile(raw, file, text, agents)
}

/// Reads and compiles the policy at `path`.
///
/// # Errors
/// As [`compile_str`], plus an error when the file cannot be read.
pub fn load(path: &Path, agents: &dyn AgentCatalog) -> Result<Policy, Vec<PolicyError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![PolicyError {
            file: file.clone(),
            loc: Loc::default(),
            path: String::new(),
            problem: Problem::Read(e.to_string()),
        }]
    })?;
    compile_str(&file, &text, agents)
}

/// The JSON Schema of policy files, for editors; `agents` become the allowed keys of
/// `spec.agents`.
pub fn json_schema(agents: &dyn AgentCatalog) -> serde_json::Value {
    let schema = schemars::schema_for!(raw::RawPolicy);
    let mut value = serde_json::to_value(schema).unwrap_or(serde_json::Value::Null);
    if let Some(spec_agents) = value
        .pointer_mut("/$defs/RawSpec/properties/agents")
        .and_then(|v| v.as_object_mut())
    {
        spec_agents.insert(
            "propertyNames".into(),
            serde_json::json!({ "enum": agents.names() }),
        );
    }
    value
}

/// The effective policy, defaults filled in, as YAML.
///
/// # Errors
/// When the policy cannot be serialized (a bug).
pub fn explain(policy: &Policy) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A billion-laughs document: 9^9 strings if aliases were expanded without limit.
    fn alias_bomb() -> String {
        let mut s = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            s.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
        }
        s
    }

    #[test]
    fn alias_bomb_is_refused_by_the_budget_even_into_an_untyped_value() {
        let err = parse_yaml::<serde_json::Value>("bomb.yaml", &alias_bomb())
            .expect_err("budget must stop it");
        let text = err.to_string();
        assert!(text.starts_with("bomb.yaml"), "{text}");
        assert!(
            text.to_lowercase().contains("budget") || text.contains("alias"),
            "{text}"
        );
    }

    #[test]
    fn oversized_file_is_refused_before_parsing() {
        let big = "#".repeat(MAX_POLICY_BYTES + 1);
        let err = parse_yaml::<serde_json::Value>("big.yaml", &big).expect_err("too big");
        assert_eq!(
            err.to_string(),
            format!(
                "big.yaml: expected a file of at most 1 MiB, found `{} bytes`",
                MAX_POLICY_BYTES + 1
            )
        );
    }
}
