//! The HPA rule's pieces, case by case.

use super::*;
use serde_json::json;

fn at(s: i64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

fn config(settings: serde_json::Value) -> ScalerConfig {
    ScalerConfig::from_settings(&settings).expect("valid settings")
}

struct DesiredCase {
    name: &'static str,
    metric: Metric,
    value: f64,
    target: f64,
    current: u32,
    want: u32,
}

const DESIRED: &[DesiredCase] = &[
    DesiredCase {
        name: "cpu_within_tolerance_up",
        metric: Metric::Cpu,
        value: 0.77,
        target: 0.7,
        current: 4,
        want: 4,
    },
    DesiredCase {
        name: "cpu_within_tolerance_down",
        metric: Metric::Cpu,
        value: 0.63,
        target: 0.7,
        current: 4,
        want: 4,
    },
    DesiredCase {
        name: "cpu_0_9_of_0_7_at_4",
        metric: Metric::Cpu,
        value: 0.9,
        target: 0.7,
        current: 4,
        want: 6,
    },
    DesiredCase {
        name: "cpu_exact_double_is_not_rounded_past",
        metric: Metric::Cpu,
        value: 1.4,
        target: 0.7,
        current: 4,
        want: 8,
    },
    DesiredCase {
        name: "cpu_low_scales_down",
        metric: Metric::Cpu,
        value: 0.2,
        target: 0.7,
        current: 10,
        want: 3,
    },
    DesiredCase {
        name: "latency_double_target",
        metric: Metric::LatencyP99Ms,
        value: 400.0,
        target: 200.0,
        current: 3,
        want: 6,
    },
    DesiredCase {
        name: "backlog_like_keda",
        metric: Metric::Backlog,
        value: 95.0,
        target: 10.0,
        current: 2,
        want: 10,
    },
    DesiredCase {
        name: "backlog_within_tolerance",
        metric: Metric::Backlog,
        value: 21.0,
        target: 10.0,
        current: 2,
        want: 2,
    },
    DesiredCase {
        name: "backlog_on_zero_replicas_activates",
        metric: Metric::Backlog,
        value: 5.0,
        target: 10.0,
        current: 0,
        want: 1,
    },
    DesiredCase {
        name: "no_backlog_on_zero_replicas",
        metric: Metric::Backlog,
        value: 0.0,
        target: 10.0,
        current: 0,
        want: 0,
    },
    DesiredCase {
        name: "rate_in_per_replica",
        metric: Metric::RateIn,
        value: 1000.0,
        target: 150.0,
        current: 4,
        want: 7,
    },
];

#[test]
fn metric_recommendation_follows_hpa() {
    for c in DESIRED {
        let got = metric_recommendation(c.metric, c.value, c.target, c.current, 0.1);
        assert_eq!(got.replicas, c.want, "case {}", c.name);
    }
}

struct LimitCase {
    name: &'static str,
    settings: serde_json::Value,
    current: u32,
    /// (seconds, replicas added; negative for removed)
    events: &'static [(i64, i64)],
    now: i64,
    up: i64,
    down: i64,
}

fn limit_cases() -> Vec<LimitCase> {
    vec![
        LimitCase {
            name: "default_up_small",
            settings: json!({}),
            current: 2,
            events: &[],
            now: 100,
            up: 6,
            down: 0,
        },
        LimitCase {
            name: "default_up_large",
            settings: json!({}),
            current: 10,
            events: &[],
            now: 100,
            up: 20,
            down: 0,
        },
        LimitCase {
            name: "budget_used_this_period",
            settings: json!({}),
            current: 6,
            events: &[(90, 4)],
            now: 100,
            up: 6,
            down: 0,
        },
        LimitCase {
            name: "event_at_period_start_no_longer_counts",
            settings: json!({}),
            current: 6,
            events: &[(85, 4)],
            now: 100,
            up: 12,
            down: 0,
        },
        LimitCase {
            name: "select_min",
            settings: json!({"behavior": {
                "scale_up": {"select_policy": "min"},
                "scale_down": {"select_policy": "min", "policies": [
                    {"type": "percent", "value": 50, "period": "1m"},
                    {"type": "pods", "value": 1, "period": "1m"}
                ]}
            }}),
            current: 10,
            events: &[],
            now: 100,
            up: 14,
            down: 9,
        },
        LimitCase {
            name: "select_max_down",
            settings: json!({"behavior": {"scale_down": {"policies": [
                {"type": "percent", "value": 50, "period": "1m"},
                {"type": "pods", "value": 1, "period": "1m"}
            ]}}}),
            current: 9,
            events: &[],
            now: 100,
            up: 18,
            down: 4,
        },
        LimitCase {
            name: "down_period_counts_earlier_removals",
            settings: json!({"behavior": {"scale_down": {"policies": [
                {"type": "pods", "value": 3, "period": "1m"}
            ]}}}),
            current: 8,
            events: &[(70, -2)],
            now: 100,
            up: 16,
            down: 7,
        },
        LimitCase {
            name: "disabled",
            settings: json!({"behavior": {
                "scale_up": {"select_policy": "disabled"},
                "scale_down": {"select_policy": "disabled"}
            }}),
            current: 5,
            events: &[],
            now: 100,
            up: 5,
            down: 5,
        },
    ]
}

#[test]
fn rate_limits_start_from_the_period_start() {
    for c in limit_cases() {
        let cfg = config(c.settings.clone());
        let ups: Vec<Timed> = c
            .events
            .iter()
            .filter(|e| e.1 > 0)
            .map(|&(s, n)| Timed {
                at: at(s),
                replicas: n.unsigned_abs() as u32,
            })
            .collect();
        let downs: Vec<Timed> = c
            .events
            .iter()
            .filter(|e| e.1 < 0)
            .map(|&(s, n)| Timed {
                at: at(s),
                replicas: n.unsigned_abs() as u32,
            })
            .collect();
        let up = scale_up_limit(c.current, &ups, &downs, cfg.scale_up(), at(c.now));
        let down = scale_down_limit(c.current, &ups, &downs, cfg.scale_down(), at(c.now));
        assert_eq!((up, down), (c.up, c.down), "case {}", c.name);
    }
}

#[test]
fn stabilization_keeps_the_highest_recent_recommendation_for_scale_down() {
    let cfg = config(json!({}));
    let mut history = None;
    // First evaluation seeds the window with the current count (10).
    assert_eq!(
        stabilize(&mut history, at(0), 4, 10, cfg.scale_up(), cfg.scale_down()),
        10
    );
    assert_eq!(
        stabilize(
            &mut history,
            at(150),
            6,
            10,
            cfg.scale_up(),
            cfg.scale_down()
        ),
        10
    );
    // 300 s after the seed, it leaves the window: the highest left is 6 (t = 150).
    assert_eq!(
        stabilize(
            &mut history,
            at(300),
            5,
            10,
            cfg.scale_up(),
            cfg.scale_down()
        ),
        6
    );
    assert_eq!(
        stabilize(
            &mut history,
            at(451),
            5,
            10,
            cfg.scale_up(),
            cfg.scale_down()
        ),
        5
    );
    // A scale-up is not delayed (0 s scale-up window).
    assert_eq!(
        stabilize(
            &mut history,
            at(452),
            12,
            10,
            cfg.scale_up(),
            cfg.scale_down()
        ),
        12
    );
}

#[test]
fn scale_up_stabilization_keeps_the_lowest_recent_recommendation() {
    let cfg = config(json!({"behavior": {"scale_up": {"stabilization": "60s"}}}));
    let mut history = None;
    assert_eq!(
        stabilize(&mut history, at(0), 5, 5, cfg.scale_up(), cfg.scale_down()),
        5
    );
    assert_eq!(
        stabilize(&mut history, at(15), 9, 5, cfg.scale_up(), cfg.scale_down()),
        5
    );
    assert_eq!(
        stabilize(&mut history, at(60), 9, 5, cfg.scale_up(), cfg.scale_down()),
        9
    );
}

#[test]
fn confidence_grows_away_from_the_tolerance_band() {
    let cases = [
        (1.1, 0.5),
        (1.15, 0.75),
        (1.2, 1.0),
        (0.5, 1.0),
        (f64::INFINITY, 1.0),
    ];
    for (ratio, want) in cases {
        let got = confidence(ratio, 0.1).get();
        assert!((got - want).abs() < 1e-9, "ratio {ratio}: {got} != {want}");
    }
    assert_eq!(confidence(1.01, 0.0), Confidence::ONE);
}
