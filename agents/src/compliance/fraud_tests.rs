//! The learned compliance agent end to end: policies naming a model, agents built by the
//! catalog (`agent_specs`), event samples in, proposals out, at explicit timestamps.
//!
//! Tests that run a model need ONNX Runtime: they find it by the runtime's resolution
//! order (`ORT_DYLIB_PATH`, the project venv, the system) and fail, with the message
//! naming `agents/training/setup.sh`, when it is missing. They never skip.

use std::sync::Arc;

use conclave_runtime::telemetry::{EventSample, Telemetry, SCHEMA_VERSION};
use conclave_runtime::{
    Action, Agent, ModelId, Policy, Proposal, Proposals, QuarantineScope, Severity, Timestamp,
};
use serde_json::{json, Value};

use super::NAME;
use crate::test_support::{built_agent, compile_at, models_dir, require_ort};

/// 2027-01-15T08:00:00Z.
const BASE_MS: i64 = 1_800_000_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(BASE_MS + s * 1000)
}

/// The compliance model block for `path` (relative to `agents/models/`).
fn model_block(path: &str) -> String {
    format!(
        r#"
      model:
        path: {path}
        inputs: [{{name: features, type: float32, shape: [-1, 9]}}]
        outputs: [{{name: fraud, type: float32, shape: [-1, 1]}}]
        timeout: 5s
      fallback: rules"#
    )
}

/// A policy where compliance enforces on topic `orders`; `model` is a [`model_block`] or
/// empty.
fn policy(settings: &str, model: &str) -> Arc<Policy> {
    let yaml = format!(
        r#"apiVersion: conclave/v1
kind: Policy
metadata: {{name: learned-compliance-test}}
spec:
  targets:
    - {{name: orders, kind: topic}}
  agents:
    compliance:
      mode: enforce
      targets: {{names: [orders]}}
      settings: {settings}{model}
  arbiter:
    window: 15s
"#
    );
    let file = models_dir().join("learned-compliance-test.yaml");
    compile_at(&file, &yaml)
}

/// The compliance agent the catalog builds for a policy with `settings` and the model at
/// `path` (relative to `agents/models/`).
fn agent(settings: &str, path: &str) -> Box<dyn Agent> {
    require_ort();
    let policy = policy(settings, &model_block(path));
    built_agent(&policy, NAME)
}

fn event(s: i64, producer: &str, fields: Value) -> Telemetry {
    let Value::Object(map) = fields else {
        panic!("test fields must be an object");
    };
    Telemetry::Event(EventSample {
        schema_version: SCHEMA_VERSION,
        topic: "orders".into(),
        producer: producer.into(),
        region: "eu-west-1".into(),
        key: format!("ord-{s}"),
        ts: t(s),
        fields: map.into_iter().collect(),
    })
}

/// A clean order of `cents` on `card`.
fn order(s: i64, producer: &str, card: &str, cents: u64) -> Telemetry {
    event(
        s,
        producer,
        json!({"amount_cents": cents, "currency": "EUR",
               "card": {"fingerprint": card, "last4": "4242"}}),
    )
}

/// An ordinary order with an e-mail address pasted into its note, on a card of its own.
fn pii(s: i64, producer: &str) -> Telemetry {
    event(
        s,
        producer,
        json!({"amount_cents": 2_500, "card": {"fingerprint": format!("fp_pii_{s}")},
               "note": "send the invoice to jane@example.com please"}),
    )
}

/// Proposals after each event, in order.
fn feed(agent: &mut dyn Agent, events: &[Telemetry]) -> Vec<Vec<Proposal>> {
    let mut out = Proposals::new(NAME);
    events
        .iter()
        .map(|e| {
            agent.observe(e, &mut out);
            out.take()
        })
        .collect()
}

fn factor_names(p: &Proposal) -> Vec<&str> {
    p.rationale.iter().map(|f| f.name.as_str()).collect()
}

fn factor(p: &Proposal, name: &str) -> Option<f64> {
    p.rationale.iter().find(|f| f.name == name).map(|f| f.value)
}

fn note(p: &Proposal, name: &str) -> String {
    p.rationale
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.note.clone())
        .unwrap_or_default()
}

fn quarantine(producer: &str, reason: &str) -> Action {
    Action::Quarantine {
        scope: QuarantineScope::Producer(producer.into()),
        reason: reason.into(),
    }
}

fn warning(text: &str) -> Action {
    Action::Alert {
        severity: Severity::Warning,
        text: text.into(),
    }
}

fn model(name: &str, version: &str) -> Option<ModelId> {
    Some(ModelId {
        name: name.into(),
        version: version.into(),
    })
}

