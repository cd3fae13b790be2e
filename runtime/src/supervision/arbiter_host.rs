//! The actor that hosts the arbiter: it gathers each decision window's proposals from
//! every live agent, decides once all are in, and passes decisions on to the audit log,
//! the actuator and any listener.
//!
//! A window closes when every live agent has reported it, not when a timer fires, so the
//! same telemetry always produces the same windows, however the threads were scheduled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use super::actuator_host::ActuatorMsg;
use super::audit_host::AuditMsg;
use crate::arbiter::{Arbiter, ArbiterState, OverrideError};
use crate::audit::AuditRecord;
use crate::clock::{Clock, Timestamp};
use crate::decision::Decision;
use crate::events::{Counters, DecisionsMade};
use crate::overrides::Override;
use crate::proposal::Proposal;
use crate::target::Target;

/// Hosts the arbiter.
pub(crate) struct ArbiterActor;

/// Messages to the arbiter host.
pub(crate) enum ArbiterMsg {
    /// An agent's proposals for the window ending at `at` (possibly none).
    AgentReady {
        agent: &'static str,
        at: Timestamp,
        proposals: Vec<Proposal>,
    },
    /// Replica counts an ingress partition saw during the window ending at `at`, and the
    /// targets it received telemetry for (only when ownership is tracked).
    ReplicasObserved {
        at: Timestamp,
        replicas: Vec<(Target, u32)>,
        seen: Vec<Target>,
    },
    /// An agent was retired: stop waiting for it.
    AgentRetired(&'static str),
    /// A human override.
    ApplyOverride(Override, RpcReplyPort<Result<Vec<Decision>, OverrideError>>),
    /// Replies once the window ending at `at` (or a later one) has been decided, its
    /// decisions written to the audit log and carried out by the actuator.
    WaitDecided(Timestamp, RpcReplyPort<()>),
    /// Replies once everything received so far is decided and passed on.
    Flush(RpcReplyPort<()>),
}

pub(crate) struct ArbiterArgs {
    pub(crate) arbiter: Arbiter,
    pub(crate) agents: BTreeSet<&'static str>,
    pub(crate) audit: ActorRef<AuditMsg>,
    pub(crate) actuator: ActorRef<ActuatorMsg>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tap: Option<mpsc::UnboundedSender<Decision>>,
    pub(crate) decide_only_observed: bool,
}

#[derive(Default)]
struct Window {
    ready: BTreeSet<&'static str>,
    proposals: Vec<Proposal>,
    replicas: Vec<(Target, u32)>,
    seen: BTreeSet<Target>,
}

pub(crate) struct ArbiterHostState {
    args: ArbiterArgs,
    state: ArbiterState,
    live: BTreeSet<&'static str>,
    windows: BTreeMap<Timestamp, Window>,
    decided_through: Option<Timestamp>,
    waiters: Vec<(Timestamp, RpcReplyPort<()>)>,
}

impl ArbiterHostState {
    fn is_decided(&self, at: Timestamp) -> bool {
        self.decided_through.is_some_and(|d| at <= d)
    }

    /// Decides every window, oldest first, that all live agents have reported.
    fn close_ready_windows(&mut self) {
        while let Some(entry) = self.windows.first_entry() {
            if !self.live.iter().all(|a| entry.get().ready.contains(a)) {
                break;
            }
            let (at, mut w) = entry.remove_entry();
            for (target, replicas) in w.replicas {
                self.state.observe_replicas(target, replicas);
            }
            if self.args.decide_only_observed {
                let before = w.proposals.len();
                w.proposals.retain(|p| w.seen.contains(&p.target));
                let dropped = (before - w.proposals.len()) as u64;
                self.args
                    .counters
                    .proposals_not_owned
                    .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
            }
            let decisions = self.args.arbiter.decide(&mut self.state, at, w.proposals);
            self.publish(decisions, None);
            self.decided_through = Some(at);
        }
        self.wake_waiters();
    }

    fn wake_waiters(&mut self) {
        let Some(done) = self.decided_through else {
            return;
        };
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(at, _)| *at <= done);
        self.waiters = waiting;
        for (_, reply) in ready {
            // Decided is not enough for a driver stepping a simulation: it needs the
            // decisions written and carried out, so the answer goes through the audit and
            // actuator mailboxes, behind this window's work.
            let _ = self
                .args
                .audit
                .send_message(AuditMsg::Barrier(self.args.actuator.clone(), reply));
        }
    }

    fn publish(&mut self, decisions: Vec<Decision>, preceded_by: Option<Override>) {
        if decisions.is_empty() && preceded_by.is_none() {
            DecisionsMade { decisions: &[] }.emit(&self.args.counters);
            return;
        }
        #[cfg(feature = "otel")]
        let decisions = {
            let mut decisions = decisions;
            otel::trace_decisions(&mut decisions, self.args.arbiter.policy(), &self.state);
            decisions
        };
        DecisionsMade {
            decisions: &decisions,
        }
        .emit(&self.args.counters);
        let mut records: Vec<AuditRecord> = Vec::with_capacity(decisions.len() + 1);
        if let Some(o) = preceded_by {
            records.push(AuditRecord::Override(o));
        }
        records.extend(decisions.iter().cloned().map(AuditRecord::Decision));
        // The audit and actuator hosts live as long as the arbiter host; if either is gone
        // the runtime is already failing and the supervisor reports it.
        let _ = self.args.audit.send_message(AuditMsg::Append(records));
        let acted: Vec<Decision> = decisions
            .iter()
            .filter(|d| d.outcome.is_acted_on())
            .cloned()
            .collect();
        if !acted.is_empty() {
            let _ = self.args.actuator.send_message(ActuatorMsg::Apply(acted));
        }
        if let Some(tap) = &self.args.tap {
            for d in decisions {
                let _ = tap.send(d);
            }
        }
    }
}

