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

/// The namespace whose topics `pattern` is matched against: the tenant and namespace of
/// its `persistent://tenant/namespace/` prefix, which must be literal (`\.` counts as a
/// dot); `public/default` for a pattern without a scheme, as for short topic names.
fn pattern_namespace(pattern: &str) -> Result<String, String> {
    let p = pattern.strip_prefix('^').unwrap_or(pattern);
    let rest = p
        .strip_prefix("persistent://")
        .or_else(|| p.strip_prefix("non-persistent://"));
    let Some(rest) = rest else {
        if p.contains("://") {
            return Err(NAMESPACE_NOT_LITERAL.to_owned());
        }
        return Ok("public/default".to_owned());
    };
    let literal = |s: &str| {
        let s = s.replace("\\.", ".");
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':'));
        ok.then_some(s)
    };
    let mut parts = rest.splitn(3, '/');
    match (
        parts.next().and_then(literal),
        parts.next().and_then(literal),
        parts.next(),
    ) {
        (Some(tenant), Some(namespace), Some(_)) => Ok(format!("{tenant}/{namespace}")),
        _ => Err(NAMESPACE_NOT_LITERAL.to_owned()),
    }
}

const NAMESPACE_NOT_LITERAL: &str = "a topic pattern must start with `persistent://TENANT/NAMESPACE/`, both written out: the client lists the topics of one namespace";

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
            // The client matches the pattern against one namespace's topics, and that
            // namespace is `public/default` unless told.
            let namespace = pattern_namespace(p).map_err(|detail| PulsarError::Topic {
                what: "subscribe to",
                topic: p.clone(),
                detail,
            })?;
            b.with_topic_regex(re)
                .with_lookup_namespace(namespace)
                .with_topic_refresh(std::time::Duration::from_secs(30))
        }
    };
    super::created(t, "subscribe to", &describe_topics(t), b.build::<Vec<u8>>()).await
}

#[cfg(test)]
mod tests {
    use super::pattern_namespace;

    #[test]
    fn a_pattern_is_matched_in_the_namespace_it_names() {
        for (pattern, namespace) in [
            ("persistent://conclave/ops/telemetry-.*", "conclave/ops"),
            (
                "^persistent://conclave/test/rx-telemetry-.*$",
                "conclave/test",
            ),
            ("non-persistent://a.b/c/.*", "a.b/c"),
            ("persistent://a\\.b/c/x", "a.b/c"),
            ("telemetry-.*", "public/default"),
        ] {
            assert_eq!(
                pattern_namespace(pattern).as_deref(),
                Ok(namespace),
                "{pattern}"
            );
        }
        for pattern in [
            "persistent://conclave/(ops|test)/.*",
            "persistent://conclave/.*",
            "persistent://.*/ops/x",
            "(non-)?persistent://conclave/ops/x",
        ] {
            assert!(pattern_namespace(pattern).is_err(), "{pattern}");
        }
    }
}
