//! The control topic: human overrides published as JSON (the same [`Override`] the CLI
//! and API make) take effect in every instance, as if made here. Each instance reads the
//! topic on its own exclusive subscription, because an override such as a freeze concerns
//! targets whichever instance owns them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ::pulsar::consumer::{ConsumerOptions, InitialPosition};
use ::pulsar::{producer, Consumer, SubType, TokioExecutor};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::producer::ManagedProducer;
use super::{PulsarError, PulsarTransport, ORIGIN_INSTANCE};
use crate::decision::Decision;
use crate::overrides::Override;
use crate::supervision::RuntimeHandle;

/// Largest control message accepted.
const MAX_CONTROL_BYTES: usize = 64 * 1024;

/// What the control task did.
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Overrides applied.
    pub applied: AtomicU64,
    /// Messages that were not an override, or that the arbiter refused.
    pub rejected: AtomicU64,
}

/// What happened to one control message, for the caller's log.
#[derive(Debug)]
pub enum ControlEvent {
    /// Applied; the decisions it caused (an override can enact pending decisions).
    Applied(Override, Vec<Decision>),
    /// Refused, with why.
    Rejected(String),
}

/// Subscribes to the control topic and applies every override that arrives, until the
/// runtime stops. Events go to `events` (printing them is the caller's business).
///
/// # Errors
/// [`PulsarError::Topic`] when the subscription cannot be made.
pub async fn spawn_control(
    transport: &PulsarTransport,
    runtime: RuntimeHandle,
    events: mpsc::UnboundedSender<ControlEvent>,
) -> Result<Arc<ControlStats>, PulsarError> {
    let topic = transport.settings().control_topic.clone();
    let build = transport
        .client()
        .consumer()
        .with_topic(&topic)
        .with_subscription(format!("conclave-control-{}", transport.name()))
        .with_subscription_type(SubType::Exclusive)
        .with_consumer_name(format!("{}-control", transport.name()))
        .with_options(ConsumerOptions {
            // Overrides made while this instance was down were seen by the others; the
            // durable record of overrides is the audit log, not this topic.
            initial_position: InitialPosition::Latest,
            ..ConsumerOptions::default()
        })
        .build::<Vec<u8>>();
    let mut consumer: Consumer<Vec<u8>, TokioExecutor> =
        super::created(transport, "subscribe to", &topic, build).await?;
    let stats = Arc::new(ControlStats::default());
    let s = stats.clone();
    let me = transport.name().to_owned();
    tokio::spawn(async move {
        while let Some(m) = consumer.next().await {
            let Ok(m) = m else { continue };
            let mine = m
                .payload
                .metadata
                .properties
                .iter()
                .any(|kv| kv.key == ORIGIN_INSTANCE && kv.value == me);
            if mine {
                // Applied here already, when it was made through this instance's API.
                let _ = consumer.ack(&m).await;
                continue;
            }
            let event = match parse(&m.payload.data) {
                Err(e) => ControlEvent::Rejected(e),
                Ok(o) => match runtime.apply_override(o.clone()).await {
                    Err(_) => return,
                    Ok(Ok(decisions)) => ControlEvent::Applied(o, decisions),
                    Ok(Err(e)) => {
                        ControlEvent::Rejected(format!("override `{}` refused: {e}", o.id))
                    }
                },
            };
            match &event {
                ControlEvent::Applied(..) => s.applied.fetch_add(1, Ordering::Relaxed),
                ControlEvent::Rejected(_) => s.rejected.fetch_add(1, Ordering::Relaxed),
            };
            let _ = events.send(event);
            // Acknowledged either way: a malformed override does not improve with retries.
            let _ = consumer.ack(&m).await;
        }
    });
    Ok(stats)
}

/// A task that publishes overrides made here (through the API) to the control topic, so
/// every other instance applies them too; each request is answered with whether the
/// broker took it.
///
/// # Errors
/// [`PulsarError::Topic`] when the control topic cannot be published to.
pub async fn spawn_control_publisher(
    transport: &PulsarTransport,
) -> Result<mpsc::Sender<(Override, oneshot::Sender<Result<(), String>>)>, PulsarError> {
    let topic = transport.settings().control_topic.clone();
    let mut producer = ManagedProducer::open(transport.clone(), &topic).await?;
    let me = transport.name().to_owned();
    let (tx, mut rx) = mpsc::channel::<(Override, oneshot::Sender<Result<(), String>>)>(64);
    tokio::spawn(async move {
        while let Some((o, reply)) = rx.recv().await {
            let sent = match serde_json::to_vec(&o) {
                Err(e) => Err(e.to_string()),
                Ok(payload) => {
                    let message = producer::Message {
                        payload,
                        properties: [(ORIGIN_INSTANCE.to_owned(), me.clone())].into(),
                        ..producer::Message::default()
                    };
                    producer.send(message, 3).await.map_err(|e| e.to_string())
                }
            };
            let _ = reply.send(sent);
        }
        producer.close().await;
    });
    Ok(tx)
}

fn parse(payload: &[u8]) -> Result<Override, String> {
    if payload.len() > MAX_CONTROL_BYTES {
        return Err(format!(
            "control message of {} bytes is over the {MAX_CONTROL_BYTES}-byte limit",
            payload.len()
        ));
    }
    let o: Override = serde_json::from_slice(payload)
        .map_err(|e| format!("control message is not an override: {e}"))?;
    if o.reason.trim().is_empty() {
        return Err(format!(
            "override `{}` has no reason; a reason is required",
            o.id
        ));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn control_messages_are_checked() {
        assert!(parse(b"{")
            .unwrap_err()
            .starts_with("control message is not an override: "));
        let ok = br#"{"id":"o-1","kind":"freeze","by":{"name":"ana","role":"operator"},"reason":"incident","at":"2026-11-29T10:00:00Z"}"#;
        match parse(ok) {
            Ok(o) => assert_eq!(o.id, "o-1"),
            Err(e) => panic!("{e}"),
        }
    }
}
