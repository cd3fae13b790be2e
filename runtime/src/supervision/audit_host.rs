//! The actor that owns the audit log writer. Writes run on the blocking pool (they may
//! fsync), one batch at a time, so records keep the order the arbiter produced them in.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::actuator_host::ActuatorMsg;
use crate::audit::{AuditError, AuditRecord, AuditWriter};
use crate::events::{AuditWriteFailed, Counters};

/// Owns the audit writer.
pub(crate) struct AuditActor;

/// Messages to the audit host.
pub(crate) enum AuditMsg {
    /// Append these records, in order.
    Append(Vec<AuditRecord>),
    /// Fsync, then reply with the number of the next line.
    Flush(RpcReplyPort<Result<u64, String>>),
    /// Once everything sent before is written, pass the barrier on to the actuator, which
    /// answers once everything sent to it before is carried out.
    Barrier(ActorRef<ActuatorMsg>, RpcReplyPort<()>),
}

pub(crate) struct AuditArgs {
    pub(crate) writer: AuditWriter,
    pub(crate) counters: Arc<Counters>,
}

pub(crate) struct AuditState {
    writer: Option<AuditWriter>,
    counters: Arc<Counters>,
}

impl AuditState {
    async fn with_writer<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut AuditWriter) -> R + Send + 'static,
    ) -> Option<R> {
        let mut writer = self.writer.take()?;
        match tokio::task::spawn_blocking(move || {
            let r = f(&mut writer);
            (writer, r)
        })
        .await
        {
            Ok((writer, r)) => {
                self.writer = Some(writer);
                Some(r)
            }
            // A panic inside the writer leaves no writer; later appends are counted as
            // errors and the supervisor sees the failure when this actor returns `Err`.
            Err(_) => None,
        }
    }
}

impl Actor for AuditActor {
    type Msg = AuditMsg;
    type State = AuditState;
    type Arguments = AuditArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: AuditArgs,
    ) -> Result<AuditState, ActorProcessingErr> {
        Ok(AuditState {
            writer: Some(args.writer),
            counters: args.counters,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: AuditMsg,
        state: &mut AuditState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AuditMsg::Append(records) => {
                let n = records.len() as u64;
                let result = state
                    .with_writer(move |w| -> Result<(), AuditError> {
                        for r in &records {
                            w.append(r)?;
                        }
                        Ok(())
                    })
                    .await;
                match result {
                    Some(Ok(())) => {
                        state.counters.audit_records.fetch_add(n, Ordering::Relaxed);
                    }
                    Some(Err(e)) => AuditWriteFailed { error: &e }.emit(&state.counters),
                    None => {
                        let e = std::io::Error::other("the audit writer was lost after a panic");
                        AuditWriteFailed { error: &e }.emit(&state.counters);
                    }
                }
            }
            AuditMsg::Barrier(actuator, reply) => {
                if let Err(e) = actuator.send_message(ActuatorMsg::Barrier(reply)) {
                    // The actuator is gone; the waiter's call fails and says so.
                    drop(e);
                }
            }
            AuditMsg::Flush(reply) => {
                let result = state.with_writer(|w| w.sync().map(|()| w.next_seq())).await;
                let _ = reply.send(match result {
                    Some(Ok(seq)) => Ok(seq),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("the audit writer was lost after a panic".to_string()),
                });
            }
        }
        Ok(())
    }
}
