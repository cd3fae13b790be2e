//! What every learned agent shares: loading its model (once per policy, shared by every
//! incarnation of the agent), checking it computes what the agent's features feed,
//! batched inference with the runtime's guards, drift, and the record of each call that
//! the decision's trace shows.
//!
//! An agent builds its feature rows, hands them to [`Learned::infer`] once per tick and
//! reads back one output per row, or the [`Fault`] that makes its rule decide alone. The
//! agent-specific parts (features, what an output means, tallies of prediction against
//! outcome) stay with the agent.

pub mod drift;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use conclave_runtime::metrics::ModelStats;
use conclave_runtime::models::{
    AgentFaults, Fallback, HostOptions, LoadError, ModelHost, OrtEnvironment,
};
use conclave_runtime::policy::ModelRef;
use conclave_runtime::{Factor, Inference, ModelId, SimClock, Timestamp};

pub use drift::{DriftSettings, OnDrift, RawDrift};

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

    /// Whether the fault concerns every target (no model, or the model switched off), not
    /// only the rows of a failed call.
    pub fn is_standing(self) -> bool {
        matches!(
            self,
            Fault::Drift | Fault::Model(Fallback::ModelUnavailable)
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an agent's model must look like.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// The agent, in errors: `breaker`.
    pub agent: &'static str,
    /// What the model is, in errors: `breaker risk`, `scaler forecast`.
    pub kind: &'static str,
    /// The agent's feature names, in row order. A model whose metadata names other
    /// features (or another order) is refused.
    pub feature_names: &'static [&'static str],
    /// Values per row in the model's first output.
    pub outputs_per_row: usize,
}

impl Signature {
    fn check(&self, host: &ModelHost) -> Result<(), String> {
        let n = self.feature_names.len();
        if host.row_len() != n {
            return Err(format!(
                "it takes rows of {} values, the {} computes {n} features",
                host.row_len(),
                self.agent
            ));
        }
        let names = host.metadata().feature_names();
        if !names.is_empty()
            && names
                .iter()
                .map(String::as_str)
                .ne(self.feature_names.iter().copied())
        {
            return Err(format!(
                "its feature_names {names:?} are not the {}'s {:?}",
                self.agent, self.feature_names
            ));
        }
        let per_row: i64 = host
            .outputs()
            .first()
            .map(|o| o.shape.iter().skip(1).product())
            .unwrap_or(0);
        if usize::try_from(per_row).ok() != Some(self.outputs_per_row) {
            return Err(format!(
                "its first output must hold {} value(s) per row, the policy declares {:?}",
                self.outputs_per_row,
                host.outputs().first().map(|o| &o.shape)
            ));
        }
        Ok(())
    }
}

/// A loaded model and the clock its circuit breaker runs on.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    host: Arc<ModelHost>,
    /// The circuit breaker's clock: set to each tick's `now` before inference, so its
    /// cool-off is measured in decision time (event time under replay) and a replay opens
    /// and probes the circuit at the same ticks.
    clock: SimClock,
    id: ModelId,
}

/// An agent's model as the catalog loaded it.
#[derive(Debug, Clone)]
pub enum LearnedModel {
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

impl LearnedModel {
    /// Loads the policy's model through the process's ONNX Runtime environment and checks
    /// it against `signature`. Never fails: a problem gives [`LearnedModel::Unavailable`]
    /// (a runtime fault, not a policy error).
    pub fn load(model: &ModelRef, signature: &Signature) -> Self {
        Self::load_with_faults(model, signature, None)
    }

    /// [`load`](Self::load), with faults a simulation injects into the model's calls.
    pub fn load_with_faults(
        model: &ModelRef,
        signature: &Signature,
        faults: Option<AgentFaults>,
    ) -> Self {
        let clock = SimClock::new(Timestamp::from_millis(0));
        let host = OrtEnvironment::global()
            .map_err(LoadError::from)
            .and_then(|env| {
                ModelHost::load(env, model, HostOptions::default(), Arc::new(clock.clone()))
            })
            .map(|host| match faults {
                Some(f) => host.with_faults(f),
                None => host,
            })
            .map_err(|e| e.to_string());
        match host {
            Ok(host) => Self::from_host(Arc::new(host), clock, model.version(), signature),
            Err(error) => LearnedModel::Unavailable {
                error: error.into(),
            },
        }
    }

