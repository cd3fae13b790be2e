//! Events along the telemetry -> decision pipeline.

use std::sync::atomic::Ordering;

use super::Counters;
use crate::decision::Decision;
use crate::proposal::Proposal;
use crate::telemetry::DeadLetterReason;

/// A batch of messages was taken from a source.
#[derive(Debug)]
pub struct TelemetryReceived {
    /// Messages in the batch.
    pub messages: u64,
    /// Of which decoded.
    pub decoded: u64,
}

impl TelemetryReceived {
    /// Counts it.
    pub fn emit(self, counters: &Counters) {
        counters
            .received
            .fetch_add(self.messages, Ordering::Relaxed);
        counters.decoded.fetch_add(self.decoded, Ordering::Relaxed);
    }
}

/// A message went to the dead-letter sink.
#[derive(Debug)]
pub struct TelemetryDeadLettered<'a> {
    /// Topic it came from.
    pub topic: &'a str,
    /// Why.
    pub reason: DeadLetterReason,
    /// The error text (never the payload).
    pub error: &'a str,
}

impl TelemetryDeadLettered<'_> {
    /// Logs and counts it.
    pub fn emit(self, counters: &Counters) {
        counters.add_dead_letter(self.reason);
        tracing::debug!(
            topic = self.topic,
            reason = self.reason.as_str(),
            error = self.error,
            "Telemetry dead-lettered."
        );
    }
}

/// An agent handed the arbiter its proposals for a window.
#[derive(Debug)]
pub struct ProposalsSent<'a> {
    /// The agent.
    pub agent: &'static str,
    /// Its proposals.
    pub proposals: &'a [Proposal],
}

impl ProposalsSent<'_> {
    /// Counts them, and those its rule made instead of its model (by `fallback` reason).
    pub fn emit(self, counters: &Counters) {
        counters.add_proposals(self.agent, self.proposals.len() as u64);
        for p in self.proposals {
            if let Some(reason) = &p.fallback {
                counters.add_fallback(self.agent, reason);
            }
        }
    }
}

/// The arbiter closed a decision window.
#[derive(Debug)]
pub struct DecisionsMade<'a> {
    /// The decisions, in order.
    pub decisions: &'a [Decision],
}

impl DecisionsMade<'_> {
    /// Logs and counts them.
    pub fn emit(self, counters: &Counters) {
        counters.ticks.fetch_add(1, Ordering::Relaxed);
        for d in self.decisions {
            counters.add_decision(&d.agent, d.outcome.name());
            tracing::debug!(id = %d.id, target = %d.target, agent = %d.agent, outcome = d.outcome.name(), "Decision made.");
        }
    }
}

/// The shared fleet budget as this instance sees it changed: a window was decided or a
/// grant came.
#[derive(Debug)]
pub struct FleetShareSeen {
    /// The replicas the grant in force allows (`None`: no grant).
    pub granted: Option<u64>,
    /// The replicas counted against it.
    pub used: u64,
}

impl FleetShareSeen {
    /// Records it for the gauges.
    pub fn emit(self, counters: &Counters) {
        let mut slot = counters
            .fleet_share
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some((self.granted, self.used));
    }
}

/// The actuator could not carry out a decision.
#[derive(Debug)]
pub struct ActuationFailed<'a> {
    /// The decision.
    pub decision: &'a str,
    /// The error.
    pub error: &'a dyn std::error::Error,
}

impl ActuationFailed<'_> {
    /// Logs and counts it.
    pub fn emit(self, counters: &Counters) {
        counters.actuation_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(decision = self.decision, error = %self.error, "Actuation failed.");
    }
}

/// The audit log refused a record.
#[derive(Debug)]
pub struct AuditWriteFailed<'a> {
    /// The error.
    pub error: &'a dyn std::error::Error,
}

impl AuditWriteFailed<'_> {
    /// Logs and counts it.
    pub fn emit(self, counters: &Counters) {
        counters.audit_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %self.error, "Audit write failed.");
    }
}
