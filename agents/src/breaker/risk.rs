//! The breaker's learned half: the risk model (loaded once per policy, shared by every
//! incarnation of the agent), per-service features, batched inference with fallbacks,
//! drift, and the tally of predicted risk against the trips that followed. The agent
//! (`mod.rs`) wires it; the module docs there say what it does as a whole.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use conclave_runtime::models::breaker_features::{
    BreakerFeatures, BreakerVector, BUCKET_SECONDS, FEATURE_NAMES, HORIZON_SECONDS, N_FEATURES,
};
use conclave_runtime::models::{
    DriftConfig as MonitorConfig, DriftMonitor, Fallback, FeatureStats, HostOptions, LoadError,
    ModelHost, OrtEnvironment,
};
use conclave_runtime::policy::ModelRef;
use conclave_runtime::telemetry::{Dependency, ServiceMetrics};
use conclave_runtime::{Factor, ModelId, SimClock, Timestamp};

use super::config::DriftSettings;
use crate::scaler::{Fault, OnDrift};

/// Buckets in the model's horizon: an alarm at bucket `k` is borne out by a trip at
/// `k + 1 ..= k + HORIZON_BUCKETS`.
const HORIZON_BUCKETS: i64 = HORIZON_SECONDS / BUCKET_SECONDS;

/// A loaded risk model and the clock its circuit breaker runs on.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    host: Arc<ModelHost>,
    /// The circuit breaker's clock: set to each tick's `now` before inference, so a replay
    /// opens and probes the model's circuit at the same ticks.
    clock: SimClock,
    id: ModelId,
}

/// The breaker's model as the catalog loaded it: once per policy, shared (behind `Arc`s)
/// by every incarnation of the agent.
#[derive(Debug, Clone)]
pub enum BreakerModel {
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

impl BreakerModel {
    /// Loads the policy's model through the process's ONNX Runtime environment and checks
    /// that it takes the breaker's 21 features and gives one value per row. Never fails:
    /// a problem gives [`BreakerModel::Unavailable`] (a runtime fault, not a policy error).
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
            Err(error) => BreakerModel::Unavailable {
                error: error.into(),
            },
        }
    }

    fn from_host(host: Arc<ModelHost>, clock: SimClock, pinned: Option<&str>) -> Self {
        if let Err(problem) = check_breaker_model(&host) {
            return BreakerModel::Unavailable {
                error: format!(
                    "model `{}` is not a breaker risk model: {problem}",
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
                .unwrap_or_else(|| "breaker-risk".to_string())
        });
        let version = meta
            .version()
            .or(pinned)
            .unwrap_or("unversioned")
            .to_string();
        BreakerModel::Loaded(LoadedModel {
            host,
            clock,
            id: ModelId { name, version },
        })
    }

    /// The load error, when the model is unavailable.
    pub fn error(&self) -> Option<&str> {
        match self {
            BreakerModel::Loaded(_) => None,
            BreakerModel::Unavailable { error } => Some(error),
        }
    }
}