const EMAIL_REASON: &str = "e-mail address at fields.note";

fn email_alert(producer: &str) -> Action {
    warning(&format!(
        "personal data from producer `{producer}` on topic `orders`: e-mail address at fields.note"
    ))
}

/// Ordinary orders from three producers, a large order on a new card, and a burst of
/// three large orders on one card from `partner` (at 20, 50 and 70 s).
fn scripted_burst() -> Vec<Telemetry> {
    vec![
        order(0, "web-shop", "fp_a1", 1_800),
        order(10, "pos", "fp_a2", 250_000),
        order(20, "partner", "fp_burst", 250_000),
        order(40, "web-shop", "fp_a3", 4_000),
        order(50, "partner", "fp_burst", 310_000),
        order(70, "partner", "fp_burst", 180_000),
    ]
}

// ---------------------------------------------------------------------------------------
// The committed model

#[test]
fn the_model_quarantines_a_burst_at_its_second_order() {
    let mut a = agent("{}", "compliance-fraud.onnx");
    let out = feed(a.as_mut(), &scripted_burst());
    let counts: Vec<usize> = out.iter().map(Vec::len).collect();
    // A large order on a new card (10 s) and the burst's first order are nothing to the
    // model; its second order is a finding; the third is deduplicated.
    assert_eq!(counts, [0, 0, 0, 0, 2, 0]);
    let (q, alert) = (&out[4][0], &out[4][1]);
    let score = factor(q, "fraud_score").expect("a score");
    assert!((0.5..=1.0).contains(&score), "score {score}");
    assert_eq!(
        q.action,
        quarantine(
            "partner",
            &format!(
                "fraud pattern: 2 orders on one card at fields.card.fingerprint within 3600 s, \
                 score {score:.2}"
            )
        )
    );
    assert_eq!(
        alert.action,
        warning(&format!(
            "fraud pattern from producer `partner` on topic `orders`: score {score:.2} by \
             compliance-fraud 1.0.0; 2 orders on one card (fields.card.fingerprint) within \
             3600 s, 2 of them large"
        ))
    );
    for p in [q, alert] {
        assert_eq!(p.at, t(50));
        assert_eq!(p.model, model("compliance-fraud", "1.0.0"));
        assert_eq!(p.fallback, None);
        assert_eq!(p.confidence.get(), score, "the score is the confidence");
        assert_eq!(
            factor_names(p),
            [
                "fraud_score",
                "fraud_threshold",
                "card_orders",
                "card_large",
                "card_gap_s",
                "producer_large_share",
                "fraud_alarms"
            ]
        );
        let values: Vec<f64> = p.rationale.iter().skip(1).map(|f| f.value).collect();
        assert_eq!(values, [0.5, 2.0, 2.0, 30.0, 1.0, 1.0]);
        let inference = p.inference.as_ref().expect("the call is traced");
        assert_eq!(
            (&inference.model, inference.rows, inference.features),
            (&model("compliance-fraud", "1.0.0").expect("an id"), 1, 9)
        );
        assert_eq!(inference.fallback, None);
    }
    // No value in the rationale: only the field path names the card.
    assert!(note(q, "card_orders").contains("fields.card.fingerprint"));
    assert!(!format!("{q:?}").contains("fp_burst"));
}

#[test]
fn the_detectors_run_first_and_the_score_is_recorded() {
    let mut a = agent("{}", "compliance-fraud.onnx");
    let out = feed(a.as_mut(), &[pii(0, "web-shop")]);
    let actions: Vec<&Action> = out[0].iter().map(|p| &p.action).collect();
    assert_eq!(
        actions,
        [
            &quarantine("web-shop", EMAIL_REASON),
            &email_alert("web-shop")
        ]
    );
    for p in &out[0] {
        // The detectors decided: no model named, full confidence, the score recorded.
        assert_eq!((&p.model, p.confidence.get()), (&None, 1.0));
        assert_eq!(p.fallback, None);
        assert_eq!(
            factor_names(p),
            ["email_findings", "fraud_score", "fraud_threshold"]
        );
        assert!(factor(p, "fraud_score").is_some_and(|s| s < 0.5));
        assert!(note(p, "fraud_score").contains("no fraud finding"));
        assert!(p.inference.is_some());
    }
}

// ---------------------------------------------------------------------------------------
// Model faults: the detectors decide alone and say why

