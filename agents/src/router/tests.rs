//! The router agent end to end, plus the weight invariants as properties.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use conclave_runtime::telemetry::{ServiceMetrics, Telemetry, TelemetryKind, SCHEMA_VERSION};
use conclave_runtime::{Action, Agent, Proposal, Proposals, Timestamp};
use proptest::prelude::*;

use super::fallback::{route_weights, Outcome, Rules};
use super::features::BackendWindow;
use super::{RouterAgent, RouterConfig, NAME};
use crate::scope::Scope;

const BASE_MS: i64 = 1_800_000_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(BASE_MS + s * 1000)
}

/// Routes `web` (backends `web-eu`, `web-us`) and `hidden` (out of the router's scope),
/// 15 s windows; `extra` adds settings keys (a YAML flow-mapping body, may be empty).
fn policy_yaml(extra: &str) -> String {
    format!(
        r#"apiVersion: conclave/v1
kind: Policy
metadata: {{name: router-test}}
spec:
  targets:
    - {{name: web, kind: route}}
    - {{name: hidden, kind: route}}
  agents:
    router:
      mode: advise
      targets: {{names: [web]}}
      settings:
        {{routes: {{web: {{backends: [web-us, web-eu]}}, hidden: {{backends: [h-1, h-2]}}}}{extra}}}
  arbiter:
    window: 15s
"#
    )
}

struct Harness {
    agent: RouterAgent,
    out: Proposals,
}

impl Harness {
    fn new(extra: &str) -> Self {
        let policy = conclave_runtime::policy::compile_str(
            "router-test.yaml",
            &policy_yaml(extra),
            &crate::Catalog,
        )
        .expect("test policy compiles");
        let config =
            RouterConfig::from_settings(policy.agent(NAME).expect("router configured").settings())
                .expect("settings valid");
        Harness {
            agent: RouterAgent::new(config, Scope::new(Arc::new(policy), NAME)),
            out: Proposals::new(NAME),
        }
    }

    /// `service` reports at `s` seconds: p99 `latency`, `errors`, 100 requests/s on 2 replicas.
    fn report(&mut self, service: &str, s: i64, latency: f64, errors: f64) {
        self.report_with(service, s, |m| {
            m.latency_p99_ms = latency;
            m.error_rate = errors;
        });
    }

    fn report_with(&mut self, service: &str, s: i64, set: impl FnOnce(&mut ServiceMetrics)) {
        let mut m = metrics(service, s);
        set(&mut m);
        self.agent.observe(&Telemetry::Metrics(m), &mut self.out);
    }

    fn tick(&mut self, s: i64) -> Vec<Proposal> {
        self.agent.tick(t(s), &mut self.out);
        self.out.take()
    }

    /// The weights proposed for `web` at a tick at `s` seconds, if any.
    fn weights(&mut self, s: i64) -> Option<BTreeMap<String, f64>> {
        let props = self.tick(s);
        assert!(props.len() <= 1, "{props:?}");
        props.into_iter().next().map(|p| {
            assert_eq!(p.target.as_str(), "web");
            assert_eq!(p.at, t(s));
            match p.action {
                Action::Route { weights } => weights,
                other => panic!("unexpected action {other}"),
            }
        })
    }
}

fn metrics(service: &str, s: i64) -> ServiceMetrics {
    ServiceMetrics {
        schema_version: SCHEMA_VERSION,
        service: service.to_string(),
        ts: t(s),
        rate_in: 100.0,
        rate_out: 100.0,
        backlog: 0,
        latency_p50_ms: 20.0,
        latency_p99_ms: 100.0,
        error_rate: 0.0,
        cpu: 0.5,
        replicas: 2,
        region: None,
        dependencies: Vec::new(),
    }
}

fn w(eu: f64, us: f64) -> Option<BTreeMap<String, f64>> {
    Some(BTreeMap::from([
        ("web-eu".to_string(), eu),
        ("web-us".to_string(), us),
    ]))
}

