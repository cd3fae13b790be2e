//! The learned router end to end: policies naming a model, agents built by the catalog
//! (`agent_specs`), telemetry in, proposals out, at explicit timestamps.
//!
//! Tests that run a model need ONNX Runtime: they find it by the runtime's resolution
//! order (`ORT_DYLIB_PATH`, the project venv, the system) and fail, with the message
//! naming `agents/training/setup.sh`, when it is missing. They never skip.

use std::collections::BTreeMap;
use std::sync::Arc;

use conclave_runtime::models::router_features::cost;
use conclave_runtime::telemetry::{ServiceMetrics, Telemetry, SCHEMA_VERSION};
use conclave_runtime::{Action, Agent, ModelId, Policy, Proposal, Proposals, Timestamp};

use super::NAME;
use crate::test_support::{built_agent, compile_at, models_dir, require_ort};

/// 2027-01-15T08:00:00Z, a multiple of 15 s.
const BASE_MS: i64 = 1_800_000_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(BASE_MS + s * 1000)
}

/// The router model block for `path` (relative to `agents/models/`).
fn model_block(path: &str) -> String {
    format!(
        r#"
      model:
        path: {path}
        inputs: [{{name: features, type: float32, shape: [-1, 23]}}]
        outputs: [{{name: latency_ms, type: float32, shape: [-1, 1]}}]
        timeout: 5s
      fallback: rules"#
    )
}

/// Routes `web` (`web-eu`, `web-us`) and `api` (`api-a`, `api-b`), 15 s windows, the
/// router's `settings` body (a YAML flow mapping's keys after `routes`, may be empty) and
/// a [`model_block`] or nothing.
fn policy(settings: &str, model: &str) -> Arc<Policy> {
    let yaml = format!(
        r#"apiVersion: conclave/v1
kind: Policy
metadata: {{name: learned-router-test}}
spec:
  targets:
    - {{name: web, kind: route}}
    - {{name: api, kind: route}}
  agents:
    router:
      mode: enforce
      targets: {{names: [web, api]}}
      settings: {{routes: {{web: {{backends: [web-eu, web-us]}}, api: {{backends: [api-a, api-b]}}}}{settings}}}{model}
  arbiter:
    window: 15s
"#
    );
    let file = models_dir().join("learned-router-test.yaml");
    compile_at(&file, &yaml)
}

/// The router the catalog builds for `policy`.
fn router(policy: &Arc<Policy>) -> Box<dyn Agent> {
    built_agent(policy, NAME)
}

fn learned(path: &str, settings: &str) -> Box<dyn Agent> {
    require_ort();
    router(&policy(settings, &model_block(path)))
}

fn rule_only() -> Box<dyn Agent> {
    router(&policy("", ""))
}

/// What one backend reports at one instant.
#[derive(Debug, Clone, Copy)]
struct Health {
    p99_ms: f64,
    error_rate: f64,
}

const HEALTHY: Health = Health {
    p99_ms: 100.0,
    error_rate: 0.0,
};

/// `web-eu` slowing down after 30 healthy minutes: from 30:00 its p99 grows by a fifth
/// every 15 s bucket (100 ms, 120, 144, ...), up to 1 s, for five minutes; everything else
/// stays healthy.
fn degrading(service: &str, s: i64) -> Health {
    if service != "web-eu" || s <= 1800 || s > 2100 {
        return HEALTHY;
    }
    let steps = ((s - 1801) / 15 + 1) as i32;
    Health {
        p99_ms: (100.0 * 1.2f64.powi(steps)).min(1000.0),
        ..HEALTHY
    }
}

fn healthy(_: &str, _: i64) -> Health {
    HEALTHY
}

const BACKENDS: [&str; 4] = ["api-a", "api-b", "web-eu", "web-us"];

fn metrics(service: &str, s: i64, h: Health) -> Telemetry {
    Telemetry::Metrics(ServiceMetrics {
        schema_version: SCHEMA_VERSION,
        service: service.into(),
        ts: t(s),
        rate_in: 100.0,
        rate_out: 100.0,
        backlog: 0,
        latency_p50_ms: h.p99_ms / 2.0,
        latency_p99_ms: h.p99_ms,
        error_rate: h.error_rate,
        cpu: 0.4,
        replicas: 2,
        region: None,
        dependencies: Vec::new(),
    })
}

