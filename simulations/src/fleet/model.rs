//! The fleet's state and its step: [`Fleet`] holds every service's replicas, backlog,
//! faults and the actuator's settings, advances them by one fluid step at a time, and
//! reports telemetry ([`Fleet::metrics`]) and figures ([`Fleet::snapshot`]). The equations
//! are in the [module docs](super).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use conclave_runtime::telemetry::{Dependency, ServiceMetrics, SCHEMA_VERSION};
use conclave_runtime::{Action, BreakerState, QuarantineScope, Target, TargetKind, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::actuator::{ActionQueue, QueuedAction};
use super::error::FleetError;
use super::queueing::{
    all_attempts_fail, expected_attempts, p99_attempts, share_slower_than, wait_quantile_ms,
    OWN_P99_OVER_P50,
};
use super::spec::{Callee, FleetSpec, ServiceConfig, Topology};

/// Share of calls a half-open breaker lets through as probes. resilience4j permits a fixed
/// number of calls (10 by default) and rejects the rest; a tenth of the traffic gives the
/// breaker agent its 10 probes within a second or two at the rates simulated.
const HALF_OPEN_SHARE: f64 = 0.1;

/// Reported latencies are the model's times this factor drawn from `1 ± 2 %`: enough that
/// agents never see two identical samples, small against any threshold they judge.
const LATENCY_NOISE: f64 = 0.02;

/// Ceiling on any latency in milliseconds (ten minutes). A service with work queued and no
/// capacity has an infinite wait; telemetry must stay finite, and no caller's timeout is
/// anywhere near this long.
const MAX_LATENCY_MS: f64 = 600_000.0;

/// The simulated fleet. Build it with [`Fleet::try_new`]; advance it with [`Fleet::step`].
#[derive(Debug, Clone)]
pub struct Fleet {
    topology: Topology,
    services: Vec<ServiceState>,
    /// Normalized weight per backend, per route (same order as the route's backends).
    route_weights: Vec<Vec<f64>>,
    region_down: Vec<bool>,
    quarantined_producers: BTreeSet<String>,
    quarantined_topics: BTreeSet<String>,
    now: Option<Timestamp>,
    rng: ChaCha8Rng,
    // Scratch space reused by every step, so a step does not allocate.
    inflow: Vec<f64>,
    pass_share: Vec<f64>,
    views: Vec<CalleeView>,
}

/// One service's state.
#[derive(Debug, Clone)]
struct ServiceState {
    ready: u32,
    /// Replicas still cold-starting, ordered by `ready_at`.
    starting: VecDeque<Cohort>,
    backlog: f64,
    slowdown: f64,
    extra_error_rate: f64,
    shed: f64,
    breaker: BreakerState,
    /// One per backend called (a route dependency gives one per route backend), sorted by
    /// backend.
    edges: Vec<Edge>,
    ledger: Ledger,
    replica_seconds: f64,
    last: StepFigures,
}

/// Replicas that start serving together.
#[derive(Debug, Clone, Copy)]
struct Cohort {
    ready_at: Timestamp,
    count: u32,
}

/// A caller's link to one backend, with what the caller saw of it over the last step.
#[derive(Debug, Clone)]
struct Edge {
    callee: usize,
    /// The route the calls go through, and the backend's position in it.
    via: Option<(usize, usize)>,
    /// `calls_per_request` as declared on the dependency.
    declared_calls: f64,
    /// Declared calls times the route weight of this backend.
    calls_per_request: f64,
    timeout_ms: f64,
    /// Attempts sent per second (retries included, breaker-rejected calls not).
    calls_per_s: f64,
    /// Share of attempts that failed: errors, rejections and timeouts.
    attempt_failure: f64,
    /// Mean time one call holds the caller: expected attempts × per-attempt latency
    /// capped by the timeout.
    wait_ms: f64,
    /// p99 of one attempt as the caller saw it (capped by the timeout).
    latency_p99_ms: f64,
}

/// A service's figures over its last step.
#[derive(Debug, Clone, Copy, Default)]
struct StepFigures {
    dt_s: f64,
    arrived: f64,
    shed: f64,
    overflowed: f64,
    admitted: f64,
    processed: f64,
    failed: f64,
    capacity_rps: f64,
    cpu_capacity_rps: f64,
    servers: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    noise: f64,
    error_rate: f64,
    is_down: bool,
}

impl StepFigures {
    fn reported_p50_ms(&self) -> f64 {
        finite(self.latency_p50_ms * self.noise).min(MAX_LATENCY_MS)
    }

    fn reported_p99_ms(&self) -> f64 {
        finite(self.latency_p99_ms * self.noise).min(MAX_LATENCY_MS)
    }

    fn rate(&self, amount: f64) -> f64 {
        if self.dt_s > 0.0 {
            finite(amount / self.dt_s)
        } else {
            0.0
        }
    }

    fn utilization(&self, backlog: f64) -> f64 {
        if self.capacity_rps > 0.0 && self.dt_s > 0.0 {
            (self.processed / (self.capacity_rps * self.dt_s)).clamp(0.0, 1.0)
        } else if backlog > 0.0 {
            1.0
        } else {
            0.0
        }
    }

    fn cpu(&self) -> f64 {
        if self.cpu_capacity_rps > 0.0 && self.dt_s > 0.0 {
            finite(self.processed / (self.cpu_capacity_rps * self.dt_s))
        } else {
            0.0
        }
    }
}

/// What callers see of a service this step.
#[derive(Debug, Clone, Copy, Default)]
struct CalleeView {
    p50_ms: f64,
    p99_ms: f64,
    error_rate: f64,
}

/// Cumulative request counts of one service since the start. Conservation:
/// `arrived = served + failed + shed + overflowed + backlog`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Ledger {
    /// Requests (attempts, for a dependency) that arrived.
    pub arrived: f64,
    /// Completed successfully.
    pub served: f64,
    /// Processed but failed (a dependency failed, an injected error, the region down).
    pub failed: f64,
    /// Refused on arrival by shedding.
    pub shed: f64,
    /// Dropped because the queue was full.
    pub overflowed: f64,
}

