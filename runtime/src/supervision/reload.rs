//! Policy reload while the runtime runs: the arbiter takes the new policy at once, and
//! each agent's next piece of work is done by a fresh instance built from the new policy's
//! factory (its models loaded anew). Nothing queued is dropped — the inboxes outlive
//! agent instances, as they do across restarts — but a rebuilt agent's feature windows
//! start empty and warm up again.
//!
//! A reload keeps what the running pipeline is built on: the same agents (the supervision
//! tree has one host per agent) and the same decision window (the ingress partitions cut
//! windows with it). A policy that changes either is refused; restart for those.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::agent::{Agent, AgentFactory};

/// An agent's factory, replaceable by a reload; the generation says which one built an
/// instance.
pub(crate) struct SwapFactory {
    factory: Mutex<AgentFactory>,
    generation: AtomicU64,
}

impl SwapFactory {
    pub(crate) fn new(factory: AgentFactory) -> Arc<Self> {
        Arc::new(SwapFactory {
            factory: Mutex::new(factory),
            generation: AtomicU64::new(0),
        })
    }

    /// A new instance, and the generation of the factory that built it.
    pub(crate) fn build(&self) -> (Box<dyn Agent>, u64) {
        // Read the generation first: a reload in between makes the instance look older
        // than it is, so it is rebuilt once more, never kept when stale.
        let generation = self.generation.load(Ordering::Acquire);
        let factory = self
            .factory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (factory(), generation)
    }

    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the factory; instances of earlier generations are rebuilt before their
    /// next piece of work.
    pub(crate) fn replace(&self, factory: AgentFactory) {
        *self.factory.lock().unwrap_or_else(PoisonError::into_inner) = factory;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Why a reload was refused; the running policy stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new policy runs other agents.
    #[error(
        "the new policy runs agents [{}], the running one [{}]; adding or removing an agent needs a restart",
        new.join(", "),
        running.join(", ")
    )]
    Agents {
        /// The running agents.
        running: Vec<&'static str>,
        /// The new policy's.
        new: Vec<&'static str>,
    },
    /// The new policy has another decision window.
    #[error(
        "the new policy's decision window is {}, the running one's {}; changing it needs a restart",
        humantime::format_duration(*new),
        humantime::format_duration(*running)
    )]
    Window {
        /// The running window.
        running: Duration,
        /// The new one.
        new: Duration,
    },
    /// The runtime is not running any more.
    #[error("the runtime has stopped")]
    Stopped,
}
