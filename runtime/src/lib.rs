//! Conclave's runtime: everything generic that agents, the simulator and the CLI share —
//! the clock, the core types, the policy language, the arbiter and the decision audit log.
//!
//! It names no concrete agent: agents are identified by name and checked against the
//! catalog the caller passes to [`policy::compile`].

mod action;
pub mod arbiter;
pub mod audit;
mod clock;
mod decision;
mod overrides;
pub mod policy;
pub mod policy_test;
mod proposal;
mod target;
mod units;

pub use action::{Action, ActionKind, BreakerState, QuarantineScope, Severity};

pub use arbiter::{Arbiter, ArbiterState, OverrideError};
pub use clock::{Clock, RealClock, SimClock, Timestamp, TimestampError};
pub use decision::{Decision, OnTimeout, Outcome, Reason, ReasonCode, Verdict};
pub use overrides::{Actor, Override, OverrideKind, Role};
pub use policy::{Mode, Policy, PolicyError};
pub use proposal::{Factor, ModelId, Proposal, TraceContext};
pub use target::{Target, TargetKind};
pub use units::{Confidence, Fraction, OutOfRange};
