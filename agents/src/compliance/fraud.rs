//! The compliance agent's learned half: the fraud model (loaded once per policy, shared by
//! every incarnation of the agent), the rolling card and producer windows it reads, one
//! inference per event that could matter, and how a score joins the detectors' drafts.
//! The agent (`mod.rs`) wires it; the module docs there say what it does as a whole.

use std::sync::Arc;

use conclave_runtime::metrics::ModelStats;
use conclave_runtime::models::compliance_features::{
    ComplianceFeatures, ComplianceVector, CARD_PATH, CARD_WINDOW_S, FEATURE_NAMES,
    LARGE_ORDER_CENTS, PRODUCER_WINDOW_S,
};
use conclave_runtime::models::Fallback;
use conclave_runtime::telemetry::EventSample;
use conclave_runtime::{
    Action, Confidence, Draft, Factor, ModelId, QuarantineScope, Severity, Target,
};

use super::config::{FraudAction, FraudConfig, FraudMode};
use crate::learned::{noted, DriftSettings, Fault, Learned, LearnedModel, Signature};

/// What a compliance fraud model must look like: the 9 features in order, one
/// probability per row.
pub const SIGNATURE: Signature = Signature {
    agent: "compliance",
    kind: "compliance fraud",
    feature_names: &FEATURE_NAMES,
    outputs_per_row: 1,
};

/// Features left out of drift: the burst signals. How often they are non-zero follows how
/// much fraud there is, not what the traffic looks like, so a quieter stream than the
/// training scenarios' reads as drift (it did on every held-out scenario), and so would a
/// fraud wave, which with `on_drift: rules` would switch the model off during an attack.
/// Drift watches the order mix instead: amounts, large orders, cards present.
pub const DRIFT_EXCLUDED: [&str; 5] = [
    "card_orders",
    "card_large",
    "card_gap_s",
    "card_log_amount",
    "producer_repeat_share",
];

/// What the model said about one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Scored {
    /// Not asked: the detectors found nothing and the event's card has fewer orders than
    /// `fraud.min_orders`, so no score could lead anywhere.
    NotAsked,
    /// The probability that the event is an order of a fraud burst.
    Score(f64),
    /// The detectors decide alone, for this reason.
    Fault(Fault),
}

/// An agent instance's learned state. The model is shared; the windows, the drift monitor
/// and the tally belong to the instance and start over when the agent restarts.
#[derive(Debug)]
pub(super) struct FraudScorer {
    learned: Learned,
    features: ComplianceFeatures,
    /// Events whose score reached the threshold with enough orders on their card, since
    /// the agent started (in `report` mode: the findings it would have made).
    alarms: u64,
    /// Whether this instance already recorded the model's load error.
    load_error_recorded: bool,
}

impl FraudScorer {
    /// A scorer for `model` under `drift` settings.
    pub(super) fn new(model: LearnedModel, drift: DriftSettings) -> Self {
        FraudScorer {
            learned: Learned::new(model, &SIGNATURE, drift, &DRIFT_EXCLUDED),
            features: ComplianceFeatures::new(),
            alarms: 0,
            load_error_recorded: false,
        }
    }

    /// The model's figures, when it is loaded (for the runtime's metrics).
    pub(super) fn stats(&self) -> Option<Arc<ModelStats>> {
        self.learned.stats()
    }

    /// Takes an event in scope (whoever sent it: the windows must see what the model was
    /// trained on) and returns its feature row, which also feeds the drift monitor.
    pub(super) fn observe(&mut self, event: &EventSample) -> ComplianceVector {
        self.learned.begin_features();
        let v = self.features.observe(event);
        self.learned.observe_drift(&v.features);
        v
    }

    /// Scores `v`, the row of `event`, when `asked`: one model call of one row.
    pub(super) fn score(
        &mut self,
        event: &EventSample,
        v: &ComplianceVector,
        asked: bool,
    ) -> Scored {
        if !asked {
            return Scored::NotAsked;
        }
        self.learned.start_batch();
        self.learned.push_row(&v.features);
        match self.learned.infer(event.ts, 1) {
            // `infer` checked one output per row already.
            Ok(out) => match out.first() {
                Some(score) => Scored::Score(f64::from(*score)),
                None => Scored::Fault(Fault::Model(Fallback::InferenceError)),
            },
            Err(fault) => Scored::Fault(fault),
        }
    }

