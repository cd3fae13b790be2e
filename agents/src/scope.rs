//! Which targets an agent acts on, as the policy selects them.

use std::collections::HashMap;
use std::sync::Arc;

use conclave_runtime::{Policy, Target};

/// Names remembered before the memo starts over; bounds memory when telemetry carries an
/// unbounded set of names (a misbehaving producer), at the cost of re-matching.
const MEMO_LIMIT: usize = 65_536;

/// An agent's view of the policy's target selection. Agents skip telemetry about targets
/// outside their scope instead of proposing actions the arbiter would only reject.
#[derive(Debug, Clone)]
pub struct Scope {
    policy: Arc<Policy>,
    agent: &'static str,
    /// Selection is asked once per message; matching globs each time would cost more
    /// than the agent's own work.
    memo: HashMap<String, bool>,
}

impl Scope {
    /// The scope of `agent` under `policy`.
    pub fn new(policy: Arc<Policy>, agent: &'static str) -> Self {
        Scope {
            policy,
            agent,
            memo: HashMap::new(),
        }
    }

    /// Whether the agent acts on `target`.
    pub fn includes(&self, target: &Target) -> bool {
        self.policy.selects(self.agent, target)
    }

    /// Whether the agent acts on the target called `name` (memoized; no allocation once
    /// the name was seen).
    pub fn includes_name(&mut self, name: &str) -> bool {
        if let Some(&known) = self.memo.get(name) {
            return known;
        }
        let included = self.policy.selects(self.agent, &Target::new(name));
        if self.memo.len() >= MEMO_LIMIT {
            self.memo.clear();
        }
        self.memo.insert(name.to_string(), included);
        included
    }

    /// The policy (for limits such as `min_replicas` that rules respect).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}
