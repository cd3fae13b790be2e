//! What the arbiter made of the proposals: the outcome and every reason behind it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::clock::Timestamp;
use crate::proposal::Proposal;
use crate::target::Target;

/// A bounded set of reason codes, usable as metric labels and in policy tests.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// Everything is frozen by a human.
    Frozen,
    /// The proposing agent is paused by a human.
    AgentPaused,
    /// The target is pinned by a human.
    TargetPinned,
    /// A human vetoed the decision.
    Vetoed,
    /// A human approved the decision.
    Approved,
    /// A human denied the decision.
    Denied,
    /// The agent's mode is `off`.
    ModeOff,
    /// The agent's mode is `shadow`: logged, not acted on.
    ModeShadow,
    /// The agent's mode is `advise`: proposed to humans, not acted on.
    ModeAdvise,
    /// The agent is not assigned to this target by the policy.
    TargetNotSelected,
    /// The action was raised to the minimum replicas.
    BelowMin,
    /// The action was lowered to the maximum replicas.
    AboveMax,
    /// The step was limited to the maximum per decision.
    StepLimited,
    /// The target acted too recently.
    Cooldown,
    /// A scale-down was held back by the stabilization window.
    Stabilized,
    /// The shed fraction was limited.
    ShedLimited,
    /// The action changes nothing.
    NoChange,
    /// Another proposal for the target won a conflict against this one.
    ConflictLost,
    /// This proposal won a conflict against another.
    ConflictWon,
    /// A policy rule requires a human's approval.
    ApprovalRequired,
    /// The same action from the same agent is already waiting for approval.
    AwaitingApproval,
    /// An approval was not answered in time; the policy's default applied.
    ApprovalTimedOut,
    /// The fleet-wide replica budget limited or refused the action.
    ReplicaBudget,
    /// The agent's action budget is spent.
    ActionBudget,
    /// A policy condition could not be evaluated.
    ConditionError,
    /// The agent's `when` condition is false for this proposal.
    ConditionNotMet,
    /// The action itself is invalid (for example negative route weights).
    InvalidAction,
    /// The decision was carried out.
    Enacted,
}

impl ReasonCode {
    /// The snake_case name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Frozen => "frozen",
            ReasonCode::AgentPaused => "agent_paused",
            ReasonCode::TargetPinned => "target_pinned",
            ReasonCode::Vetoed => "vetoed",
            ReasonCode::Approved => "approved",
            ReasonCode::Denied => "denied",
            ReasonCode::ModeOff => "mode_off",
            ReasonCode::ModeShadow => "mode_shadow",
            ReasonCode::ModeAdvise => "mode_advise",
            ReasonCode::TargetNotSelected => "target_not_selected",
            ReasonCode::BelowMin => "below_min",
            ReasonCode::AboveMax => "above_max",
            ReasonCode::StepLimited => "step_limited",
            ReasonCode::Cooldown => "cooldown",
            ReasonCode::Stabilized => "stabilized",
            ReasonCode::ShedLimited => "shed_limited",
            ReasonCode::NoChange => "no_change",
            ReasonCode::ConflictLost => "conflict_lost",
            ReasonCode::ConflictWon => "conflict_won",
            ReasonCode::ApprovalRequired => "approval_required",
            ReasonCode::AwaitingApproval => "awaiting_approval",
            ReasonCode::ApprovalTimedOut => "approval_timed_out",
            ReasonCode::ReplicaBudget => "replica_budget",
            ReasonCode::ActionBudget => "action_budget",
            ReasonCode::ConditionError => "condition_error",
            ReasonCode::ConditionNotMet => "condition_not_met",
            ReasonCode::InvalidAction => "invalid_action",
            ReasonCode::Enacted => "enacted",
        }
    }
}

/// One step in the chain of reasons behind a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Machine-readable code.
    pub code: ReasonCode,
    /// The same in plain words, with the values that mattered.
    pub message: String,
}

