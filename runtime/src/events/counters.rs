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
    /// By agent (the proposing agent, or `human` for a pin), then outcome.
    pub(crate) decisions: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    /// Proposals made by the rule instead of the model, by agent, then reason.
    pub(crate) fallbacks: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
    pub(crate) restarts: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) ticks: AtomicU64,
    pub(crate) actuated: AtomicU64,
    pub(crate) actuation_errors: AtomicU64,
    pub(crate) audit_records: AtomicU64,
    pub(crate) audit_errors: AtomicU64,
    pub(crate) proposals_not_owned: AtomicU64,
    /// Operator API responses by HTTP status code.
    pub(crate) api_requests: Mutex<BTreeMap<u16, u64>>,
    /// Failed OTLP exports by signal (`metrics`).
    pub(crate) export_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// With a shared fleet budget: the grant in force (`None`: none) and the replicas
    /// counted against it. A gauge, so kept out of [`CounterSnapshot`].
    pub(crate) fleet_share: Mutex<Option<(Option<u64>, u64)>>,
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
    /// Decisions by agent (`human` for a pin), then outcome.
    pub decisions_by_agent: BTreeMap<String, BTreeMap<String, u64>>,
    /// Proposals an agent made by its rule instead of its model, by agent, then reason
    /// (the proposal's `fallback`).
    pub fallbacks: BTreeMap<String, BTreeMap<String, u64>>,
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
    /// Operator API responses by HTTP status code.
    pub api_requests: BTreeMap<u16, u64>,
    /// Failed OTLP exports by signal.
    pub export_errors: BTreeMap<String, u64>,
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

fn copy2<K1: ToString, K2: ToString>(
    map: &Mutex<BTreeMap<K1, BTreeMap<K2, u64>>>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, inner)| {
            let inner = inner.iter().map(|(k2, v)| (k2.to_string(), *v)).collect();
            (k.to_string(), inner)
        })
        .collect()
}

impl Counters {
    /// A copy of every figure.
    pub fn snapshot(&self) -> CounterSnapshot {
        let decisions_by_agent = copy2(&self.decisions);
        let mut decisions = BTreeMap::new();
        for (outcome, n) in decisions_by_agent.values().flatten() {
            *decisions.entry(outcome.clone()).or_insert(0) += n;
        }
        CounterSnapshot {
            received: self.received.load(Ordering::Relaxed),
            decoded: self.decoded.load(Ordering::Relaxed),
            dead_lettered: copy(&self.dead_lettered),
            observed: copy(&self.observed),
            skipped_retired: self.skipped_retired.load(Ordering::Relaxed),
            proposals: copy(&self.proposals),
            decisions,
            decisions_by_agent,
            fallbacks: copy2(&self.fallbacks),
            restarts: copy(&self.restarts),
            ticks: self.ticks.load(Ordering::Relaxed),
            actuated: self.actuated.load(Ordering::Relaxed),
            actuation_errors: self.actuation_errors.load(Ordering::Relaxed),
            audit_records: self.audit_records.load(Ordering::Relaxed),
            audit_errors: self.audit_errors.load(Ordering::Relaxed),
            proposals_not_owned: self.proposals_not_owned.load(Ordering::Relaxed),
            api_requests: self
                .api_requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            export_errors: copy(&self.export_errors),
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

    pub(crate) fn add_decision(&self, agent: &str, outcome: &'static str) {
        let mut m = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        // Look up by `&str` first: a `String` key only for an agent's first decision.
        let by_outcome = match m.get_mut(agent) {
            Some(by_outcome) => by_outcome,
            None => m.entry(agent.to_string()).or_default(),
        };
        *by_outcome.entry(outcome).or_insert(0) += 1;
    }

    pub(crate) fn add_fallback(&self, agent: &'static str, reason: &str) {
        let mut m = self.fallbacks.lock().unwrap_or_else(|e| e.into_inner());
        let by_reason = m.entry(agent).or_default();
        match by_reason.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                by_reason.insert(reason.to_string(), 1);
            }
        }
    }

    pub(crate) fn add_api_request(&self, status: u16) {
        let mut m = self.api_requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(status).or_insert(0) += 1;
    }

    pub(crate) fn add_export_error(&self, signal: &'static str) {
        bump(&self.export_errors, signal, 1);
    }

    pub(crate) fn add_restart(&self, agent: &'static str) {
        bump(&self.restarts, agent, 1);
    }
}
