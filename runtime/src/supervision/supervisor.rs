//! The root supervisor: owns the audit, actuator, arbiter, agent and ingress actors.
//!
//! Agents are restarted when they fail (panic, error, missed heartbeat) with exponential
//! backoff, within a restart budget; an agent over budget is retired and the others keep
//! deciding. The core actors (ingress, arbiter, audit, actuator) hold state that a restart
//! would lose or duplicate (decision windows, the log's sequence), so their failure is a
//! bug that stops the runtime with the reason, instead of continuing with wrong state.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::actuator_host::{ActuatorActor, ActuatorArgs, ActuatorMsg};
use super::agent_host::{AgentActor, AgentArgs, DRAINED};
use super::arbiter_host::{ArbiterActor, ArbiterArgs, ArbiterMsg};
use super::audit_host::{AuditActor, AuditArgs, AuditMsg};
use super::inbox::AgentInbox;
use super::ingress::{IngressActor, IngressArgs};
use crate::clock::{Clock, Timestamp};
use crate::events::{AgentRestarted, AgentRetired, Counters};

/// How failed agents are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the first restart; doubles with each restart in the budget window.
    pub backoff_base: Duration,
    /// Longest delay.
    pub backoff_max: Duration,
    /// Restarts allowed within `budget_window`; one more retires the agent.
    pub budget: u32,
    /// The window restarts are counted in.
    pub budget_window: Duration,
}

