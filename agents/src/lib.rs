//! Conclave's agents: scaler, router, breaker and compliance monitor.
//!
//! Each agent turns telemetry features into proposals through a model or its rule
//! fallback. This crate currently provides the catalog of agent names that policies are
//! checked against; the agents themselves arrive with the runtime issue (#3).

mod catalog;

pub use catalog::AGENTS;
