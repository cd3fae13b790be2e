//! The telemetry types, version 1. Field names are the wire names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::target::Target;

/// The newest `schema_version` this build reads (and the one it writes).
pub const SCHEMA_VERSION: u32 = 1;

/// One telemetry message, tagged on the wire by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Telemetry {
    /// A service's load and health figures over the last reporting interval.
    Metrics(ServiceMetrics),
    /// A sample of one event flowing through a topic, for compliance checks.
    Event(EventSample),
    /// A liveness/readiness report.
    Health(Health),
}

/// Encodes telemetry in the wire format [`Decoder`](super::Decoder) reads: one JSON
/// object with `type` first, for producers (the simulator, benches, tests).
///
/// JSON has no NaN or infinity: a non-finite `f64` is written as `null`, which the
/// decoder rejects, as it should.
pub fn encode(t: &Telemetry) -> Vec<u8> {
    serde_json::to_vec(t).expect(
        "telemetry always serializes: every map key is a string and no field's Serialize can fail",
    )
}

/// Which kind of telemetry, for routing to the agents that want it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TelemetryKind {
    /// [`ServiceMetrics`].
    Metrics,
    /// [`EventSample`].
    Event,
    /// [`Health`].
    Health,
}

impl TelemetryKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TelemetryKind::Metrics => "metrics",
            TelemetryKind::Event => "event",
            TelemetryKind::Health => "health",
        }
    }
}

impl Telemetry {
    /// Which kind this is.
    pub fn kind(&self) -> TelemetryKind {
        match self {
            Telemetry::Metrics(_) => TelemetryKind::Metrics,
            Telemetry::Event(_) => TelemetryKind::Event,
            Telemetry::Health(_) => TelemetryKind::Health,
        }
    }

    /// The key telemetry is partitioned by, so one target is handled in order: the
    /// service for metrics and health, the topic for events.
    pub fn key(&self) -> &str {
        match self {
            Telemetry::Metrics(m) => m.service.as_str(),
            Telemetry::Event(e) => e.topic.as_str(),
            Telemetry::Health(h) => h.service.as_str(),
        }
    }

    /// When it was measured.
    pub fn ts(&self) -> Timestamp {
        match self {
            Telemetry::Metrics(m) => m.ts,
            Telemetry::Event(e) => e.ts,
            Telemetry::Health(h) => h.ts,
        }
    }

    /// The target this telemetry is about.
    pub fn target(&self) -> Target {
        Target::new(self.key())
    }
}

/// A service's figures over its last reporting interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMetrics {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Service name (the target).
    pub service: String,
    /// End of the interval.
    pub ts: Timestamp,
    /// Requests or messages arriving per second.
    pub rate_in: f64,
    /// Requests or messages completed per second.
    pub rate_out: f64,
    /// Work waiting: queue length, or a Pulsar subscription's backlog in messages.
    pub backlog: u64,
    /// Median latency in milliseconds.
    pub latency_p50_ms: f64,
    /// 99th-percentile latency in milliseconds.
    pub latency_p99_ms: f64,
    /// Share of requests that failed, in `[0, 1]`.
    pub error_rate: f64,
    /// CPU use as a share of the requested CPU, averaged over replicas (may exceed 1).
    pub cpu: f64,
    /// Replicas running now (ready or not).
    pub replicas: u32,
    /// Region the figures come from, when the service is regional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// What this service saw of the services it calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
}

/// A caller's view of one dependency over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The called service.
    pub service: String,
    /// Calls per second.
    pub calls_per_s: f64,
    /// Share of calls that failed, in `[0, 1]`.
    pub error_rate: f64,
    /// 99th-percentile call latency in milliseconds.
    pub latency_p99_ms: f64,
}

/// One sampled event from a topic. `fields` holds the payload as JSON; compliance checks
/// report field paths into it, never the values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSample {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Topic the event was published on (the target).
    pub topic: String,
    /// Producer name.
    pub producer: String,
    /// Region the event was produced in.
    pub region: String,
    /// Message key.
    #[serde(default)]
    pub key: String,
    /// When it was produced.
    pub ts: Timestamp,
    /// The event payload.
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// A service's reported health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Service name.
    pub service: String,
    /// When it was reported.
    pub ts: Timestamp,
    /// The verdict.
    pub status: HealthStatus,
    /// Replicas passing readiness checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<u32>,
    /// Free text from the health check; never copied into decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A health verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Serving normally.
    Healthy,
    /// Serving with reduced capacity or quality.
    Degraded,
    /// Not serving.
    Down,
}
