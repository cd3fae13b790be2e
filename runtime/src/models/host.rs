//! [`ModelHost`]: one ONNX model, loaded through the process's [`OrtEnvironment`],
//! checked against the signature the policy's [`ModelRef`] declares, and run in
//! batches with guards.
//!
//! - **Load.** A missing, unreadable, corrupt or mismatched model is a [`LoadError`]
//!   (whose [`fallback`](LoadError::fallback) is [`Fallback::ModelUnavailable`]). The
//!   signature check compares names, element types and shapes (`-1` = dynamic) exactly,
//!   in any order, and names both signatures when they differ. `metadata_props` are
//!   read into [`ModelMetadata`]; a pinned `version` must match.
//! - **Inference.** [`ModelHost::infer`] takes `rows` rows of the (single, float32)
//!   input flattened row-major, and returns the first declared output flattened the same
//!   way. The session lives on a worker thread; the caller waits at most the model's
//!   `timeout`, then asks ONNX Runtime to terminate the run and abandons it.
//! - **Guards.** An ONNX Runtime error, the timeout, a NaN/inf output or an output outside
//!   the declared range (metadata `output_range`) fail the whole batch with an
//!   [`InferenceError`] whose [`fallback`](InferenceError::fallback) reason the agent
//!   records as `fallback: <reason>`.
//! - **Circuit breaker.** After `failure_threshold` consecutive failures the model is not
//!   called for `cool_off` (on the injected [`Clock`]); then one call probes it
//!   (half-open): success closes the circuit, failure opens it again.
//! - **Metrics.** Every call that reaches the model is timed (on the timer clock,
//!   [`RealClock`] unless [`ModelHost::with_timer`] says otherwise) into the host's
//!   [`ModelStats`]: two clock readings and two atomic additions per batch.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ort::session::{RunOptions, Session};
use ort::value::{Tensor, TensorElementType, ValueType};
use serde::Serialize;

use super::drift::FeatureStats;
use super::faults::AgentFaults;
use super::library::{LibraryError, OrtEnvironment};
use crate::clock::{Clock, RealClock, Timestamp};
use crate::metrics::ModelStats;
use crate::policy::{ModelRef, TensorSpec, TensorType};

/// Why an agent used its rule instead of the model for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// ONNX Runtime returned an error (or the input could not be given to it).
    InferenceError,
    /// The model did not answer within its timeout.
    Timeout,
    /// An output was NaN or infinite.
    NonFiniteOutput,
    /// An output was outside the model's declared range.
    OutOfRange,
    /// The model (or ONNX Runtime) could not be loaded.
    ModelUnavailable,
    /// The model's circuit breaker is open.
    CircuitOpen,
}

impl Fallback {
    /// Every reason, for counters.
    pub const ALL: [Fallback; 6] = [
        Fallback::InferenceError,
        Fallback::Timeout,
        Fallback::NonFiniteOutput,
        Fallback::OutOfRange,
        Fallback::ModelUnavailable,
        Fallback::CircuitOpen,
    ];

    /// The reason as recorded: `fallback: <this>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::InferenceError => "inference_error",
            Fallback::Timeout => "timeout",
            Fallback::NonFiniteOutput => "non_finite_output",
            Fallback::OutOfRange => "out_of_range",
            Fallback::ModelUnavailable => "model_unavailable",
            Fallback::CircuitOpen => "circuit_open",
        }
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// ONNX Runtime itself is missing.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// The file does not exist.
    #[error("model file `{}` does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read model file `{}`: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The file is not an ONNX model.
    #[error("model file `{}` is corrupt or not an ONNX model: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// ONNX Runtime's error.
        message: String,
    },
    /// ONNX Runtime cannot create a session for it (unsupported operator, opset...).
    #[error("ONNX Runtime cannot load model `{}`: {message}", path.display())]
    Session {
        /// The file.
        path: PathBuf,
        /// ONNX Runtime's error.
        message: String,
    },
    /// The model's inputs or outputs are not the ones the policy declares.
    #[error("model `{}` does not have the expected signature: {detail}", path.display())]
    Signature {
        /// The file.
        path: PathBuf,
        /// Both signatures.
        detail: String,
    },
    /// The declared signature is not one the host can feed.
    #[error("model `{}`: unsupported signature: {detail}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        detail: String,
    },
    /// A `metadata_props` entry is malformed.
    #[error("model `{}`: metadata `{key}`: {problem}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The policy pins a version the model does not carry.
    #[error(
        "model `{}`: the policy expects version {expected}, the model's metadata says {}",
        path.display(),
        found.as_deref().unwrap_or("nothing (no `version` in metadata_props)")
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The pinned version.
        expected: String,
        /// The metadata's version.
        found: Option<String>,
    },
    /// The worker thread could not be started.
    #[error("cannot start the inference thread for model `{}`: {message}", path.display())]
    Worker {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
}

