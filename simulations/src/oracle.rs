//! The `oracle` baseline's plan (#5): a scaler with perfect foresight of load and faults,
//! the lower bound on SLO violations for a given cost. [`OraclePlan::compute`] works the
//! whole plan out before the run: the replicas each service should have at every step, so
//! that capacity is ready when load arrives and released as soon as it leaves.
//!
//! # Method
//!
//! 1. **Pre-pass.** A copy of the fleet with unlimited capacity ([`UNLIMITED_REPLICAS`]
//!    ready replicas per service, nothing ever queues) is stepped through the scenario's
//!    load and faults exactly as the driver steps the real fleet. Each step it records,
//!    per service, the arrival rate (which includes calls from callers and their retries)
//!    and, for services with `max_in_flight_per_replica`, the time a request holds a slot.
//! 2. **Demand.** Per step, the replicas a service needs at full utilization: the larger
//!    of `rate × slowdown / capacity_per_replica` (the CPU; a slowdown fault in force
//!    divides a replica's capacity by its factor) and, with slots, `rate × busy_s / slots`
//!    (Little's law, as the fleet model limits it).
//! 3. **Plan.** For step `k`, the largest demand over steps `k ..= k + lead`, where `lead`
//!    is the service's cold start in steps (rounded up) plus [`MARGIN_STEPS`], divided by
//!    the target utilization and rounded up, and never below `min_replicas` (default 1).
//!    Replicas are thus requested a cold start ahead of a spike and released at the first
//!    step past it: no scale-down stabilization, since the oracle knows the load will not
//!    come back.
//!
//! # Limits
//!
//! The pre-pass sees the load an unlimited fleet sees. Where the real run differs — retries
//! caused by queueing or timeouts under finite capacity, load lost to shedding, overflow or
//! open breakers upstream, route weights changed by an agent — the real arrivals differ
//! from the plan's. Busy time per slot is read from the reported p50, which carries the
//! fleet's latency noise of up to 2 %. Services in a region that is down are planned for
//! the (failing) arrivals they receive; no replica count helps them.

use std::collections::{BTreeMap, VecDeque};

use crate::fleet::{Fleet, FleetError, FleetSpec, ServiceSpec};
use crate::scenario::Scenario;

/// Ready replicas per service in the pre-pass: 2³⁰ replicas give a capacity a billion
/// times one replica's, far beyond any load a scenario writes, so nothing queues and
/// every latency is the unloaded one; counts and replica-seconds stay exact in `u32` and
/// `f64`.
const UNLIMITED_REPLICAS: u32 = 1 << 30;

/// Steps of look-ahead past the cold start. The fleet reacts to a decision from the next
/// step on, and callers see a callee's state one step late; two steps cover both, so the
/// replicas are serving when the load arrives even if the plan is applied a step late.
const MARGIN_STEPS: u64 = 2;

/// Replicas below a whole number that still round down to it: rates come out of float
/// arithmetic, and `20.000000001` replicas must plan 20, not 21.
const ROUNDING_SLACK: f64 = 1e-6;

/// Cold-start-to-step ratios this close above a whole number count as that number:
/// `0.3 s / 0.1 s` is `2.9999999999999996` in floats and must give 3 steps, not 4.
const STEP_RATIO_SLACK: f64 = 1e-9;

/// The oracle's replica count for every service at every step of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct OraclePlan {
    /// Service names, sorted.
    services: Vec<String>,
    /// Steps of the scenario (the driver's `1..=steps`).
    steps: u64,
    /// `replicas[service × steps + step − 1]`.
    replicas: Vec<u32>,
}

/// What the plan needs of one service's spec.
struct Sizing<'a> {
    spec: &'a ServiceSpec,
    /// Steps of look-ahead: the cold start in steps, rounded up, plus [`MARGIN_STEPS`].
    lead_steps: u64,
}

