//! The router agent: splits each configured route's traffic across its backends by
//! least-loaded weights, proposing `Route` actions when a decision window closes; with a
//! latency model, by each backend's forecast cost instead of its averages.
//!
//! # The rule (always runs)
//!
//! Each `Metrics` message from a backend of some route updates that backend's EWMAs. At
//! each tick every route in scope is evaluated by `fallback::route_weights`; weights are
//! proposed (in thousandths, summing to exactly 1) when they differ enough from the last
//! proposal, at the tick's time. When no backend of a route can serve, nothing is proposed
//! and the current weights stay (see `fallback::Outcome::NoneServing`). Routes are
//! visited in name order, so proposals are deterministic.
//!
//! Confidence is 1.0: the weights follow from the averages (or the forecasts) by a fixed
//! formula, not an estimate the agent could be unsure of.
//!
//! # The latency model (when the policy names a `model`)
//!
//! The catalog loads the model once per policy; every incarnation of the agent shares it.
//! The model (`agents/models/router-latency.onnx`, card next to it) gives, per backend,
//! its **cost** over the next 60 s: the expected latency of a request sent to it, a failed
//! request counted as 5 s.
//!
//! - **Features.** The same metrics feed each backend's `RouterFeatures` (15 s buckets of
//!   its own figures; the definition the model was trained on,
//!   `conclave_runtime::models::router_features`).
//! - **One batch per tick.** The rows of every backend of every route in scope that
//!   reported within `stale_after` go to the model in **one** `infer` call.
//! - **Weights from forecasts** (`predict.mode: act`, the default). The rule's formula runs
//!   with a cost in place of `p99 / (1 - errors)` of the EWMAs:
//!   `score = 1 / (cost × (1 + load / mean load))`, the same floor and rounding, the rule's
//!   availability (silent, no replicas, error EWMA above `unhealthy_error_rate`). The cost
//!   is, with `predict.combine: max` (the default), the larger of the forecast and the
//!   cost of the backend's EWMAs: the model moves traffic away from a backend ahead of the
//!   averages, never back to it sooner (as the scaler never scales in and the breaker
//!   never closes on a model alone); with `combine: replace`, the forecast alone. Why:
//!   a backend the router stops sending traffic to is idle, and an idle backend's next
//!   minute looks fast to any forecast; trusting that sends the route's traffic back to
//!   it before the averages agree, and the router herds (in simulation, every request of
//!   a route sent to one backend after another). The proposal names the `model`; its
//!   rationale has each backend's EWMAs, its `forecast_cost_ms` and the weight the rule
//!   alone would have given (`rule_weight`; the whole rule proposal is the proposal's
//!   `rule`), so the gap between the two is in every decision.
//! - **`predict.mode: report`**: the forecasts are computed and recorded
//!   (`forecast_cost_ms` per backend) but the weights are exactly the rule's.
//! - **Forecast vs what happened** (both modes): each forecast is checked once its 60 s
//!   have closed, against the backend's mean cost over them, next to the rule's EWMA
//!   cost; proposals carry `forecast_checked`, `forecast_mae_log2` and `ewma_mae_log2`
//!   over the route's backends (in `act` mode the weights change what follows, so read
//!   them in `report` mode).
//! - **Drift, faults.** PSI of the features against the model's reference statistics
//!   (`drift.*`; the levels, `silent_s` and `warm` left out: `router_features::
//!   DRIFT_EXCLUDED` says why), `on_drift: rules` switches the model off until the agent
//!   restarts. A route whose backends' forecast failed is weighted by the
//!   rule alone and its proposal records `fallback: <reason>` (`model_unavailable` — with
//!   the load error as `model_error` on the instance's first proposal —
//!   `inference_error`, `timeout`, `non_finite_output`, `out_of_range`, `circuit_open`,
//!   `drift`). The model's circuit breaker runs on decision time.

mod config;
mod fallback;
mod features;
mod predicted;
#[cfg(test)]
mod predicted_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use conclave_runtime::metrics::ModelStats;
use conclave_runtime::models::router_features::cost;
use conclave_runtime::telemetry::{Telemetry, TelemetryKind};
use conclave_runtime::{
    Action, Agent, Confidence, Draft, Factor, ModelId, Proposals, Target, Timestamp,
};

pub use config::{
    Combine, PredictConfig, PredictMode, RawPredict, RawRoute, RawRouterSettings, RouterConfig,
};
pub use predicted::{Accuracy, Forecast, Forecaster, SIGNATURE};

use crate::learned::{noted, Fault, LearnedModel};
use crate::scope::Scope;
use fallback::{Outcome, Rules};
use features::BackendWindow;

/// The router's catalog name.
pub const NAME: &str = "router";

/// Without `stale_after`, a backend is silent after this many decision windows without
/// metrics: one late report is normal, three in a row means it is gone.
const DEFAULT_STALE_WINDOWS: u32 = 3;

