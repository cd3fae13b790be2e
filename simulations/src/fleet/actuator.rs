//! The runtime's hand on the simulated fleet: [`FleetActuator`] queues each decision's
//! action in a shared [`ActionQueue`], and the driver drains the queue into
//! [`Fleet::apply_queued`](super::Fleet::apply_queued) before its next step. The fleet
//! itself stays single-threaded and is never touched from the runtime's tasks.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use conclave_runtime::actuator::{Actuator, ActuatorError};
use conclave_runtime::bus::BoxFuture;
use conclave_runtime::{Action, Decision, Target, Timestamp};

/// One action waiting for the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedAction {
    /// What it is about.
    pub target: Target,
    /// What to do.
    pub action: Action,
    /// When the arbiter decided it.
    pub at: Timestamp,
}

/// Actions decided but not yet applied, in decision order. Clones share the queue.
#[derive(Debug, Clone, Default)]
pub struct ActionQueue {
    actions: Arc<Mutex<Vec<QueuedAction>>>,
}

impl ActionQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an action at the end.
    pub fn push(&self, action: QueuedAction) {
        self.lock().push(action);
    }

    /// Takes every queued action, oldest first, leaving the queue empty.
    pub fn drain(&self) -> Vec<QueuedAction> {
        std::mem::take(&mut *self.lock())
    }

    /// How many actions wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no action waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<QueuedAction>> {
        // A panic while holding the lock cannot leave a half-pushed `Vec`, so a poisoned
        // queue still holds whole actions; losing them would hide decisions from the fleet.
        self.actions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An [`Actuator`] that queues every acted-on decision's action for the simulated fleet.
#[derive(Debug, Clone, Default)]
pub struct FleetActuator {
    queue: ActionQueue,
}

impl FleetActuator {
    /// An actuator pushing into `queue` (keep a clone to drain it).
    pub fn new(queue: ActionQueue) -> Self {
        FleetActuator { queue }
    }

    /// The queue it pushes into.
    pub fn queue(&self) -> &ActionQueue {
        &self.queue
    }
}

impl Actuator for FleetActuator {
    fn name(&self) -> &'static str {
        "fleet"
    }

    fn apply<'a>(&'a mut self, d: &'a Decision) -> BoxFuture<'a, Result<(), ActuatorError>> {
        if let Some(action) = &d.action {
            self.queue.push(QueuedAction {
                target: d.target.clone(),
                action: action.clone(),
                at: d.at,
            });
        }
        Box::pin(async { Ok(()) })
    }
}
