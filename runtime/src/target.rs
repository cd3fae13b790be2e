//! What an action is about: a service, a topic or a route.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of thing a target names.
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
pub enum TargetKind {
    /// A deployable service (replicas, routes, breakers).
    Service,
    /// A messaging topic (quarantine, shedding).
    Topic,
    /// A route between services or regions (weights).
    Route,
}

impl TargetKind {
    /// The name used in YAML, JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Service => "service",
            TargetKind::Topic => "topic",
            TargetKind::Route => "route",
        }
    }
}

/// A target by name. Names are unique across kinds within a policy.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Target(String);

impl Target {
    /// A target called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Target(name.into())
    }

    /// The target's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lets maps keyed by `Target` be searched with a `&str` (same order: `Target` orders
/// by its name).
impl std::borrow::Borrow<str> for Target {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Target {
    fn from(s: &str) -> Self {
        Target::new(s)
    }
}