/// The router: EWMAs per backend, the last weights proposed per route, and with a model
/// its forecaster.
#[derive(Debug)]
pub struct RouterAgent {
    config: RouterConfig,
    scope: Scope,
    stale_after: Duration,
    backends: BTreeSet<String>,
    windows: BTreeMap<String, BackendWindow>,
    last: BTreeMap<Target, BTreeMap<String, f64>>,
    forecaster: Option<Forecaster>,
    /// Whether this instance already recorded the model's load error.
    load_error_recorded: bool,
}

impl RouterAgent {
    /// A router for the routes in `config` that `scope` gives it, on its rule alone.
    pub fn new(config: RouterConfig, scope: Scope) -> Self {
        let stale_after = config
            .stale_after()
            .unwrap_or_else(|| scope.policy().arbiter().window() * DEFAULT_STALE_WINDOWS);
        let backends = config.routes().values().flatten().cloned().collect();
        RouterAgent {
            config,
            scope,
            stale_after,
            backends,
            windows: BTreeMap::new(),
            last: BTreeMap::new(),
            forecaster: None,
            load_error_recorded: false,
        }
    }

    /// A learned router: the rule plus `model`'s forecasts (see the module docs).
    pub fn with_model(config: RouterConfig, scope: Scope, model: LearnedModel) -> Self {
        let mut agent = RouterAgent::new(config, scope);
        agent.forecaster = Some(Forecaster::new(
            model,
            agent.config.drift(),
            agent.stale_after,
        ));
        agent
    }

    /// Forecasts for every backend of the routes in scope, in one batch.
    fn forecast(&mut self, now: Timestamp) -> Option<BTreeMap<String, Forecast>> {
        let forecaster = self.forecaster.as_mut()?;
        let backends: BTreeSet<&str> = self
            .config
            .routes()
            .iter()
            .filter(|(route, _)| self.scope.includes(route))
            .flat_map(|(_, backends)| backends.iter().map(String::as_str))
            .collect();
        let rows: Vec<(&str, Option<f64>)> = backends
            .into_iter()
            .map(|b| {
                let ewma = self
                    .windows
                    .get(b)
                    .map(|w| cost(w.error_rate(), w.latency_p99_ms()));
                (b, ewma)
            })
            .collect();
        Some(forecaster.forecast(now, &rows))
    }
}

/// How one route is weighted at a tick.
struct Weighing {
    outcome: Outcome,
    model: Option<ModelId>,
    fault: Option<Fault>,
    /// The rule's weights, when the model weighed (`None` when the rule would propose
    /// none: warming up, or no backend serving).
    rule: Option<BTreeMap<String, f64>>,
}

/// Thousandths to weights.
fn shares(units: &BTreeMap<String, u32>) -> BTreeMap<String, f64> {
    units
        .iter()
        .map(|(b, u)| (b.clone(), f64::from(*u) / 1000.0))
        .collect()
}

/// What the learned half needs at a tick, shared by every route.
struct LearnedTick<'a> {
    forecasts: &'a BTreeMap<String, Forecast>,
    forecaster: &'a Forecaster,
    predict: PredictConfig,
    drift: Option<&'a Factor>,
}

impl LearnedTick<'_> {
    /// Weighs one route: the rule's `rule` outcome stands when a backend's forecast
    /// failed (recording why) or in report mode; otherwise the forecasts weigh.
    fn weigh(
        &self,
        backends: &BTreeSet<String>,
        windows: &BTreeMap<String, BackendWindow>,
        now: Timestamp,
        rules: &Rules,
        rule: Outcome,
    ) -> Weighing {
        let fault = backends.iter().find_map(|b| match self.forecasts.get(b) {
            Some(Forecast::Fault(f)) => Some(*f),
            _ => None,
        });
        if let Some(fault) = fault {
            let mut outcome = rule;
            if let Outcome::Weights { factors, .. } = &mut outcome {
                factors.extend(self.drift.cloned());
            }
            return Weighing {
                outcome,
                model: None,
                fault: Some(fault),
                rule: None,
            };
        }
        let forecasts: BTreeMap<&str, f64> = backends
            .iter()
            .filter_map(|b| match self.forecasts.get(b) {
                Some(Forecast::Cost(c)) => Some((b.as_str(), *c)),
                _ => None,
            })
            .collect();
        let model = self
            .forecaster
            .model_id()
            .map(|m| format!("{} {}", m.name, m.version))
            .unwrap_or_default();
        let combine = self.predict.combine();
        let mut costs = BTreeMap::new();
        let mut forecast_factors = Vec::new();
        for (b, f) in &forecasts {
            let ewma = windows
                .get(*b)
                .map_or(0.0, |w| cost(w.error_rate(), w.latency_p99_ms()));
            let (used, note) = match (self.predict.mode(), combine) {
                (PredictMode::Report, _) => (
                    *f,
                    format!("by {model}; predict.mode report: recorded, the rule decides"),
                ),
                (PredictMode::Act, Combine::Replace) => {
                    (*f, format!("by {model}; weighs (combine replace)"))
                }
                (PredictMode::Act, Combine::Max) if *f >= ewma => (
                    *f,
                    format!("by {model}; above the EWMA cost {ewma:.1} ms: weighs (combine max)"),
                ),
                (PredictMode::Act, Combine::Max) => (
                    ewma,
                    format!(
                        "by {model}; below the EWMA cost {ewma:.1} ms, which weighs (combine max)"
                    ),
                ),
            };
            costs.insert((*b).to_string(), used);
            forecast_factors.push(noted(&format!("{b}.forecast_cost_ms"), *f, &note));
        }
        let mut accuracy = predicted::Accuracy::default();
        for b in backends {
            accuracy.add(&self.forecaster.accuracy(b));
        }
        let rule_weights = match &rule {
            Outcome::Weights { units, .. } => Some(shares(units)),
            Outcome::WarmingUp | Outcome::NoneServing => None,
        };
        let (mut outcome, model_id) = match self.predict.mode() {
            PredictMode::Report => (rule, None),
            PredictMode::Act => {
                // What the rule alone would have proposed, so every decision shows the gap.
                if let Outcome::Weights { units, .. } = &rule {
                    for (b, u) in units {
                        forecast_factors.push(noted(
                            &format!("{b}.rule_weight"),
                            f64::from(*u) / 1000.0,
                            "the weight the rule alone gives",
                        ));
                    }
                }
                let outcome =
                    fallback::route_weights_forecast(backends, windows, now, rules, &costs);
                (outcome, self.forecaster.model_id().cloned())
            }
        };
        if let Outcome::Weights { factors, .. } = &mut outcome {
            factors.append(&mut forecast_factors);
            factors.extend(accuracy.factors());
            factors.extend(self.drift.cloned());
        }
        Weighing {
            rule: model_id.as_ref().and(rule_weights),
            outcome,
            model: model_id,
            fault: None,
        }
    }
}