    /// Wraps an already loaded host whose circuit breaker runs on `clock`.
    pub fn from_host(
        host: Arc<ModelHost>,
        clock: SimClock,
        pinned: Option<&str>,
        signature: &Signature,
    ) -> Self {
        if let Err(problem) = signature.check(&host) {
            return LearnedModel::Unavailable {
                error: format!(
                    "model `{}` is not a {} model: {problem}",
                    host.path().display(),
                    signature.kind
                )
                .into(),
            };
        }
        let meta = host.metadata();
        let name = meta.name().map(str::to_string).unwrap_or_else(|| {
            host.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| signature.kind.replace(' ', "-"))
        });
        let version = meta
            .version()
            .or(pinned)
            .unwrap_or("unversioned")
            .to_string();
        LearnedModel::Loaded(LoadedModel {
            host,
            clock,
            id: ModelId { name, version },
        })
    }

    /// The load error, when the model is unavailable.
    pub fn error(&self) -> Option<&str> {
        match self {
            LearnedModel::Loaded(_) => None,
            LearnedModel::Unavailable { error } => Some(error),
        }
    }

    /// The model's id, when it is loaded.
    pub fn id(&self) -> Option<&ModelId> {
        match self {
            LearnedModel::Loaded(m) => Some(&m.id),
            LearnedModel::Unavailable { .. } => None,
        }
    }

    /// The loaded host.
    pub fn host(&self) -> Option<&Arc<ModelHost>> {
        match self {
            LearnedModel::Loaded(m) => Some(&m.host),
            LearnedModel::Unavailable { .. } => None,
        }
    }
}

/// An agent instance's model state: the shared model, and the instance's own drift
/// monitor, drift stop and batch buffer (they start over when the agent restarts).
#[derive(Debug)]
pub struct Learned {
    model: LearnedModel,
    feature_names: &'static [&'static str],
    outputs_per_row: usize,
    drift: Option<drift::Drift>,
    /// Set when drift switched the model off (`on_drift: rules`), until the agent restarts.
    stopped: Option<Fault>,
    stop_on_drift: bool,
    batch: Vec<f32>,
    /// When the current tick's feature work began, on the host's timer.
    features_started: Option<Duration>,
    last: Option<Arc<Inference>>,
}

impl Learned {
    /// The state for `model` under `drift` settings; features named in `drift_excluded`
    /// are not watched for drift.
    pub fn new(
        model: LearnedModel,
        signature: &Signature,
        drift: DriftSettings,
        drift_excluded: &[&str],
    ) -> Self {
        let monitor = model
            .host()
            .and_then(|h| drift::Drift::new(h, signature.feature_names, drift_excluded, drift));
        Learned {
            model,
            feature_names: signature.feature_names,
            outputs_per_row: signature.outputs_per_row,
            drift: monitor,
            stopped: None,
            stop_on_drift: drift.on_drift() == OnDrift::Rules,
            batch: Vec::new(),
            features_started: None,
            last: None,
        }
    }

    /// The model's id, when it is loaded.
    pub fn model_id(&self) -> Option<&ModelId> {
        self.model.id()
    }

    /// The model's load error, when it is unavailable.
    pub fn load_error(&self) -> Option<&str> {
        self.model.error()
    }

    /// The model's figures, when it is loaded (for the runtime's metrics).
    pub fn stats(&self) -> Option<Arc<ModelStats>> {
        self.model.host().map(|h| h.stats().clone())
    }

    /// Marks the start of a tick's feature work, so the trace can say how long building
    /// the batch took. Optional: without it the feature time is zero.
    pub fn begin_features(&mut self) {
        self.features_started = self.model.host().map(|h| h.timer().monotonic());
    }

