//! The runtime's metrics: one definition per metric ([`catalog`]), one registry per
//! runtime ([`Metrics`]) that reads the counters `events/` keeps, the queue depths and
//! the models' figures, and a [`MetricsSnapshot`] that every exporter renders: the
//! Prometheus text format here ([`prometheus`], served at `GET /metrics` by the API), OTLP
//! in the binary (`src/metrics_export.rs`).
//!
//! Recording stays where it was: named events bump [`Counters`]; the model host records
//! inference durations into its [`ModelStats`] (atomic buckets). Reading happens only when
//! an exporter asks.

pub mod catalog;
mod histogram;
mod model;
pub mod prometheus;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

pub use catalog::{Kind, MetricDef, Sample, Value, ALL};
pub use histogram::{Bucket, Histogram, HistogramSnapshot, INFERENCE_BUCKETS};
pub use model::ModelStats;

use crate::events::Counters;
use catalog::Readings;

/// Reads the length of a queue now (an agent inbox, a bus partition).
#[derive(Clone)]
pub struct DepthProbe(Arc<dyn Fn() -> usize + Send + Sync>);

impl DepthProbe {
    /// A probe that calls `read`.
    pub fn new(read: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        DepthProbe(Arc::new(read))
    }

    /// The length now.
    pub fn read(&self) -> usize {
        (self.0)()
    }
}

impl fmt::Debug for DepthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DepthProbe")
    }
}

/// One runtime's metrics. Shared (`Arc`) by the runtime, the API and the exporters; see
/// [`Runtime::start_with_metrics`](crate::Runtime::start_with_metrics).
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Arc<Counters>,
    inboxes: Mutex<Vec<(&'static str, DepthProbe)>>,
    partitions: Mutex<Vec<DepthProbe>>,
    models: Mutex<Vec<Arc<ModelStats>>>,
}

/// Every metric's samples at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// One family per metric in [`ALL`], in that order.
    pub families: Vec<Family>,
}

/// A metric and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Its definition.
    pub def: &'static MetricDef,
    /// Its samples (none when nothing was recorded under any label yet).
    pub samples: Vec<Sample>,
}

