use std::collections::BTreeMap;
use std::time::Duration;

use conclave_runtime::telemetry::{
    encode, Decoder, EventSample, Health, HealthStatus, ServiceMetrics, Telemetry,
};
use conclave_runtime::Timestamp;
use serde_json::json;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn specs(v: serde_json::Value) -> Vec<FaultSpec> {
    serde_json::from_value(v).expect("test specs deserialize")
}

fn schedule(v: serde_json::Value, seed: u64, horizon: Duration) -> FaultSchedule {
    FaultSchedule::compile(specs(v), Seed::new(seed), horizon, "faults").expect("valid specs")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn names(active: &[&ActiveFault]) -> Vec<String> {
    active.iter().map(|f| f.name.clone()).collect()
}

#[test]
fn scheduled_window_is_active_exactly_from_start_to_before_end() {
    let s = schedule(
        json!([{"fault": {"region_outage": {"region": "eu-west-1"}},
                "when": {"at": {"start_s": 600.0, "duration_s": 120.5}}}]),
        1,
        HOUR,
    );
    assert_eq!(s.faults().len(), 1);
    assert_eq!(s.faults()[0].name, "region_outage:eu-west-1");
    let cases = [
        ("before", 599_999, false),
        ("start", 600_000, true),
        ("inside", 700_000, true),
        ("last millisecond", 720_499, true),
        ("end", 720_500, false),
        ("after", 900_000, false),
    ];
    for (name, t, want) in cases {
        assert_eq!(!s.active_at(ms(t)).is_empty(), want, "case `{name}`");
    }
}

#[test]
fn transitions_over_consecutive_ticks_see_each_edge_once() {
    let s = schedule(
        json!([
            {"name": "b", "fault": {"error_burst": {"service": "pay", "extra_error_rate": 0.2}},
             "when": {"at": {"start_s": 10.0, "duration_s": 5.0}}},
            {"name": "a", "fault": {"dependency_slowdown": {"service": "pay", "factor": 3.0}},
             "when": {"at": {"start_s": 15.0, "duration_s": 5.0}}}
        ]),
        1,
        HOUR,
    );
    let mut seen = Vec::new();
    for tick in 0..30 {
        for tr in s.transitions(Duration::from_secs(tick), Duration::from_secs(tick + 1)) {
            seen.push((tr.at.as_secs(), tr.edge, tr.fault.name.clone()));
        }
    }
    let want = vec![
        (10, Edge::Start, "b".to_string()),
        (15, Edge::End, "b".to_string()),
        (15, Edge::Start, "a".to_string()),
        (20, Edge::End, "a".to_string()),
    ];
    assert_eq!(seen, want);
    assert_eq!(s.transitions(Duration::ZERO, HOUR).len(), 4);
    assert_eq!(names(&s.active_at(Duration::from_secs(15))), ["a"]);
}

fn random_specs() -> serde_json::Value {
    json!([{"name": "flaky-pay",
            "fault": {"error_burst": {"service": "pay", "extra_error_rate": 0.5}},
            "when": {"random": {"per_hour": 2.0, "duration_s": 300.0}}}])
}

fn windows_of(s: &FaultSchedule, name: &str) -> Vec<(Duration, Duration)> {
    s.faults()
        .iter()
        .filter(|f| f.name == name)
        .map(|f| (f.start, f.end))
        .collect()
}

#[test]
fn random_faults_are_deterministic_for_a_seed() {
    let horizon = 24 * HOUR;
    let a = schedule(random_specs(), 9, horizon);
    let b = schedule(random_specs(), 9, horizon);
    assert_eq!(a, b);
    assert_ne!(
        windows_of(&a, "flaky-pay"),
        windows_of(&schedule(random_specs(), 10, horizon), "flaky-pay")
    );
    // Adding another fault, before it in the list, leaves its windows alone.
    let mut more = specs(json!([{"name": "outage",
        "fault": {"region_outage": {"region": "us-east-1"}},
        "when": {"random": {"per_hour": 1.0, "duration_s": 60.0}}}]));
    more.extend(specs(random_specs()));
    let c = FaultSchedule::compile(more, Seed::new(9), horizon, "faults").expect("valid");
    assert_eq!(windows_of(&a, "flaky-pay"), windows_of(&c, "flaky-pay"));
    assert!(!windows_of(&c, "outage").is_empty());
}

#[test]
fn random_windows_do_not_overlap_and_follow_the_rate() {
    let horizon = 1000 * HOUR;
    let s = schedule(random_specs(), 3, horizon);
    let w = windows_of(&s, "flaky-pay");
    for pair in w.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlap: {pair:?}");
    }
    assert!(w
        .iter()
        .all(|(start, end)| *start < horizon && *end - *start == Duration::from_secs(300)));
    // Fault-free time is 1000 h less the windows: n ≈ 2 × (1000 − n × 5/60), so
    // n ≈ 1714; a Poisson count's sd is about 41.
    let n = w.len() as f64;
    assert!((n - 1714.0).abs() < 200.0, "{n} windows");
}

