//! Behaviour of the fleet model: steady state, overload, cold starts, cascades and what
//! contains them, the actuator's actions, spec checks, conservation and determinism.

use std::collections::BTreeMap;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use conclave_runtime::actuator::Actuator;
use conclave_runtime::telemetry::{encode, DecodeLimits, Decoder, ServiceMetrics, Telemetry};
use conclave_runtime::{
    Action, BreakerState, Decision, Fraction, Outcome, QuarantineScope, Severity, Target,
    TargetKind, Timestamp,
};
use proptest::prelude::*;

use super::*;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const SECOND: Duration = Duration::from_secs(1);

fn at(s: f64) -> Timestamp {
    T0.plus(Duration::from_secs_f64(s))
}

/// A leaf service with no dependencies: generous queue, no cold start.
fn service(name: &str, capacity: f64, base_ms: f64, replicas: u32) -> ServiceSpec {
    ServiceSpec {
        name: name.to_owned(),
        region: "eu".to_owned(),
        capacity_per_replica: capacity,
        base_latency_ms: base_ms,
        initial_replicas: replicas,
        min_replicas: None,
        max_in_flight_per_replica: None,
        cold_start_s: 0.0,
        cost_per_replica_hour: 0.5,
        slo_p99_ms: 300.0,
        slo_error_rate: None,
        max_queue: 1_000_000,
        retry_attempts: None,
        dependencies: Vec::new(),
    }
}

fn calls(service: &str, calls_per_request: f64, timeout_ms: f64) -> DependencySpec {
    DependencySpec {
        service: service.to_owned(),
        calls_per_request,
        timeout_ms,
    }
}

fn fleet(services: Vec<ServiceSpec>) -> Fleet {
    Fleet::try_new(
        &FleetSpec {
            services,
            routes: BTreeMap::new(),
        },
        7,
    )
    .expect("valid spec")
}

fn load(entries: &[(&str, f64)]) -> BTreeMap<String, f64> {
    entries.iter().map(|&(n, r)| (n.to_owned(), r)).collect()
}

/// Steps once per second from `from` (exclusive) to `to` (inclusive).
fn run(f: &mut Fleet, from: u32, to: u32, external: &BTreeMap<String, f64>) {
    for s in from + 1..=to {
        f.step(at(f64::from(s)), SECOND, external).expect("step");
    }
}

fn snap(f: &Fleet, name: &str) -> ServiceSnapshot {
    f.snapshot()
        .into_iter()
        .find(|s| s.service == name)
        .expect("service in snapshot")
}

