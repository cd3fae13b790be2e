//! The breaker agent end to end: telemetry in, proposals out, one named case per row.

use std::sync::Arc;

use conclave_runtime::telemetry::{Dependency, ServiceMetrics, Telemetry};
use conclave_runtime::{factor, Agent, Proposal, Proposals, Timestamp};
use serde_json::json;

use super::*;

const POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: breaker-test, revision: t1}
spec:
  targets:
    - {name: checkout, kind: service}
    - {name: payments, kind: service}
    - {name: search, kind: service}
  agents:
    breaker: {mode: enforce, targets: {names: [checkout, payments]}}
"#;

fn agent(settings: serde_json::Value) -> BreakerAgent {
    let policy = conclave_runtime::policy::compile_str(
        "test.yaml",
        POLICY,
        &["breaker", "compliance", "router", "scaler"],
    )
    .expect("test policy compiles");
    let config = BreakerConfig::from_settings(&settings).expect("test settings are valid");
    BreakerAgent::new(config, Scope::new(Arc::new(policy), NAME))
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + s * 1000)
}

/// A healthy sample: 10 calls/s in and out, fast, no errors, no backlog.
fn m(service: &str, s: i64) -> ServiceMetrics {
    ServiceMetrics {
        schema_version: 1,
        service: service.into(),
        ts: t(s),
        rate_in: 10.0,
        rate_out: 10.0,
        backlog: 0,
        latency_p50_ms: 10.0,
        latency_p99_ms: 20.0,
        error_rate: 0.0,
        cpu: 0.5,
        replicas: 2,
        region: None,
        dependencies: Vec::new(),
    }
}

fn with(mut sample: ServiceMetrics, edit: impl FnOnce(&mut ServiceMetrics)) -> ServiceMetrics {
    edit(&mut sample);
    sample
}

/// Sets arrivals and completions to `rate` per second.
fn set_rate(x: &mut ServiceMetrics, rate: f64) {
    x.rate_in = rate;
    x.rate_out = rate;
}

fn failing(service: &str, s: i64, error_rate: f64) -> ServiceMetrics {
    with(m(service, s), |x| x.error_rate = error_rate)
}

/// One step of a scenario: a message, or a tick at a second.
enum Step {
    See(ServiceMetrics),
    Tick(i64),
}
use Step::{See, Tick};

/// Runs `steps` and renders each proposal as `t=<s> <target> <action>`.
fn run(agent: &mut BreakerAgent, steps: Vec<Step>) -> Vec<String> {
    run_full(agent, steps)
        .iter()
        .map(|p| {
            let s = (p.at.as_millis() - t(0).as_millis()) / 1000;
            format!("t={s} {} {}", p.target, p.action)
        })
        .collect()
}

fn run_full(agent: &mut BreakerAgent, steps: Vec<Step>) -> Vec<Proposal> {
    let mut out = Proposals::new(NAME);
    let mut all = Vec::new();
    for step in steps {
        match step {
            See(sample) => agent.observe(&Telemetry::Metrics(sample), &mut out),
            Tick(s) => agent.tick(t(s), &mut out),
        }
        all.extend(out.take());
    }
    all
}

struct Case {
    name: &'static str,
    settings: serde_json::Value,
    steps: Vec<Step>,
    want: &'static [&'static str],
}

fn check(cases: Vec<Case>) {
    for case in cases {
        let got = run(&mut agent(case.settings), case.steps);
        assert_eq!(got, case.want, "case `{}`", case.name);
    }
}