/// Every backend reports every 5 s from 5 s to `end_s`, a tick every 15 s; every
/// proposal, in order.
fn run(agent: &mut dyn Agent, health: &dyn Fn(&str, i64) -> Health, end_s: i64) -> Vec<Proposal> {
    let mut out = Proposals::new(NAME);
    let mut all = Vec::new();
    for s in (5..=end_s).step_by(5) {
        for b in BACKENDS {
            agent.observe(&metrics(b, s, health(b, s)), &mut out);
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
    let Action::Route { weights } = &p.action else {
        panic!("not a route action: {}", p.action);
    };
    let w: Vec<String> = weights.iter().map(|(b, w)| format!("{b}={w}")).collect();
    format!("t={s} {} {}", p.target, w.join(","))
}

fn renders(ps: &[Proposal]) -> Vec<String> {
    ps.iter().map(render).collect()
}

fn factor(p: &Proposal, name: &str) -> Option<f64> {
    p.rationale.iter().find(|f| f.name == name).map(|f| f.value)
}

fn note(p: &Proposal, name: &str) -> Option<String> {
    p.rationale
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.note.clone())
}

fn weights(p: &Proposal) -> BTreeMap<String, f64> {
    match &p.action {
        Action::Route { weights } => weights.clone(),
        other => panic!("not a route action: {other}"),
    }
}

/// The rule's proposals on the degrading script: the EWMAs (alpha 0.3 per 5 s report)
/// follow `web-eu`'s p99 up, and its weight passes `min_change` (0.05) at 30:30.
const RULE: [&str; 12] = [
    "t=15 api api-a=0.5,api-b=0.5",
    "t=15 web web-eu=0.5,web-us=0.5",
    "t=1830 web web-eu=0.428,web-us=0.572",
    "t=1860 web web-eu=0.344,web-us=0.656",
    "t=1890 web web-eu=0.267,web-us=0.733",
    "t=1920 web web-eu=0.202,web-us=0.798",
    "t=1950 web web-eu=0.149,web-us=0.851",
    "t=1995 web web-eu=0.096,web-us=0.904",
    "t=2115 web web-eu=0.197,web-us=0.803",
    "t=2130 web web-eu=0.327,web-us=0.673",
    "t=2145 web web-eu=0.423,web-us=0.577",
    "t=2175 web web-eu=0.49,web-us=0.51",
];

fn model_id(name: &str, version: &str) -> Option<ModelId> {
    Some(ModelId {
        name: name.into(),
        version: version.into(),
    })
}

// ---------------------------------------------------------------------------------------
// (a) Forecasts shift weight away before the rule

#[test]
fn a_trend_forecast_shifts_weight_away_before_the_rule_and_back_at_its_pace() {
    let mut rule = rule_only();
    assert_eq!(renders(&run(rule.as_mut(), &degrading, 2400)), RULE);

    // The test model forecasts the last bucket's cost times its change over the last
    // minute. At 30:15 web-eu's bucket is at 120 ms against 100 ms a minute before: the
    // forecast is 144 ms where the EWMA is at 113.14 ms, so web-eu's share is
    // 100 / (100 + 144) = 0.41, a move the rule makes only at 30:30 (to 0.428).
    let mut agent = learned("testdata/router-trend.onnx", "");
    let p = run(agent.as_mut(), &degrading, 2400);
    assert_eq!(
        renders(&p),
        [
            "t=15 api api-a=0.5,api-b=0.5",
            "t=15 web web-eu=0.5,web-us=0.5",
            "t=1815 web web-eu=0.41,web-us=0.59",
            "t=1830 web web-eu=0.325,web-us=0.675",
            "t=1845 web web-eu=0.251,web-us=0.749",
            "t=1860 web web-eu=0.189,web-us=0.811",
            "t=1905 web web-eu=0.119,web-us=0.881",
            "t=1965 web web-eu=0.061,web-us=0.939",
            // Healthy again at 35:00: the forecast falls to 10 ms (the cost fell tenfold in
            // a minute) but the EWMAs weigh (`combine: max`), so the way back is the rule's.
            "t=2115 web web-eu=0.197,web-us=0.803",
            "t=2130 web web-eu=0.327,web-us=0.673",
            "t=2145 web web-eu=0.423,web-us=0.577",
            "t=2175 web web-eu=0.49,web-us=0.51",
        ]
    );
    let first = &p[2];
    assert_eq!(first.model, model_id("test-router-trend", "0.0.1"));
    assert_eq!(first.fallback, None);
    assert_eq!(first.confidence.get(), 1.0);
    let ewma = factor(first, "web-eu.latency_p99_ms_ewma").expect("ewma");
    assert!((ewma - 113.14).abs() < 1e-9, "ewma {ewma}");
    let forecast = factor(first, "web-eu.forecast_cost_ms").expect("forecast");
    assert!((forecast - 144.0).abs() < 1e-3, "forecast {forecast}");
    assert_eq!(
        note(first, "web-eu.forecast_cost_ms").as_deref(),
        Some("by test-router-trend 0.0.1; above the EWMA cost 113.1 ms: weighs (combine max)")
    );
    assert_eq!(factor(first, "web-eu.rule_weight"), Some(0.469));
    assert_eq!(factor(first, "web-us.rule_weight"), Some(0.531));
    // What the rule alone would have proposed goes with it, for the model-vs-rule gap.
    assert_eq!(
        first.rule,
        Some(Action::Route {
            weights: BTreeMap::from([("web-eu".into(), 0.469), ("web-us".into(), 0.531)])
        })
    );
    let back = &p[8];
    assert_eq!(
        factor(back, "web-eu.forecast_cost_ms").map(f64::round),
        Some(10.0)
    );
    assert!(note(back, "web-eu.forecast_cost_ms")
        .is_some_and(|n| n.ends_with("below the EWMA cost 408.7 ms, which weighs (combine max)")));
    assert_eq!(weights(back), weights(&rule_proposal(8)));
}

/// The rule's proposal `i` on the degrading script.
fn rule_proposal(i: usize) -> Proposal {
    let mut rule = rule_only();
    run(rule.as_mut(), &degrading, 2400).swap_remove(i)
}

#[test]
fn combine_replace_lets_the_forecast_bring_traffic_back_too() {
    let mut agent = learned(
        "testdata/router-trend.onnx",
        ", predict: {combine: replace}",
    );
    let p = run(agent.as_mut(), &degrading, 2400);
    let after: Vec<String> = renders(&p).into_iter().skip(8).collect();
    // Healthy again at 35:00: the forecast (10 ms: the cost fell tenfold in a minute)
    // weighs alone and web-eu takes most of the traffic at once, back to an even share
    // once its bucket a minute before is healthy too.
    assert_eq!(
        after,
        [
            "t=2115 web web-eu=0.909,web-us=0.091",
            "t=2175 web web-eu=0.5,web-us=0.5",
        ]
    );
    assert!(note(&p[8], "web-eu.forecast_cost_ms")
        .is_some_and(|n| n.ends_with("weighs (combine replace)")));
}

#[test]
fn the_latency_model_shifts_weight_away_before_the_rule() {
    let mut agent = learned("router-latency.onnx", "");
    let p = run(agent.as_mut(), &degrading, 2400);
    // router-latency 1.0.0 reads a p99 climbing 20 % a bucket as a backend getting worse:
    // at 30:15 it forecasts 171 ms for web-eu where the EWMA is at 113 ms and moves the
    // share the rule moves only at 30:30; at 30:45 it is at 0.244, where the rule gets at
    // 31:30 (0.267), and it keeps that lead of about 45 s down to the floor. For the steady
    // web-us it forecasts 127 ms where the EWMA is at 100 ms (these test backends are
    // unlike the simulated ones it was trained on), and that is what weighs for web-us, so
    // on the way back web-eu's share runs a little ahead of the rule's.
    let at = |q: &Proposal, b: &str| factor(q, &format!("{b}.forecast_cost_ms")).map(f64::round);
    assert_eq!(
        renders(&p),
        [
            "t=15 api api-a=0.5,api-b=0.5",
            "t=15 web web-eu=0.5,web-us=0.5",
            "t=1815 web web-eu=0.426,web-us=0.574",
            "t=1845 web web-eu=0.244,web-us=0.756",
            "t=1905 web web-eu=0.147,web-us=0.853",
            "t=1980 web web-eu=0.067,web-us=0.933",
            "t=2115 web web-eu=0.237,web-us=0.763",
            "t=2130 web web-eu=0.382,web-us=0.618",
            "t=2145 web web-eu=0.483,web-us=0.517",
        ]
    );
    for q in &p {
        assert_eq!(
            q.model,
            model_id("router-latency", "1.0.0"),
            "{}",
            render(q)
        );
        assert_eq!(q.fallback, None, "{}", render(q));
    }
    assert_eq!(factor(&p[2], "web-eu.rule_weight"), Some(0.469));
    assert_eq!(at(&p[2], "web-eu"), Some(171.0));
    assert_eq!(at(&p[2], "web-us"), Some(127.0));
    assert_eq!(at(&p[3], "web-eu"), Some(394.0));
}

// ---------------------------------------------------------------------------------------
// (b) One batch per tick

#[test]
fn every_backend_of_every_route_goes_to_the_model_in_one_call_per_tick() {
    let mut agent = learned("testdata/router-trend.onnx", "");
    let p = run(agent.as_mut(), &healthy, 300);
    assert_eq!(
        renders(&p),
        [
            "t=15 api api-a=0.5,api-b=0.5",
            "t=15 web web-eu=0.5,web-us=0.5"
        ]
    );
    for q in &p {
        let inference = q.inference.as_ref().expect("the model call is attached");
        assert_eq!(inference.rows, 4, "both routes' backends in one batch");
        assert_eq!(inference.features, 23);
        assert_eq!(inference.fallback, None);
    }
    let stats = agent.models();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        stats[0].inference().count(),
        20,
        "one call per tick, 20 ticks"
    );
}