fn metrics_of(f: &Fleet, name: &str) -> ServiceMetrics {
    f.metrics(f.now().unwrap_or(T0))
        .into_iter()
        .find(|m| m.service == name)
        .expect("service in metrics")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn steady_state_below_capacity_serves_everything_at_base_latency() {
    // 10 replicas × 100 req/s = 1000 req/s; half of it offered.
    let mut f = fleet(vec![service("api", 100.0, 50.0, 10)]);
    run(&mut f, 0, 10, &load(&[("api", 500.0)]));

    let s = snap(&f, "api");
    assert!(close(s.capacity_rps, 1000.0, 1e-12), "{s:?}");
    assert!(close(s.utilization, 0.5, 1e-12), "{s:?}");
    assert_eq!(s.backlog, 0.0);
    assert_eq!(s.error_rate, 0.0);
    assert!(!s.is_breaching);
    // 50 servers at ρ = 0.5 almost never queue: p99 is the own work's p99 (1.5 × base),
    // within the ±2 % noise.
    assert!(
        (73.5..=76.5).contains(&s.latency_p99_ms),
        "p99 {}",
        s.latency_p99_ms
    );
    assert!(close(s.ledger.served, 5000.0, 1e-12), "{:?}", s.ledger);
    assert_eq!(s.ledger.failed + s.ledger.dropped(), 0.0);

    let m = metrics_of(&f, "api");
    assert!(close(m.rate_in, 500.0, 1e-12) && close(m.rate_out, 500.0, 1e-12));
    assert!(close(m.cpu, 0.5, 1e-12));
    assert_eq!(m.replicas, 10);
    assert_eq!(m.region.as_deref(), Some("eu"));
    assert!(
        (49.0..=51.0).contains(&m.latency_p50_ms),
        "p50 {}",
        m.latency_p50_ms
    );
}

#[test]
fn overload_grows_the_backlog_by_the_excess_then_drops_the_overflow() {
    // 2 × 100 req/s against 300 req/s: 100 req/s too many, queue of 1000.
    let mut spec = service("api", 100.0, 20.0, 2);
    spec.max_queue = 1000;
    let mut f = fleet(vec![spec]);
    let offered = load(&[("api", 300.0)]);
    let mut last_p99 = 0.0;
    for s in 1..=10 {
        f.step(at(f64::from(s)), SECOND, &offered).expect("step");
        let snap = snap(&f, "api");
        assert!(
            close(snap.backlog, 100.0 * f64::from(s), 1e-12),
            "step {s}: backlog {}",
            snap.backlog
        );
        assert_eq!(snap.ledger.overflowed, 0.0, "step {s}");
        assert!(snap.latency_p99_ms > last_p99, "step {s}: latency rises");
        // Waiting behind the backlog: it drains at 200 req/s.
        assert!(
            snap.latency_p99_ms > 1000.0 * snap.backlog / 200.0,
            "step {s}"
        );
        last_p99 = snap.latency_p99_ms;
    }
    for s in 11..=12 {
        f.step(at(f64::from(s)), SECOND, &offered).expect("step");
        let snap = snap(&f, "api");
        assert_eq!(snap.backlog, 1000.0, "step {s}: the queue is full");
        assert!(
            close(snap.ledger.overflowed, 100.0 * f64::from(s - 10), 1e-12),
            "step {s}: {:?}",
            snap.ledger
        );
        // 200 processed, 100 dropped.
        assert!(close(snap.error_rate, 1.0 / 3.0, 1e-12), "step {s}");
        assert!(snap.is_breaching, "step {s}: overflowing");
        assert_eq!(snap.utilization, 1.0);
    }
    assert_eq!(f.breaching(), vec!["api".to_owned()]);
}

#[test]
fn cold_replicas_add_capacity_exactly_when_their_cold_start_ends() {
    struct Case {
        name: &'static str,
        cold_start_s: f64,
        /// (step end in seconds after the scale, capacity in req/s over that step)
        capacity: &'static [(u32, f64)],
    }
    const CASES: &[Case] = &[
        Case {
            name: "whole steps",
            cold_start_s: 10.0,
            capacity: &[
                (1, 200.0),
                (9, 200.0),
                (10, 200.0),
                (11, 400.0),
                (12, 400.0),
            ],
        },
        Case {
            name: "ends mid-step",
            cold_start_s: 10.5,
            capacity: &[(10, 200.0), (11, 300.0), (12, 400.0)],
        },
        Case {
            name: "no cold start",
            cold_start_s: 0.0,
            capacity: &[(1, 400.0)],
        },
    ];
    for case in CASES {
        let mut spec = service("api", 100.0, 20.0, 2);
        spec.cold_start_s = case.cold_start_s;
        let mut f = fleet(vec![spec]);
        // Overloaded, so every step uses all the capacity there is.
        let offered = load(&[("api", 1000.0)]);
        run(&mut f, 0, 5, &offered);
        f.apply(&Action::Scale { replicas: 4 }, &"api".into(), at(5.0))
            .expect("scale");
        let mut done = 5;
        for &(after, want) in case.capacity {
            run(&mut f, done, 5 + after, &offered);
            done = 5 + after;
            let got = snap(&f, "api").capacity_rps;
            assert!(
                close(got, want, 1e-12),
                "{}: {after}s after the scale: capacity {got}, want {want}",
                case.name
            );
        }
        let s = snap(&f, "api");
        assert_eq!(
            (s.ready_replicas, s.starting_replicas),
            (4, 0),
            "{}",
            case.name
        );
    }
}

#[test]
fn replicas_count_as_running_while_cold_and_are_removed_cold_first() {
    let mut spec = service("api", 100.0, 20.0, 2);
    spec.cold_start_s = 30.0;
    spec.min_replicas = Some(1);
    let mut f = fleet(vec![spec]);
    let api: Target = "api".into();
    f.apply(&Action::Scale { replicas: 5 }, &api, at(0.0))
        .expect("scale");
    run(&mut f, 0, 1, &load(&[]));
    let s = snap(&f, "api");
    assert_eq!((s.ready_replicas, s.starting_replicas), (2, 3));
    assert_eq!(metrics_of(&f, "api").replicas, 5);
    // Paid for while cold: 5 replicas for 1 s.
    assert!(close(s.replica_seconds, 5.0, 1e-12));
    assert!(close(s.cost, 5.0 / 3600.0 * 0.5, 1e-12));
    assert!(close(f.total_cost(), s.cost, 1e-12));

    f.apply(&Action::Scale { replicas: 3 }, &api, at(1.0))
        .expect("scale");
    let s = snap(&f, "api");
    assert_eq!(
        (s.ready_replicas, s.starting_replicas),
        (2, 1),
        "cold go first"
    );
    f.apply(&Action::Scale { replicas: 0 }, &api, at(1.0))
        .expect("scale");
    let s = snap(&f, "api");
    assert_eq!(
        (s.ready_replicas, s.starting_replicas),
        (1, 0),
        "never below min_replicas"
    );
}

/// web → orders → payments, payments at half its capacity.
fn shop() -> Vec<ServiceSpec> {
    let mut web = service("web", 100.0, 20.0, 10);
    web.slo_p99_ms = 500.0;
    web.dependencies = vec![calls("orders", 1.0, 2000.0)];
    let mut orders = service("orders", 100.0, 30.0, 10);
    orders.slo_p99_ms = 400.0;
    orders.retry_attempts = Some(3);
    orders.dependencies = vec![calls("payments", 1.0, 300.0)];
    let mut payments = service("payments", 100.0, 50.0, 6);
    payments.max_queue = 2000;
    vec![web, orders, payments]
}

const SHOP_LOAD: &[(&str, f64)] = &[("web", 300.0)];

#[test]
fn shop_is_healthy_without_faults() {
    let mut f = fleet(shop());
    run(&mut f, 0, 30, &load(SHOP_LOAD));
    assert!(f.breaching().is_empty(), "{:?}", f.snapshot());
    let payments = metrics_of(&f, "payments");
    assert!(close(payments.rate_in, 300.0, 1e-9), "{payments:?}");
    let orders = metrics_of(&f, "orders");
    assert_eq!(orders.dependencies.len(), 1);
    let dep = &orders.dependencies[0];
    assert_eq!(dep.service, "payments");
    assert!(close(dep.calls_per_s, 300.0, 1e-9));
    assert!(dep.error_rate < 1e-9, "{dep:?}");
    // Callers wait for their dependencies: web's median covers all three.
    let web = metrics_of(&f, "web");
    assert!(web.latency_p50_ms > (20.0 + 30.0 + 50.0) * 0.98, "{web:?}");
    assert!(web.error_rate < 1e-9);
}

#[test]
fn a_slow_dependency_cascades_when_nothing_intervenes() {
    let mut f = fleet(shop());
    let offered = load(SHOP_LOAD);
    run(&mut f, 0, 30, &offered);
    let before = metrics_of(&f, "payments").rate_in;
    let orders_before = metrics_of(&f, "orders").latency_p99_ms;

    f.set_slowdown("payments", 10.0).expect("fault");
    run(&mut f, 30, 120, &offered);

    let breaching = f.breaching();
    assert!(breaching.len() >= 2, "breaching: {breaching:?}");
    for name in ["orders", "payments", "web"] {
        assert!(breaching.contains(&name.to_owned()), "{name} breaches");
    }
    // Timeouts make orders retry: payments' load is multiplied.
    let payments = metrics_of(&f, "payments");
    assert!(
        payments.rate_in > 2.5 * before,
        "{} vs {before}",
        payments.rate_in
    );
    let orders = metrics_of(&f, "orders");
    assert!(orders.latency_p99_ms > 400.0 && orders.latency_p99_ms > 5.0 * orders_before);
    assert!(orders.error_rate > 0.9, "{orders:?}");
    assert!(orders.dependencies[0].error_rate > 0.9);
    let web = metrics_of(&f, "web");
    assert!(
        web.latency_p99_ms > 500.0 && web.error_rate > 0.9,
        "{web:?}"
    );
}

#[test]
fn a_retry_storm_outlasts_its_fault_until_shedding_breaks_it() {
    let mut f = fleet(shop());
    let offered = load(SHOP_LOAD);
    let shed = |fraction| Action::Shed {
        fraction: Fraction::try_new(fraction).expect("fraction"),
    };
    run(&mut f, 0, 30, &offered);
    f.set_slowdown("payments", 3.0).expect("fault");
    run(&mut f, 30, 60, &offered);
    f.clear_faults();
    run(&mut f, 60, 120, &offered);
    // Payments is back to 600 req/s, but its queue outlasts orders' timeout, so orders
    // retries every call: 900 attempts/s keep it overloaded.
    assert!(
        f.breaching().contains(&"payments".to_owned()),
        "{:?}",
        f.snapshot()
    );
    assert!(close(metrics_of(&f, "payments").rate_in, 900.0, 1e-6));

    f.apply(&shed(0.5), &"payments".into(), at(120.0))
        .expect("shed");
    run(&mut f, 120, 150, &offered);
    f.apply(&shed(0.0), &"payments".into(), at(150.0))
        .expect("shed");
    run(&mut f, 150, 180, &offered);
    assert!(f.breaching().is_empty(), "{:?}", f.breaching());
    assert!(close(metrics_of(&f, "payments").rate_in, 300.0, 1e-6));
}

#[test]
fn an_open_breaker_contains_the_slow_dependency() {
    let mut f = fleet(shop());
    let offered = load(SHOP_LOAD);
    run(&mut f, 0, 30, &offered);
    f.set_slowdown("payments", 10.0).expect("fault");
    f.apply(
        &Action::Breaker {
            state: BreakerState::Open,
        },
        &"payments".into(),
        at(30.0),
    )
    .expect("breaker");
    run(&mut f, 30, 120, &offered);

    // Callers fail fast for the calls the breaker refuses, but stay fast.
    assert!(f.breaching().is_empty(), "{:?}", f.breaching());
    let orders = metrics_of(&f, "orders");
    assert!(orders.latency_p99_ms < 400.0, "{orders:?}");
    assert_eq!(orders.error_rate, 1.0, "every order needs a payment");
    assert_eq!(orders.dependencies[0].calls_per_s, 0.0);
    let web = metrics_of(&f, "web");
    assert!(web.latency_p99_ms < 500.0, "{web:?}");
    let payments = snap(&f, "payments");
    assert_eq!(metrics_of(&f, "payments").rate_in, 0.0);
    assert_eq!(payments.backlog, 0.0);

    // Payments recovers; half-open lets a tenth through as probes, the rest still fail.
    f.clear_faults();
    f.apply(
        &Action::Breaker {
            state: BreakerState::HalfOpen,
        },
        &"payments".into(),
        at(120.0),
    )
    .expect("breaker");
    run(&mut f, 120, 122, &offered);
    let orders = metrics_of(&f, "orders");
    let probes = &orders.dependencies[0];
    assert!(close(probes.calls_per_s, 30.0, 1e-6), "{probes:?}");
    assert!(probes.error_rate < 1e-6, "{probes:?}");
    assert!(close(orders.error_rate, 0.9, 1e-6), "{orders:?}");
}

#[test]
fn exhausted_worker_pools_starve_callers_of_a_slow_dependency() {
    let mut specs = shop();
    // 10 replicas × 8 slots: 80 in flight, far above the 300 req/s × 80 ms needed (24).
    specs[1].max_in_flight_per_replica = Some(8);
    let mut f = fleet(specs);
    let offered = load(SHOP_LOAD);
    run(&mut f, 0, 30, &offered);
    let orders = snap(&f, "orders");
    assert!(
        close(orders.capacity_rps, 1000.0, 1e-12),
        "CPU-bound: {orders:?}"
    );

    f.set_slowdown("payments", 10.0).expect("fault");
    run(&mut f, 30, 60, &offered);
    let orders = snap(&f, "orders");
    // Each call now holds a slot for up to 3 × 300 ms: at most 80 / 0.93 s ≈ 86 req/s.
    assert!(orders.capacity_rps < 100.0, "{orders:?}");
    assert!(
        orders.backlog > 0.0 && orders.utilization == 1.0,
        "{orders:?}"
    );
    let m = metrics_of(&f, "orders");
    assert!(m.cpu < 0.1, "the CPU idles while workers wait: {}", m.cpu);
}

#[test]
fn shedding_refuses_its_share_and_lightens_dependencies() {
    let mut f = fleet(shop());
    let offered = load(SHOP_LOAD);
    f.apply(
        &Action::Shed {
            fraction: Fraction::try_new(0.25).expect("fraction"),
        },
        &"web".into(),
        at(0.0),
    )
    .expect("shed");
    run(&mut f, 0, 10, &offered);
    let web = metrics_of(&f, "web");
    assert!(close(web.rate_in, 300.0, 1e-12) && close(web.rate_out, 225.0, 1e-12));
    assert!(close(web.error_rate, 0.25, 1e-9), "{web:?}");
    assert!(close(metrics_of(&f, "orders").rate_in, 225.0, 1e-9));
    assert!(close(metrics_of(&f, "payments").rate_in, 225.0, 1e-9));
    assert!(close(snap(&f, "web").ledger.shed, 750.0, 1e-12));
}

fn routed() -> Fleet {
    let mut checkout = service("checkout", 100.0, 10.0, 10);
    checkout.dependencies = vec![calls("pay", 2.0, 500.0)];
    let mut eu = service("pay-eu", 100.0, 20.0, 10);
    eu.region = "eu".to_owned();
    let mut us = service("pay-us", 100.0, 20.0, 10);
    us.region = "us".to_owned();
    Fleet::try_new(
        &FleetSpec {
            services: vec![us, checkout, eu],
            routes: BTreeMap::from([(
                "pay".to_owned(),
                vec!["pay-eu".to_owned(), "pay-us".to_owned()],
            )]),
        },
        1,
    )
    .expect("valid spec")
}

#[test]
fn route_weights_split_the_load_of_a_route() {
    let mut f = routed();
    // 100 req/s to checkout (2 calls each) and 200 req/s straight to the route.
    let offered = load(&[("checkout", 100.0), ("pay", 200.0)]);
    run(&mut f, 0, 1, &offered);
    assert!(close(metrics_of(&f, "pay-eu").rate_in, 200.0, 1e-12));
    assert!(close(metrics_of(&f, "pay-us").rate_in, 200.0, 1e-12));

    let weights = BTreeMap::from([("pay-eu".to_owned(), 3.0), ("pay-us".to_owned(), 1.0)]);
    f.apply(&Action::Route { weights }, &"pay".into(), at(1.0))
        .expect("route");
    run(&mut f, 1, 2, &offered);
    assert!(close(metrics_of(&f, "pay-eu").rate_in, 300.0, 1e-12));
    assert!(close(metrics_of(&f, "pay-us").rate_in, 100.0, 1e-12));
    let deps = metrics_of(&f, "checkout").dependencies;
    let seen: Vec<(&str, f64)> = deps
        .iter()
        .map(|d| (d.service.as_str(), d.calls_per_s))
        .collect();
    assert_eq!(seen, vec![("pay-eu", 150.0), ("pay-us", 50.0)]);

    // A backend left out gets nothing.
    let weights = BTreeMap::from([("pay-us".to_owned(), 1.0)]);
    f.apply(&Action::Route { weights }, &"pay".into(), at(2.0))
        .expect("route");
    run(&mut f, 2, 3, &offered);
    assert_eq!(metrics_of(&f, "pay-eu").rate_in, 0.0);
    assert!(close(metrics_of(&f, "pay-us").rate_in, 400.0, 1e-12));
}

#[test]
fn refused_actions_name_the_problem_and_change_nothing() {
    struct Case {
        name: &'static str,
        target: &'static str,
        action: Action,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "scale an unknown service",
            target: "nope",
            action: Action::Scale { replicas: 3 },
            message: "no service `nope` in the fleet (a scale action needs one)",
        },
        Case {
            name: "scale a route",
            target: "pay",
            action: Action::Scale { replicas: 3 },
            message: "no service `pay` in the fleet (a scale action needs one)",
        },
        Case {
            name: "route a service",
            target: "pay-eu",
            action: Action::Route {
                weights: BTreeMap::from([("pay-eu".to_owned(), 1.0)]),
            },
            message: "no route `pay-eu` in the fleet (a route action needs one)",
        },
        Case {
            name: "route to a stranger",
            target: "pay",
            action: Action::Route {
                weights: BTreeMap::from([("checkout".to_owned(), 1.0)]),
            },
            message: "route `pay`: `checkout` is not a backend (backends: `pay-eu`, `pay-us`)",
        },
        Case {
            name: "all-zero weights",
            target: "pay",
            action: Action::Route {
                weights: BTreeMap::from([("pay-eu".to_owned(), 0.0)]),
            },
            message: "route `pay`: expected finite, non-negative weights with a positive sum, found `{pay-eu: 0}`",
        },
        Case {
            name: "negative weight",
            target: "pay",
            action: Action::Route {
                weights: BTreeMap::from([("pay-eu".to_owned(), 2.0), ("pay-us".to_owned(), -1.0)]),
            },
            message: "route `pay`: expected finite, non-negative weights with a positive sum, found `{pay-eu: 2, pay-us: -1}`",
        },
        Case {
            name: "break an unknown service",
            target: "nope",
            action: Action::Breaker {
                state: BreakerState::Open,
            },
            message: "no service `nope` in the fleet (a breaker action needs one)",
        },
        Case {
            name: "shed an unknown service",
            target: "nope",
            action: Action::Shed {
                fraction: Fraction::ONE,
            },
            message: "no service `nope` in the fleet (a shed action needs one)",
        },
    ];
    for case in cases {
        let mut f = routed();
        let before = f.snapshot();
        let err = f
            .apply(&case.action, &case.target.into(), T0)
            .expect_err(case.name);
        assert_eq!(err.to_string(), case.message, "{}", case.name);
        assert_eq!(f.snapshot(), before, "{}", case.name);
    }
    // Quarantines and alerts are not about fleet services.
    let mut f = routed();
    f.apply(
        &Action::Alert {
            severity: Severity::Info,
            text: "hello".to_owned(),
        },
        &"anything".into(),
        T0,
    )
    .expect("alerts always apply");
    let err = f.apply(&Action::Scale { replicas: 1 }, &"x".into(), T0);
    assert!(matches!(
        err,
        Err(FleetError::UnknownTarget {
            expected: TargetKind::Service,
            ..
        })
    ));
}