impl LoadError {
    /// What the agent records while it has no model: `model_unavailable`.
    pub fn fallback(&self) -> Fallback {
        Fallback::ModelUnavailable
    }
}

/// An inference that gave no usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    /// The circuit breaker is open; the model was not called.
    #[error("model circuit open{}", until.map(|t| format!(" until {t}")).unwrap_or_default())]
    CircuitOpen {
        /// When the next probe is allowed (`None`: a probe is running).
        until: Option<Timestamp>,
    },
    /// The input does not fit the model (the caller's mistake; not held against the
    /// model's circuit).
    #[error("bad model input: {0}")]
    Input(String),
    /// ONNX Runtime failed, or returned an output of the wrong shape.
    #[error("inference failed: {0}")]
    Run(String),
    /// No answer within the timeout; the run was terminated and abandoned.
    #[error("inference timed out after {}", humantime::format_duration(*after))]
    Timeout {
        /// The model's timeout.
        after: Duration,
    },
    /// An output value is NaN or infinite.
    #[error("output {index} (row {row}) is not finite: {value}")]
    NonFinite {
        /// Batch row.
        row: usize,
        /// Index in the flat output.
        index: usize,
        /// The value.
        value: f32,
    },
    /// An output value is outside the declared range.
    #[error("output {index} (row {row}) is {value}, outside the declared range [{min}, {max}]")]
    OutOfRange {
        /// Batch row.
        row: usize,
        /// Index in the flat output.
        index: usize,
        /// The value.
        value: f32,
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl InferenceError {
    /// The reason the agent records: `fallback: <reason>`.
    pub fn fallback(&self) -> Fallback {
        match self {
            InferenceError::CircuitOpen { .. } => Fallback::CircuitOpen,
            InferenceError::Input(_) | InferenceError::Run(_) => Fallback::InferenceError,
            InferenceError::Timeout { .. } => Fallback::Timeout,
            InferenceError::NonFinite { .. } => Fallback::NonFiniteOutput,
            InferenceError::OutOfRange { .. } => Fallback::OutOfRange,
        }
    }
}

/// What a model says about itself in `metadata_props`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelMetadata {
    name: Option<String>,
    version: Option<String>,
    training_data_sha256: Option<String>,
    feature_names: Vec<String>,
    reference_stats: Vec<FeatureStats>,
    output_range: Option<(f32, f32)>,
    props: BTreeMap<String, String>,
}

