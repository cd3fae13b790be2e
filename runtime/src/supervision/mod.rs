//! The running system: a supervision tree of actors on ractor that turns telemetry into
//! audited, actuated decisions.
//!
//! ```text
//! RootSupervisor
//! ├── AuditActor       (owns the audit log writer)
//! ├── ActuatorActor    (carries out enacted decisions)
//! ├── ArbiterActor     (closes decision windows once every agent reported)
//! ├── AgentActor × n   (one per agent; restarted on panic/hang, retired over budget)
//! └── IngressActor × p (one per source partition: decode, dead-letter, batch, tick)
//! ```
//!
//! [`Runtime::start`] builds the tree; [`Runtime::shutdown`] drains it in order once the
//! sources have ended: ingress, then agents, then the arbiter, the audit log (fsynced) and
//! the actuator.

mod actuator_host;
mod agent_host;
mod arbiter_host;
mod audit_host;
mod inbox;
mod ingress;
mod reload;
mod supervisor;
#[cfg(test)]
mod tests;

use crate::fleet_budget::{Grant, GrantRefused, UsageReport};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::actuator::Actuator;
use crate::agent::AgentSpec;
use crate::arbiter::{Arbiter, OverrideError};
use crate::audit::AuditWriter;
use crate::bus::TelemetrySource;
use crate::clock::{Clock, RealClock, Timestamp};
use crate::decision::Decision;
use crate::events::{CounterSnapshot, Counters};
use crate::metrics::{DepthProbe, Metrics};
use crate::overrides::{OperatorView, Override, OverrideJournal};
use crate::policy::Policy;
use crate::telemetry::{DeadLetterSink, DecodeLimits, Decoder};

use actuator_host::{ActuatorArgs, ActuatorMsg};
use agent_host::AgentArgs;
use arbiter_host::{ArbiterArgs, ArbiterMsg};
use audit_host::{AuditArgs, AuditMsg};
use inbox::AgentInbox;
use ingress::IngressArgs;
pub use reload::ReloadError;
use reload::SwapFactory;
pub use supervisor::RestartPolicy;
use supervisor::{Plan, Refs, RootSupervisor, SupervisorMsg};

/// Knobs with sensible defaults.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Decoding limits (payload size, timestamp skew).
    pub decode: DecodeLimits,
    /// Most messages an ingress takes from its source at once (and hands to agents as one
    /// batch).
    pub batch_max: usize,
    /// Batches an agent's inbox holds before ingress waits (backpressure).
    pub inbox_capacity: usize,
    /// How long an agent may take over one batch or tick before it counts as hung.
    pub heartbeat: Duration,
    /// How failed agents are restarted.
    pub restart: RestartPolicy,
    /// The clock heartbeats and restart backoff run on (the wall clock unless a test
    /// injects one).
    pub watchdog: Arc<dyn Clock>,
    /// Decide for a target only in windows in which this instance received telemetry
    /// about it. On a shared (Key_Shared) subscription that is how a target has one
    /// arbiter at a time: the broker hands a key to one instance, and an instance that
    /// lost a key stops deciding for it at the next window.
    pub decide_only_observed: bool,
    /// Share the policy's fleet replica budget with other instances through a budget
    /// holder (see [`crate::fleet_budget`]); with `decide_only_observed`, so that this
    /// instance knows which targets it owns.
    pub fleet_share: Option<crate::fleet_budget::FleetShare>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            decode: DecodeLimits::default(),
            batch_max: 512,
            inbox_capacity: 64,
            heartbeat: Duration::from_secs(10),
            restart: RestartPolicy::default(),
            watchdog: Arc::new(RealClock),
            decide_only_observed: false,
            fleet_share: None,
        }
    }
}

