//! Actuators: what carries out decisions that take effect.
//!
//! The runtime calls an [`Actuator`] for every decision whose outcome is acted on
//! (`enacted`, `modified`); shadowed, advised, pending and rejected ones never reach it.
//! Implementations here: [`LogActuator`] (writes one line per action), [`MemoryActuator`]
//! (tests) and [`SinkActuator`] (publishes action records to a bus topic). The simulated
//! fleet and Kubernetes come with their own issues.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;

use crate::bus::{ActionSink, BoxFuture, BusError};
use crate::decision::Decision;

/// Why an action could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// Writing the action line failed.
    #[error("cannot write the action for decision `{decision}`")]
    Write {
        /// The decision.
        decision: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Publishing to the actions topic failed.
    #[error("cannot publish the action for decision `{decision}`")]
    Publish {
        /// The decision.
        decision: String,
        /// The cause.
        #[source]
        source: BusError,
    },
}

/// Carries out decisions.
pub trait Actuator: Send + 'static {
    /// A short name for logs and metrics (`log`, `memory`, `pulsar`).
    fn name(&self) -> &'static str;

    /// Carries out one decision (its `action`, which is always present for decisions that
    /// are acted on).
    fn apply<'a>(&'a mut self, decision: &'a Decision) -> BoxFuture<'a, Result<(), ActuatorError>>;

    /// Makes everything applied so far durable or visible (called at shutdown).
    fn flush(&mut self) -> BoxFuture<'_, Result<(), ActuatorError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The record an actuator publishes: enough to act on without reading the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord<'a> {
    /// The decision id.
    pub decision: &'a str,
    /// When it was decided.
    pub at: crate::clock::Timestamp,
    /// The target.
    pub target: &'a crate::target::Target,
    /// What to do.
    pub action: &'a crate::action::Action,
    /// The agent that proposed it.
    pub agent: &'a str,
    /// What the arbiter decided (`enacted`, or `modified` with the original).
    pub outcome: &'a crate::decision::Outcome,
    /// Why, in order.
    pub reasons: &'a [crate::decision::Reason],
    /// The policy revision it was decided under.
    pub policy_revision: &'a str,
}

impl<'a> ActionRecord<'a> {
    /// The record for `d`, or `None` when `d` carries no action.
    pub fn of(d: &'a Decision) -> Option<Self> {
        d.action.as_ref().map(|action| ActionRecord {
            decision: &d.id,
            at: d.at,
            target: &d.target,
            action,
            agent: &d.agent,
            outcome: &d.outcome,
            reasons: &d.reasons,
            policy_revision: &d.policy_revision,
        })
    }
}

/// Writes one line per action (`<at> <target> <action> (<decision id>)`) to a writer.
pub struct LogActuator<W: Write + Send + 'static> {
    out: W,
}

impl<W: Write + Send + 'static> LogActuator<W> {
    /// An actuator writing to `out`.
    pub fn new(out: W) -> Self {
        LogActuator { out }
    }
}

impl<W: Write + Send + 'static> Actuator for LogActuator<W> {
    fn name(&self) -> &'static str {
        "log"
    }

    fn apply<'a>(&'a mut self, d: &'a Decision) -> BoxFuture<'a, Result<(), ActuatorError>> {
        let result = match &d.action {
            Some(action) => writeln!(self.out, "{} {} {} ({})", d.at, d.target, action, d.id),
            None => Ok(()),
        };
        Box::pin(async move {
            result.map_err(|source| ActuatorError::Write {
                decision: d.id.clone(),
                source,
            })
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let result = self.out.flush();
        Box::pin(async move {
            result.map_err(|source| ActuatorError::Write {
                decision: String::new(),
                source,
            })
        })
    }
}

/// Keeps every applied decision in memory; clones share the list (tests read it).
#[derive(Debug, Clone, Default)]
pub struct MemoryActuator {
    applied: Arc<Mutex<Vec<Decision>>>,
}

impl MemoryActuator {
    /// An empty actuator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The decisions applied so far, in order.
    pub fn applied(&self) -> Vec<Decision> {
        self.applied
            .lock()
            .map(|a| a.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl Actuator for MemoryActuator {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn apply<'a>(&'a mut self, d: &'a Decision) -> BoxFuture<'a, Result<(), ActuatorError>> {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(d.clone());
        Box::pin(async { Ok(()) })
    }
}

/// Publishes [`ActionRecord`]s as JSON to an [`ActionSink`] (the embedded bus's actions
/// topic today, Pulsar's with the Pulsar issue), keyed by target.
pub struct SinkActuator<S: ActionSink> {
    sink: S,
}

impl<S: ActionSink> SinkActuator<S> {
    /// An actuator publishing to `sink`.
    pub fn new(sink: S) -> Self {
        SinkActuator { sink }
    }
}

impl<S: ActionSink> Actuator for SinkActuator<S> {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn apply<'a>(&'a mut self, d: &'a Decision) -> BoxFuture<'a, Result<(), ActuatorError>> {
        Box::pin(async move {
            let Some(record) = ActionRecord::of(d) else {
                return Ok(());
            };
            // Serializing these plain structs cannot fail (string keys, finite floats are
            // checked upstream); an empty payload would still be published and visible.
            let payload = serde_json::to_vec(&record).unwrap_or_default();
            let mut properties = vec![("conclave-decision-id", d.id.clone())];
            if let Some(trace) = &d.trace_id {
                properties.push(("conclave-trace-id", trace.clone()));
            }
            self.sink
                .publish(d.target.as_str(), Bytes::from(payload), &properties)
                .await
                .map_err(|source| ActuatorError::Publish {
                    decision: d.id.clone(),
                    source,
                })
        })
    }
}