#[test]
fn fleet_effects_combine_active_faults_and_reset_the_rest() {
    let s = schedule(
        json!([
            {"name": "slow-1", "fault": {"dependency_slowdown": {"service": "pay", "factor": 2.0}},
             "when": {"at": {"start_s": 0.0, "duration_s": 100.0}}},
            {"name": "slow-2", "fault": {"dependency_slowdown": {"service": "pay", "factor": 3.0}},
             "when": {"at": {"start_s": 50.0, "duration_s": 100.0}}},
            {"name": "err-1", "fault": {"error_burst": {"service": "cart", "extra_error_rate": 0.5}},
             "when": {"at": {"start_s": 0.0, "duration_s": 100.0}}},
            {"name": "err-2", "fault": {"error_burst": {"service": "cart", "extra_error_rate": 0.5}},
             "when": {"at": {"start_s": 50.0, "duration_s": 100.0}}},
            {"fault": {"region_outage": {"region": "eu-west-1"}},
             "when": {"at": {"start_s": 50.0, "duration_s": 10.0}}},
            {"fault": {"model_fault": {"agent": "scaler", "mode": "timeout"}},
             "when": {"at": {"start_s": 0.0, "duration_s": 10.0}}}
        ]),
        1,
        HOUR,
    );
    let at = |t: u64| s.fleet_effects_at(Duration::from_secs(t));
    let fx = at(55);
    assert_eq!(fx.slowdowns().collect::<Vec<_>>(), [("pay", 6.0)]);
    assert_eq!(fx.extra_error_rates().collect::<Vec<_>>(), [("cart", 0.75)]);
    assert_eq!(fx.regions().collect::<Vec<_>>(), [("eu-west-1", true)]);
    let fx = at(120);
    assert_eq!(fx.slowdown("pay"), 3.0);
    assert_eq!(fx.extra_error_rate("cart"), 0.5);
    assert!(!fx.is_region_down("eu-west-1"));
    let fx = at(200);
    assert_eq!(fx.slowdowns().collect::<Vec<_>>(), [("pay", 1.0)], "reset");
    assert_eq!(fx.extra_error_rates().collect::<Vec<_>>(), [("cart", 0.0)]);
    assert_eq!(fx.regions().collect::<Vec<_>>(), [("eu-west-1", false)]);
    assert_eq!(fx.slowdown("other"), 1.0);
}

#[test]
fn every_spec_problem_is_reported_with_its_path() {
    let got = FaultSchedule::compile(
        specs(json!([
            {"fault": {"dependency_slowdown": {"service": "", "factor": 0.5}},
             "when": {"at": {"start_s": -1.0, "duration_s": 0.0}}},
            {"fault": {"error_burst": {"service": "pay", "extra_error_rate": 1.5}},
             "when": {"random": {"per_hour": 0.0, "duration_s": 10.0}}},
            {"name": "x", "fault": {"poison_telemetry": {"share": 0.0, "kinds": []}},
             "when": {"at": {"start_s": 0.0, "duration_s": 1.0}}},
            {"name": "x", "fault": {"schema_change": {"topic": "orders"}},
             "when": {"at": {"start_s": 0.0, "duration_s": 1.0}}},
            {"fault": {"schema_change": {"topic": "orders",
                "rename": {"a": "c", "b": "c", "d": "e"}, "add": {"e": 1}}},
             "when": {"at": {"start_s": 0.0, "duration_s": 1.0}}},
            {"fault": {"model_fault": {"agent": "scalr", "mode": "timeout"}},
             "when": {"at": {"start_s": 0.0, "duration_s": 1.0}}}
        ])),
        Seed::new(1),
        HOUR,
        "faults",
    )
    .expect_err("invalid specs");
    let got: Vec<String> = got.iter().map(ToString::to_string).collect();
    let want = [
        "faults[0].fault.dependency_slowdown.service: expected a service name, found an empty string",
        "faults[0].fault.dependency_slowdown.factor: expected a latency factor of at least 1, found `0.5`",
        "faults[0].when.at.start_s: expected a start of at least 0 seconds, found `-1`",
        "faults[0].when.at.duration_s: expected a duration of at least 0.001 seconds, found `0`",
        "faults[1].fault.error_burst.extra_error_rate: expected a share in (0, 1], found `1.5`",
        "faults[1].when.random.per_hour: expected a rate in (0, 3600] per hour, found `0`",
        "faults[2].fault.poison_telemetry.share: expected a share in (0, 1], found `0`",
        "faults[2].fault.poison_telemetry.kinds: expected at least one of `truncated_json`, `non_finite_number`, `wrong_type`, `unknown_schema_version`, `not_json`, found none",
        "faults[3].fault.schema_change: expected at least one field in `rename` or `add`, found none",
        "faults[3].name: expected a unique fault name, found `x` (also at `faults[2].name`); give each fault its own `name`",
        "faults[4].fault.schema_change.rename.b: expected each new field name once, found `c` as the target of two renames",
        "faults[4].fault.schema_change.rename.d: expected each new field name once, found `e` both as a rename target and in `add`",
        "faults[5].fault.model_fault.agent: expected one of breaker, compliance, router, scaler, found `scalr`",
    ];
    assert_eq!(got, want);
}

