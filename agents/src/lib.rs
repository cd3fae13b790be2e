//! Conclave's agents: scaler, router, breaker and compliance monitor.
//!
//! Each agent is a folder with the same files: `config.rs` (its `settings` block, parsed
//! once), `features.rs` (per-target feature windows), `fallback.rs` (the rule, which is
//! also the baseline) and `mod.rs` (the [`conclave_runtime::Agent`] impl wiring them).
//! The runtime hosts every agent in the same generic actor, so there is no per-agent
//! actor file.

pub mod breaker;
mod catalog;
pub mod compliance;
pub mod learned;
pub mod router;
pub mod scaler;
mod scope;
pub mod settings;
#[cfg(test)]
mod test_support;

pub use catalog::{agent_specs, agent_specs_with_faults, Catalog, AGENTS};
pub use scope::Scope;

/// Loads and compiles the policy at `path` against this build's agents, checking each
/// agent's `settings`.
///
/// # Errors
/// Every problem, located.
pub fn load_policy(
    path: &std::path::Path,
) -> Result<conclave_runtime::Policy, Vec<conclave_runtime::PolicyError>> {
    conclave_runtime::policy::load(path, &Catalog)
}