impl PartialEq for MetricDef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Metrics must never take the runtime down: a poisoned list is still a valid list.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters the runtime's events bump.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The queues whose depth is exported: each agent's inbox, each bus partition whose
    /// source can tell (replaces what a previous runtime set).
    pub(crate) fn set_queues(
        &self,
        inboxes: Vec<(&'static str, DepthProbe)>,
        partitions: Vec<DepthProbe>,
    ) {
        *lock(&self.inboxes) = inboxes;
        *lock(&self.partitions) = partitions;
    }

    /// Exports these models' figures too (each once, however often it is registered).
    pub fn register_models(&self, models: Vec<Arc<ModelStats>>) {
        let mut known = lock(&self.models);
        for m in models {
            // A model of the same name is one a policy reload replaced: its figures give
            // way to the new one's, so a name is exported once.
            match known.iter_mut().find(|k| k.name() == m.name()) {
                Some(k) => *k = m,
                None => known.push(m),
            }
        }
    }

    fn readings(&self) -> Readings {
        Readings {
            counters: self.counters.snapshot(),
            inboxes: lock(&self.inboxes)
                .iter()
                .map(|(agent, probe)| (*agent, probe.read()))
                .collect(),
            partitions: lock(&self.partitions)
                .iter()
                .map(DepthProbe::read)
                .collect(),
            models: lock(&self.models).clone(),
            fleet: *lock(&self.counters.fleet_share),
        }
    }

    /// Every metric now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let r = self.readings();
        MetricsSnapshot {
            families: ALL
                .iter()
                .map(|def| Family {
                    def,
                    samples: (def.read)(&r),
                })
                .collect(),
        }
    }

    /// One metric now.
    pub fn samples(&self, def: &MetricDef) -> Vec<Sample> {
        (def.read)(&self.readings())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::decision::Decision;
    use crate::events::{DecisionsMade, ProposalsSent};

    fn family<'a>(s: &'a MetricsSnapshot, prometheus_name: &str) -> &'a [Sample] {
        &s.families
            .iter()
            .find(|f| f.def.prometheus_name() == prometheus_name)
            .unwrap_or_else(|| panic!("no family {prometheus_name}"))
            .samples
    }

    fn labels(samples: &[Sample]) -> Vec<(Vec<&str>, &Value)> {
        samples
            .iter()
            .map(|s| (s.labels.iter().map(String::as_str).collect(), &s.value))
            .collect()
    }

    #[test]
    fn metrics_read_the_events_counters_queues_and_models() {
        let m = Metrics::new();
        let decision = |id: &str, outcome: &str, fallback: Option<&str>| {
            serde_json::json!({
                "id": format!("d-{id}"), "at": "2026-11-29T10:00:00.000Z", "target": "checkout",
                "agent": "scaler", "action": null,
                "proposals": [{
                    "id": id, "agent": "scaler", "target": "checkout",
                    "action": {"scale": {"replicas": 9}}, "confidence": 0.9, "rationale": [],
                    "fallback": fallback, "at": "2026-11-29T10:00:00.000Z",
                }],
                "outcome": {"kind": outcome}, "reasons": [], "policy_revision": "1",
            })
        };
        let decisions: Vec<Decision> = serde_json::from_value(serde_json::json!([
            decision("a", "enacted", Some("timeout")),
            decision("b", "rejected", None),
        ]))
        .expect("decisions");
        DecisionsMade {
            decisions: &decisions,
        }
        .emit(m.counters());
        let proposals: Vec<_> = decisions
            .iter()
            .flat_map(|d| d.proposals.iter().cloned())
            .collect();
        ProposalsSent {
            agent: "scaler",
            proposals: &proposals,
        }
        .emit(m.counters());
        m.set_queues(
            vec![("scaler", DepthProbe::new(|| 3))],
            vec![DepthProbe::new(|| 7)],
        );
        let model = Arc::new(ModelStats::new("scaler-forecast"));
        model.record_inference(Duration::from_micros(700));
        model.set_drift([("lag_1", 0.25)]);
        m.register_models(vec![model.clone(), model.clone()]);

        let s = m.snapshot();
        assert_eq!(s.families.len(), ALL.len());
        assert_eq!(
            labels(family(&s, "conclave_decisions_total")),
            [
                (vec!["scaler", "enacted"], &Value::Counter(1)),
                (vec!["scaler", "rejected"], &Value::Counter(1)),
            ]
        );
        assert_eq!(
            labels(family(&s, "conclave_model_fallbacks_total")),
            [(vec!["scaler", "timeout"], &Value::Counter(1))]
        );
        assert_eq!(
            labels(family(&s, "conclave_agent_inbox_depth")),
            [(vec!["scaler"], &Value::Gauge(3.0))]
        );
        assert_eq!(
            labels(family(&s, "conclave_bus_partition_depth")),
            [(vec!["0"], &Value::Gauge(7.0))]
        );
        assert_eq!(
            labels(family(&s, "conclave_model_drift_psi")),
            [(vec!["scaler-forecast", "lag_1"], &Value::Gauge(0.25))]
        );
        let inference = family(&s, "conclave_model_inference_duration_seconds");
        assert_eq!(inference.len(), 1, "registered once");
        let Value::Histogram(h) = &inference[0].value else {
            panic!("not a histogram: {inference:?}")
        };
        assert_eq!(h.count(), 1);
        assert_eq!(
            h.buckets.iter().position(|b| b.count == 1),
            Some(1),
            "0.7 ms is in the 1 ms bucket"
        );
        // Every dead-letter reason is there from the start.
        assert_eq!(
            family(&s, "conclave_dead_letters_total").len(),
            crate::telemetry::DeadLetterReason::ALL.len()
        );
    }
}
