//! Plain publishing and reading of a topic, for `conclave publish`, demos and tests:
//! publish keyed messages with pipelined sends; read a topic from the start.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ::pulsar::consumer::{ConsumerOptions, InitialPosition};
use ::pulsar::{producer, Consumer, Producer, SubType, TokioExecutor};
use futures::StreamExt;

use super::{PulsarError, PulsarTransport, EVENT_ID_PROPERTY};

/// Sends in flight before waiting for their receipts.
const MAX_IN_FLIGHT: usize = 1000;

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Partition / Key_Shared key (the target).
    pub key: Option<String>,
    /// The producer's event id (de-duplication downstream).
    pub event_id: Option<String>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Publishes to one topic with many sends in flight.
pub struct Publisher {
    producer: Producer<TokioExecutor>,
    topic: String,
    timeout: Duration,
}

impl Publisher {
    /// Opens a producer on `topic`.
    ///
    /// # Errors
    /// [`PulsarError::Topic`] when the topic cannot be published to.
    pub async fn open(transport: &PulsarTransport, topic: &str) -> Result<Self, PulsarError> {
        let timeout = transport.settings().operation_timeout;
        let build = transport
            .client()
            .producer()
            .with_topic(topic)
            .with_name(format!("{}-publish", transport.name()))
            .with_options(super::keyed_producer_options())
            .build();
        let producer = super::created(transport, "publish to", topic, build).await?;
        Ok(Publisher {
            producer,
            topic: topic.to_owned(),
            timeout,
        })
    }

    /// Publishes every message and waits for every receipt.
    ///
    /// # Errors
    /// [`PulsarError::Topic`] when a send fails or no receipt comes in time; messages
    /// before it may have been published.
    pub async fn send_all(&mut self, messages: Vec<Outgoing>) -> Result<(), PulsarError> {
        let err = |detail: String| PulsarError::Topic {
            what: "publish to",
            topic: self.topic.clone(),
            detail,
        };
        let mut receipts: Vec<::pulsar::producer::SendFuture> = Vec::with_capacity(MAX_IN_FLIGHT);
        for m in messages {
            if receipts.len() >= MAX_IN_FLIGHT {
                for r in receipts.drain(..) {
                    tokio::time::timeout(self.timeout, r)
                        .await
                        .map_err(|_| err(format!("no receipt within {:?}", self.timeout)))?
                        .map_err(|e| err(e.to_string()))?;
                }
            }
            let mut properties = HashMap::new();
            if let Some(id) = m.event_id {
                properties.insert(EVENT_ID_PROPERTY.to_owned(), id);
            }
            // The producer's context travels with the message (when tracing is on).
            let span = super::trace_context::send_span(&self.topic);
            if let Some(tp) = super::trace_context::traceparent_of(&span) {
                properties.insert(super::trace_context::TRACEPARENT.to_owned(), tp);
            }
            let message = producer::Message {
                payload: m.payload,
                partition_key: m.key,
                properties,
                ..producer::Message::default()
            };
            let send = self.producer.send_non_blocking(message);
            let receipt = tokio::time::timeout(self.timeout, send)
                .await
                .map_err(|_| err(format!("no answer within {:?}", self.timeout)))?
                .map_err(|e| err(e.to_string()))?;
            receipts.push(receipt);
        }
        for r in receipts {
            tokio::time::timeout(self.timeout, r)
                .await
                .map_err(|_| err(format!("no receipt within {:?}", self.timeout)))?
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    /// Closes the producer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.producer.close()).await;
    }
}

/// A message as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Its key.
    pub key: Option<String>,
    /// Its properties.
    pub properties: BTreeMap<String, String>,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Reads a topic from its start on an exclusive subscription of its own.
pub struct TopicReader {
    consumer: Consumer<Vec<u8>, TokioExecutor>,
}

impl TopicReader {
    /// Subscribes `subscription` (exclusive) to `topic`, from the earliest message.
    ///
    /// # Errors
    /// [`PulsarError::Topic`] when the subscription cannot be made.
    pub async fn open(
        transport: &PulsarTransport,
        topic: &str,
        subscription: &str,
    ) -> Result<Self, PulsarError> {
        Self::open_with(transport, topic, subscription, true).await
    }

    /// As [`TopicReader::open`], on a non-durable subscription: it holds no backlog on the
    /// broker and goes away with this reader (for readers named after a pod, which come
    /// and go). It sees what the topic still retains.
    ///
    /// # Errors
    /// [`PulsarError::Topic`] when the subscription cannot be made.
    pub async fn open_non_durable(
        transport: &PulsarTransport,
        topic: &str,
        subscription: &str,
    ) -> Result<Self, PulsarError> {
        Self::open_with(transport, topic, subscription, false).await
    }

    async fn open_with(
        transport: &PulsarTransport,
        topic: &str,
        subscription: &str,
        durable: bool,
    ) -> Result<Self, PulsarError> {
        let build = transport
            .client()
            .consumer()
            .with_topic(topic)
            .with_subscription(subscription)
            .with_subscription_type(SubType::Exclusive)
            .with_options(ConsumerOptions {
                initial_position: InitialPosition::Earliest,
                durable: Some(durable),
                ..ConsumerOptions::default()
            })
            .build::<Vec<u8>>();
        let consumer = super::created(transport, "subscribe to", topic, build).await?;
        Ok(TopicReader { consumer })
    }

    /// The next message, or `None` when none comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
        loop {
            let m = match tokio::time::timeout(wait, self.consumer.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(_))) => continue,
                Ok(None) | Err(_) => return None,
            };
            let _ = self.consumer.ack(&m).await;
            return Some(Received {
                key: m.key(),
                properties: m
                    .payload
                    .metadata
                    .properties
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect(),
                payload: m.payload.data,
            });
        }
    }

    /// Reads until `wait` passes with no new message.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Received> {
        let mut out = Vec::new();
        while let Some(m) = self.next(wait).await {
            out.push(m);
        }
        out
    }
}
