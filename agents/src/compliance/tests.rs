//! The compliance agent end to end: events in, exact proposals out.

use std::sync::Arc;

use conclave_runtime::telemetry::{EventSample, Telemetry, TelemetryKind};
use conclave_runtime::{
    factor, Action, Agent, Proposal, Proposals, QuarantineScope, Severity, Timestamp,
};
use serde_json::{json, Value};

use super::*;

const POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: compliance-test, revision: t1}
spec:
  targets:
    - {name: orders, kind: topic}
    - {name: payments-events, kind: topic}
    - {name: clickstream, kind: topic}
  agents:
    compliance: {mode: shadow, targets: {names: [orders, payments-events]}}
"#;

fn agent(settings: Value) -> ComplianceAgent {
    let policy = conclave_runtime::policy::compile_str(
        "test.yaml",
        POLICY,
        &["breaker", "compliance", "router", "scaler"],
    )
    .expect("test policy compiles");
    let config = ComplianceConfig::from_settings(&settings).expect("test settings are valid");
    ComplianceAgent::new(config, Scope::new(Arc::new(policy), NAME))
}

const T0: i64 = 1_800_000_000_000;

fn event(topic: &str, producer: &str, region: &str, fields: Value) -> Telemetry {
    let Value::Object(map) = fields else {
        panic!("test fields must be an object");
    };
    Telemetry::Event(EventSample {
        schema_version: 1,
        topic: topic.into(),
        producer: producer.into(),
        region: region.into(),
        key: "k1".into(),
        ts: Timestamp::from_millis(T0),
        fields: map.into_iter().collect(),
    })
}

fn run(agent: &mut ComplianceAgent, events: Vec<Telemetry>) -> Vec<Proposal> {
    let mut out = Proposals::new(NAME);
    let mut all = Vec::new();
    for e in events {
        agent.observe(&e, &mut out);
        all.extend(out.take());
    }
    agent.tick(Timestamp::from_millis(T0 + 15_000), &mut out);
    all.extend(out.take());
    all
}

fn quarantine(producer: &str, reason: &str) -> Action {
    Action::Quarantine {
        scope: QuarantineScope::Producer(producer.into()),
        reason: reason.into(),
    }
}

fn alert(severity: Severity, text: &str) -> Action {
    Action::Alert {
        severity,
        text: text.into(),
    }
}

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "jane.doe@example.com";

fn pii_fields() -> Value {
    json!({
        "payment": {"card_number": CARD, "amount": 12.5},
        "customer": {"email": EMAIL, "name": "Jane"},
        "items": [{"sku": "a1"}, {"sku": "b2", "gift_note": format!("for {EMAIL}")}],
    })
}

#[test]
fn pii_quarantines_the_producer_and_warns_with_paths_only() {
    let got = run(
        &mut agent(Value::Null),
        vec![event("orders", "shop-7", "eu-west-1", pii_fields())],
    );
    let want_reason = "e-mail address at fields.customer.email, \
                       e-mail address at fields.items[1].gift_note, \
                       card number at fields.payment.card_number";
    let actions: Vec<&Action> = got.iter().map(|p| &p.action).collect();
    assert_eq!(
        actions,
        vec![
            &quarantine("shop-7", want_reason),
            &alert(
                Severity::Warning,
                &format!("personal data from producer `shop-7` on topic `orders`: {want_reason}")
            ),
        ]
    );
    for p in &got {
        assert_eq!(p.target.as_str(), "orders");
        assert_eq!(p.at, Timestamp::from_millis(T0));
        assert_eq!(
            p.rationale,
            vec![
                factor("card_number_findings", 1.0),
                factor("email_findings", 2.0)
            ]
        );
        let text = serde_json::to_string(p).expect("proposal serializes");
        for value in [CARD, EMAIL, "4111111111111111", "jane.doe"] {
            assert!(!text.contains(value), "proposal shows `{value}`: {text}");
        }
    }
    let ids: Vec<&str> = got.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "compliance-orders-1800000000000",
            "compliance-orders-1800000000000-2"
        ]
    );
}

#[test]
fn residency_breach_alerts_critical_and_quarantines() {
    let settings = json!({"residency": {"orders": ["eu-west-1", "eu-central-1"]}});
    let got = run(
        &mut agent(settings.clone()),
        vec![event(
            "orders",
            "shop-us",
            "us-east-1",
            json!({"sku": "a1"}),
        )],
    );
    let actions: Vec<&Action> = got.iter().map(|p| &p.action).collect();
    assert_eq!(
        actions,
        vec![
            &quarantine("shop-us", "region `us-east-1` not allowed on topic `orders`"),
            &alert(
                Severity::Critical,
                "event from region `us-east-1` on topic `orders` breaks residency (allowed: eu-west-1, eu-central-1)"
            ),
        ]
    );
    assert_eq!(got[0].rationale, vec![factor("residency_violation", 1.0)]);

    let both = run(
        &mut agent(settings.clone()),
        vec![event(
            "orders",
            "shop-us",
            "us-east-1",
            json!({"ssn": "123-45-6789"}),
        )],
    );
    let actions: Vec<&Action> = both.iter().map(|p| &p.action).collect();
    assert_eq!(
        actions,
        vec![
            &quarantine(
                "shop-us",
                "US SSN at fields.ssn; region `us-east-1` not allowed on topic `orders`"
            ),
            &alert(
                Severity::Critical,
                "event from region `us-east-1` on topic `orders` breaks residency (allowed: eu-west-1, eu-central-1)"
            ),
            &alert(
                Severity::Warning,
                "personal data from producer `shop-us` on topic `orders`: US SSN at fields.ssn"
            ),
        ]
    );

    let allowed = run(
        &mut agent(settings),
        vec![event(
            "orders",
            "shop-eu",
            "eu-central-1",
            json!({"sku": "a1"}),
        )],
    );
    assert_eq!(allowed, Vec::new(), "allowed region");
}

