//! Recent decisions for the API: a bounded history to query and a broadcast for the live
//! stream. Fed from the runtime's decision tap; never blocks it (a slow stream reader
//! misses decisions and is told how many, the arbiter does not wait).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::sync::broadcast;

use crate::decision::Decision;

/// Which decisions a query wants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    /// Only decisions about this target.
    pub target: Option<String>,
    /// Only this agent's decisions.
    pub agent: Option<String>,
    /// Only decisions with this outcome (`enacted`, `pending`, `rejected`, ...).
    pub outcome: Option<String>,
    /// At most this many, newest last (default 100, at most the history's size).
    pub limit: Option<usize>,
}

impl DecisionQuery {
    fn matches(&self, d: &Decision) -> bool {
        self.target
            .as_deref()
            .is_none_or(|t| d.target.as_str() == t)
            && self.agent.as_deref().is_none_or(|a| d.agent == a)
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| d.outcome.name() == o)
    }
}

/// The history and the live stream.
#[derive(Clone)]
pub struct DecisionFeed {
    history: Arc<Mutex<VecDeque<Decision>>>,
    capacity: usize,
    live: broadcast::Sender<Arc<Decision>>,
}

impl DecisionFeed {
    /// A feed keeping the last `capacity` decisions.
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(1024);
        DecisionFeed {
            history: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity: capacity.max(1),
            live,
        }
    }

    /// Records a decision and sends it to every stream.
    pub fn push(&self, d: Decision) {
        let d = Arc::new(d);
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if h.len() == self.capacity {
                h.pop_front();
            }
            h.push_back((*d).clone());
        }
        // No receiver is fine: nobody is watching.
        let _ = self.live.send(d);
    }

    /// The newest decisions matching `q`, oldest first.
    pub fn query(&self, q: &DecisionQuery) -> Vec<Decision> {
        let limit = q.limit.unwrap_or(100).min(self.capacity);
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Decision> = h
            .iter()
            .rev()
            .filter(|d| q.matches(d))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Every record of decision `id` still in the history (pending, then settled), oldest
    /// first.
    pub fn get(&self, id: &str) -> Vec<Decision> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().filter(|d| d.id == id).cloned().collect()
    }

    /// A receiver of decisions from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Decision>> {
        self.live.subscribe()
    }
}
