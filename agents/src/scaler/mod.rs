//! The scaler agent: the Kubernetes Horizontal Pod Autoscaler's algorithm (with
//! `behavior`) over Conclave telemetry, proposing `Scale` actions when a decision window
//! closes; with a forecast model, also predictive (AWS-style predictive scaling).
//!
//! # The rule (always runs)
//!
//! Each `Metrics` message for a target in scope updates that target's window (latest
//! reading, observed replica changes, cold-start hold). At each tick every target with
//! fresh metrics is evaluated by `fallback::recommend` (the *reactive* answer); a proposal
//! is made only when the result differs from the replicas currently running, at most one
//! per target per tick, at the tick's time. Targets are visited in name order, so
//! proposals are deterministic.
//!
//! Two departures from HPA, both because the scaler proposes rather than scales: scale
//! events for the rate limits are the replica changes seen in telemetry (a proposal may be
//! rejected or enacted late), and after a scale-up is seen, a further scale-up is held for
//! `cold_start` unless the metric is worse than just before that scale-up (new replicas
//! serve nothing yet, so the metric still shows the load the scale-up answered).
//!
//! # The forecast (when the policy names a `model`)
//!
//! The catalog loads the model once per policy (`LearnedModel::load` with [`SIGNATURE`]); every incarnation
//! of the agent shares it. The model (`agents/models/scaler-forecast.onnx`, card next to
//! it) predicts the p90 of a target's arrival rate [`HORIZON_MIN`] = 10 minutes ahead, as
//! a ratio to the current level `D`.
//!
//! - **Features.** `rate_in` of every metrics message feeds the target's
//!   `ScalerFeatures` (1-minute means, the definition the model was trained on).
//! - **One batch per tick.** The rows of all fresh targets that have a feature vector go
//!   to the model in **one** `infer` call. Forecast rate = output × `D`.
//! - **Replicas ahead of time.** HPA's formula on the forecast: predicted metric value =
//!   current value × forecast rate / current `rate_in` (for `metric: rate_in`, the
//!   forecast itself; with a current rate of 0 the forecast gives no answer), predicted
//!   replicas = HPA's count for that value (tolerance included; for utilization metrics
//!   `ceil(current × predicted / target)`), clamped to the bounds. A forecast scale-up is
//!   capped by the same scale-up rate limits as the rule, and held like the rule's
//!   while a cold-start hold runs (the metric does not yet show the new replicas, so the
//!   prediction would count their load twice). Stabilization does not apply to it: the
//!   forecast changes once a minute and is already an upper quantile.
//! - **Lead time.** The horizon is the lead time: replicas asked for now must be serving
//!   before the forecast minute, so the service's cold start (`cold_start`) must be
//!   shorter than 10 minutes, or the forecast arrives too late to help.
//! - **Combining** (`forecast::combine`), with `R` the reactive answer, `F` the forecast
//!   answer and `C` the current count:
//!   - `R >= C` (the rule holds or scales up): result = `max(R, F)`;
//!   - `R < C` (the rule scales in): result = `min(C, max(R, F))` — if `F >= C` the
//!     scale-in is held at `C`; if `R < F < C` the scale-in stops at `F`; if `F <= R` the
//!     rule's scale-in stands.
//!
//!   So the result is never below `R`, and below `C` only when `R` is: the forecast
//!   **never scales in on its own**. When the current count is outside the policy's
//!   bounds, the rule's correction stands and the forecast is not used.
//! - **`forecast.mode: report`** (forecast-only): the forecast is made and recorded
//!   (`forecast_rate`, `forecast_<metric>`, `forecast_replicas`) but only the rule
//!   decides: the proposals are exactly the rule's, with those factors added.
//! - **Forecast vs actual** (both modes): per target, the forecast made for minute
//!   `t + 10` is kept; when that minute's mean rate closes, the error is counted.
//!   Proposals carry `forecast_checked`, `forecast_mae` (req/s) and
//!   `forecast_p90_exceeded_share` (about 0.1 for a calibrated p90) over all checked
//!   forecasts since the agent started.
//! - **Drift.** Each target's feature row, once per new minute, feeds a PSI monitor
//!   against the model's reference statistics (`drift.threshold`, `drift.window`,
//!   `drift.min_rows`), on the rate-shape features only (`forecast::DRIFT_EXCLUDED` says
//!   why the calendar and seasonal-history ones are left out). While drifted, proposals
//!   carry `drift_psi_max`; with `drift.on_drift: rules` the model is switched off
//!   (fallback `drift`) until the agent restarts (a human clearing it without a restart
//!   comes with the operator API).
//! - **Faults.** Proposals carry `model` (name and version from the model's metadata)
//!   when the forecast took part in the decision, and `fallback` when a model is
//!   configured but the rule decided alone because of a fault: `model_unavailable` (the
//!   model or ONNX Runtime could not be loaded; the agent still runs, the first proposal
//!   of each instance carries the load error as `model_error`), `inference_error`,
//!   `timeout`, `non_finite_output`, `out_of_range`, `circuit_open` (a failed batch
//!   applies to every target in it), or `drift`. The model's circuit breaker (open after
//!   3 failed calls in a row, probe after 30 s) runs on decision time: the catalog gives
//!   the host a clock that each tick sets to its `now`, so a replay opens and probes the
//!   circuit at the same ticks. With the policy's `fallback: hold` the
//!   agent proposes nothing for a target whose forecast failed (in `act` mode; in
//!   `report` mode the rule acts anyway and the fallback is only recorded). Targets
//!   without a complete minute of `rate_in` yet get the rule's answer with neither.