#[test]
fn quarantine_is_remembered_per_producer_and_topic() {
    let mut f = routed();
    assert!(!f.is_quarantined("p1"));
    for scope in [
        QuarantineScope::Producer("p1".to_owned()),
        QuarantineScope::Topic("orders".to_owned()),
    ] {
        f.apply(
            &Action::Quarantine {
                scope,
                reason: "card number in payload.card".to_owned(),
            },
            &"orders".into(),
            T0,
        )
        .expect("quarantine");
    }
    assert!(f.is_quarantined("p1") && !f.is_quarantined("p2"));
    assert!(f.is_topic_quarantined("orders") && !f.is_topic_quarantined("p1"));
}

#[test]
fn faults_check_their_names_and_values() {
    let mut f = routed();
    const CASES: &[(&str, &str)] = &[
        (
            "slowdown of a stranger",
            "no service or route `nope` in the fleet",
        ),
        (
            "slowdown below 1",
            "`pay-eu`: expected a slowdown factor in 1.0.., found `0.5`",
        ),
        (
            "error rate above 1",
            "`pay-eu`: expected an error rate in 0.0..=1.0, found `2`",
        ),
        (
            "unknown region",
            "no region `mars` in the fleet (regions: `eu`, `us`)",
        ),
        (
            "load on a stranger",
            "no service or route `nope` in the fleet",
        ),
        (
            "negative load",
            "`pay`: expected a load in req/s in 0.0.., found `-1`",
        ),
        ("zero step", "expected a step longer than zero, found `0s`"),
    ];
    let results = [
        f.set_slowdown("nope", 2.0),
        f.set_slowdown("pay-eu", 0.5),
        f.set_error_rate("pay-eu", 2.0),
        f.set_region_down("mars", true),
        f.step(at(1.0), SECOND, &load(&[("nope", 1.0)])),
        f.step(at(1.0), SECOND, &load(&[("pay", -1.0)])),
        f.step(at(1.0), Duration::ZERO, &load(&[])),
    ];
    for (&(name, message), result) in CASES.iter().zip(results) {
        let err = result.expect_err(name);
        assert_eq!(err.to_string(), message, "{name}");
    }
    assert_eq!(f.now(), None, "no step happened");
}

