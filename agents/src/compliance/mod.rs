//! The compliance agent: checks sampled events for personal data and for data-residency
//! breaches, and quarantines the producer that sent them.
//!
//! It watches `Event` telemetry. Each event in scope (its topic is the target) is walked
//! by the detectors (see [`features`]) and checked against the topic's allowed regions;
//! findings are proposed at once from [`Agent::observe`], at the event's own time, because
//! a leak should not wait for the decision window to close (see [`fallback`] for exactly
//! what is proposed). `tick` proposes nothing.
//!
//! Deduplication: once the agent has proposed quarantining a producer it proposes nothing
//! more for that producer (no further quarantine, no further alert) for the rest of its
//! lifetime, whichever topic the next event is on. It cannot see whether the arbiter
//! enacted the quarantine, so this is "already proposed", not "quarantined". A restarted
//! agent starts with an empty set and may propose once more.

mod config;
mod detectors;
mod fallback;
mod features;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use conclave_runtime::telemetry::{EventSample, Telemetry, TelemetryKind};
use conclave_runtime::{Agent, Proposals, Timestamp};

pub use config::{ComplianceConfig, RawComplianceSettings};
pub use detectors::{scan, KindSet, Match, PiiKind};

use crate::scope::Scope;

/// The catalog name.
pub const NAME: &str = "compliance";

/// The compliance agent; build one per policy with [`ComplianceAgent::new`].
#[derive(Debug)]
pub struct ComplianceAgent {
    config: ComplianceConfig,
    scope: Scope,
    /// Producers this agent has proposed to quarantine.
    quarantined: BTreeSet<String>,
}

impl ComplianceAgent {
    /// An agent with `config`, acting on the topics `scope` includes.
    pub fn new(config: ComplianceConfig, scope: Scope) -> Self {
        ComplianceAgent {
            config,
            scope,
            quarantined: BTreeSet::new(),
        }
    }

    fn observe_event(&mut self, event: &EventSample, out: &mut Proposals) {
        if self.quarantined.contains(&event.producer) || !self.scope.includes_name(&event.topic) {
            return;
        }
        let findings = features::findings(event, &self.config);
        let breach = features::residency_breach(event, &self.config.residency);
        let drafts = fallback::decide(event, &findings, breach.as_ref());
        if drafts.is_empty() {
            return;
        }
        self.quarantined.insert(event.producer.clone());
        for d in drafts {
            out.propose(d);
        }
    }
}

impl Agent for ComplianceAgent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants(&self, kind: TelemetryKind) -> bool {
        kind == TelemetryKind::Event
    }

    fn observe(&mut self, telemetry: &Telemetry, out: &mut Proposals) {
        if let Telemetry::Event(event) = telemetry {
            self.observe_event(event, out);
        }
    }

    fn tick(&mut self, _now: Timestamp, _out: &mut Proposals) {}
}