// ---------------------------------------------------------------------------------------
// (c) Report mode

#[test]
fn report_mode_records_forecasts_and_proposes_the_rules_weights() {
    let mut agent = learned("testdata/router-trend.onnx", ", predict: {mode: report}");
    let p = run(agent.as_mut(), &degrading, 2400);
    assert_eq!(renders(&p), RULE);
    let q = &p[2];
    assert_eq!(q.model, None, "the rule decided");
    assert_eq!(q.rule, None, "the rule decided");
    assert_eq!(q.fallback, None, "not a fault");
    assert!(q.inference.is_some());
    assert_eq!(factor(q, "web-eu.rule_weight"), None);
    // At 30:30 (the rule's first move) web-eu's bucket is at 144 ms, 1.44 times the
    // bucket a minute before: the forecast is 207.36 ms.
    let forecast = factor(q, "web-eu.forecast_cost_ms").expect("forecast");
    assert!((forecast - 207.36).abs() < 1e-3, "forecast {forecast}");
    assert_eq!(
        note(q, "web-eu.forecast_cost_ms").as_deref(),
        Some("by test-router-trend 0.0.1; predict.mode report: recorded, the rule decides")
    );
    // Forecasts checked against what followed: two backends, one forecast per bucket from
    // 0:15, each checked once the minute after it closed (buckets up to 29:30 by 30:30).
    assert_eq!(factor(q, "forecast_checked"), Some(236.0));
    let model = factor(q, "forecast_mae_log2").expect("model error");
    let ewma = factor(q, "ewma_mae_log2").expect("ewma error");
    assert!(model > 0.0 && ewma > 0.0, "model {model}, ewma {ewma}");
}