#[test]
fn injected_errors_and_a_region_down_fail_work_and_reach_callers() {
    let mut f = routed();
    let offered = load(&[("checkout", 100.0)]);
    f.set_error_rate("pay-eu", 0.5).expect("fault");
    run(&mut f, 0, 5, &offered);
    let deps = metrics_of(&f, "checkout").dependencies;
    assert!(close(deps[0].error_rate, 0.5, 1e-9), "{deps:?}");
    // Two calls per request, one on each backend; no retries: 1 − 0.5 of them succeed.
    assert!(close(metrics_of(&f, "checkout").error_rate, 0.5, 1e-9));

    f.clear_faults();
    f.set_region_down("us", true).expect("fault");
    run(&mut f, 5, 10, &offered);
    let us = snap(&f, "pay-us");
    assert!(us.is_down && us.is_breaching);
    assert_eq!(us.error_rate, 1.0);
    assert_eq!(metrics_of(&f, "checkout").error_rate, 1.0);
    assert!(f.breaching().contains(&"pay-us".to_owned()));

    f.set_region_down("us", false).expect("fault");
    run(&mut f, 10, 12, &offered);
    assert!(f.breaching().is_empty(), "{:?}", f.breaching());
    assert!(metrics_of(&f, "checkout").error_rate < 1e-9);
}

