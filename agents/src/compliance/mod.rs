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
//!
//! # The fraud model (when the policy names a `model`)
//!
//! The catalog loads the model once per policy (`LearnedModel::load` with [`SIGNATURE`]);
//! every incarnation of the agent shares it. The model (`agents/models/compliance-fraud.onnx`,
//! card next to it) gives, per event, the probability that it is an order of a fraud
//! burst (one card, one producer, several large orders in a short span).
//!
//! - **Features.** Every event in scope, from any producer, feeds the rolling card and
//!   producer windows (`conclave_runtime::models::compliance_features`, the definition the
//!   model was trained on) and the drift monitor. Only counts and times are kept, keyed
//!   by hash; a rationale names feature names and field paths, never a value.
//! - **Detectors first.** The deterministic detectors and the residency check always run
//!   and their proposals stand whatever the model says.
//! - **When the model is asked.** Once per event, one row, when the detectors found
//!   something (the score is recorded with their proposals) or when the event's card has
//!   at least `fraud.min_orders` orders in the window, this one included (default 2: a
//!   single order is never a burst).
//! - **A fraud finding** (`fraud.mode: act`): a score at or above `fraud.threshold`
//!   (default 0.5) on such an event. With `fraud.action: quarantine` (default) the
//!   producer is quarantined (the detectors' quarantine of the same event gets the fraud
//!   reason added) and a warning alert names the pattern; with `alert`, only the alert,
//!   once per producer. The finding's proposals name the `model`, carry the score as
//!   their confidence and the rationale `fraud_score`, `fraud_threshold`, `card_orders`,
//!   `card_large`, `card_gap_s`, `producer_large_share`, `fraud_alarms`.
//! - **`fraud.mode: report`**: the score is computed and recorded but only the detectors
//!   propose; `fraud_alarms` counts the findings the model would have made.
//! - **Faults and drift** work as for the other learned agents: a proposal made while
//!   the model could not be used records `fallback: <reason>` (`model_unavailable` — with
//!   the load error as `model_error` on the instance's first such proposal —
//!   `inference_error`, `timeout`, `non_finite_output`, `out_of_range`, `circuit_open`,
//!   `drift`); `drift.on_drift: rules` switches the model off until the agent restarts.
//!   Drift watches the order mix (amounts, large orders, cards present), not the burst
//!   signals, whose rate is the fraud rate (see [`DRIFT_EXCLUDED`]).
//!   The policy's `fallback: hold` changes nothing here: the detectors always propose.

mod config;
mod detectors;
mod fallback;
mod features;
mod fraud;
#[cfg(test)]
mod fraud_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;

use conclave_runtime::metrics::ModelStats;
use conclave_runtime::telemetry::{EventSample, Telemetry, TelemetryKind};
use conclave_runtime::{Action, Agent, Proposals, Timestamp};

pub use config::{
    ComplianceConfig, FraudAction, FraudConfig, FraudMode, RawComplianceSettings, RawFraud,
};
pub use detectors::{scan, KindSet, Match, PiiKind};
pub use fraud::{DRIFT_EXCLUDED, SIGNATURE};

use crate::learned::LearnedModel;
use crate::scope::Scope;
use fraud::FraudScorer;

/// The catalog name.
pub const NAME: &str = "compliance";

/// The compliance agent; build one per policy with [`ComplianceAgent::new`].
#[derive(Debug)]
pub struct ComplianceAgent {
    config: ComplianceConfig,
    scope: Scope,
    /// Producers this agent has proposed to quarantine.
    quarantined: BTreeSet<String>,
    /// Producers a fraud alert went out for (`fraud.action: alert`).
    fraud_alerted: BTreeSet<String>,
    fraud: Option<FraudScorer>,
}

impl ComplianceAgent {
    /// An agent with `config`, acting on the topics `scope` includes, on its detectors
    /// alone.
    pub fn new(config: ComplianceConfig, scope: Scope) -> Self {
        ComplianceAgent {
            config,
            scope,
            quarantined: BTreeSet::new(),
            fraud_alerted: BTreeSet::new(),
            fraud: None,
        }
    }

    /// The detectors plus `model`'s fraud score (see the module docs).
    pub fn with_model(config: ComplianceConfig, scope: Scope, model: LearnedModel) -> Self {
        let scorer = FraudScorer::new(model, config.drift);
        let mut agent = ComplianceAgent::new(config, scope);
        agent.fraud = Some(scorer);
        agent
    }

    fn observe_event(&mut self, event: &EventSample, out: &mut Proposals) {
        if !self.scope.includes_name(&event.topic) {
            return;
        }
        let vector = self.fraud.as_mut().map(|f| f.observe(event));
        if self.quarantined.contains(&event.producer) {
            return;
        }
        let findings = features::findings(event, &self.config);
        let breach = features::residency_breach(event, &self.config.residency);
        let rule = fallback::decide(event, &findings, breach.as_ref());
        let drafts = match (self.fraud.as_mut(), vector) {
            (Some(scorer), Some(v)) => {
                let fraud = &self.config.fraud;
                let alerted = self.fraud_alerted.contains(&event.producer);
                let could_find = v.card_orders.saturating_add(1) >= fraud.min_orders()
                    && !(fraud.action() == FraudAction::Alert && alerted);
                let scored = scorer.score(event, &v, !rule.is_empty() || could_find);
                scorer.decide(event, &v, scored, fraud, rule, alerted)
            }
            _ => rule,
        };
        if drafts.is_empty() {
            return;
        }
        if drafts
            .iter()
            .any(|d| matches!(d.action, Action::Quarantine { .. }))
        {
            self.quarantined.insert(event.producer.clone());
        } else {
            // Only a fraud finding with `action: alert` proposes no quarantine.
            self.fraud_alerted.insert(event.producer.clone());
        }
        for d in drafts {
            out.propose(d);
        }
    }
}

impl Agent for ComplianceAgent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn models(&self) -> Vec<Arc<ModelStats>> {
        self.fraud
            .as_ref()
            .and_then(FraudScorer::stats)
            .into_iter()
            .collect()
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
