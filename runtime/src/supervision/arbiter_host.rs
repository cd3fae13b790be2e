//! The actor that hosts the arbiter: it gathers each decision window's proposals from
//! every live agent, decides once all are in, and passes decisions on to the audit log,
//! the actuator and any listener.
//!
//! A window closes when every live agent has reported it, not when a timer fires, so the
//! same telemetry always produces the same windows, however the threads were scheduled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, watch};

use super::actuator_host::ActuatorMsg;
use super::audit_host::AuditMsg;
use crate::arbiter::{Arbiter, ArbiterState, OverrideError};
use crate::audit::AuditRecord;
use crate::clock::{Clock, Timestamp};
use crate::decision::Decision;
use crate::events::{Counters, DecisionsMade, FleetShareSeen};
use crate::fleet_budget::{budget_shortfall, FleetShare, Grant, GrantRefused, UsageReport};
use crate::overrides::{OperatorView, Override, OverrideJournal};
use crate::policy::Policy;
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
        /// `traceparent`s of the receive spans of the window's traced messages, per target.
        links: BTreeMap<Target, Vec<Arc<str>>>,
    },
    /// A reloaded policy: decide under it from now on.
    Reload(Arc<Policy>, RpcReplyPort<()>),
    /// An agent was retired: stop waiting for it.
    AgentRetired(&'static str),
    /// A human override.
    ApplyOverride(Override, RpcReplyPort<Result<Vec<Decision>, OverrideError>>),
    /// Replies once the window ending at `at` (or a later one) has been decided, its
    /// decisions written to the audit log and carried out by the actuator.
    WaitDecided(Timestamp, RpcReplyPort<()>),
    /// Replies once everything received so far is decided and passed on.
    Flush(RpcReplyPort<()>),
    /// The next report to the fleet budget holder (`None` when the budget is not shared
    /// or the policy has none).
    FleetReport(RpcReplyPort<Option<UsageReport>>),
    /// A grant from the fleet budget holder.
    FleetGrant(Grant, RpcReplyPort<Result<(), GrantRefused>>),
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
    /// Where standing overrides are kept across restarts, and those it held at start.
    pub(crate) journal: Option<(OverrideJournal, Vec<Override>)>,
    /// Where the operator view is published after every change, so readers (the API)
    /// never queue behind decisions in this actor's mailbox.
    pub(crate) view: watch::Sender<OperatorView>,
    /// Set when the fleet budget is shared with other instances.
    pub(crate) fleet_share: Option<FleetShare>,
}

#[derive(Default)]
struct Window {
    ready: BTreeSet<&'static str>,
    proposals: Vec<Proposal>,
    replicas: Vec<(Target, u32)>,
    seen: BTreeSet<Target>,
    links: BTreeMap<Target, Vec<Arc<str>>>,
}