impl ModelMetadata {
    /// Parses the metadata from `metadata_props` (key -> value). Known keys: `name`,
    /// `version`, `training_data_sha256` (strings), `feature_names` (JSON list of
    /// strings), `reference_stats` (JSON list of [`FeatureStats`]), `output_range`
    /// (JSON `[min, max]`). All are optional; a malformed one is an error.
    ///
    /// # Errors
    /// `(key, problem)` for the first malformed entry.
    pub fn from_props(props: BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let problem = |key: &str, p: String| (key.to_string(), p);
        let feature_names: Vec<String> = match props.get("feature_names") {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                problem(
                    "feature_names",
                    format!("expected a JSON list of names: {e}"),
                )
            })?,
            None => Vec::new(),
        };
        let reference_stats: Vec<FeatureStats> = match props.get("reference_stats") {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                problem(
                    "reference_stats",
                    format!(
                        "expected a JSON list of {{name, mean, std, decile_edges, proportions}}: {e}"
                    ),
                )
            })?,
            None => Vec::new(),
        };
        for stats in &reference_stats {
            stats
                .validate()
                .map_err(|p| problem("reference_stats", p))?;
        }
        if !feature_names.is_empty() && !reference_stats.is_empty() {
            let stat_names: Vec<&str> = reference_stats.iter().map(|s| s.name.as_str()).collect();
            if stat_names != feature_names.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(problem(
                    "reference_stats",
                    format!("features {stat_names:?} are not feature_names {feature_names:?}"),
                ));
            }
        }
        let output_range = match props.get("output_range") {
            Some(text) => {
                let range: [f32; 2] = serde_json::from_str(text).map_err(|e| {
                    problem("output_range", format!("expected a JSON [min, max]: {e}"))
                })?;
                if !(range[0].is_finite() && range[1].is_finite() && range[0] <= range[1]) {
                    return Err(problem(
                        "output_range",
                        format!("expected finite min <= max, found {text}"),
                    ));
                }
                Some((range[0], range[1]))
            }
            None => None,
        };
        Ok(ModelMetadata {
            name: props.get("name").cloned(),
            version: props.get("version").cloned(),
            training_data_sha256: props.get("training_data_sha256").cloned(),
            feature_names,
            reference_stats,
            output_range,
            props,
        })
    }

    /// The model's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The model's version.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    /// SHA-256 of the training data.
    pub fn training_data_sha256(&self) -> Option<&str> {
        self.training_data_sha256.as_deref()
    }
    /// Input feature names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    /// Per-feature reference statistics (for drift), in column order.
    pub fn reference_stats(&self) -> &[FeatureStats] {
        &self.reference_stats
    }
    /// The declared output range, inclusive.
    pub fn output_range(&self) -> Option<(f32, f32)> {
        self.output_range
    }
    /// Every `metadata_props` entry, as stored.
    pub fn props(&self) -> &BTreeMap<String, String> {
        &self.props
    }
}

/// Settings of a [`ModelHost`] that the policy does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOptions {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit stays open before a probe.
    pub cool_off: Duration,
    /// ONNX Runtime threads within one operator (1: the worker thread only).
    pub intra_threads: usize,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            failure_threshold: 3,
            cool_off: Duration::from_secs(30),
            intra_threads: 1,
        }
    }
}

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed {
        /// Failures in a row so far.
        consecutive_failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// When the next probe is allowed.
        until: Timestamp,
    },
    /// One probe call is allowed (or running); its outcome closes or reopens.
    HalfOpen {
        /// Whether the probe is running.
        probing: bool,
    },
}

/// A model's circuit breaker, on the caller's clock.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_off: Duration,
    state: CircuitState,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures (at least 1) for `cool_off`.
    pub fn new(threshold: u32, cool_off: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cool_off,
            state: CircuitState::Closed {
                consecutive_failures: 0,
            },
        }
    }

    /// The state now (an open circuit past its cool-off reports `HalfOpen`).
    pub fn state(&self, now: Timestamp) -> CircuitState {
        match self.state {
            CircuitState::Open { until } if now >= until => {
                CircuitState::HalfOpen { probing: false }
            }
            s => s,
        }
    }

    /// Whether a call may go to the model now. A call admitted in the half-open state is
    /// the probe; other calls are refused until it reports.
    ///
    /// # Errors
    /// When the call must not go through: the time of the next probe, `None` while a
    /// probe runs.
    pub fn admit(&mut self, now: Timestamp) -> Result<(), Option<Timestamp>> {
        match self.state(now) {
            CircuitState::Closed { .. } => Ok(()),
            CircuitState::Open { until } => Err(Some(until)),
            CircuitState::HalfOpen { probing: true } => Err(None),
            CircuitState::HalfOpen { probing: false } => {
                self.state = CircuitState::HalfOpen { probing: true };
                Ok(())
            }
        }
    }

    /// An admitted call succeeded.
    pub fn record_success(&mut self) {
        self.state = CircuitState::Closed {
            consecutive_failures: 0,
        };
    }

    /// An admitted call failed at `now`.
    pub fn record_failure(&mut self, now: Timestamp) {
        self.state = match self.state {
            CircuitState::Closed {
                consecutive_failures,
            } => {
                let n = consecutive_failures.saturating_add(1);
                if n >= self.threshold {
                    CircuitState::Open {
                        until: now.plus(self.cool_off),
                    }
                } else {
                    CircuitState::Closed {
                        consecutive_failures: n,
                    }
                }
            }
            CircuitState::HalfOpen { .. } => CircuitState::Open {
                until: now.plus(self.cool_off),
            },
            open @ CircuitState::Open { .. } => open,
        };
    }
}