    /// The proposals for `event`: the detectors' `drafts` (already decided, proposed
    /// whatever the model says), with what the model said added, and a fraud finding's
    /// own proposals when the score makes one. `already_alerted`: a fraud alert went out
    /// for this producer before (`action: alert` proposes one per producer).
    pub(super) fn decide(
        &mut self,
        event: &EventSample,
        v: &ComplianceVector,
        scored: Scored,
        config: &FraudConfig,
        mut drafts: Vec<Draft>,
        already_alerted: bool,
    ) -> Vec<Draft> {
        let score = match scored {
            Scored::NotAsked => return drafts,
            Scored::Fault(fault) => {
                let mut extra: Vec<Factor> = self.learned.drift_factor().into_iter().collect();
                if let (Some(error), Fault::Model(_), false) =
                    (self.learned.load_error(), fault, drafts.is_empty())
                {
                    if !self.load_error_recorded {
                        self.load_error_recorded = true;
                        extra.push(noted("model_error", 1.0, error));
                    }
                }
                let inference = self.learned.inference();
                for d in &mut drafts {
                    d.fallback = Some(fault.as_str().to_string());
                    d.inference = inference.clone();
                    d.rationale.extend(extra.iter().cloned());
                }
                return drafts;
            }
            Scored::Score(s) => s,
        };
        let orders = v.card_orders.saturating_add(1);
        let alarm = score >= config.threshold() && orders >= config.min_orders();
        if alarm {
            self.alarms += 1;
        }
        let finding = alarm
            && config.mode() == FraudMode::Act
            && !(config.action() == FraudAction::Alert && already_alerted);
        let model = self.learned.model_id().cloned();
        let factors = self.factors(score, v, config, alarm, finding, model.as_ref());
        let inference = self.learned.inference();
        for d in &mut drafts {
            d.rationale.extend(factors.iter().cloned());
            d.inference = inference.clone();
        }
        if !finding {
            return drafts;
        }
        let why = format!(
            "fraud pattern: {orders} orders on one card at {CARD_PATH} within {CARD_WINDOW_S} s, \
             score {score:.2}"
        );
        let draft = |action| Draft {
            at: event.ts,
            target: Target::new(event.topic.as_str()),
            action,
            confidence: Confidence::saturating(score),
            rationale: factors.clone(),
            model: model.clone(),
            fallback: None,
            inference: inference.clone(),
            rule: None,
        };
        if config.action() == FraudAction::Quarantine {
            let mut amended = false;
            for d in &mut drafts {
                if let Action::Quarantine { reason, .. } = &mut d.action {
                    reason.push_str("; ");
                    reason.push_str(&why);
                    d.model = model.clone();
                    amended = true;
                }
            }
            if !amended {
                drafts.insert(
                    0,
                    draft(Action::Quarantine {
                        scope: QuarantineScope::Producer(event.producer.clone()),
                        reason: why,
                    }),
                );
            }
        }
        let model_name = model
            .as_ref()
            .map(|m| format!(" by {} {}", m.name, m.version))
            .unwrap_or_default();
        let large = v.get("card_large").map_or(0.0, f64::from)
            + f64::from(v.get("is_large").unwrap_or(0.0));
        drafts.push(draft(Action::Alert {
            severity: Severity::Warning,
            text: format!(
                "fraud pattern from producer `{}` on topic `{}`: score {score:.2}{model_name}; \
                 {orders} orders on one card ({CARD_PATH}) within {CARD_WINDOW_S} s, {large} of \
                 them large",
                event.producer, event.topic
            ),
        }));
        drafts
    }

    /// What the score adds to a rationale: always the score and the threshold; on an alarm,
    /// the figures behind it (numbers about the card and the producer, never a value);
    /// the alarms so far, once there are any; drift while it lasts.
    fn factors(
        &self,
        score: f64,
        v: &ComplianceVector,
        config: &FraudConfig,
        alarm: bool,
        finding: bool,
        model: Option<&ModelId>,
    ) -> Vec<Factor> {
        let by = model
            .map(|m| format!("{} {}", m.name, m.version))
            .unwrap_or_default();
        let note = match (config.mode(), alarm, finding) {
            (FraudMode::Report, true, _) => {
                "at or above fraud.threshold; fraud.mode report: recorded, the detectors decide"
            }
            (FraudMode::Report, false, _) => {
                "below fraud.threshold; fraud.mode report: recorded, the detectors decide"
            }
            (FraudMode::Act, true, true) => "at or above fraud.threshold: a fraud finding",
            (FraudMode::Act, true, false) => {
                "at or above fraud.threshold; this producer was alerted already"
            }
            (FraudMode::Act, false, _) => {
                "below fraud.threshold or too few orders on the card: no fraud finding"
            }
        };
        let mut out = vec![
            noted(
                "fraud_score",
                score,
                &format!("P(fraud burst) by {by}; {note}"),
            ),
            noted(
                "fraud_threshold",
                config.threshold(),
                &format!(
                    "fraud.mode {}, min_orders {}, action {}",
                    config.mode().as_str(),
                    config.min_orders(),
                    config.action().as_str()
                ),
            ),
        ];
        if alarm {
            let f = |name: &str| v.get(name).map_or(0.0, f64::from);
            out.push(noted(
                "card_orders",
                f64::from(v.card_orders.saturating_add(1)),
                &format!("orders on the event's card ({CARD_PATH}) within {CARD_WINDOW_S} s, this one included"),
            ));
            out.push(noted(
                "card_large",
                f("card_large") + f("is_large"),
                &format!(
                    "of them large (at least {} units)",
                    LARGE_ORDER_CENTS / 100.0
                ),
            ));
            out.push(noted(
                "card_gap_s",
                f("card_gap_s"),
                "seconds since the card's previous order",
            ));
            out.push(noted(
                "producer_large_share",
                f("producer_large_share"),
                &format!(
                    "share of large orders among the producer's previous {PRODUCER_WINDOW_S} s"
                ),
            ));
        }
        if self.alarms > 0 {
            out.push(noted(
                "fraud_alarms",
                self.alarms as f64,
                "events at or above fraud.threshold with enough orders on their card, since the agent started",
            ));
        }
        out.extend(self.learned.drift_factor());
        out
    }
}
