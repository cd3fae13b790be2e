//! The learned breaker end to end: policies naming a model, agents built by the catalog
//! (`agent_specs`), telemetry in, proposals out, at explicit timestamps.
//!
//! Tests that run a model need ONNX Runtime: they find it by the runtime's resolution
//! order (`ORT_DYLIB_PATH`, the project venv, the system) and fail, with the message
//! naming `agents/training/setup.sh`, when it is missing. They never skip.

use std::sync::Arc;

use conclave_runtime::telemetry::{Dependency, ServiceMetrics, Telemetry, SCHEMA_VERSION};
use conclave_runtime::{Agent, ModelId, Policy, Proposal, Proposals, Timestamp};

use super::NAME;
use crate::test_support::{built_agent, compile_at, models_dir, require_ort};

/// 2027-01-15T08:00:00Z, a multiple of 15 s.
const BASE_MS: i64 = 1_800_000_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(BASE_MS + s * 1000)
}

/// The breaker model block for `path` (relative to `agents/models/`).
fn model_block(path: &str, fallback: &str) -> String {
    format!(
        r#"
      model:
        path: {path}
        inputs: [{{name: features, type: float32, shape: [-1, 21]}}]
        outputs: [{{name: risk, type: float32, shape: [-1, 1]}}]
        timeout: 5s
      fallback: {fallback}"#
    )
}

/// A policy where the breaker protects `payments` (called by `checkout`), 15 s windows;
/// `model` is a [`model_block`] or empty.
fn policy(settings: &str, model: &str) -> Arc<Policy> {
    let yaml = format!(
        r#"apiVersion: conclave/v1
kind: Policy
metadata: {{name: learned-breaker-test}}
spec:
  targets:
    - {{name: checkout, kind: service}}
    - {{name: payments, kind: service}}
  agents:
    breaker:
      mode: enforce
      targets: {{names: [payments]}}
      settings: {settings}{model}
  arbiter:
    window: 15s
"#
    );
    let file = models_dir().join("learned-breaker-test.yaml");
    compile_at(&file, &yaml)
}

/// The breaker the catalog builds for `policy`.
fn breaker(policy: &Arc<Policy>) -> Box<dyn Agent> {
    built_agent(policy, NAME)
}

/// Shedding off: these tests are about the breaker's state.
const NO_SHED: &str = "{shed: {enabled: false}}";

fn learned(settings: &str) -> Box<dyn Agent> {
    require_ort();
    breaker(&policy(
        settings,
        &model_block("breaker-risk.onnx", "rules"),
    ))
}

fn rule_only() -> Box<dyn Agent> {
    breaker(&policy(NO_SHED, ""))
}

/// What `payments` and its caller report at one instant.
#[derive(Debug, Clone, Copy)]
struct Health {
    /// `payments`' own p99, ms (p50 is two thirds of it).
    p99_ms: f64,
    /// Share of `checkout`'s calls to `payments` that fail.
    caller_err: f64,
    /// Calls per second from `checkout` to `payments`.
    calls_per_s: f64,
}

const HEALTHY: Health = Health {
    p99_ms: 180.0,
    caller_err: 0.0,
    calls_per_s: 60.0,
};

/// `payments` degrading after 30 healthy minutes: its p99 climbs bucket by bucket towards
/// checkout's 1.5 s timeout, then calls time out (7 %, then all of them) until 35 min,
/// after which it is healthy again.
fn degrading(s: i64) -> Health {
    const STEPS: [(f64, f64); 6] = [
        (260.0, 0.0),
        (400.0, 0.0),
        (620.0, 0.0),
        (1_800.0, 0.07),
        (6_000.0, 1.0),
        (20_000.0, 1.0),
    ];
    if s <= 1800 || s > 2100 {
        return HEALTHY;
    }
    let (p99_ms, caller_err) = STEPS[((s - 1801) / 15).min(5) as usize];
    Health {
        p99_ms,
        caller_err,
        ..HEALTHY
    }
}

fn messages(s: i64, h: Health) -> [Telemetry; 2] {
    let own = ServiceMetrics {
        schema_version: SCHEMA_VERSION,
        service: "payments".into(),
        ts: t(s),
        rate_in: 60.0,
        rate_out: 60.0,
        backlog: 0,
        latency_p50_ms: h.p99_ms / 1.5,
        latency_p99_ms: h.p99_ms,
        error_rate: 0.0,
        cpu: 0.3,
        replicas: 4,
        region: None,
        dependencies: Vec::new(),
    };
    let caller = ServiceMetrics {
        schema_version: SCHEMA_VERSION,
        service: "checkout".into(),
        ts: t(s),
        rate_in: 60.0,
        rate_out: 60.0,
        backlog: 0,
        latency_p50_ms: 200.0,
        latency_p99_ms: 300.0,
        error_rate: h.caller_err,
        cpu: 0.4,
        replicas: 4,
        region: None,
        dependencies: vec![Dependency {
            service: "payments".into(),
            calls_per_s: h.calls_per_s,
            error_rate: h.caller_err,
            latency_p99_ms: h.p99_ms.min(1500.0),
        }],
    };
    [Telemetry::Metrics(caller), Telemetry::Metrics(own)]
}

