//! Every metric the runtime exports, defined once: name, help, unit, kind, labels, and
//! where its value comes from. The Prometheus endpoint and the OTLP exporter both walk
//! [`ALL`]; neither names a metric itself.
//!
//! Names follow the OpenTelemetry conventions (dotted, unit in `unit`, no `_total`);
//! [`MetricDef::prometheus_name`] applies the specification's Prometheus mapping (dots to
//! underscores, `_seconds` for unit `s`, `_total` for counters), so a series has the same
//! name whether scraped from `/metrics` or sent by OTLP through a collector to Prometheus.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::histogram::{HistogramSnapshot, INFERENCE_BUCKETS};
use super::model::ModelStats;
use crate::events::CounterSnapshot;
use crate::telemetry::DeadLetterReason;

/// What kind of figure a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (from the start of the process).
    Counter,
    /// A value now.
    Gauge,
    /// Durations in buckets.
    Histogram,
}

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The OpenTelemetry instrument name (`conclave.decisions`).
    pub name: &'static str,
    /// One sentence on what is counted.
    pub help: &'static str,
    /// UCUM unit: `s`, or a count annotation such as `{decision}`; empty when
    /// dimensionless.
    pub unit: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Label (attribute) names, in the order a [`Sample`]'s values follow.
    pub labels: &'static [&'static str],
    /// A histogram's bucket upper bounds (the `+Inf` bucket is implicit); empty otherwise.
    pub buckets: &'static [f64],
    pub(crate) read: fn(&Readings) -> Vec<Sample>,
}

impl MetricDef {
    /// The Prometheus name: `conclave_decisions_total`.
    pub fn prometheus_name(&self) -> String {
        let mut name = self.name.replace('.', "_");
        if self.unit == "s" && !name.ends_with("_seconds") {
            name.push_str("_seconds");
        }
        if self.kind == Kind::Counter {
            name.push_str("_total");
        }
        name
    }
}

/// One labelled value of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label values, in the order of [`MetricDef::labels`].
    pub labels: Vec<String>,
    /// The value.
    pub value: Value,
}

/// A sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram's buckets.
    Histogram(HistogramSnapshot),
}

