//! The agents this build knows, by the names policies use.

/// Every agent name a policy may configure, sorted.
pub const AGENTS: [&str; 4] = ["breaker", "compliance", "router", "scaler"];