/// Metrics every 5 s from 0 to `end_s`, a tick every 15 s; every proposal, in order.
fn run(agent: &mut dyn Agent, health: &dyn Fn(i64) -> Health, end_s: i64) -> Vec<Proposal> {
    let mut out = Proposals::new(NAME);
    let mut all = Vec::new();
    for s in (0..=end_s).step_by(5) {
        for m in messages(s, health(s)) {
            agent.observe(&m, &mut out);
        }
        if s % 15 == 0 {
            agent.tick(t(s), &mut out);
            all.extend(out.take());
        }
    }
    all
}

fn render(p: &Proposal) -> String {
    let s = (p.at.as_millis() - BASE_MS) / 1000;
    format!("t={s} {} {}", p.target, p.action)
}

fn renders(ps: &[Proposal]) -> Vec<String> {
    ps.iter().map(render).collect()
}

fn factor_value(p: &Proposal, name: &str) -> Option<f64> {
    p.rationale.iter().find(|f| f.name == name).map(|f| f.value)
}

fn factor_note(p: &Proposal, name: &str) -> Option<String> {
    p.rationale
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.note.clone())
}

fn model_id() -> Option<ModelId> {
    Some(ModelId {
        name: "breaker-risk".into(),
        version: "1.0.0".into(),
    })
}

/// The rule's transitions on the degrading script: 7 % of calls fail in the bucket ending
/// at 31:00 and all of them from 31:05; the failure rate over the 60 s window reaches 50 %
/// at 31:30; after 60 s open, half-open probes fail until 35:00, and the first probes
/// after it close the breaker.
const RULE: [&str; 7] = [
    "t=1890 payments open the breaker",
    "t=1950 payments half-open the breaker",
    "t=1965 payments open the breaker",
    "t=2025 payments half-open the breaker",
    "t=2040 payments open the breaker",
    "t=2100 payments half-open the breaker",
    "t=2115 payments close the breaker",
];

// ---------------------------------------------------------------------------------------
// (a) The model opens before the rule would

#[test]
fn model_opens_before_the_rule_and_never_closes_on_its_own() {
    let mut rule = rule_only();
    let r = run(rule.as_mut(), &degrading, 2400);
    assert_eq!(renders(&r), RULE);

    let mut agent = learned(NO_SHED);
    let p = run(agent.as_mut(), &degrading, 2400);
    // The p99 jump to 1.8 s with the first timeouts (7 % of calls) in the bucket ending
    // at 31:00: the model puts the trip within 60 s at 0.91 and opens 30 s before the
    // rule. From then on the rule's state machine runs (its cycle of 60 s open and a
    // probe window, started 30 s earlier, ends with a close 45 s after the rule-only one).
    assert_eq!(
        renders(&p),
        [
            "t=1860 payments open the breaker",
            "t=1920 payments half-open the breaker",
            "t=1935 payments open the breaker",
            "t=1995 payments half-open the breaker",
            "t=2010 payments open the breaker",
            "t=2070 payments half-open the breaker",
            "t=2085 payments open the breaker",
            "t=2145 payments half-open the breaker",
            "t=2160 payments close the breaker",
        ]
    );
    let first = &p[0];
    assert_eq!(first.model, model_id());
    assert_eq!(first.fallback, None);
    let risk = factor_value(first, "risk").expect("risk");
    assert!((0.8..=1.0).contains(&risk), "risk {risk}");
    assert_eq!(first.confidence.get(), risk, "the risk is the confidence");
    assert!(factor_note(first, "risk").is_some_and(|n| n.contains("open ahead of the rule")));
    assert_eq!(factor_value(first, "risk_open_at"), Some(0.8));
    // The rule's rates over the window are there too: far from its 50 %.
    assert!(factor_value(first, "failure_rate_pct").is_some_and(|f| f < 5.0));
    assert!(factor_value(first, "calls").is_some_and(|c| c >= 100.0));
    // Only the open came from the model; half-open, re-open and close are the rule's
    // (from open and half-open the model is not asked).
    for q in &p[1..] {
        assert_eq!(
            (&q.model, q.confidence.get()),
            (&None, 1.0),
            "{}",
            render(q)
        );
        assert_eq!(factor_value(q, "risk"), None, "{}", render(q));
    }
}

