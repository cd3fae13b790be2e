//! Events about agents' lives: crashes, hangs, restarts, retirement.

use std::time::Duration;

use super::Counters;

/// An agent panicked while handling a message or a tick.
#[derive(Debug)]
pub struct AgentPanicked<'a> {
    /// The agent.
    pub agent: &'static str,
    /// The panic message.
    pub message: &'a str,
}

impl AgentPanicked<'_> {
    /// Logs it.
    pub fn emit(self) {
        tracing::error!(
            agent = self.agent,
            panic = self.message,
            "Agent panicked; the message is dead-lettered and the agent restarted."
        );
    }
}

/// An agent missed its heartbeat deadline.
#[derive(Debug)]
pub struct AgentHung {
    /// The agent.
    pub agent: &'static str,
    /// The deadline it missed.
    pub deadline: Duration,
}

impl AgentHung {
    /// Logs it.
    pub fn emit(self) {
        tracing::error!(
            agent = self.agent,
            deadline_ms = self.deadline.as_millis() as u64,
            "Agent missed its heartbeat deadline; it is abandoned and restarted."
        );
    }
}

/// An agent is being restarted.
#[derive(Debug)]
pub struct AgentRestarted {
    /// The agent.
    pub agent: &'static str,
    /// Restarts within the budget window, this one included.
    pub attempt: u32,
    /// Backoff before the new instance starts.
    pub delay: Duration,
}

impl AgentRestarted {
    /// Logs and counts it.
    pub fn emit(self, counters: &Counters) {
        counters.add_restart(self.agent);
        tracing::warn!(
            agent = self.agent,
            attempt = self.attempt,
            delay_ms = self.delay.as_millis() as u64,
            "Agent restarted."
        );
    }
}

/// An agent used up its restart budget and was stopped for good; the others go on.
#[derive(Debug)]
pub struct AgentRetired {
    /// The agent.
    pub agent: &'static str,
    /// Restarts in the budget window.
    pub restarts: u32,
}

impl AgentRetired {
    /// Logs it.
    pub fn emit(self) {
        tracing::error!(
            agent = self.agent,
            restarts = self.restarts,
            "Agent exceeded its restart budget and was retired; the other agents keep deciding."
        );
    }
}
