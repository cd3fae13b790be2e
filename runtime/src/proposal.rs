//! What an agent proposes: an action on a target, with its confidence and the why.

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
    /// When the agent made it.
    pub at: Timestamp,
    /// Trace context of the telemetry that led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}
