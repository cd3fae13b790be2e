//! The breaker's learned half: the risk model (loaded once per policy, shared by every
//! incarnation of the agent), per-service features, batched inference with fallbacks,
//! drift, and the tally of predicted risk against the trips that followed. The agent
//! (`mod.rs`) wires it; the module docs there say what it does as a whole.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use conclave_runtime::models::breaker_features::{
    BreakerFeatures, BreakerVector, BUCKET_SECONDS, FEATURE_NAMES, HORIZON_SECONDS,
};
use conclave_runtime::models::Fallback;
use conclave_runtime::telemetry::{Dependency, ServiceMetrics};
use conclave_runtime::{Factor, Inference, ModelId, Timestamp};

pub use crate::learned::noted;
use crate::learned::{DriftSettings, Fault, Learned, LearnedModel, Signature};

/// Buckets in the model's horizon: an alarm at bucket `k` is borne out by a trip at
/// `k + 1 ..= k + HORIZON_BUCKETS`.
const HORIZON_BUCKETS: i64 = HORIZON_SECONDS / BUCKET_SECONDS;

/// What a breaker risk model must look like: the breaker's 21 features in order, one
/// probability per row.
pub const SIGNATURE: Signature = Signature {
    agent: "breaker",
    kind: "breaker risk",
    feature_names: &FEATURE_NAMES,
    outputs_per_row: 1,
};

/// Predicted risk against what happened, for one service, since the agent started. An
/// *alarm* is a tick whose risk reached `open_at` while the trip condition did not hold;
/// it is *borne out* when the condition begins within the next 60 s. Meaningful in
/// `risk.mode: report`: in `act` mode an alarm opens the breaker, which changes what
/// follows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Alarms whose 60 s have passed, or that a trip bore out.
    pub alarms_checked: u64,
    /// Of those, borne out by a trip.
    pub alarms_borne_out: u64,
    /// Times the trip condition began.
    pub trips: u64,
    /// Of those, with an alarm in the 60 s before.
    pub trips_warned: u64,
    /// Sum over warned trips of the first alarm's lead, seconds.
    pub lead_s_sum: f64,
}

impl Tally {
    /// The rationale factors: `risk_alarms_checked`, `risk_alarm_precision`,
    /// `risk_trips_seen`, `risk_trips_warned_share`, `risk_lead_s_mean` (each once it has
    /// something to say).
    pub fn factors(&self) -> Vec<Factor> {
        let mut out = Vec::new();
        if self.alarms_checked > 0 {
            out.push(noted(
                "risk_alarms_checked",
                self.alarms_checked as f64,
                "alarms (risk >= open_at) whose 60 s have passed",
            ));
            out.push(noted(
                "risk_alarm_precision",
                self.alarms_borne_out as f64 / self.alarms_checked as f64,
                "share of checked alarms followed by a trip within 60 s",
            ));
        }
        if self.trips > 0 {
            out.push(noted(
                "risk_trips_seen",
                self.trips as f64,
                "times the trip condition (failure rate >= 50 % over a minute) began",
            ));
            out.push(noted(
                "risk_trips_warned_share",
                self.trips_warned as f64 / self.trips as f64,
                "share of trips with an alarm in the 60 s before",
            ));
        }
        if self.trips_warned > 0 {
            out.push(noted(
                "risk_lead_s_mean",
                self.lead_s_sum / self.trips_warned as f64,
                "mean seconds from the first alarm to the trip it warned of",
            ));
        }
        out
    }
}

/// One service's learned state.
#[derive(Debug, Default)]
struct ServiceRisk {
    features: BreakerFeatures,
    /// Time of the newest own sample.
    last_own: Option<Timestamp>,
    /// Bucket of the last feature row given to the drift monitor.
    drift_fed: Option<i64>,
    /// Buckets of alarms not yet checked.
    alarms: VecDeque<i64>,
    was_tripped: bool,
    tally: Tally,
}

