//! A proposal on its way through the arbiter's rules: the action as it stands, the reasons
//! so far, and whether a rule has already stopped it.

use crate::action::Action;
use crate::decision::Reason;
use crate::policy::Mode;
use crate::proposal::Proposal;

/// Why a candidate stopped before the end of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// Refused by a rule.
    Rejected,
    /// Blocked by the human override with this id.
    Overridden(String),
}

/// A proposal being decided.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) proposal: Proposal,
    pub(crate) mode: Mode,
    pub(crate) action: Action,
    pub(crate) reasons: Vec<Reason>,
    pub(crate) stop: Option<Stop>,
    /// A scale recommendation to remember for stabilization (enforcing agents only).
    pub(crate) recommendation: Option<u32>,
}

impl Candidate {
    pub(crate) fn new(proposal: Proposal, mode: Mode) -> Self {
        Candidate {
            action: proposal.action.clone(),
            proposal,
            mode,
            reasons: Vec::new(),
            stop: None,
            recommendation: None,
        }
    }

    pub(crate) fn reject(&mut self, reason: Reason) {
        self.reasons.push(reason);
        self.stop = Some(Stop::Rejected);
    }

    pub(crate) fn is_live(&self) -> bool {
        self.stop.is_none()
    }
}