#[test]
fn metrics_are_sorted_and_decode_as_valid_telemetry() {
    let mut f = routed();
    run(&mut f, 0, 3, &load(&[("checkout", 100.0)]));
    let ms = f.metrics(at(3.0));
    let names: Vec<&str> = ms.iter().map(|m| m.service.as_str()).collect();
    assert_eq!(names, ["checkout", "pay-eu", "pay-us"]);
    let decoder = Decoder::new(DecodeLimits::default());
    for m in ms {
        let t = Telemetry::Metrics(m.clone());
        // Equal up to float parsing (serde_json may round the last digit differently).
        let back = decoder
            .decode(&encode(&t), at(3.0))
            .expect("valid telemetry");
        assert_eq!(back.key(), m.service);
    }
}

#[test]
fn same_seed_same_inputs_give_identical_figures() {
    let script = |seed: u64| {
        let mut f = Fleet::try_new(
            &FleetSpec {
                services: shop(),
                routes: BTreeMap::new(),
            },
            seed,
        )
        .expect("valid spec");
        let mut out = Vec::new();
        for s in 1..=60u32 {
            if s == 20 {
                f.set_slowdown("payments", 10.0).expect("fault");
            }
            if s == 40 {
                f.apply(
                    &Action::Scale { replicas: 12 },
                    &"payments".into(),
                    at(40.0),
                )
                .expect("scale");
            }
            let external = load(&[("web", 250.0 + f64::from(s % 7) * 10.0)]);
            f.step(at(f64::from(s)), SECOND, &external).expect("step");
            out.push(f.metrics(at(f64::from(s))));
        }
        (out, f.snapshot())
    };
    assert_eq!(script(42), script(42));
    assert_ne!(script(42).0, script(43).0, "the seed drives the noise");
}

