//! The router's learned half: the latency model (loaded once per policy, shared by every
//! incarnation of the agent), per-backend features, one batched inference per tick with
//! fallbacks, drift, and the tally of forecasts against the costs that followed. The
//! agent (`mod.rs`) wires it; the module docs there say what it does as a whole.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use conclave_runtime::metrics::ModelStats;
use conclave_runtime::models::router_features::{
    RouterFeatures, BUCKET_SECONDS, DRIFT_EXCLUDED, FEATURE_NAMES, HORIZON_SECONDS,
};
use conclave_runtime::models::Fallback;
use conclave_runtime::telemetry::ServiceMetrics;
use conclave_runtime::{Factor, Inference, ModelId, Timestamp};

use crate::learned::{noted, DriftSettings, Fault, Learned, LearnedModel, Signature};

/// Buckets in the model's horizon: a forecast at bucket `k` is for `k + 1 ..= k + 4`.
const HORIZON_BUCKETS: i64 = HORIZON_SECONDS / BUCKET_SECONDS;

/// What a router latency model must look like: the router's 23 features in order, one
/// forecast cost (ms) per row.
pub const SIGNATURE: Signature = Signature {
    agent: "router",
    kind: "router latency",
    feature_names: &FEATURE_NAMES,
    outputs_per_row: 1,
};

/// What the model said about one backend at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forecast {
    /// Nothing: no sample yet, or none within the staleness bound (the rule gives such a
    /// backend no traffic either).
    Warming,
    /// The forecast cost over the next 60 s, ms.
    Cost(f64),
    /// The rule decides alone, for this reason.
    Fault(Fault),
}

/// Forecasts against what followed, since the agent started: each forecast (one per
/// backend per bucket) is checked once the 60 s it forecast have closed, against the mean
/// cost of those buckets, next to the rule's implicit forecast (the cost of its EWMAs at
/// the same decision). Errors are in doublings (`|log2(forecast / actual)|`). In
/// `predict.mode: act` the weights change what follows, so read them in `report` mode.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accuracy {
    /// Forecasts checked.
    pub checked: u64,
    /// Sum of the model's absolute log2 errors.
    pub model_abs_log2: f64,
    /// Sum of the rule's (EWMA cost) absolute log2 errors.
    pub ewma_abs_log2: f64,
}

impl Accuracy {
    /// Adds `other`'s checks.
    pub fn add(&mut self, other: &Accuracy) {
        self.checked += other.checked;
        self.model_abs_log2 += other.model_abs_log2;
        self.ewma_abs_log2 += other.ewma_abs_log2;
    }

    /// The rationale factors `forecast_checked`, `forecast_mae_log2` and
    /// `ewma_mae_log2`, once something was checked.
    pub fn factors(&self) -> Vec<Factor> {
        if self.checked == 0 {
            return Vec::new();
        }
        let n = self.checked as f64;
        vec![
            noted(
                "forecast_checked",
                n,
                "forecasts of the route's backends whose 60 s have passed",
            ),
            noted(
                "forecast_mae_log2",
                self.model_abs_log2 / n,
                "mean |log2(forecast cost / actual)|: 1.0 is off by a factor of 2",
            ),
            noted(
                "ewma_mae_log2",
                self.ewma_abs_log2 / n,
                "the same for the rule's EWMA cost at the same decisions",
            ),
        ]
    }
}

/// A forecast waiting for its 60 s to pass.
#[derive(Debug, Clone, Copy)]
struct Pending {
    k: i64,
    forecast_ms: f64,
    ewma_ms: f64,
}

/// One backend's learned state.
#[derive(Debug, Default)]
struct BackendState {
    features: RouterFeatures,
    /// Stamp of the newest sample.
    last_seen: Option<Timestamp>,
    /// Bucket of the last feature row given to the drift monitor.
    drift_fed: Option<i64>,
    pending: VecDeque<Pending>,
    accuracy: Accuracy,
}

impl BackendState {
    /// Checks the forecasts whose horizon has closed.
    fn settle(&mut self) {
        let Some(last) = self.features.series().last_index() else {
            return;
        };
        while let Some(p) = self.pending.front().copied() {
            if p.k + HORIZON_BUCKETS > last {
                break;
            }
            self.pending.pop_front();
            let Some(actual) = self
                .features
                .series()
                .mean_cost(p.k + 1, p.k + HORIZON_BUCKETS)
            else {
                continue;
            };
            self.accuracy.checked += 1;
            self.accuracy.model_abs_log2 += (p.forecast_ms / actual).log2().abs();
            self.accuracy.ewma_abs_log2 += (p.ewma_ms / actual).log2().abs();
        }
    }
}

