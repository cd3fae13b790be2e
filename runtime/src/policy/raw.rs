//! The policy file as written: `Raw*` types mirror the YAML, nothing more.
//!
//! Every struct denies unknown fields; every optional key is an `Option`, so defaults are
//! filled in one place (`compile`) and `policy explain` can show them.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::located::Located;
use super::model::{ConflictStrategy, FallbackMode, Mode, OnViolation, SafetyClass, TensorType};
use crate::action::ActionKind;
use crate::decision::OnTimeout;
use crate::overrides::Role;
use crate::target::TargetKind;

/// A Conclave policy document.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Conclave policy")]
pub struct RawPolicy {
    /// Always `conclave/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: Located<String>,
    /// Always `Policy`.
    pub kind: Located<String>,
    /// Name and labels.
    pub metadata: RawMetadata,
    /// What the agents may do, where, and within which limits.
    pub spec: RawSpec,
}

/// Name, revision and labels of a policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMetadata {
    /// A short name (`[a-z0-9-]`, at most 63 characters).
    pub name: Located<String>,
    /// A revision label written into every decision; a digest of the file when omitted.
    pub revision: Option<String>,
    /// What the policy is for.
    pub description: Option<String>,
    /// Free-form labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// The body of a policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// The targets the policy knows about, with their labels.
    pub targets: Option<Vec<Located<RawTarget>>>,
    /// One entry per agent that runs: `scaler`, `router`, `breaker`, `compliance`.
    pub agents: IndexMap<Located<String>, Located<RawAgent>>,
    /// Limits on what any agent may do.
    pub guardrails: Option<RawGuardrails>,
    /// How proposals are weighed against each other.
    pub arbiter: Option<RawArbiter>,
    /// Which actions wait for a human.
    pub approvals: Option<Vec<Located<RawApproval>>>,
    /// Topics and subscription when the runtime runs on Apache Pulsar.
    pub pulsar: Option<super::transport::RawPulsar>,
}

/// A declared target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Unique name.
    pub name: Located<String>,
    /// `service`, `topic` or `route`.
    pub kind: TargetKind,
    /// Labels that selectors match on.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Which targets something applies to: any target matching any of the listed ways.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    /// Exact names of declared targets.
    pub names: Option<Vec<Located<String>>>,
    /// Labels that must all match (declared targets only).
    pub labels: Option<BTreeMap<String, String>>,
    /// Glob patterns on target names, e.g. `payments-*`.
    pub globs: Option<Vec<Located<String>>>,
}

/// One agent's settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// `off`, `shadow` (default), `advise` or `enforce`.
    pub mode: Option<Mode>,
    /// Which targets the agent acts on; all when omitted.
    pub targets: Option<Located<RawSelector>>,
    /// The agent's ONNX model; the rule is used when omitted.
    pub model: Option<Located<RawModelRef>>,
    /// What to do when the model cannot be trusted: `rules` (default) or `hold`.
    pub fallback: Option<FallbackMode>,
    /// CEL condition: proposals for which it is false are rejected.
    pub when: Option<Located<String>>,
    /// The agent's own settings (HPA behavior, breaker thresholds, residency rules...);
    /// each agent documents its keys and rejects unknown ones.
    pub settings: Option<Located<serde_json::Value>>,
}

/// A model reference with the signature the agent expects.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModelRef {
    /// Path to the `.onnx` file, relative to the policy file.
    pub path: Located<String>,
    /// Expected model version (from its metadata); any when omitted.
    pub version: Option<String>,
    /// Expected inputs.
    pub inputs: Vec<Located<RawTensor>>,
    /// Expected outputs.
    pub outputs: Vec<Located<RawTensor>>,
    /// Inference time limit, e.g. `20ms` (default `50ms`).
    pub timeout: Option<Located<String>>,
}

/// A tensor in a model signature.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTensor {
    /// Tensor name in the ONNX graph.
    pub name: String,
    /// Element type.
    #[serde(rename = "type")]
    pub elem_type: TensorType,
    /// Dimensions; `-1` for a dynamic one.
    pub shape: Vec<i64>,
}

/// Limits on what agents may do.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrails {
    /// Limits for every target.
    pub defaults: Option<Located<RawLimits>>,
    /// Limits for some targets, applied over the defaults in order.
    pub per_target: Option<Vec<Located<RawTargetLimits>>>,
    /// The most replicas all targets together may run.
    pub fleet_replica_budget: Option<Located<u32>>,
    /// The most actions one agent may have enacted in any hour.
    pub max_actions_per_hour: Option<Located<u32>>,
}

/// Limits for the targets a selector picks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTargetLimits {
    /// Which targets.
    pub select: Located<RawSelector>,
    /// Their limits.
    pub limits: Located<RawLimits>,
}

/// Limits on actions for one target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Fewest replicas (default 1).
    pub min_replicas: Option<Located<u32>>,
    /// Most replicas (default 100).
    pub max_replicas: Option<Located<u32>>,
    /// Most replicas added or removed by one decision (default 10).
    pub max_step: Option<Located<u32>>,
    /// Least time between two actions of one kind on a target, e.g. `60s` (default `30s`).
    pub cooldown: Option<Located<String>>,
    /// Scale-downs go no lower than the highest recommendation in this window, as in the
    /// Kubernetes HPA (default `300s`).
    pub scale_down_stabilization: Option<Located<String>>,
    /// Largest share of work that may be shed (default 0.5).
    pub max_shed_fraction: Option<Located<f64>>,
    /// `clamp` an action into the limits (default) or `reject` it.
    pub on_violation: Option<OnViolation>,
}

/// How the arbiter weighs proposals.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArbiter {
    /// Length of a decision window, e.g. `15s` (default).
    pub window: Option<Located<String>>,
    /// Agents from most to least important; unlisted agents come last, by name.
    pub priorities: Option<Vec<Located<String>>>,
    /// How conflicts between agents on one target are settled.
    pub conflicts: Option<RawConflicts>,
}

/// Conflict settlement.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConflicts {
    /// `safer_wins` (default): the safer action wins, priority breaks ties; `priority`: the
    /// higher-priority agent wins, safety breaks ties.
    pub strategy: Option<ConflictStrategy>,
    /// Action classes from safest to least safe; every class exactly once.
    pub safety_order: Option<Located<Vec<SafetyClass>>>,
}

/// A rule that sends matching actions to a human.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    /// Unique name, shown in the decision's reasons.
    pub name: Located<String>,
    /// Agents it applies to; all when omitted.
    pub agents: Option<Vec<Located<String>>>,
    /// Action kinds it applies to; all when omitted.
    pub actions: Option<Vec<ActionKind>>,
    /// Targets it applies to; all when omitted.
    pub select: Option<Located<RawSelector>>,
    /// CEL condition over `proposal` and `target`; always when omitted.
    pub when: Option<Located<String>>,
    /// Who may answer.
    pub approvers: RawApprovers,
    /// How long to wait, e.g. `10m`.
    pub timeout: Located<String>,
    /// `enact` or `reject` when nobody answers in time.
    pub on_timeout: OnTimeout,
}

/// Who may answer an approval: anyone with one of the roles or named.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApprovers {
    /// Roles that may answer.
    pub roles: Option<Vec<Role>>,
    /// People who may answer, by name.
    pub users: Option<Vec<String>>,
}
