//! Conflicts between proposals on one target: which pairs conflict, and who wins.
//!
//! Candidates are ranked by a total order that does not depend on arrival order (safety or
//! priority first, per the policy, then the other, then confidence, then proposal id), and
//! kept greedily: a candidate loses to the first better-ranked kept one it conflicts with.

use std::cmp::Ordering;

use super::candidate::Candidate;
use super::state::ArbiterState;
use crate::action::Action;
use crate::policy::{ConflictStrategy, Policy, SafetyClass};

/// Whether two actions on the same target cannot both be carried out.
pub(crate) fn conflicts(a: &Action, b: &Action, current: Option<u32>) -> bool {
    let (ca, cb) = (SafetyClass::of(a, current), SafetyClass::of(b, current));
    let (Some(ca), Some(cb)) = (ca, cb) else {
        return false;
    }; // alerts never conflict
    match (a, b) {
        (Action::Quarantine { scope: sa, .. }, Action::Quarantine { scope: sb, .. }) => sa == sb,
        _ if a.kind() == b.kind() => true,
        // Shedding, opening a breaker or quarantining means capacity is short or unsafe:
        // removing replicas at the same time works against it.
        _ => {
            (a.is_protective() && cb == SafetyClass::ScaleDown)
                || (b.is_protective() && ca == SafetyClass::ScaleDown)
        }
    }
}

fn rank(policy: &Policy, c: &Candidate, current: Option<u32>) -> (usize, usize) {
    let safety = SafetyClass::of(&c.action, current).map_or(usize::MAX, |s| policy.safety_rank(s));
    let priority = policy.priority_of(&c.proposal.agent);
    match policy.arbiter.strategy {
        ConflictStrategy::SaferWins => (safety, priority),
        ConflictStrategy::Priority => (priority, safety),
    }
}

/// Orders candidates best first.
fn compare(policy: &Policy, current: Option<u32>, a: &Candidate, b: &Candidate) -> Ordering {
    rank(policy, a, current)
        .cmp(&rank(policy, b, current))
        .then_with(|| {
            b.proposal
                .confidence
                .get()
                .total_cmp(&a.proposal.confidence.get())
        })
        .then_with(|| a.proposal.id.cmp(&b.proposal.id))
}

/// Why `winner` beat `loser`, in words.
fn why(policy: &Policy, current: Option<u32>, winner: &Candidate, loser: &Candidate) -> String {
    let (w, l) = (rank(policy, winner, current), rank(policy, loser, current));
    let (first, second) = match policy.arbiter.strategy {
        ConflictStrategy::SaferWins => ("safer", "higher priority"),
        ConflictStrategy::Priority => ("higher priority", "safer"),
    };
    if w.0 != l.0 {
        first.to_string()
    } else if w.1 != l.1 {
        second.to_string()
    } else {
        "equal rank; higher confidence or lower proposal id".to_string()
    }
}

/// A conflict outcome: index of the loser, index of the winner, and why.
pub(crate) struct Loss {
    pub(crate) loser: usize,
    pub(crate) winner: usize,
    pub(crate) why: String,
}

/// Resolves conflicts among `cands` (indices into `all`), all live and on one target.
pub(crate) fn resolve(
    policy: &Policy,
    state: &ArbiterState,
    all: &[Candidate],
    cands: &[usize],
) -> Vec<Loss> {
    let Some(first) = cands.first() else {
        return Vec::new();
    };
    let current = state.replicas(&all[*first].proposal.target);
    let mut order = cands.to_vec();
    order.sort_by(|a, b| compare(policy, current, &all[*a], &all[*b]));
    let mut kept: Vec<usize> = Vec::new();
    let mut losses = Vec::new();
    for i in order {
        match kept
            .iter()
            .find(|k| conflicts(&all[**k].action, &all[i].action, current))
        {
            Some(&w) => losses.push(Loss {
                loser: i,
                winner: w,
                why: why(policy, current, &all[w], &all[i]),
            }),
            None => kept.push(i),
        }
    }
    losses
}
