//! [`ModelStats`]: what one loaded model reports about itself — how long each inference
//! took and how far its input features drifted. The model host records inference; the
//! agent that monitors drift publishes it; the runtime finds the stats through
//! [`Agent::models`](crate::Agent::models).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::histogram::{Histogram, HistogramSnapshot, INFERENCE_BUCKETS};

/// One model's figures. Shared (`Arc`) by the host that records them and the registry
/// that exports them.
#[derive(Debug)]
pub struct ModelStats {
    name: String,
    inference: Histogram,
    /// PSI per monitored feature, in the monitor's order; empty until there is enough
    /// data to mean something.
    drift: Mutex<Vec<(String, f64)>>,
}

impl ModelStats {
    /// Empty figures for the model called `name` (its metadata name, else its file stem):
    /// the `model` label.
    pub fn new(name: impl Into<String>) -> Self {
        ModelStats {
            name: name.into(),
            inference: Histogram::new(INFERENCE_BUCKETS),
            drift: Mutex::new(Vec::new()),
        }
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts one call to the model that took `took` (answered, failed or timed out).
    pub fn record_inference(&self, took: Duration) {
        self.inference.record(took);
    }

    /// Inference durations so far.
    pub fn inference(&self) -> HistogramSnapshot {
        self.inference.snapshot()
    }

    /// Replaces the drift figures: PSI by feature.
    pub fn set_drift<'a>(&self, psi: impl IntoIterator<Item = (&'a str, f64)>) {
        let mut d = self.drift.lock().unwrap_or_else(PoisonError::into_inner);
        d.clear();
        d.extend(psi.into_iter().map(|(f, v)| (f.to_string(), v)));
    }

    /// The drift figures: PSI by feature, in the monitor's order.
    pub fn drift(&self) -> Vec<(String, f64)> {
        self.drift
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
