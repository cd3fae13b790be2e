//! The `Agent` trait: what the runtime asks of every agent, and the sink it proposes into.
//!
//! An agent is plain synchronous logic over its own feature windows. The runtime hosts each
//! one in an actor (`pipeline::agent_actor`), feeds it the telemetry it wants in order per
//! target, and calls [`Agent::tick`] when a decision window closes. Agents never read the
//! wall clock: time comes from telemetry timestamps and the tick's `now`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::action::Action;
use crate::clock::Timestamp;
use crate::metrics::ModelStats;
use crate::proposal::{Factor, Inference, ModelId, Proposal};
use crate::target::Target;
use crate::telemetry::{Telemetry, TelemetryKind};
use crate::units::Confidence;

/// One agent's logic. Implementations must not block: the host gives each call a deadline
/// and restarts an agent that misses it.
pub trait Agent: Send + 'static {
    /// The catalog name (`scaler`, `router`, ...), used in proposals and metrics.
    fn name(&self) -> &'static str;

    /// Whether the agent wants telemetry of this kind.
    fn wants(&self, kind: TelemetryKind) -> bool;

    /// Updates feature windows with one message; may propose at once (urgent cases such
    /// as a card number in an event).
    fn observe(&mut self, telemetry: &Telemetry, out: &mut Proposals);

    /// A decision window closed at `now`: propose whatever should change.
    fn tick(&mut self, now: Timestamp, out: &mut Proposals);

    /// The models this agent runs, so the runtime exports their inference latency and
    /// drift (see [`crate::metrics`]). Asked once per incarnation; none by default.
    fn models(&self) -> Vec<Arc<ModelStats>> {
        Vec::new()
    }
}

/// Builds a fresh agent: at start, and again after every restart (state is not carried
/// over a crash, since a crash may have left it inconsistent).
pub type AgentFactory = Arc<dyn Fn() -> Box<dyn Agent> + Send + Sync>;

/// A named agent factory, as the runtime's supervisor holds it.
#[derive(Clone)]
pub struct AgentSpec {
    /// The catalog name.
    pub name: &'static str,
    /// How to build an instance.
    pub factory: AgentFactory,
}

impl fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSpec")
            .field("name", &self.name)
            .finish()
    }
}

/// A proposal before the sink gives it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// When: the timestamp of the telemetry or tick that produced it.
    pub at: Timestamp,
    /// What it is about.
    pub target: Target,
    /// What should be done.
    pub action: Action,
    /// How sure the agent is.
    pub confidence: Confidence,
    /// The features that drove it, by name.
    pub rationale: Vec<Factor>,
    /// The model that produced it, when one did.
    pub model: Option<ModelId>,
    /// Why the rule was used instead of the model, when it was.
    pub fallback: Option<String>,
    /// The model call behind it, for its trace.
    pub inference: Option<Arc<Inference>>,
    /// What the rule alone would have proposed, when a model informed this proposal
    /// (the current state when the rule would change nothing).
    pub rule: Option<Action>,
}

/// Where an agent's proposals go. Ids are derived from agent, target and time, so they are
/// identical across runs and across agent restarts (the arbiter drops duplicate ids).
#[derive(Debug)]
pub struct Proposals {
    agent: &'static str,
    items: Vec<Proposal>,
    seen: HashMap<String, u32>,
}

impl Proposals {
    /// An empty sink for `agent`.
    pub fn new(agent: &'static str) -> Self {
        Proposals {
            agent,
            items: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// Adds a proposal.
    pub fn propose(&mut self, d: Draft) {
        let base = format!("{}-{}-{}", self.agent, d.target, d.at.as_millis());
        let n = self.seen.entry(base.clone()).or_insert(0);
        *n += 1;
        let id = if *n == 1 { base } else { format!("{base}-{n}") };
        self.items.push(Proposal {
            id,
            agent: self.agent.to_string(),
            target: d.target,
            action: d.action,
            confidence: d.confidence,
            rationale: d.rationale,
            model: d.model,
            fallback: d.fallback,
            rule: d.rule,
            at: d.at,
            trace: None,
            inference: d.inference,
        });
    }

    /// How many proposals are waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no proposal is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes the proposals made so far and forgets their ids.
    pub fn take(&mut self) -> Vec<Proposal> {
        self.seen.clear();
        std::mem::take(&mut self.items)
    }
}

/// A named feature value for a proposal's rationale.
pub fn factor(name: &str, value: f64) -> Factor {
    Factor {
        name: name.to_string(),
        value,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_unique_within_a_window() {
        let mut p = Proposals::new("scaler");
        let at = Timestamp::from_millis(1_000);
        for _ in 0..2 {
            p.propose(Draft {
                at,
                target: Target::new("cart"),
                action: Action::Scale { replicas: 3 },
                confidence: Confidence::ONE,
                rationale: vec![factor("cpu", 0.9)],
                model: None,
                fallback: None,
                inference: None,
                rule: None,
            });
        }
        let ids: Vec<String> = p.take().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, vec!["scaler-cart-1000", "scaler-cart-1000-2"]);
        assert!(p.is_empty());
    }
}