#[test]
fn closed_breaker_opens_on_failure_or_slow_rate_with_enough_calls() {
    check(vec![
        Case {
            name: "50% failures over 100 calls opens",
            settings: json!(null),
            steps: vec![
                See(failing("payments", 0, 0.5)),
                See(failing("payments", 10, 0.5)),
                Tick(10),
            ],
            want: &["t=10 payments open the breaker"],
        },
        Case {
            name: "49% failures stays closed",
            settings: json!(null),
            steps: vec![
                See(failing("payments", 0, 0.49)),
                See(failing("payments", 10, 0.49)),
                Tick(10),
            ],
            want: &[],
        },
        Case {
            name: "99 calls are below the minimum",
            settings: json!(null),
            steps: vec![
                See(failing("payments", 0, 1.0)),
                See(with(failing("payments", 10, 1.0), |x| set_rate(x, 9.9))),
                Tick(10),
            ],
            want: &[],
        },
        Case {
            name: "the first sample only starts the clock",
            settings: json!({"minimum_number_of_calls": 1}),
            steps: vec![See(failing("payments", 10, 1.0)), Tick(10)],
            want: &[],
        },
        Case {
            name: "lowered minimum opens sooner",
            settings: json!({"minimum_number_of_calls": 20}),
            steps: vec![
                See(failing("payments", 0, 0.6)),
                See(failing("payments", 2, 0.6)),
                Tick(2),
            ],
            want: &["t=2 payments open the breaker"],
        },
        Case {
            name: "failures older than the window are forgotten",
            settings: json!(null),
            steps: vec![
                See(failing("payments", 0, 1.0)),
                See(failing("payments", 10, 1.0)),
                See(m("payments", 20)),
                See(m("payments", 80)),
                Tick(80),
            ],
            want: &[],
        },
        Case {
            name: "slow calls open at a lowered slow-call threshold",
            settings: json!({"slow_call_rate_threshold": 50, "slow_call_duration": "2s"}),
            steps: vec![
                See(m("payments", 0)),
                See(with(m("payments", 10), |x| {
                    x.latency_p50_ms = 3000.0;
                    x.latency_p99_ms = 6000.0;
                })),
                Tick(10),
            ],
            want: &["t=10 payments open the breaker"],
        },
        Case {
            name: "slow calls under the default 100% threshold stay closed",
            settings: json!({"slow_call_duration": "2s"}),
            steps: vec![
                See(m("payments", 0)),
                See(with(m("payments", 10), |x| {
                    x.latency_p50_ms = 3000.0;
                    x.latency_p99_ms = 6000.0;
                })),
                Tick(10),
            ],
            want: &[],
        },
        Case {
            name: "a service outside the scope is ignored",
            settings: json!(null),
            steps: vec![
                See(failing("search", 0, 1.0)),
                See(failing("search", 10, 1.0)),
                Tick(10),
            ],
            want: &[],
        },
    ]);
}

fn caller(s: i64, calls_per_s: f64, error_rate: f64) -> ServiceMetrics {
    with(m("checkout", s), |x| {
        x.dependencies = vec![
            Dependency {
                service: "payments".into(),
                calls_per_s,
                error_rate,
                latency_p99_ms: 50.0,
            },
            Dependency {
                service: "search".into(),
                calls_per_s,
                error_rate,
                latency_p99_ms: 50.0,
            },
        ];
    })
}

#[test]
fn callers_view_is_preferred_over_the_service_own_view() {
    check(vec![
        Case {
            name: "callers see failures the service does not",
            settings: json!(null),
            steps: vec![
                See(m("payments", 0)),
                See(m("payments", 10)),
                See(caller(0, 10.0, 0.8)),
                See(caller(10, 10.0, 0.8)),
                Tick(10),
            ],
            want: &["t=10 payments open the breaker"],
        },
        Case {
            name: "callers see health where the service reports failures",
            settings: json!(null),
            steps: vec![
                See(failing("payments", 0, 0.9)),
                See(failing("payments", 10, 0.9)),
                See(caller(0, 10.0, 0.0)),
                See(caller(10, 10.0, 0.0)),
                Tick(10),
            ],
            want: &[],
        },
    ]);
    let got = run_full(
        &mut agent(json!(null)),
        vec![
            See(caller(0, 10.0, 0.8)),
            See(caller(10, 10.0, 0.8)),
            Tick(10),
        ],
    );
    assert_eq!(got.len(), 1, "only payments is in scope: {got:?}");
    assert_eq!(
        got[0].rationale,
        vec![
            factor("failure_rate_pct", 80.0),
            factor("slow_call_rate_pct", 0.0),
            factor("calls", 100.0),
            factor("failure_rate_threshold_pct", 50.0),
            factor("slow_call_rate_threshold_pct", 100.0),
            factor("callers_view", 1.0),
            factor("minimum_number_of_calls", 100.0),
        ]
    );
    assert_eq!(got[0].id, "breaker-payments-1800000010000");
}