#[test]
fn each_case_proposes_exactly_this() {
    struct Case {
        name: &'static str,
        settings: Value,
        events: Vec<Telemetry>,
        /// `(producer, reason)` of each quarantine proposed, in order.
        quarantines: &'static [(&'static str, &'static str)],
        proposals: usize,
    }
    let cases = vec![
        Case {
            name: "allowed field is not reported",
            settings: json!({"allow_fields": {"fields.customer.email": ["email"]}}),
            events: vec![event("orders", "crm", "eu-west-1", json!({"customer": {"email": EMAIL}}))],
            quarantines: &[],
            proposals: 0,
        },
        Case {
            name: "allowed field, other fields still reported",
            settings: json!({"allow_fields": {"fields.customer.email": ["email"]}}),
            events: vec![event("orders", "crm", "eu-west-1", pii_fields())],
            quarantines: &[(
                "crm",
                "e-mail address at fields.items[1].gift_note, card number at fields.payment.card_number",
            )],
            proposals: 2,
        },
        Case {
            name: "a producer is proposed once, across events and topics",
            settings: Value::Null,
            events: vec![
                event("orders", "shop-7", "eu-west-1", json!({"card": CARD})),
                event("orders", "shop-7", "eu-west-1", json!({"card": CARD})),
                event("payments-events", "shop-7", "eu-west-1", json!({"iban": "DE89370400440532013000"})),
                event("orders", "shop-8", "eu-west-1", json!({"card": CARD})),
            ],
            quarantines: &[
                ("shop-7", "card number at fields.card"),
                ("shop-8", "card number at fields.card"),
            ],
            proposals: 4,
        },
        Case {
            name: "clean events propose nothing and do not mark the producer",
            settings: Value::Null,
            events: vec![
                event("orders", "shop-7", "eu-west-1", json!({"sku": "a1", "ts": T0})),
                event("orders", "shop-7", "eu-west-1", json!({"card": CARD})),
            ],
            quarantines: &[("shop-7", "card number at fields.card")],
            proposals: 2,
        },
        Case {
            name: "out-of-scope topic is ignored",
            settings: json!({"residency": {"clickstream": ["eu-west-1"]}}),
            events: vec![event("clickstream", "web", "us-east-1", json!({"email": EMAIL}))],
            quarantines: &[],
            proposals: 0,
        },
        Case {
            name: "disabled detectors find nothing",
            settings: json!({"detectors": []}),
            events: vec![event("orders", "shop-7", "eu-west-1", pii_fields())],
            quarantines: &[],
            proposals: 0,
        },
        Case {
            name: "prefix residency rule",
            settings: json!({"residency": {"payments-*": ["eu-central-1"]}}),
            events: vec![event("payments-events", "psp", "eu-west-1", json!({}))],
            quarantines: &[("psp", "region `eu-west-1` not allowed on topic `payments-events`")],
            proposals: 2,
        },
        Case {
            name: "long lists are cut",
            settings: Value::Null,
            events: vec![event(
                "orders",
                "bulk",
                "eu-west-1",
                json!({"e": [EMAIL, EMAIL, EMAIL, EMAIL, EMAIL, EMAIL, EMAIL]}),
            )],
            quarantines: &[(
                "bulk",
                "e-mail address at fields.e[0], e-mail address at fields.e[1], \
                 e-mail address at fields.e[2], e-mail address at fields.e[3], \
                 e-mail address at fields.e[4] and 2 more",
            )],
            proposals: 2,
        },
    ];
    for case in cases {
        let got = run(&mut agent(case.settings), case.events);
        let quarantines: Vec<(&str, &str)> = got
            .iter()
            .filter_map(|p| match &p.action {
                Action::Quarantine {
                    scope: QuarantineScope::Producer(producer),
                    reason,
                } => Some((producer.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(quarantines, case.quarantines, "case `{}`", case.name);
        assert_eq!(got.len(), case.proposals, "case `{}`: {got:#?}", case.name);
    }
}

#[test]
fn agent_wants_only_events() {
    let a = agent(Value::Null);
    assert_eq!(a.name(), "compliance");
    assert!(a.wants(TelemetryKind::Event));
    assert!(!a.wants(TelemetryKind::Metrics));
    assert!(!a.wants(TelemetryKind::Health));
}