impl Ledger {
    /// Requests dropped without processing: shed plus overflowed.
    pub fn dropped(&self) -> f64 {
        self.shed + self.overflowed
    }
}

/// One service's figures for reports, as of the last step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSnapshot {
    /// Service name.
    pub service: String,
    /// Its region.
    pub region: String,
    /// Replicas serving.
    pub ready_replicas: u32,
    /// Replicas still cold-starting.
    pub starting_replicas: u32,
    /// Requests per second the service could complete over the last step.
    pub capacity_rps: f64,
    /// Completed over capacity, in `[0, 1]`.
    pub utilization: f64,
    /// p99 latency in milliseconds, as reported.
    pub latency_p99_ms: f64,
    /// Share of requests that failed or were dropped, in `[0, 1]`.
    pub error_rate: f64,
    /// Requests waiting.
    pub backlog: f64,
    /// Whether the service is outside its objectives: p99 above `slo_p99_ms` while
    /// serving, the queue overflowing, the error rate above `slo_error_rate` (when set),
    /// or its region down.
    pub is_breaching: bool,
    /// Whether its region is down.
    pub is_down: bool,
    /// Replica-seconds paid for since the start (cold-starting replicas included).
    pub replica_seconds: f64,
    /// `replica_seconds` priced at `cost_per_replica_hour`.
    pub cost: f64,
    /// Cumulative request counts.
    pub ledger: Ledger,
}

