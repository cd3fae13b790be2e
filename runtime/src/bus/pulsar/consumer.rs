//! Creating consumers on the policy's telemetry topics (names, partitioned topics, or a
//! pattern) with the policy's subscription type and redelivery limit.

use ::pulsar::consumer::{ConsumerOptions, DeadLetterPolicy, InitialPosition};
use ::pulsar::{Consumer, SubType, TokioExecutor};

use super::{PulsarError, PulsarTransport, SubscriptionType, TopicSelection};

/// A telemetry consumer.
pub(crate) type TelemetryConsumer = Consumer<Vec<u8>, TokioExecutor>;

/// The topics a consumer reads, for messages.
pub(crate) fn describe_topics(t: &PulsarTransport) -> String {
    match &t.settings().telemetry {
        TopicSelection::Names(n) => n.join(","),
        TopicSelection::Pattern(p) => format!("/{p}/"),
    }
}

/// Subscribes consumer number `index` of this instance.
pub(crate) async fn subscribe(
    t: &PulsarTransport,
    index: usize,
) -> Result<TelemetryConsumer, PulsarError> {
    let s = t.settings();
    let mut b = t
        .client()
        .consumer()
        .with_subscription(&s.subscription)
        .with_subscription_type(match s.subscription_type {
            SubscriptionType::KeyShared => SubType::KeyShared,
            SubscriptionType::Failover => SubType::Failover,
        })
        .with_consumer_name(format!("{}-{index}", t.name()))
        .with_options(ConsumerOptions {
            // A new subscription starts with what is already waiting: telemetry published
            // before the first instance came up is still decided on.
            initial_position: InitialPosition::Earliest,
            durable: Some(true),
            ..ConsumerOptions::default()
        })
        // Deliveries beyond the limit (a message that keeps being redelivered without an
        // acknowledgement, e.g. one that takes the process down) go to the dead-letter
        // topic; the client adds the origin topic and message id as properties.
        .with_dead_letter_policy(DeadLetterPolicy {
            max_redeliver_count: s.max_redeliveries as usize,
            dead_letter_topic: s.dead_letter_topic.clone(),
        })
        .with_unacked_message_resend_delay(None);
    b = match &s.telemetry {
        TopicSelection::Names(names) => b.with_topics(names),
        TopicSelection::Pattern(p) => {
            let re = regex::Regex::new(p).map_err(|e| PulsarError::Topic {
                what: "subscribe to",
                topic: p.clone(),
                detail: e.to_string(),
            })?;
            b.with_topic_regex(re)
                .with_topic_refresh(std::time::Duration::from_secs(30))
        }
    };
    let timeout = s.operation_timeout;
    match tokio::time::timeout(timeout, b.build::<Vec<u8>>()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(PulsarError::Topic {
            what: "subscribe to",
            topic: describe_topics(t),
            detail: e.to_string(),
        }),
        Err(_) => Err(PulsarError::Topic {
            what: "subscribe to",
            topic: describe_topics(t),
            detail: format!("no answer within {timeout:?}"),
        }),
    }
}
