//! Policy test files as written (`kind: PolicyTest`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{ReasonCode, Verdict};
use crate::overrides::{Actor, OverrideKind};
use crate::policy::Located;
use crate::proposal::ModelId;
use crate::units::Confidence;

/// A policy test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyTest {
    /// Always `conclave/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: Located<String>,
    /// Always `PolicyTest`.
    pub kind: Located<String>,
    /// The policy under test, relative to this file.
    pub policy: Located<String>,
    /// The tests.
    pub tests: Vec<RawTest>,
}

/// One test: steps run in order against one arbiter state.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    /// What the test shows.
    pub name: String,
    /// The steps.
    pub steps: Vec<Located<RawStep>>,
}

/// One decision window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Absolute time of the step (required on the first step).
    pub at: Option<Timestamp>,
    /// Time since the previous step, e.g. `30s`.
    pub after: Option<Located<String>>,
    /// Observed replicas per target before deciding.
    pub replicas: Option<BTreeMap<String, u32>>,
    /// Human overrides applied before deciding.
    pub overrides: Option<Vec<RawOverride>>,
    /// Proposals in this window.
    pub proposals: Option<Vec<RawProposal>>,
    /// Expected decisions (from overrides and proposals), matched by id or target+agent.
    pub expect: Option<Vec<Located<RawExpect>>>,
    /// Expected override errors, as substrings of their messages, in order.
    pub expect_errors: Option<Vec<String>>,
}

/// A proposal with test defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProposal {
    /// Defaults to `<agent>-<target>-<step>`.
    pub id: Option<String>,
    /// The proposing agent.
    pub agent: String,
    /// The target.
    pub target: String,
    /// The action.
    pub action: Action,
    /// Defaults to 0.9.
    pub confidence: Option<Confidence>,
    /// Model that produced it.
    pub model: Option<ModelId>,
    /// Fallback reason.
    pub fallback: Option<String>,
}

/// An override with test defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    /// Defaults to `o<step>-<n>`.
    pub id: Option<String>,
    /// What it does.
    pub kind: OverrideKind,
    /// Defaults to `{name: tester, role: operator}`.
    pub by: Option<Actor>,
    /// Defaults to `policy test`.
    pub reason: Option<String>,
    /// Expiry.
    pub until: Option<Timestamp>,
}

/// Outcome names in expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeName {
    /// Enacted.
    Enacted,
    /// Modified.
    Modified,
    /// Shadowed.
    Shadowed,
    /// Advised.
    Advised,
    /// Rejected.
    Rejected,
    /// Pending.
    Pending,
    /// Overridden.
    Overridden,
}

impl OutcomeName {
    /// As in `Outcome::name`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeName::Enacted => "enacted",
            OutcomeName::Modified => "modified",
            OutcomeName::Shadowed => "shadowed",
            OutcomeName::Advised => "advised",
            OutcomeName::Rejected => "rejected",
            OutcomeName::Pending => "pending",
            OutcomeName::Overridden => "overridden",
        }
    }
}

/// An expected decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// Decision id, when matching by id.
    pub decision: Option<String>,
    /// Target.
    pub target: String,
    /// Agent.
    pub agent: String,
    /// Outcome.
    pub outcome: OutcomeName,
    /// For shadowed/advised: what enforcing would have done.
    pub would: Option<Verdict>,
    /// The resulting action (`null` for none); unchecked when omitted.
    #[serde(default, deserialize_with = "some_option")]
    pub action: Option<Option<Action>>,
    /// Reason codes, exactly and in order; unchecked when omitted.
    pub reasons: Option<Vec<ReasonCode>>,
}

fn some_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Action>>, D::Error> {
    Option::<Action>::deserialize(d).map(Some)
}