pub(crate) struct ArbiterHostState {
    args: ArbiterArgs,
    state: ArbiterState,
    live: BTreeSet<&'static str>,
    windows: BTreeMap<Timestamp, Window>,
    decided_through: Option<Timestamp>,
    waiters: Vec<(Timestamp, RpcReplyPort<()>)>,
    journal: Option<OverrideJournal>,
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
            let now = self.args.clock.now();
            if let Some(share) = self.state.fleet_share_mut() {
                share.observe(&w.seen, at);
                share.expire(now);
            }
            let decisions = self.args.arbiter.decide(&mut self.state, at, w.proposals);
            if self.state.fleet_share().is_some() {
                let short = budget_shortfall(&decisions, self.state.all_replicas());
                if let Some(share) = self.state.fleet_share_mut() {
                    share.note_wanted(short);
                }
                self.fleet_share_seen(at);
            }
            self.publish(decisions, None, &w.links);
            self.decided_through = Some(at);
        }
        self.publish_view();
        self.wake_waiters();
    }

    /// Updates the shared-budget gauges as of `at`.
    fn fleet_share_seen(&self, at: Timestamp) {
        if let Some(share) = self.state.fleet_share() {
            FleetShareSeen {
                granted: share.grant().map(|g| g.replicas),
                used: share.used(self.state.all_replicas(), at),
            }
            .emit(&self.args.counters);
        }
    }

    fn publish_view(&self) {
        let view = OperatorView::build(
            self.args.arbiter.policy(),
            &self.state,
            &self.live,
            self.args.clock.now(),
        );
        self.args.view.send_replace(view);
    }

    /// Applies an override: checked on a copy of the state, journaled if it stands, and
    /// only then made real, so a refused or unsaved override changes nothing.
    fn apply_override(&mut self, o: Override) -> Result<Vec<Decision>, OverrideError> {
        let now = self.args.clock.now();
        let mut next = self.state.clone();
        let decisions = self
            .args
            .arbiter
            .apply_override(&mut next, o.clone(), now)?;
        if let Some(journal) = &mut self.journal {
            journal.append(&o).map_err(|e| OverrideError::NotSaved {
                id: o.id.clone(),
                error: e.to_string(),
            })?;
        }
        self.state = next;
        tracing::info!(
            target: "conclave::override",
            id = %o.id,
            kind = o.kind.name(),
            by = %o.by.name,
            role = o.by.role.as_str(),
            "Override applied."
        );
        let decisions = self.publish(decisions, Some(o), &BTreeMap::new());
        self.publish_view();
        Ok(decisions)
    }

    /// Re-applies the journal's standing overrides at start. Their effects were audited
    /// when they were given, so restoring writes nothing; one the policy no longer allows
    /// (an agent removed, a pin now out of bounds) is reported and dropped.
    fn restore(&mut self, overrides: Vec<Override>) {
        let now = self.args.clock.now();
        for o in overrides {
            match self
                .args
                .arbiter
                .apply_override(&mut self.state, o.clone(), now)
            {
                Ok(_) => tracing::info!(
                    target: "conclave::override",
                    id = %o.id,
                    kind = o.kind.name(),
                    "Override restored from the journal."
                ),
                Err(e) => tracing::warn!(
                    target: "conclave::override",
                    id = %o.id,
                    "Override in the journal no longer applies and was dropped: {e}"
                ),
            }
        }
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

    /// Audits, carries out and announces `decisions` (after the override that produced
    /// them, if any); returns them as recorded (with their trace ids).
    fn publish(
        &mut self,
        decisions: Vec<Decision>,
        preceded_by: Option<Override>,
        links: &BTreeMap<Target, Vec<Arc<str>>>,
    ) -> Vec<Decision> {
        if decisions.is_empty() && preceded_by.is_none() {
            DecisionsMade { decisions: &[] }.emit(&self.args.counters);
            return decisions;
        }
        // Each decision's root span (disabled without tracing), kept open until the
        // actuator has carried the decision out, so actuation is part of its trace.
        #[cfg(feature = "otel")]
        let (decisions, spans) = {
            let mut decisions = decisions;
            // Decisions an override produced (an approval enacted, a pin) belong to the
            // override's trace.
            let parent = preceded_by.as_ref().and_then(otel::trace_override);
            let spans = otel::trace_decisions(
                &mut decisions,
                self.args.arbiter.policy(),
                &self.state,
                parent.as_ref(),
                links,
            );
            (decisions, spans)
        };
        #[cfg(not(feature = "otel"))]
        let spans = {
            let _ = links;
            vec![tracing::Span::none(); decisions.len()]
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
        let acted: Vec<(Decision, tracing::Span)> = decisions
            .iter()
            .zip(spans)
            .filter(|(d, _)| d.outcome.is_acted_on())
            .map(|(d, span)| (d.clone(), span))
            .collect();
        if !acted.is_empty() {
            let _ = self.args.actuator.send_message(ActuatorMsg::Apply(acted));
        }
        if let Some(tap) = &self.args.tap {
            for d in &decisions {
                let _ = tap.send(d.clone());
            }
        }
        decisions
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
        let mut args = args;
        let (journal, restored) = args.journal.take().unzip();
        let state = match args.fleet_share.take() {
            Some(share) => ArbiterState::with_fleet_share(share),
            None => ArbiterState::new(),
        };
        let mut s = ArbiterHostState {
            live: args.agents.clone(),
            args,
            state,
            windows: BTreeMap::new(),
            decided_through: None,
            waiters: Vec::new(),
            journal,
        };
        s.restore(restored.unwrap_or_default());
        s.publish_view();
        Ok(s)
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
            ArbiterMsg::ReplicasObserved {
                at,
                replicas,
                seen,
                links,
            } => {
                if s.is_decided(at) {
                    // Only possible with no live agent left: the window already closed
                    // on another partition's report.
                    return Ok(());
                }
                let w = s.windows.entry(at).or_default();
                w.replicas.extend(replicas);
                w.seen.extend(seen);
                for (target, mut l) in links {
                    w.links.entry(target).or_default().append(&mut l);
                }
                s.close_ready_windows();
            }
            ArbiterMsg::Reload(policy, reply) => {
                tracing::info!(
                    target: "conclave::policy",
                    name = %policy.name(),
                    revision = %policy.revision(),
                    "Policy reloaded."
                );
                s.args.arbiter = Arbiter::new(policy);
                s.publish_view();
                let _ = reply.send(());
            }
            ArbiterMsg::AgentRetired(agent) => {
                s.live.remove(agent);
                s.close_ready_windows();
            }
            ArbiterMsg::ApplyOverride(o, reply) => {
                let _ = reply.send(s.apply_override(o));
            }

            ArbiterMsg::WaitDecided(at, reply) => {
                s.waiters.push((at, reply));
                s.wake_waiters();
            }
            ArbiterMsg::Flush(reply) => {
                let _ = reply.send(());
            }
            ArbiterMsg::FleetReport(reply) => {
                let now = s.args.clock.now();
                let budget = s.args.arbiter.policy().fleet_replica_budget();
                let report = match (budget, s.state.share.as_mut()) {
                    (Some(budget), Some(share)) => {
                        Some(share.report(&s.state.replicas, &s.state.enacted_log, budget, now))
                    }
                    _ => None,
                };
                let _ = reply.send(report);
            }
            ArbiterMsg::FleetGrant(grant, reply) => {
                let taken = match s.state.share.as_mut() {
                    Some(share) => share.accept(&grant),
                    None => Err(GrantRefused::NotMine(grant.instance.clone())),
                };
                if taken.is_ok() {
                    s.fleet_share_seen(s.args.clock.now());
                }
                let _ = reply.send(taken);
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
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::arbiter::ArbiterState;
    use crate::decision::Decision;
    use crate::overrides::{Override, OverrideKind};
    use crate::policy::{Mode, Policy};
    use crate::target::Target;

    /// The agent's mode at `d.at`: a human's `set_mode` in force, else the policy's.
    fn mode(policy: &Policy, state: &ArbiterState, d: &Decision) -> Mode {
        match state.modes.get(&d.agent) {
            Some((mode, o)) if o.is_in_force(d.at) => *mode,
            _ => policy.agent(&d.agent).map_or(Mode::Off, |a| a.mode()),
        }
    }

    /// A root span `override {kind}` for a human override: who, why, what it names. The
    /// span is returned so the decisions it produced become its children.
    pub(super) fn trace_override(o: &Override) -> Option<tracing::Span> {
        let subject = match &o.kind {
            OverrideKind::Pause { agent }
            | OverrideKind::Resume { agent }
            | OverrideKind::SetMode { agent, .. } => format!("agent {agent}"),
            OverrideKind::Pin { target, .. } | OverrideKind::Unpin { target } => {
                format!("target {target}")
            }
            OverrideKind::Approve { decision }
            | OverrideKind::Deny { decision }
            | OverrideKind::Veto { decision } => format!("decision {decision}"),
            OverrideKind::Freeze | OverrideKind::Unfreeze => "all".to_owned(),
        };
        let span = tracing::info_span!(
            target: "conclave::decision",
            parent: None,
            "override",
            otel.name = %format_args!("override {}", o.kind.name()),
            conclave.override.id = %o.id,
            conclave.override.kind = o.kind.name(),
            conclave.override.subject = %subject,
            conclave.override.by = %o.by.name,
            conclave.override.role = o.by.role.as_str(),
            conclave.override.reason = %o.reason,
            conclave.override.until = tracing::field::Empty,
        );
        if span.is_disabled() {
            return None;
        }
        if let Some(u) = o.until {
            span.record("conclave.override.until", tracing::field::display(u));
        }
        Some(span)
    }

    /// Traces each decision; returns their root spans (disabled ones when not traced), in
    /// order.
    pub(super) fn trace_decisions(
        decisions: &mut [Decision],
        policy: &Policy,
        state: &ArbiterState,
        parent: Option<&tracing::Span>,
        links: &BTreeMap<Target, Vec<Arc<str>>>,
    ) -> Vec<tracing::Span> {
        let mut roots = Vec::with_capacity(decisions.len());
        for d in decisions.iter_mut() {
            let codes = d
                .reason_codes()
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let root = tracing::info_span!(
                target: "conclave::decision",
                parent: parent.and_then(tracing::Span::id),
                "decide",
                otel.name = %format_args!("decide {}", d.target),
                conclave.decision.id = %d.id,
                conclave.target = %d.target,
                conclave.agent = %d.agent,
                conclave.outcome = d.outcome.name(),
                conclave.reason.codes = %codes,
                conclave.policy.revision = %d.policy_revision,
                conclave.mode = mode(policy, state, d).as_str(),
                conclave.fallback.used = d.proposals.iter().any(|p| p.fallback.is_some()),
            );
            if root.is_disabled() {
                roots.push(root);
                continue;
            }
            // The sampler decides when the root starts (its attributes say what kind of
            // decision this is); a dropped trace gets no children, no trace id and no
            // actuation span.
            let sampled = {
                let cx = root.context();
                let sc = cx.span().span_context().clone();
                (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id())
            };
            let Some(trace_id) = sampled else {
                roots.push(tracing::Span::none());
                continue;
            };
            d.trace_id = Some(format!("{trace_id:032x}"));
            // Where the window's telemetry came from: the receive spans of its messages.
            let received = links.get(&d.target).map_or(&[][..], Vec::as_slice);
            for cx in received
                .iter()
                .filter_map(|l| crate::trace_context::parse(l))
            {
                root.add_link(cx);
            }
            negotiation(&root, d);
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
                if let Some(i) = &p.inference {
                    inference(&child, i);
                }
            }
            roots.push(root);
        }
        roots
    }

    /// The model behind a proposal: `extract_features` (how many rows and values, how
    /// long building them took) and `execute_tool {model}` (the call: batch size, latency,
    /// and the fallback when the rule decided instead). The agent ran both before the
    /// window closed; their durations are attributes, since the spans are made here.
    fn inference(agent: &tracing::Span, i: &crate::proposal::Inference) {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let _features = tracing::info_span!(
            target: "conclave::decision",
            parent: agent,
            "extract_features",
            otel.name = "extract_features",
            conclave.features.rows = i.rows,
            conclave.features.count = i.features,
            conclave.features.duration_ms = ms(i.feature_time),
        );
        let call = tracing::info_span!(
            target: "conclave::decision",
            parent: agent,
            "execute_tool",
            otel.name = %format_args!("execute_tool {}", i.model.name),
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %i.model.name,
            gen_ai.tool.type = "function",
            conclave.model.name = %i.model.name,
            conclave.model.version = %i.model.version,
            conclave.model.batch_size = i.rows,
            conclave.model.called = i.latency.is_some(),
            conclave.model.latency_ms = tracing::field::Empty,
            conclave.fallback = tracing::field::Empty,
        );
        if let Some(l) = i.latency {
            call.record("conclave.model.latency_ms", ms(l));
        }
        if let Some(f) = &i.fallback {
            call.record("conclave.fallback", f.as_str());
        }
    }

    /// The arbiter's part: how many proposals it weighed, which rules spoke (reason codes
    /// in order), whether a guardrail changed the action, and the verdict.
    fn negotiation(root: &tracing::Span, d: &Decision) {
        let rules = d
            .reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let clamped = match &d.outcome {
            crate::decision::Outcome::Modified { from, to } => format!("{from} -> {to}"),
            _ => String::new(),
        };
        let _span = tracing::info_span!(
            target: "conclave::decision",
            parent: root,
            "negotiate",
            otel.name = "negotiate",
            conclave.arbiter.proposals = d.proposals.len(),
            conclave.arbiter.conflict = d.proposals.len() > 1,
            conclave.arbiter.rules = %rules,
            conclave.arbiter.clamp = %clamped,
            conclave.arbiter.verdict = d.outcome.name(),
        );
    }
}
