//! The first rules: human overrides, then the agent's mode, target selection and `when`.

use super::candidate::{Candidate, Stop};
use super::conditions::proposal_vars;
use super::state::ArbiterState;
use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{Reason, ReasonCode};
use crate::policy::{Mode, Policy};
use crate::proposal::Proposal;

/// The agent's mode now: a human's `set_mode` in force, else the policy's; `off` when the
/// policy does not configure the agent.
pub(crate) fn effective_mode(
    policy: &Policy,
    state: &ArbiterState,
    agent: &str,
    now: Timestamp,
) -> Mode {
    match state.modes.get(agent) {
        Some((mode, o)) if o.is_in_force(now) => *mode,
        _ => policy.agent(agent).map_or(Mode::Off, |a| a.mode()),
    }
}

pub(crate) fn gate(
    policy: &Policy,
    state: &ArbiterState,
    now: Timestamp,
    p: Proposal,
) -> Candidate {
    let mode = effective_mode(policy, state, &p.agent, now);
    let mut c = Candidate::new(p, mode);
    let agent = c.proposal.agent.clone();
    let target = c.proposal.target.clone();

    if let Some(f) = state.frozen.as_ref().filter(|o| o.is_in_force(now)) {
        c.reasons.push(Reason::new(
            ReasonCode::Frozen,
            format!(
                "everything is frozen by {} ({}): {}",
                f.by.name, f.id, f.reason
            ),
        ));
        c.stop = Some(Stop::Overridden(f.id.clone()));
    } else if let Some(o) = state.paused.get(&agent).filter(|o| o.is_in_force(now)) {
        c.reasons.push(Reason::new(
            ReasonCode::AgentPaused,
            format!(
                "agent `{agent}` is paused by {} ({}): {}",
                o.by.name, o.id, o.reason
            ),
        ));
        c.stop = Some(Stop::Overridden(o.id.clone()));
    } else if let (Action::Scale { .. }, Some((n, o))) = (
        &c.action,
        state.pins.get(&target).filter(|(_, o)| o.is_in_force(now)),
    ) {
        let until = o
            .until
            .map_or_else(|| "unpinned".to_string(), |u| u.to_string());
        c.reasons.push(Reason::new(
            ReasonCode::TargetPinned,
            format!(
                "`{target}` is pinned to {n} replicas by {} until {until} ({}): {}",
                o.by.name, o.id, o.reason
            ),
        ));
        c.stop = Some(Stop::Overridden(o.id.clone()));
    }

    match mode {
        Mode::Off => {
            let why = if policy.agent(&agent).is_some() {
                format!("agent `{agent}` is in mode off")
            } else {
                format!(
                    "agent `{agent}` is not configured in policy `{}`",
                    policy.name()
                )
            };
            if c.is_live() {
                c.reject(Reason::new(ReasonCode::ModeOff, why));
            }
            return c;
        }
        Mode::Shadow => c.reasons.push(Reason::new(
            ReasonCode::ModeShadow,
            format!("agent `{agent}` is in shadow mode: logged, not acted on"),
        )),
        Mode::Advise => c.reasons.push(Reason::new(
            ReasonCode::ModeAdvise,
            format!("agent `{agent}` is in advise mode: proposed to humans, not acted on"),
        )),
        Mode::Enforce => {}
    }
    if !c.is_live() {
        return c;
    }

    if !policy.selects(&agent, &target) {
        c.reject(Reason::new(
            ReasonCode::TargetNotSelected,
            format!("`{target}` is not among agent `{agent}`'s targets"),
        ));
        return c;
    }
    if let Some(cond) = policy.agent(&agent).and_then(|a| a.when.as_ref()) {
        match cond.eval(&proposal_vars(&c.proposal, &c.action, state, policy)) {
            Ok(true) => {}
            Ok(false) => c.reject(Reason::new(
                ReasonCode::ConditionNotMet,
                format!("agent condition `{}` is false", cond.source()),
            )),
            Err(e) => c.reject(Reason::new(ReasonCode::ConditionError, e.to_string())),
        }
    }
    c
}
