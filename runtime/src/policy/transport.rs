//! `spec.pulsar`: where a runtime on Pulsar reads telemetry, publishes actions and takes
//! overrides. The broker's address is deployment, not policy: it comes from the command
//! line (`conclave run --pulsar URL`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{Problem, Problems};
use super::located::Located;

/// The topics the shipped broker script creates; a policy without `spec.pulsar` uses them.
pub const DEFAULT_TELEMETRY_TOPIC: &str = "persistent://conclave/ops/telemetry";
/// Default actions topic.
pub const DEFAULT_ACTIONS_TOPIC: &str = "persistent://conclave/ops/actions";
/// Default control (override) topic.
pub const DEFAULT_CONTROL_TOPIC: &str = "persistent://conclave/ops/control";
/// Default dead-letter topic.
pub const DEFAULT_DEAD_LETTER_TOPIC: &str = "persistent://conclave/ops/telemetry-dlq";

/// `spec.pulsar` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPulsar {
    /// Where telemetry comes from.
    pub telemetry: Option<Located<RawTelemetryTopics>>,
    /// Topic enacted actions are published to, keyed by target.
    pub actions_topic: Option<Located<String>>,
    /// Topic human overrides arrive on (the same JSON the API takes).
    pub control_topic: Option<Located<String>>,
}

/// `spec.pulsar.telemetry` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetryTopics {
    /// Topic names (a partitioned topic's partitions are all read). Default: the
    /// `telemetry` topic of the shipped broker script.
    pub topics: Option<Vec<Located<String>>>,
    /// A regular expression over full topic names, instead of `topics`; topics created
    /// later are picked up.
    pub topic_pattern: Option<Located<String>>,
    /// Subscription name, shared by every runtime instance (default `conclave`).
    pub subscription: Option<Located<String>>,
    /// `key_shared` (default: instances split targets by key) or `failover` (one active
    /// instance, the others stand by).
    pub subscription_type: Option<SubscriptionType>,
    /// Deliveries of one message before it goes to the dead-letter topic (default 3).
    pub max_redeliveries: Option<Located<u32>>,
    /// Where messages that cannot be used go, with the reason in their properties.
    pub dead_letter_topic: Option<Located<String>>,
}

/// How runtime instances share the telemetry subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionType {
    /// Each target (message key) belongs to one instance at a time: scale-out.
    KeyShared,
    /// One instance consumes, the others take over when it dies: a singleton.
    Failover,
}

/// Which telemetry topics to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicSelection {
    /// These topics.
    Names(Vec<String>),
    /// Every topic whose full name matches.
    Pattern(String),
}

/// `spec.pulsar`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulsarSettings {
    /// Telemetry topics.
    pub telemetry: TopicSelection,
    /// Subscription name.
    pub subscription: String,
    /// Subscription type.
    pub subscription_type: SubscriptionType,
    /// Deliveries before dead-lettering.
    pub max_redeliveries: u32,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Actions topic.
    pub actions_topic: String,
    /// Control topic.
    pub control_topic: String,
    /// How long a runtime waits for the broker before giving up on a call.
    #[serde(skip)]
    pub operation_timeout: Duration,
}

impl Default for PulsarSettings {
    fn default() -> Self {
        PulsarSettings {
            telemetry: TopicSelection::Names(vec![DEFAULT_TELEMETRY_TOPIC.to_string()]),
            subscription: "conclave".to_string(),
            subscription_type: SubscriptionType::KeyShared,
            max_redeliveries: 3,
            dead_letter_topic: DEFAULT_DEAD_LETTER_TOPIC.to_string(),
            actions_topic: DEFAULT_ACTIONS_TOPIC.to_string(),
            control_topic: DEFAULT_CONTROL_TOPIC.to_string(),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether `name` is a topic name Pulsar accepts: `persistent://tenant/namespace/topic`
/// (or `non-persistent://`), or a short name resolved in `public/default`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    let bad_char = |s: &str| {
        s.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':')))
    };
    let rest = name
        .strip_prefix("persistent://")
        .or_else(|| name.strip_prefix("non-persistent://"));
    let parts: Vec<&str> = match rest {
        Some(r) => r.split('/').collect(),
        None if name.contains("://") => {
            return Err(format!(
                "expected `persistent://` or `non-persistent://`, found `{name}`"
            ))
        }
        None => vec![name],
    };
    if rest.is_some() && parts.len() != 3 {
        return Err(format!(
            "expected `persistent://tenant/namespace/topic`, found `{name}`"
        ));
    }
    for p in &parts {
        if p.is_empty() {
            return Err(format!("empty part in topic name `{name}`"));
        }
        if let Some(c) = bad_char(p) {
            return Err(format!(
                "character `{c}` is not allowed in topic name `{name}`"
            ));
        }
    }
    Ok(())
}

