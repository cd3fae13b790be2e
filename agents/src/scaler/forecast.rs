//! The scaler's predictive half: the forecast model (loaded once, shared by every
//! incarnation of the agent), per-target features and forecast-vs-actual bookkeeping,
//! batched inference with fallbacks, drift, and the rule that combines the forecast with
//! the reactive answer. The agent (`mod.rs`) wires it; the module docs there say what it
//! does as a whole.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use conclave_runtime::metrics::ModelStats;
use conclave_runtime::models::scaler_features::{FEATURE_NAMES, HORIZON_MIN, STEP_SECONDS};
use conclave_runtime::models::{
    DriftConfig, DriftMonitor, Fallback, FeatureStats, HostOptions, LoadError, MinuteBuckets,
    ModelHost, OrtEnvironment, ScalerFeatures, ScalerVector, N_FEATURES,
};
use conclave_runtime::policy::ModelRef;
use conclave_runtime::{Factor, ModelId, SimClock, Target, Timestamp};

use super::config::{DriftSettings, Metric, ScalerConfig};
use super::fallback::{metric_recommendation, Bounds};

/// Why the rule decided alone although a model is configured: a model fault (the host's
/// [`Fallback`] reasons) or drift with `on_drift: rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The host's reason: `inference_error`, `timeout`, `non_finite_output`,
    /// `out_of_range`, `model_unavailable`, `circuit_open`.
    Model(Fallback),
    /// The input features drifted from the model's reference statistics and the policy
    /// says `on_drift: rules`.
    Drift,
}

impl Fault {
    /// What the proposal records as `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Model(f) => f.as_str(),
            Fault::Drift => "drift",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A loaded forecast model and the clock its circuit breaker runs on.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    host: Arc<ModelHost>,
    /// The breaker's clock: set to each tick's `now` before inference, so the breaker's
    /// cool-off is measured in decision time (event time under replay) and a replay
    /// opens and probes the circuit at the same ticks.
    clock: SimClock,
    id: ModelId,
}

/// The scaler's model as the catalog loaded it: once per policy, shared (behind `Arc`s)
/// by every incarnation of the agent, so a restart does not reload it.
#[derive(Debug, Clone)]
pub enum ScalerModel {
    /// Ready for inference.
    Loaded(LoadedModel),
    /// The model (or ONNX Runtime) could not be loaded: the agent runs on its rule and
    /// records `fallback: model_unavailable`.
    Unavailable {
        /// The load error, as text (it names the file, or `agents/training/setup.sh` when
        /// ONNX Runtime is missing).
        error: Arc<str>,
    },
}

impl ScalerModel {
    /// Loads the policy's model through the process's ONNX Runtime environment and checks
    /// that it takes the scaler's 24 features and gives one value per row. Never fails:
    /// a problem gives [`ScalerModel::Unavailable`] (a runtime fault, not a policy error).
    pub fn load(model: &ModelRef) -> Self {
        let clock = SimClock::new(Timestamp::from_millis(0));
        let host = OrtEnvironment::global()
            .map_err(LoadError::from)
            .and_then(|env| {
                ModelHost::load(env, model, HostOptions::default(), Arc::new(clock.clone()))
            })
            .map_err(|e| e.to_string());
        match host {
            Ok(host) => Self::from_host(Arc::new(host), clock, model.version()),
            Err(error) => ScalerModel::Unavailable {
                error: error.into(),
            },
        }
    }

    /// Wraps a loaded host whose breaker runs on `clock`, after checking that it is a
    /// scaler forecast model (24 features in the scaler's order, one output per row).
    fn from_host(host: Arc<ModelHost>, clock: SimClock, pinned: Option<&str>) -> Self {
        if let Err(problem) = check_scaler_model(&host) {
            return ScalerModel::Unavailable {
                error: format!(
                    "model `{}` is not a scaler forecast model: {problem}",
                    host.path().display()
                )
                .into(),
            };
        }
        let meta = host.metadata();
        let name = meta.name().map(str::to_string).unwrap_or_else(|| {
            host.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scaler-forecast".to_string())
        });
        let version = meta
            .version()
            .or(pinned)
            .unwrap_or("unversioned")
            .to_string();
        ScalerModel::Loaded(LoadedModel {
            host,
            clock,
            id: ModelId { name, version },
        })
    }

