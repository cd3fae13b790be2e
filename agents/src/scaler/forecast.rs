//! The scaler's predictive half: the forecast model (loaded once, shared by every
//! incarnation of the agent), per-target features and forecast-vs-actual bookkeeping,
//! batched inference with fallbacks, drift, and the rule that combines the forecast with
//! the reactive answer. The agent (`mod.rs`) wires it; the module docs there say what it
//! does as a whole.

use std::collections::BTreeMap;
use std::sync::Arc;

use conclave_runtime::metrics::ModelStats;
use conclave_runtime::models::scaler_features::{FEATURE_NAMES, HORIZON_MIN, STEP_SECONDS};
use conclave_runtime::models::{Fallback, MinuteBuckets, ScalerFeatures, ScalerVector};
use conclave_runtime::{Factor, Inference, ModelId, Target, Timestamp};

use super::config::{Metric, ScalerConfig};
use super::fallback::{metric_recommendation, Bounds};
pub use crate::learned::noted;
use crate::learned::{Fault, Learned, LearnedModel, Signature};

/// What a scaler forecast model must look like: the scaler's 24 features in order, one
/// forecast per row.
pub const SIGNATURE: Signature = Signature {
    agent: "scaler",
    kind: "scaler forecast",
    feature_names: &FEATURE_NAMES,
    outputs_per_row: 1,
};

/// Forecasts checked against the actual rate of their minute, since the agent started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accuracy {
    /// Forecasts whose minute has arrived.
    pub checked: u64,
    /// Sum of |forecast - actual|, requests per second.
    pub abs_error_sum: f64,
    /// Checked forecasts the actual rate exceeded.
    pub exceeded: u64,
}

impl Accuracy {
    fn record(&mut self, forecast: f64, actual: f64) {
        self.checked += 1;
        self.abs_error_sum += (forecast - actual).abs();
        if actual > forecast {
            self.exceeded += 1;
        }
    }

    /// Mean absolute error, requests per second (`None` before the first check).
    pub fn mae(&self) -> Option<f64> {
        (self.checked > 0).then(|| self.abs_error_sum / self.checked as f64)
    }

    /// Share of checked p90 forecasts the actual rate exceeded (about 0.1 when the
    /// quantile is calibrated).
    pub fn exceeded_share(&self) -> Option<f64> {
        (self.checked > 0).then(|| self.exceeded as f64 / self.checked as f64)
    }

    /// The rationale factors: `forecast_checked`, `forecast_mae`,
    /// `forecast_p90_exceeded_share` (nothing before the first check).
    pub fn factors(&self) -> Vec<Factor> {
        let (Some(mae), Some(share)) = (self.mae(), self.exceeded_share()) else {
            return Vec::new();
        };
        vec![
            noted(
                "forecast_checked",
                self.checked as f64,
                "forecasts whose minute has arrived",
            ),
            noted(
                "forecast_mae",
                mae,
                "mean |forecast - actual| rate (req/s) over the checked forecasts",
            ),
            noted(
                "forecast_p90_exceeded_share",
                share,
                "share of checked p90 forecasts the actual rate exceeded (calibrated: 0.1)",
            ),
        ]
    }
}

/// One target's predictive state.
#[derive(Debug, Clone, Default)]
pub struct TargetForecast {
    features: ScalerFeatures,
    /// The same per-minute means as the features see, for checking forecasts.
    actuals: MinuteBuckets,
    /// `rate_in` of the newest reading, and its time.
    latest_rate: Option<(Timestamp, f64)>,
    /// Forecast rate by the minute (index since the epoch) it is for.
    pending: BTreeMap<i64, f64>,
    accuracy: Accuracy,
    /// `now_unix` of the last feature row given to the drift monitor.
    drift_fed: Option<i64>,
}

impl TargetForecast {
    /// Takes one `rate_in` sample. Samples older than the newest are ignored, as the
    /// rule's window does; a negative or non-finite rate is ignored.
    fn observe(&mut self, ts: Timestamp, rate: f64) {
        if self.latest_rate.is_some_and(|(latest, _)| ts < latest) {
            return;
        }
        if self.features.observe(ts, rate).is_err() {
            return;
        }
        self.latest_rate = Some((ts, rate));
        let Self {
            actuals,
            pending,
            accuracy,
            ..
        } = self;
        // Rates were checked by `features.observe`.
        let _ = actuals.observe(ts, rate, &mut |minute, r| {
            check(pending, accuracy, minute, r)
        });
    }

