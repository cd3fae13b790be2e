//! What a simulation run reports: plain data, serialized as `report.json` and rendered as
//! a terminal table and `report.html`.

use serde::Serialize;

/// A whole simulation: one scenario, several runs on identical load and faults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The seed every run used.
    pub seed: u64,
    /// Simulated seconds.
    pub duration_s: f64,
    /// Simulation step in seconds.
    pub step_s: f64,
    /// Services whose series are charted.
    pub key_services: Vec<String>,
    /// One per run, in the order they ran (`none` first, then the policy, then others).
    pub runs: Vec<RunReport>,
}

/// One run: a baseline (`none`, `oracle`) or the policy under test (`policy`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// `none`, `policy`, ...
    pub name: String,
    /// What the run is, in a few words.
    pub description: String,
    /// Totals over the run.
    pub totals: Totals,
    /// Per service, sorted by name.
    pub services: Vec<ServiceTotals>,
    /// Sampled time series for the key services.
    pub series: Vec<ServiceSeries>,
    /// Times when two or more services breached their SLO at once.
    pub incidents: Vec<Incident>,
    /// Decisions, in order (at most the first 2,000).
    pub decisions: Vec<DecisionMark>,
}

/// Totals over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Totals {
    /// Sum over services of minutes with p99 over SLO or error rate over its limit.
    pub slo_violation_minutes: f64,
    /// Incidents (cascades: 2+ services breaching at once).
    pub incidents: u64,
    /// Requests that arrived at any service.
    pub arrived: f64,
    /// Requests that failed.
    pub failed: f64,
    /// Requests dropped (shed or queue overflow).
    pub dropped: f64,
    /// Worst p99 latency seen at any service, ms.
    pub worst_p99_ms: f64,
    /// Replica-hours, all services.
    pub replica_hours: f64,
    /// Cost, all services.
    pub cost: f64,
    /// Decisions by outcome (enacted, modified, rejected, ...).
    pub decisions: std::collections::BTreeMap<String, u64>,
    /// Telemetry messages dead-lettered.
    pub dead_lettered: u64,
    /// Proposals an agent's rule made instead of its model, by `agent: reason`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub model_fallbacks: std::collections::BTreeMap<String, u64>,
    /// Compliance scores, when the scenario generates events.
    pub compliance: Option<ComplianceScore>,
    /// For a shadow run: its would-be scaling decisions against the oracle's plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowScore>,
}

/// How close a shadow run's would-be scaling decisions came to the oracle's plan: each
/// decision's replicas against the oracle's replicas at that step, next to the replicas
/// actually running (nothing acted, so those are the static fleet's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowScore {
    /// Scaling decisions that enforcing would have carried out.
    pub scale_decisions: u64,
    /// Share whose direction (up, down, stay) matched the oracle's from the running count.
    pub direction_agreement: f64,
    /// Mean |would-be replicas - oracle replicas|.
    pub mean_abs_error_would: f64,
    /// Mean |running replicas - oracle replicas| at the same decisions (doing nothing).
    pub mean_abs_error_static: f64,
}

/// Compliance precision and recall against the events' ground truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceScore {
    /// Events that broke a rule (PII, residency).
    pub violations: u64,
    /// Of those, from a producer the run quarantined by then (or at the event).
    pub caught: u64,
    /// Clean producers quarantined.
    pub false_positives: u64,
    /// caught / violations.
    pub recall: f64,
    /// Share of quarantined producers that had sent a violation.
    pub precision: f64,
}

/// Per-service totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceTotals {
    /// Service name.
    pub name: String,
    /// Minutes in breach.
    pub slo_violation_minutes: f64,
    /// Replica-hours.
    pub replica_hours: f64,
    /// Most replicas at once.
    pub peak_replicas: u32,
    /// Worst p99, ms.
    pub worst_p99_ms: f64,
    /// Its SLO, ms.
    pub slo_p99_ms: f64,
}

/// A key service over time (one point per sample interval).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSeries {
    /// Service name.
    pub name: String,
    /// Its SLO, ms.
    pub slo_p99_ms: f64,
    /// Seconds since start.
    pub t_s: Vec<f64>,
    /// Arrival rate, req/s.
    pub load: Vec<f64>,
    /// Replicas running (ready + starting).
    pub replicas: Vec<f64>,
    /// p99 latency, ms.
    pub p99_ms: Vec<f64>,
    /// Error rate, 0..1.
    pub error_rate: Vec<f64>,
}

/// Two or more services breaching at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Start, seconds since start.
    pub start_s: f64,
    /// End, seconds since start.
    pub end_s: f64,
    /// Services that breached during it.
    pub services: Vec<String>,
}

/// A decision on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionMark {
    /// Seconds since start.
    pub t_s: f64,
    /// Agent.
    pub agent: String,
    /// Target.
    pub target: String,
    /// Outcome name.
    pub outcome: String,
    /// The action, as text.
    pub action: String,
}