/// What a runtime is made of.
pub struct RuntimeConfig {
    /// The policy in force.
    pub policy: Arc<Policy>,
    /// The agents to run (see `conclave_agents::agent_specs`).
    pub agents: Vec<AgentSpec>,
    /// One source per partition.
    pub sources: Vec<Box<dyn TelemetrySource>>,
    /// The audit log.
    pub audit: AuditWriter,
    /// Carries out enacted decisions.
    pub actuator: Box<dyn Actuator>,
    /// Where bad telemetry goes.
    pub dead_letters: Arc<dyn DeadLetterSink>,
    /// Event time: decisions are stamped with it, decoding checks timestamps against it.
    pub clock: Arc<dyn Clock>,
    /// Every decision is also sent here, in order (e.g. `conclave run` prints them).
    pub decision_tap: Option<mpsc::UnboundedSender<Decision>>,
    /// Knobs.
    pub tuning: Tuning,
    /// The override journal and the standing overrides it held when opened (see
    /// [`OverrideJournal::open`]): those are in force from the start, and every override
    /// applied later is written to it first. `None` keeps overrides in memory only.
    pub journal: Option<(OverrideJournal, Vec<Override>)>,
}

/// Why the runtime could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No source to read from.
    #[error("the runtime needs at least one telemetry source")]
    NoSources,
    /// An actor could not be spawned.
    #[error("cannot start the runtime: {0}")]
    Spawn(String),
    /// A core actor failed; the runtime stopped.
    #[error("the runtime stopped: {0}")]
    Failed(String),
    /// The audit log could not be synced at shutdown.
    #[error("cannot flush the audit log: {0}")]
    AuditFlush(String),
}

/// Figures at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The counters.
    pub counters: CounterSnapshot,
    /// The sequence number the next audit record would get.
    pub next_audit_seq: u64,
}