    /// Closes the minutes complete at `now` (checking forecasts made for them) and gives
    /// the feature vector at the last one.
    fn vector(&mut self, now: Timestamp) -> Option<ScalerVector> {
        let Self {
            actuals,
            pending,
            accuracy,
            ..
        } = self;
        actuals.close_through(now, &mut |minute, r| check(pending, accuracy, minute, r));
        self.features.at(now)
    }

    /// Keeps the forecast made from `v` for its minute, `HORIZON_MIN` after `v`'s last
    /// bucket (ticks within one minute see the same vector and make the same forecast;
    /// the first is kept).
    fn remember(&mut self, v: &ScalerVector, forecast_rate: f64) {
        let last_bucket = v.now_unix.div_euclid(STEP_SECONDS) - 1;
        self.pending
            .entry(last_bucket + HORIZON_MIN)
            .or_insert(forecast_rate);
    }

    /// Forecast vs actual so far.
    pub fn accuracy(&self) -> Accuracy {
        self.accuracy
    }
}

/// Minute `minute` closed with mean rate `actual`: checks the forecast made for it and
/// drops forecasts for earlier minutes (skipped by a gap longer than two weeks).
fn check(pending: &mut BTreeMap<i64, f64>, accuracy: &mut Accuracy, minute: i64, actual: f64) {
    while let Some(entry) = pending.first_entry() {
        if *entry.key() > minute {
            break;
        }
        let (at, forecast) = entry.remove_entry();
        if at == minute {
            accuracy.record(forecast, actual);
        }
    }
}

/// Features left out of drift: over a rolling window of live rows their distribution
/// differs from the training mix by construction, not because the service changed. The
/// clock features cover only the part of the day and week the window spans; `has_day` /
/// `has_week` are 0 and the seasonal lags a constant 1.0 until a target has a day (a
/// week) of history, so every fresh deployment would read as drift.
pub const DRIFT_EXCLUDED: [&str; 10] = [
    "day_now",
    "day_ahead",
    "week_now",
    "week_ahead",
    "has_day",
    "has_week",
    "tod_sin",
    "tod_cos",
    "dow_sin",
    "dow_cos",
];

/// What the model said about one target at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forecasted {
    /// Nothing: no complete minute of `rate_in` yet.
    Warming,
    /// The p90 of the arrival rate `HORIZON_MIN` minutes ahead, requests per second.
    Rate(f64),
    /// The rule decides alone, for this reason.
    Fault(Fault),
}

/// One target's forecast outcome at a tick, with what the rationale needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOutcome {
    /// The forecast, or why there is none.
    pub forecasted: Forecasted,
    /// `rate_in` of the newest reading.
    pub current_rate: Option<f64>,
    /// Forecast vs actual so far.
    pub accuracy: Accuracy,
}

/// An agent instance's predictive state. The model is shared; everything else (features,
/// forecasts, drift) belongs to the instance and starts over when the agent restarts.
#[derive(Debug)]
pub struct Predictor {
    learned: Learned,
    targets: BTreeMap<Target, TargetForecast>,
}

impl Predictor {
    /// A predictor for `model` under `config`'s drift settings.
    pub fn new(model: LearnedModel, config: &ScalerConfig) -> Self {
        Predictor {
            learned: Learned::new(model, &SIGNATURE, config.drift(), &DRIFT_EXCLUDED),
            targets: BTreeMap::new(),
        }
    }

    /// The model's id, when it is loaded.
    pub fn model_id(&self) -> Option<&ModelId> {
        self.learned.model_id()
    }

    /// The model's load error, when it is unavailable.
    pub fn load_error(&self) -> Option<&str> {
        self.learned.load_error()
    }

    /// The last model call, for the trace of the proposals it informed.
    pub fn inference(&self) -> Option<Arc<Inference>> {
        self.learned.inference()
    }