// ---------------------------------------------------------------------------------------
// (d) Faults: the rule decides alone and says why

#[test]
fn a_missing_model_leaves_the_rule_with_fallback_recorded() {
    require_ort();
    let mut agent = router(&policy("", &model_block("no-such-model.onnx")));
    let p = run(agent.as_mut(), &degrading, 2400);
    assert_eq!(renders(&p), RULE);
    for (i, q) in p.iter().enumerate() {
        assert_eq!(q.model, None, "{}", render(q));
        assert_eq!(
            q.fallback.as_deref(),
            Some("model_unavailable"),
            "{}",
            render(q)
        );
        assert_eq!(q.inference, None, "no model, no call: {}", render(q));
        assert_eq!(q.rule, None, "the rule decided: {}", render(q));
        // The load error is recorded once per instance, on its first proposal.
        let error = note(q, "model_error");
        assert_eq!(error.is_some(), i == 0, "{}", render(q));
    }
    let error = note(&p[0], "model_error").expect("model_error");
    assert!(error.contains("no-such-model.onnx"), "{error}");
}

#[test]
fn a_corrupt_model_leaves_the_rule_with_fallback_recorded() {
    require_ort();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("router-latency.onnx");
    std::fs::write(&path, b"this is not an ONNX model").expect("writing the corrupt model");
    let mut agent = router(&policy("", &model_block(&path.display().to_string())));
    let p = run(agent.as_mut(), &degrading, 2400);
    assert_eq!(renders(&p), RULE);
    assert!(p
        .iter()
        .all(|q| q.fallback.as_deref() == Some("model_unavailable") && q.model.is_none()));
    let error = note(&p[0], "model_error").expect("model_error");
    assert!(error.contains("router-latency.onnx"), "{error}");
}