#[test]
fn wants_only_metrics() {
    let h = Harness::new("");
    assert!(h.agent.wants(TelemetryKind::Metrics));
    assert!(!h.agent.wants(TelemetryKind::Event));
    assert!(!h.agent.wants(TelemetryKind::Health));
}

struct OneTickCase {
    name: &'static str,
    /// (latency p99 ms, error rate) of web-eu, then web-us.
    eu: (f64, f64),
    us: (f64, f64),
    want: Option<(f64, f64)>,
}

const ONE_TICK: &[OneTickCase] = &[
    OneTickCase {
        name: "equal",
        eu: (100.0, 0.0),
        us: (100.0, 0.0),
        want: Some((0.5, 0.5)),
    },
    OneTickCase {
        name: "faster_gets_more",
        eu: (50.0, 0.0),
        us: (200.0, 0.0),
        want: Some((0.8, 0.2)),
    },
    OneTickCase {
        name: "errors_cost_share",
        eu: (100.0, 0.0),
        us: (100.0, 0.25),
        want: Some((0.571, 0.429)),
    },
    OneTickCase {
        name: "floor_respected",
        eu: (10.0, 0.0),
        us: (1000.0, 0.0),
        want: Some((0.95, 0.05)),
    },
    OneTickCase {
        name: "unhealthy_gets_zero",
        eu: (10.0, 0.6),
        us: (1000.0, 0.0),
        want: Some((0.0, 1.0)),
    },
    OneTickCase {
        name: "all_unhealthy_proposes_nothing",
        eu: (10.0, 0.6),
        us: (10.0, 0.9),
        want: None,
    },
];

#[test]
fn one_tick_weights() {
    for c in ONE_TICK {
        let mut h = Harness::new("");
        h.report("web-eu", 10, c.eu.0, c.eu.1);
        h.report("web-us", 10, c.us.0, c.us.1);
        let want = c.want.and_then(|(eu, us)| w(eu, us));
        assert_eq!(h.weights(15), want, "case {}", c.name);
    }
}

#[test]
fn weights_converge_toward_the_faster_backend_in_steps_above_min_change() {
    let mut h = Harness::new("");
    h.report("web-eu", 0, 100.0, 0.0);
    h.report("web-us", 0, 100.0, 0.0);
    let mut proposed = vec![(0, h.weights(0))];
    // web-us slows to 300 ms; its EWMA climbs 160, 202, 231, 252, 266 ...
    for k in 1..=6 {
        let s = 15 * k;
        h.report("web-eu", s, 100.0, 0.0);
        h.report("web-us", s, 300.0, 0.0);
        if let Some(weights) = h.weights(s) {
            proposed.push((s, Some(weights)));
        }
    }
    assert_eq!(
        proposed,
        vec![
            (0, w(0.5, 0.5)),
            (15, w(0.615, 0.385)),
            (30, w(0.669, 0.331)),
            // 0.698 at 45 s and 0.716 at 60 s move less than 0.05 from 0.669.
            (75, w(0.727, 0.273)),
        ]
    );
}

#[test]
fn min_change_suppresses_jitter() {
    let mut h = Harness::new("");
    h.report("web-eu", 0, 100.0, 0.0);
    h.report("web-us", 0, 100.0, 0.0);
    assert_eq!(h.weights(0), w(0.5, 0.5));
    for k in 1..=20 {
        let jitter = if k % 2 == 0 { 10.0 } else { -10.0 };
        h.report("web-eu", 15 * k, 100.0 + jitter, 0.0);
        h.report("web-us", 15 * k, 100.0 - jitter, 0.01);
        assert_eq!(h.weights(15 * k), None, "at tick {k}");
    }
}