    /// Takes `rate_in` from a metrics message of a target in scope.
    pub fn observe(&mut self, target: &str, ts: Timestamp, rate: f64) {
        match self.targets.get_mut(target) {
            Some(t) => t.observe(ts, rate),
            None => self
                .targets
                .entry(Target::new(target))
                .or_default()
                .observe(ts, rate),
        }
    }

    /// Forecasts for `live` (targets with fresh metrics, in name order): builds the
    /// feature rows of those that have a feature vector, feeds new rows to the drift
    /// monitor, and calls the model **once** for the batch. Outcomes are in `live`'s
    /// order. A failed call fails every row of the batch with its reason.
    pub fn forecast(&mut self, now: Timestamp, live: &[&Target]) -> Vec<TargetOutcome> {
        self.learned.begin_features();
        let mut vectors: Vec<Option<ScalerVector>> = Vec::with_capacity(live.len());
        for target in live {
            let Some(state) = self.targets.get_mut(*target) else {
                vectors.push(None);
                continue;
            };
            let v = state.vector(now);
            // Drift sees each minute's row once, however many ticks a minute has.
            if let Some(v) = &v {
                if state.drift_fed.is_none_or(|fed| v.now_unix > fed) {
                    state.drift_fed = Some(v.now_unix);
                    self.learned.observe_drift(&v.features);
                }
            }
            vectors.push(v);
        }
        self.learned.start_batch();
        for v in vectors.iter().flatten() {
            self.learned.push_row(&v.features);
        }
        let rows = vectors.iter().filter(|v| v.is_some()).count();
        let result = self.learned.infer(now, rows);

        let mut outputs = result.as_ref().ok().map(|o| o.iter());
        let mut outcomes = Vec::with_capacity(live.len());
        for (target, v) in live.iter().zip(&vectors) {
            let forecasted = match (&result, v) {
                // Without a model, or with the model switched off, every proposal says
                // so, features or not; a failed call concerns the rows it was given.
                (Err(f), _) if f.is_standing() => Forecasted::Fault(*f),
                (Err(f), Some(_)) => Forecasted::Fault(*f),
                (_, None) => Forecasted::Warming,
                (Ok(_), Some(v)) => match outputs.as_mut().and_then(Iterator::next) {
                    Some(out) => {
                        let rate = v.forecast_rate(*out);
                        if let Some(state) = self.targets.get_mut(*target) {
                            state.remember(v, rate);
                        }
                        Forecasted::Rate(rate)
                    }
                    None => Forecasted::Fault(Fault::Model(Fallback::InferenceError)),
                },
            };
            let state = self.targets.get(*target);
            outcomes.push(TargetOutcome {
                forecasted,
                current_rate: state.and_then(|s| s.latest_rate.map(|(_, r)| r)),
                accuracy: state.map(TargetForecast::accuracy).unwrap_or_default(),
            });
        }
        outcomes
    }

    /// The model's figures, when it is loaded (for the runtime's metrics).
    pub fn stats(&self) -> Option<Arc<ModelStats>> {
        self.learned.stats()
    }

    /// `drift_psi_max` while the features drifted (the largest PSI, naming its feature).
    pub fn drift_factor(&self) -> Option<Factor> {
        self.learned.drift_factor()
    }
}

/// What HPA's formula says at the forecast rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastAnswer {
    /// Replicas, clamped to the bounds.
    pub replicas: u32,
    /// The metric's predicted value.
    pub predicted: f64,
    /// Predicted usage ratio (as [`metric_recommendation`]'s).
    pub ratio: f64,
}

/// The replicas the forecast asks for, as HPA would at the forecast rate: the predicted
/// metric value is the current value × `forecast_rate / current_rate` (for `rate_in` the
/// forecast itself), the replica count HPA's formula on it (tolerance included), clamped
/// to the bounds. `None` when the current rate is zero (or unknown) for a metric that is
/// not the rate itself: the metric cannot be scaled by a ratio to nothing.
pub fn forecast_replicas(
    config: &ScalerConfig,
    value: f64,
    current: u32,
    current_rate: Option<f64>,
    forecast_rate: f64,
    bounds: Bounds,
) -> Option<ForecastAnswer> {
    let predicted = if config.metric() == Metric::RateIn {
        forecast_rate
    } else {
        let rate = current_rate.filter(|r| r.is_finite() && *r > 0.0)?;
        value * forecast_rate / rate
    };
    if !predicted.is_finite() {
        return None;
    }
    let m = metric_recommendation(
        config.metric(),
        predicted,
        config.target(),
        current,
        config.tolerance(),
    );
    Some(ForecastAnswer {
        replicas: m.replicas.clamp(bounds.min, bounds.max),
        predicted,
        ratio: m.ratio,
    })
}

