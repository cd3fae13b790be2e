//! Named runtime events: each struct's `emit` is the only place its log line and counter
//! exist (STYLE §5). Counters live in [`Counters`], shared by every actor of one runtime,
//! and are read as a [`CounterSnapshot`]; [`crate::metrics`] names and exports the same
//! figures (Prometheus, OTLP).

mod agent;
mod api;
mod counters;
mod export;
mod pipeline;

pub use agent::{AgentHung, AgentPanicked, AgentRestarted, AgentRetired};
pub use api::ApiRequestServed;
pub use counters::{CounterSnapshot, Counters};
pub use export::{MetricsExportFailed, TraceExportFailed};
pub use pipeline::{
    ActuationFailed, AuditWriteFailed, DecisionsMade, FleetShareSeen, ProposalsSent,
    TelemetryDeadLettered, TelemetryReceived,
};