mod config;
mod fallback;
mod features;
mod forecast;
#[cfg(test)]
mod predictive_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_runtime::models::scaler_features::HORIZON_MIN;
use conclave_runtime::policy::FallbackMode;
use conclave_runtime::telemetry::{Telemetry, TelemetryKind};
use conclave_runtime::{factor, Timestamp};
use conclave_runtime::{Action, Agent, Confidence, Draft, Factor, ModelId, Proposals, Target};

pub use config::{
    ForecastMode, Metric, PolicyKind, RawBehavior, RawForecast, RawScalerSettings,
    RawScalingPolicy, RawScalingRules, ScalerConfig, ScalingPolicy, ScalingRules, SelectPolicy,
};
pub use forecast::{DRIFT_EXCLUDED, SIGNATURE};

// Settings durations, shared with the router until `settings.rs` offers them.

use crate::learned::{noted, Fault, LearnedModel};
use crate::scope::Scope;
use fallback::{Bounds, Recommendation};
use features::{Reading, TargetWindow};
use forecast::{combine, forecast_replicas, Combined, Forecasted, Predictor, TargetOutcome};

/// The scaler's catalog name.
pub const NAME: &str = "scaler";

/// Without `stale_after`, a target is stale after this many decision windows without
/// metrics: one late report is normal, three in a row means the reporter is gone and its
/// last figures no longer describe the service.
const DEFAULT_STALE_WINDOWS: u32 = 3;

/// The scaler: one `TargetWindow` per target in scope, the HPA rule, and (with a model)
/// the forecast.
#[derive(Debug)]
pub struct ScalerAgent {
    config: ScalerConfig,
    scope: Scope,
    stale_after: Duration,
    targets: BTreeMap<Target, TargetWindow>,
    predictor: Option<Predictor>,
    /// The policy's `fallback: hold`: no proposal for a target whose forecast failed.
    hold_on_fault: bool,
    /// Whether this instance already recorded the model's load error.
    load_error_recorded: bool,
}

impl ScalerAgent {
    /// A scaler acting on the targets `scope` gives it, on its rule alone.
    pub fn new(config: ScalerConfig, scope: Scope) -> Self {
        let stale_after = config
            .stale_after()
            .unwrap_or_else(|| scope.policy().arbiter().window() * DEFAULT_STALE_WINDOWS);
        ScalerAgent {
            config,
            scope,
            stale_after,
            targets: BTreeMap::new(),
            predictor: None,
            hold_on_fault: false,
            load_error_recorded: false,
        }
    }

    /// A predictive scaler: the rule plus `model`'s forecast (see the module docs). The
    /// policy's `fallback` for the scaler decides what a model fault does.
    pub fn with_model(config: ScalerConfig, scope: Scope, model: LearnedModel) -> Self {
        let hold_on_fault = scope
            .policy()
            .agent(NAME)
            .is_some_and(|a| a.fallback() == FallbackMode::Hold);
        let predictor = Predictor::new(model, &config);
        let mut agent = ScalerAgent::new(config, scope);
        agent.predictor = Some(predictor);
        agent.hold_on_fault = hold_on_fault;
        agent
    }
}