/// How the forecast and the reactive answer were combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combined {
    /// The reactive answer stands (the forecast asked for no more).
    Reactive,
    /// The forecast raised the answer above the reactive one.
    ForecastUp,
    /// The reactive answer was a scale-in; the forecast held it at the current count.
    HeldScaleIn,
    /// The reactive answer was a scale-in; the forecast kept more replicas than it, but
    /// fewer than now.
    SofterScaleIn,
}

/// The combination rule (see the module docs of `scaler`):
///
/// - reactive `>=` current: `max(reactive, forecast)`;
/// - reactive `<` current: `min(current, max(reactive, forecast))`.
///
/// The result is never below the reactive answer, and below the current count only when
/// the reactive answer is: the forecast never scales in on its own.
pub fn combine(current: u32, reactive: u32, forecast: u32) -> (u32, Combined) {
    if reactive >= current {
        if forecast > reactive {
            (forecast, Combined::ForecastUp)
        } else {
            (reactive, Combined::Reactive)
        }
    } else if forecast >= current {
        (current, Combined::HeldScaleIn)
    } else if forecast > reactive {
        (forecast, Combined::SofterScaleIn)
    } else {
        (reactive, Combined::Reactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_never_scales_in_on_the_forecast_alone() {
        // (current, reactive, forecast) -> result
        let cases = [
            ((4, 4, 6), (6, Combined::ForecastUp)),
            ((4, 6, 5), (6, Combined::Reactive)),
            ((4, 6, 9), (9, Combined::ForecastUp)),
            ((4, 4, 2), (4, Combined::Reactive)),
            ((4, 5, 1), (5, Combined::Reactive)),
            ((8, 4, 8), (8, Combined::HeldScaleIn)),
            ((8, 4, 12), (8, Combined::HeldScaleIn)),
            ((8, 4, 6), (6, Combined::SofterScaleIn)),
            ((8, 4, 3), (4, Combined::Reactive)),
        ];
        for ((current, reactive, forecast), want) in cases {
            let got = combine(current, reactive, forecast);
            assert_eq!(
                got, want,
                "current {current}, reactive {reactive}, forecast {forecast}"
            );
            assert!(got.0 >= reactive);
            assert!(got.0 >= current || reactive < current);
        }
    }

    #[test]
    fn forecasts_are_checked_when_their_minute_closes() {
        let mut t = TargetForecast::default();
        let minute = |m: i64| Timestamp::from_millis(m * 60_000);
        t.pending.insert(5, 10.0);
        t.pending.insert(7, 10.0);
        t.pending.insert(9, 10.0);
        for m in 0..=6 {
            t.observe(minute(m), 12.0);
        }
        // Minutes 0..=5 closed: the forecast for 5 was exceeded by 2.
        assert_eq!(
            t.accuracy(),
            Accuracy {
                checked: 1,
                abs_error_sum: 2.0,
                exceeded: 1
            }
        );
        t.observe(minute(7), 9.0);
        assert!(t.vector(minute(8)).is_some());
        // Minute 6 (12) has no forecast; minute 7 (9) was forecast 10.
        let a = t.accuracy();
        assert_eq!((a.checked, a.exceeded), (2, 1));
        assert_eq!(a.mae(), Some(1.5));
        assert_eq!(a.exceeded_share(), Some(0.5));
        assert_eq!(t.pending.keys().copied().collect::<Vec<_>>(), vec![9]);
        let names: Vec<String> = a.factors().into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "forecast_checked",
                "forecast_mae",
                "forecast_p90_exceeded_share"
            ]
        );
    }
}