/// What the worker thread returns: the output's shape and values.
type RunResult = Result<(Vec<i64>, Vec<f32>), String>;

struct Job {
    input: Vec<f32>,
    shape: Vec<i64>,
    options: Arc<RunOptions>,
    reply: mpsc::SyncSender<RunResult>,
}

/// One loaded model. Cheap to share behind an `Arc`; `infer` takes `&self`.
pub struct ModelHost {
    path: PathBuf,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    metadata: ModelMetadata,
    /// Fixed batch size, or `None` when the first dimension is dynamic.
    fixed_rows: Option<usize>,
    /// Input values per row.
    row_len: usize,
    /// Input shape after the batch dimension.
    row_shape: Vec<i64>,
    timeout: Duration,
    jobs: mpsc::Sender<Job>,
    breaker: Mutex<CircuitBreaker>,
    clock: Arc<dyn Clock>,
    /// Times inference for the latency histogram. Not `clock`: the breaker's clock may be
    /// decision time (a simulated clock), which does not move while a model runs.
    timer: Arc<dyn Clock>,
    stats: Arc<ModelStats>,
    /// Faults a simulation injects (never set in production).
    injected: Option<AgentFaults>,
}

impl fmt::Debug for ModelHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelHost")
            .field("path", &self.path)
            .field("inputs", &render(&self.inputs))
            .field("outputs", &render(&self.outputs))
            .field("metadata", &self.metadata.name)
            .finish_non_exhaustive()
    }
}

impl ModelHost {
    /// Loads `model.path()` and checks it against `model`'s signature and version.
    ///
    /// # Errors
    /// A [`LoadError`] naming the file and what is wrong with it.
    pub fn load(
        env: &OrtEnvironment,
        model: &ModelRef,
        options: HostOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LoadError> {
        let path = model.path().to_path_buf();
        let (fixed_rows, row_shape, row_len) = feedable(&path, model)?;
        let bytes = read_model(&path)?;
        let session = build_session(env, &path, &bytes, options)?;

        let actual_inputs: Vec<Described> = session.inputs().iter().map(describe).collect();
        let actual_outputs: Vec<Described> = session.outputs().iter().map(describe).collect();
        let mut problems = Vec::new();
        if !same_signature(model.inputs(), &actual_inputs) {
            problems.push(format!(
                "expected inputs {}, model has {}",
                render(model.inputs()),
                render_described(&actual_inputs)
            ));
        }
        if !same_signature(model.outputs(), &actual_outputs) {
            problems.push(format!(
                "expected outputs {}, model has {}",
                render(model.outputs()),
                render_described(&actual_outputs)
            ));
        }
        if !problems.is_empty() {
            return Err(LoadError::Signature {
                path,
                detail: problems.join("; "),
            });
        }

        let metadata = read_metadata(&session, &path)?;
        if let Some(expected) = model.version() {
            if metadata.version() != Some(expected) {
                return Err(LoadError::Version {
                    path,
                    expected: expected.to_string(),
                    found: metadata.version.clone(),
                });
            }
        }
        if !metadata.feature_names.is_empty() && metadata.feature_names.len() != row_len {
            return Err(LoadError::Metadata {
                path,
                key: "feature_names".into(),
                problem: format!(
                    "{} names for an input of {row_len} values per row",
                    metadata.feature_names.len()
                ),
            });
        }

        let stats_name = metadata.name().map_or_else(
            || {
                path.file_stem().map_or_else(
                    || path.display().to_string(),
                    |s| s.to_string_lossy().into_owned(),
                )
            },
            str::to_string,
        );
        let input_name = model.inputs()[0].name.clone();
        let output_name = model.outputs()[0].name.clone();
        let (tx, rx) = mpsc::channel::<Job>();
        let thread_name = format!(
            "model-{}",
            metadata
                .name()
                .map(str::to_string)
                .unwrap_or_else(|| path.display().to_string())
        );
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || serve(session, &input_name, &output_name, &rx))
            .map_err(|e| LoadError::Worker {
                path: path.clone(),
                message: e.to_string(),
            })?;

        Ok(ModelHost {
            path,
            inputs: model.inputs().to_vec(),
            outputs: model.outputs().to_vec(),
            metadata,
            fixed_rows,
            row_len,
            row_shape,
            timeout: model.timeout(),
            jobs: tx,
            breaker: Mutex::new(CircuitBreaker::new(
                options.failure_threshold,
                options.cool_off,
            )),
            clock,
            timer: Arc::new(RealClock),
            injected: None,
            stats: Arc::new(ModelStats::new(stats_name)),
        })
    }

