//! An instance's side of the shared budget: which targets it owns, the grant in force,
//! and the reports it sends. Kept in the arbiter's state, so the budget rule reads it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::{Grant, HeldReport, UsageReport};
use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{Decision, Outcome, ReasonCode};
use crate::target::Target;

/// Reports remembered, so a grant can be matched to the report it answers.
const SENT_KEPT: usize = 32;

/// A grant this instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    /// Replicas its targets may total.
    pub replicas: u64,
    /// In force until then (this instance's clock: the report's send time plus the lease).
    pub until: Timestamp,
    /// The report it answered.
    pub seq: u64,
    /// Who granted it.
    pub holder: String,
    /// The targets the report it answers listed as owned: the grant counted their
    /// replicas, so they count against it until the next grant, even once let go.
    pub covers: BTreeSet<Target>,
    /// Actions the other instances' agents had enacted in the last hour, by agent.
    pub others_actions: BTreeMap<String, u32>,
}

/// Why a grant was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefused {
    /// Meant for another instance (grants share one topic).
    #[error("grant for instance `{0}`")]
    NotMine(String),
    /// It answers no report this instance remembers sending (a restart, or forged).
    #[error("grant answers report {seq} sent at {sent_at}, which this instance did not send")]
    UnknownReport {
        /// The report it names.
        seq: u64,
        /// Its send time.
        sent_at: Timestamp,
    },
    /// A grant for a later report is already held.
    #[error("grant answers report {seq}; the grant held answers report {held}")]
    Stale {
        /// The report it names.
        seq: u64,
        /// The report the held grant answered.
        held: u64,
    },
}

/// The shared-budget state of one instance.
#[derive(Debug, Clone)]
pub struct FleetShare {
    instance: String,
    lease: Duration,
    seq: u64,
    /// Reports sent: sequence number, send time, targets listed as owned.
    sent: VecDeque<(u64, Timestamp, BTreeSet<Target>)>,
    grant: Option<HeldGrant>,
    /// The last window each target had telemetry here.
    seen: BTreeMap<Target, Timestamp>,
    wanted: u64,
}

impl FleetShare {
    /// Instance `instance`, whose grants last `lease` at most.
    pub fn new(instance: impl Into<String>, lease: Duration) -> Self {
        FleetShare {
            instance: instance.into(),
            lease,
            seq: 0,
            sent: VecDeque::new(),
            grant: None,
            seen: BTreeMap::new(),
            wanted: 0,
        }
    }