#[test]
fn all_unhealthy_keeps_the_last_weights() {
    let mut h = Harness::new(", alpha: 1.0");
    h.report("web-eu", 0, 100.0, 0.0);
    h.report("web-us", 0, 100.0, 0.0);
    assert_eq!(h.weights(0), w(0.5, 0.5));
    for k in 1..=4 {
        h.report("web-eu", 15 * k, 100.0, 0.8);
        h.report("web-us", 15 * k, 50.0, 0.7);
        assert_eq!(h.weights(15 * k), None, "at tick {k}");
    }
    // Recovery is compared with the last proposal, which still stands.
    h.report("web-eu", 75, 100.0, 0.0);
    h.report("web-us", 75, 100.0, 0.0);
    assert_eq!(h.weights(75), None);
}

#[test]
fn draining_a_floored_backend_is_proposed_even_below_min_change() {
    let mut h = Harness::new(", alpha: 1.0");
    h.report("web-eu", 0, 10.0, 0.0);
    h.report("web-us", 0, 1000.0, 0.0);
    assert_eq!(h.weights(0), w(0.95, 0.05));
    h.report("web-eu", 15, 10.0, 0.0);
    h.report("web-us", 15, 1000.0, 0.9);
    let props = h.tick(15);
    assert_eq!(props.len(), 1);
    assert_eq!(
        props[0].action,
        Action::Route {
            weights: w(1.0, 0.0).unwrap_or_default()
        }
    );
    let note = props[0]
        .rationale
        .iter()
        .find(|f| f.name == "web-us.error_rate_ewma")
        .and_then(|f| f.note.clone());
    assert_eq!(
        note.as_deref(),
        Some("above `unhealthy_error_rate`: weight 0")
    );
}

#[test]
fn rationale_lists_each_backends_ewmas_in_name_order() {
    let mut h = Harness::new("");
    h.report("web-eu", 10, 50.0, 0.01);
    h.report("web-us", 10, 200.0, 0.02);
    let props = h.tick(15);
    let names: Vec<&str> = props[0].rationale.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web-eu.latency_p99_ms_ewma",
            "web-eu.error_rate_ewma",
            "web-eu.load_per_replica_ewma",
            "web-us.latency_p99_ms_ewma",
            "web-us.error_rate_ewma",
            "web-us.load_per_replica_ewma",
        ]
    );
    assert_eq!(props[0].rationale[0].value, 50.0);
    assert_eq!(
        props[0].rationale[2].value, 50.0,
        "100 requests/s on 2 replicas"
    );
}

#[test]
fn busier_replicas_get_less_at_equal_latency() {
    let mut h = Harness::new("");
    h.report_with("web-eu", 10, |m| m.replicas = 4); // 25 requests/s per replica
    h.report_with("web-us", 10, |m| m.replicas = 1); // 100 requests/s per replica
                                                     // Relative loads 0.4 and 1.6: shares 1/1.4 : 1/2.6.
    assert_eq!(h.weights(15), w(0.65, 0.35));
}

#[test]
fn a_backend_without_replicas_gets_zero() {
    let mut h = Harness::new("");
    h.report("web-eu", 10, 100.0, 0.0);
    h.report_with("web-us", 10, |m| m.replicas = 0);
    assert_eq!(h.weights(15), w(1.0, 0.0));
}

#[test]
fn a_silent_backend_is_drained_after_stale_after() {
    let mut h = Harness::new("");
    h.report("web-eu", 0, 100.0, 0.0);
    h.report("web-us", 0, 100.0, 0.0);
    assert_eq!(h.weights(0), w(0.5, 0.5));
    for s in [15, 30, 45] {
        h.report("web-eu", s, 100.0, 0.0);
        assert_eq!(h.weights(s), None, "web-us last seen {s} s ago");
    }
    h.report("web-eu", 60, 100.0, 0.0);
    let props = h.tick(60);
    assert_eq!(
        props[0].action,
        Action::Route {
            weights: w(1.0, 0.0).unwrap_or_default()
        }
    );
    let silent = props[0]
        .rationale
        .iter()
        .find(|f| f.name == "web-us.silent_s")
        .map(|f| f.value);
    assert_eq!(silent, Some(60.0));
}