    /// The load error, when the model is unavailable.
    pub fn error(&self) -> Option<&str> {
        match self {
            ScalerModel::Loaded(_) => None,
            ScalerModel::Unavailable { error } => Some(error),
        }
    }
}

fn check_scaler_model(host: &ModelHost) -> Result<(), String> {
    if host.row_len() != N_FEATURES {
        return Err(format!(
            "it takes rows of {} values, the scaler computes {N_FEATURES} features",
            host.row_len()
        ));
    }
    let names = host.metadata().feature_names();
    if !names.is_empty() && names.iter().map(String::as_str).ne(FEATURE_NAMES) {
        return Err(format!(
            "its feature_names {names:?} are not the scaler's {FEATURE_NAMES:?}"
        ));
    }
    let per_row: i64 = host
        .outputs()
        .first()
        .map(|o| o.shape.iter().skip(1).product())
        .unwrap_or(0);
    if per_row != 1 {
        return Err(format!(
            "its first output must hold one value per row, the policy declares {:?}",
            host.outputs().first().map(|o| &o.shape)
        ));
    }
    Ok(())
}

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

/// PSI of the rate-shape features (lags, averages, spread, peak) against the model's
/// reference statistics.
#[derive(Debug, Clone)]
struct Drift {
    monitor: DriftMonitor,
    /// Column of each monitored feature in the feature vector.
    columns: Vec<usize>,
    row: Vec<f32>,
}

impl Drift {
    /// `None` when the model carries no usable reference statistics.
    fn new(host: &ModelHost, settings: DriftSettings) -> Option<Self> {
        let meta = host.metadata();
        let names: Vec<&str> = if meta.feature_names().is_empty() {
            FEATURE_NAMES.to_vec()
        } else {
            meta.feature_names().iter().map(String::as_str).collect()
        };
        let mut columns = Vec::new();
        let mut reference: Vec<FeatureStats> = Vec::new();
        for stats in meta.reference_stats() {
            if DRIFT_EXCLUDED.contains(&stats.name.as_str()) {
                continue;
            }
            let column = names.iter().position(|n| *n == stats.name)?;
            columns.push(column);
            reference.push(stats.clone());
        }
        let config = DriftConfig {
            window: settings.window(),
            threshold: settings.threshold(),
            min_rows: settings.min_rows(),
        };
        let monitor = DriftMonitor::new(reference, config).ok()?;
        Some(Drift {
            row: Vec::with_capacity(columns.len()),
            monitor,
            columns,
        })
    }

    fn observe(&mut self, features: &[f32; N_FEATURES]) {
        self.row.clear();
        self.row.extend(
            self.columns
                .iter()
                .map(|c| features.get(*c).copied().unwrap_or(0.0)),
        );
        // Features are finite by construction and the width is the monitor's own.
        let _ = self.monitor.observe(&self.row);
    }
}

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
    model: ScalerModel,
    drift: Option<Drift>,
    /// Set when drift switched the model off (`on_drift: rules`). Only a restart clears
    /// it today; a human clearing it comes with the operator API.
    stopped: Option<Fault>,
    stop_on_drift: bool,
    targets: BTreeMap<Target, TargetForecast>,
    batch: Vec<f32>,
}

impl Predictor {
    /// A predictor for `model` under `config`'s drift settings.
    pub fn new(model: ScalerModel, config: &ScalerConfig) -> Self {
        let drift = match &model {
            ScalerModel::Loaded(m) => Drift::new(&m.host, config.drift()),
            ScalerModel::Unavailable { .. } => None,
        };
        Predictor {
            model,
            drift,
            stopped: None,
            stop_on_drift: config.drift().on_drift() == super::config::OnDrift::Rules,
            targets: BTreeMap::new(),
            batch: Vec::new(),
        }
    }

    /// The model's id, when it is loaded.
    pub fn model_id(&self) -> Option<&ModelId> {
        match &self.model {
            ScalerModel::Loaded(m) => Some(&m.id),
            ScalerModel::Unavailable { .. } => None,
        }
    }

