//! The fleet-wide replica budget when several instances share the targets (Key_Shared).
//!
//! One instance at a time holds the budget: the active consumer of a Failover subscription
//! on the reports topic (Pulsar elects it; Conclave adds no consensus of its own). Every
//! instance reports the replicas of the targets it owns and what the budget refused it;
//! the holder answers each report with a *grant*: how many replicas that instance's
//! targets may total, for one lease. The arbiter checks scale-ups against the grant in
//! force; without one (no holder yet, a holder warming up, the broker away) it enacts no
//! scale-up that adds replicas.
//!
//! Safety rests on three rules, each in one place:
//! - the holder never grants an instance more than the budget minus what every other
//!   live instance may use (its largest unexpired grant or its reported use) and minus
//!   the replicas of targets nobody reports ([`BudgetHolder`]);
//! - a grant expires at the instance one lease after the instance *sent* the report it
//!   answers, so it never outlives the holder's own accounting, whatever the clocks say
//!   ([`FleetShare`]);
//! - a new holder grants nothing for one lease after it starts receiving reports (or after
//!   a pause in them, or on learning from a report that another holder granted lately),
//!   so every grant of the previous holder has expired before its first
//!   ([`BudgetHolder`]).
//!
//! `max_actions_per_hour` rides on the same exchange, more loosely: a report lists when
//! the instance's agents acted in the last hour, a grant carries what the others did, and
//! the rule counts both. Actions two instances enact between reports are not seen by each
//! other, so the fleet may exceed the limit by what they enact in one report period; it
//! is a guard against churn, not a budget of something scarce.
//!
//! Targets count from the first report that names them: telemetry for a target nobody
//! reported before is counted at the owner's next report (a fifth of a lease later). A
//! holder elected after the owner of a target died, while that target had no telemetry,
//! does not know the target until its telemetry comes back.
//!
//! Pure: time comes in as arguments. The Pulsar side is `bus::pulsar::budget`.

mod holder;
mod share;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use holder::{Answer, BudgetHolder};
pub(crate) use share::budget_shortfall;
pub use share::{FleetShare, GrantRefused, HeldGrant};

use crate::clock::Timestamp;
use crate::target::Target;

/// What an instance tells the holder, periodically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// The instance (`conclave run --name`).
    pub instance: String,
    /// Increases with every report of this instance; a grant names the one it answers.
    pub seq: u64,
    /// When the instance sent it, by its own clock; the grant's lease runs from here.
    pub sent_at: Timestamp,
    /// The policy's `fleet_replica_budget` at the instance.
    pub budget: u32,
    /// The targets the instance owns now (telemetry within the last lease), with their
    /// replicas.
    pub targets: BTreeMap<Target, u32>,
    /// Targets it owned before and no longer does, with the replicas it last knew (it may
    /// have scaled them after it last reported them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub released: BTreeMap<Target, u32>,
    /// Replicas the budget refused this instance since its previous report (demand).
    pub wanted: u64,
    /// When this instance's agents had actions enacted in the last hour, by agent (for
    /// the fleet-wide `max_actions_per_hour`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub actions: BTreeMap<String, Vec<Timestamp>>,
    /// The grant the instance enforces now, so a holder learns of grants another holder
    /// made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldReport>,
}

/// A grant as its instance reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldReport {
    /// Who granted it.
    pub holder: String,
    /// Its replicas.
    pub replicas: u64,
    /// How long it stays in force from the report's sending, in milliseconds.
    pub remaining_ms: u64,
}

impl UsageReport {
    /// Replicas of the targets this instance owns.
    pub fn used(&self) -> u64 {
        self.targets.values().map(|r| u64::from(*r)).sum()
    }
}

/// The holder's answer to one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The instance it is for.
    pub instance: String,
    /// The report it answers.
    pub seq: u64,
    /// That report's `sent_at` (the instance checks it is its own).
    pub sent_at: Timestamp,
    /// How many replicas the instance's targets may total while the grant is in force.
    pub replicas: u64,
    /// How long it is in force, from `sent_at`, in milliseconds.
    pub lease_ms: u64,
    /// Who granted it.
    pub holder: String,
    /// The budget it was carved from, and the replicas the holder counted fleet-wide.
    pub budget: u32,
    /// See [`Grant::budget`].
    pub fleet_used: u64,
    /// Actions the other instances' agents had enacted in the last hour, by agent, as
    /// of their latest reports: this instance counts them with its own against
    /// `max_actions_per_hour`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub others_actions: BTreeMap<String, u32>,
}