/// Checks `spec.pulsar`, reporting every problem into `p`.
pub(crate) fn compile(raw: Option<&RawPulsar>, p: &mut Problems) -> PulsarSettings {
    let mut out = PulsarSettings::default();
    let Some(raw) = raw else { return out };
    let topic = |t: &Located<String>, path: &str, p: &mut Problems| -> Option<String> {
        match check_topic_name(&t.value) {
            Ok(()) => Some(t.value.clone()),
            Err(m) => {
                p.push(t.loc, path, Problem::Contradiction(m));
                None
            }
        }
    };
    if let Some(t) = &raw.actions_topic {
        out.actions_topic = topic(t, "spec.pulsar.actions_topic", p).unwrap_or_default();
    }
    if let Some(t) = &raw.control_topic {
        out.control_topic = topic(t, "spec.pulsar.control_topic", p).unwrap_or_default();
    }
    let Some(tel) = &raw.telemetry else {
        return out;
    };
    let tv = &tel.value;
    match (&tv.topics, &tv.topic_pattern) {
        (Some(_), Some(pat)) => p.push(
            pat.loc,
            "spec.pulsar.telemetry.topic_pattern",
            Problem::Contradiction("set `topics` or `topic_pattern`, not both".to_string()),
        ),
        (Some(list), None) => {
            if list.is_empty() {
                p.push(
                    tel.loc,
                    "spec.pulsar.telemetry.topics",
                    Problem::Contradiction("expected at least one topic".to_string()),
                );
            }
            let names: Vec<String> = list
                .iter()
                .enumerate()
                .filter_map(|(i, t)| topic(t, &format!("spec.pulsar.telemetry.topics[{i}]"), p))
                .collect();
            out.telemetry = TopicSelection::Names(names);
        }
        (None, Some(pat)) => match regex::Regex::new(&pat.value) {
            Ok(_) => out.telemetry = TopicSelection::Pattern(pat.value.clone()),
            Err(e) => p.push(
                pat.loc,
                "spec.pulsar.telemetry.topic_pattern",
                Problem::Contradiction(format!("invalid regular expression: {e}")),
            ),
        },
        (None, None) => {}
    }
    if let Some(s) = &tv.subscription {
        if s.value.trim().is_empty() || s.value.contains('/') {
            p.push(
                s.loc,
                "spec.pulsar.telemetry.subscription",
                Problem::Contradiction(format!(
                    "expected a non-empty subscription name without `/`, found `{}`",
                    s.value
                )),
            );
        } else {
            out.subscription = s.value.clone();
        }
    }
    if let Some(t) = tv.subscription_type {
        out.subscription_type = t;
    }
    if let Some(n) = &tv.max_redeliveries {
        if (1..=100).contains(&n.value) {
            out.max_redeliveries = n.value;
        } else {
            p.push(
                n.loc,
                "spec.pulsar.telemetry.max_redeliveries",
                Problem::OutOfRange {
                    expected: "1..=100",
                    found: n.value.to_string(),
                },
            );
        }
    }
    if let Some(t) = &tv.dead_letter_topic {
        out.dead_letter_topic =
            topic(t, "spec.pulsar.telemetry.dead_letter_topic", p).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::check_topic_name;

    #[test]
    fn topic_names() {
        assert!(check_topic_name("persistent://conclave/ops/telemetry").is_ok());
        assert!(check_topic_name("non-persistent://a/b/c-1").is_ok());
        assert!(check_topic_name("telemetry").is_ok());
        assert_eq!(
            check_topic_name("kafka://a/b/c").unwrap_err(),
            "expected `persistent://` or `non-persistent://`, found `kafka://a/b/c`"
        );
        assert_eq!(
            check_topic_name("persistent://a/b").unwrap_err(),
            "expected `persistent://tenant/namespace/topic`, found `persistent://a/b`"
        );
        assert_eq!(
            check_topic_name("persistent://a/b c/d").unwrap_err(),
            "character ` ` is not allowed in topic name `persistent://a/b c/d`"
        );
    }
}