#[test]
fn a_model_that_always_alarms_opens_only_with_traffic_and_after_a_closed_window() {
    require_ort();
    let certain = || {
        breaker(&policy(
            NO_SHED,
            &model_block("testdata/breaker-certain.onnx", "rules"),
        ))
    };
    // Always 0.9 on a healthy service: it opens once the window holds 100 calls (15 s of
    // 60 calls/s); the rule probes and closes; the model opens again a window after the
    // close, never sooner, and never closes anything itself.
    let p = run(certain().as_mut(), &|_| HEALTHY, 330);
    assert_eq!(
        renders(&p),
        [
            "t=15 payments open the breaker",
            "t=75 payments half-open the breaker",
            "t=90 payments close the breaker",
            "t=150 payments open the breaker",
            "t=210 payments half-open the breaker",
            "t=225 payments close the breaker",
            "t=285 payments open the breaker",
        ]
    );
    let by_model: Vec<bool> = p.iter().map(|q| q.model.is_some()).collect();
    assert_eq!(by_model, [true, false, false, true, false, false, true]);
    // One call a second: never the 100 calls the window must hold.
    let quiet = |_| Health {
        calls_per_s: 1.0,
        ..HEALTHY
    };
    assert!(run(certain().as_mut(), &quiet, 600).is_empty());
}

// ---------------------------------------------------------------------------------------
// (b) Report mode

#[test]
fn report_mode_proposes_what_the_rule_does_and_records_the_risk() {
    let mut report = learned("{shed: {enabled: false}, risk: {mode: report}}");
    let p = run(report.as_mut(), &degrading, 2400);
    let mut rule = rule_only();
    let r = run(rule.as_mut(), &degrading, 2400);
    assert_eq!(renders(&p), renders(&r));
    for (a, b) in p.iter().zip(&r) {
        assert_eq!((&a.model, &a.fallback), (&None, &None), "{}", render(a));
        assert_eq!(a.confidence, b.confidence);
        assert_eq!(a.rationale[..b.rationale.len()], b.rationale[..]);
    }
    // The rule's open at 31:30 (from closed): the risk recorded, and the alarms of 31:00
    // and 31:15 checked against the trip condition, which began at 31:30 (the last
    // minute's failure rate 0.52): both borne out, the first 30 s ahead.
    let open = &p[0];
    assert!(factor_value(open, "risk").is_some());
    assert!(factor_note(open, "risk").is_some_and(|n| n.contains("report")));
    assert_eq!(factor_value(open, "risk_alarms_checked"), Some(2.0));
    assert_eq!(factor_value(open, "risk_alarm_precision"), Some(1.0));
    assert_eq!(factor_value(open, "risk_trips_seen"), Some(1.0));
    assert_eq!(factor_value(open, "risk_trips_warned_share"), Some(1.0));
    assert_eq!(factor_value(open, "risk_lead_s_mean"), Some(30.0));
    // Transitions out of open and half-open carry no risk: the model is not asked there.
    assert!(p[1..].iter().all(|q| factor_value(q, "risk").is_none()));
}

// ---------------------------------------------------------------------------------------
// (c) Faults: the rule decides, and every breaker proposal of a closed breaker says why

/// The rule's proposals, as rendered, with each one's fallback.
fn with_fallbacks(ps: &[Proposal]) -> Vec<(String, Option<String>)> {
    ps.iter().map(|p| (render(p), p.fallback.clone())).collect()
}

#[test]
fn nan_and_out_of_range_models_fall_back_to_the_rule() {
    require_ort();
    for (file, reason) in [
        ("testdata/breaker-nan.onnx", "non_finite_output"),
        ("testdata/breaker-out-of-range.onnx", "out_of_range"),
    ] {
        let mut agent = breaker(&policy(NO_SHED, &model_block(file, "rules")));
        let p = run(agent.as_mut(), &degrading, 2400);
        assert_eq!(renders(&p), RULE, "{file}");
        // The model failed at every tick (three failures open its circuit for 30 s, each
        // probe fails again), so at 31:45 the circuit is open or a probe just failed.
        let got = with_fallbacks(&p);
        let (open, fallback) = &got[0];
        assert_eq!(open, "t=1890 payments open the breaker", "{file}");
        assert!(
            [Some(reason), Some("circuit_open")].contains(&fallback.as_deref()),
            "{file}: {fallback:?}"
        );
        assert_eq!(p[0].model, None);
        assert_eq!(factor_value(&p[0], "risk"), None);
        // The close comes out of half-open, where the model is not asked: no fallback.
        assert_eq!(got[6], ("t=2115 payments close the breaker".into(), None));
    }
}