/// Everything the metrics are read from, taken at once.
#[derive(Debug)]
pub(crate) struct Readings {
    pub(crate) counters: CounterSnapshot,
    pub(crate) inboxes: Vec<(&'static str, usize)>,
    pub(crate) partitions: Vec<usize>,
    pub(crate) models: Vec<Arc<ModelStats>>,
    /// With a shared fleet budget: the grant in force and the replicas counted against it.
    pub(crate) fleet: Option<(Option<u64>, u64)>,
}

fn one(v: u64) -> Vec<Sample> {
    vec![Sample {
        labels: Vec::new(),
        value: Value::Counter(v),
    }]
}

fn by<K: ToString>(map: &BTreeMap<K, u64>) -> Vec<Sample> {
    map.iter()
        .map(|(k, v)| Sample {
            labels: vec![k.to_string()],
            value: Value::Counter(*v),
        })
        .collect()
}

fn by2(map: &BTreeMap<String, BTreeMap<String, u64>>) -> Vec<Sample> {
    map.iter()
        .flat_map(|(a, inner)| {
            inner.iter().map(move |(b, v)| Sample {
                labels: vec![a.clone(), b.clone()],
                value: Value::Counter(*v),
            })
        })
        .collect()
}

fn received(r: &Readings) -> Vec<Sample> {
    one(r.counters.received)
}
fn decoded(r: &Readings) -> Vec<Sample> {
    one(r.counters.decoded)
}
fn dead_letters(r: &Readings) -> Vec<Sample> {
    // Every reason, zero or not: a series that appears only on the first failure is
    // invisible to `rate()` until then.
    DeadLetterReason::ALL
        .iter()
        .map(|reason| Sample {
            labels: vec![reason.as_str().to_string()],
            value: Value::Counter(
                r.counters
                    .dead_lettered
                    .get(reason.as_str())
                    .copied()
                    .unwrap_or(0),
            ),
        })
        .collect()
}
fn observed(r: &Readings) -> Vec<Sample> {
    by(&r.counters.observed)
}
fn skipped(r: &Readings) -> Vec<Sample> {
    one(r.counters.skipped_retired)
}
fn restarts(r: &Readings) -> Vec<Sample> {
    by(&r.counters.restarts)
}
fn inbox_depth(r: &Readings) -> Vec<Sample> {
    r.inboxes
        .iter()
        .map(|(agent, depth)| Sample {
            labels: vec![(*agent).to_string()],
            value: Value::Gauge(*depth as f64),
        })
        .collect()
}
fn partition_depth(r: &Readings) -> Vec<Sample> {
    r.partitions
        .iter()
        .enumerate()
        .map(|(i, depth)| Sample {
            labels: vec![i.to_string()],
            value: Value::Gauge(*depth as f64),
        })
        .collect()
}
fn gauge(v: u64) -> Vec<Sample> {
    vec![Sample {
        labels: Vec::new(),
        value: Value::Gauge(v as f64),
    }]
}
fn fleet_granted(r: &Readings) -> Vec<Sample> {
    r.fleet
        .map(|(g, _)| gauge(g.unwrap_or(0)))
        .unwrap_or_default()
}
fn fleet_used(r: &Readings) -> Vec<Sample> {
    r.fleet.map(|(_, u)| gauge(u)).unwrap_or_default()
}
fn proposals(r: &Readings) -> Vec<Sample> {
    by(&r.counters.proposals)
}
fn not_owned(r: &Readings) -> Vec<Sample> {
    one(r.counters.proposals_not_owned)
}
fn decisions(r: &Readings) -> Vec<Sample> {
    by2(&r.counters.decisions_by_agent)
}
fn windows(r: &Readings) -> Vec<Sample> {
    one(r.counters.ticks)
}
fn actuated(r: &Readings) -> Vec<Sample> {
    one(r.counters.actuated)
}
fn actuation_errors(r: &Readings) -> Vec<Sample> {
    one(r.counters.actuation_errors)
}
fn audit_records(r: &Readings) -> Vec<Sample> {
    one(r.counters.audit_records)
}
fn audit_errors(r: &Readings) -> Vec<Sample> {
    one(r.counters.audit_errors)
}
fn inference(r: &Readings) -> Vec<Sample> {
    r.models
        .iter()
        .map(|m| Sample {
            labels: vec![m.name().to_string()],
            value: Value::Histogram(m.inference()),
        })
        .collect()
}
fn fallbacks(r: &Readings) -> Vec<Sample> {
    by2(&r.counters.fallbacks)
}
fn drift(r: &Readings) -> Vec<Sample> {
    r.models
        .iter()
        .flat_map(|m| {
            m.drift().into_iter().map(move |(feature, psi)| Sample {
                labels: vec![m.name().to_string(), feature],
                value: Value::Gauge(psi),
            })
        })
        .collect()
}
fn api_requests(r: &Readings) -> Vec<Sample> {
    by(&r.counters.api_requests)
}
fn export_errors(r: &Readings) -> Vec<Sample> {
    by(&r.counters.export_errors)
}

const fn def(
    name: &'static str,
    unit: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
    read: fn(&Readings) -> Vec<Sample>,
) -> MetricDef {
    MetricDef {
        name,
        help,
        unit,
        kind,
        labels,
        buckets: &[],
        read,
    }
}

impl MetricDef {
    const fn with_buckets(mut self, buckets: &'static [f64]) -> Self {
        self.buckets = buckets;
        self
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric, in the order they are exported.
pub const ALL: &[MetricDef] = &[
    def("conclave.telemetry.received", "{message}", Counter, &[],
        "Messages taken from the telemetry sources.", received),
    def("conclave.telemetry.decoded", "{message}", Counter, &[],
        "Messages decoded into telemetry.", decoded),
    def("conclave.dead_letters", "{message}", Counter, &["reason"],
        "Messages sent to the dead-letter sink, by reason.", dead_letters),
    def("conclave.agent.observed", "{message}", Counter, &["agent"],
        "Telemetry messages each agent observed.", observed),
    def("conclave.agent.skipped_batches", "{batch}", Counter, &[],
        "Batches not delivered to an agent retired after too many restarts.", skipped),
    def("conclave.agent.restarts", "{restart}", Counter, &["agent"],
        "Agent restarts after a panic or a missed heartbeat.", restarts),
    def("conclave.agent.inbox.depth", "{item}", Gauge, &["agent"],
        "Items (telemetry batches, window ticks) waiting in each agent's inbox.", inbox_depth),
    def("conclave.bus.partition.depth", "{item}", Gauge, &["partition"],
        "Items queued in each partition of the embedded bus (with Pulsar, the broker reports its backlog).",
        partition_depth),
    def("conclave.fleet_budget.granted", "{replica}", Gauge, &[],
        "With instances sharing fleet_replica_budget: the replicas this instance's grant allows (0 without a grant).",
        fleet_granted),
    def("conclave.fleet_budget.used", "{replica}", Gauge, &[],
        "With instances sharing fleet_replica_budget: the replicas counted against this instance's grant.",
        fleet_used),
    def("conclave.proposals", "{proposal}", Counter, &["agent"],
        "Proposals each agent made.", proposals),
    def("conclave.proposals.not_owned", "{proposal}", Counter, &[],
        "Proposals dropped because another instance owns their target in the window.", not_owned),
    def("conclave.decisions", "{decision}", Counter, &["agent", "outcome"],
        "Decisions, by the agent that proposed them (human for a pin) and outcome.", decisions),
    def("conclave.decision.windows", "{window}", Counter, &[],
        "Decision windows closed.", windows),
    def("conclave.actuations", "{decision}", Counter, &[],
        "Decisions the actuator carried out.", actuated),
    def("conclave.actuation.errors", "{decision}", Counter, &[],
        "Decisions the actuator failed to carry out.", actuation_errors),
    def("conclave.audit.records", "{record}", Counter, &[],
        "Records written to the audit log.", audit_records),
    def("conclave.audit.errors", "{record}", Counter, &[],
        "Audit log writes that failed.", audit_errors),
    def("conclave.model.inference.duration", "s", Histogram, &["model"],
        "Time each call to a model took, from the agent's side (answered, failed or timed out).",
        inference).with_buckets(INFERENCE_BUCKETS),
    def("conclave.model.fallbacks", "{proposal}", Counter, &["agent", "reason"],
        "Proposals an agent made by its rule instead of its model, by reason.", fallbacks),
    def("conclave.model.drift.psi", "", Gauge, &["model", "feature"],
        "Population stability index of each monitored input feature against the model's reference statistics (once the drift window has its minimum rows).",
        drift),
    def("conclave.api.requests", "{request}", Counter, &["status"],
        "Operator API responses, by HTTP status code.", api_requests),
    def("conclave.otlp.export.errors", "{export}", Counter, &["signal"],
        "OTLP exports that failed, by signal.", export_errors),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid_in_both_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for d in ALL {
            let p = d.prometheus_name();
            assert!(seen.insert(p.clone()), "{p} twice");
            assert!(
                p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && p.starts_with("conclave_"),
                "{p}"
            );
            assert!(
                d.name.len() <= 255
                    && d.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)),
                "{}",
                d.name
            );
            for l in d.labels {
                assert!(
                    l.chars().all(|c| c.is_ascii_lowercase() || c == '_') && *l != "le",
                    "{}: label {l}",
                    d.name
                );
            }
        }
    }