impl Reason {
    /// A reason with a code and a message.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Reason {
            code,
            message: message.into(),
        }
    }
}

/// What a decision's action would have been had the agent been enforcing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Would have been carried out as proposed.
    Enacted,
    /// Would have been carried out after modification.
    Modified,
    /// Would have been refused.
    Rejected,
    /// Would have waited for a human.
    Pending,
    /// Would have been blocked by a human override.
    Overridden,
}

impl Verdict {
    /// The verdict's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Enacted => "enacted",
            Verdict::Modified => "modified",
            Verdict::Rejected => "rejected",
            Verdict::Pending => "pending",
            Verdict::Overridden => "overridden",
        }
    }
}

/// What happens on an approval timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Carry the action out.
    Enact,
    /// Drop the action.
    Reject,
}

impl OnTimeout {
    /// The name used in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Enact => "enact",
            OnTimeout::Reject => "reject",
        }
    }
}

/// A decision's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Carried out as proposed.
    Enacted,
    /// Carried out after a guardrail or budget changed it.
    Modified {
        /// The proposed action.
        from: Action,
        /// The action carried out.
        to: Action,
    },
    /// Logged only (agent in shadow mode).
    Shadowed {
        /// What enforcing would have done.
        would: Verdict,
    },
    /// Proposed to humans only (agent in advise mode).
    Advised {
        /// What enforcing would have done.
        would: Verdict,
    },
    /// Refused.
    Rejected,
    /// Waiting for a human until `until`, then `on_timeout`.
    Pending {
        /// The approval deadline.
        until: Timestamp,
        /// What happens if nobody answers.
        on_timeout: OnTimeout,
    },
    /// Blocked or replaced by a human override.
    Overridden {
        /// The override's id.
        by: String,
    },
}

impl Outcome {
    /// The outcome's name, as in JSON and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Enacted => "enacted",
            Outcome::Modified { .. } => "modified",
            Outcome::Shadowed { .. } => "shadowed",
            Outcome::Advised { .. } => "advised",
            Outcome::Rejected => "rejected",
            Outcome::Pending { .. } => "pending",
            Outcome::Overridden { .. } => "overridden",
        }
    }

    /// Whether the action reaches the actuator.
    pub fn is_acted_on(&self) -> bool {
        matches!(self, Outcome::Enacted | Outcome::Modified { .. })
    }
}

/// The arbiter's decision on one proposal (plus any proposals it overruled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Unique, deterministic id (`d-` + the primary proposal's id).
    pub id: String,
    /// When the arbiter decided.
    pub at: Timestamp,
    /// What the decision is about.
    pub target: Target,
    /// The agent whose proposal this decision is about.
    pub agent: String,
    /// The action carried out (or that would be, for shadow/advise/pending); `None` when
    /// nothing would be.
    pub action: Option<Action>,
    /// The proposal decided on, first, then any it overruled in a conflict.
    pub proposals: Vec<Proposal>,
    /// What happened.
    pub outcome: Outcome,
    /// Every reason, in the order the arbiter applied its rules.
    pub reasons: Vec<Reason>,
    /// The policy's revision when deciding.
    pub policy_revision: String,
    /// The decision's trace id, when tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Decision {
    /// The reason codes, in order.
    pub fn reason_codes(&self) -> Vec<ReasonCode> {
        self.reasons.iter().map(|r| r.code).collect()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Modified { from, to } => write!(f, "modified from {from} to {to}"),
            Outcome::Shadowed { would } => {
                write!(f, "shadowed (would have been {})", would.as_str())
            }
            Outcome::Advised { would } => write!(f, "advised (would have been {})", would.as_str()),
            Outcome::Pending { until, on_timeout } => {
                write!(
                    f,
                    "pending approval until {until}, then {}",
                    on_timeout.as_str()
                )
            }
            Outcome::Overridden { by } => write!(f, "overridden by `{by}`"),
            other => f.write_str(other.name()),
        }
    }
}