#[test]
fn spec_problems_name_the_service_and_are_all_reported() {
    struct Case {
        name: &'static str,
        edit: fn(&mut FleetSpec),
        problems: &'static [&'static str],
    }
    fn base() -> FleetSpec {
        let mut a = service("a", 100.0, 10.0, 2);
        a.dependencies = vec![calls("b", 1.0, 100.0)];
        let mut b = service("b", 100.0, 10.0, 2);
        b.dependencies = vec![calls("c", 1.0, 100.0)];
        FleetSpec {
            services: vec![a, b, service("c", 100.0, 10.0, 2)],
            routes: BTreeMap::new(),
        }
    }
    let cases = [
        Case {
            name: "valid",
            edit: |_| {},
            problems: &[],
        },
        Case {
            name: "unknown dependency",
            edit: |s| s.services[1].dependencies[0].service = "d".to_owned(),
            problems: &["services `b`: dependencies[0].service: expected a service or route of the fleet, found `d`"],
        },
        Case {
            name: "cycle",
            edit: |s| s.services[2].dependencies = vec![calls("a", 1.0, 100.0)],
            problems: &["dependencies: expected no cycles, found `a` → `b` → `c` → `a`"],
        },
        Case {
            name: "self call",
            edit: |s| s.services[2].dependencies = vec![calls("c", 1.0, 100.0)],
            problems: &["services `c`: dependencies: expected other services, found `c` itself"],
        },
        Case {
            name: "zero capacity",
            edit: |s| s.services[0].capacity_per_replica = 0.0,
            problems: &["services `a`: capacity_per_replica: expected a number above 0, found `0`"],
        },
        Case {
            name: "several at once",
            edit: |s| {
                s.services[1].base_latency_ms = f64::NAN;
                s.services[1].dependencies[0].timeout_ms = -1.0;
                s.services[2].retry_attempts = Some(0);
                s.services[2].initial_replicas = 0;
                s.services.push(service("a", 1.0, 1.0, 1));
            },
            problems: &[
                "`a`: expected each service and route name once, found it again",
                "services `b`: base_latency_ms: expected a number above 0, found `NaN`",
                "services `b`: dependencies[0].timeout_ms: expected a number above 0, found `-1`",
                "services `c`: retry_attempts: expected an integer in 1..=10, found `0`",
                "services `c`: initial_replicas: expected at least min_replicas (1), found `0`",
            ],
        },
        Case {
            name: "routes",
            edit: |s| {
                s.routes.insert("r".to_owned(), vec!["c".to_owned(), "x".to_owned()]);
                s.routes.insert("empty".to_owned(), Vec::new());
                s.routes.insert("b".to_owned(), vec!["c".to_owned()]);
                s.services[0].dependencies.push(calls("r", 1.0, 100.0));
                s.services[1].dependencies.push(calls("r", 1.0, 100.0));
            },
            problems: &[
                "`b`: expected each service and route name once, found it again",
                "routes `empty`: expected at least one backend, found none",
                "routes `r`: expected services as backends, found `x`",
                "services `b`: dependencies: expected each backend once, found `c` twice (directly or through a route)",
            ],
        },
        Case {
            name: "no services",
            edit: |s| s.services.clear(),
            problems: &["services: expected at least one service, found none"],
        },
    ];
    for case in cases {
        let mut spec = base();
        (case.edit)(&mut spec);
        let got: Vec<String> = match Fleet::try_new(&spec, 0) {
            Ok(_) => Vec::new(),
            Err(FleetError::InvalidSpec { problems }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(other) => panic!("{}: unexpected error {other}", case.name),
        };
        assert_eq!(got, case.problems, "{}", case.name);
    }
}

