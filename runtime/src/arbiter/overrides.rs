//! Applying human overrides to the arbiter's state, with their checks.

use super::approval::may_answer;
use super::state::ArbiterState;
use super::{Arbiter, Settle, HUMAN_AGENT};
use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{Decision, Outcome, Reason, ReasonCode};
use crate::overrides::{Override, OverrideKind, Role};

/// Why an override was refused. Nothing changes when one is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideError {
    /// Every override needs a reason, for the audit log.
    #[error("override `{id}`: a reason is required")]
    MissingReason {
        /// The override's id.
        id: String,
    },
    /// The role may not do this.
    #[error("override `{id}`: role `{role}` may not {action}")]
    NotPermitted {
        /// The override's id.
        id: String,
        /// The actor's role.
        role: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// The expiry is not in the future.
    #[error("override `{id}`: expiry {until} is not after now ({now})")]
    ExpiryInPast {
        /// The override's id.
        id: String,
        /// The expiry given.
        until: Timestamp,
        /// Now.
        now: Timestamp,
    },
    /// The agent is not configured in the policy.
    #[error("override `{id}`: unknown agent `{agent}` (expected one of {known})")]
    UnknownAgent {
        /// The override's id.
        id: String,
        /// The agent named.
        agent: String,
        /// Configured agents, formatted.
        known: String,
    },
    /// The pin is outside the target's replica bounds.
    #[error("override `{id}`: pin of `{target}` to {replicas} replicas is outside its bounds {min}..={max}")]
    PinOutOfBounds {
        /// The override's id.
        id: String,
        /// The target.
        target: String,
        /// The replicas asked for.
        replicas: u32,
        /// Its min_replicas.
        min: u32,
        /// Its max_replicas.
        max: u32,
    },
    /// No pending decision has this id.
    #[error("override `{id}`: no pending decision `{decision}`")]
    NotPending {
        /// The override's id.
        id: String,
        /// The decision id given.
        decision: String,
    },
    /// The person may not answer this approval.
    #[error("override `{id}`: `{who}` may not answer decision `{decision}` (rule `{rule}`)")]
    NotAnApprover {
        /// The override's id.
        id: String,
        /// Who tried.
        who: String,
        /// The decision.
        decision: String,
        /// The approval rule.
        rule: String,
    },
    /// The override could not be written to the journal, so it was not applied: one that
    /// took effect but would be forgotten at the next restart is worse than none.
    #[error("override `{id}` was not applied: it could not be saved ({error})")]
    NotSaved {
        /// The override's id.
        id: String,
        /// Why the journal refused it.
        error: String,
    },
}

impl Arbiter {
    /// Applies a human override at `now`. Approve, deny and veto settle a pending decision;
    /// a pin enacts the pinned replicas. Returns the decisions this produced.
    ///
    /// # Errors
    /// [`OverrideError`] when the override is not allowed or names something unknown; the
    /// state is then unchanged.
    pub fn apply_override(
        &self,
        state: &mut ArbiterState,
        o: Override,
        now: Timestamp,
    ) -> Result<Vec<Decision>, OverrideError> {
        let id = o.id.clone();
        if o.reason.trim().is_empty() {
            return Err(OverrideError::MissingReason { id });
        }
        let needs = match o.kind {
            OverrideKind::SetMode { .. } => Role::Admin,
            _ => Role::Operator,
        };
        if o.by.role < needs {
            let action = match o.kind {
                OverrideKind::SetMode { .. } => "change an agent's mode",
                _ => "override the arbiter",
            };
            return Err(OverrideError::NotPermitted {
                id,
                role: o.by.role.as_str(),
                action,
            });
        }
        if let Some(until) = o.until {
            if until <= now {
                return Err(OverrideError::ExpiryInPast { id, until, now });
            }
        }
        let policy = self.policy();
        let check_agent = |agent: &str| {
            if policy.agent(agent).is_some() {
                Ok(())
            } else {
                let known = policy
                    .agents()
                    .keys()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(OverrideError::UnknownAgent {
                    id: id.clone(),
                    agent: agent.to_string(),
                    known,
                })
            }
        };
        let by = format!("{} ({})", o.by.name, o.by.role.as_str());
        match o.kind.clone() {
            OverrideKind::Freeze => state.frozen = Some(o),
            OverrideKind::Unfreeze => state.frozen = None,
            OverrideKind::Pause { agent } => {
                check_agent(&agent)?;
                state.paused.insert(agent, o);
            }
            OverrideKind::Resume { agent } => {
                check_agent(&agent)?;
                state.paused.remove(&agent);
            }
            OverrideKind::SetMode { agent, mode } => {
                check_agent(&agent)?;
                state.modes.insert(agent, (mode, o));
            }
            OverrideKind::Unpin { target } => {
                state.pins.remove(&target);
            }
            OverrideKind::Pin { target, replicas } => {
                let limits = policy.limits_for(&target);
                if replicas < limits.min_replicas || replicas > limits.max_replicas {
                    return Err(OverrideError::PinOutOfBounds {
                        id,
                        target: target.to_string(),
                        replicas,
                        min: limits.min_replicas,
                        max: limits.max_replicas,
                    });
                }
                let until = o
                    .until
                    .map_or_else(|| "unpinned".to_string(), |u| u.to_string());
                let d = Decision {
                    id: format!("d-{id}"),
                    at: now,
                    target: target.clone(),
                    agent: HUMAN_AGENT.to_string(),
                    action: Some(Action::Scale { replicas }),
                    proposals: Vec::new(),
                    outcome: Outcome::Enacted,
                    reasons: vec![
                        Reason::new(ReasonCode::TargetPinned, format!("`{target}` pinned to {replicas} replicas by {by} until {until}: {}", o.reason)),
                        Reason::new(ReasonCode::Enacted, format!("enacted: {}", Action::Scale { replicas })),
                    ],
                    policy_revision: policy.revision().to_string(),
                    trace_id: None,
                };
                state.replicas.insert(target.clone(), replicas);
                state.pins.insert(target, (replicas, o));
                return Ok(vec![d]);
            }
            OverrideKind::Approve { decision }
            | OverrideKind::Deny { decision }
            | OverrideKind::Veto { decision } => {
                let Some(p) = state.pending.get(&decision) else {
                    return Err(OverrideError::NotPending { id, decision });
                };
                let answering = !matches!(o.kind, OverrideKind::Veto { .. });
                if answering {
                    if let Some(rule) = policy.approvals().iter().find(|r| r.name == p.rule) {
                        if !may_answer(rule, &o.by) {
                            return Err(OverrideError::NotAnApprover {
                                id,
                                who: o.by.name.clone(),
                                decision,
                                rule: p.rule.clone(),
                            });
                        }
                    }
                }
                let Some(p) = state.pending.remove(&decision) else {
                    return Err(OverrideError::NotPending { id, decision });
                };
                let how = match o.kind {
                    OverrideKind::Approve { .. } => Settle::Approve(Reason::new(
                        ReasonCode::Approved,
                        format!("approved by {by} ({id}): {}", o.reason),
                    )),
                    OverrideKind::Deny { .. } => Settle::Deny(Reason::new(
                        ReasonCode::Denied,
                        format!("denied by {by} ({id}): {}", o.reason),
                    )),
                    _ => Settle::Veto(
                        Reason::new(
                            ReasonCode::Vetoed,
                            format!("vetoed by {by} ({id}): {}", o.reason),
                        ),
                        id.clone(),
                    ),
                };
                return Ok(vec![self.settle(state, now, p, how)]);
            }
        }
        Ok(Vec::new())
    }
}