    /// Fails calls inside `faults`' windows (on the host's clock) as they say: how a
    /// simulation rehearses the agent's fallback. The circuit counts them as failures.
    pub fn with_faults(mut self, faults: AgentFaults) -> Self {
        self.injected = Some(faults);
        self
    }

    /// Times inference on `timer` instead of the wall clock's monotonic reading (tests).
    #[must_use]
    pub fn with_timer(mut self, timer: Arc<dyn Clock>) -> Self {
        self.timer = timer;
        self
    }

    /// The model's figures: inference durations (recorded here) and drift (published by
    /// the agent that monitors it). Named after the metadata `name`, else the file stem.
    pub fn stats(&self) -> &Arc<ModelStats> {
        &self.stats
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The checked inputs.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }
    /// The checked outputs.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }
    /// The signature as text: `inputs [..] -> outputs [..]`.
    pub fn signature(&self) -> String {
        format!("{} -> {}", render(&self.inputs), render(&self.outputs))
    }
    /// The model's metadata.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }
    /// Input values per row.
    pub fn row_len(&self) -> usize {
        self.row_len
    }
    /// The inference timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// The circuit breaker's state now.
    pub fn circuit(&self) -> CircuitState {
        lock(&self.breaker).state(self.clock.now())
    }

    /// Runs the model on `rows` rows of `input` (row-major, [`row_len`](Self::row_len)
    /// values each) and returns the first declared output, row-major. Zero rows return
    /// nothing without calling the model.
    ///
    /// # Errors
    /// An [`InferenceError`]; its [`fallback`](InferenceError::fallback) is what the
    /// agent records. Every error but [`InferenceError::Input`] and
    /// [`InferenceError::CircuitOpen`] counts against the circuit.
    pub fn infer(&self, input: &[f32], rows: usize) -> Result<Vec<f32>, InferenceError> {
        self.infer_timed(input, rows).0
    }

    /// [`infer`](Self::infer), and how long the model took when it was called (`None`
    /// when the input was refused, the batch was empty or the circuit was open), for the
    /// caller's trace.
    pub fn infer_timed(
        &self,
        input: &[f32],
        rows: usize,
    ) -> (Result<Vec<f32>, InferenceError>, Option<Duration>) {
        if let Err(e) = self.check_input(input, rows) {
            return (Err(e), None);
        }
        if rows == 0 {
            return (Ok(Vec::new()), None);
        }
        if let Err(until) = lock(&self.breaker).admit(self.clock.now()) {
            return (Err(InferenceError::CircuitOpen { until }), None);
        }
        if let Some(e) = self
            .injected
            .as_ref()
            .and_then(|f| f.at(self.clock.now(), self.timeout))
        {
            lock(&self.breaker).record_failure(self.clock.now());
            return (Err(e), None);
        }
        let started = self.timer.monotonic();
        let result = self.run(input, rows);
        let took = self.timer.monotonic().saturating_sub(started);
        self.stats.record_inference(took);
        let mut breaker = lock(&self.breaker);
        match &result {
            Ok(_) => breaker.record_success(),
            Err(_) => breaker.record_failure(self.clock.now()),
        }
        (result, Some(took))
    }

