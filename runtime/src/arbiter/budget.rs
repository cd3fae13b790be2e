//! Budgets: the fleet-wide replica budget and each agent's hourly action budget.

use super::candidate::Candidate;
use super::state::ArbiterState;
use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{Reason, ReasonCode};
use crate::policy::{OnViolation, Policy};

pub(crate) fn apply(policy: &Policy, state: &ArbiterState, now: Timestamp, c: &mut Candidate) {
    if let Some(max) = policy.max_actions_per_hour() {
        let agent = &c.proposal.agent;
        let used = state.actions_in_last_hour(agent, now);
        // Shared with other instances: what they enacted counts too, as of the grant.
        let others = state
            .share
            .as_ref()
            .and_then(|s| s.grant())
            .and_then(|g| g.others_actions.get(agent))
            .map_or(0, |n| *n as usize);
        if used + others >= max as usize {
            let msg = if others == 0 {
                format!("agent `{agent}` has had {used} actions enacted in the last hour; max_actions_per_hour is {max}")
            } else {
                format!("agent `{agent}` has had {} actions enacted in the last hour across the instances ({used} here, {others} elsewhere); max_actions_per_hour is {max}", used + others)
            };
            return c.reject(Reason::new(ReasonCode::ActionBudget, msg));
        }
    }
    let (Some(budget), Action::Scale { replicas: desired }) =
        (policy.fleet_replica_budget(), c.action.clone())
    else {
        return;
    };
    let current = state.replicas(&c.proposal.target).unwrap_or(0);
    if desired <= current {
        return;
    }
    let delta = u64::from(desired - current);
    let (headroom, msg) = match &state.share {
        None => {
            let used = state.fleet_replicas();
            (
                u64::from(budget).saturating_sub(used),
                format!("the fleet runs {used} of fleet_replica_budget {budget} replicas; adding {delta} would exceed it"),
            )
        }
        // Shared with other instances: this instance may use what the holder granted it.
        Some(share) => {
            let used = share.used(&state.replicas, now);
            match share.grant() {
                None => (
                    0,
                    format!("fleet_replica_budget {budget} is shared by the instances and this one holds no grant from the budget holder (none elected yet, warming up, or unreachable); adding {delta} replicas waits for one"),
                ),
                Some(g) => (
                    g.replicas.saturating_sub(used),
                    format!("this instance's targets run {used} of the {} replicas granted by `{}` from fleet_replica_budget {budget}; adding {delta} would exceed it", g.replicas, g.holder),
                ),
            }
        }
    };
    if delta <= headroom {
        return;
    }
    let clamp = policy.limits_for(&c.proposal.target).on_violation == OnViolation::Clamp;
    if headroom == 0 || !clamp {
        return c.reject(Reason::new(ReasonCode::ReplicaBudget, msg));
    }
    // headroom < delta <= u32::MAX here, so it fits.
    let allowed = current + u32::try_from(headroom).unwrap_or(0);
    c.reasons.push(Reason::new(
        ReasonCode::ReplicaBudget,
        format!("{msg}; limited to {allowed}"),
    ));
    c.action = Action::Scale { replicas: allowed };
}
