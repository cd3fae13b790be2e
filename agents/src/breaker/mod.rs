//! The breaker agent: a resilience4j-style circuit breaker per protected service, driven by
//! aggregate metrics, plus load shedding for overloaded services; with a risk model, also
//! predictive (it opens ahead of the rule).
//!
//! # The rule (always runs)
//!
//! It watches `Metrics` telemetry. A service's own metrics feed its call window and its
//! load history; every caller's `dependencies` entry for it feeds the callers' view, which
//! the breaker prefers (see [`features`]). Decisions are taken at [`Agent::tick`] only, one
//! per decision window, and proposed at the tick's `now`: aggregate samples arrive every
//! few seconds anyway, and judging the whole window at once keeps one noisy sample from
//! opening the breaker. Each proposal is a change: `Breaker { state }` on a transition,
//! `Shed { fraction }` when shedding starts, rises or stops (`fraction` 0).
//!
//! # The risk model (when the policy names a `model`)
//!
//! The catalog loads the model once per policy (`LearnedModel::load` with [`SIGNATURE`]); every incarnation
//! of the agent shares it. The model (`agents/models/breaker-risk.onnx`, card next to it)
//! gives, per protected service, the probability that the rule's trip condition (a
//! failure rate of calls to the service of 50 % or more over a minute) holds within the
//! next 60 s.
//!
//! - **Features.** The same metrics feed each service's `BreakerFeatures` (15 s buckets of
//!   its own figures, its callers' view of it and its dependencies' health; the
//!   definition the model was trained on, `conclave_runtime::models::breaker_features`).
//! - **One batch per tick.** The rows of every protected service whose breaker the agent
//!   holds closed and that reported within the last three decision windows go to the model
//!   in **one** `infer` call.
//! - **Opening early.** After the rule had its say (it always runs first, and its
//!   transition wins), a closed breaker opens on the model when the risk is at or above
//!   `risk.open_at` (default 0.8), the window holds at least `minimum_number_of_calls`
//!   calls (as the rule requires), and the breaker has been closed for a whole `window`
//!   (after a close, the features of the minute before still show the open breaker's
//!   quiet, not the service). The proposal carries `model`, `risk` and the rule's rates,
//!   with the risk as its confidence. Only such opens name the `model`; the rule's own
//!   transitions of a closed breaker record the `risk` they were up against.
//! - **Never closing on the model alone.** The model is asked only about closed
//!   breakers: waiting in open, half-open probes and the close or re-open they lead to
//!   stay the rule's, as resilience4j's state machine has them.
//! - **`risk.mode: report`**: the risk is computed and recorded (`risk` on every proposal
//!   of a closed breaker) but only the rule decides: the proposals are exactly the rule's,
//!   with those factors added.
//! - **Predicted vs what happened** (both modes): per service, an alarm (risk at or above
//!   `open_at` while the trip condition does not hold) is checked against the trip
//!   condition over the next 60 s; proposals carry `risk_alarms_checked`,
//!   `risk_alarm_precision`, `risk_trips_seen`, `risk_trips_warned_share` and
//!   `risk_lead_s_mean` since the agent started (in `act` mode an alarm opens the breaker,
//!   which changes what follows, so read them in `report` mode).
//! - **Drift, faults, `fallback: hold`** work as the scaler's: PSI of the features against
//!   the model's reference statistics (`drift.*`, `warm` left out), `on_drift: rules`
//!   switches the model off until the agent restarts; a proposal records `fallback:
//!   <reason>` when a model is configured but the rule decided alone because of a fault
//!   (`model_unavailable` — with the load error as `model_error` on the instance's first
//!   proposal — `inference_error`, `timeout`, `non_finite_output`, `out_of_range`,
//!   `circuit_open`, `drift`); with `fallback: hold` (in `act` mode) the agent proposes no
//!   breaker transition for a closed breaker whose risk failed. The model's circuit
//!   breaker runs on decision time, as the scaler's.

