//! What an agent proposes: an action on a target, with its confidence and the why.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::clock::Timestamp;
use crate::target::Target;
use crate::units::Confidence;

/// One factor behind a proposal, e.g. `forecast_p90_rps = 812`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Factor {
    /// Feature or signal name.
    pub name: String,
    /// Its value when the proposal was made.
    pub value: f64,
    /// How it moved the proposal, in words (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Which model produced a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelId {
    /// Model name from its metadata.
    pub name: String,
    /// Model version from its metadata.
    pub version: String,
}

/// One model call behind a proposal: what its trace shows as an `execute_tool {model}`
/// span (with a `extract_features` sibling). It is not audited: the audit log keeps
/// `model` and `fallback`, which are the same in every run, while these timings are not.
#[derive(Debug, Clone)]
pub struct Inference {
    /// The model called (or that would have been).
    pub model: ModelId,
    /// Rows in the batch the proposal's row was part of (targets decided together).
    pub rows: usize,
    /// Values per row: the model's feature count.
    pub features: usize,
    /// How long building the batch's feature rows took.
    pub feature_time: Duration,
    /// How long the model took; `None` when it was not called (no model, circuit open,
    /// drift stop, refused input).
    pub latency: Option<Duration>,
    /// Why the rule decided instead, when it did.
    pub fallback: Option<String>,
}

/// Timings are measurements of one run, not part of what a proposal says: two runs of the
/// same input make equal proposals.
impl PartialEq for Inference {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
            && self.rows == other.rows
            && self.features == other.features
            && self.fallback == other.fallback
    }
}

/// W3C trace context that travels with a proposal so its decision joins the same trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceContext {
    /// The `traceparent` header value.
    pub traceparent: String,
}

/// An agent's proposal for one target in one decision window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// Unique id, chosen by the agent (stable for a given input, for replay).
    pub id: String,
    /// Name of the proposing agent (`scaler`, `router`, ...).
    pub agent: String,
    /// What the action is about.
    pub target: Target,
    /// What the agent wants done.
    pub action: Action,
    /// How sure the agent is.
    pub confidence: Confidence,
    /// Why, factor by factor.
    #[serde(default)]
    pub rationale: Vec<Factor>,
    /// The model that produced it; `None` for rule-based proposals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelId>,
    /// Why the rule fallback was used instead of the model, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// What the agent's rule alone would have proposed, when a model informed this
    /// proposal (the current state when the rule would change nothing): the model-vs-rule
    /// gap, reported by `conclave decisions gap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Action>,
    /// When the agent made it.
    pub at: Timestamp,
    /// Trace context of the telemetry that led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// The model call behind it, for its trace (never serialized).
    #[serde(skip)]
    #[schemars(skip)]
    pub inference: Option<Arc<Inference>>,
}
