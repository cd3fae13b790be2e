//! The actor that owns the actuator and carries out decisions in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::Instrument as _;

use crate::actuator::Actuator;
use crate::decision::Decision;
use crate::events::{ActuationFailed, Counters};

/// Owns the actuator.
pub(crate) struct ActuatorActor;

/// Messages to the actuator host.
pub(crate) enum ActuatorMsg {
    /// Carry out these decisions, in order; each with its trace's root span (a disabled
    /// span when not traced), under which the actuation is traced.
    Apply(Vec<(Decision, tracing::Span)>),
    /// Flush the actuator, then reply.
    Flush(RpcReplyPort<()>),
    /// Reply once everything sent before has been carried out.
    Barrier(RpcReplyPort<()>),
}

pub(crate) struct ActuatorArgs {
    pub(crate) actuator: Box<dyn Actuator>,
    pub(crate) counters: Arc<Counters>,
}

impl Actor for ActuatorActor {
    type Msg = ActuatorMsg;
    type State = ActuatorArgs;
    type Arguments = ActuatorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ActuatorArgs,
    ) -> Result<ActuatorArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: ActuatorMsg,
        state: &mut ActuatorArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ActuatorMsg::Apply(decisions) => {
                for (d, root) in &decisions {
                    let span = tracing::info_span!(
                        target: "conclave::decision",
                        parent: root,
                        "execute_tool",
                        otel.name = "execute_tool actuate",
                        gen_ai.operation.name = "execute_tool",
                        gen_ai.tool.name = "actuate",
                        conclave.action = d.action.as_ref().map_or("none", |a| a.kind().as_str()),
                        conclave.actuation.error = tracing::field::Empty,
                    );
                    let applied = state.actuator.apply(d).instrument(span.clone()).await;
                    match applied {
                        Ok(()) => {
                            state.counters.actuated.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            span.record("conclave.actuation.error", tracing::field::display(&e));
                            ActuationFailed {
                                decision: &d.id,
                                error: &e,
                            }
                            .emit(&state.counters)
                        }
                    }
                }
            }
            ActuatorMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
            ActuatorMsg::Flush(reply) => {
                if let Err(e) = state.actuator.flush().await {
                    ActuationFailed {
                        decision: "",
                        error: &e,
                    }
                    .emit(&state.counters);
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
