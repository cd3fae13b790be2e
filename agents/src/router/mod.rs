//! The router agent: splits each configured route's traffic across its backends by
//! least-loaded weights, proposing `Route` actions when a decision window closes.
//!
//! Each `Metrics` message from a backend of some route updates that backend's EWMAs. At
//! each tick every route in scope is evaluated by `fallback::route_weights`; weights are
//! proposed (in thousandths, summing to exactly 1) when they differ enough from the last
//! proposal, at the tick's time. When no backend of a route can serve, nothing is proposed
//! and the current weights stay (see `fallback::Outcome::NoneServing`). Routes are
//! visited in name order, so proposals are deterministic.
//!
//! Confidence is 1.0: the weights follow from the averages by rule, and the averages are
//! the measurements themselves, not an estimate the agent could be unsure of.

mod config;
mod fallback;
mod features;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use conclave_runtime::telemetry::{Telemetry, TelemetryKind};
use conclave_runtime::{Action, Agent, Confidence, Draft, Proposals, Target, Timestamp};

pub use config::{RawRoute, RawRouterSettings, RouterConfig};

use crate::scope::Scope;
use fallback::{Outcome, Rules};
use features::BackendWindow;

/// The router's catalog name.
pub const NAME: &str = "router";

/// Without `stale_after`, a backend is silent after this many decision windows without
/// metrics: one late report is normal, three in a row means it is gone.
const DEFAULT_STALE_WINDOWS: u32 = 3;

/// The router: EWMAs per backend, and the last weights proposed per route.
#[derive(Debug)]
pub struct RouterAgent {
    config: RouterConfig,
    scope: Scope,
    stale_after: Duration,
    backends: BTreeSet<String>,
    windows: BTreeMap<String, BackendWindow>,
    last: BTreeMap<Target, BTreeMap<String, f64>>,
}

impl RouterAgent {
    /// A router for the routes in `config` that `scope` gives it.
    pub fn new(config: RouterConfig, scope: Scope) -> Self {
        let stale_after = config
            .stale_after()
            .unwrap_or_else(|| scope.policy().arbiter().window() * DEFAULT_STALE_WINDOWS);
        let backends = config.routes().values().flatten().cloned().collect();
        RouterAgent {
            config,
            scope,
            stale_after,
            backends,
            windows: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }
}

impl Agent for RouterAgent {
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
        if !self.backends.contains(&m.service) {
            return;
        }
        match self.windows.get_mut(&m.service) {
            Some(w) => w.update(m, self.config.alpha()),
            None => {
                self.windows
                    .insert(m.service.clone(), BackendWindow::new(m));
            }
        }
    }

    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        let rules = Rules {
            floor: self.config.floor(),
            unhealthy_error_rate: self.config.unhealthy_error_rate(),
            stale_after: self.stale_after,
        };
        for (route, backends) in self.config.routes() {
            if !self.scope.includes(route) {
                continue;
            }
            let Outcome::Weights { units, factors } =
                fallback::route_weights(backends, &self.windows, now, &rules)
            else {
                continue;
            };
            let weights: BTreeMap<String, f64> = units
                .into_iter()
                .map(|(b, u)| (b, f64::from(u) / 1000.0))
                .collect();
            if !fallback::warrants_change(self.last.get(route), &weights, self.config.min_change())
            {
                continue;
            }
            self.last.insert(route.clone(), weights.clone());
            out.propose(Draft {
                at: now,
                target: route.clone(),
                action: Action::Route { weights },
                confidence: Confidence::ONE,
                rationale: factors,
                model: None,
                fallback: None,
                inference: None,
            });
        }
    }
}