impl ServiceRisk {
    /// Bucket `k` closed with the trip condition `tripped`: checks pending alarms.
    fn settle(&mut self, k: i64, tripped: bool) {
        if tripped && !self.was_tripped {
            self.tally.trips += 1;
            let first = self
                .alarms
                .iter()
                .copied()
                .filter(|a| (k - HORIZON_BUCKETS..k).contains(a))
                .min();
            if let Some(first) = first {
                self.tally.trips_warned += 1;
                self.tally.lead_s_sum += ((k - first) * BUCKET_SECONDS) as f64;
            }
            let borne_out = self
                .alarms
                .iter()
                .filter(|a| **a >= k - HORIZON_BUCKETS)
                .count();
            self.tally.alarms_checked += borne_out as u64;
            self.tally.alarms_borne_out += borne_out as u64;
            self.alarms.retain(|a| *a < k - HORIZON_BUCKETS);
        }
        while self
            .alarms
            .front()
            .is_some_and(|a| *a + HORIZON_BUCKETS < k)
        {
            self.alarms.pop_front();
            self.tally.alarms_checked += 1;
        }
        self.was_tripped = tripped;
    }

    fn alarm(&mut self, k: i64) {
        if self.alarms.back() != Some(&k) {
            self.alarms.push_back(k);
        }
    }
}

/// Features left out of drift: `warm` is 0 at a fresh start and 1 after 30 minutes, so
/// every new deployment would read as drift.
pub const DRIFT_EXCLUDED: [&str; 1] = ["warm"];

/// What the model said about one service at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Assessed {
    /// Nothing: no own sample yet, or none within the staleness bound.
    Warming,
    /// The probability of the trip condition within 60 s.
    Risk(f64),
    /// The rule decides alone, for this reason.
    Fault(Fault),
}

/// One service's assessment at a tick, with what the rationale needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The risk, or why there is none.
    pub assessed: Assessed,
    /// Predicted risk against what happened so far.
    pub tally: Tally,
}

/// An agent instance's learned state. The model is shared; everything else (features,
/// tallies, drift) belongs to the instance and starts over when the agent restarts.
#[derive(Debug)]
pub struct Predictor {
    learned: Learned,
    stale_after: Duration,
    services: BTreeMap<String, ServiceRisk>,
}

impl Predictor {
    /// A predictor for `model` under `drift` settings; a service whose newest own sample
    /// is older than `stale_after` gets no risk.
    pub fn new(model: LearnedModel, drift: DriftSettings, stale_after: Duration) -> Self {
        Predictor {
            learned: Learned::new(model, &SIGNATURE, drift, &DRIFT_EXCLUDED),
            stale_after,
            services: BTreeMap::new(),
        }
    }

    /// The model's id, when it is loaded.
    pub fn model_id(&self) -> Option<&ModelId> {
        self.learned.model_id()
    }

    /// The model's load error, when it is unavailable.
    pub fn load_error(&self) -> Option<&str> {
        self.learned.load_error()
    }

    /// The last model call, for the trace of the proposals it informed.
    pub fn inference(&self) -> Option<Arc<Inference>> {
        self.learned.inference()
    }

    fn service(&mut self, name: &str) -> &mut ServiceRisk {
        if !self.services.contains_key(name) {
            self.services
                .insert(name.to_string(), ServiceRisk::default());
        }
        self.services
            .get_mut(name)
            .expect("the service's state exists: inserted just above when missing")
    }

    /// Takes a protected service's own metrics sample.
    pub fn observe_own(&mut self, m: &ServiceMetrics) {
        let s = self.service(&m.service);
        s.features.observe_own(m);
        if s.last_own.is_none_or(|t| m.ts > t) {
            s.last_own = Some(m.ts);
        }
    }

    /// Takes what a caller saw of protected service `service` in its sample at `ts`.
    pub fn observe_caller(&mut self, service: &str, ts: Timestamp, dep: &Dependency) {
        self.service(service).features.observe_caller(ts, dep);
    }

