//! Model faults a simulation injects, to rehearse an agent's fallback: windows of decision
//! time in which an agent's model "fails" in a chosen way. The host checks them on its
//! clock (the tick's time, which the agent sets before each call), so a simulated run is
//! as deterministic with faults as without. Production never sets any.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;

use super::host::InferenceError;

/// How an injected fault shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The call fails (as a model that cannot run): fallback `inference_error`.
    Unavailable,
    /// No answer within the deadline: fallback `timeout` (the caller is not made to wait).
    Timeout,
    /// The answer is NaN: fallback `non_finite_output`.
    InvalidOutput,
}

/// One window `[from, until)` in which `agent`'s model fails as `fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    /// The agent whose model fails.
    pub agent: String,
    /// First instant of the fault.
    pub from: Timestamp,
    /// First instant after it.
    pub until: Timestamp,
    /// How it fails.
    pub fault: InjectedFault,
}

/// Every injected window of a run; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct ModelFaults(Arc<[FaultWindow]>);

impl ModelFaults {
    /// Faults for these windows.
    pub fn new(windows: Vec<FaultWindow>) -> Self {
        ModelFaults(windows.into())
    }

    /// The windows for `agent`'s model; `None` when it has none.
    pub fn for_agent(&self, agent: &str) -> Option<AgentFaults> {
        let windows: Vec<FaultWindow> = self
            .0
            .iter()
            .filter(|w| w.agent == agent)
            .cloned()
            .collect();
        (!windows.is_empty()).then(|| AgentFaults(windows.into()))
    }
}

/// One agent's injected windows, as its model host holds them.
#[derive(Debug, Clone)]
pub struct AgentFaults(Arc<[FaultWindow]>);

impl AgentFaults {
    /// The error an inference at `now` fails with, if a window covers it. `timeout` is
    /// the model's deadline, named in the error as a real timeout would.
    pub fn at(&self, now: Timestamp, timeout: Duration) -> Option<InferenceError> {
        let w = self.0.iter().find(|w| w.from <= now && now < w.until)?;
        Some(match w.fault {
            InjectedFault::Unavailable => {
                InferenceError::Run("model unavailable (fault injected by the simulation)".into())
            }
            InjectedFault::Timeout => InferenceError::Timeout { after: timeout },
            InjectedFault::InvalidOutput => InferenceError::NonFinite {
                row: 0,
                index: 0,
                value: f32::NAN,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Fallback;

    #[test]
    fn a_window_covers_its_start_not_its_end_and_only_its_agent() {
        let t = Timestamp::from_millis;
        let faults = ModelFaults::new(vec![
            FaultWindow {
                agent: "scaler".into(),
                from: t(1_000),
                until: t(2_000),
                fault: InjectedFault::Timeout,
            },
            FaultWindow {
                agent: "scaler".into(),
                from: t(5_000),
                until: t(6_000),
                fault: InjectedFault::InvalidOutput,
            },
        ]);
        assert!(faults.for_agent("breaker").is_none());
        let f = faults.for_agent("scaler").expect("scaler has windows");
        let deadline = Duration::from_millis(200);
        let reason = |ms| f.at(t(ms), deadline).map(|e| e.fallback());
        assert_eq!(reason(999), None);
        assert_eq!(reason(1_000), Some(Fallback::Timeout));
        assert_eq!(reason(1_999), Some(Fallback::Timeout));
        assert_eq!(reason(2_000), None);
        assert_eq!(reason(5_500), Some(Fallback::NonFiniteOutput));
        assert_eq!(
            f.at(t(1_500), deadline).map(|e| e.to_string()),
            Some("inference timed out after 200ms".to_string())
        );
    }
}