    /// The clock inference is timed on (callers time their feature work on it too, so
    /// agents never read the wall clock themselves).
    pub fn timer(&self) -> &Arc<dyn Clock> {
        &self.timer
    }

    /// [`infer`](Self::infer) on rows of `F` values.
    ///
    /// # Errors
    /// As [`infer`](Self::infer).
    pub fn infer_rows<const F: usize>(
        &self,
        rows: &[[f32; F]],
    ) -> Result<Vec<f32>, InferenceError> {
        self.infer(rows.as_flattened(), rows.len())
    }

    /// [`infer`](Self::infer) on a `[rows, row_len]` array.
    ///
    /// # Errors
    /// As [`infer`](Self::infer).
    pub fn infer_array(&self, x: ndarray::ArrayView2<'_, f32>) -> Result<Vec<f32>, InferenceError> {
        let rows = x.nrows();
        if x.ncols() != self.row_len {
            return Err(InferenceError::Input(format!(
                "rows of {} values, the model takes {}",
                x.ncols(),
                self.row_len
            )));
        }
        match x.as_slice() {
            Some(flat) => self.infer(flat, rows),
            None => {
                let flat: Vec<f32> = x.iter().copied().collect();
                self.infer(&flat, rows)
            }
        }
    }

    fn check_input(&self, input: &[f32], rows: usize) -> Result<(), InferenceError> {
        if let Some(fixed) = self.fixed_rows {
            if rows != fixed && rows != 0 {
                return Err(InferenceError::Input(format!(
                    "the model takes batches of exactly {fixed} rows, found {rows}"
                )));
            }
        }
        let expected = rows.checked_mul(self.row_len);
        if expected != Some(input.len()) {
            return Err(InferenceError::Input(format!(
                "{rows} rows of {} values need {} values, found {}",
                self.row_len,
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                input.len()
            )));
        }
        if let Some((i, v)) = input.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            let (row, column) = (i / self.row_len.max(1), i % self.row_len.max(1));
            let name = self
                .metadata
                .feature_names
                .get(column)
                .map_or_else(String::new, |n| format!(" (`{n}`)"));
            return Err(InferenceError::Input(format!(
                "row {row}, value {column}{name} is not finite: {v}"
            )));
        }
        Ok(())
    }

    fn run(&self, input: &[f32], rows: usize) -> Result<Vec<f32>, InferenceError> {
        let options = RunOptions::new()
            .map(Arc::new)
            .map_err(|e| InferenceError::Run(e.to_string()))?;
        let mut shape = Vec::with_capacity(self.row_shape.len() + 1);
        shape.push(i64::try_from(rows).unwrap_or(i64::MAX));
        shape.extend_from_slice(&self.row_shape);
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            input: input.to_vec(),
            shape,
            options: Arc::clone(&options),
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| InferenceError::Run("the inference thread has stopped".into()))?;
        let (out_shape, values) = match answer.recv_timeout(self.timeout) {
            Ok(Ok(out)) => out,
            Ok(Err(message)) => return Err(InferenceError::Run(message)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Ask ONNX Runtime to stop between kernels; the worker moves on to the
                // next job when it does. Either way this call is over.
                let _ = options.terminate();
                return Err(InferenceError::Timeout {
                    after: self.timeout,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(InferenceError::Run(
                    "the inference thread stopped during the run".into(),
                ))
            }
        };
        self.check_output(rows, &out_shape, values)
    }

    fn check_output(
        &self,
        rows: usize,
        shape: &[i64],
        values: Vec<f32>,
    ) -> Result<Vec<f32>, InferenceError> {
        let leading = shape.first().and_then(|d| usize::try_from(*d).ok());
        if leading != Some(rows) || !values.len().is_multiple_of(rows) {
            return Err(InferenceError::Run(format!(
                "output `{}` has shape {shape:?} for {rows} input rows",
                self.outputs[0].name
            )));
        }
        let per_row = values.len() / rows;
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(InferenceError::NonFinite {
                row: index / per_row.max(1),
                index,
                value: *value,
            });
        }
        if let Some((min, max)) = self.metadata.output_range {
            if let Some((index, value)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| **v < min || **v > max)
            {
                return Err(InferenceError::OutOfRange {
                    row: index / per_row.max(1),
                    index,
                    value: *value,
                    min,
                    max,
                });
            }
        }
        Ok(values)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The worker: runs jobs in order until the host is dropped.
fn serve(mut session: Session, input_name: &str, output_name: &str, jobs: &mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let result = run_once(
            &mut session,
            input_name,
            output_name,
            job.input,
            job.shape,
            &job.options,
        );
        // The caller may have given up (timeout); then nobody listens.
        let _ = job.reply.send(result);
    }
}

