//! The arbiter: turns one window's proposals into decisions under the policy and the humans.
//!
//! For each target, in order: human overrides -> agent mode (and target selection) ->
//! guardrails -> conflicts -> approvals -> budgets -> decision. It is a pure function of
//! (policy, state, now, inputs): the same inputs give the same decisions and reasons,
//! whatever order proposals arrive in. Shadow and advise proposals go through every rule
//! too, against the enforcing ones, but never change the state: their outcome says what
//! enforcing would have done.

mod approval;
mod budget;
mod candidate;
mod conditions;
mod conflict;
mod gate;
mod guardrails;
mod overrides;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use candidate::{Candidate, Stop};
pub use overrides::OverrideError;
pub use state::{ArbiterState, Pending};

use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{Decision, OnTimeout, Outcome, Reason, ReasonCode, Verdict};
use crate::policy::{Mode, Policy};
use crate::proposal::Proposal;

/// The agent name on decisions made directly by a human (a pin).
pub const HUMAN_AGENT: &str = "human";

/// History older than this is never read by a rule (stabilization windows are at most 1 h).
const HISTORY: Duration = Duration::from_secs(3600);

/// Decides proposals under one policy.
#[derive(Debug, Clone)]
pub struct Arbiter {
    policy: Arc<Policy>,
}