#[test]
fn nan_model_reasons_follow_the_model_circuit() {
    require_ort();
    // With the always-failing model and a steady failure, the rule opens and re-opens at
    // known ticks; which reason each one records follows the model's circuit (3 failures
    // open it for 30 s of tick time; a probe that fails opens it again).
    let failing = |s: i64| Health {
        caller_err: if s >= 60 { 1.0 } else { 0.0 },
        ..HEALTHY
    };
    let mut agent = breaker(&policy(
        NO_SHED,
        &model_block("testdata/breaker-nan.onnx", "rules"),
    ));
    let p = run(agent.as_mut(), &failing, 240);
    assert_eq!(
        with_fallbacks(&p),
        [
            // Ticks 0, 15, 30 fail (non-finite) and open the circuit until 60; 45 is
            // refused; 60 probes and fails (open until 90); 75 is refused; 90 probes and
            // fails again, as the rule opens (calls fail from 60 s: half the window).
            (
                "t=90 payments open the breaker".to_string(),
                Some("non_finite_output".to_string())
            ),
            ("t=150 payments half-open the breaker".to_string(), None),
            ("t=165 payments open the breaker".to_string(), None),
            ("t=225 payments half-open the breaker".to_string(), None),
            ("t=240 payments open the breaker".to_string(), None),
        ]
    );
}

#[test]
fn missing_or_corrupt_models_are_unavailable_and_the_rule_proposes() {
    require_ort();
    let dir = tempfile::tempdir().expect("temp dir");
    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"not an onnx model").expect("write");
    let scaler = models_dir().join("scaler-forecast.onnx");
    for (path, expect) in [
        ("no-such-model.onnx".to_string(), "no-such-model.onnx"),
        (corrupt.display().to_string(), "corrupt"),
        // The scaler's model: 24 inputs named otherwise, refused by the signature check.
        (
            scaler.display().to_string(),
            "does not have the expected signature",
        ),
    ] {
        let policy = policy(NO_SHED, &model_block(&path, "rules"));
        let mut agent = breaker(&policy);
        let p = run(agent.as_mut(), &degrading, 2400);
        assert_eq!(renders(&p), RULE, "{path}");
        // Every proposal says the model is unavailable, the first one why.
        for (i, q) in p.iter().enumerate() {
            assert_eq!(q.fallback.as_deref(), Some("model_unavailable"), "{path}");
            assert_eq!(q.model, None);
            let error = factor_note(q, "model_error");
            if i == 0 {
                let error = error.unwrap_or_default();
                assert!(error.contains(expect), "{path}: {error}");
            } else {
                assert_eq!(error, None, "{path}");
            }
        }
        // A restarted instance (same factory, model not reloaded) says it again.
        let mut again = breaker(&policy);
        let p = run(again.as_mut(), &degrading, 1890);
        assert!(factor_note(&p[0], "model_error").is_some(), "{path}");
    }
}

#[test]
fn fallback_hold_keeps_a_closed_breaker_when_the_model_fails() {
    let held = policy(NO_SHED, &model_block("no-such-model.onnx", "hold"));
    assert!(run(breaker(&held).as_mut(), &degrading, 2400).is_empty());
    // In report mode the rule acts anyway; the fault is recorded.
    let report = policy(
        "{shed: {enabled: false}, risk: {mode: report}}",
        &model_block("no-such-model.onnx", "hold"),
    );
    let p = run(breaker(&report).as_mut(), &degrading, 2400);
    assert_eq!(renders(&p), RULE);
    assert!(p
        .iter()
        .all(|q| q.fallback.as_deref() == Some("model_unavailable")));
}

// ---------------------------------------------------------------------------------------
// (d) Drift

#[test]
fn drift_with_on_drift_rules_switches_the_model_off() {
    require_ort();
    // A certain model's reference statistics are uniform on [0, 1] for every feature;
    // this service's features are not (calm_min 30, p99_rel 1, ...): drift after 20 rows.
    let settings = "{shed: {enabled: false}, drift: {on_drift: rules, window: 30, min_rows: 20}}";
    let mut agent = breaker(&policy(
        settings,
        &model_block("testdata/breaker-certain.onnx", "rules"),
    ));
    // Healthy until 600 s, then every call fails.
    let failing = |s: i64| Health {
        caller_err: if s >= 600 { 1.0 } else { 0.0 },
        ..HEALTHY
    };
    let p = run(agent.as_mut(), &failing, 900);
    // Opened by the model while it is on; once drift switched it off, the rule alone
    // opens (at the failure), and says why the model did not take part.
    let by_model: Vec<String> = p.iter().filter(|q| q.model.is_some()).map(render).collect();
    assert_eq!(
        by_model,
        [
            "t=15 payments open the breaker",
            "t=150 payments open the breaker"
        ]
    );
    let open = p
        .iter()
        .find(|q| render(q).ends_with("open the breaker") && q.fallback.is_some())
        .expect("a rule open with a fallback");
    assert_eq!(open.fallback.as_deref(), Some("drift"));
    assert!(factor_note(open, "drift_psi_max").is_some_and(|n| n.contains("on_drift: rules")));
}