#[test]
fn spec_reads_from_json_and_refuses_unknown_fields() {
    let json = r#"{
        "services": [{
            "name": "api", "region": "eu", "capacity_per_replica": 100, "base_latency_ms": 20,
            "initial_replicas": 2, "cold_start_s": 30, "cost_per_replica_hour": 0.1,
            "slo_p99_ms": 250, "max_queue": 500,
            "dependencies": [{"service": "db", "calls_per_request": 2, "timeout_ms": 100}]
        }, {
            "name": "db", "region": "eu", "capacity_per_replica": 300, "base_latency_ms": 5,
            "initial_replicas": 1, "cold_start_s": 120, "cost_per_replica_hour": 0.4,
            "slo_p99_ms": 50, "max_queue": 0, "retry_attempts": 2
        }]
    }"#;
    let spec: FleetSpec = serde_json::from_str(json).expect("valid json");
    assert!(Fleet::try_new(&spec, 0).is_ok());
    let typo = json.replace("\"max_queue\": 500", "\"max_queue\": 500, \"replicas\": 2");
    let err = serde_json::from_str::<FleetSpec>(&typo).expect_err("unknown field");
    assert!(
        err.to_string().contains("unknown field `replicas`"),
        "{err}"
    );
}

fn poll_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the fleet actuator never waits"),
    }
}

fn decision(target: &str, action: Option<Action>) -> Decision {
    Decision {
        id: format!("d-{target}"),
        at: at(3.0),
        target: target.into(),
        agent: "scaler".to_owned(),
        action,
        proposals: Vec::new(),
        outcome: Outcome::Enacted,
        reasons: Vec::new(),
        policy_revision: "r1".to_owned(),
        trace_id: None,
    }
}

#[test]
fn actuator_queues_actions_for_the_driver_to_apply() {
    let queue = ActionQueue::new();
    let mut actuator = FleetActuator::new(queue.clone());
    assert_eq!(actuator.name(), "fleet");
    for d in [
        decision("pay-eu", Some(Action::Scale { replicas: 4 })),
        decision("pay-eu", None),
        decision("nope", Some(Action::Scale { replicas: 4 })),
    ] {
        poll_ready(actuator.apply(&d)).expect("queued");
    }
    assert_eq!(queue.len(), 2, "decisions without an action are skipped");

    let mut f = routed();
    let refused = f.apply_queued(&queue, at(3.0));
    assert!(queue.is_empty());
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0.target.as_str(), "nope");
    assert_eq!(refused[0].0.at, at(3.0));
    assert_eq!(snap(&f, "pay-eu").ready_replicas, 4);
}

/// One thing the driver might do between steps.
#[derive(Debug, Clone)]
enum Op {
    Step { dt_ms: u64, web: f64, pay: f64 },
    Scale { service: usize, replicas: u32 },
    Shed { service: usize, fraction: f64 },
    Breaker { service: usize, state: u8 },
    Route { eu: f64, us: f64 },
    Slowdown { service: usize, factor: f64 },
    Errors { service: usize, rate: f64 },
    RegionDown { us: bool },
}