/// The newest reading of `window`, unless it is older than `stale_after` at `now`.
fn fresh(window: &TargetWindow, now: Timestamp, stale_after: Duration) -> Option<Reading> {
    window
        .latest()
        .filter(|reading| now.since(reading.ts) <= stale_after)
}

/// What the agent decided for one target.
struct Decision {
    replicas: u32,
    confidence: Confidence,
    factors: Vec<Factor>,
    model: Option<ModelId>,
    fault: Option<Fault>,
}

impl Decision {
    fn rule(rec: Recommendation) -> Self {
        Decision {
            replicas: rec.replicas,
            confidence: rec.confidence,
            factors: rec.factors,
            model: None,
            fault: None,
        }
    }
}

/// The tick's inputs for one target, for [`with_forecast`].
struct Inputs<'a> {
    config: &'a ScalerConfig,
    window: &'a TargetWindow,
    reading: Reading,
    now: Timestamp,
    bounds: Bounds,
}

/// Combines the rule's answer `rec` with the target's forecast `outcome` (module docs).
fn with_forecast(
    inputs: &Inputs<'_>,
    rec: Recommendation,
    outcome: &TargetOutcome,
    model_id: Option<&ModelId>,
) -> Decision {
    let Inputs {
        config,
        window,
        reading,
        now,
        bounds,
    } = *inputs;
    let mut decision = Decision::rule(rec);
    let rate = match outcome.forecasted {
        Forecasted::Warming => return decision,
        Forecasted::Fault(fault) => {
            decision.fault = Some(fault);
            return decision;
        }
        Forecasted::Rate(rate) => rate,
    };
    // The forecast is for HORIZON_MIN (10) minutes ahead: that is the lead time. Replicas
    // asked for now must be serving by then, so the service's cold start must be shorter
    // than the horizon, or scaling ahead comes too late.
    let current = reading.replicas;
    let report = config.forecast_mode() == ForecastMode::Report;
    let factors = &mut decision.factors;
    if let Some(r) = outcome.current_rate {
        factors.push(factor("current_rate", r));
    }
    let model_name = model_id
        .map(|m| format!("{} {}", m.name, m.version))
        .unwrap_or_default();
    let answer = forecast_replicas(
        config,
        reading.value,
        current,
        outcome.current_rate,
        rate,
        bounds,
    );
    factors.push(noted(
        "forecast_rate",
        rate,
        &format!(
            "p90 of rate_in {HORIZON_MIN} min ahead ({model_name}){}{}",
            if report {
                "; forecast.mode report: the rule decides"
            } else {
                ""
            },
            if answer.is_none() {
                "; no replica answer: current rate_in is 0"
            } else {
                ""
            }
        ),
    ));
    let Some(answer) = answer else {
        return decision;
    };
    factors.push(noted(
        &format!("forecast_{}", config.metric().as_str()),
        answer.predicted,
        "the metric predicted at the forecast rate",
    ));

    // A forecast scale-up obeys the rule's cold-start hold and scale-up rate limits.
    let mut wanted = answer.replicas;
    let mut capped: Option<&str> = None;
    if wanted > current {
        let held = window
            .cold_start_at(now)
            .is_some_and(|hold| reading.value <= hold.reference);
        if held {
            wanted = current;
            capped = Some("held: new replicas still starting");
        } else {
            let (limited, limit) =
                fallback::limit_rate(wanted, current, bounds, window, config, now);
            if let Some(limit) = limit {
                wanted = limited;
                capped = Some(limit.as_str());
            }
        }
    }
    let outside_bounds = current > bounds.max || current < bounds.min;
    let how = if report {
        "forecast.mode report: recorded, not acted on"
    } else if outside_bounds {
        "not used: current replicas outside the policy's bounds, the rule corrects them"
    } else {
        let (replicas, how) = combine(current, decision.replicas, wanted);
        if how == Combined::ForecastUp {
            decision.confidence = fallback::confidence(answer.ratio, config.tolerance());
        }
        decision.replicas = replicas;
        decision.model = model_id.cloned();
        match how {
            Combined::Reactive => "reactive answer stands (forecast asks no more)",
            Combined::ForecastUp => "forecast above the reactive answer: scale ahead",
            Combined::HeldScaleIn => "reactive scale-in held at current: forecast needs as many",
            Combined::SofterScaleIn => "reactive scale-in stopped at the forecast's count",
        }
    };
    let note = match capped {
        Some(cap) => format!("{how}; forecast capped ({cap})"),
        None => how.to_string(),
    };
    decision
        .factors
        .push(noted("forecast_replicas", f64::from(wanted), &note));
    decision
}