mod config;
mod fallback;
mod features;
mod risk;
#[cfg(test)]
mod risk_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use conclave_runtime::policy::FallbackMode;
use conclave_runtime::telemetry::{ServiceMetrics, Telemetry, TelemetryKind};
use conclave_runtime::{
    factor, Action, Agent, BreakerState, Confidence, Draft, Factor, Fraction, ModelId, Proposals,
    Target, Timestamp,
};

pub use config::{
    BreakerConfig, RawBreakerSettings, RawRisk, RawShedSettings, RiskConfig, RiskMode, ShedConfig,
};
pub use risk::{Assessed, Tally, DRIFT_EXCLUDED, SIGNATURE};

use crate::learned::{Fault, LearnedModel};
use crate::scope::Scope;
use fallback::{Position, Transition};
use features::{CallWindow, LoadHistory};
use risk::{noted, Assessment, Predictor};

/// The catalog name.
pub const NAME: &str = "breaker";

/// Rules carry no calibrated probability: they propose with full confidence and leave the
/// gating to the policy's conditions and guardrails.
const RULE_CONFIDENCE: Confidence = Confidence::ONE;

/// A service without own metrics for this many decision windows gets no risk: one late
/// report is normal, three in a row means the reporter is gone (the scaler's default).
const STALE_WINDOWS: u32 = 3;

/// The breaker agent; build one per policy with [`BreakerAgent::new`] (rule only) or
/// [`BreakerAgent::with_model`].
#[derive(Debug)]
pub struct BreakerAgent {
    config: BreakerConfig,
    scope: Scope,
    services: BTreeMap<String, ServiceState>,
    predictor: Option<Predictor>,
    /// The policy's `fallback: hold`: no transition for a closed breaker whose risk failed.
    hold_on_fault: bool,
    /// Whether this instance already recorded the model's load error.
    load_error_recorded: bool,
}

/// What the agent knows and last proposed for one protected service.
#[derive(Debug)]
struct ServiceState {
    calls: CallWindow,
    load: LoadHistory,
    /// The breaker state last proposed (not necessarily enacted).
    position: Position,
    /// The shed fraction last proposed, 0 when not shedding.
    shed: f64,
}

impl BreakerAgent {
    /// An agent with `config`, acting on the services `scope` includes, on its rule alone.
    pub fn new(config: BreakerConfig, scope: Scope) -> Self {
        BreakerAgent {
            config,
            scope,
            services: BTreeMap::new(),
            predictor: None,
            hold_on_fault: false,
            load_error_recorded: false,
        }
    }

    /// A predictive breaker: the rule plus `model`'s risk (see the module docs). The
    /// policy's `fallback` for the breaker decides what a model fault does.
    pub fn with_model(config: BreakerConfig, scope: Scope, model: LearnedModel) -> Self {
        let hold_on_fault = scope
            .policy()
            .agent(NAME)
            .is_some_and(|a| a.fallback() == FallbackMode::Hold);
        let stale_after = scope.policy().arbiter().window() * STALE_WINDOWS;
        let predictor = Predictor::new(model, config.drift, stale_after);
        let mut agent = BreakerAgent::new(config, scope);
        agent.predictor = Some(predictor);
        agent.hold_on_fault = hold_on_fault;
        agent
    }

    fn service(&mut self, name: &str) -> &mut ServiceState {
        let samples = self.config.shed.as_ref().map_or(0, |s| s.samples);
        // Allocate the key only for a service not seen before (this runs per message).
        if !self.services.contains_key(name) {
            self.services.insert(
                name.to_string(),
                ServiceState {
                    calls: CallWindow::default(),
                    load: LoadHistory::new(samples),
                    position: Position::Closed {
                        since: Timestamp::EPOCH,
                    },
                    shed: 0.0,
                },
            );
        }
        self.services
            .get_mut(name)
            .expect("the service's state exists: inserted just above when missing")
    }