/// An agent instance's learned state. The model is shared; everything else (features,
/// tallies, drift) belongs to the instance and starts over when the agent restarts.
#[derive(Debug)]
pub struct Forecaster {
    learned: Learned,
    stale_after: Duration,
    backends: BTreeMap<String, BackendState>,
}

impl Forecaster {
    /// A forecaster for `model` under `drift` settings; a backend whose newest sample is
    /// older than `stale_after` gets no forecast.
    pub fn new(model: LearnedModel, drift: DriftSettings, stale_after: Duration) -> Self {
        Forecaster {
            learned: Learned::new(model, &SIGNATURE, drift, &DRIFT_EXCLUDED),
            stale_after,
            backends: BTreeMap::new(),
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

    /// The model's figures, when it is loaded (for the runtime's metrics).
    pub fn stats(&self) -> Option<Arc<ModelStats>> {
        self.learned.stats()
    }

    /// `drift_psi_max` while the features drifted (the largest PSI, naming its feature).
    pub fn drift_factor(&self) -> Option<Factor> {
        self.learned.drift_factor()
    }

    /// Forecasts against what followed, for `backend`.
    pub fn accuracy(&self, backend: &str) -> Accuracy {
        self.backends
            .get(backend)
            .map(|b| b.accuracy)
            .unwrap_or_default()
    }

    /// Takes a backend's metrics sample.
    pub fn observe(&mut self, m: &ServiceMetrics) {
        if !self.backends.contains_key(&m.service) {
            self.backends
                .insert(m.service.clone(), BackendState::default());
        }
        let Some(b) = self.backends.get_mut(&m.service) else {
            return;
        };
        b.features.observe(m);
        if b.last_seen.is_none_or(|t| m.ts > t) {
            b.last_seen = Some(m.ts);
        }
    }

    /// Forecasts `backends` (name, and the cost of the rule's EWMAs for the tally) at
    /// `now`: closes their buckets, checks earlier forecasts, feeds new rows to the drift
    /// monitor, and calls the model **once** for every fresh backend. A failed call fails
    /// every row with its reason; without a model (or with it switched off by drift) every
    /// backend gets that fault.
    pub fn forecast(
        &mut self,
        now: Timestamp,
        backends: &[(&str, Option<f64>)],
    ) -> BTreeMap<String, Forecast> {
        self.learned.begin_features();
        self.learned.start_batch();
        let mut rows: Vec<(&str, Option<i64>)> = Vec::with_capacity(backends.len());
        for (name, _) in backends {
            let Some(b) = self.backends.get_mut(*name) else {
                rows.push((name, None));
                continue;
            };
            let v = b.features.at(now);
            b.settle();
            if let Some(v) = &v {
                if b.drift_fed.is_none_or(|fed| v.k > fed) {
                    b.drift_fed = Some(v.k);
                    self.learned.observe_drift(&v.features);
                }
            }
            let fresh = b
                .last_seen
                .is_some_and(|t| now.since(t) <= self.stale_after);
            match v.filter(|_| fresh) {
                Some(v) => {
                    self.learned.push_row(&v.features);
                    rows.push((name, Some(v.k)));
                }
                None => rows.push((name, None)),
            }
        }
        let n = rows.iter().filter(|(_, k)| k.is_some()).count();
        let result = self.learned.infer(now, n);

        let mut outputs = result.as_ref().ok().map(|o| o.iter());
        let mut out = BTreeMap::new();
        for ((name, k), (_, ewma)) in rows.into_iter().zip(backends) {
            let forecast = match (&result, k) {
                (Err(f), _) if f.is_standing() => Forecast::Fault(*f),
                (_, None) => Forecast::Warming,
                (Err(f), Some(_)) => Forecast::Fault(*f),
                (Ok(_), Some(k)) => match outputs.as_mut().and_then(Iterator::next) {
                    Some(cost) => {
                        let cost = f64::from(*cost);
                        if let (Some(b), Some(ewma)) = (self.backends.get_mut(name), ewma) {
                            if b.pending.back().is_none_or(|p| p.k < k) {
                                b.pending.push_back(Pending {
                                    k,
                                    forecast_ms: cost,
                                    ewma_ms: *ewma,
                                });
                            }
                        }
                        Forecast::Cost(cost)
                    }
                    None => Forecast::Fault(Fault::Model(Fallback::InferenceError)),
                },
            };
            out.insert(name.to_string(), forecast);
        }
        out
    }
}