fn check_breaker_model(host: &ModelHost) -> Result<(), String> {
    if host.row_len() != N_FEATURES {
        return Err(format!(
            "it takes rows of {} values, the breaker computes {N_FEATURES} features",
            host.row_len()
        ));
    }
    let names = host.metadata().feature_names();
    if !names.is_empty() && names.iter().map(String::as_str).ne(FEATURE_NAMES) {
        return Err(format!(
            "its feature_names {names:?} are not the breaker's {FEATURE_NAMES:?}"
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

/// Predicted risk against what happened, for one service, since the agent started. An
/// *alarm* is a tick whose risk reached `open_at` while the trip condition did not hold;
/// it is *borne out* when the condition begins within the next 60 s. Meaningful in
/// `risk.mode: report`: in `act` mode an alarm opens the breaker, which changes what
/// follows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Alarms whose 60 s have passed, or that a trip bore out.
    pub alarms_checked: u64,
    /// Of those, borne out by a trip.
    pub alarms_borne_out: u64,
    /// Times the trip condition began.
    pub trips: u64,
    /// Of those, with an alarm in the 60 s before.
    pub trips_warned: u64,
    /// Sum over warned trips of the first alarm's lead, seconds.
    pub lead_s_sum: f64,
}

impl Tally {
    /// The rationale factors: `risk_alarms_checked`, `risk_alarm_precision`,
    /// `risk_trips_seen`, `risk_trips_warned_share`, `risk_lead_s_mean` (each once it has
    /// something to say).
    pub fn factors(&self) -> Vec<Factor> {
        let mut out = Vec::new();
        if self.alarms_checked > 0 {
            out.push(noted(
                "risk_alarms_checked",
                self.alarms_checked as f64,
                "alarms (risk >= open_at) whose 60 s have passed",
            ));
            out.push(noted(
                "risk_alarm_precision",
                self.alarms_borne_out as f64 / self.alarms_checked as f64,
                "share of checked alarms followed by a trip within 60 s",
            ));
        }
        if self.trips > 0 {
            out.push(noted(
                "risk_trips_seen",
                self.trips as f64,
                "times the trip condition (failure rate >= 50 % over a minute) began",
            ));
            out.push(noted(
                "risk_trips_warned_share",
                self.trips_warned as f64 / self.trips as f64,
                "share of trips with an alarm in the 60 s before",
            ));
        }
        if self.trips_warned > 0 {
            out.push(noted(
                "risk_lead_s_mean",
                self.lead_s_sum / self.trips_warned as f64,
                "mean seconds from the first alarm to the trip it warned of",
            ));
        }
        out
    }
}

/// One service's learned state.
#[derive(Debug, Default)]
struct ServiceRisk {
    features: BreakerFeatures,
    /// Time of the newest own sample.
    last_own: Option<Timestamp>,
    /// Bucket of the last feature row given to the drift monitor.
    drift_fed: Option<i64>,
    /// Buckets of alarms not yet checked.
    alarms: VecDeque<i64>,
    was_tripped: bool,
    tally: Tally,
}

impl ServiceRisk {
    /// Bucket `k` closed with the trip condition `tripped`: checks pending alarms.
    fn settle(&mut self, k: i64, tripped: bool) {
        if tripped && !self.was_tripped {
            self.tally.trips += 1;
            let first = self
                .alarms
                .iter()
                .copied()
                .filter(|a| (k - HORIZON_BUCKETS..k).contains(a))
                .min();
            if let Some(first) = first {
                self.tally.trips_warned += 1;
                self.tally.lead_s_sum += ((k - first) * BUCKET_SECONDS) as f64;
            }
            let borne_out = self
                .alarms
                .iter()
                .filter(|a| **a >= k - HORIZON_BUCKETS)
                .count();
            self.tally.alarms_checked += borne_out as u64;
            self.tally.alarms_borne_out += borne_out as u64;
            self.alarms.retain(|a| *a < k - HORIZON_BUCKETS);
        }
        while self
            .alarms
            .front()
            .is_some_and(|a| *a + HORIZON_BUCKETS < k)
        {
            self.alarms.pop_front();
            self.tally.alarms_checked += 1;
        }
        self.was_tripped = tripped;
    }

    fn alarm(&mut self, k: i64) {
        if self.alarms.back() != Some(&k) {
            self.alarms.push_back(k);
        }
    }
}

/// PSI of the breaker's features against the model's reference statistics.
#[derive(Debug, Clone)]
struct Drift {
    monitor: DriftMonitor,
    columns: Vec<usize>,
    row: Vec<f32>,
}

/// Features left out of drift: `warm` is 0 at a fresh start and 1 after 30 minutes, so
/// every new deployment would read as drift.
pub const DRIFT_EXCLUDED: [&str; 1] = ["warm"];

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
        let config = MonitorConfig {
            window: settings.window,
            threshold: settings.threshold,
            min_rows: settings.min_rows,
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

/// What the model said about one service at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Assessed {
    /// Nothing: no own sample yet, or none within the staleness bound.
    Warming,
    /// The probability of the trip condition within 60 s.
    Risk(f64),
    /// The rule decides alone, for this reason.
    Fault(Fault),
}

/// One service's assessment at a tick, with what the rationale needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The risk, or why there is none.
    pub assessed: Assessed,
    /// Predicted risk against what happened so far.
    pub tally: Tally,
}

/// An agent instance's learned state. The model is shared; everything else (features,
/// tallies, drift) belongs to the instance and starts over when the agent restarts.
#[derive(Debug)]
pub struct Predictor {
    model: BreakerModel,
    drift: Option<Drift>,
    /// Set when drift switched the model off (`on_drift: rules`), until the agent restarts.
    stopped: Option<Fault>,
    stop_on_drift: bool,
    stale_after: Duration,
    services: BTreeMap<String, ServiceRisk>,
    batch: Vec<f32>,
}

impl Predictor {
    /// A predictor for `model` under `drift` settings; a service whose newest own sample
    /// is older than `stale_after` gets no risk.
    pub fn new(model: BreakerModel, drift: DriftSettings, stale_after: Duration) -> Self {
        let monitor = match &model {
            BreakerModel::Loaded(m) => Drift::new(&m.host, drift),
            BreakerModel::Unavailable { .. } => None,
        };
        Predictor {
            model,
            drift: monitor,
            stopped: None,
            stop_on_drift: drift.on_drift == OnDrift::Rules,
            stale_after,
            services: BTreeMap::new(),
            batch: Vec::new(),
        }
    }

    /// The model's id, when it is loaded.
    pub fn model_id(&self) -> Option<&ModelId> {
        match &self.model {
            BreakerModel::Loaded(m) => Some(&m.id),
            BreakerModel::Unavailable { .. } => None,
        }
    }

    /// The model's load error, when it is unavailable.
    pub fn load_error(&self) -> Option<&str> {
        self.model.error()
    }

    fn service(&mut self, name: &str) -> &mut ServiceRisk {
        if !self.services.contains_key(name) {
            self.services
                .insert(name.to_string(), ServiceRisk::default());
        }
        self.services
            .get_mut(name)
            .expect("the service's state exists: inserted just above when missing")
    }

    /// Takes a protected service's own metrics sample.
    pub fn observe_own(&mut self, m: &ServiceMetrics) {
        let s = self.service(&m.service);
        s.features.observe_own(m);
        if s.last_own.is_none_or(|t| m.ts > t) {
            s.last_own = Some(m.ts);
        }
    }

    /// Takes what a caller saw of protected service `service` in its sample at `ts`.
    pub fn observe_caller(&mut self, service: &str, ts: Timestamp, dep: &Dependency) {
        self.service(service).features.observe_caller(ts, dep);
    }

    /// Assesses `services` (name, and whether its breaker is closed: only closed ones are
    /// given to the model) at `now`: closes their buckets, checks their pending alarms,
    /// feeds new rows to the drift monitor, and calls the model **once** for the closed,
    /// fresh ones. A failed call fails every row of the batch with its reason; without a
    /// model (or with it switched off by drift) every service gets that fault.
    pub fn assess(
        &mut self,
        now: Timestamp,
        services: &[(&str, bool)],
        open_at: f64,
    ) -> BTreeMap<String, Assessment> {
        let mut vectors: Vec<(&str, bool, Option<BreakerVector>)> = Vec::new();
        for (name, closed) in services {
            let Some(s) = self.services.get_mut(*name) else {
                vectors.push((name, *closed, None));
                continue;
            };
            let v = s.features.at(now);
            if let Some(v) = &v {
                s.settle(v.k, s.features.series().is_tripped());
                if let Some(drift) = self.drift.as_mut() {
                    if s.drift_fed.is_none_or(|fed| v.k > fed) {
                        s.drift_fed = Some(v.k);
                        drift.observe(&v.features);
                    }
                }
            }
            let fresh = s.last_own.is_some_and(|t| now.since(t) <= self.stale_after);
            vectors.push((name, *closed, v.filter(|_| fresh)));
        }
        self.publish_drift();
        if self.stop_on_drift && self.stopped.is_none() && self.drifted() {
            self.stopped = Some(Fault::Drift);
        }

        let rows = vectors.iter().filter(|(_, c, v)| *c && v.is_some()).count();
        let result: Result<Vec<f32>, Fault> = match (&self.model, self.stopped) {
            (BreakerModel::Unavailable { .. }, _) => Err(Fault::Model(Fallback::ModelUnavailable)),
            (_, Some(fault)) => Err(fault),
            (BreakerModel::Loaded(_), None) if rows == 0 => Ok(Vec::new()),
            (BreakerModel::Loaded(m), None) => {
                self.batch.clear();
                for (_, _, v) in vectors.iter().filter(|(_, c, _)| *c) {
                    if let Some(v) = v {
                        self.batch.extend_from_slice(&v.features);
                    }
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
        let mut out = BTreeMap::new();
        for (name, closed, v) in vectors {
            let assessed = match (&result, closed, &v) {
                // Without a model, or with it switched off, every service says so.
                (Err(f), _, _)
                    if matches!(f, Fault::Drift | Fault::Model(Fallback::ModelUnavailable)) =>
                {
                    Assessed::Fault(*f)
                }
                (_, false, _) | (_, true, None) => Assessed::Warming,
                (Err(f), true, Some(_)) => Assessed::Fault(*f),
                (Ok(_), true, Some(v)) => match outputs.as_mut().and_then(Iterator::next) {
                    Some(risk) => {
                        let risk = f64::from(*risk);
                        if let Some(s) = self.services.get_mut(name) {
                            if risk >= open_at && !s.features.series().is_tripped() {
                                s.alarm(v.k);
                            }
                        }
                        Assessed::Risk(risk)
                    }
                    None => Assessed::Fault(Fault::Model(Fallback::InferenceError)),
                },
            };
            let tally = self.services.get(name).map(|s| s.tally).unwrap_or_default();
            out.insert(name.to_string(), Assessment { assessed, tally });
        }
        out
    }

    fn drifted(&self) -> bool {
        self.drift
            .as_ref()
            .is_some_and(|d| d.monitor.report().drifted)
    }

    /// The model's figures, when it is loaded (for the runtime's metrics).
    pub fn stats(&self) -> Option<Arc<conclave_runtime::metrics::ModelStats>> {
        match &self.model {
            BreakerModel::Loaded(m) => Some(m.host.stats().clone()),
            BreakerModel::Unavailable { .. } => None,
        }
    }

    /// Hands the drift monitor's PSI per feature to the model's metrics, once the window
    /// holds the rows drift is judged on (as the scaler does).
    fn publish_drift(&self) {
        let (BreakerModel::Loaded(m), Some(drift)) = (&self.model, &self.drift) else {
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
    fn alarms_are_checked_against_the_trips_that_follow() {
        let mut s = ServiceRisk::default();
        // An alarm at 10, a trip at 12: borne out, 30 s ahead.
        s.alarm(10);
        s.settle(11, false);
        s.settle(12, true);
        // An alarm while tripped is not made by the predictor; the trip ends at 14.
        s.settle(13, true);
        s.settle(14, false);
        // An alarm at 20 with no trip by 24: a false alarm once bucket 25 closes.
        s.alarm(20);
        s.alarm(20);
        s.settle(24, false);
        assert_eq!(s.tally.alarms_checked, 1);
        s.settle(25, false);
        // A trip at 30 with no alarm before it.
        s.settle(30, true);
        assert_eq!(
            s.tally,
            Tally {
                alarms_checked: 2,
                alarms_borne_out: 1,
                trips: 2,
                trips_warned: 1,
                lead_s_sum: 30.0,
            }
        );
        let names: Vec<String> = s.tally.factors().into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "risk_alarms_checked",
                "risk_alarm_precision",
                "risk_trips_seen",
                "risk_trips_warned_share",
                "risk_lead_s_mean"
            ]
        );
        assert!(Tally::default().factors().is_empty());
    }
}
