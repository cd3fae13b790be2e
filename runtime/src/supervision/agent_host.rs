//! The actor that hosts one agent: it takes work from the agent's inbox, runs the agent's
//! synchronous logic on the blocking pool under a heartbeat deadline, and hands each
//! window's proposals to the arbiter.
//!
//! The agent runs off the async workers so a slow or stuck agent cannot starve the others,
//! and so a hang can be detected: when the deadline passes, this incarnation gives up,
//! dead-letters the message it was stuck on, and fails, and the supervisor starts a fresh
//! one. (A thread stuck in a loop cannot be killed from safe Rust; it is abandoned.)

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use super::arbiter_host::ArbiterMsg;
use super::inbox::{AgentInbox, InboxItem, Next};
use super::reload::SwapFactory;
use crate::agent::{Agent, AgentSpec, Proposals};
use crate::clock::Clock;
use crate::events::{AgentHung, AgentPanicked, Counters, ProposalsSent, TelemetryDeadLettered};
use crate::metrics::Metrics;
use crate::proposal::Proposal;
use crate::telemetry::{DeadLetter, DeadLetterReason, DeadLetterSink, Telemetry};

/// Hosts one agent.
pub(crate) struct AgentActor;

/// Messages to an agent host.
#[derive(Debug)]
pub(crate) enum AgentMsg {
    /// Take the next piece of work from the inbox.
    Pump,
}

/// What an agent host needs; cloned for every incarnation.
#[derive(Clone)]
pub(crate) struct AgentArgs {
    pub(crate) spec: AgentSpec,
    /// Builds the agent's instances; a policy reload replaces it.
    pub(crate) factory: Arc<SwapFactory>,
    pub(crate) inbox: Arc<AgentInbox>,
    pub(crate) arbiter: ActorRef<ArbiterMsg>,
    pub(crate) dead_letters: Arc<dyn DeadLetterSink>,
    pub(crate) counters: Arc<Counters>,
    /// Where the agent's models are registered for export (latency, drift).
    pub(crate) metrics: Arc<Metrics>,
    /// Time for heartbeat deadlines: the wall clock even in simulations, because a hang is
    /// about real CPU time, not simulated time.
    pub(crate) watchdog: Arc<dyn Clock>,
    pub(crate) heartbeat: Duration,
    /// Told once this agent has handled everything (shutdown).
    pub(crate) drained: mpsc::UnboundedSender<&'static str>,
}

pub(crate) struct AgentState {
    args: AgentArgs,
    agent: Option<Box<dyn Agent>>,
    /// The factory generation that built `agent`.
    built: u64,
    proposals: Option<Proposals>,
}

/// How a run of agent code ended badly, and on which message.
enum Failure {
    Panicked { at: usize, message: String },
    Hung { at: usize },
}

impl Failure {
    fn at(&self) -> usize {
        match self {
            Failure::Panicked { at, .. } | Failure::Hung { at } => *at,
        }
    }
}

/// The reason an incarnation stops after a failure (becomes the supervisor's event).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentFailure {
    #[error("agent `{agent}` panicked: {message}")]
    Panicked {
        agent: &'static str,
        message: String,
    },
    #[error("agent `{agent}` missed its heartbeat deadline of {deadline:?}")]
    Hung {
        agent: &'static str,
        deadline: Duration,
    },
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl AgentState {
    fn name(&self) -> &'static str {
        self.args.spec.name
    }

    /// Runs `work` on the blocking pool with the agent and its proposal sink, under the
    /// heartbeat deadline. `progress` is updated by `work` with the index being handled, so
    /// a failure names the message that caused it.
    async fn run<R, F>(&mut self, work: F) -> Result<R, Failure>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Agent, &mut Proposals, &AtomicUsize) -> R + Send + 'static,
    {
        let name = self.name();
        let current = self.args.factory.generation();
        let mut agent = match self.agent.take() {
            Some(a) if self.built == current => a,
            // None after a failure, or built from the policy before a reload.
            stale => {
                let (a, generation) = self.args.factory.build();
                if stale.is_some() {
                    self.args.metrics.register_models(a.models());
                }
                self.built = generation;
                a
            }
        };
        let mut proposals = self
            .proposals
            .take()
            .unwrap_or_else(|| Proposals::new(name));
        let progress = Arc::new(AtomicUsize::new(0));
        let seen = progress.clone();
        let deadline = self.args.watchdog.now().plus(self.args.heartbeat);
        let handle = tokio::task::spawn_blocking(move || {
            let r = work(agent.as_mut(), &mut proposals, &seen);
            (agent, proposals, r)
        });
        tokio::select! {
            joined = handle => match joined {
                Ok((agent, proposals, r)) => {
                    self.agent = Some(agent);
                    self.proposals = Some(proposals);
                    Ok(r)
                }
                Err(e) => {
                    let message = if e.is_panic() {
                        panic_message(e.into_panic().as_ref())
                    } else {
                        "agent task cancelled".to_string()
                    };
                    Err(Failure::Panicked { at: progress.load(Ordering::SeqCst), message })
                }
            },
            () = self.args.watchdog.sleep_until(deadline) => {
                Err(Failure::Hung { at: progress.load(Ordering::SeqCst) })
            }
        }
    }

    fn dead_letter(&self, topic: &str, t: &Telemetry, failure: &Failure) {
        let (reason, error) = match failure {
            Failure::Panicked { message, .. } => (
                DeadLetterReason::AgentPanicked,
                format!(
                    "agent `{}` panicked handling this message: {message}",
                    self.name()
                ),
            ),
            Failure::Hung { .. } => (
                DeadLetterReason::AgentHung,
                format!(
                    "agent `{}` did not finish handling this message within {:?}",
                    self.name(),
                    self.args.heartbeat
                ),
            ),
        };
        TelemetryDeadLettered {
            topic,
            reason,
            error: &error,
        }
        .emit(&self.args.counters);
        self.args.dead_letters.send(DeadLetter {
            at: t.ts(),
            topic: topic.to_string(),
            reason,
            error,
            // Re-encoded: the original bytes are not kept past decoding (batches hold typed
            // telemetry); serializing decoded telemetry cannot fail.
            payload: serde_json::to_vec(t).unwrap_or_default(),
        });
    }

    fn failure_error(&self, failure: Failure) -> AgentFailure {
        match failure {
            Failure::Panicked { message, .. } => {
                AgentPanicked {
                    agent: self.name(),
                    message: &message,
                }
                .emit();
                AgentFailure::Panicked {
                    agent: self.name(),
                    message,
                }
            }
            Failure::Hung { .. } => {
                AgentHung {
                    agent: self.name(),
                    deadline: self.args.heartbeat,
                }
                .emit();
                AgentFailure::Hung {
                    agent: self.name(),
                    deadline: self.args.heartbeat,
                }
            }
        }
    }

    fn send_ready(&self, at: crate::clock::Timestamp, proposals: Vec<Proposal>) {
        ProposalsSent {
            agent: self.name(),
            proposals: &proposals,
        }
        .emit(&self.args.counters);
        // The arbiter outlives agents; if it is gone the runtime is stopping anyway.
        let _ = self.args.arbiter.send_message(ArbiterMsg::AgentReady {
            agent: self.name(),
            at,
            proposals,
        });
    }
}