#[test]
fn a_nan_model_falls_back_to_the_rule_on_every_tick() {
    let mut agent = learned("testdata/router-nan.onnx", "");
    let p = run(agent.as_mut(), &degrading, 2400);
    assert_eq!(renders(&p), RULE);
    // Three NaN answers (0:15, 0:30, 0:45) open the model's circuit for 30 s; from then on
    // every other tick (0:75, 0:105, ...: the ticks at 15 s past a half minute) probes the
    // model and gets NaN again, and the ticks between find the circuit open.
    let reasons: Vec<(String, Option<&str>)> = p
        .iter()
        .map(|q| (render(q), q.fallback.as_deref()))
        .collect();
    let nan = Some("non_finite_output");
    let open = Some("circuit_open");
    let want: Vec<(String, Option<&str>)> = RULE
        .iter()
        .zip([
            nan, nan, open, open, open, open, open, nan, nan, open, nan, nan,
        ])
        .map(|(r, f)| (r.to_string(), f))
        .collect();
    assert_eq!(reasons, want);
    for q in &p {
        assert_eq!(q.model, None, "{}", render(q));
        assert_eq!(
            note(q, "model_error"),
            None,
            "the model loaded: {}",
            render(q)
        );
        let inference = q.inference.as_ref().expect("the failed call is attached");
        assert_eq!(inference.fallback, q.fallback, "{}", render(q));
        assert_eq!(factor(q, "web-eu.forecast_cost_ms"), None, "{}", render(q));
    }
}

#[test]
fn drift_with_on_drift_rules_switches_the_model_off() {
    // The test stream's cpu never moves (0.4 throughout), so every row's `cpu_delta` falls
    // in one decile of the training distribution: after 50 rows (13 buckets of 4
    // backends) the model is switched off for good.
    let mut agent = learned(
        "testdata/router-trend.onnx",
        ", drift: {on_drift: rules, window: 100, min_rows: 50}",
    );
    let p = run(agent.as_mut(), &degrading, 2400);
    assert_eq!(renders(&p), RULE);
    assert_eq!(p[0].fallback, None, "the first tick is before min_rows");
    for q in &p[2..] {
        assert_eq!(q.fallback.as_deref(), Some("drift"), "{}", render(q));
        assert_eq!(
            note(q, "drift_psi_max").as_deref(),
            Some(
                "`cpu_delta` drifted: PSI over 100 rows above 0.2; model switched off until \
                 the agent restarts (on_drift: rules)"
            ),
            "{}",
            render(q)
        );
    }
}

#[test]
fn the_cost_of_the_averages_is_what_the_rule_weighs() {
    // The rule's score is (1 - e) / p99 with the same load term, the forecast's 1 / cost:
    // for a backend without errors the two agree on the EWMA cost.
    assert_eq!(cost(0.0, 113.14), 113.14);
    assert_eq!(cost(0.02, 100.0), 0.98 * 100.0 + 0.02 * 5000.0);
}
