//! The breaker agent: a resilience4j-style circuit breaker per protected service, driven by
//! aggregate metrics, plus load shedding for overloaded services.
//!
//! It watches `Metrics` telemetry. A service's own metrics feed its call window and its
//! load history; every caller's `dependencies` entry for it feeds the callers' view, which
//! the breaker prefers (see [`features`]). Decisions are taken at [`Agent::tick`] only, one
//! per decision window, and proposed at the tick's `now`: aggregate samples arrive every
//! few seconds anyway, and judging the whole window at once keeps one noisy sample from
//! opening the breaker. Each proposal is a change: `Breaker { state }` on a transition,
//! `Shed { fraction }` when shedding starts, rises or stops (`fraction` 0).

mod config;
mod fallback;
mod features;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use conclave_runtime::telemetry::{ServiceMetrics, Telemetry, TelemetryKind};
use conclave_runtime::{Action, Agent, Confidence, Draft, Fraction, Proposals, Target, Timestamp};

pub use config::{BreakerConfig, RawBreakerSettings, RawShedSettings, ShedConfig};

use crate::scope::Scope;
use fallback::Position;
use features::{CallWindow, LoadHistory};

/// The catalog name.
pub const NAME: &str = "breaker";

/// Rules carry no calibrated probability: they propose with full confidence and leave the
/// gating to the policy's conditions and guardrails.
const RULE_CONFIDENCE: Confidence = Confidence::ONE;

/// The breaker agent; build one per policy with [`BreakerAgent::new`].
#[derive(Debug)]
pub struct BreakerAgent {
    config: BreakerConfig,
    scope: Scope,
    services: BTreeMap<String, ServiceState>,
}

/// What the agent knows and last proposed for one protected service.
#[derive(Debug)]
struct ServiceState {
    calls: CallWindow,
    load: LoadHistory,
    /// The breaker state last proposed (not necessarily enacted).
    position: Position,
    /// The shed fraction last proposed, 0 when not shedding.
    shed: f64,
}

impl BreakerAgent {
    /// An agent with `config`, acting on the services `scope` includes.
    pub fn new(config: BreakerConfig, scope: Scope) -> Self {
        BreakerAgent {
            config,
            scope,
            services: BTreeMap::new(),
        }
    }

    fn service(&mut self, name: &str) -> &mut ServiceState {
        let samples = self.config.shed.as_ref().map_or(0, |s| s.samples);
        // Allocate the key only for a service not seen before (this runs per message).
        if !self.services.contains_key(name) {
            self.services.insert(
                name.to_string(),
                ServiceState {
                    calls: CallWindow::default(),
                    load: LoadHistory::new(samples),
                    position: Position::Closed {
                        since: Timestamp::EPOCH,
                    },
                    shed: 0.0,
                },
            );
        }
        self.services
            .get_mut(name)
            .expect("the service's state exists: inserted just above when missing")
    }

    fn observe_metrics(&mut self, m: &ServiceMetrics) {
        let slow = self.config.slow_call_duration;
        if self.scope.includes_name(&m.service) {
            let st = self.service(&m.service);
            st.calls.record_own(m, slow);
            st.load.record(m);
        }
        for dep in &m.dependencies {
            // A service calling itself is its own view, already recorded.
            if dep.service == m.service || !self.scope.includes_name(&dep.service) {
                continue;
            }
            self.service(&dep.service)
                .calls
                .record_caller(&m.service, m.ts, dep, slow);
        }
    }
}

impl Agent for BreakerAgent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants(&self, kind: TelemetryKind) -> bool {
        kind == TelemetryKind::Metrics
    }

    fn observe(&mut self, telemetry: &Telemetry, _out: &mut Proposals) {
        if let Telemetry::Metrics(m) = telemetry {
            self.observe_metrics(m);
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        for (name, st) in &mut self.services {
            let target = Target::new(name.as_str());
            if let Some(t) = fallback::step(&mut st.position, &st.calls, now, &self.config) {
                out.propose(Draft {
                    at: now,
                    target: target.clone(),
                    action: Action::Breaker { state: t.to },
                    confidence: RULE_CONFIDENCE,
                    rationale: t.rationale,
                    model: None,
                    fallback: None,
                });
            }
            if let Some(shed) = &self.config.shed {
                let change = st
                    .load
                    .full()
                    .and_then(|samples| fallback::shed_step(st.shed, samples, shed));
                if let Some(change) = change {
                    st.shed = change.fraction;
                    out.propose(Draft {
                        at: now,
                        target,
                        action: Action::Shed {
                            fraction: Fraction::saturating(change.fraction),
                        },
                        confidence: RULE_CONFIDENCE,
                        rationale: change.rationale,
                        model: None,
                        fallback: None,
                    });
                }
            }
            // Keep what the current state still judges: the sliding window, and in
            // half-open everything since it began (probes may take longer than a window).
            let horizon = match st.position {
                Position::HalfOpen { since } => since.min(now.minus(self.config.window)),
                Position::Closed { .. } | Position::Open { .. } => now.minus(self.config.window),
            };
            st.calls.prune(horizon);
        }
    }
}