#[test]
fn a_route_waits_for_every_backend_until_stale_after() {
    let mut h = Harness::new(", stale_after: 30s");
    h.report("web-eu", 0, 100.0, 0.0);
    assert_eq!(h.weights(15), None);
    h.report("web-eu", 30, 100.0, 0.0);
    assert_eq!(h.weights(30), None);
    h.report("web-eu", 31, 100.0, 0.0);
    let props = h.tick(31);
    assert_eq!(
        props[0].action,
        Action::Route {
            weights: w(1.0, 0.0).unwrap_or_default()
        }
    );
    assert!(props[0]
        .rationale
        .iter()
        .any(|f| f.name == "web-us.reported" && f.value == 0.0));
}

#[test]
fn routes_outside_scope_and_unrelated_services_are_ignored() {
    let mut h = Harness::new("");
    h.report("h-1", 10, 10.0, 0.0);
    h.report("h-2", 10, 100.0, 0.0);
    h.report("checkout", 10, 100.0, 0.0);
    assert!(h.tick(15).is_empty());
}

#[test]
fn settings_errors_reach_policy_compilation_with_their_path() {
    let errors = conclave_runtime::policy::compile_str(
        "router-test.yaml",
        &policy_yaml(", floor: 2"),
        &crate::Catalog,
    )
    .expect_err("bad settings");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.contains("spec.agents.router.settings.floor")
                && e.contains("expected a number in 0.0..1.0, found `2`")),
        "{text:?}"
    );
}

fn window(s: i64, latency: f64, errors: f64, rate_in: f64, replicas: u32) -> BackendWindow {
    let mut m = metrics("x", s);
    m.latency_p99_ms = latency;
    m.error_rate = errors;
    m.rate_in = rate_in;
    m.replicas = replicas;
    BackendWindow::new(&m)
}

proptest! {
    /// Whatever the figures: thousandths sum to exactly 1000, every serving backend gets
    /// at least the floor, and unhealthy or replica-less backends get nothing.
    #[test]
    fn weights_sum_to_one_and_respect_floor_and_health(
        figures in prop::collection::vec(
            (0.0f64..5_000.0, 0.0f64..1.0, 0.0f64..10_000.0, 0u32..20),
            1..8,
        ),
        floor in 0.0f64..0.12,
    ) {
        let rules = Rules {
            floor,
            unhealthy_error_rate: 0.5,
            stale_after: Duration::from_secs(45),
        };
        let mut backends = BTreeSet::new();
        let mut windows = BTreeMap::new();
        for (i, (latency, errors, rate, replicas)) in figures.iter().enumerate() {
            let name = format!("b{i}");
            backends.insert(name.clone());
            windows.insert(name, window(0, *latency, *errors, *rate, *replicas));
        }
        let floor_units = (floor * 1000.0 - 1e-9).ceil() as u32;
        match route_weights(&backends, &windows, t(0), &rules) {
            Outcome::Weights { units, .. } => {
                prop_assert_eq!(units.values().sum::<u32>(), 1000);
                let serving = figures.iter().filter(|f| f.1 <= 0.5 && f.3 > 0).count();
                for (i, f) in figures.iter().enumerate() {
                    let u = units[&format!("b{i}")];
                    if f.1 > 0.5 || f.3 == 0 {
                        prop_assert_eq!(u, 0);
                    } else if floor_units * serving as u32 <= 1000 {
                        prop_assert!(u >= floor_units, "b{} got {} < {}", i, u, floor_units);
                    }
                }
            }
            Outcome::NoneServing => {
                prop_assert!(figures.iter().all(|f| f.1 > 0.5 || f.3 == 0));
            }
            Outcome::WarmingUp => prop_assert!(false, "every backend has reported"),
        }
    }
}