    #[test]
    fn histograms_and_only_histograms_have_buckets() {
        for d in ALL {
            assert_eq!(
                d.kind == Kind::Histogram,
                !d.buckets.is_empty(),
                "{}",
                d.name
            );
            assert!(d.buckets.windows(2).all(|w| w[0] < w[1]), "{}", d.name);
        }
    }

    #[test]
    fn prometheus_names_follow_the_otel_mapping() {
        let names: Vec<String> = ALL.iter().map(MetricDef::prometheus_name).collect();
        assert_eq!(
            names,
            [
                "conclave_telemetry_received_total",
                "conclave_telemetry_decoded_total",
                "conclave_dead_letters_total",
                "conclave_agent_observed_total",
                "conclave_agent_skipped_batches_total",
                "conclave_agent_restarts_total",
                "conclave_agent_inbox_depth",
                "conclave_bus_partition_depth",
                "conclave_fleet_budget_granted",
                "conclave_fleet_budget_used",
                "conclave_proposals_total",
                "conclave_proposals_not_owned_total",
                "conclave_decisions_total",
                "conclave_decision_windows_total",
                "conclave_actuations_total",
                "conclave_actuation_errors_total",
                "conclave_audit_records_total",
                "conclave_audit_errors_total",
                "conclave_model_inference_duration_seconds",
                "conclave_model_fallbacks_total",
                "conclave_model_drift_psi",
                "conclave_api_requests_total",
                "conclave_otlp_export_errors_total",
            ]
        );
    }
}