    fn observe_metrics(&mut self, m: &ServiceMetrics) {
        let slow = self.config.slow_call_duration;
        if self.scope.includes_name(&m.service) {
            let st = self.service(&m.service);
            st.calls.record_own(m, slow);
            st.load.record(m);
            if let Some(p) = self.predictor.as_mut() {
                p.observe_own(m);
            }
        }
        for dep in &m.dependencies {
            // A service calling itself is its own view, already recorded.
            if dep.service == m.service || !self.scope.includes_name(&dep.service) {
                continue;
            }
            self.service(&dep.service)
                .calls
                .record_caller(&m.service, m.ts, dep, slow);
            if let Some(p) = self.predictor.as_mut() {
                p.observe_caller(&dep.service, m.ts, dep);
            }
        }
    }
}

/// A breaker transition to propose, with what the model had to do with it.
struct Decision {
    to: BreakerState,
    confidence: Confidence,
    factors: Vec<Factor>,
    model: Option<ModelId>,
    fault: Option<Fault>,
}

impl Decision {
    fn rule(t: Transition) -> Self {
        Decision {
            to: t.to,
            confidence: RULE_CONFIDENCE,
            factors: t.rationale,
            model: None,
            fault: None,
        }
    }
}

/// What the learned half needs of the agent's settings at a tick.
struct Learned<'a> {
    config: &'a BreakerConfig,
    model_id: Option<&'a ModelId>,
    drift: Option<&'a Factor>,
}

impl Learned<'_> {
    /// The transition at `now` for a service whose rule said `rule` (already applied to a
    /// copy of its position, `next`) and whose model said `assessment`; `None` for no
    /// change. Updates `next` when the model opens.
    fn decide(
        &self,
        was: Position,
        next: &mut Position,
        rule: Option<Transition>,
        calls: &CallWindow,
        now: Timestamp,
        assessment: Option<&Assessment>,
    ) -> Option<Decision> {
        let Some(a) = assessment else {
            return rule.map(Decision::rule);
        };
        let config = self.config;
        let report = config.risk.mode() == RiskMode::Report;
        let risk = match a.assessed {
            Assessed::Warming => None,
            Assessed::Fault(fault) => {
                return rule.map(|t| {
                    let mut d = Decision::rule(t);
                    d.fault = Some(fault);
                    d.factors.extend(self.drift.cloned());
                    d
                });
            }
            Assessed::Risk(r) => Some(r),
        };
        let model_name = self
            .model_id
            .map(|m| format!("{} {}", m.name, m.version))
            .unwrap_or_default();
        let risk_factor = |note: &str| {
            risk.map(|r| {
                noted(
                    "risk",
                    r,
                    &format!("P(trip condition within 60 s) by {model_name}; {note}"),
                )
            })
        };
        let extras = |d: &mut Decision| {
            d.factors.push(noted(
                "risk_open_at",
                config.risk.open_at(),
                &format!("risk.mode {}", config.risk.mode().as_str()),
            ));
            d.factors.extend(a.tally.factors());
            d.factors.extend(self.drift.cloned());
        };
        if let Some(t) = rule {
            let mut d = Decision::rule(t);
            // The rule decided (the model is named only on the opens it made), but the
            // risk it was up against is recorded.
            if let Some(f) = risk_factor(if report {
                "risk.mode report: recorded, the rule decides"
            } else {
                "the rule's transition stands"
            }) {
                d.factors.push(f);
                extras(&mut d);
            }
            return Some(d);
        }
        // The model opens only a breaker the agent holds closed, and only in act mode.
        let (Some(r), Position::Closed { since }, false) = (risk, was, report) else {
            return None;
        };
        if r < config.risk.open_at() || now.since(since) < config.window {
            return None;
        }
        let from = now.minus(config.window).max(since);
        let (counts, view) = calls.count(from, now);
        if !fallback::has_at_least(&counts, config.minimum_number_of_calls) {
            return None;
        }
        *next = Position::Open { since: now };
        let mut factors = vec![
            risk_factor("at or above risk.open_at: open ahead of the rule")
                .unwrap_or_else(|| factor("risk", r)),
        ];
        factors.extend(fallback::rates(&counts, view, config));
        factors.push(factor(
            "minimum_number_of_calls",
            config.minimum_number_of_calls as f64,
        ));
        let mut d = Decision {
            to: BreakerState::Open,
            confidence: Confidence::saturating(r),
            factors,
            model: self.model_id.cloned(),
            fault: None,
        };
        extras(&mut d);
        Some(d)
    }
}

