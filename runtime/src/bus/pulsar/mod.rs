//! The Apache Pulsar transport: telemetry from a shared subscription, acknowledged only
//! after the decisions it fed are audited; actions to an actions topic keyed by target;
//! bad telemetry to a dead-letter topic with the reason; overrides from a control topic.
//!
//! The `pulsar` crate reconnects by itself, but has open reports of consumers that stay
//! silent after a broker restart and producers whose sends never complete; every consumer
//! and producer here sits behind a watchdog that notices a stalled stream or send and
//! recreates it (see `consumer.rs` and `producer.rs`).

mod acks;
mod consumer;
mod control;
mod dead_letters;
mod producer;
mod publisher;
mod source;
mod url;

use std::time::Duration;

use ::pulsar::{ConnectionRetryOptions, OperationRetryOptions, Pulsar, TokioExecutor};

pub use acks::{AckLedger, Delivery};
pub use control::{spawn_control, ControlEvent, ControlStats};
pub use dead_letters::PulsarDeadLetters;
pub use producer::PulsarActionSink;
pub use publisher::{Outgoing, Publisher, Received, TopicReader};
pub use source::{open_sources, Acker, ConsumerStats, PulsarSources, SourceControl};
pub use url::check_url;

pub use crate::policy::transport::{
    PulsarSettings, SubscriptionType, TopicSelection, DEFAULT_ACTIONS_TOPIC, DEFAULT_CONTROL_TOPIC,
    DEFAULT_DEAD_LETTER_TOPIC, DEFAULT_TELEMETRY_TOPIC,
};

/// Message property with the producer's event id (de-duplication across redeliveries and
/// producer retries); without it the broker's message id is the event id.
pub const EVENT_ID_PROPERTY: &str = "conclave-event-id";
/// Dead-letter properties: why, the error text, the topic it came from, its event id.
pub const DEAD_LETTER_REASON: &str = "conclave-dead-letter-reason";
/// See [`DEAD_LETTER_REASON`].
pub const DEAD_LETTER_ERROR: &str = "conclave-dead-letter-error";
/// See [`DEAD_LETTER_REASON`].
pub const DEAD_LETTER_ORIGIN: &str = "conclave-origin-topic";

/// Pulsar transport failures.
#[derive(Debug, thiserror::Error)]
pub enum PulsarError {
    /// The service URL is not usable.
    #[error("invalid Pulsar URL `{url}`: {reason}")]
    Url {
        /// As given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No answer from the broker in time.
    #[error("cannot reach the Pulsar broker at {url} within {timeout:?}: {detail}")]
    Unreachable {
        /// The service URL.
        url: String,
        /// How long we waited.
        timeout: Duration,
        /// What the client said last.
        detail: String,
    },
    /// Subscribing or creating a producer failed (missing topic, no permission, ...).
    #[error("cannot {what} `{topic}`: {detail}")]
    Topic {
        /// `subscribe to` or `publish to`.
        what: &'static str,
        /// The topic.
        topic: String,
        /// The broker's answer.
        detail: String,
    },
}

/// A connected client plus the policy's topics.
#[derive(Clone)]
pub struct PulsarTransport {
    client: Pulsar<TokioExecutor>,
    url: String,
    settings: PulsarSettings,
    /// This instance's name on subscriptions and producers (visible in broker stats).
    name: String,
}

impl std::fmt::Debug for PulsarTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulsarTransport")
            .field("url", &self.url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PulsarTransport {
    /// Connects to the broker at `url` (checked first), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PulsarError::Url`] for a malformed URL, [`PulsarError::Unreachable`] when the
    /// broker does not answer in time.
    pub async fn connect(
        url: &str,
        settings: PulsarSettings,
        name: &str,
        timeout: Duration,
    ) -> Result<Self, PulsarError> {
        check_url(url)?;
        let builder = Pulsar::builder(url, TokioExecutor)
            .with_connection_retry_options(ConnectionRetryOptions {
                min_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                // Reconnection after a broker restart must outlast the restart; the
                // watchdogs recreate what stays stuck beyond that.
                max_retries: 30,
                connection_timeout: Duration::from_secs(5),
                keep_alive: Duration::from_secs(5),
                ..ConnectionRetryOptions::default()
            })
            .with_operation_retry_options(OperationRetryOptions {
                operation_timeout: settings.operation_timeout,
                retry_delay: Duration::from_millis(500),
                max_retries: Some(10),
            });
        let client = match tokio::time::timeout(timeout, builder.build()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(PulsarError::Unreachable {
                    url: url.to_owned(),
                    timeout,
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                return Err(PulsarError::Unreachable {
                    url: url.to_owned(),
                    timeout,
                    detail: "no answer".to_owned(),
                })
            }
        };
        Ok(PulsarTransport {
            client,
            url: url.to_owned(),
            settings,
            name: name.to_owned(),
        })
    }

    /// The policy's Pulsar settings.
    pub fn settings(&self) -> &PulsarSettings {
        &self.settings
    }

    /// This instance's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn client(&self) -> &Pulsar<TokioExecutor> {
        &self.client
    }
}

/// Exponential backoff for recreating consumers and producers: 200 ms doubling to 5 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(5))
}
