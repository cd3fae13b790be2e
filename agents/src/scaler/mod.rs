//! The scaler agent: the Kubernetes Horizontal Pod Autoscaler's algorithm (with
//! `behavior`) over Conclave telemetry, proposing `Scale` actions when a decision window
//! closes.
//!
//! Each `Metrics` message for a target in scope updates that target's window (latest
//! reading, observed replica changes, cold-start hold). At each tick every target with
//! fresh metrics is evaluated by `fallback::recommend`; a proposal is made only when the
//! result differs from the replicas currently running, at most one per target per tick,
//! at the tick's time. Targets are visited in name order, so proposals are deterministic.
//!
//! Two departures from HPA, both because the scaler proposes rather than scales: scale
//! events for the rate limits are the replica changes seen in telemetry (a proposal may be
//! rejected or enacted late), and after a scale-up is seen, a further scale-up is held for
//! `cold_start` unless the metric is worse than just before that scale-up (new replicas
//! serve nothing yet, so the metric still shows the load the scale-up answered).

mod config;
mod fallback;
mod features;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_runtime::telemetry::{Telemetry, TelemetryKind};
use conclave_runtime::{Action, Agent, Draft, Proposals, Target, Timestamp};

pub use config::{
    Metric, PolicyKind, RawBehavior, RawScalerSettings, RawScalingPolicy, RawScalingRules,
    ScalerConfig, ScalingPolicy, ScalingRules, SelectPolicy,
};

// Settings durations, shared with the router until `settings.rs` offers them.

use crate::scope::Scope;
use fallback::Bounds;
use features::{Reading, TargetWindow};

/// The scaler's catalog name.
pub const NAME: &str = "scaler";

/// Without `stale_after`, a target is stale after this many decision windows without
/// metrics: one late report is normal, three in a row means the reporter is gone and its
/// last figures no longer describe the service.
const DEFAULT_STALE_WINDOWS: u32 = 3;

/// The scaler: one `TargetWindow` per target in scope, and the HPA rule.
#[derive(Debug)]
pub struct ScalerAgent {
    config: ScalerConfig,
    scope: Scope,
    stale_after: Duration,
    targets: BTreeMap<Target, TargetWindow>,
}

impl ScalerAgent {
    /// A scaler acting on the targets `scope` gives it.
    pub fn new(config: ScalerConfig, scope: Scope) -> Self {
        let stale_after = config
            .stale_after()
            .unwrap_or_else(|| scope.policy().arbiter().window() * DEFAULT_STALE_WINDOWS);
        ScalerAgent {
            config,
            scope,
            stale_after,
            targets: BTreeMap::new(),
        }
    }
}

impl Agent for ScalerAgent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants(&self, kind: TelemetryKind) -> bool {
        kind == TelemetryKind::Metrics
    }

    fn observe(&mut self, telemetry: &Telemetry, _out: &mut Proposals) {
        let Telemetry::Metrics(m) = telemetry else {
            return;
        };
        if !self.scope.includes_name(&m.service) {
            return;
        }
        let reading = Reading {
            ts: m.ts,
            replicas: m.replicas,
            value: self.config.metric().value(m),
        };
        let cold_start = self.config.cold_start();
        // Look up by name first: a new `Target` (an allocation) only for a new target.
        match self.targets.get_mut(m.service.as_str()) {
            Some(w) => w.record(reading, cold_start),
            None => self
                .targets
                .entry(Target::new(m.service.as_str()))
                .or_default()
                .record(reading, cold_start),
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        let keep_events = self
            .config
            .scale_up()
            .longest_period()
            .max(self.config.scale_down().longest_period());
        for (target, window) in &mut self.targets {
            window.forget_events(now, keep_events);
            let Some(reading) = window.latest() else {
                continue;
            };
            if now.since(reading.ts) > self.stale_after {
                continue;
            }
            let limits = self.scope.policy().limits_for(target);
            let bounds = Bounds {
                min: limits.min_replicas(),
                max: limits.max_replicas(),
            };
            let rec = fallback::recommend(&self.config, window, reading, now, bounds);
            if rec.replicas != reading.replicas {
                out.propose(Draft {
                    at: now,
                    target: target.clone(),
                    action: Action::Scale {
                        replicas: rec.replicas,
                    },
                    confidence: rec.confidence,
                    rationale: rec.factors,
                    model: None,
                    fallback: None,
                });
            }
        }
    }
}
