//! What the external scaler answers from: per target, the replicas of the latest decision
//! that was carried out (the scaler's, an approved one, a human pin), and the latest
//! shadowed scaler decision (what it would have said, and the reactive HPA answer it was
//! built on). Fed from the runtime's decision tap; readers never wait on the arbiter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::action::Action;
use crate::decision::{Decision, Outcome};
use crate::target::Target;

/// A carried-out scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enacted {
    /// Replicas.
    pub replicas: u32,
    /// The decision.
    pub decision: String,
}

/// A scale the scaler decided in shadow mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowed {
    /// What Conclave would have answered.
    pub would: u32,
    /// The reactive (HPA) answer the proposal started from.
    pub reactive: u32,
    /// The decision.
    pub decision: String,
}

#[derive(Debug, Default)]
struct Entry {
    enacted: Option<Enacted>,
    shadowed: Option<Shadowed>,
}

/// The book.
#[derive(Debug, Clone)]
pub struct ScaleBook {
    entries: Arc<Mutex<BTreeMap<Target, Entry>>>,
    /// Bumped on every change, so streams know to look again.
    changed: watch::Sender<u64>,
}

impl Default for ScaleBook {
    fn default() -> Self {
        ScaleBook {
            entries: Arc::default(),
            changed: watch::channel(0).0,
        }
    }
}

/// The replicas a scaler proposal's reactive (HPA) part asked for, from its rationale.
fn reactive_of(d: &Decision) -> Option<u32> {
    let p = d.proposals.iter().find(|p| p.agent == d.agent)?;
    ["stabilized_replicas", "metric_replicas", "current_replicas"]
        .iter()
        .find_map(|name| p.rationale.iter().find(|f| f.name == *name))
        .map(|f| f.value)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v.round().min(f64::from(u32::MAX)) as u32)
}

impl ScaleBook {
    /// A new, empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes note of a decision (only scales matter).
    pub fn record(&self, d: &Decision) {
        let scale = |a: &Option<Action>| match a {
            Some(Action::Scale { replicas }) => Some(*replicas),
            _ => None,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let updated = match &d.outcome {
            o if o.is_acted_on() => match scale(&d.action) {
                Some(replicas) => {
                    entries.entry(d.target.clone()).or_default().enacted = Some(Enacted {
                        replicas,
                        decision: d.id.clone(),
                    });
                    true
                }
                None => false,
            },
            Outcome::Shadowed { .. } => match (scale(&d.action), reactive_of(d)) {
                (Some(would), Some(reactive)) => {
                    entries.entry(d.target.clone()).or_default().shadowed = Some(Shadowed {
                        would,
                        reactive,
                        decision: d.id.clone(),
                    });
                    true
                }
                _ => false,
            },
            _ => false,
        };
        drop(entries);
        if updated {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Takes note of a record from the actions topic (`ActionRecord` JSON, published by
    /// whichever instance decided it), so every instance can answer for every target.
    /// Returns whether it was a scale.
    pub fn record_action(&self, payload: &[u8]) -> bool {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return false;
        };
        let replicas = v["action"]["scale"]["replicas"]
            .as_u64()
            .and_then(|r| u32::try_from(r).ok());
        let (Some(target), Some(decision), Some(replicas)) =
            (v["target"].as_str(), v["decision"].as_str(), replicas)
        else {
            return false;
        };
        {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries.entry(Target::new(target)).or_default();
            // The same decision arrives from the tap too (on the instance that made it).
            if entry
                .enacted
                .as_ref()
                .is_some_and(|e| e.decision == decision)
            {
                return true;
            }
            entry.enacted = Some(Enacted {
                replicas,
                decision: decision.to_owned(),
            });
        }
        self.changed.send_modify(|n| *n += 1);
        true
    }

    /// The latest carried-out scale of `target`.
    pub fn enacted(&self, target: &Target) -> Option<Enacted> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(target).and_then(|e| e.enacted.clone())
    }

    /// The latest shadowed scale of `target`.
    pub fn shadowed(&self, target: &Target) -> Option<Shadowed> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(target).and_then(|e| e.shadowed.clone())
    }

    /// A receiver that changes whenever the book does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