impl OraclePlan {
    /// Works out the plan for `scenario`, keeping every service at or below
    /// `target_utilization` of its capacity (CPU and, where set, in-flight slots) at
    /// every step it can foresee.
    ///
    /// Step `k` is the driver's (`1..=steps`, the step over `(t_{k−1}, t_k]` with
    /// `t_k = start + k × step`). The plan for step `k` is the count to scale to at
    /// `t_{k−1}`, just before the fleet is stepped through `k`; the two-step margin
    /// lets a runner that applies it one step later (at `t_k`, as the driver applies
    /// decisions) still have the replicas ready in time.
    ///
    /// # Errors
    /// [`FleetError::OutOfRange`] unless `target_utilization` is in `(0, 1]`;
    /// [`FleetError::ZeroStep`] for a scenario step of zero; whatever
    /// [`Fleet::try_new`], [`Fleet::step`] and the fault setters refuse about the
    /// scenario's fleet, loads and faults (the driver would refuse the same).
    pub fn compute(scenario: &Scenario, target_utilization: f64) -> Result<OraclePlan, FleetError> {
        if !(target_utilization.is_finite()
            && target_utilization > 0.0
            && target_utilization <= 1.0)
        {
            return Err(FleetError::OutOfRange {
                name: "target_utilization".to_owned(),
                what: "a target utilization",
                expected: "(0, 1]",
                found: target_utilization,
            });
        }
        if scenario.step.is_zero() {
            return Err(FleetError::ZeroStep);
        }
        // Checks the fleet as written: the pre-pass's copy overrides the fields it could
        // get wrong (replicas, cold start).
        Fleet::try_new(&scenario.fleet, scenario.seed_value)?;
        // As the driver counts them.
        let steps = (scenario.duration.as_secs_f64() / scenario.step.as_secs_f64()).ceil() as u64;

        let step_s = scenario.step.as_secs_f64();
        let mut sizing: Vec<Sizing<'_>> = scenario
            .fleet
            .services
            .iter()
            .map(|spec| Sizing {
                spec,
                lead_steps: (spec.cold_start_s / step_s - STEP_RATIO_SLACK)
                    .ceil()
                    .max(0.0) as u64
                    + MARGIN_STEPS,
            })
            .collect();
        // The fleet keeps its services sorted by name; so does the plan.
        sizing.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));

        let demand = unlimited_demand(scenario, &sizing, steps)?;
        let mut replicas = Vec::with_capacity(sizing.len() * demand.first().map_or(0, Vec::len));
        for (s, d) in sizing.iter().zip(&demand) {
            let min = s.spec.min_replicas.unwrap_or(1);
            replicas.extend(
                window_max(d, s.lead_steps)
                    .into_iter()
                    .map(|need| planned_replicas(need / target_utilization, min)),
            );
        }
        Ok(OraclePlan {
            services: sizing.iter().map(|s| s.spec.name.clone()).collect(),
            steps,
            replicas,
        })
    }

    /// The replicas the oracle wants running during `step` (`1..=steps`, the driver's
    /// numbering; see [`OraclePlan::compute`]); `None` for an unknown service or a step
    /// outside the scenario.
    pub fn replicas_at(&self, service: &str, step: u64) -> Option<u32> {
        if step == 0 || step > self.steps {
            return None;
        }
        let i = self
            .services
            .binary_search_by(|s| s.as_str().cmp(service))
            .ok()?;
        let at = u64::try_from(i).ok()? * self.steps + (step - 1);
        self.replicas.get(usize::try_from(at).ok()?).copied()
    }

    /// The planned services, sorted by name.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(String::as_str)
    }

    /// Steps planned: the driver's `1..=steps`.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