impl Agent for RouterAgent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn models(&self) -> Vec<Arc<ModelStats>> {
        self.forecaster
            .as_ref()
            .and_then(Forecaster::stats)
            .into_iter()
            .collect()
    }

    fn wants(&self, kind: TelemetryKind) -> bool {
        kind == TelemetryKind::Metrics
    }

    fn observe(&mut self, telemetry: &Telemetry, _out: &mut Proposals) {
        let Telemetry::Metrics(m) = telemetry else {
            return;
        };
        if !self.backends.contains(&m.service) {
            return;
        }
        match self.windows.get_mut(&m.service) {
            Some(w) => w.update(m, self.config.alpha()),
            None => {
                self.windows
                    .insert(m.service.clone(), BackendWindow::new(m));
            }
        }
        if let Some(f) = self.forecaster.as_mut() {
            f.observe(m);
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        let rules = Rules {
            floor: self.config.floor(),
            unhealthy_error_rate: self.config.unhealthy_error_rate(),
            stale_after: self.stale_after,
        };
        let forecasts = self.forecast(now);
        let drift = self.forecaster.as_ref().and_then(Forecaster::drift_factor);
        let inference = self.forecaster.as_ref().and_then(Forecaster::inference);
        let load_error = self.forecaster.as_ref().and_then(Forecaster::load_error);
        let learned = match (&forecasts, &self.forecaster) {
            (Some(forecasts), Some(forecaster)) => Some(LearnedTick {
                forecasts,
                forecaster,
                predict: self.config.predict(),
                drift: drift.as_ref(),
            }),
            _ => None,
        };
        for (route, backends) in self.config.routes() {
            if !self.scope.includes(route) {
                continue;
            }
            let rule = fallback::route_weights(backends, &self.windows, now, &rules);
            let weighing = match &learned {
                Some(l) => l.weigh(backends, &self.windows, now, &rules, rule),
                None => Weighing {
                    outcome: rule,
                    model: None,
                    fault: None,
                    rule: None,
                },
            };
            let Outcome::Weights { units, mut factors } = weighing.outcome else {
                continue;
            };
            let weights = shares(&units);
            if !fallback::warrants_change(self.last.get(route), &weights, self.config.min_change())
            {
                continue;
            }
            if let (Some(error), Some(Fault::Model(_))) = (load_error, weighing.fault) {
                if !self.load_error_recorded {
                    self.load_error_recorded = true;
                    factors.push(noted("model_error", 1.0, error));
                }
            }
            // What the rule alone would have proposed, for the model-vs-rule gap: its
            // weights, or the route's current ones (as last proposed) when it has none.
            let rule_action = weighing.model.as_ref().and_then(|_| {
                weighing
                    .rule
                    .or_else(|| self.last.get(route).cloned())
                    .map(|weights| Action::Route { weights })
            });
            self.last.insert(route.clone(), weights.clone());
            out.propose(Draft {
                at: now,
                target: route.clone(),
                action: Action::Route { weights },
                confidence: Confidence::ONE,
                rationale: factors,
                model: weighing.model,
                fallback: weighing.fault.map(|f| f.as_str().to_string()),
                inference: learned.as_ref().and(inference.clone()),
                rule: rule_action,
            });
        }
    }
}