impl Default for RestartPolicy {
    /// 100 ms doubling to 10 s, at most 5 restarts a minute (a crash loop is retired
    /// within about 3 s rather than burning CPU forever).
    fn default() -> Self {
        RestartPolicy {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            budget: 5,
            budget_window: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// Delay before restart number `attempt` (1-based) within the window.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Everything the supervisor spawns, in the order it spawns it.
pub(crate) struct Plan {
    pub(crate) audit: AuditArgs,
    pub(crate) actuator: ActuatorArgs,
    /// Built once the audit and actuator refs exist.
    pub(crate) arbiter:
        Box<dyn FnOnce(ActorRef<AuditMsg>, ActorRef<ActuatorMsg>) -> ArbiterArgs + Send>,
    /// Built once the arbiter ref exists.
    pub(crate) agents: Box<dyn FnOnce(ActorRef<ArbiterMsg>) -> Vec<AgentArgs> + Send>,
    /// Built once the arbiter ref exists.
    pub(crate) ingress: Box<dyn FnOnce(ActorRef<ArbiterMsg>) -> Vec<IngressArgs> + Send>,
    pub(crate) restart: RestartPolicy,
    pub(crate) watchdog: Arc<dyn Clock>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) fatal: Arc<Mutex<Option<String>>>,
}

/// The refs the runtime handle talks to.
#[derive(Clone)]
pub(crate) struct Refs {
    pub(crate) arbiter: ActorRef<ArbiterMsg>,
    pub(crate) audit: ActorRef<AuditMsg>,
    pub(crate) actuator: ActorRef<ActuatorMsg>,
    pub(crate) inboxes: Vec<(&'static str, Arc<AgentInbox>)>,
}

/// The root supervisor.
pub(crate) struct RootSupervisor;

/// Messages to the supervisor.
pub(crate) enum SupervisorMsg {
    /// Start a new incarnation of agent `index` (after its backoff).
    SpawnAgent(usize),
    /// The refs of the core actors.
    Refs(RpcReplyPort<Refs>),
}

#[derive(Debug, Clone, Copy)]
enum Child {
    Agent(usize),
    Core(&'static str),
}

pub(crate) struct SupervisorState {
    refs: Refs,
    agents: Vec<AgentArgs>,
    children: HashMap<ActorId, Child>,
    restarts: Vec<VecDeque<Timestamp>>,
    retired: BTreeSet<usize>,
    restart: RestartPolicy,
    watchdog: Arc<dyn Clock>,
    counters: Arc<Counters>,
    fatal: Arc<Mutex<Option<String>>>,
}

async fn spawn_agent(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    index: usize,
) -> Result<(), ActorProcessingErr> {
    let args = state.agents[index].clone();
    let (r, _) = AgentActor::spawn_linked(None, AgentActor, args, myself.get_cell()).await?;
    state.children.insert(r.get_id(), Child::Agent(index));
    Ok(())
}

impl SupervisorState {
    fn record_fatal(&self, why: String) {
        tracing::error!(reason = %why, "A core runtime actor failed; the runtime stops.");
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert(why);
    }

    /// Schedules a restart of agent `index`, or retires it when over budget.
    fn agent_failed(&mut self, myself: &ActorRef<SupervisorMsg>, index: usize) {
        let name = self.agents[index].spec.name;
        let now = self.watchdog.now();
        let window_start = now.minus(self.restart.budget_window);
        let history = &mut self.restarts[index];
        while history.front().is_some_and(|t| *t < window_start) {
            history.pop_front();
        }
        history.push_back(now);
        let attempt = u32::try_from(history.len()).unwrap_or(u32::MAX);
        if attempt > self.restart.budget {
            self.retired.insert(index);
            AgentRetired {
                agent: name,
                restarts: attempt - 1,
            }
            .emit();
            let inbox = self.agents[index].inbox.clone();
            let arbiter = self.refs.arbiter.clone();
            let drained = self.agents[index].drained.clone();
            tokio::spawn(async move {
                inbox.close().await;
                let _ = arbiter.send_message(ArbiterMsg::AgentRetired(name));
                let _ = drained.send(name);
            });
            return;
        }
        let delay = self.restart.delay(attempt);
        AgentRestarted {
            agent: name,
            attempt,
            delay,
        }
        .emit(&self.counters);
        let clock = self.watchdog.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            clock.sleep_until(now.plus(delay)).await;
            let _ = me.send_message(SupervisorMsg::SpawnAgent(index));
        });
    }
}

impl Actor for RootSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Plan;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        plan: Plan,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let cell = myself.get_cell();
        let mut children = HashMap::new();
        let (audit, _) =
            AuditActor::spawn_linked(None, AuditActor, plan.audit, cell.clone()).await?;
        children.insert(audit.get_id(), Child::Core("audit"));
        let (actuator, _) =
            ActuatorActor::spawn_linked(None, ActuatorActor, plan.actuator, cell.clone()).await?;
        children.insert(actuator.get_id(), Child::Core("actuator"));
        let arbiter_args = (plan.arbiter)(audit.clone(), actuator.clone());
        let (arbiter, _) =
            ArbiterActor::spawn_linked(None, ArbiterActor, arbiter_args, cell.clone()).await?;
        children.insert(arbiter.get_id(), Child::Core("arbiter"));
        let agents = (plan.agents)(arbiter.clone());
        let inboxes = agents
            .iter()
            .map(|a| (a.spec.name, a.inbox.clone()))
            .collect();
        let mut state = SupervisorState {
            refs: Refs {
                arbiter: arbiter.clone(),
                audit,
                actuator,
                inboxes,
            },
            restarts: vec![VecDeque::new(); agents.len()],
            agents,
            children,
            retired: BTreeSet::new(),
            restart: plan.restart,
            watchdog: plan.watchdog,
            counters: plan.counters,
            fatal: plan.fatal,
        };
        for i in 0..state.agents.len() {
            spawn_agent(&myself, &mut state, i).await?;
        }
        for args in (plan.ingress)(arbiter) {
            let (r, _) = IngressActor::spawn_linked(None, IngressActor, args, cell.clone()).await?;
            state.children.insert(r.get_id(), Child::Core("ingress"));
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::SpawnAgent(index) => {
                if !state.retired.contains(&index) {
                    spawn_agent(&myself, state, index).await?;
                }
            }
            SupervisorMsg::Refs(reply) => {
                let _ = reply.send(state.refs.clone());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if reason.as_deref() == Some(DRAINED) {
                    state.children.remove(&cell.get_id());
                    return Ok(());
                }
                (cell, reason.unwrap_or_else(|| "stopped".to_string()))
            }
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            _ => return Ok(()),
        };
        match state.children.remove(&cell.get_id()) {
            Some(Child::Agent(index)) => state.agent_failed(&myself, index),
            Some(Child::Core(what)) => {
                state.record_fatal(format!("{what} actor failed: {failure}"));
                myself.stop(Some(failure));
            }
            None => {}
        }
        Ok(())
    }
}
