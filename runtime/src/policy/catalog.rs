//! The agents a build knows, as the policy compiler sees them: their names and a check
//! of each agent's own `settings` block.
//!
//! `runtime` names no concrete agent; `conclave-agents` implements this trait, so a typo
//! in `spec.agents.scaler.settings` is reported by `policy validate` with its location.

/// One problem in an agent's `settings`, relative to the `settings` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    /// Path below `settings`, e.g. `behavior.scale_up.stabilization` (empty for the block).
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

/// The agents a build knows.
pub trait AgentCatalog {
    /// Every agent name a policy may configure, sorted.
    fn names(&self) -> Vec<&str>;

    /// Checks `settings` for `agent` (`Null` when omitted); every problem at once.
    fn check_settings(&self, agent: &str, settings: &serde_json::Value) -> Vec<SettingsProblem>;
}

/// A names-only catalog (fuzzing, tests): any `settings` are accepted.
impl<const N: usize> AgentCatalog for [&str; N] {
    fn names(&self) -> Vec<&str> {
        let mut v = self.to_vec();
        v.sort_unstable();
        v
    }

    fn check_settings(&self, _agent: &str, _settings: &serde_json::Value) -> Vec<SettingsProblem> {
        Vec::new()
    }
}
