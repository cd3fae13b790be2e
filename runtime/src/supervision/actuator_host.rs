//! The actor that owns the actuator and carries out decisions in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actuator::Actuator;
use crate::decision::Decision;
use crate::events::{ActuationFailed, Counters};

/// Owns the actuator.
pub(crate) struct ActuatorActor;

/// Messages to the actuator host.
pub(crate) enum ActuatorMsg {
    /// Carry out these decisions, in order.
    Apply(Vec<Decision>),
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
                for d in &decisions {
                    match state.actuator.apply(d).await {
                        Ok(()) => {
                            state.counters.actuated.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => ActuationFailed {
                            decision: &d.id,
                            error: &e,
                        }
                        .emit(&state.counters),
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