    /// The model's load error, when it is unavailable.
    pub fn load_error(&self) -> Option<&str> {
        self.model.error()
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
        let mut vectors: Vec<Option<ScalerVector>> = Vec::with_capacity(live.len());
        let mut drift_fed = false;
        for target in live {
            let Some(state) = self.targets.get_mut(*target) else {
                vectors.push(None);
                continue;
            };
            let v = state.vector(now);
            // Drift sees each minute's row once, however many ticks a minute has.
            if let (Some(v), Some(drift)) = (&v, self.drift.as_mut()) {
                if state.drift_fed.is_none_or(|fed| v.now_unix > fed) {
                    state.drift_fed = Some(v.now_unix);
                    drift.observe(&v.features);
                    drift_fed = true;
                }
            }
            vectors.push(v);
        }
        if drift_fed {
            self.publish_drift();
        }
        if self.stop_on_drift && self.stopped.is_none() && self.drifted() {
            self.stopped = Some(Fault::Drift);
        }

        let rows = vectors.iter().filter(|v| v.is_some()).count();
        let result: Result<Vec<f32>, Fault> = match (&self.model, self.stopped) {
            (ScalerModel::Unavailable { .. }, _) => Err(Fault::Model(Fallback::ModelUnavailable)),
            (_, Some(fault)) => Err(fault),
            (ScalerModel::Loaded(_), None) if rows == 0 => Ok(Vec::new()),
            (ScalerModel::Loaded(m), None) => {
                self.batch.clear();
                for v in vectors.iter().flatten() {
                    self.batch.extend_from_slice(&v.features);
                }
                m.clock.set(now);
                match m.host.infer(&self.batch, rows) {
                    Ok(out) if out.len() == rows => Ok(out),
                    Ok(_) => Err(Fault::Model(Fallback::InferenceError)),
                    Err(e) => Err(Fault::Model(e.fallback())),
                }
            }
        };

        let mut outputs = result.as_ref().ok().map(|o| o.iter());
        let mut outcomes = Vec::with_capacity(live.len());
        for (target, v) in live.iter().zip(&vectors) {
            let forecasted = match (&result, v) {
                // Without a model, or with the model switched off, every proposal says
                // so, features or not; a failed call concerns the rows it was given.
                (Err(f), _)
                    if matches!(f, Fault::Drift | Fault::Model(Fallback::ModelUnavailable)) =>
                {
                    Forecasted::Fault(*f)
                }
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
        match &self.model {
            ScalerModel::Loaded(m) => Some(m.host.stats().clone()),
            ScalerModel::Unavailable { .. } => None,
        }
    }

    /// Hands the drift monitor's PSI per feature to the model's metrics, once the window
    /// holds the rows drift is judged on (PSI over a handful of rows is noise).
    fn publish_drift(&self) {
        let (ScalerModel::Loaded(m), Some(drift)) = (&self.model, &self.drift) else {
            return;
        };
        if drift.monitor.rows() < drift.monitor.config().min_rows {
            return;
        }
        let report = drift.monitor.report();
        m.host
            .stats()
            .set_drift(report.features.iter().map(|f| (f.name.as_str(), f.psi)));
    }

    fn drifted(&self) -> bool {
        self.drift
            .as_ref()
            .is_some_and(|d| d.monitor.report().drifted)
    }

    /// `drift_psi_max` while the features drifted (the largest PSI, naming its feature).
    pub fn drift_factor(&self) -> Option<Factor> {
        let drift = self.drift.as_ref()?;
        let report = drift.monitor.report();
        if !report.drifted {
            return None;
        }
        let worst = report.worst()?;
        Some(noted(
            "drift_psi_max",
            worst.psi,
            &format!(
                "`{}` drifted: PSI over {} rows above {}{}",
                worst.name,
                report.rows,
                drift.monitor.config().threshold,
                if self.stopped == Some(Fault::Drift) {
                    "; model switched off until the agent restarts (on_drift: rules)"
                } else {
                    "; recorded only (on_drift: record)"
                }
            ),
        ))
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

/// A factor with a note.
pub fn noted(name: &str, value: f64, note: &str) -> Factor {
    Factor {
        name: name.to_string(),
        value,
        note: Some(note.to_string()),
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
