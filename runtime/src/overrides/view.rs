//! What operators see of the arbiter: agents and their modes, pending approvals, and the
//! overrides in force. Built by the arbiter's host on request, so it is always current.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Override, Role};
use crate::arbiter::ArbiterState;
use crate::clock::Timestamp;
use crate::decision::{Decision, OnTimeout};
use crate::policy::{Mode, Policy};

/// One agent as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AgentView {
    /// The agent's name.
    pub name: String,
    /// The mode its decisions take effect in now: a `set_mode` override in force, else
    /// the policy's.
    pub mode: Mode,
    /// The policy's mode.
    pub policy_mode: Mode,
    /// Whether it is paused (its proposals are overridden).
    pub paused: bool,
    /// Whether it is still running (an agent that failed too often is retired).
    pub running: bool,
    /// The override that set its mode, if one is in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_override: Option<Override>,
    /// The override that paused it, if one is in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<Override>,
}

/// A decision waiting for a human, typed like an inquiry: who may answer, by when, and
/// what happens when nobody does.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PendingApproval {
    /// The decision as recorded when it was held.
    pub decision: Decision,
    /// The approval rule that holds it.
    pub rule: String,
    /// Roles that may answer (admins always may).
    pub roles: Vec<Role>,
    /// People who may answer by name.
    pub users: Vec<String>,
    /// When it times out.
    pub deadline: Timestamp,
    /// What happens then.
    pub on_timeout: OnTimeout,
}

/// The arbiter's state as operators see it at `now`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct OperatorView {
    /// The runtime's clock when the view was taken.
    pub now: Timestamp,
    /// The policy's revision.
    pub policy_revision: String,
    /// Whether a freeze is in force.
    pub frozen: bool,
    /// Every agent in the policy.
    pub agents: Vec<AgentView>,
    /// Decisions waiting for a human, oldest deadline first.
    pub pending: Vec<PendingApproval>,
    /// Overrides in force (freeze, pauses, pins, modes).
    pub overrides: Vec<Override>,
}

impl OperatorView {
    /// The view of `state` under `policy` at `now`; `running` names the agents still live.
    pub fn build(
        policy: &Policy,
        state: &ArbiterState,
        running: &BTreeSet<&'static str>,
        now: Timestamp,
    ) -> Self {
        let agents = policy
            .agents()
            .iter()
            .map(|(name, a)| {
                let mode_override = state
                    .modes
                    .get(name)
                    .filter(|(_, o)| o.is_in_force(now))
                    .cloned();
                let pause = state
                    .paused
                    .get(name)
                    .filter(|o| o.is_in_force(now))
                    .cloned();
                AgentView {
                    name: name.clone(),
                    mode: mode_override.as_ref().map_or(a.mode(), |(m, _)| *m),
                    policy_mode: a.mode(),
                    paused: pause.is_some(),
                    running: running.contains(name.as_str()),
                    mode_override: mode_override.map(|(_, o)| o),
                    pause,
                }
            })
            .collect();
        let mut pending: Vec<PendingApproval> = state
            .pending()
            .map(|p| {
                let rule = policy.approvals().iter().find(|r| r.name == p.rule());
                PendingApproval {
                    decision: p.decision().clone(),
                    rule: p.rule().to_string(),
                    roles: rule
                        .map_or_else(Vec::new, |r| r.approvers.roles.iter().copied().collect()),
                    users: rule
                        .map_or_else(Vec::new, |r| r.approvers.users.iter().cloned().collect()),
                    deadline: p.deadline(),
                    on_timeout: p.on_timeout,
                }
            })
            .collect();
        pending.sort_by(|a, b| {
            a.deadline
                .cmp(&b.deadline)
                .then_with(|| a.decision.id.cmp(&b.decision.id))
        });
        OperatorView {
            now,
            policy_revision: policy.revision().to_string(),
            frozen: state.is_frozen(now),
            agents,
            pending,
            overrides: state.overrides_in_force(now).into_iter().cloned().collect(),
        }
    }
}
