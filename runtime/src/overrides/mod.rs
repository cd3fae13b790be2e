//! Human overrides: the acts through which people stay in charge of the arbiter, the
//! journal that keeps them across restarts, and the view operators read.

mod journal;
mod view;

pub use journal::{JournalError, OverrideJournal};
pub use view::{AgentView, OperatorView, PendingApproval};

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::policy::Mode;
use crate::target::Target;

/// The roles a person can hold (who may do what is in the README).
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
pub enum Role {
    /// May look.
    Viewer,
    /// May approve, veto, pause, pin and freeze.
    Operator,
    /// May do everything, including changing agent modes.
    Admin,
}

impl Role {
    /// The name used in YAML, JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The person's name.
    pub name: String,
    /// The role they acted in.
    pub role: Role,
}

/// What an override does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OverrideKind {
    /// Nothing is enacted until unfrozen (or `until`).
    Freeze,
    /// Lifts a freeze.
    Unfreeze,
    /// The agent's proposals are overridden until resumed (or `until`).
    Pause {
        /// The agent to pause.
        agent: String,
    },
    /// Lifts a pause.
    Resume {
        /// The agent to resume.
        agent: String,
    },
    /// The target is held at `replicas` until unpinned (or `until`).
    Pin {
        /// The target to pin.
        target: Target,
        /// The replicas to hold it at.
        replicas: u32,
    },
    /// Lifts a pin.
    Unpin {
        /// The target to unpin.
        target: Target,
    },
    /// Sets an agent's mode, above what the policy says, until `until`.
    SetMode {
        /// The agent.
        agent: String,
        /// Its new mode.
        mode: Mode,
    },
    /// Refuses a pending decision.
    Veto {
        /// The decision's id.
        decision: String,
    },
    /// Approves a pending decision.
    Approve {
        /// The decision's id.
        decision: String,
    },
    /// Denies a pending decision.
    Deny {
        /// The decision's id.
        decision: String,
    },
}

/// A human override, with who, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Unique id.
    pub id: String,
    /// What it does.
    pub kind: OverrideKind,
    /// Who did it.
    pub by: Actor,
    /// Why, in their words (required).
    pub reason: String,
    /// When it was made.
    pub at: Timestamp,
    /// When it lapses by itself, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

impl Override {
    /// Whether the override is still in force at `now`.
    pub fn is_in_force(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

impl OverrideKind {
    /// Whether the override stays in force (and so must survive a restart), as opposed to
    /// an answer to one pending decision or the lifting of a standing override.
    pub fn is_standing(&self) -> bool {
        matches!(
            self,
            OverrideKind::Freeze
                | OverrideKind::Pause { .. }
                | OverrideKind::Pin { .. }
                | OverrideKind::SetMode { .. }
        )
    }

    /// A short name for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            OverrideKind::Freeze => "freeze",
            OverrideKind::Unfreeze => "unfreeze",
            OverrideKind::Pause { .. } => "pause",
            OverrideKind::Resume { .. } => "resume",
            OverrideKind::Pin { .. } => "pin",
            OverrideKind::Unpin { .. } => "unpin",
            OverrideKind::SetMode { .. } => "set_mode",
            OverrideKind::Veto { .. } => "veto",
            OverrideKind::Approve { .. } => "approve",
            OverrideKind::Deny { .. } => "deny",
        }
    }
}