fn run_once(
    session: &mut Session,
    input_name: &str,
    output_name: &str,
    input: Vec<f32>,
    shape: Vec<i64>,
    options: &RunOptions,
) -> RunResult {
    let tensor = Tensor::from_array((shape, input)).map_err(|e| e.to_string())?;
    let outputs = session
        .run_with_options(ort::inputs![input_name => tensor], options)
        .map_err(|e| e.to_string())?;
    let value = outputs
        .get(output_name)
        .ok_or_else(|| format!("the model returned no output `{output_name}`"))?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| format!("output `{output_name}`: {e}"))?;
    Ok((shape.to_vec(), data.to_vec()))
}

/// Checks that the declared signature is one `infer` can feed: one float32 input whose
/// dimensions after the first are fixed, and a float32 first output. Returns the fixed
/// batch size (if any), the row shape and the values per row.
fn feedable(path: &Path, model: &ModelRef) -> Result<(Option<usize>, Vec<i64>, usize), LoadError> {
    let unsupported = |detail: String| LoadError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    let [input] = model.inputs() else {
        return Err(unsupported(format!(
            "the host feeds exactly one input, the policy declares {}",
            render(model.inputs())
        )));
    };
    if input.elem_type != TensorType::Float32 {
        return Err(unsupported(format!(
            "input `{}` must be f32, the policy declares {}",
            input.name,
            type_name(input.elem_type)
        )));
    }
    let Some((first, rest)) = input.shape.split_first() else {
        return Err(unsupported(format!(
            "input `{}` needs a batch dimension, the policy declares a scalar",
            input.name
        )));
    };
    let fixed_rows = match *first {
        -1 => None,
        n if n > 0 => usize::try_from(n).ok(),
        n => {
            return Err(unsupported(format!(
                "input `{}`: batch dimension {n} is neither -1 nor positive",
                input.name
            )))
        }
    };
    let mut row_len: usize = 1;
    for d in rest {
        let d = usize::try_from(*d).ok().filter(|d| *d > 0).ok_or_else(|| {
            unsupported(format!(
                "input `{}`: only the first dimension may be dynamic, found {:?}",
                input.name, input.shape
            ))
        })?;
        row_len = row_len
            .checked_mul(d)
            .ok_or_else(|| unsupported(format!("input `{}` is too large", input.name)))?;
    }
    match model.outputs().first() {
        Some(out) if out.elem_type == TensorType::Float32 => {}
        Some(out) => {
            return Err(unsupported(format!(
                "the first output `{}` must be f32, the policy declares {}",
                out.name,
                type_name(out.elem_type)
            )))
        }
        None => return Err(unsupported("the policy declares no output".into())),
    }
    Ok((fixed_rows, rest.to_vec(), row_len))
}