    /// Feeds one new feature row to the drift monitor (each row once: a row is one
    /// target's features for one new bucket, however many ticks the bucket has).
    pub fn observe_drift(&mut self, row: &[f32]) {
        if let Some(d) = self.drift.as_mut() {
            d.observe(row);
        }
    }

    /// Clears the batch; add rows with [`push_row`](Self::push_row), then call
    /// [`infer`](Self::infer).
    pub fn start_batch(&mut self) {
        self.batch.clear();
    }

    /// Adds one row (the agent's features, in [`Signature::feature_names`] order).
    pub fn push_row(&mut self, row: &[f32]) {
        self.batch.extend_from_slice(row);
    }

    /// Publishes drift, applies a drift stop, and calls the model **once** on the batch
    /// of `rows` rows at `now`. Returns one output value per row per
    /// [`Signature::outputs_per_row`], or the fault that makes the rule decide for every
    /// row. Afterwards [`inference`](Self::inference) describes the call.
    pub fn infer(&mut self, now: Timestamp, rows: usize) -> Result<Vec<f32>, Fault> {
        if self.drift.as_mut().is_some_and(drift::Drift::refresh) {
            self.publish_drift();
        }
        if self.stop_on_drift && self.stopped.is_none() && self.drifted() {
            self.stopped = Some(Fault::Drift);
        }
        let (result, latency) = match (&self.model, self.stopped) {
            (LearnedModel::Unavailable { .. }, _) => {
                (Err(Fault::Model(Fallback::ModelUnavailable)), None)
            }
            (_, Some(fault)) => (Err(fault), None),
            (LearnedModel::Loaded(_), None) if rows == 0 => (Ok(Vec::new()), None),
            (LearnedModel::Loaded(m), None) => {
                m.clock.set(now);
                let (out, took) = m.host.infer_timed(&self.batch, rows);
                let out = match out {
                    // The signature check made the output this wide.
                    Ok(out) if out.len() == rows * self.outputs_per_row => Ok(out),
                    Ok(_) => Err(Fault::Model(Fallback::InferenceError)),
                    Err(e) => Err(Fault::Model(e.fallback())),
                };
                (out, took)
            }
        };
        self.record(rows, latency, result.as_ref().err().copied());
        result
    }

    fn record(&mut self, rows: usize, latency: Option<Duration>, fault: Option<Fault>) {
        let feature_time = match (self.features_started.take(), self.model.host()) {
            (Some(start), Some(h)) => h.timer().monotonic().saturating_sub(start),
            _ => Duration::ZERO,
        };
        self.last = self.model_id().map(|id| {
            Arc::new(Inference {
                model: id.clone(),
                rows,
                features: self.feature_names.len(),
                feature_time: feature_time.saturating_sub(latency.unwrap_or_default()),
                latency,
                fallback: fault.map(|f| f.as_str().to_string()),
            })
        });
    }

    /// The last call, for the drafts it produced (`None` without a loaded model: there
    /// was no model to call).
    pub fn inference(&self) -> Option<Arc<Inference>> {
        self.last.clone()
    }

    /// Whether drift switched the model off.
    pub fn stopped(&self) -> Option<Fault> {
        self.stopped
    }

    fn drifted(&self) -> bool {
        self.drift
            .as_ref()
            .and_then(drift::Drift::report)
            .is_some_and(|r| r.drifted)
    }

    /// Hands the drift report's PSI per feature to the model's metrics, once the window
    /// holds the rows drift is judged on (PSI over a handful of rows is noise).
    fn publish_drift(&self) {
        let (Some(host), Some(drift)) = (self.model.host(), &self.drift) else {
            return;
        };
        let Some(report) = drift.report() else {
            return;
        };
        if report.rows < drift.monitor.config().min_rows {
            return;
        }
        host.stats()
            .set_drift(report.features.iter().map(|f| (f.name.as_str(), f.psi)));
    }

    /// `drift_psi_max` while the features drifted (the largest PSI, naming its feature).
    pub fn drift_factor(&self) -> Option<Factor> {
        let drift = self.drift.as_ref()?;
        let report = drift.report()?;
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