impl Fleet {
    /// Checks `spec` and builds the fleet at rest: initial replicas ready, queues empty,
    /// breakers closed, routes split evenly. `seed` drives the latency noise.
    ///
    /// # Errors
    /// [`FleetError::InvalidSpec`] with every problem found: unknown dependencies or route
    /// backends, cycles, duplicate names, values out of range.
    pub fn try_new(spec: &FleetSpec, seed: u64) -> Result<Self, FleetError> {
        let topology =
            Topology::compile(spec).map_err(|problems| FleetError::InvalidSpec { problems })?;
        let route_weights: Vec<Vec<f64>> = topology
            .routes
            .iter()
            .map(|r| vec![1.0 / r.backends.len() as f64; r.backends.len()])
            .collect();
        let mut services: Vec<ServiceState> = topology
            .services
            .iter()
            .map(|cfg| ServiceState {
                ready: cfg.initial_replicas,
                starting: VecDeque::new(),
                backlog: 0.0,
                slowdown: 1.0,
                extra_error_rate: 0.0,
                shed: 0.0,
                breaker: BreakerState::Closed,
                edges: edges(cfg, &topology, &route_weights),
                ledger: Ledger::default(),
                replica_seconds: 0.0,
                last: StepFigures {
                    noise: 1.0,
                    ..StepFigures::default()
                },
            })
            .collect();
        // Until a step has measured them, calls take their unloaded time.
        let mut unloaded_p50 = vec![0.0f64; services.len()];
        for &i in topology.order.iter().rev() {
            let mut p50 = topology.services[i].base_latency_ms;
            for e in &mut services[i].edges {
                e.wait_ms = unloaded_p50[e.callee].min(e.timeout_ms);
                p50 += e.calls_per_request * e.wait_ms;
            }
            unloaded_p50[i] = p50;
        }
        let n = services.len();
        Ok(Fleet {
            region_down: vec![false; topology.regions.len()],
            topology,
            services,
            route_weights,
            quarantined_producers: BTreeSet::new(),
            quarantined_topics: BTreeSet::new(),
            now: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            inflow: vec![0.0; n],
            pass_share: vec![1.0; n],
            views: vec![CalleeView::default(); n],
        })
    }

    /// Advances the fleet over `(now − dt, now]` with `external_load` arriving: requests
    /// per second per entry service or route (a route splits its share by its weights).
    ///
    /// # Errors
    /// [`FleetError::ZeroStep`] for a zero `dt`; [`FleetError::UnknownService`] for a load
    /// on a name the fleet does not have; [`FleetError::OutOfRange`] for a negative or
    /// non-finite rate. Nothing changes when an error is returned.
    pub fn step(
        &mut self,
        now: Timestamp,
        dt: Duration,
        external_load: &BTreeMap<String, f64>,
    ) -> Result<(), FleetError> {
        if dt.is_zero() {
            return Err(FleetError::ZeroStep);
        }
        for (name, &rate) in external_load {
            if self.topology.resolve(name).is_none() {
                return Err(FleetError::UnknownService { name: name.clone() });
            }
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(FleetError::OutOfRange {
                    name: name.clone(),
                    what: "a load in req/s",
                    expected: "0.0..",
                    found: rate,
                });
            }
        }

        self.inflow.fill(0.0);
        for (name, &rate) in external_load {
            match self.topology.resolve(name) {
                Some(Callee::Service(i)) => self.inflow[i] += rate,
                Some(Callee::Route(r)) => {
                    let backends = &self.topology.routes[r].backends;
                    for (&b, &w) in backends.iter().zip(&self.route_weights[r]) {
                        self.inflow[b] += rate * w;
                    }
                }
                None => {} // checked above
            }
        }
        for (share, st) in self.pass_share.iter_mut().zip(&self.services) {
            *share = match st.breaker {
                BreakerState::Closed => 1.0,
                BreakerState::HalfOpen => HALF_OPEN_SHARE,
                BreakerState::Open => 0.0,
            };
        }