impl Actor for ArbiterActor {
    type Msg = ArbiterMsg;
    type State = ArbiterHostState;
    type Arguments = ArbiterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ArbiterArgs,
    ) -> Result<ArbiterHostState, ActorProcessingErr> {
        Ok(ArbiterHostState {
            live: args.agents.clone(),
            args,
            state: ArbiterState::new(),
            windows: BTreeMap::new(),
            decided_through: None,
            waiters: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: ArbiterMsg,
        s: &mut ArbiterHostState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ArbiterMsg::AgentReady {
                agent,
                at,
                proposals,
            } => {
                if s.is_decided(at) {
                    if proposals.is_empty() {
                        return Ok(());
                    }
                    tracing::warn!(agent, at = %at, "Proposals for a window already decided were dropped.");
                    return Ok(());
                }
                let w = s.windows.entry(at).or_default();
                w.ready.insert(agent);
                w.proposals.extend(proposals);
                s.close_ready_windows();
            }
            ArbiterMsg::ReplicasObserved { at, replicas, seen } => {
                if s.is_decided(at) {
                    // Only possible with no live agent left: the window already closed
                    // on another partition's report.
                    return Ok(());
                }
                let w = s.windows.entry(at).or_default();
                w.replicas.extend(replicas);
                w.seen.extend(seen);
                s.close_ready_windows();
            }
            ArbiterMsg::AgentRetired(agent) => {
                s.live.remove(agent);
                s.close_ready_windows();
            }
            ArbiterMsg::ApplyOverride(o, reply) => {
                let now = s.args.clock.now();
                let result = s.args.arbiter.apply_override(&mut s.state, o.clone(), now);
                if let Ok(decisions) = &result {
                    s.publish(decisions.clone(), Some(o));
                }
                let _ = reply.send(result);
            }
            ArbiterMsg::WaitDecided(at, reply) => {
                s.waiters.push((at, reply));
                s.wake_waiters();
            }
            ArbiterMsg::Flush(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// A trace per decision: a root span `decide {target}` with a child `invoke_agent {agent}`
/// per proposal. The spans go through `tracing` (target `conclave::decision`, level INFO);
/// the binary's OpenTelemetry layer exports them. The decision records the root span's
/// trace id before it is written to the audit log; with no OpenTelemetry layer installed
/// the spans are disabled and the trace id stays `None`. Attributes carry names, ids and
/// outcomes only: never values from events.
#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::arbiter::ArbiterState;
    use crate::decision::Decision;
    use crate::policy::{Mode, Policy};

    /// The agent's mode at `d.at`: a human's `set_mode` in force, else the policy's.
    fn mode(policy: &Policy, state: &ArbiterState, d: &Decision) -> Mode {
        match state.modes.get(&d.agent) {
            Some((mode, o)) if o.is_in_force(d.at) => *mode,
            _ => policy.agent(&d.agent).map_or(Mode::Off, |a| a.mode()),
        }
    }

    pub(super) fn trace_decisions(
        decisions: &mut [Decision],
        policy: &Policy,
        state: &ArbiterState,
    ) {
        for d in decisions.iter_mut() {
            let codes = d
                .reason_codes()
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let root = tracing::info_span!(
                target: "conclave::decision",
                parent: None,
                "decide",
                otel.name = %format_args!("decide {}", d.target),
                conclave.decision.id = %d.id,
                conclave.target = %d.target,
                conclave.agent = %d.agent,
                conclave.outcome = d.outcome.name(),
                conclave.reason.codes = %codes,
                conclave.policy.revision = %d.policy_revision,
                conclave.mode = mode(policy, state, d).as_str(),
            );
            if root.is_disabled() {
                continue;
            }
            for p in &d.proposals {
                let child = tracing::info_span!(
                    target: "conclave::decision",
                    parent: &root,
                    "invoke_agent",
                    otel.name = %format_args!("invoke_agent {}", p.agent),
                    gen_ai.operation.name = "invoke_agent",
                    gen_ai.agent.name = %p.agent,
                    conclave.proposal.id = %p.id,
                    conclave.action = p.action.kind().as_str(),
                    conclave.model = tracing::field::Empty,
                    conclave.fallback = tracing::field::Empty,
                );
                if let Some(m) = &p.model {
                    child.record(
                        "conclave.model",
                        tracing::field::display(format_args!("{}@{}", m.name, m.version)),
                    );
                }
                if let Some(f) = &p.fallback {
                    child.record("conclave.fallback", f.as_str());
                }
            }
            let cx = root.context();
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                d.trace_id = Some(format!("{:032x}", sc.trace_id()));
            }
        }
    }
}