    /// Assesses `services` (name, and whether its breaker is closed: only closed ones are
    /// given to the model) at `now`: closes their buckets, checks their pending alarms,
    /// feeds new rows to the drift monitor, and calls the model **once** for the closed,
    /// fresh ones. A failed call fails every row of the batch with its reason; without a
    /// model (or with it switched off by drift) every service gets that fault.
    pub fn assess(
        &mut self,
        now: Timestamp,
        services: &[(&str, bool)],
        open_at: f64,
    ) -> BTreeMap<String, Assessment> {
        self.learned.begin_features();
        let mut vectors: Vec<(&str, bool, Option<BreakerVector>)> = Vec::new();
        for (name, closed) in services {
            let Some(s) = self.services.get_mut(*name) else {
                vectors.push((name, *closed, None));
                continue;
            };
            let v = s.features.at(now);
            if let Some(v) = &v {
                s.settle(v.k, s.features.series().is_tripped());
                if s.drift_fed.is_none_or(|fed| v.k > fed) {
                    s.drift_fed = Some(v.k);
                    self.learned.observe_drift(&v.features);
                }
            }
            let fresh = s.last_own.is_some_and(|t| now.since(t) <= self.stale_after);
            vectors.push((name, *closed, v.filter(|_| fresh)));
        }
        self.learned.start_batch();
        for (_, _, v) in vectors.iter().filter(|(_, c, _)| *c) {
            if let Some(v) = v {
                self.learned.push_row(&v.features);
            }
        }
        let rows = vectors.iter().filter(|(_, c, v)| *c && v.is_some()).count();
        let result = self.learned.infer(now, rows);

        let mut outputs = result.as_ref().ok().map(|o| o.iter());
        let mut out = BTreeMap::new();
        for (name, closed, v) in vectors {
            let assessed = match (&result, closed, &v) {
                // Without a model, or with it switched off, every service says so.
                (Err(f), _, _) if f.is_standing() => Assessed::Fault(*f),
                (_, false, _) | (_, true, None) => Assessed::Warming,
                (Err(f), true, Some(_)) => Assessed::Fault(*f),
                (Ok(_), true, Some(v)) => match outputs.as_mut().and_then(Iterator::next) {
                    Some(risk) => {
                        let risk = f64::from(*risk);
                        if let Some(s) = self.services.get_mut(name) {
                            if risk >= open_at && !s.features.series().is_tripped() {
                                s.alarm(v.k);
                            }
                        }
                        Assessed::Risk(risk)
                    }
                    None => Assessed::Fault(Fault::Model(Fallback::InferenceError)),
                },
            };
            let tally = self.services.get(name).map(|s| s.tally).unwrap_or_default();
            out.insert(name.to_string(), Assessment { assessed, tally });
        }
        out
    }

    /// The model's figures, when it is loaded (for the runtime's metrics).
    pub fn stats(&self) -> Option<Arc<conclave_runtime::metrics::ModelStats>> {
        self.learned.stats()
    }

    /// `drift_psi_max` while the features drifted (the largest PSI, naming its feature).
    pub fn drift_factor(&self) -> Option<Factor> {
        self.learned.drift_factor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_are_checked_against_the_trips_that_follow() {
        let mut s = ServiceRisk::default();
        // An alarm at 10, a trip at 12: borne out, 30 s ahead.
        s.alarm(10);
        s.settle(11, false);
        s.settle(12, true);
        // An alarm while tripped is not made by the predictor; the trip ends at 14.
        s.settle(13, true);
        s.settle(14, false);
        // An alarm at 20 with no trip by 24: a false alarm once bucket 25 closes.
        s.alarm(20);
        s.alarm(20);
        s.settle(24, false);
        assert_eq!(s.tally.alarms_checked, 1);
        s.settle(25, false);
        // A trip at 30 with no alarm before it.
        s.settle(30, true);
        assert_eq!(
            s.tally,
            Tally {
                alarms_checked: 2,
                alarms_borne_out: 1,
                trips: 2,
                trips_warned: 1,
                lead_s_sum: 30.0,
            }
        );
        let names: Vec<String> = s.tally.factors().into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "risk_alarms_checked",
                "risk_alarm_precision",
                "risk_trips_seen",
                "risk_trips_warned_share",
                "risk_lead_s_mean"
            ]
        );
        assert!(Tally::default().factors().is_empty());
    }
}
