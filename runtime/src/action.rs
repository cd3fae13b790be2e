//! What an agent wants done to a target.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::units::Fraction;

/// Breaker positions, as in resilience4j.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// A few probe calls flow.
    HalfOpen,
    /// No calls flow.
    Open,
}

/// What a quarantine isolates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineScope {
    /// Messages from one producer.
    Producer(String),
    /// A whole topic.
    Topic(String),
}

/// How urgent an alert is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look.
    Warning,
    /// Someone should look now.
    Critical,
}

/// An action on a target. The JSON form is externally tagged: `{"scale": {"replicas": 4}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Run this many replicas.
    Scale {
        /// Desired replica count.
        replicas: u32,
    },
    /// Split traffic across backends by weight (weights need not sum to 1; they are
    /// normalized by the actuator).
    Route {
        /// Weight per backend, in backend-name order.
        weights: BTreeMap<String, f64>,
    },
    /// Refuse this share of incoming work.
    Shed {
        /// Share of work to refuse.
        fraction: Fraction,
    },
    /// Move the target's breaker.
    Breaker {
        /// New breaker position.
        state: BreakerState,
    },
    /// Isolate a producer or topic.
    Quarantine {
        /// What to isolate.
        scope: QuarantineScope,
        /// Why, in words (never the offending value itself).
        reason: String,
    },
    /// Tell a human.
    Alert {
        /// How urgent.
        severity: Severity,
        /// What to say.
        text: String,
    },
}

/// The kind of an action, without its parameters: used in policies, metrics and conflict rules.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// [`Action::Scale`].
    Scale,
    /// [`Action::Route`].
    Route,
    /// [`Action::Shed`].
    Shed,
    /// [`Action::Breaker`].
    Breaker,
    /// [`Action::Quarantine`].
    Quarantine,
    /// [`Action::Alert`].
    Alert,
}

impl ActionKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ActionKind; 6] = [
        ActionKind::Scale,
        ActionKind::Route,
        ActionKind::Shed,
        ActionKind::Breaker,
        ActionKind::Quarantine,
        ActionKind::Alert,
    ];

    /// The name used in YAML, JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Scale => "scale",
            ActionKind::Route => "route",
            ActionKind::Shed => "shed",
            ActionKind::Breaker => "breaker",
            ActionKind::Quarantine => "quarantine",
            ActionKind::Alert => "alert",
        }
    }
}

impl Action {
    /// This action's kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Scale { .. } => ActionKind::Scale,
            Action::Route { .. } => ActionKind::Route,
            Action::Shed { .. } => ActionKind::Shed,
            Action::Breaker { .. } => ActionKind::Breaker,
            Action::Quarantine { .. } => ActionKind::Quarantine,
            Action::Alert { .. } => ActionKind::Alert,
        }
    }

    /// Whether this action protects the target by refusing or isolating work (shedding, an
    /// open breaker, a quarantine). Protective actions beat a scale-down on the same target.
    pub fn is_protective(&self) -> bool {
        matches!(
            self,
            Action::Shed { .. }
                | Action::Breaker {
                    state: BreakerState::Open | BreakerState::HalfOpen
                }
                | Action::Quarantine { .. }
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Scale { replicas } => write!(f, "scale to {replicas} replicas"),
            Action::Route { weights } => {
                write!(f, "route")?;
                let mut sep = " ";
                for (backend, w) in weights {
                    write!(f, "{sep}{backend}={w}")?;
                    sep = ", ";
                }
                Ok(())
            }
            Action::Shed { fraction } => write!(f, "shed {:.0}% of work", fraction.get() * 100.0),
            Action::Breaker { state } => {
                let s = match state {
                    BreakerState::Closed => "close",
                    BreakerState::HalfOpen => "half-open",
                    BreakerState::Open => "open",
                };
                write!(f, "{s} the breaker")
            }
            Action::Quarantine { scope, reason } => match scope {
                QuarantineScope::Producer(p) => write!(f, "quarantine producer `{p}` ({reason})"),
                QuarantineScope::Topic(t) => write!(f, "quarantine topic `{t}` ({reason})"),
            },
            Action::Alert { severity, text } => write!(f, "alert ({severity:?}): {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_json_form_is_stable() {
        let a = Action::Scale { replicas: 4 };
        assert_eq!(
            serde_json::to_string(&a).expect("json"),
            r#"{"scale":{"replicas":4}}"#
        );
        let b = Action::Breaker {
            state: BreakerState::HalfOpen,
        };
        assert_eq!(
            serde_json::to_string(&b).expect("json"),
            r#"{"breaker":{"state":"half_open"}}"#
        );
        let q = Action::Quarantine {
            scope: QuarantineScope::Producer("p1".into()),
            reason: "card number in payload.card".into(),
        };
        let back: Action =
            serde_json::from_str(&serde_json::to_string(&q).expect("json")).expect("parse");
        assert_eq!(back, q);
    }

    #[test]
    fn only_refusing_actions_are_protective() {
        assert!(Action::Shed {
            fraction: Fraction::try_new(0.1).expect("valid")
        }
        .is_protective());
        assert!(Action::Breaker {
            state: BreakerState::Open
        }
        .is_protective());
        assert!(!Action::Breaker {
            state: BreakerState::Closed
        }
        .is_protective());
        assert!(!Action::Scale { replicas: 1 }.is_protective());
    }
}
