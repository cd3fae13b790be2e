//! A producer behind a watchdog: every send has a deadline; a send that errs or never
//! completes drops the producer, and the next attempt creates a new one (after backoff).
//! The actions topic and the dead-letter topic are published through it.

use std::collections::HashMap;

use ::pulsar::{producer, Producer, TokioExecutor};
use bytes::Bytes;
use tokio::sync::Mutex;

use super::{backoff, PulsarError, PulsarTransport};
use crate::bus::{ActionSink, BoxFuture, BusError};

/// A producer that recreates itself when it stalls.
pub(crate) struct ManagedProducer {
    transport: PulsarTransport,
    topic: String,
    producer: Option<Producer<TokioExecutor>>,
    /// Producers recreated after a failed or stalled send.
    pub(crate) recreated: u64,
}

impl ManagedProducer {
    /// Creates the producer now, so a bad topic is reported at start-up.
    pub(crate) async fn open(transport: PulsarTransport, topic: &str) -> Result<Self, PulsarError> {
        let mut p = ManagedProducer {
            transport,
            topic: topic.to_owned(),
            producer: None,
            recreated: 0,
        };
        p.ensure().await?;
        Ok(p)
    }

    async fn ensure(&mut self) -> Result<&mut Producer<TokioExecutor>, PulsarError> {
        if self.producer.is_none() {
            let build = self
                .transport
                .client()
                .producer()
                .with_topic(&self.topic)
                .with_options(super::keyed_producer_options())
                .build();
            let p = super::created(&self.transport, "publish to", &self.topic, build).await?;
            self.producer = Some(p);
        }
        self.producer.as_mut().ok_or_else(|| PulsarError::Topic {
            what: "publish to",
            topic: self.topic.clone(),
            detail: "no producer".to_owned(),
        })
    }

    /// Sends one message and waits for the broker's receipt, retrying `attempts` times
    /// with a new producer after each failure.
    pub(crate) async fn send(
        &mut self,
        message: producer::Message,
        attempts: u32,
    ) -> Result<(), PulsarError> {
        let timeout = self.transport.settings().operation_timeout;
        let mut last = String::new();
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let producer = match self.ensure().await {
                Ok(p) => p,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let send = async {
                producer
                    .send_non_blocking(message.clone())
                    .await?
                    .await
                    .map(|_| ())
            };
            match tokio::time::timeout(timeout, send).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("no receipt within {timeout:?}"),
            }
            tracing::warn!(topic = %self.topic, error = %last, "Pulsar send failed; recreating the producer.");
            self.producer = None;
            self.recreated += 1;
        }
        Err(PulsarError::Topic {
            what: "publish to",
            topic: self.topic.clone(),
            detail: last,
        })
    }

    /// Closes the producer (best effort).
    pub(crate) async fn close(&mut self) {
        if let Some(mut p) = self.producer.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), p.close()).await;
        }
    }
}

/// Publishes actions to the policy's actions topic, keyed by target.
pub struct PulsarActionSink {
    producer: Mutex<ManagedProducer>,
}

impl PulsarActionSink {
    /// Opens a producer on the actions topic.
    ///
    /// # Errors
    /// [`PulsarError::Topic`] when the topic cannot be published to.
    pub async fn open(transport: &PulsarTransport) -> Result<Self, PulsarError> {
        let topic = transport.settings().actions_topic.clone();
        Ok(PulsarActionSink {
            producer: Mutex::new(ManagedProducer::open(transport.clone(), &topic).await?),
        })
    }
}

impl ActionSink for PulsarActionSink {
    fn publish<'a>(
        &'a self,
        key: &'a str,
        payload: Bytes,
        properties: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let message = producer::Message {
                payload: payload.to_vec(),
                partition_key: Some(key.to_owned()),
                properties: properties
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect::<HashMap<_, _>>(),
                ..producer::Message::default()
            };
            // Up to ~30 s of retries: an action outlives a broker restart.
            self.producer
                .lock()
                .await
                .send(message, 10)
                .await
                .map_err(|e| BusError::Transport(e.to_string()))
        })
    }
}