/// Opens payments at t=10 (100 calls, 100 % failures), then no traffic while open.
fn opened() -> Vec<Step> {
    vec![
        See(failing("payments", 0, 1.0)),
        See(failing("payments", 10, 1.0)),
        Tick(10),
        See(with(m("payments", 20), |x| set_rate(x, 0.0))),
        Tick(25),
        See(with(m("payments", 60), |x| set_rate(x, 0.0))),
        Tick(69),
        See(with(m("payments", 70), |x| set_rate(x, 0.0))),
        Tick(70),
    ]
}

fn then(mut steps: Vec<Step>, more: Vec<Step>) -> Vec<Step> {
    steps.extend(more);
    steps
}

const OPENED: [&str; 2] = [
    "t=10 payments open the breaker",
    "t=70 payments half-open the breaker",
];

#[test]
fn open_breaker_goes_half_open_then_closes_or_reopens_on_probes() {
    check(vec![
        Case {
            name: "open waits 60s, then half-opens",
            settings: json!(null),
            steps: opened(),
            want: &OPENED,
        },
        Case {
            name: "shorter wait_in_open half-opens on the next tick after it",
            settings: json!({"wait_in_open": "10s"}),
            steps: then(opened(), vec![]),
            want: &[
                "t=10 payments open the breaker",
                "t=25 payments half-open the breaker",
            ],
        },
        Case {
            name: "healthy probes close",
            settings: json!(null),
            steps: then(
                opened(),
                vec![See(with(m("payments", 80), |x| set_rate(x, 1.0))), Tick(85)],
            ),
            want: &[OPENED[0], OPENED[1], "t=85 payments close the breaker"],
        },
        Case {
            name: "failing probes reopen",
            settings: json!(null),
            steps: then(
                opened(),
                vec![
                    See(with(failing("payments", 80, 0.5), |x| set_rate(x, 1.0))),
                    Tick(85),
                ],
            ),
            want: &[OPENED[0], OPENED[1], "t=85 payments open the breaker"],
        },
        Case {
            name: "fewer probes than permitted wait for more",
            settings: json!(null),
            steps: then(
                opened(),
                vec![
                    See(with(m("payments", 80), |x| set_rate(x, 0.5))),
                    Tick(85),
                    See(with(m("payments", 90), |x| set_rate(x, 0.5))),
                    Tick(100),
                ],
            ),
            want: &[OPENED[0], OPENED[1], "t=100 payments close the breaker"],
        },
        Case {
            name: "probes are judged since half-open began, across windows",
            settings: json!({"window": "10s"}),
            steps: then(
                opened(),
                vec![
                    See(with(m("payments", 80), |x| set_rate(x, 0.1))),
                    Tick(85),
                    See(with(failing("payments", 180, 1.0), |x| set_rate(x, 0.1))),
                    Tick(185),
                ],
            ),
            want: &[OPENED[0], OPENED[1], "t=185 payments open the breaker"],
        },
        Case {
            name: "after closing, earlier failures are not judged again",
            settings: json!({"minimum_number_of_calls": 10, "window": "120s"}),
            steps: then(
                opened(),
                vec![
                    See(with(m("payments", 80), |x| set_rate(x, 1.0))),
                    Tick(85),
                    Tick(100),
                ],
            ),
            want: &[OPENED[0], OPENED[1], "t=85 payments close the breaker"],
        },
    ]);
}

fn load(s: i64, rate_in: f64, rate_out: f64, backlog: u64, p99: f64) -> Step {
    See(with(m("checkout", s), |x| {
        x.rate_in = rate_in;
        x.rate_out = rate_out;
        x.backlog = backlog;
        x.latency_p99_ms = p99;
    }))
}