const NAMES: [&str; 6] = ["orders", "pay-eu", "pay-us", "payments", "web", "ghost"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..5000, 0.0..2000.0f64, 0.0..500.0f64)
            .prop_map(|(dt_ms, web, pay)| Op::Step { dt_ms, web, pay }),
        1 => (0..6usize, 0u32..40).prop_map(|(service, replicas)| Op::Scale { service, replicas }),
        1 => (0..6usize, 0.0..=1.0f64).prop_map(|(service, fraction)| Op::Shed { service, fraction }),
        1 => (0..6usize, 0u8..3).prop_map(|(service, state)| Op::Breaker { service, state }),
        1 => (0.0..3.0f64, 0.0..3.0f64).prop_map(|(eu, us)| Op::Route { eu, us }),
        1 => (0..6usize, 1.0..30.0f64).prop_map(|(service, factor)| Op::Slowdown { service, factor }),
        1 => (0..6usize, 0.0..=1.0f64).prop_map(|(service, rate)| Op::Errors { service, rate }),
        1 => any::<bool>().prop_map(|us| Op::RegionDown { us }),
    ]
}

/// The shop, with payments also reachable through a route, retries everywhere, bounded
/// queues and worker pools, so every mechanism is exercised.
fn busy_fleet() -> Fleet {
    let mut specs = shop();
    specs[0].retry_attempts = Some(2);
    specs[0].dependencies.push(calls("pay", 0.5, 800.0));
    specs[1].max_in_flight_per_replica = Some(4);
    specs[1].max_queue = 500;
    specs[1].cold_start_s = 7.5;
    let mut eu = service("pay-eu", 50.0, 15.0, 3);
    eu.max_queue = 100;
    let mut us = service("pay-us", 50.0, 25.0, 3);
    us.region = "us".to_owned();
    us.max_queue = 0;
    us.cold_start_s = 2.0;
    specs.extend([eu, us]);
    Fleet::try_new(
        &FleetSpec {
            services: specs,
            routes: BTreeMap::from([(
                "pay".to_owned(),
                vec!["pay-eu".to_owned(), "pay-us".to_owned()],
            )]),
        },
        3,
    )
    .expect("valid spec")
}

fn play(f: &mut Fleet, ops: &[Op]) -> Vec<Vec<ServiceMetrics>> {
    let mut now = T0;
    let mut out = Vec::new();
    for op in ops {
        // Refusals (unknown `ghost`, bad weights) are part of what is tested: no panic,
        // and no effect.
        let _ = match *op {
            Op::Step { dt_ms, web, pay } => {
                let dt = Duration::from_millis(dt_ms);
                now = now.plus(dt);
                let r = f.step(now, dt, &load(&[("web", web), ("pay", pay)]));
                out.push(f.metrics(now));
                r
            }
            Op::Scale { service, replicas } => {
                f.apply(&Action::Scale { replicas }, &NAMES[service].into(), now)
            }
            Op::Shed { service, fraction } => f.apply(
                &Action::Shed {
                    fraction: Fraction::saturating(fraction),
                },
                &NAMES[service].into(),
                now,
            ),
            Op::Breaker { service, state } => {
                let state = [
                    BreakerState::Closed,
                    BreakerState::HalfOpen,
                    BreakerState::Open,
                ][usize::from(state)];
                f.apply(&Action::Breaker { state }, &NAMES[service].into(), now)
            }
            Op::Route { eu, us } => f.apply(
                &Action::Route {
                    weights: BTreeMap::from([("pay-eu".to_owned(), eu), ("pay-us".to_owned(), us)]),
                },
                &"pay".into(),
                now,
            ),
            Op::Slowdown { service, factor } => f.set_slowdown(NAMES[service], factor),
            Op::Errors { service, rate } => f.set_error_rate(NAMES[service], rate),
            Op::RegionDown { us } => f.set_region_down("us", us),
        };
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_request_is_accounted_for(ops in prop::collection::vec(op(), 1..80)) {
        let mut f = busy_fleet();
        let metrics = play(&mut f, &ops);
        for s in f.snapshot() {
            let l = s.ledger;
            let out = l.served + l.failed + l.shed + l.overflowed + s.backlog;
            prop_assert!(
                (l.arrived - out).abs() <= 1e-9 * l.arrived.max(1.0),
                "{}: arrived {} but accounted {} ({:?}, backlog {})",
                s.service, l.arrived, out, l, s.backlog
            );
            prop_assert!(l.served >= 0.0 && l.failed >= 0.0 && s.backlog >= 0.0);
            prop_assert!(s.utilization.is_finite() && s.cost.is_finite());
        }
        let decoder = Decoder::new(DecodeLimits::default());
        for m in metrics.into_iter().flatten() {
            let t = Telemetry::Metrics(m.clone());
            prop_assert!(decoder.decode(&encode(&t), m.ts).is_ok(), "invalid telemetry {m:?}");
        }
    }

    #[test]
    fn replaying_the_same_inputs_gives_the_same_metrics(
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let (mut a, mut b) = (busy_fleet(), busy_fleet());
        prop_assert_eq!(play(&mut a, &ops), play(&mut b, &ops));
        prop_assert_eq!(a.snapshot(), b.snapshot());
    }
}