impl Agent for BreakerAgent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn models(&self) -> Vec<std::sync::Arc<conclave_runtime::metrics::ModelStats>> {
        self.predictor
            .as_ref()
            .and_then(Predictor::stats)
            .into_iter()
            .collect()
    }

    fn wants(&self, kind: TelemetryKind) -> bool {
        kind == TelemetryKind::Metrics
    }

    fn observe(&mut self, telemetry: &Telemetry, _out: &mut Proposals) {
        if let Telemetry::Metrics(m) = telemetry {
            self.observe_metrics(m);
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        // The risk of every service, in one batch; only closed breakers are given to the
        // model.
        let assessments = self.predictor.as_mut().map(|p| {
            let services: Vec<(&str, bool)> = self
                .services
                .iter()
                .map(|(name, st)| {
                    (
                        name.as_str(),
                        matches!(st.position, Position::Closed { .. }),
                    )
                })
                .collect();
            p.assess(now, &services, self.config.risk.open_at())
        });
        let drift = self.predictor.as_ref().and_then(|p| p.drift_factor());
        let learned = Learned {
            config: &self.config,
            model_id: self.predictor.as_ref().and_then(|p| p.model_id()),
            drift: drift.as_ref(),
        };
        let load_error = self.predictor.as_ref().and_then(|p| p.load_error());
        let inference = self.predictor.as_ref().and_then(|p| p.inference());
        let act = self.config.risk.mode() == RiskMode::Act;
        for (name, st) in &mut self.services {
            let target = Target::new(name.as_str());
            let was = st.position;
            let mut next = was;
            let rule = fallback::step(&mut next, &st.calls, now, &self.config);
            let assessment = assessments.as_ref().and_then(|a| a.get(name));
            let decision = learned.decide(was, &mut next, rule, &st.calls, now, assessment);
            if let Some(mut d) = decision {
                // `fallback: hold`: a closed breaker whose risk failed keeps its state.
                let held = d.fault.is_some()
                    && self.hold_on_fault
                    && act
                    && matches!(was, Position::Closed { .. });
                if !held {
                    st.position = next;
                    if let (Some(error), Some(Fault::Model(_))) = (load_error, d.fault) {
                        if !self.load_error_recorded {
                            self.load_error_recorded = true;
                            d.factors.push(noted("model_error", 1.0, error));
                        }
                    }
                    // The model only ever opens a breaker the rule keeps closed.
                    let rule = d.model.is_some().then_some(Action::Breaker {
                        state: BreakerState::Closed,
                    });
                    out.propose(Draft {
                        at: now,
                        target: target.clone(),
                        action: Action::Breaker { state: d.to },
                        confidence: d.confidence,
                        rationale: d.factors,
                        model: d.model,
                        fallback: d.fault.map(|f| f.as_str().to_string()),
                        inference: assessment.and(inference.clone()),
                        rule,
                    });
                }
            }
            if let Some(shed) = &self.config.shed {
                let change = st
                    .load
                    .full()
                    .and_then(|samples| fallback::shed_step(st.shed, samples, shed));
                if let Some(change) = change {
                    st.shed = change.fraction;
                    out.propose(Draft {
                        at: now,
                        target,
                        action: Action::Shed {
                            fraction: Fraction::saturating(change.fraction),
                        },
                        confidence: RULE_CONFIDENCE,
                        rationale: change.rationale,
                        model: None,
                        fallback: None,
                        inference: None,
                        rule: None,
                    });
                }
            }
            // Keep what the current state still judges: the sliding window, and in
            // half-open everything since it began (probes may take longer than a window).
            let horizon = match st.position {
                Position::HalfOpen { since } => since.min(now.minus(self.config.window)),
                Position::Closed { .. } | Position::Open { .. } => now.minus(self.config.window),
            };
            st.calls.prune(horizon);
        }
    }
}