impl Actor for AgentActor {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AgentArgs,
    ) -> Result<AgentState, ActorProcessingErr> {
        let (agent, built) = args.factory.build();
        args.metrics.register_models(agent.models());
        let proposals = Proposals::new(args.spec.name);
        myself.send_message(AgentMsg::Pump)?;
        Ok(AgentState {
            args,
            agent: Some(agent),
            built,
            proposals: Some(proposals),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        AgentMsg::Pump: AgentMsg,
        state: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match state.args.inbox.next().await {
            Next::Batch {
                partition,
                topic,
                items,
                start,
            } => {
                let mut runs = vec![Run {
                    partition,
                    topic,
                    items,
                    start,
                }];
                let mut queued = runs[0].items.len() - start;
                while queued < COALESCE_MESSAGES {
                    let Some(Next::Batch {
                        partition,
                        topic,
                        items,
                        start,
                    }) = state.args.inbox.try_next_batch()
                    else {
                        break;
                    };
                    queued += items.len() - start;
                    runs.push(Run {
                        partition,
                        topic,
                        items,
                        start,
                    });
                }
                let work: Vec<(Arc<Vec<Telemetry>>, usize)> =
                    runs.iter().map(|r| (r.items.clone(), r.start)).collect();
                let result = state
                    .run(move |agent, out, progress| {
                        let mut observed = 0u64;
                        for (r, (items, start)) in work.iter().enumerate() {
                            for (i, t) in items.iter().enumerate().skip(*start) {
                                if agent.wants(t.kind()) {
                                    progress.store(position(r, i), Ordering::SeqCst);
                                    agent.observe(t, out);
                                    observed += 1;
                                }
                            }
                        }
                        observed
                    })
                    .await;
                match result {
                    Ok(observed) => state.args.counters.add_observed(state.name(), observed),
                    Err(failure) => {
                        let (r, i) = unpack(failure.at());
                        if let Some(t) = runs.get(r).and_then(|run| run.items.get(i)) {
                            state.dead_letter(&runs[r].topic, t, &failure);
                        }
                        // Everything after the poison message goes back, in order.
                        for (k, run) in runs.into_iter().enumerate().skip(r).rev() {
                            let start = if k == r { i + 1 } else { run.start };
                            if start < run.items.len() {
                                state.args.inbox.requeue_front(InboxItem::Batch {
                                    partition: run.partition,
                                    topic: run.topic,
                                    items: run.items,
                                    start,
                                });
                            }
                        }
                        return Err(Box::new(state.failure_error(failure)));
                    }
                }
            }
            Next::Tick(at) => {
                let result = state
                    .run(move |agent, out, _| {
                        agent.tick(at, out);
                        out.take()
                    })
                    .await;
                match result {
                    Ok(proposals) => state.send_ready(at, proposals),
                    Err(failure) => {
                        // The window must still close for the other agents.
                        state.send_ready(at, Vec::new());
                        return Err(Box::new(state.failure_error(failure)));
                    }
                }
            }
            Next::Drained => {
                let _ = state.args.drained.send(state.name());
                myself.stop(Some(DRAINED.to_string()));
                return Ok(());
            }
        }
        myself.send_message(AgentMsg::Pump)?;
        Ok(())
    }
}

/// Messages handled in one call to the agent when several batches are ready at once.
const COALESCE_MESSAGES: usize = 4096;

/// A batch (or the rest of one) handed to the agent in one call.
struct Run {
    partition: usize,
    topic: Arc<str>,
    items: Arc<Vec<Telemetry>>,
    start: usize,
}

/// Progress through several runs as one number: run index in the high half.
fn position(run: usize, item: usize) -> usize {
    (run << 32) | (item & 0xFFFF_FFFF)
}

fn unpack(position: usize) -> (usize, usize) {
    (position >> 32, position & 0xFFFF_FFFF)
}

/// The stop reason of an agent that finished its work (not restarted).
pub(crate) const DRAINED: &str = "drained";