        let h = dt.as_secs_f64();
        let start = now.minus(dt);
        // Load flows down (callers first), outcomes flow up (callees first).
        for pos in 0..self.topology.order.len() {
            let i = self.topology.order[pos];
            self.admit(i, start, now, h);
        }
        for pos in (0..self.topology.order.len()).rev() {
            let i = self.topology.order[pos];
            self.settle(i);
        }
        for st in &mut self.services {
            st.last.noise = 1.0 + LATENCY_NOISE * self.rng.random_range(-1.0..=1.0);
            while let Some(c) = st.starting.front().copied() {
                if c.ready_at > now {
                    break;
                }
                st.ready = st.ready.saturating_add(c.count);
                st.starting.pop_front();
            }
        }
        self.now = Some(now);
        Ok(())
    }

    /// Queue pass for service `i`: arrivals, shedding, capacity, backlog and overflow, and
    /// the calls it sends to its dependencies (using what they did last step).
    fn admit(&mut self, i: usize, start: Timestamp, now: Timestamp, h: f64) {
        let cfg = &self.topology.services[i];
        let is_down = self.region_down[cfg.region];
        let st = &mut self.services[i];
        let arrived = self.inflow[i] * h;
        st.replica_seconds += running(st) as f64 * h;
        st.ledger.arrived += arrived;
        let mut fig = StepFigures {
            dt_s: h,
            arrived,
            noise: st.last.noise,
            is_down,
            ..StepFigures::default()
        };
        if is_down {
            // Nothing answers: arrivals and whatever was queued fail.
            fig.failed = arrived + st.backlog;
            st.ledger.failed += fig.failed;
            st.backlog = 0.0;
            for e in &mut st.edges {
                e.calls_per_s = 0.0;
            }
            st.last = fig;
            return;
        }

        let serving = f64::from(st.ready)
            + st.starting
                .iter()
                .map(|c| f64::from(c.count) * serving_share(c.ready_at, start, now))
                .sum::<f64>();
        let own_ms = cfg.base_latency_ms * st.slowdown;
        let cpu_capacity = serving * cfg.capacity_per_replica / st.slowdown;
        let (capacity, servers) = match cfg.max_in_flight_per_replica {
            Some(slots_per_replica) => {
                let busy_ms = own_ms
                    + st.edges
                        .iter()
                        .map(|e| e.calls_per_request * self.pass_share[e.callee] * e.wait_ms)
                        .sum::<f64>();
                let slots = serving * f64::from(slots_per_replica);
                let slot_capacity = slots * 1000.0 / busy_ms;
                if slot_capacity < cpu_capacity {
                    (slot_capacity, slots)
                } else {
                    (cpu_capacity, cpu_capacity * own_ms / 1000.0)
                }
            }
            None => (cpu_capacity, cpu_capacity * own_ms / 1000.0),
        };

        let shed = arrived * st.shed;
        let admitted = arrived - shed;
        let waiting = st.backlog + admitted;
        let processed = waiting.min(capacity * h);
        let queued = waiting - processed;
        let overflowed = (queued - cfg.max_queue).max(0.0);
        st.backlog = queued - overflowed;
        st.ledger.shed += shed;
        st.ledger.overflowed += overflowed;

        fig.shed = shed;
        fig.admitted = admitted;
        fig.processed = processed;
        fig.overflowed = overflowed;
        fig.capacity_rps = capacity;
        fig.cpu_capacity_rps = cpu_capacity;
        fig.servers = servers;
        st.last = fig;

        let out_rps = processed / h;
        for e in &mut st.edges {
            let calls = out_rps
                * e.calls_per_request
                * self.pass_share[e.callee]
                * expected_attempts(e.attempt_failure, cfg.retry_attempts);
            e.calls_per_s = calls;
            self.inflow[e.callee] += calls;
        }
    }

    /// Outcome pass for service `i` (its callees are settled already): what its calls
    /// cost in time and failures, its error rate, and its latency.
    fn settle(&mut self, i: usize) {
        let cfg = &self.topology.services[i];
        let st = &mut self.services[i];
        if st.last.is_down {
            st.last.error_rate = if st.last.failed > 0.0 { 1.0 } else { 0.0 };
            // Connection refused: callers fail at once, on every attempt.
            self.views[i] = CalleeView {
                p50_ms: 0.0,
                p99_ms: 0.0,
                error_rate: 1.0,
            };
            return;
        }

        let attempts = cfg.retry_attempts;
        let mut dep_mean_ms = 0.0;
        let mut dep_tail_ms: f64 = 0.0;
        let mut success = 1.0;
        for e in &mut st.edges {
            let v = self.views[e.callee];
            let pass = self.pass_share[e.callee];
            let t50 = v.p50_ms.min(e.timeout_ms);
            let t99 = v.p99_ms.min(e.timeout_ms);
            let timed_out = share_slower_than(v.p50_ms, v.p99_ms, e.timeout_ms);
            let p = (1.0 - (1.0 - v.error_rate) * (1.0 - timed_out)).clamp(0.0, 1.0);
            let mean_ms = expected_attempts(p, attempts) * t50;
            let slow_ms = p99_attempts(p, attempts) * t99;
            let calls = e.calls_per_request * pass;
            dep_mean_ms += calls * mean_ms;
            dep_tail_ms = dep_tail_ms.max(calls * (slow_ms - mean_ms).max(0.0));
            success *= (pass * (1.0 - all_attempts_fail(p, attempts))).powf(e.calls_per_request);
            e.attempt_failure = p;
            e.wait_ms = mean_ms;
            e.latency_p99_ms = t99;
        }

        let fig = &mut st.last;
        let failure = (1.0 - (1.0 - st.extra_error_rate) * success).clamp(0.0, 1.0);
        fig.failed = fig.processed * failure;
        st.ledger.failed += fig.failed;
        st.ledger.served += fig.processed - fig.failed;
        let rejected = fig.shed + fig.overflowed;
        let outcomes = fig.processed + rejected;
        fig.error_rate = if outcomes > 0.0 {
            ((fig.failed + rejected) / outcomes).clamp(0.0, 1.0)
        } else {
            0.0
        };

        let own_p50_ms = cfg.base_latency_ms * st.slowdown;
        let own_p99_ms = own_p50_ms * OWN_P99_OVER_P50;
        let (wait_p50_ms, wait_p99_ms, behind_ms) = if fig.capacity_rps > 0.0 {
            let rho = fig.admitted / fig.dt_s / fig.capacity_rps;
            (
                wait_quantile_ms(rho, fig.servers, fig.capacity_rps, 0.5),
                wait_quantile_ms(rho, fig.servers, fig.capacity_rps, 0.99),
                st.backlog / fig.capacity_rps * 1000.0,
            )
        } else if st.backlog > 0.0 || fig.admitted > 0.0 {
            (0.0, 0.0, MAX_LATENCY_MS)
        } else {
            (0.0, 0.0, 0.0)
        };
        fig.latency_p50_ms =
            finite(own_p50_ms + dep_mean_ms + wait_p50_ms + behind_ms).min(MAX_LATENCY_MS);
        fig.latency_p99_ms =
            finite(own_p99_ms + dep_mean_ms + dep_tail_ms + wait_p99_ms + behind_ms)
                .min(MAX_LATENCY_MS);
        self.views[i] = CalleeView {
            p50_ms: fig.latency_p50_ms,
            p99_ms: fig.latency_p99_ms,
            error_rate: fig.error_rate,
        };
    }

    /// Carries out `action` on `target` at `now`:
    ///
    /// * `scale` (a service): new replicas serve from `now + cold_start`; a scale-down
    ///   removes replicas at once, cold-starting ones first (latest first). Never below
    ///   the service's `min_replicas`.
    /// * `route` (a route): sets its weights, normalized; backends left out get none.
    /// * `shed` (a service): refuses that share of its arrivals from the next step.
    /// * `breaker` (a service): the breaker *on calls to* that service, in every caller.
    ///   Open: calls fail at once, nothing reaches the service; half-open: a tenth pass.
    /// * `quarantine`: remembers the producer or topic (any target; the fleet has no
    ///   topics of its own), see [`Fleet::is_quarantined`].
    /// * `alert`: nothing.
    ///
    /// # Errors
    /// [`FleetError::UnknownTarget`] when the target is not a service (or, for `route`, a
    /// route) of the fleet; [`FleetError::UnknownBackend`] and
    /// [`FleetError::InvalidWeights`] for route weights that cannot apply. Nothing changes
    /// when an error is returned.
    pub fn apply(
        &mut self,
        action: &Action,
        target: &Target,
        now: Timestamp,
    ) -> Result<(), FleetError> {
        let service = || {
            self.topology
                .service(target.as_str())
                .ok_or_else(|| FleetError::UnknownTarget {
                    target: target.as_str().to_owned(),
                    expected: TargetKind::Service,
                    action: action.kind().as_str(),
                })
        };
        match action {
            Action::Scale { replicas } => {
                let i = service()?;
                self.scale(i, *replicas, now);
            }
            Action::Route { weights } => {
                let Some(Callee::Route(r)) = self.topology.resolve(target.as_str()) else {
                    return Err(FleetError::UnknownTarget {
                        target: target.as_str().to_owned(),
                        expected: TargetKind::Route,
                        action: action.kind().as_str(),
                    });
                };
                self.route(r, weights)?;
            }
            Action::Shed { fraction } => {
                let i = service()?;
                self.services[i].shed = fraction.get();
            }
            Action::Breaker { state } => {
                let i = service()?;
                self.services[i].breaker = *state;
            }
            Action::Quarantine { scope, .. } => match scope {
                QuarantineScope::Producer(p) => {
                    self.quarantined_producers.insert(p.clone());
                }
                QuarantineScope::Topic(t) => {
                    self.quarantined_topics.insert(t.clone());
                }
            },
            Action::Alert { .. } => {}
        }
        Ok(())
    }

    /// Drains `queue` and applies every action at `now`, in the order queued. Returns the
    /// actions the fleet refused, each with why; the rest took effect.
    pub fn apply_queued(
        &mut self,
        queue: &ActionQueue,
        now: Timestamp,
    ) -> Vec<(QueuedAction, FleetError)> {
        let mut refused = Vec::new();
        for queued in queue.drain() {
            if let Err(e) = self.apply(&queued.action, &queued.target, now) {
                refused.push((queued, e));
            }
        }
        refused
    }

    fn scale(&mut self, i: usize, replicas: u32, now: Timestamp) {
        let cfg = &self.topology.services[i];
        let st = &mut self.services[i];
        let want = u64::from(replicas.max(cfg.min_replicas));
        let have = running(st);
        if want > have {
            // `want` fits in a u32 and exceeds `have`, so the difference does too.
            let add = u32::try_from(want - have).unwrap_or(u32::MAX);
            if cfg.cold_start.is_zero() {
                st.ready = st.ready.saturating_add(add);
            } else {
                let ready_at = now.plus(cfg.cold_start);
                let pos = st.starting.partition_point(|c| c.ready_at <= ready_at);
                st.starting.insert(
                    pos,
                    Cohort {
                        ready_at,
                        count: add,
                    },
                );
            }
        } else {
            let mut remove = have - want;
            while remove > 0 {
                let Some(last) = st.starting.back_mut() else {
                    // Only ready replicas left, and `remove <= have` of them.
                    st.ready = st
                        .ready
                        .saturating_sub(u32::try_from(remove).unwrap_or(u32::MAX));
                    break;
                };
                let take = remove.min(u64::from(last.count));
                // `take <= last.count`, a u32.
                last.count -= u32::try_from(take).unwrap_or(last.count);
                remove -= take;
                if last.count == 0 {
                    st.starting.pop_back();
                }
            }
        }
    }

    fn route(&mut self, r: usize, weights: &BTreeMap<String, f64>) -> Result<(), FleetError> {
        let route = &self.topology.routes[r];
        let names: Vec<&str> = route
            .backends
            .iter()
            .map(|&b| self.topology.services[b].name.as_str())
            .collect();
        for backend in weights.keys() {
            if !names.contains(&backend.as_str()) {
                return Err(FleetError::UnknownBackend {
                    route: route.name.clone(),
                    backend: backend.clone(),
                    backends: names.iter().map(|n| (*n).to_owned()).collect(),
                });
            }
        }
        let sum: f64 = weights.values().sum();
        if !(weights.values().all(|w| w.is_finite() && *w >= 0.0) && sum > 0.0 && sum.is_finite()) {
            return Err(FleetError::InvalidWeights {
                route: route.name.clone(),
                weights: weights.clone(),
            });
        }
        let normalized: Vec<f64> = names
            .iter()
            .map(|n| weights.get(*n).copied().unwrap_or(0.0) / sum)
            .collect();
        for st in &mut self.services {
            for e in &mut st.edges {
                if let Some((via, pos)) = e.via {
                    if via == r {
                        e.calls_per_request = e.declared_calls * normalized[pos];
                    }
                }
            }
        }
        self.route_weights[r] = normalized;
        Ok(())
    }

    /// Slows `service` down by `factor` (1 = normal): its own work takes `factor` times
    /// as long and its CPU completes `1/factor` as many requests.
    ///
    /// # Errors
    /// [`FleetError::UnknownService`]; [`FleetError::OutOfRange`] unless `factor` is finite
    /// and at least 1.
    pub fn set_slowdown(&mut self, service: &str, factor: f64) -> Result<(), FleetError> {
        let i = self.service_index(service)?;
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(FleetError::OutOfRange {
                name: service.to_owned(),
                what: "a slowdown factor",
                expected: "1.0..",
                found: factor,
            });
        }
        self.services[i].slowdown = factor;
        Ok(())
    }

    /// Makes `extra` of the requests `service` processes fail, on top of any failure of
    /// its dependencies (0 = none).
    ///
    /// # Errors
    /// [`FleetError::UnknownService`]; [`FleetError::OutOfRange`] unless `extra` is in
    /// `0.0..=1.0`.
    pub fn set_error_rate(&mut self, service: &str, extra: f64) -> Result<(), FleetError> {
        let i = self.service_index(service)?;
        if !(extra.is_finite() && (0.0..=1.0).contains(&extra)) {
            return Err(FleetError::OutOfRange {
                name: service.to_owned(),
                what: "an error rate",
                expected: "0.0..=1.0",
                found: extra,
            });
        }
        self.services[i].extra_error_rate = extra;
        Ok(())
    }

    /// Takes `region` down (every service in it fails all work, and its backlog is lost)
    /// or brings it back (replicas serve again at once, queues start empty).
    ///
    /// # Errors
    /// [`FleetError::UnknownRegion`] when no service is in `region`.
    pub fn set_region_down(&mut self, region: &str, is_down: bool) -> Result<(), FleetError> {
        let r = self
            .topology
            .regions
            .binary_search_by(|n| n.as_str().cmp(region))
            .map_err(|_| FleetError::UnknownRegion {
                region: region.to_owned(),
                known: self.topology.regions.clone(),
            })?;
        self.region_down[r] = is_down;
        Ok(())
    }

    /// Ends every fault: no slowdowns, no injected errors, every region up. The
    /// actuator's settings (replicas, routes, shedding, breakers, quarantines) stay.
    pub fn clear_faults(&mut self) {
        for st in &mut self.services {
            st.slowdown = 1.0;
            st.extra_error_rate = 0.0;
        }
        self.region_down.fill(false);
    }

    /// Whether a `quarantine` action isolated `producer`: its events must be dropped.
    pub fn is_quarantined(&self, producer: &str) -> bool {
        self.quarantined_producers.contains(producer)
    }

    /// Whether a `quarantine` action isolated `topic`.
    pub fn is_topic_quarantined(&self, topic: &str) -> bool {
        self.quarantined_topics.contains(topic)
    }

    /// The end of the last step, `None` before the first.
    pub fn now(&self) -> Option<Timestamp> {
        self.now
    }

    /// Service names, sorted.
    pub fn service_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.topology.services.iter().map(|s| s.name.as_str())
    }

    /// Route names, sorted.
    pub fn route_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.topology.routes.iter().map(|r| r.name.as_str())
    }

    /// Region names, sorted.
    pub fn regions(&self) -> &[String] {
        &self.topology.regions
    }

    /// The telemetry each service would send for its last step, stamped `now`, sorted by
    /// service name. Before the first step every rate is zero.
    pub fn metrics(&self, now: Timestamp) -> Vec<ServiceMetrics> {
        self.topology
            .services
            .iter()
            .zip(&self.services)
            .map(|(cfg, st)| {
                let f = &st.last;
                ServiceMetrics {
                    schema_version: SCHEMA_VERSION,
                    service: cfg.name.clone(),
                    ts: now,
                    rate_in: f.rate(f.arrived),
                    rate_out: f.rate(f.processed),
                    backlog: st.backlog.round() as u64,
                    latency_p50_ms: f.reported_p50_ms(),
                    latency_p99_ms: f.reported_p99_ms(),
                    error_rate: f.error_rate,
                    cpu: f.cpu(),
                    replicas: u32::try_from(running(st)).unwrap_or(u32::MAX),
                    region: Some(self.topology.regions[cfg.region].clone()),
                    dependencies: st
                        .edges
                        .iter()
                        .map(|e| {
                            let has_calls = e.calls_per_s > 0.0;
                            Dependency {
                                service: self.topology.services[e.callee].name.clone(),
                                calls_per_s: finite(e.calls_per_s),
                                error_rate: if has_calls { e.attempt_failure } else { 0.0 },
                                latency_p99_ms: if has_calls {
                                    finite(e.latency_p99_ms)
                                } else {
                                    0.0
                                },
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Every service's figures as of the last step, sorted by name.
    pub fn snapshot(&self) -> Vec<ServiceSnapshot> {
        self.topology
            .services
            .iter()
            .zip(&self.services)
            .map(|(cfg, st)| {
                let f = &st.last;
                ServiceSnapshot {
                    service: cfg.name.clone(),
                    region: self.topology.regions[cfg.region].clone(),
                    ready_replicas: st.ready,
                    starting_replicas: u32::try_from(
                        st.starting.iter().map(|c| u64::from(c.count)).sum::<u64>(),
                    )
                    .unwrap_or(u32::MAX),
                    capacity_rps: finite(f.capacity_rps),
                    utilization: f.utilization(st.backlog),
                    latency_p99_ms: f.reported_p99_ms(),
                    error_rate: f.error_rate,
                    backlog: st.backlog,
                    is_breaching: is_breaching(cfg, st),
                    is_down: f.is_down,
                    replica_seconds: st.replica_seconds,
                    cost: st.replica_seconds / 3600.0 * cfg.cost_per_replica_hour,
                    ledger: st.ledger,
                }
            })
            .collect()
    }

    /// Names of the services breaching their objectives after the last step, sorted (see
    /// [`ServiceSnapshot::is_breaching`]).
    pub fn breaching(&self) -> Vec<String> {
        self.topology
            .services
            .iter()
            .zip(&self.services)
            .filter(|(cfg, st)| is_breaching(cfg, st))
            .map(|(cfg, _)| cfg.name.clone())
            .collect()
    }

    /// The cost of every replica-second so far, summed over services.
    pub fn total_cost(&self) -> f64 {
        self.topology
            .services
            .iter()
            .zip(&self.services)
            .map(|(cfg, st)| st.replica_seconds / 3600.0 * cfg.cost_per_replica_hour)
            .sum()
    }

    fn service_index(&self, name: &str) -> Result<usize, FleetError> {
        self.topology
            .service(name)
            .ok_or_else(|| FleetError::UnknownService {
                name: name.to_owned(),
            })
    }
}

/// The edges of `cfg`'s dependencies, one per backend, sorted by backend.
fn edges(cfg: &ServiceConfig, topology: &Topology, route_weights: &[Vec<f64>]) -> Vec<Edge> {
    let edge = |callee, via, declared_calls, weight: f64, timeout_ms| Edge {
        callee,
        via,
        declared_calls,
        calls_per_request: declared_calls * weight,
        timeout_ms,
        calls_per_s: 0.0,
        attempt_failure: 0.0,
        wait_ms: 0.0,
        latency_p99_ms: 0.0,
    };
    let mut out = Vec::new();
    for d in &cfg.dependencies {
        match d.callee {
            Callee::Service(b) => out.push(edge(b, None, d.calls_per_request, 1.0, d.timeout_ms)),
            Callee::Route(r) => {
                for (pos, &b) in topology.routes[r].backends.iter().enumerate() {
                    out.push(edge(
                        b,
                        Some((r, pos)),
                        d.calls_per_request,
                        route_weights[r][pos],
                        d.timeout_ms,
                    ));
                }
            }
        }
    }
    out.sort_by_key(|e| e.callee);
    out
}

/// Replicas paid for: ready plus cold-starting.
fn running(st: &ServiceState) -> u64 {
    u64::from(st.ready) + st.starting.iter().map(|c| u64::from(c.count)).sum::<u64>()
}

/// Share of `(start, end]` a replica ready at `ready_at` serves.
fn serving_share(ready_at: Timestamp, start: Timestamp, end: Timestamp) -> f64 {
    if ready_at <= start {
        1.0
    } else if ready_at >= end {
        0.0
    } else {
        (end.as_millis() - ready_at.as_millis()) as f64
            / (end.as_millis() - start.as_millis()) as f64
    }
}

fn is_breaching(cfg: &ServiceConfig, st: &ServiceState) -> bool {
    let f = &st.last;
    f.is_down
        || f.overflowed > 0.0
        // An idle service has no slow requests, whatever its latency would be.
        || (f.processed > 0.0 && f.reported_p99_ms() > cfg.slo_p99_ms)
        || cfg.slo_error_rate.is_some_and(|max| f.error_rate > max)
}

/// `x`, or zero when it is not finite (telemetry must be).
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}