impl Agent for ScalerAgent {
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
        let Telemetry::Metrics(m) = telemetry else {
            return;
        };
        if !self.scope.includes_name(&m.service) {
            return;
        }
        let reading = Reading {
            ts: m.ts,
            replicas: m.replicas,
            value: self.config.metric().value(m),
        };
        let cold_start = self.config.cold_start();
        // Look up by name first: a new `Target` (an allocation) only for a new target.
        match self.targets.get_mut(m.service.as_str()) {
            Some(w) => w.record(reading, cold_start),
            None => self
                .targets
                .entry(Target::new(m.service.as_str()))
                .or_default()
                .record(reading, cold_start),
        }
        if let Some(p) = self.predictor.as_mut() {
            p.observe(&m.service, m.ts, m.rate_in);
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        let keep_events = self
            .config
            .scale_up()
            .longest_period()
            .max(self.config.scale_down().longest_period());
        let stale_after = self.stale_after;
        for window in self.targets.values_mut() {
            window.forget_events(now, keep_events);
        }
        // The forecast for every fresh target, in one batch, in the order of the loop
        // below (same map, same filter).
        let mut outcomes = self.predictor.as_mut().map(|p| {
            let live: Vec<&Target> = self
                .targets
                .iter()
                .filter(|(_, w)| fresh(w, now, stale_after).is_some())
                .map(|(t, _)| t)
                .collect();
            p.forecast(now, &live).into_iter()
        });
        let drift = self.predictor.as_ref().and_then(Predictor::drift_factor);
        let model_id = self.predictor.as_ref().and_then(Predictor::model_id);
        let load_error = self.predictor.as_ref().and_then(Predictor::load_error);
        let inference = self.predictor.as_ref().and_then(Predictor::inference);
        for (target, window) in &mut self.targets {
            let Some(reading) = fresh(window, now, stale_after) else {
                continue;
            };
            let limits = self.scope.policy().limits_for(target);
            let bounds = Bounds {
                min: limits.min_replicas(),
                max: limits.max_replicas(),
            };
            let rec = fallback::recommend(&self.config, window, reading, now, bounds);
            let rule_replicas = rec.replicas;
            let outcome = outcomes.as_mut().and_then(Iterator::next);
            let mut decision = match &outcome {
                Some(outcome) => {
                    let inputs = Inputs {
                        config: &self.config,
                        window,
                        reading,
                        now,
                        bounds,
                    };
                    let mut d = with_forecast(&inputs, rec, outcome, model_id);
                    d.factors.extend(outcome.accuracy.factors());
                    d.factors.extend(drift.iter().cloned());
                    d
                }
                None => Decision::rule(rec),
            };
            if decision.replicas == reading.replicas {
                continue;
            }
            if decision.fault.is_some()
                && self.hold_on_fault
                && self.config.forecast_mode() == ForecastMode::Act
            {
                continue;
            }
            if let (Some(error), Some(Fault::Model(_))) = (load_error, decision.fault) {
                if !self.load_error_recorded {
                    self.load_error_recorded = true;
                    decision.factors.push(noted("model_error", 1.0, error));
                }
            }
            let rule = decision.model.is_some().then_some(Action::Scale {
                replicas: rule_replicas,
            });
            out.propose(Draft {
                at: now,
                target: target.clone(),
                action: Action::Scale {
                    replicas: decision.replicas,
                },
                confidence: decision.confidence,
                rationale: decision.factors,
                model: decision.model,
                fallback: decision.fault.map(|f| f.as_str().to_string()),
                inference: outcome.as_ref().and(inference.clone()),
                rule,
            });
        }
    }
}