    /// Targets that had telemetry here in the window ending at `at`.
    pub fn observe<'a>(&mut self, seen: impl IntoIterator<Item = &'a Target>, at: Timestamp) {
        for t in seen {
            self.seen.insert(t.clone(), at);
        }
    }

    /// The targets this instance owns at `now`: telemetry within the last lease. A target
    /// that moved away counts here for up to a lease after it moved (and at its new owner
    /// at once), which errs on the side of the budget.
    pub fn owned(&self, now: Timestamp) -> impl Iterator<Item = &Target> {
        let since = now.minus(self.lease);
        self.seen
            .iter()
            .filter(move |(_, at)| **at > since)
            .map(|(t, _)| t)
    }

    /// What counts against the grant at `now`: the replicas of the targets owned, and of
    /// those the grant was made for (a target let go since still runs, and the holder
    /// counted it in this grant). All three are sorted by target, so one walk over them
    /// does it (the budget rule asks this for every scale-up).
    pub fn used(&self, replicas: &BTreeMap<Target, u32>, now: Timestamp) -> u64 {
        let mut owned = self.owned(now).peekable();
        let mut covered = self.grant.iter().flat_map(|g| g.covers.iter()).peekable();
        let mut sum = 0u64;
        for (t, r) in replicas {
            while owned.next_if(|o| *o < t).is_some() {}
            while covered.next_if(|o| *o < t).is_some() {}
            let mine = owned.next_if(|o| *o == t).is_some();
            let counted = covered.next_if(|o| *o == t).is_some();
            if mine || counted {
                sum += u64::from(*r);
            }
        }
        sum
    }

    /// The grant in force, if any (see [`FleetShare::expire`]).
    pub fn grant(&self) -> Option<&HeldGrant> {
        self.grant.as_ref()
    }

    /// Drops the grant once its lease is over at `now` (the wall clock: a decision window
    /// is stamped with its end, which lags the wall clock).
    pub fn expire(&mut self, now: Timestamp) {
        if self.grant.as_ref().is_some_and(|g| g.until <= now) {
            self.grant = None;
        }
    }

    /// Replicas the budget refused, to report as demand.
    pub fn note_wanted(&mut self, replicas: u64) {
        self.wanted = self.wanted.saturating_add(replicas);
    }

    /// The next report, as of `now`: the targets owned with their replicas, the actions
    /// enacted in the last hour (`actions`, the arbiter's log), and the demand since the
    /// previous report (which it resets).
    pub fn report(
        &mut self,
        replicas: &BTreeMap<Target, u32>,
        actions: &BTreeMap<String, Vec<Timestamp>>,
        budget: u32,
        now: Timestamp,
    ) -> UsageReport {
        let since = now.minus(self.lease);
        self.seen.retain(|_, at| *at > since);
        self.seq += 1;
        let targets: BTreeMap<Target, u32> = self
            .owned(now)
            .map(|t| (t.clone(), replicas.get(t).copied().unwrap_or(0)))
            .collect();
        self.sent
            .push_back((self.seq, now, targets.keys().cloned().collect()));
        while self.sent.len() > SENT_KEPT {
            self.sent.pop_front();
        }
        // Every target this instance knows replicas of is one it owned at some point.
        let released = replicas
            .iter()
            .filter(|(t, _)| !targets.contains_key(*t))
            .map(|(t, r)| (t.clone(), *r))
            .collect();
        let held = self
            .grant
            .as_ref()
            .filter(|g| g.until > now)
            .map(|g| HeldReport {
                holder: g.holder.clone(),
                replicas: g.replicas,
                remaining_ms: u64::try_from(g.until.since(now).as_millis()).unwrap_or(u64::MAX),
            });
        UsageReport {
            instance: self.instance.clone(),
            seq: self.seq,
            sent_at: now,
            budget,
            targets,
            released,
            actions: actions
                .iter()
                .filter(|(_, times)| !times.is_empty())
                .map(|(agent, times)| (agent.clone(), times.clone()))
                .collect(),
            wanted: std::mem::take(&mut self.wanted),
            held,
        }
    }

    /// Takes a grant if it answers one of this instance's reports and is newer than the
    /// one held. Its lease runs from when that report was sent, so it ends no later than
    /// the holder counts it, whatever the two clocks say.
    ///
    /// # Errors
    /// [`GrantRefused`] says why it was not taken.
    pub fn accept(&mut self, g: &Grant) -> Result<(), GrantRefused> {
        if g.instance != self.instance {
            return Err(GrantRefused::NotMine(g.instance.clone()));
        }
        let Some((_, _, covers)) = self
            .sent
            .iter()
            .find(|(s, at, _)| *s == g.seq && *at == g.sent_at)
        else {
            return Err(GrantRefused::UnknownReport {
                seq: g.seq,
                sent_at: g.sent_at,
            });
        };
        let covers = covers.clone();
        if let Some(held) = self.grant.as_ref().filter(|h| h.seq >= g.seq) {
            return Err(GrantRefused::Stale {
                seq: g.seq,
                held: held.seq,
            });
        }
        let lease = self.lease.min(Duration::from_millis(g.lease_ms));
        self.grant = Some(HeldGrant {
            replicas: g.replicas,
            until: g.sent_at.plus(lease),
            seq: g.seq,
            holder: g.holder.clone(),
            covers,
            others_actions: g.others_actions.clone(),
        });
        Ok(())
    }
}

/// Replicas that enforced scale-ups wanted and the replica budget did not give: the
/// proposed count less what the target runs after the decision.
pub(crate) fn budget_shortfall(decisions: &[Decision], replicas: &BTreeMap<Target, u32>) -> u64 {
    decisions
        .iter()
        .filter(|d| {
            matches!(d.outcome, Outcome::Rejected | Outcome::Modified { .. })
                && d.reasons
                    .iter()
                    .any(|r| r.code == ReasonCode::ReplicaBudget)
        })
        .filter_map(|d| match d.proposals.first().map(|p| &p.action) {
            Some(Action::Scale { replicas: wanted }) => {
                let now = replicas.get(&d.target).copied().unwrap_or(0);
                Some(u64::from(wanted.saturating_sub(now)))
            }
            _ => None,
        })
        .sum()
}
