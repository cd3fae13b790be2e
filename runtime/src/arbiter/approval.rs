//! Approval rules: which actions wait for a human, and who may answer.

use super::candidate::Candidate;
use super::conditions::proposal_vars;
use super::state::ArbiterState;
use crate::decision::{Reason, ReasonCode};
use crate::overrides::{Actor, Role};
use crate::policy::{ApprovalRule, Policy};

/// The first rule that holds `c` for approval, with the reasons it adds.
pub(crate) fn matching_rule<'p>(
    policy: &'p Policy,
    state: &ArbiterState,
    c: &Candidate,
) -> Option<(&'p ApprovalRule, Vec<Reason>)> {
    let spec = policy.targets().get(&c.proposal.target);
    for rule in policy.approvals() {
        if rule
            .agents
            .as_ref()
            .is_some_and(|a| !a.contains(&c.proposal.agent))
            || rule
                .actions
                .as_ref()
                .is_some_and(|k| !k.contains(&c.action.kind()))
            || !rule.select.matches(&c.proposal.target, spec)
        {
            continue;
        }
        let mut reasons = Vec::new();
        if let Some(cond) = &rule.when {
            match cond.eval(&proposal_vars(&c.proposal, &c.action, state, policy)) {
                Ok(true) => {}
                Ok(false) => continue,
                // A condition that cannot be evaluated must not let a high-impact action
                // through unreviewed: treat it as matching.
                Err(e) => reasons.push(Reason::new(
                    ReasonCode::ConditionError,
                    format!("{e}; asking for approval to be safe"),
                )),
            }
        }
        reasons.push(Reason::new(
            ReasonCode::ApprovalRequired,
            format!(
                "rule `{}` requires approval by {} within {}; on timeout: {}",
                rule.name,
                describe_approvers(rule),
                humantime::format_duration(rule.timeout),
                rule.on_timeout.as_str()
            ),
        ));
        return Some((rule, reasons));
    }
    None
}

fn describe_approvers(rule: &ApprovalRule) -> String {
    let mut who: Vec<String> = rule
        .approvers
        .roles
        .iter()
        .map(|r| format!("role {}", r.as_str()))
        .collect();
    who.extend(rule.approvers.users.iter().map(|u| format!("user {u}")));
    who.join(" or ")
}

/// Whether `actor` may answer for `rule`. Admins may always answer.
pub(crate) fn may_answer(rule: &ApprovalRule, actor: &Actor) -> bool {
    actor.role == Role::Admin
        || rule.approvers.roles.contains(&actor.role)
        || rule.approvers.users.contains(&actor.name)
}