/// Steps an unlimited copy of the fleet through the scenario's load and faults, as the
/// driver does, and returns per service (in `sizing`'s order, by name) and per step the
/// replicas it needs at full utilization.
fn unlimited_demand(
    scenario: &Scenario,
    sizing: &[Sizing<'_>],
    steps: u64,
) -> Result<Vec<Vec<f64>>, FleetError> {
    let unlimited = FleetSpec {
        services: scenario
            .fleet
            .services
            .iter()
            .map(|s| ServiceSpec {
                initial_replicas: UNLIMITED_REPLICAS,
                cold_start_s: 0.0,
                ..s.clone()
            })
            .collect(),
        routes: scenario.fleet.routes.clone(),
    };
    let mut fleet = Fleet::try_new(&unlimited, scenario.seed_value)?;
    let capacity = usize::try_from(steps).unwrap_or(0);
    let mut demand: Vec<Vec<f64>> = sizing
        .iter()
        .map(|_| Vec::with_capacity(capacity))
        .collect();
    for step in 1..=steps {
        let since = scenario.step * u32::try_from(step).unwrap_or(u32::MAX);
        let now = scenario.start.plus(since);
        let fx = scenario.faults.fleet_effects_at(since);
        for (service, factor) in fx.slowdowns() {
            fleet.set_slowdown(service, factor)?;
        }
        for (service, extra) in fx.extra_error_rates() {
            fleet.set_error_rate(service, extra)?;
        }
        for (region, down) in fx.regions() {
            fleet.set_region_down(region, down)?;
        }
        let loads: BTreeMap<String, f64> = scenario
            .load
            .iter()
            .map(|(name, m)| (name.clone(), m.rate_at(since)))
            .collect();
        fleet.step(now, scenario.step, &loads)?;
        // Both sorted by service name, so they pair up one to one.
        for ((s, m), d) in sizing.iter().zip(fleet.metrics(now)).zip(&mut demand) {
            let slowdown = fx.slowdown(&s.spec.name);
            let cpu = m.rate_in * slowdown / s.spec.capacity_per_replica;
            // Unloaded, the p50 is the time a request holds its slot: own work plus the
            // mean wait on dependencies, retries included.
            let slots = s.spec.max_in_flight_per_replica.map_or(0.0, |slots| {
                m.rate_in * m.latency_p50_ms / 1000.0 / f64::from(slots)
            });
            d.push(cpu.max(slots));
        }
    }
    Ok(demand)
}

/// For every `k`, the largest of `values[k ..= k + lead]` (the window stops at the end).
/// A monotonic deque, from the last step back: O(len) whatever the lead.
fn window_max(values: &[f64], lead: u64) -> Vec<f64> {
    let lead = usize::try_from(lead).unwrap_or(usize::MAX);
    let mut out = vec![0.0; values.len()];
    // Indices of candidates, front the largest value; values decrease front to back.
    let mut candidates: VecDeque<usize> = VecDeque::new();
    for k in (0..values.len()).rev() {
        while candidates.back().is_some_and(|&j| values[j] <= values[k]) {
            candidates.pop_back();
        }
        candidates.push_back(k);
        while candidates
            .front()
            .is_some_and(|&j| j.saturating_sub(k) > lead)
        {
            candidates.pop_front();
        }
        out[k] = candidates.front().map_or(0.0, |&j| values[j]);
    }
    out
}

/// `need` replicas rounded up (a hair under a whole number rounds down to it), at least
/// `min`.
fn planned_replicas(need: f64, min: u32) -> u32 {
    // `as` saturates: a non-finite or huge need plans `u32::MAX`, NaN plans 0 (then `min`).
    let whole = (need - ROUNDING_SLACK).ceil().max(0.0) as u32;
    whole.max(min)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use conclave_runtime::Timestamp;

    use super::*;
    use crate::faults::{FaultKindSpec, FaultSchedule, FaultSpec, WhenSpec};
    use crate::fleet::DependencySpec;
    use crate::load::{FlashCrowdSpec, LoadContext, LoadModel, LoadSpec, SyntheticSpec};
    use crate::Seed;

    const START: Timestamp = Timestamp::from_millis(1_795_946_400_000);
    const STEP: Duration = Duration::from_secs(5);
    const HOUR: Duration = Duration::from_secs(3600);

    /// A leaf service: 10 req/s per replica, 20 ms of own work, no dependencies.
    fn service(name: &str, cold_start_s: f64) -> ServiceSpec {
        ServiceSpec {
            name: name.to_owned(),
            region: "eu".to_owned(),
            capacity_per_replica: 10.0,
            base_latency_ms: 20.0,
            initial_replicas: 4,
            min_replicas: None,
            max_in_flight_per_replica: None,
            cold_start_s,
            cost_per_replica_hour: 0.1,
            slo_p99_ms: 300.0,
            slo_error_rate: None,
            max_queue: 10_000,
            retry_attempts: None,
            dependencies: Vec::new(),
        }
    }

    fn steady(rate: f64) -> SyntheticSpec {
        SyntheticSpec {
            base_rate_per_s: rate,
            diurnal_amplitude: None,
            peak_hour: None,
            weekly_amplitude: None,
            trend_per_day: None,
            noise_sd: None,
            noise_bucket_s: None,
            flash_crowds: None,
        }
    }

    /// A steady rate tripled over `[600 s, 900 s)`: steps 120..=179 at 5 s a step.
    fn flash_crowd(rate: f64) -> SyntheticSpec {
        SyntheticSpec {
            flash_crowds: Some(vec![FlashCrowdSpec {
                at_s: 600.0,
                duration_s: 300.0,
                multiplier: 3.0,
                ramp_s: None,
            }]),
            ..steady(rate)
        }
    }

    /// Over `[600 s, 900 s)`, like [`flash_crowd`].
    fn fault(fault: FaultKindSpec) -> FaultSpec {
        FaultSpec {
            name: None,
            fault,
            when: WhenSpec::At {
                start_s: 600.0,
                duration_s: 300.0,
            },
        }
    }

    fn scenario(
        services: Vec<ServiceSpec>,
        load: Vec<(&str, SyntheticSpec)>,
        faults: Vec<FaultSpec>,
        seed: u64,
    ) -> Scenario {
        let seed_value = seed;
        let seed = Seed::new(seed);
        let trace_dir = PathBuf::new();
        let load = load
            .into_iter()
            .map(|(name, spec)| {
                let at = format!("spec.load.{name}");
                let component = format!("load/{name}");
                let ctx = LoadContext {
                    at: &at,
                    seed,
                    component: &component,
                    start: START,
                    trace_dir: &trace_dir,
                };
                let model = LoadModel::compile(LoadSpec::Synthetic(spec), &ctx)
                    .expect("test loads are valid");
                (name.to_owned(), model)
            })
            .collect();
        Scenario {
            name: "oracle-test".to_owned(),
            description: String::new(),
            seed,
            seed_value,
            start: START,
            duration: HOUR,
            step: STEP,
            policy: PathBuf::new(),
            key_services: Vec::new(),
            fleet: FleetSpec {
                services,
                routes: BTreeMap::new(),
            },
            load,
            events: None,
            faults: FaultSchedule::compile(faults, seed, HOUR, "spec.faults")
                .expect("test faults are valid"),
        }
    }

    /// The plan of `service` over `steps`.
    fn plan_of(plan: &OraclePlan, service: &str, steps: std::ops::RangeInclusive<u64>) -> Vec<u32> {
        steps
            .map(|k| {
                plan.replicas_at(service, k)
                    .unwrap_or_else(|| panic!("no plan for `{service}` at step {k}"))
            })
            .collect()
    }

    /// Asserts `low` replicas everywhere except `high` over `raised`.
    fn assert_raised_over(
        case: &str,
        plan: &OraclePlan,
        service: &str,
        raised: std::ops::RangeInclusive<u64>,
        low: u32,
        high: u32,
    ) {
        for k in 1..=plan.steps() {
            let want = if raised.contains(&k) { high } else { low };
            assert_eq!(
                plan.replicas_at(service, k),
                Some(want),
                "{case}: `{service}` at step {k} (raised over {raised:?})"
            );
        }
    }

    #[test]
    fn plan_rises_a_cold_start_and_two_steps_before_a_flash_crowd_and_falls_right_after() {
        // 30 s cold start = 6 steps, plus 2: the plan for step k sees steps k..=k+8.
        // 100 req/s at 10 per replica and 50 % is 20 replicas; tripled, 60. The crowd
        // covers steps 120..=179, so the plan rises at 112 and falls at 180.
        let s = scenario(
            vec![service("web", 30.0)],
            vec![("web", flash_crowd(100.0))],
            Vec::new(),
            1,
        );
        let plan = OraclePlan::compute(&s, 0.5).expect("plan");
        assert_eq!(plan.steps(), 720);
        assert_raised_over("flash crowd", &plan, "web", 112..=179, 20, 60);
    }

    #[test]
    fn lead_follows_each_services_own_cold_start() {
        const CASES: &[(&str, f64, u64)] = &[
            // name, cold start, first raised step
            ("no cold start", 0.0, 118),
            ("one step", 5.0, 117),
            ("part of a step rounds up", 7.0, 116),
            ("ninety seconds", 90.0, 100),
        ];
        for &(name, cold_start_s, first) in CASES {
            let s = scenario(
                vec![service("web", cold_start_s)],
                vec![("web", flash_crowd(100.0))],
                Vec::new(),
                1,
            );
            let plan = OraclePlan::compute(&s, 0.5).expect("plan");
            assert_raised_over(name, &plan, "web", first..=179, 20, 60);
        }
    }

    #[test]
    fn slowdown_in_force_triples_the_plan_and_is_foreseen() {
        // No dependencies, so the slowdown changes no arrivals: only capacity, ÷ 3.
        let s = scenario(
            vec![service("web", 30.0)],
            vec![("web", steady(100.0))],
            vec![fault(FaultKindSpec::DependencySlowdown {
                service: "web".to_owned(),
                factor: 3.0,
            })],
            1,
        );
        let plan = OraclePlan::compute(&s, 0.5).expect("plan");
        assert_raised_over("slowdown", &plan, "web", 112..=179, 20, 60);
    }

    #[test]
    fn callees_are_planned_for_their_callers_calls_and_retries() {
        // web calls db twice per request with up to 3 attempts: 200 req/s at db, and
        // 1.75 attempts per call while db fails half its requests (1 + 0.5 + 0.25).
        let mut web = service("web", 0.0);
        web.retry_attempts = Some(3);
        web.dependencies = vec![DependencySpec {
            service: "db".to_owned(),
            calls_per_request: 2.0,
            timeout_ms: 1000.0,
        }];
        let mut db = service("db", 0.0);
        db.capacity_per_replica = 20.0;
        let s = scenario(
            vec![web, db],
            vec![("web", steady(100.0))],
            vec![fault(FaultKindSpec::ErrorBurst {
                service: "db".to_owned(),
                extra_error_rate: 0.5,
            })],
            1,
        );
        let plan = OraclePlan::compute(&s, 0.5).expect("plan");
        assert_eq!(plan.services().collect::<Vec<_>>(), ["db", "web"]);
        assert_eq!(plan.replicas_at("web", 150), Some(20), "web: its own load");
        assert_eq!(plan.replicas_at("db", 60), Some(20), "db before the burst");
        assert_eq!(plan.replicas_at("db", 150), Some(35), "db during the burst");
        assert_eq!(plan.replicas_at("db", 400), Some(20), "db after the burst");
    }

    #[test]
    fn in_flight_slots_bound_the_plan_when_they_bind_before_the_cpu() {
        // One slot per replica held 1 s per request: 10.25 req/s need 10.25 slots, 20.5
        // replicas at 50 % (the CPU alone would need 1). The reported p50 carries ±2 %
        // noise, which keeps the need within (20, 21].
        let mut worker = service("worker", 0.0);
        worker.capacity_per_replica = 100.0;
        worker.base_latency_ms = 1000.0;
        worker.max_in_flight_per_replica = Some(1);
        let s = scenario(vec![worker], vec![("worker", steady(10.25))], Vec::new(), 1);
        let plan = OraclePlan::compute(&s, 0.5).expect("plan");
        let all = plan_of(&plan, "worker", 1..=plan.steps());
        assert!(all.iter().all(|&r| r == 21), "worker: {all:?}");
    }

    #[test]
    fn min_replicas_are_respected() {
        // 1 req/s needs 1 replica at 50 %; the floor is 3. An idle service keeps the
        // default floor of 1.
        let mut web = service("web", 30.0);
        web.min_replicas = Some(3);
        let s = scenario(
            vec![web, service("idle", 30.0)],
            vec![("web", flash_crowd(1.0))],
            Vec::new(),
            1,
        );
        let plan = OraclePlan::compute(&s, 0.5).expect("plan");
        let web = plan_of(&plan, "web", 1..=plan.steps());
        assert!(web.iter().all(|&r| r == 3), "web: {web:?}");
        let idle = plan_of(&plan, "idle", 1..=plan.steps());
        assert!(idle.iter().all(|&r| r == 1), "idle: {idle:?}");
    }

    #[test]
    fn plan_is_deterministic() {
        let noisy = |seed| {
            let mut load = flash_crowd(100.0);
            load.noise_sd = Some(0.3);
            load.noise_bucket_s = Some(5.0);
            scenario(
                vec![service("web", 30.0), service("api", 60.0)],
                vec![("web", load.clone()), ("api", load)],
                Vec::new(),
                seed,
            )
        };
        let a = OraclePlan::compute(&noisy(7), 0.6).expect("plan");
        let b = OraclePlan::compute(&noisy(7), 0.6).expect("plan");
        assert_eq!(a, b, "same scenario, same seed");
        let c = OraclePlan::compute(&noisy(8), 0.6).expect("plan");
        assert_ne!(a, c, "the noise follows the seed");
    }

    #[test]
    fn lookups_outside_the_plan_are_none() {
        let s = scenario(
            vec![service("web", 0.0)],
            vec![("web", steady(100.0))],
            Vec::new(),
            1,
        );
        let plan = OraclePlan::compute(&s, 0.5).expect("plan");
        assert_eq!(plan.replicas_at("web", 0), None, "steps start at 1");
        assert_eq!(plan.replicas_at("web", 720), Some(20), "the last step");
        assert_eq!(plan.replicas_at("web", 721), None, "past the end");
        assert_eq!(plan.replicas_at("nope", 1), None, "unknown service");
    }

    #[test]
    fn target_utilization_outside_0_to_1_is_refused() {
        const CASES: &[(&str, f64)] = &[
            ("zero", 0.0),
            ("negative", -0.5),
            ("above one", 1.5),
            ("nan", f64::NAN),
            ("infinite", f64::INFINITY),
        ];
        let s = scenario(
            vec![service("web", 0.0)],
            vec![("web", steady(100.0))],
            Vec::new(),
            1,
        );
        for &(name, u) in CASES {
            let err = OraclePlan::compute(&s, u).expect_err(name);
            assert!(
                matches!(err, FleetError::OutOfRange { ref name, .. } if name == "target_utilization"),
                "{name}: {err}"
            );
        }
        let full = OraclePlan::compute(&s, 1.0).expect("1.0 is allowed");
        assert_eq!(
            full.replicas_at("web", 1),
            Some(10),
            "100 req/s at 10 per replica"
        );
    }

    #[test]
    fn window_max_looks_ahead_and_stops_at_the_end() {
        const CASES: &[(&str, &[f64], u64, &[f64])] = &[
            ("no lead", &[1.0, 3.0, 2.0], 0, &[1.0, 3.0, 2.0]),
            ("lead one", &[1.0, 3.0, 2.0, 0.0], 1, &[3.0, 3.0, 2.0, 0.0]),
            ("lead past the end", &[1.0, 3.0, 2.0], 10, &[3.0, 3.0, 2.0]),
            (
                "plateau",
                &[0.0, 5.0, 5.0, 0.0, 0.0],
                2,
                &[5.0, 5.0, 5.0, 0.0, 0.0],
            ),
            ("empty", &[], 3, &[]),
        ];
        for &(name, values, lead, want) in CASES {
            assert_eq!(window_max(values, lead), want, "{name}");
        }
    }

    #[test]
    fn replicas_round_up_but_not_on_float_noise() {
        const CASES: &[(&str, f64, u32, u32)] = &[
            ("whole", 20.0, 1, 20),
            ("a hair above", 20.000_000_001, 1, 20),
            ("a bit above", 20.01, 1, 21),
            ("zero", 0.0, 1, 1),
            ("floor wins", 2.0, 3, 3),
            ("min zero", 0.0, 0, 0),
            ("nan", f64::NAN, 2, 2),
            ("huge", 1e12, 1, u32::MAX),
        ];
        for &(name, need, min, want) in CASES {
            assert_eq!(planned_replicas(need, min), want, "{name}");
        }
    }
}