#[test]
fn shedding_starts_on_overload_and_stops_on_recovery() {
    let slo = json!({"shed": {"latency_p99_ms": 500}});
    check(vec![
        Case {
            name: "arrivals far above completions shed the gap, capped",
            settings: json!(null),
            steps: vec![
                load(0, 200.0, 100.0, 0, 20.0),
                load(10, 200.0, 100.0, 0, 20.0),
                Tick(10),
                load(20, 200.0, 100.0, 0, 20.0),
                Tick(20),
            ],
            want: &["t=20 checkout shed 50% of work"],
        },
        Case {
            name: "max_fraction caps the proposal",
            settings: json!({"shed": {"max_fraction": 0.3}}),
            steps: vec![
                load(0, 200.0, 100.0, 0, 20.0),
                load(10, 200.0, 100.0, 0, 20.0),
                load(20, 200.0, 100.0, 0, 20.0),
                Tick(20),
            ],
            want: &["t=20 checkout shed 30% of work"],
        },
        Case {
            name: "a gap within the margin is not overload",
            settings: json!(null),
            steps: vec![
                load(0, 109.0, 100.0, 0, 20.0),
                load(10, 109.0, 100.0, 0, 20.0),
                load(20, 109.0, 100.0, 0, 20.0),
                Tick(20),
            ],
            want: &[],
        },
        Case {
            name: "growing backlog above the latency SLO sheds the minimum",
            settings: slo.clone(),
            steps: vec![
                load(0, 100.0, 100.0, 10, 900.0),
                load(10, 100.0, 100.0, 20, 900.0),
                load(20, 100.0, 100.0, 30, 900.0),
                Tick(20),
            ],
            want: &["t=20 checkout shed 5% of work"],
        },
        Case {
            name: "growing backlog under the SLO is not overload",
            settings: slo.clone(),
            steps: vec![
                load(0, 100.0, 100.0, 10, 400.0),
                load(10, 100.0, 100.0, 20, 400.0),
                load(20, 100.0, 100.0, 30, 400.0),
                Tick(20),
            ],
            want: &[],
        },
        Case {
            name: "growing backlog without an SLO is not overload",
            settings: json!(null),
            steps: vec![
                load(0, 100.0, 100.0, 10, 900.0),
                load(10, 100.0, 100.0, 20, 900.0),
                load(20, 100.0, 100.0, 30, 900.0),
                Tick(20),
            ],
            want: &[],
        },
        Case {
            name: "shedding rises by 5 points or more, holds, then stops after recovery",
            settings: slo.clone(),
            steps: vec![
                load(0, 125.0, 100.0, 10, 900.0),
                load(10, 125.0, 100.0, 20, 900.0),
                load(20, 125.0, 100.0, 30, 900.0),
                Tick(20), // 20 %
                load(30, 120.0, 100.0, 40, 900.0),
                Tick(30), // 17 % wanted: no lowering while overloaded
                load(40, 130.0, 100.0, 50, 900.0),
                Tick(40), // 23 %: under 5 points more
                load(50, 200.0, 100.0, 60, 900.0),
                Tick(50), // 50 %
                load(60, 100.0, 100.0, 40, 300.0),
                Tick(60), // mixed samples: hold
                load(70, 100.0, 100.0, 20, 300.0),
                Tick(70),
                load(80, 100.0, 100.0, 0, 300.0),
                Tick(80), // three calm samples: stop
                Tick(90),
            ],
            want: &[
                "t=20 checkout shed 20% of work",
                "t=50 checkout shed 50% of work",
                "t=80 checkout shed 0% of work",
            ],
        },
        Case {
            name: "disabled shedding proposes nothing",
            settings: json!({"shed": {"enabled": false}}),
            steps: vec![
                load(0, 200.0, 100.0, 0, 20.0),
                load(10, 200.0, 100.0, 0, 20.0),
                load(20, 200.0, 100.0, 0, 20.0),
                Tick(20),
            ],
            want: &[],
        },
    ]);
}

#[test]
fn shed_rationale_names_the_load_figures() {
    let got = run_full(
        &mut agent(json!({"shed": {"latency_p99_ms": 500}})),
        vec![
            load(0, 200.0, 100.0, 10, 900.0),
            load(10, 200.0, 100.0, 20, 900.0),
            load(20, 200.0, 100.0, 40, 900.0),
            Tick(20),
        ],
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].rationale,
        vec![
            factor("rate_in", 200.0),
            factor("rate_out", 100.0),
            factor("rate_deficit", 0.5),
            factor("backlog", 40.0),
            factor("backlog_growth", 30.0),
            factor("latency_p99_ms", 900.0),
            factor("latency_p99_slo_ms", 500.0),
        ]
    );
}

#[test]
fn agent_wants_only_metrics() {
    use conclave_runtime::telemetry::TelemetryKind;
    let a = agent(json!(null));
    assert_eq!(a.name(), "breaker");
    assert!(a.wants(TelemetryKind::Metrics));
    assert!(!a.wants(TelemetryKind::Event));
    assert!(!a.wants(TelemetryKind::Health));
}