/// A running runtime.
pub struct Runtime {
    supervisor: ActorRef<SupervisorMsg>,
    join: JoinHandle<()>,
    refs: Refs,
    counters: Arc<Counters>,
    metrics: Arc<Metrics>,
    fatal: Arc<Mutex<Option<String>>>,
    ingress_done: mpsc::UnboundedReceiver<usize>,
    partitions: usize,
    agents_drained: mpsc::UnboundedReceiver<&'static str>,
    agent_count: usize,
    views: watch::Receiver<OperatorView>,
    /// Each agent's replaceable factory, in the order the policy gave them.
    factories: Arc<[(&'static str, Arc<SwapFactory>)]>,
    window: Duration,
    /// The policy in force (a reload replaces it).
    policy: Arc<watch::Sender<Arc<Policy>>>,
}

impl Runtime {
    /// Builds and starts the supervision tree, with metrics of its own (see
    /// [`Runtime::metrics`]).
    ///
    /// # Errors
    /// [`RuntimeError::NoSources`] or [`RuntimeError::Spawn`].
    pub async fn start(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        Self::start_with_metrics(config, Arc::new(Metrics::new())).await
    }

    /// [`Runtime::start`], recording into `metrics`: a registry made before the runtime,
    /// so an exporter set up first (the binary's OTLP export) reads this runtime. Its
    /// counters go on from where they are; its queue gauges now read this runtime's.
    ///
    /// # Errors
    /// As [`Runtime::start`].
    pub async fn start_with_metrics(
        config: RuntimeConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Runtime, RuntimeError> {
        if config.sources.is_empty() {
            return Err(RuntimeError::NoSources);
        }
        let counters = metrics.counters().clone();
        let fatal = Arc::new(Mutex::new(None));
        let partitions = config.sources.len();
        let agent_count = config.agents.len();
        let tuning = config.tuning.clone();
        let (ingress_tx, ingress_done) = mpsc::unbounded_channel();
        let (drained_tx, agents_drained) = mpsc::unbounded_channel();
        let window = config.policy.arbiter().window();
        let inboxes: Vec<Arc<AgentInbox>> = config
            .agents
            .iter()
            .map(|_| AgentInbox::new(tuning.inbox_capacity, partitions))
            .collect();
        let names: BTreeSet<&'static str> = config.agents.iter().map(|a| a.name).collect();
        metrics.set_queues(
            config
                .agents
                .iter()
                .zip(&inboxes)
                .map(|(spec, inbox)| {
                    let inbox = inbox.clone();
                    (spec.name, DepthProbe::new(move || inbox.depth()))
                })
                .collect(),
            config
                .sources
                .iter()
                .filter_map(|s| s.depth_probe())
                .collect(),
        );

        let arbiter = Arbiter::new(config.policy.clone());
        let (c1, c2, c3) = (counters.clone(), counters.clone(), counters.clone());
        let clock = config.clock.clone();
        let tap = config.decision_tap;
        let journal = config.journal;
        let (view_tx, views) = watch::channel(OperatorView::build(
            &config.policy,
            &crate::arbiter::ArbiterState::new(),
            &BTreeSet::new(),
            config.clock.now(),
        ));
        let factories: Vec<(&'static str, Arc<SwapFactory>)> = config
            .agents
            .iter()
            .map(|a| (a.name, SwapFactory::new(a.factory.clone())))
            .collect();
        let agent_factories: Vec<Arc<SwapFactory>> =
            factories.iter().map(|(_, f)| f.clone()).collect();
        let agent_specs = config.agents;
        let agent_inboxes = inboxes.clone();
        let dead_letters = config.dead_letters;
        let dl2 = dead_letters.clone();
        let agent_metrics = metrics.clone();
        let sources = config.sources;
        let ingress_clock = config.clock.clone();
        let senders: Vec<_> = inboxes.iter().map(|i| i.sender()).collect();
        let t2 = tuning.clone();
        let plan = Plan {
            audit: AuditArgs {
                writer: config.audit,
                counters: counters.clone(),
            },
            actuator: ActuatorArgs {
                actuator: config.actuator,
                counters: counters.clone(),
            },
            arbiter: Box::new(move |audit, actuator| ArbiterArgs {
                arbiter,
                agents: names,
                audit,
                actuator,
                counters: c1,
                clock,
                tap,
                decide_only_observed: tuning.decide_only_observed,
                fleet_share: tuning.fleet_share.clone(),
                journal,
                view: view_tx,
            }),
            agents: Box::new(move |arbiter| {
                agent_specs
                    .into_iter()
                    .zip(agent_inboxes)
                    .zip(agent_factories)
                    .map(|((spec, inbox), factory)| AgentArgs {
                        spec,
                        factory,
                        inbox,
                        arbiter: arbiter.clone(),
                        dead_letters: dl2.clone(),
                        counters: c2.clone(),
                        metrics: agent_metrics.clone(),
                        watchdog: t2.watchdog.clone(),
                        heartbeat: t2.heartbeat,
                        drained: drained_tx.clone(),
                    })
                    .collect()
            }),
            ingress: Box::new(move |arbiter| {
                sources
                    .into_iter()
                    .enumerate()
                    .map(|(partition, source)| IngressArgs {
                        partition,
                        source,
                        decoder: Decoder::new(tuning.decode),
                        clock: ingress_clock.clone(),
                        window,
                        batch_max: tuning.batch_max.max(1),
                        dead_letters: dead_letters.clone(),
                        counters: c3.clone(),
                        inboxes: senders.clone(),
                        arbiter: arbiter.clone(),
                        done: ingress_tx.clone(),
                        track_seen: t2.decide_only_observed,
                    })
                    .collect()
            }),
            restart: config.tuning.restart,
            watchdog: config.tuning.watchdog.clone(),
            counters: counters.clone(),
            fatal: fatal.clone(),
        };
        let (supervisor, join) = Actor::spawn(None, RootSupervisor, plan)
            .await
            .map_err(|e| RuntimeError::Spawn(e.to_string()))?;
        let refs = match supervisor.call(SupervisorMsg::Refs, None).await {
            Ok(CallResult::Success(refs)) => refs,
            _ => return Err(RuntimeError::Spawn("the supervisor did not answer".into())),
        };
        Ok(Runtime {
            supervisor,
            join,
            refs,
            counters,
            metrics,
            fatal,
            ingress_done,
            partitions,
            agents_drained,
            agent_count,
            views,
            factories: factories.into(),
            window,
            policy: Arc::new(watch::Sender::new(config.policy.clone())),
        })
    }

    /// The counters now.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// The runtime's metrics (for exporters: `GET /metrics`, OTLP).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Items waiting in each agent's inbox, by agent.
    pub fn inbox_depths(&self) -> Vec<(&'static str, usize)> {
        self.refs
            .inboxes
            .iter()
            .map(|(name, inbox)| (*name, inbox.depth()))
            .collect()
    }

    /// Why the runtime stopped, if a core actor failed.
    pub fn failure(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies a human override now (on the runtime's clock).
    ///
    /// # Errors
    /// The arbiter's [`OverrideError`]; [`RuntimeError::Failed`] when the runtime stopped.
    pub async fn apply_override(
        &self,
        o: Override,
    ) -> Result<Result<Vec<Decision>, OverrideError>, RuntimeError> {
        match self
            .refs
            .arbiter
            .call(|reply| ArbiterMsg::ApplyOverride(o, reply), None)
            .await
        {
            Ok(CallResult::Success(r)) => Ok(r),
            _ => Err(self.stopped()),
        }
    }

    /// A handle transports keep after the runtime starts: they wait on decisions (to
    /// acknowledge what fed them) and apply overrides that arrive on a control topic.
    pub fn handle(&self) -> RuntimeHandle {
        RuntimeHandle {
            arbiter: self.refs.arbiter.clone(),
            views: self.views.clone(),
            metrics: self.metrics.clone(),
            factories: self.factories.clone(),
            window: self.window,
            policy: self.policy.clone(),
        }
    }

    /// Waits until the decision window ending at `at` (or a later one) is decided, audited
    /// and carried out by the actuator. With a
    /// simulated clock this is how a driver steps the runtime: publish a window's
    /// telemetry and its watermark, then wait for its decisions.
    ///
    /// # Errors
    /// [`RuntimeError::Failed`] when the runtime stopped.
    pub async fn decided_through(&self, at: Timestamp) -> Result<(), RuntimeError> {
        match self
            .refs
            .arbiter
            .call(|reply| ArbiterMsg::WaitDecided(at, reply), None)
            .await
        {
            Ok(CallResult::Success(())) => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    fn stopped(&self) -> RuntimeError {
        RuntimeError::Failed(
            self.failure()
                .unwrap_or_else(|| "the arbiter is not running".to_string()),
        )
    }

    /// Drains and stops: waits for every source to end (close them first), for every
    /// agent to handle what it was given, for the arbiter to decide it, then fsyncs the
    /// audit log and flushes the actuator.
    ///
    /// # Errors
    /// [`RuntimeError::Failed`] when a core actor failed on the way,
    /// [`RuntimeError::AuditFlush`] when the final fsync failed.
    pub async fn shutdown(mut self) -> Result<ShutdownReport, RuntimeError> {
        for _ in 0..self.partitions {
            if self.ingress_done.recv().await.is_none() {
                break;
            }
        }
        for _ in 0..self.agent_count {
            if self.agents_drained.recv().await.is_none() {
                break;
            }
        }
        if let Some(why) = self.failure() {
            self.supervisor.stop(None);
            return Err(RuntimeError::Failed(why));
        }
        let flushed = self.refs.arbiter.call(ArbiterMsg::Flush, None).await;
        if !matches!(flushed, Ok(CallResult::Success(()))) {
            return Err(self.stopped());
        }
        let audit = self.refs.audit.call(AuditMsg::Flush, None).await;
        let next_audit_seq = match audit {
            Ok(CallResult::Success(Ok(seq))) => seq,
            Ok(CallResult::Success(Err(e))) => return Err(RuntimeError::AuditFlush(e)),
            _ => return Err(self.stopped()),
        };
        let _ = self.refs.actuator.call(ActuatorMsg::Flush, None).await;
        self.supervisor.stop(None);
        let _ = self.join.await;
        Ok(ShutdownReport {
            counters: self.counters.snapshot(),
            next_audit_seq,
        })
    }
}

/// A cloneable handle on a running [`Runtime`] (see [`Runtime::handle`]).
#[derive(Clone)]
pub struct RuntimeHandle {
    arbiter: ActorRef<ArbiterMsg>,
    views: watch::Receiver<OperatorView>,
    metrics: Arc<Metrics>,
    factories: Arc<[(&'static str, Arc<SwapFactory>)]>,
    window: Duration,
    /// The policy in force (a reload replaces it).
    policy: Arc<watch::Sender<Arc<Policy>>>,
}

impl RuntimeHandle {
    /// Puts `policy` in force, with `agents` built for it (see [`reload`](self::reload)
    /// for what a reload keeps and what it refuses).
    ///
    /// # Errors
    /// [`ReloadError`]; the running policy then stays in force.
    pub async fn reload(
        &self,
        policy: Arc<Policy>,
        agents: Vec<AgentSpec>,
    ) -> Result<(), ReloadError> {
        let running: Vec<&'static str> = self.factories.iter().map(|(n, _)| *n).collect();
        let new: Vec<&'static str> = agents.iter().map(|a| a.name).collect();
        if running != new {
            return Err(ReloadError::Agents { running, new });
        }
        let window = policy.arbiter().window();
        if window != self.window {
            return Err(ReloadError::Window {
                running: self.window,
                new: window,
            });
        }
        // The arbiter first: proposals the new agents make are decided under their policy.
        match self
            .arbiter
            .call(|reply| ArbiterMsg::Reload(policy.clone(), reply), None)
            .await
        {
            Ok(CallResult::Success(())) => {}
            _ => return Err(ReloadError::Stopped),
        }
        for ((_, swap), spec) in self.factories.iter().zip(agents) {
            swap.replace(spec.factory);
        }
        self.policy.send_replace(policy);
        Ok(())
    }

    /// Waits until the window ending at `at` (or a later one) is decided, audited and
    /// carried out; see [`Runtime::decided_through`].
    ///
    /// # Errors
    /// [`RuntimeError::Failed`] when the runtime stopped.
    pub async fn decided_through(&self, at: Timestamp) -> Result<(), RuntimeError> {
        match self
            .arbiter
            .call(|reply| ArbiterMsg::WaitDecided(at, reply), None)
            .await
        {
            Ok(CallResult::Success(())) => Ok(()),
            _ => Err(RuntimeError::Failed(
                "the arbiter is not running".to_string(),
            )),
        }
    }

    /// What operators see: agents and their modes, pending approvals, overrides in force,
    /// as of the arbiter's last change. Reading it sends the arbiter nothing.
    pub fn view(&self) -> OperatorView {
        self.views.borrow().clone()
    }

    /// The next report to the fleet budget holder; `None` when the budget is not shared
    /// (or the policy sets none).
    ///
    /// # Errors
    /// [`RuntimeError::Failed`] when the runtime stopped.
    pub async fn fleet_report(&self) -> Result<Option<UsageReport>, RuntimeError> {
        match self.arbiter.call(ArbiterMsg::FleetReport, None).await {
            Ok(CallResult::Success(r)) => Ok(r),
            _ => Err(RuntimeError::Failed(
                "the arbiter is not running".to_string(),
            )),
        }
    }

    /// Hands the arbiter a grant from the fleet budget holder.
    ///
    /// # Errors
    /// [`RuntimeError::Failed`] when the runtime stopped; the inner error says why the
    /// grant was not taken.
    pub async fn fleet_grant(
        &self,
        grant: Grant,
    ) -> Result<Result<(), GrantRefused>, RuntimeError> {
        match self
            .arbiter
            .call(|reply| ArbiterMsg::FleetGrant(grant, reply), None)
            .await
        {
            Ok(CallResult::Success(r)) => Ok(r),
            _ => Err(RuntimeError::Failed(
                "the arbiter is not running".to_string(),
            )),
        }
    }

    /// The policy in force: the one started with, or the last one reloaded.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.borrow().clone()
    }

    /// The runtime's metrics; see [`Runtime::metrics`].
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether the arbiter is running (the runtime decides).
    pub fn is_running(&self) -> bool {
        self.arbiter.get_status() == ractor::ActorStatus::Running
    }

    /// Applies a human override; see [`Runtime::apply_override`].
    ///
    /// # Errors
    /// [`RuntimeError::Failed`] when the runtime stopped; the inner error when the
    /// override was refused.
    pub async fn apply_override(
        &self,
        o: Override,
    ) -> Result<Result<Vec<Decision>, OverrideError>, RuntimeError> {
        match self
            .arbiter
            .call(|reply| ArbiterMsg::ApplyOverride(o, reply), None)
            .await
        {
            Ok(CallResult::Success(r)) => Ok(r),
            _ => Err(RuntimeError::Failed(
                "the arbiter is not running".to_string(),
            )),
        }
    }
}
