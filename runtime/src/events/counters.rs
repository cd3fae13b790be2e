//! The runtime's counters. Hot paths add per batch, not per message.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::telemetry::DeadLetterReason;

/// Counters for one runtime. Labels come from bounded sets (agent names, reason codes,
/// outcome names), never from raw input.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) decoded: AtomicU64,
    pub(crate) dead_lettered: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) observed: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) skipped_retired: AtomicU64,
    pub(crate) proposals: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) decisions: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) restarts: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) ticks: AtomicU64,
    pub(crate) actuated: AtomicU64,
    pub(crate) actuation_errors: AtomicU64,
    pub(crate) audit_records: AtomicU64,
    pub(crate) audit_errors: AtomicU64,
    pub(crate) proposals_not_owned: AtomicU64,
}

/// A point-in-time copy of [`Counters`], for reports and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CounterSnapshot {
    /// Messages taken from sources.
    pub received: u64,
    /// Messages decoded into telemetry.
    pub decoded: u64,
    /// Dead letters by reason.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Telemetry messages each agent observed.
    pub observed: BTreeMap<String, u64>,
    /// Batches not delivered to an agent that was retired after too many restarts.
    pub skipped_retired: u64,
    /// Proposals by agent.
    pub proposals: BTreeMap<String, u64>,
    /// Decisions by outcome.
    pub decisions: BTreeMap<String, u64>,
    /// Restarts by agent.
    pub restarts: BTreeMap<String, u64>,
    /// Decision windows closed.
    pub ticks: u64,
    /// Decisions carried out by the actuator.
    pub actuated: u64,
    /// Decisions the actuator failed to carry out.
    pub actuation_errors: u64,
    /// Records written to the audit log.
    pub audit_records: u64,
    /// Audit writes that failed.
    pub audit_errors: u64,
    /// Proposals dropped because this instance received no telemetry for their target in
    /// the window (another instance owns it on a shared subscription).
    pub proposals_not_owned: u64,
}

impl CounterSnapshot {
    /// Dead letters of every reason.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str, n: u64) {
    // Counters must never take the runtime down: a poisoned map is still a valid map.
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry(key).or_insert(0) += n;
}

fn copy(map: &Mutex<BTreeMap<&'static str, u64>>) -> BTreeMap<String, u64> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

impl Counters {
    /// A copy of every figure.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            received: self.received.load(Ordering::Relaxed),
            decoded: self.decoded.load(Ordering::Relaxed),
            dead_lettered: copy(&self.dead_lettered),
            observed: copy(&self.observed),
            skipped_retired: self.skipped_retired.load(Ordering::Relaxed),
            proposals: copy(&self.proposals),
            decisions: copy(&self.decisions),
            restarts: copy(&self.restarts),
            ticks: self.ticks.load(Ordering::Relaxed),
            actuated: self.actuated.load(Ordering::Relaxed),
            actuation_errors: self.actuation_errors.load(Ordering::Relaxed),
            audit_records: self.audit_records.load(Ordering::Relaxed),
            audit_errors: self.audit_errors.load(Ordering::Relaxed),
            proposals_not_owned: self.proposals_not_owned.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add_dead_letter(&self, reason: DeadLetterReason) {
        bump(&self.dead_lettered, reason.as_str(), 1);
    }

    pub(crate) fn add_observed(&self, agent: &'static str, n: u64) {
        if n > 0 {
            bump(&self.observed, agent, n);
        }
    }

    pub(crate) fn add_proposals(&self, agent: &'static str, n: u64) {
        if n > 0 {
            bump(&self.proposals, agent, n);
        }
    }

    pub(crate) fn add_decision(&self, outcome: &'static str) {
        bump(&self.decisions, outcome, 1);
    }

    pub(crate) fn add_restart(&self, agent: &'static str) {
        bump(&self.restarts, agent, 1);
    }
}
