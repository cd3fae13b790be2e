//! Named runtime events: each struct's `emit` is the only place its log line and counter
//! exist (STYLE §5). Counters live in [`Counters`], shared by every actor of one runtime,
//! and are read as a [`CounterSnapshot`]; the OpenTelemetry issue exports the same figures.

mod agent;
mod counters;
mod pipeline;

pub use agent::{AgentHung, AgentPanicked, AgentRestarted, AgentRetired};
pub use counters::{CounterSnapshot, Counters};
pub use pipeline::{
    ActuationFailed, AuditWriteFailed, DecisionsMade, TelemetryDeadLettered, TelemetryReceived,
};
