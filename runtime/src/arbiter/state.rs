//! What the arbiter remembers between windows: observed replicas, recent actions, scale
//! recommendations, overrides in force and pending approvals.

use std::collections::BTreeMap;

use crate::action::ActionKind;
use crate::clock::Timestamp;
use crate::decision::{Decision, OnTimeout, Reason};
use crate::fleet_budget::FleetShare;
use crate::overrides::Override;
use crate::policy::Mode;
use crate::target::Target;

/// A decision waiting for a human.
#[derive(Debug, Clone)]
pub struct Pending {
    pub(crate) decision: Decision,
    pub(crate) rule: String,
    pub(crate) deadline: Timestamp,
    pub(crate) on_timeout: OnTimeout,
    /// Reasons up to and including the approval requirement.
    pub(crate) reasons: Vec<Reason>,
}

impl Pending {
    /// The pending decision as recorded.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }
    /// The approval rule that holds it.
    pub fn rule(&self) -> &str {
        &self.rule
    }
    /// When it times out.
    pub fn deadline(&self) -> Timestamp {
        self.deadline
    }
}

/// The arbiter's memory. Owned by the caller and passed to every arbiter call, so the
/// arbiter itself stays a pure function of (policy, state, inputs).
#[derive(Debug, Clone, Default)]
pub struct ArbiterState {
    pub(crate) replicas: BTreeMap<Target, u32>,
    pub(crate) last_acted: BTreeMap<Target, BTreeMap<ActionKind, Timestamp>>,
    pub(crate) recommendations: BTreeMap<Target, Vec<(Timestamp, u32)>>,
    pub(crate) frozen: Option<Override>,
    pub(crate) paused: BTreeMap<String, Override>,
    pub(crate) pins: BTreeMap<Target, (u32, Override)>,
    pub(crate) modes: BTreeMap<String, (Mode, Override)>,
    pub(crate) pending: BTreeMap<String, Pending>,
    pub(crate) enacted_log: BTreeMap<String, Vec<Timestamp>>,
    /// Set when instances share the fleet budget: the replica budget is then checked
    /// against this instance's grant, over the targets it owns.
    pub(crate) share: Option<FleetShare>,
}

impl ArbiterState {
    /// A state with nothing observed.
    pub fn new() -> Self {
        ArbiterState::default()
    }

    /// A state whose replica budget is shared with other instances (see
    /// [`crate::fleet_budget`]).
    pub fn with_fleet_share(share: FleetShare) -> Self {
        ArbiterState {
            share: Some(share),
            ..ArbiterState::default()
        }
    }

    /// The shared-budget state, when the budget is shared.
    pub fn fleet_share(&self) -> Option<&FleetShare> {
        self.share.as_ref()
    }

    /// See [`ArbiterState::fleet_share`].
    pub fn fleet_share_mut(&mut self) -> Option<&mut FleetShare> {
        self.share.as_mut()
    }

    /// Every target's replicas, as the arbiter knows them.
    pub fn all_replicas(&self) -> &BTreeMap<Target, u32> {
        &self.replicas
    }

    /// Records the replicas a target runs now (from telemetry).
    pub fn observe_replicas(&mut self, target: Target, replicas: u32) {
        self.replicas.insert(target, replicas);
    }

    /// The replicas a target runs (observed, or set by the last enacted decision).
    pub fn replicas(&self, target: &Target) -> Option<u32> {
        self.replicas.get(target).copied()
    }

    /// Decisions waiting for a human, by id.
    pub fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }

    /// Whether a freeze is in force at `now`.
    pub fn is_frozen(&self, now: Timestamp) -> bool {
        self.frozen.as_ref().is_some_and(|o| o.is_in_force(now))
    }

    /// Overrides in force at `now`, in a stable order (freeze, pauses, pins, modes).
    pub fn overrides_in_force(&self, now: Timestamp) -> Vec<&Override> {
        let mut out: Vec<&Override> = self.frozen.iter().collect();
        out.extend(self.paused.values());
        out.extend(self.pins.values().map(|(_, o)| o));
        out.extend(self.modes.values().map(|(_, o)| o));
        out.retain(|o| o.is_in_force(now));
        out
    }

    pub(crate) fn last_acted(&self, target: &Target, kind: ActionKind) -> Option<Timestamp> {
        self.last_acted
            .get(target)
            .and_then(|m| m.get(&kind))
            .copied()
    }

    pub(crate) fn fleet_replicas(&self) -> u64 {
        self.replicas.values().map(|r| u64::from(*r)).sum()
    }

    pub(crate) fn actions_in_last_hour(&self, agent: &str, now: Timestamp) -> usize {
        let since = now.minus(std::time::Duration::from_secs(3600));
        self.enacted_log
            .get(agent)
            .map_or(0, |v| v.iter().filter(|t| **t > since).count())
    }

    /// Drops overrides whose expiry passed and history older than anything a rule reads.
    pub(crate) fn prune(&mut self, now: Timestamp, keep: std::time::Duration) {
        if self.frozen.as_ref().is_some_and(|o| !o.is_in_force(now)) {
            self.frozen = None;
        }
        self.paused.retain(|_, o| o.is_in_force(now));
        self.pins.retain(|_, (_, o)| o.is_in_force(now));
        self.modes.retain(|_, (_, o)| o.is_in_force(now));
        let cutoff = now.minus(keep);
        for recs in self.recommendations.values_mut() {
            recs.retain(|(t, _)| *t > cutoff);
        }
        let hour_ago = now.minus(std::time::Duration::from_secs(3600));
        for log in self.enacted_log.values_mut() {
            log.retain(|t| *t > hour_ago);
        }
    }
}
