//! ONNX models through ONNX Runtime (`ort`, loaded at run time) — issue #6, the runtime half.
//!
//! - [`library`]: finding `libonnxruntime` (`ORT_DYLIB_PATH`, then the project venv that
//!   `agents/training/setup.sh` creates, then the system loader) and the one
//!   [`OrtEnvironment`] of the process.
//! - [`host`]: [`ModelHost`], one loaded model: its signature checked against the
//!   policy's [`ModelRef`](crate::policy::ModelRef), its `metadata_props` read, batched
//!   inference on a worker thread with a deadline, output guards, and a circuit breaker.
//!   Every way a model cannot be trusted maps to a [`Fallback`] reason that the agent
//!   records as `fallback: <reason>`.
//! - [`drift`]: PSI of live features against the reference statistics in the metadata.
//! - [`faults`]: model faults a simulation injects, in windows of decision time.
//! - [`scaler_features`]: the scaler forecast model's features, the same definition as
//!   `agents/training/conclave_training/scaler_features.py` (golden-vector tested).
//! - [`breaker_features`]: the breaker risk model's features, the same definition as
//!   `agents/training/conclave_training/breaker_features.py` (golden-vector tested).
//! - [`compliance_features`]: the compliance fraud model's features, the same definition as
//!   `agents/training/conclave_training/compliance_features.py` (golden-vector tested).
//! - [`router_features`]: the router latency model's features, the same definition as
//!   `agents/training/conclave_training/router_features.py` (golden-vector tested).

pub mod breaker_features;
pub mod compliance_features;
pub mod drift;
pub mod faults;
pub mod host;
pub mod library;
pub mod router_features;
pub mod scaler_features;

#[cfg(test)]
mod tests;

pub use drift::{DriftConfig, DriftError, DriftMonitor, DriftReport, FeaturePsi, FeatureStats};
pub use faults::{AgentFaults, FaultWindow, InjectedFault, ModelFaults};
pub use host::{
    CircuitBreaker, CircuitState, Fallback, HostOptions, InferenceError, LoadError, ModelHost,
    ModelMetadata,
};
pub use library::{
    LibraryError, LibraryLocation, LibrarySearch, LibrarySource, OrtEnvironment, ENV_VAR,
    SETUP_COMMAND,
};
pub use scaler_features::{
    FeatureError, MinuteBuckets, ScalerFeatures, ScalerSeries, ScalerVector, N_FEATURES,
};