#[test]
fn unknown_spec_keys_are_rejected() {
    let cases = [
        (
            "top level",
            json!([{"fault": {"region_outage": {"region": "r"}}, "when": {"at": {"start_s": 0, "duration_s": 1}}, "severity": 2}]),
            "unknown field `severity`",
        ),
        (
            "inside a kind",
            json!([{"fault": {"region_outage": {"region": "r", "zone": "a"}}, "when": {"at": {"start_s": 0, "duration_s": 1}}}]),
            "unknown field `zone`",
        ),
        (
            "unknown kind",
            json!([{"fault": {"disk_full": {}}, "when": {"at": {"start_s": 0, "duration_s": 1}}}]),
            "unknown variant `disk_full`",
        ),
        (
            "unknown poison kind",
            json!([{"fault": {"poison_telemetry": {"share": 0.1, "kinds": ["bitflip"]}}, "when": {"at": {"start_s": 0, "duration_s": 1}}}]),
            "unknown variant `bitflip`",
        ),
    ];
    for (name, v, want) in cases {
        let err = serde_json::from_value::<Vec<FaultSpec>>(v).expect_err(name);
        assert!(err.to_string().contains(want), "case `{name}`: {err}");
    }
}

// -------------------------------------------------------------------------------------
// Telemetry faults

fn now() -> Timestamp {
    "2026-12-02T12:00:00Z".parse().expect("valid")
}

fn samples() -> Vec<(&'static str, Telemetry)> {
    vec![
        (
            "metrics",
            Telemetry::Metrics(ServiceMetrics {
                schema_version: 1,
                service: "checkout".into(),
                ts: now(),
                rate_in: 120.0,
                rate_out: 118.5,
                backlog: 3,
                latency_p50_ms: 12.0,
                latency_p99_ms: 80.0,
                error_rate: 0.01,
                cpu: 0.6,
                replicas: 4,
                region: Some("eu-west-1".into()),
                dependencies: Vec::new(),
            }),
        ),
        (
            "event",
            Telemetry::Event(EventSample {
                schema_version: 1,
                topic: "orders".into(),
                producer: "shop-1".into(),
                region: "eu-west-1".into(),
                key: "ord_abc".into(),
                ts: now(),
                fields: BTreeMap::from([
                    ("amount_cents".to_string(), json!(1299)),
                    ("customer".to_string(), json!({"id": "cus_x"})),
                ]),
            }),
        ),
        (
            "health",
            Telemetry::Health(Health {
                schema_version: 1,
                service: "checkout".into(),
                ts: now(),
                status: HealthStatus::Healthy,
                ready_replicas: Some(4),
                detail: None,
            }),
        ),
    ]
}

#[test]
fn poisoned_lines_fail_decoding_for_the_expected_reason() {
    let decoder = Decoder::default();
    for (name, t) in samples() {
        assert!(
            decoder.decode(&encode(&t), now()).is_ok(),
            "`{name}` decodes intact"
        );
        for kind in PoisonKind::ALL {
            let bytes = poison(&t, kind);
            assert_eq!(
                bytes,
                poison(&t, kind),
                "`{name}`/`{}`: deterministic",
                kind.as_str()
            );
            let err = decoder
                .decode(&bytes, now())
                .expect_err("poisoned line decodes");
            assert_eq!(
                err.reason(),
                kind.expected_reason(),
                "`{name}`/`{}`: {err}",
                kind.as_str()
            );
        }
    }
}