impl Arbiter {
    /// An arbiter for `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
        Arbiter { policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decides one window's proposals. Approvals that timed out by `now` are settled first.
    /// Every proposal gets exactly one decision (duplicates by id are dropped).
    pub fn decide(
        &self,
        state: &mut ArbiterState,
        now: Timestamp,
        mut proposals: Vec<Proposal>,
    ) -> Vec<Decision> {
        let mut out = self.expire(state, now);
        proposals.sort_by(|a, b| a.target.cmp(&b.target).then_with(|| a.id.cmp(&b.id)));
        proposals.dedup_by(|a, b| a.id == b.id);
        let mut groups: BTreeMap<crate::target::Target, Vec<Proposal>> = BTreeMap::new();
        for p in proposals {
            groups.entry(p.target.clone()).or_default().push(p);
        }
        for (_, group) in groups {
            out.extend(self.decide_target(state, now, group));
        }
        out
    }

    /// Settles approvals whose deadline passed and forgets lapsed overrides.
    pub fn expire(&self, state: &mut ArbiterState, now: Timestamp) -> Vec<Decision> {
        let due: Vec<String> = state
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::new();
        for id in due {
            if let Some(p) = state.pending.remove(&id) {
                out.push(self.settle(state, now, p, Settle::Timeout));
            }
        }
        state.prune(now, HISTORY);
        out
    }

    fn decide_target(
        &self,
        state: &mut ArbiterState,
        now: Timestamp,
        group: Vec<Proposal>,
    ) -> Vec<Decision> {
        let policy = &*self.policy;
        let mut cands: Vec<Candidate> = group
            .into_iter()
            .map(|p| gate::gate(policy, state, now, p))
            .collect();
        for c in cands.iter_mut().filter(|c| c.is_live()) {
            guardrails::apply(policy, state, now, c);
        }
        for c in cands.iter().filter(|c| c.mode == Mode::Enforce) {
            if let Some(r) = c.recommendation {
                state
                    .recommendations
                    .entry(c.proposal.target.clone())
                    .or_default()
                    .push((now, r));
            }
        }

        let enforcing: Vec<usize> = (0..cands.len())
            .filter(|i| cands[*i].is_live() && cands[*i].mode == Mode::Enforce)
            .collect();
        let mut overruled: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for loss in conflict::resolve(policy, state, &cands, &enforcing) {
            let winner = describe(&cands[loss.winner]);
            let loser = describe(&cands[loss.loser]);
            cands[loss.loser].reject(Reason::new(
                ReasonCode::ConflictLost,
                format!("lost to {winner} ({})", loss.why),
            ));
            cands[loss.winner].reasons.push(Reason::new(
                ReasonCode::ConflictWon,
                format!("won over {loser} ({})", loss.why),
            ));
            overruled.entry(loss.winner).or_default().push(loss.loser);
        }
        let winners: Vec<usize> = enforcing
            .iter()
            .copied()
            .filter(|i| cands[*i].is_live())
            .collect();
        let watching: Vec<usize> = (0..cands.len())
            .filter(|i| cands[*i].is_live() && cands[*i].mode != Mode::Enforce)
            .collect();
        for i in watching {
            let mut set = winners.clone();
            set.push(i);
            for loss in conflict::resolve(policy, state, &cands, &set) {
                if loss.loser == i {
                    let winner = describe(&cands[loss.winner]);
                    cands[i].reject(Reason::new(
                        ReasonCode::ConflictLost,
                        format!("would lose to {winner} ({})", loss.why),
                    ));
                } else if loss.winner == i {
                    let loser = describe(&cands[loss.loser]);
                    cands[i].reasons.push(Reason::new(
                        ReasonCode::ConflictWon,
                        format!("would win over {loser} ({})", loss.why),
                    ));
                }
            }
        }

        let mut out = Vec::with_capacity(cands.len());
        let losers_of: Vec<Vec<Proposal>> = (0..cands.len())
            .map(|i| {
                overruled
                    .get(&i)
                    .into_iter()
                    .flatten()
                    .map(|l| cands[*l].proposal.clone())
                    .collect()
            })
            .collect();
        for (c, overruled) in cands.into_iter().zip(losers_of) {
            out.push(self.finish(state, now, c, overruled));
        }
        out
    }

    /// Approvals, budgets, then the decision; applies its effects when the agent enforces.
    fn finish(
        &self,
        state: &mut ArbiterState,
        now: Timestamp,
        mut c: Candidate,
        overruled: Vec<Proposal>,
    ) -> Decision {
        let policy = &*self.policy;
        let enforce = c.mode == Mode::Enforce;
        let mut pending = None;
        // An agent repeating a proposal that is already waiting for a human does not
        // queue a second approval of the same action.
        if c.is_live() && enforce {
            let waiting = state.pending.values().find(|p| {
                p.decision.target == c.proposal.target
                    && p.decision.agent == c.proposal.agent
                    && p.decision.action.as_ref() == Some(&c.action)
            });
            if let Some(p) = waiting {
                let reason = format!(
                    "`{}` ({}) is already waiting for approval (rule `{}`, until {})",
                    p.decision.id, c.action, p.rule, p.deadline
                );
                c.reject(Reason::new(ReasonCode::AwaitingApproval, reason));
            }
        }
        if c.is_live() {
            if let Some((rule, reasons)) = approval::matching_rule(policy, state, &c) {
                c.reasons.extend(reasons);
                pending = Some((rule.name.clone(), now.plus(rule.timeout), rule.on_timeout));
            } else {
                budget::apply(policy, state, now, &mut c);
            }
        }
        let reasons_before = c.reasons.clone();
        let d = self.decision(
            now,
            c,
            overruled,
            pending.as_ref().map(|(_, until, on)| (*until, *on)),
        );
        if enforce {
            if let Some((rule, deadline, on_timeout)) = pending {
                state.pending.insert(
                    d.id.clone(),
                    Pending {
                        decision: d.clone(),
                        rule,
                        deadline,
                        on_timeout,
                        reasons: reasons_before,
                    },
                );
            } else if d.outcome.is_acted_on() {
                record_enacted(state, now, &d);
            }
        }
        d
    }

    fn decision(
        &self,
        now: Timestamp,
        mut c: Candidate,
        overruled: Vec<Proposal>,
        pending: Option<(Timestamp, OnTimeout)>,
    ) -> Decision {
        let (verdict, outcome, action) = match (&c.stop, pending) {
            (Some(Stop::Overridden(id)), _) => (
                Verdict::Overridden,
                Outcome::Overridden { by: id.clone() },
                None,
            ),
            (Some(Stop::Rejected), _) => (Verdict::Rejected, Outcome::Rejected, None),
            (None, Some((until, on_timeout))) => (
                Verdict::Pending,
                Outcome::Pending { until, on_timeout },
                Some(c.action.clone()),
            ),
            (None, None) if c.action != c.proposal.action => (
                Verdict::Modified,
                Outcome::Modified {
                    from: c.proposal.action.clone(),
                    to: c.action.clone(),
                },
                Some(c.action.clone()),
            ),
            (None, None) => (Verdict::Enacted, Outcome::Enacted, Some(c.action.clone())),
        };
        let outcome = match c.mode {
            Mode::Shadow => Outcome::Shadowed { would: verdict },
            Mode::Advise => Outcome::Advised { would: verdict },
            Mode::Enforce | Mode::Off => outcome,
        };
        if outcome.is_acted_on() {
            c.reasons.push(Reason::new(
                ReasonCode::Enacted,
                format!("enacted: {}", c.action),
            ));
        }
        let mut proposals = vec![c.proposal];
        proposals.extend(overruled);
        Decision {
            id: format!("d-{}", proposals[0].id),
            at: now,
            target: proposals[0].target.clone(),
            agent: proposals[0].agent.clone(),
            action,
            proposals,
            outcome,
            reasons: c.reasons,
            policy_revision: self.policy.revision().to_string(),
            trace_id: None,
        }
    }

    /// Ends a pending decision: approved, denied, vetoed or timed out.
    fn settle(
        &self,
        state: &mut ArbiterState,
        now: Timestamp,
        p: Pending,
        how: Settle,
    ) -> Decision {
        let policy = &*self.policy;
        let mut d = p.decision;
        d.at = now;
        let mut reasons = p.reasons;
        let enact_reason = match how {
            Settle::Approve(r) => Some(r),
            Settle::Deny(r) => {
                reasons.push(r);
                d.outcome = Outcome::Rejected;
                d.action = None;
                d.reasons = reasons;
                return d;
            }
            Settle::Veto(r, by) => {
                reasons.push(r);
                d.outcome = Outcome::Overridden { by };
                d.action = None;
                d.reasons = reasons;
                return d;
            }
            Settle::Timeout => {
                let msg = format!("approval rule `{}` got no answer by {}", p.rule, p.deadline);
                match p.on_timeout {
                    OnTimeout::Enact => Some(Reason::new(
                        ReasonCode::ApprovalTimedOut,
                        format!("{msg}; the default is to enact"),
                    )),
                    OnTimeout::Reject => {
                        reasons.push(Reason::new(
                            ReasonCode::ApprovalTimedOut,
                            format!("{msg}; the default is to reject"),
                        ));
                        d.outcome = Outcome::Rejected;
                        d.action = None;
                        d.reasons = reasons;
                        return d;
                    }
                }
            }
        };
        if let Some(r) = enact_reason {
            reasons.push(r);
        }
        let Some(action) = d.action.clone() else {
            d.outcome = Outcome::Rejected;
            d.reasons = reasons;
            return d;
        };
        let mut c = Candidate::new(d.proposals[0].clone(), Mode::Enforce);
        c.action = action;
        c.reasons = reasons;
        if let Some(f) = state.frozen.as_ref().filter(|o| o.is_in_force(now)) {
            c.reasons.push(Reason::new(
                ReasonCode::Frozen,
                format!(
                    "everything is frozen by {} ({}): {}",
                    f.by.name, f.id, f.reason
                ),
            ));
            c.stop = Some(Stop::Overridden(f.id.clone()));
        } else {
            budget::apply(policy, state, now, &mut c);
        }
        let overruled = d.proposals[1..].to_vec();
        let settled = self.decision(now, c, overruled, None);
        if settled.outcome.is_acted_on() {
            record_enacted(state, now, &settled);
        }
        settled
    }
}

enum Settle {
    Approve(Reason),
    Deny(Reason),
    Veto(Reason, String),
    Timeout,
}

fn describe(c: &Candidate) -> String {
    format!("{}'s `{}`", c.proposal.agent, c.action)
}

fn record_enacted(state: &mut ArbiterState, now: Timestamp, d: &Decision) {
    let Some(action) = &d.action else { return };
    if let Action::Scale { replicas } = action {
        state.replicas.insert(d.target.clone(), *replicas);
    }
    state
        .last_acted
        .entry(d.target.clone())
        .or_default()
        .insert(action.kind(), now);
    state
        .enacted_log
        .entry(d.agent.clone())
        .or_default()
        .push(now);
}