#[test]
fn a_missing_or_corrupt_model_leaves_the_detectors_with_the_fallback_recorded() {
    for (name, path) in [
        ("missing", "no-such-model.onnx"),
        ("corrupt", "testdata/compliance-corrupt.onnx"),
        ("another agent's model", "testdata/breaker-nan.onnx"),
    ] {
        let mut a = agent("{}", path);
        let mut events = scripted_burst();
        events.push(pii(80, "web-shop"));
        events.push(pii(90, "pos"));
        let out = feed(a.as_mut(), &events);
        let counts: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(
            counts,
            [0, 0, 0, 0, 0, 0, 2, 2],
            "case `{name}`: no fraud finding"
        );
        let file = path.rsplit('/').next().unwrap_or(path);
        for (i, p) in out[6].iter().chain(&out[7]).enumerate() {
            assert_eq!(
                p.fallback.as_deref(),
                Some("model_unavailable"),
                "case `{name}`"
            );
            assert_eq!(
                (&p.model, p.inference.is_none()),
                (&None, true),
                "case `{name}`"
            );
            // The load error, naming the file, on the instance's first proposals only.
            if i < 2 {
                assert_eq!(
                    factor_names(p),
                    ["email_findings", "model_error"],
                    "case `{name}`"
                );
                assert!(note(p, "model_error").contains(file), "case `{name}`");
            } else {
                assert_eq!(factor_names(p), ["email_findings"], "case `{name}`");
            }
        }
        assert_eq!(out[6][0].action, quarantine("web-shop", EMAIL_REASON));
        assert_eq!(out[7][0].action, quarantine("pos", EMAIL_REASON));
    }
}

#[test]
fn a_nan_model_is_a_fault_and_the_detectors_decide() {
    let mut a = agent("{}", "testdata/compliance-nan.onnx");
    let mut events = scripted_burst();
    events.push(pii(80, "web-shop"));
    let out = feed(a.as_mut(), &events);
    let counts: Vec<usize> = out.iter().map(Vec::len).collect();
    assert_eq!(counts, [0, 0, 0, 0, 0, 0, 2]);
    for p in &out[6] {
        assert_eq!(p.fallback.as_deref(), Some("non_finite_output"));
        assert_eq!(p.model, None);
        assert_eq!(factor_names(p), ["email_findings"]);
        let inference = p.inference.as_ref().expect("the failed call is traced");
        assert_eq!(inference.fallback.as_deref(), Some("non_finite_output"));
    }
}

// ---------------------------------------------------------------------------------------
// Settings, on a model that calls every event fraud (0.9)

const CERTAIN: &str = "testdata/compliance-certain.onnx";

fn certain_score() -> f64 {
    f64::from(0.9f32)
}

#[test]
fn a_finding_needs_min_orders_on_the_card() {
    let mut a = agent("{}", CERTAIN);
    let out = feed(
        a.as_mut(),
        &[
            order(0, "pos", "fp_1", 250_000),
            order(10, "partner", "fp_b", 250_000),
            order(30, "partner", "fp_b", 300_000),
        ],
    );
    assert!(out[0].is_empty() && out[1].is_empty(), "single orders");
    let actions: Vec<&Action> = out[2].iter().map(|p| &p.action).collect();
    assert_eq!(
        actions,
        [
            &quarantine(
                "partner",
                "fraud pattern: 2 orders on one card at fields.card.fingerprint within 3600 s, \
                 score 0.90"
            ),
            &warning(
                "fraud pattern from producer `partner` on topic `orders`: score 0.90 by \
                 test-compliance-certain 0.0.1; 2 orders on one card (fields.card.fingerprint) \
                 within 3600 s, 2 of them large"
            ),
        ]
    );
    for p in &out[2] {
        assert_eq!(p.confidence.get(), certain_score());
        assert_eq!(p.model, model("test-compliance-certain", "0.0.1"));
    }
    // With `min_orders: 1` a single order is enough.
    let mut a = agent("{fraud: {min_orders: 1}}", CERTAIN);
    let out = feed(a.as_mut(), &[order(0, "pos", "fp_1", 900)]);
    assert_eq!(
        out[0][0].action,
        quarantine(
            "pos",
            "fraud pattern: 1 orders on one card at fields.card.fingerprint within 3600 s, \
             score 0.90"
        )
    );
}