fn read_model(path: &Path) -> Result<Vec<u8>, LoadError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(LoadError::Corrupt {
            path: path.to_path_buf(),
            message: "the file is empty".into(),
        }),
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LoadError::Missing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(LoadError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn build_session(
    env: &OrtEnvironment,
    path: &Path,
    bytes: &[u8],
    options: HostOptions,
) -> Result<Session, LoadError> {
    let session_error = |message: String| LoadError::Session {
        path: path.to_path_buf(),
        message,
    };
    let builder = Session::builder(env.env())
        .map_err(|e| session_error(e.to_string()))?
        .with_intra_threads(options.intra_threads.max(1))
        .map_err(|e| session_error(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| session_error(e.to_string()))?
        // Run errors come back as statuses; ONNX Runtime's own log of them is noise.
        .with_log_level(ort::logging::LogLevel::Fatal)
        .map_err(|e| session_error(e.to_string()))?;
    let mut builder = builder;
    builder.commit_from_memory(bytes).map_err(|e| {
        if matches!(
            e.code(),
            ort::ErrorCode::InvalidProtobuf
                | ort::ErrorCode::InvalidGraph
                | ort::ErrorCode::NoModel
        ) {
            LoadError::Corrupt {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            }
        } else {
            session_error(e.to_string())
        }
    })
}

fn read_metadata(session: &Session, path: &Path) -> Result<ModelMetadata, LoadError> {
    let meta_error = |key: &str, problem: String| LoadError::Metadata {
        path: path.to_path_buf(),
        key: key.to_string(),
        problem,
    };
    let meta = session
        .metadata()
        .map_err(|e| meta_error("*", e.to_string()))?;
    let keys = meta
        .custom_keys()
        .map_err(|e| meta_error("*", e.to_string()))?;
    let props: BTreeMap<String, String> = keys
        .into_iter()
        .filter_map(|k| meta.custom(&k).map(|v| (k, v)))
        .collect();
    ModelMetadata::from_props(props).map_err(|(key, problem)| meta_error(&key, problem))
}

/// A model tensor as the signature check sees it.
#[derive(Debug, Clone, PartialEq)]
struct Described {
    name: String,
    /// Element type and shape, when it is a tensor of a type the policy can name.
    tensor: Option<(TensorType, Vec<i64>)>,
    /// Rendered: `name: f32 [-1, 24]`.
    text: String,
}

fn describe(outlet: &ort::value::Outlet) -> Described {
    let name = outlet.name().to_string();
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => {
            let dims: Vec<i64> = shape.iter().map(|d| if *d < 0 { -1 } else { *d }).collect();
            let elem = tensor_type(*ty);
            let ty_text = elem.map_or_else(
                || format!("{ty:?}").to_lowercase(),
                |e| type_name(e).to_string(),
            );
            Described {
                text: format!("{name}: {ty_text} {dims:?}"),
                name,
                tensor: elem.map(|e| (e, dims)),
            }
        }
        other => Described {
            text: format!("{name}: {other:?}"),
            name,
            tensor: None,
        },
    }
}

fn tensor_type(ty: TensorElementType) -> Option<TensorType> {
    Some(match ty {
        TensorElementType::Float32 => TensorType::Float32,
        TensorElementType::Float64 => TensorType::Float64,
        TensorElementType::Int32 => TensorType::Int32,
        TensorElementType::Int64 => TensorType::Int64,
        TensorElementType::Bool => TensorType::Bool,
        TensorElementType::String => TensorType::String,
        _ => return None,
    })
}

fn type_name(ty: TensorType) -> &'static str {
    match ty {
        TensorType::Float32 => "f32",
        TensorType::Float64 => "f64",
        TensorType::Int32 => "i32",
        TensorType::Int64 => "i64",
        TensorType::Bool => "bool",
        TensorType::String => "string",
    }
}

fn render(specs: &[TensorSpec]) -> String {
    let items: Vec<String> = specs
        .iter()
        .map(|s| format!("{}: {} {:?}", s.name, type_name(s.elem_type), s.shape))
        .collect();
    format!("[{}]", items.join(", "))
}

fn render_described(items: &[Described]) -> String {
    let items: Vec<&str> = items.iter().map(|d| d.text.as_str()).collect();
    format!("[{}]", items.join(", "))
}

/// Same names, element types and shapes, in any order.
fn same_signature(expected: &[TensorSpec], actual: &[Described]) -> bool {
    expected.len() == actual.len()
        && expected.iter().all(|spec| {
            actual.iter().any(|d| {
                d.name == spec.name
                    && d.tensor
                        .as_ref()
                        .is_some_and(|(ty, shape)| *ty == spec.elem_type && *shape == spec.shape)
            })
        })
}
