//! Conclave's runtime: everything generic that agents, the simulator and the CLI share —
//! the clock, the core types, the policy language, the arbiter and the decision audit log.
//!
//! It names no concrete agent: agents are identified by name and checked against the
//! catalog the caller passes to [`policy::compile`].

mod action;
pub mod actuator;
mod agent;
#[cfg(feature = "api")]
pub mod api;
pub mod arbiter;
pub mod audit;
pub mod bus;
mod clock;
mod decision;
pub mod events;
pub mod fleet_budget;
#[cfg(feature = "keda")]
pub mod keda;
pub mod metrics;
#[cfg(feature = "models")]
pub mod models;
pub mod overrides;
pub mod policy;
pub mod policy_test;
mod proposal;
#[cfg(feature = "otel")]
pub mod sampling;
pub mod supervision;
mod target;
pub mod telemetry;
mod trace_context;
mod units;

pub use action::{Action, ActionKind, BreakerState, QuarantineScope, Severity};
pub use agent::{factor, Agent, AgentFactory, AgentSpec, Draft, Proposals};

pub use arbiter::{Arbiter, ArbiterState, OverrideError};
pub use clock::{Clock, RealClock, SimClock, Timestamp, TimestampError};
pub use decision::{Decision, OnTimeout, Outcome, Reason, ReasonCode, Verdict};
pub use overrides::{Actor, Override, OverrideKind, Role};
pub use policy::{Mode, Policy, PolicyError};
pub use proposal::{Factor, Inference, ModelId, Proposal, TraceContext};
pub use supervision::{
    RestartPolicy, Runtime, RuntimeConfig, RuntimeError, RuntimeHandle, ShutdownReport, Tuning,
};
pub use target::{Target, TargetKind};
pub use units::{Confidence, Fraction, OutOfRange};