#[test]
fn a_finding_on_an_event_the_detectors_flagged_joins_their_quarantine() {
    let mut a = agent("{}", CERTAIN);
    let card = json!({"fingerprint": "fp_b"});
    let out = feed(
        a.as_mut(),
        &[
            order(0, "partner", "fp_b", 250_000),
            event(
                10,
                "partner",
                json!({"amount_cents": 250_000, "card": card,
                       "note": "send the invoice to jane@example.com please"}),
            ),
        ],
    );
    let actions: Vec<&Action> = out[1].iter().map(|p| &p.action).collect();
    assert_eq!(
        actions,
        [
            &quarantine(
                "partner",
                "e-mail address at fields.note; fraud pattern: 2 orders on one card at \
                 fields.card.fingerprint within 3600 s, score 0.90"
            ),
            &email_alert("partner"),
            &warning(
                "fraud pattern from producer `partner` on topic `orders`: score 0.90 by \
                 test-compliance-certain 0.0.1; 2 orders on one card (fields.card.fingerprint) \
                 within 3600 s, 2 of them large"
            ),
        ]
    );
    // The quarantine is the detectors' (full confidence) and the model's (named).
    let models: Vec<bool> = out[1].iter().map(|p| p.model.is_some()).collect();
    assert_eq!(models, [true, false, true]);
    let confidences: Vec<f64> = out[1].iter().map(|p| p.confidence.get()).collect();
    assert_eq!(confidences, [1.0, 1.0, certain_score()]);
}

#[test]
fn action_alert_alerts_once_per_producer_and_the_detectors_still_quarantine() {
    let mut a = agent("{fraud: {action: alert}}", CERTAIN);
    let out = feed(
        a.as_mut(),
        &[
            order(0, "partner", "fp_b", 250_000),
            order(10, "partner", "fp_b", 250_000),
            order(20, "partner", "fp_b", 250_000),
            pii(30, "partner"),
        ],
    );
    let actions: Vec<Vec<&Action>> = out
        .iter()
        .map(|ps| ps.iter().map(|p| &p.action).collect())
        .collect();
    assert_eq!(
        actions,
        [
            vec![],
            vec![&warning(
                "fraud pattern from producer `partner` on topic `orders`: score 0.90 by \
                 test-compliance-certain 0.0.1; 2 orders on one card (fields.card.fingerprint) \
                 within 3600 s, 2 of them large"
            )],
            vec![],
            vec![
                &quarantine("partner", EMAIL_REASON),
                &email_alert("partner")
            ],
        ]
    );
    assert!(note(&out[3][0], "fraud_score").contains("no fraud finding"));
}

#[test]
fn report_mode_records_the_score_and_counts_alarms_without_acting() {
    let mut a = agent("{fraud: {mode: report}}", CERTAIN);
    let out = feed(
        a.as_mut(),
        &[
            order(0, "partner", "fp_b", 250_000),
            order(10, "partner", "fp_b", 250_000),
            order(20, "partner", "fp_b", 250_000),
            pii(30, "web-shop"),
        ],
    );
    let counts: Vec<usize> = out.iter().map(Vec::len).collect();
    assert_eq!(counts, [0, 0, 0, 2]);
    for p in &out[3] {
        assert_eq!(p.model, None);
        assert_eq!(
            factor_names(p),
            [
                "email_findings",
                "fraud_score",
                "fraud_threshold",
                "fraud_alarms"
            ]
        );
        assert_eq!(factor(p, "fraud_score"), Some(certain_score()));
        assert_eq!(factor(p, "fraud_alarms"), Some(2.0));
        assert!(note(p, "fraud_score").contains("fraud.mode report"));
        assert_eq!(
            note(p, "fraud_threshold"),
            "fraud.mode report, min_orders 2, action quarantine"
        );
    }
}

#[test]
fn drift_with_on_drift_rules_switches_the_model_off() {
    // The test model's reference statistics are uniform on [0, 1]; real orders (amounts,
    // gaps of seconds to an hour) are far outside them.
    let mut a = agent(
        "{drift: {on_drift: rules, window: 20, min_rows: 20}}",
        CERTAIN,
    );
    let mut events: Vec<Telemetry> = (0..20)
        .map(|i| order(i, "web-shop", &format!("fp_{i}"), 2_000))
        .collect();
    events.push(order(30, "partner", "fp_b", 250_000));
    events.push(order(40, "partner", "fp_b", 250_000));
    events.push(pii(50, "pos"));
    let out = feed(a.as_mut(), &events);
    assert!(out.iter().take(22).all(Vec::is_empty), "no fraud finding");
    let actions: Vec<&Action> = out[22].iter().map(|p| &p.action).collect();
    assert_eq!(
        actions,
        [&quarantine("pos", EMAIL_REASON), &email_alert("pos")]
    );
    for p in &out[22] {
        assert_eq!(p.fallback.as_deref(), Some("drift"));
        assert_eq!(factor_names(p), ["email_findings", "drift_psi_max"]);
        assert!(note(p, "drift_psi_max").contains("on_drift: rules"));
    }
}