#[test]
fn poisoned_lines_carry_the_named_corruption() {
    let (_, metrics) = &samples()[0];
    let text = |kind| String::from_utf8_lossy(&poison(metrics, kind)).into_owned();
    assert!(text(PoisonKind::NonFiniteNumber).contains("\"latency_p99_ms\":NaN"));
    assert!(text(PoisonKind::UnknownSchemaVersion).contains("\"schema_version\":2"));
    assert!(text(PoisonKind::WrongType).contains(&format!("\"ts\":{}", now().as_millis())));
    assert_eq!(poison(metrics, PoisonKind::NotJson)[..2], [0x1f, 0x8b]);
    assert!(poison(metrics, PoisonKind::TruncatedJson).len() < encode(metrics).len());
}

fn burst(target: Option<&str>) -> PoisonBurst {
    let s = schedule(
        json!([{"fault": {"poison_telemetry": {"target": target, "share": 0.25,
                    "kinds": ["truncated_json", "not_json"]}},
                "when": {"at": {"start_s": 0.0, "duration_s": 60.0}}}]),
        1,
        HOUR,
    );
    match &s.faults()[0].fault {
        Fault::PoisonTelemetry(p) => p.clone(),
        other => panic!("expected a poison burst, found {other:?}"),
    }
}

#[test]
fn poison_burst_hits_its_share_of_its_target_only() {
    let all = samples();
    let (_, metrics) = &all[0];
    let (_, event) = &all[1];
    let b = burst(Some("checkout"));
    assert!(b.applies_to(metrics));
    assert!(
        !b.applies_to(event),
        "an `orders` event is not `checkout` telemetry"
    );
    assert!(burst(None).applies_to(event));
    let mut rng = Seed::new(4).rng("poison");
    let decoder = Decoder::default();
    let mut hits = 0;
    for _ in 0..4000 {
        assert!(b.corrupt(event, &mut rng).is_none());
        if let Some((kind, bytes)) = b.corrupt(metrics, &mut rng) {
            hits += 1;
            assert!(b.kinds().contains(&kind));
            let err = decoder.decode(&bytes, now()).expect_err("poisoned");
            assert_eq!(err.reason(), kind.expected_reason());
        }
    }
    // 1000 expected; sd ≈ 27.
    assert!((900..1100).contains(&hits), "{hits} hits");
}

fn change() -> SchemaChange {
    let s = schedule(
        json!([{"fault": {"schema_change": {"topic": "orders",
                    "rename": {"customer": "client", "a": "b", "b": "a"},
                    "add": {"schema": "v2", "amount_cents": 0}}},
                "when": {"at": {"start_s": 0.0, "duration_s": 60.0}}}]),
        1,
        HOUR,
    );
    match &s.faults()[0].fault {
        Fault::SchemaChange(c) => c.clone(),
        other => panic!("expected a schema change, found {other:?}"),
    }
}

#[test]
fn schema_change_renames_and_adds_fields_on_its_topic() {
    let (_, Telemetry::Event(mut e)) = samples().swap_remove(1) else {
        panic!("sample 1 is an event");
    };
    e.fields.insert("a".into(), json!(1));
    e.fields.insert("b".into(), json!(2));
    let untouched = e.clone();
    let c = change();
    assert!(c.apply(&mut e));
    let keys: Vec<&str> = e.fields.keys().map(String::as_str).collect();
    assert_eq!(keys, ["a", "amount_cents", "b", "client", "schema"]);
    assert_eq!(e.fields["a"], json!(2), "swapped");
    assert_eq!(e.fields["b"], json!(1), "swapped");
    assert_eq!(
        e.fields["amount_cents"],
        json!(1299),
        "present fields are not overwritten"
    );
    assert_eq!(e.fields["client"], json!({"id": "cus_x"}));
    assert_eq!(e.fields["schema"], json!("v2"));
    let mut other = untouched.clone();
    other.topic = "payments".into();
    assert!(!c.apply(&mut other));
    assert_eq!(other.fields, untouched.fields);
    // The changed event still decodes: a schema change is not a poison line.
    let bytes = encode(&Telemetry::Event(e));
    assert!(Decoder::default().decode(&bytes, now()).is_ok());
}

#[test]
fn schema_change_rewrites_truth_paths() {
    let c = change();
    let cases = [
        ("fields.customer.email", "fields.client.email"),
        ("fields.customer", "fields.client"),
        ("fields.customers[0]", "fields.customers[0]"),
        ("fields.note", "fields.note"),
        ("fields.a[2].x", "fields.b[2].x"),
        ("other.customer", "other.customer"),
    ];
    for (path, want) in cases {
        assert_eq!(c.renamed_path(path), want, "path `{path}`");
    }
}
