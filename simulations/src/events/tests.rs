use std::collections::BTreeMap;
use std::time::Duration;

use conclave_agents::compliance::{scan, KindSet, PiiKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::*;

const N: usize = 10_000;

fn spec() -> serde_json::Value {
    json!({
        "regions": ["eu-west-1", "eu-central-1", "us-east-1", "ap-south-1"],
        "topics": [
            {"name": "orders", "producers": ["checkout-1", "checkout-2", "checkout-3"],
             "allowed_regions": ["eu-west-1", "eu-central-1"]},
            {"name": "payments", "producers": ["pay-1", "pay-2"],
             "allowed_regions": ["eu-central-1"]},
            {"name": "clicks", "producers": ["web-1"]}
        ],
        "shares": {"pii": 0.05, "residency": 0.02, "fraud": 0.03, "decoy": 0.10},
        "fraud": {"burst_size": 6, "max_span_s": 120.0}
    })
}

fn generator(spec: serde_json::Value, seed: u64, component: &str) -> EventGenerator {
    let spec: EventMixSpec = serde_json::from_value(spec).expect("test spec deserializes");
    EventGenerator::compile(spec, Seed::new(seed), component, "events").expect("valid spec")
}

fn start() -> Timestamp {
    "2026-12-02T09:00:00Z".parse().expect("valid")
}

/// `N` events, 50 ms apart.
fn sample(seed: u64) -> Vec<LabelledEvent> {
    let mut g = generator(spec(), seed, "events/orders");
    (0..N)
        .map(|i| g.next_event(start().plus(Duration::from_millis(50 * i as u64))))
        .collect()
}

/// What the compliance agent finds in `event`: its detectors (`scan`, all kinds) over
/// the same walk as `agents/src/compliance/features.rs` (strings, integers and object
/// keys, depth first, paths like `fields.items[2].email`, each `(kind, path)` once).
fn findings(event: &EventSample) -> Vec<(PiiKind, String)> {
    fn text(out: &mut Vec<(PiiKind, String)>, path: &str, s: &str) {
        for m in scan(s, KindSet::all()) {
            let f = (m.kind, path.to_string());
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    fn plain(key: &str) -> bool {
        !key.is_empty()
            && key.len() <= 64
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && key.bytes().filter(u8::is_ascii_digit).count() <= 3
    }
    fn entry(out: &mut Vec<(PiiKind, String)>, path: &mut String, key: &str, v: &Value) {
        let len = path.len();
        path.push('.');
        path.push_str(if plain(key) { key } else { "*" });
        text(out, path, key);
        value(out, path, v);
        path.truncate(len);
    }
    fn value(out: &mut Vec<(PiiKind, String)>, path: &mut String, v: &Value) {
        match v {
            Value::String(s) => text(out, path, s),
            Value::Number(n) => {
                if let Some(i) = n.as_u64() {
                    text(out, path, &i.to_string());
                } else if let Some(i) = n.as_i64() {
                    text(out, path, &i.to_string());
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    value(out, path, item);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    entry(out, path, k, v);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
    let mut out = Vec::new();
    let mut path = String::from("fields");
    for (k, v) in &event.fields {
        entry(&mut out, &mut path, k, v);
    }
    out
}

fn count(events: &[LabelledEvent], kind: TruthKind) -> usize {
    events.iter().filter(|e| e.truth.kind() == kind).count()
}

/// `got` is within four standard deviations of a binomial(`n`, `p`) mean.
fn assert_share(name: &str, got: usize, n: usize, p: f64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (got as f64 - mean).abs() <= 4.0 * sd,
        "`{name}`: {got} of {n}, expected {mean:.0} ± {:.0}",
        4.0 * sd
    );
}

#[test]
fn shares_are_met_within_tolerance() {
    let events = sample(11);
    let cases = [
        (TruthKind::Pii, 0.05),
        (TruthKind::Residency, 0.02),
        (TruthKind::Fraud, 0.03),
        (TruthKind::Decoy, 0.10),
        (TruthKind::Clean, 0.80),
    ];
    for (kind, p) in cases {
        assert_share(kind.as_str(), count(&events, kind), N, p);
    }
}

#[test]
fn kinds_are_spread_evenly() {
    let events = sample(12);
    let mut pii: BTreeMap<PiiKind, usize> = BTreeMap::new();
    let mut decoys: BTreeMap<DecoyKind, usize> = BTreeMap::new();
    for e in &events {
        match &e.truth {
            Truth::Pii { kind, .. } => *pii.entry(*kind).or_default() += 1,
            Truth::Decoy { kind, .. } => *decoys.entry(*kind).or_default() += 1,
            _ => {}
        }
    }
    let n_pii = count(&events, TruthKind::Pii);
    for kind in PiiKind::ALL {
        let got = pii.get(&kind).copied().unwrap_or(0);
        assert_share(kind.as_str(), got, n_pii, 0.2);
    }
    let n_decoy = count(&events, TruthKind::Decoy);
    for kind in DecoyKind::ALL {
        let got = decoys.get(&kind).copied().unwrap_or(0);
        assert_share(kind.as_str(), got, n_decoy, 0.2);
    }
}

#[test]
fn compliance_detectors_find_every_planted_pii_and_nothing_else() {
    let events = sample(13);
    let (mut planted, mut found, mut false_findings) = (0, 0, 0);
    for e in &events {
        let got = findings(&e.event);
        match &e.truth {
            Truth::Pii { kind, path } => {
                planted += 1;
                assert_eq!(got, [(*kind, path.clone())], "{:?}", e.event.fields);
                found += 1;
            }
            other => {
                assert!(got.is_empty(), "{other:?}: {got:?} in {:?}", e.event.fields);
                false_findings += got.len();
            }
        }
    }
    assert!(planted > 400, "{planted} planted");
    assert_eq!(found, planted, "recall 1.0");
    assert_eq!(false_findings, 0, "no false positives, decoys included");
}

#[test]
fn regex_only_baseline_flags_every_decoy_and_no_clean_event() {
    let events = sample(14);
    let mut flagged: BTreeMap<TruthKind, usize> = BTreeMap::new();
    let mut decoys_by_kind: BTreeMap<DecoyKind, (usize, usize)> = BTreeMap::new();
    for e in &events {
        let is_flagged = regex_only_flags(&e.event);
        if is_flagged {
            *flagged.entry(e.truth.kind()).or_default() += 1;
        }
        if let Truth::Decoy { kind, .. } = &e.truth {
            let slot = decoys_by_kind.entry(*kind).or_default();
            slot.0 += 1;
            slot.1 += usize::from(is_flagged);
        }
    }
    let decoys = count(&events, TruthKind::Decoy);
    assert!(decoys > 800, "{decoys} decoys");
    assert_eq!(flagged.get(&TruthKind::Decoy), Some(&decoys), "every decoy");
    for (kind, (total, hit)) in decoys_by_kind {
        assert_eq!(hit, total, "decoy kind `{}`", kind.as_str());
    }
    for kind in [TruthKind::Clean, TruthKind::Residency, TruthKind::Fraud] {
        assert_eq!(flagged.get(&kind), None, "`{}` events", kind.as_str());
    }
    // The baseline catches most, not all, of the planted data: bare NINOs and compact
    // IBANs with short digit runs have neither an `@` nor 13 digits.
    let pii = count(&events, TruthKind::Pii);
    let pii_flagged = flagged.get(&TruthKind::Pii).copied().unwrap_or(0);
    assert!(
        pii_flagged > pii / 2 && pii_flagged < pii,
        "{pii_flagged} of {pii}"
    );
}

#[test]
fn residency_breaches_break_their_topic_rule_and_nothing_else_does() {
    let g = generator(spec(), 1, "events/orders");
    let rules = g.residency_rules();
    let want: BTreeMap<String, Vec<String>> = BTreeMap::from([
        (
            "orders".to_string(),
            vec!["eu-west-1".to_string(), "eu-central-1".to_string()],
        ),
        ("payments".to_string(), vec!["eu-central-1".to_string()]),
    ]);
    assert_eq!(rules, want);
    let events = sample(15);
    for e in &events {
        let allowed = rules.get(&e.event.topic);
        let breaks = allowed.is_some_and(|a| !a.contains(&e.event.region));
        match &e.truth {
            Truth::Residency { region, allowed: a } => {
                assert!(breaks, "{e:?}");
                assert_eq!(region, &e.event.region);
                assert_eq!(Some(a), allowed);
            }
            other => assert!(!breaks, "{other:?} from `{}`", e.event.region),
        }
    }
}

#[test]
fn fraud_bursts_are_one_card_from_one_producer_in_a_short_span() {
    let events = sample(16);
    let mut bursts: BTreeMap<u64, Vec<(u32, &LabelledEvent)>> = BTreeMap::new();
    for e in &events {
        if let Truth::Fraud { burst, index } = e.truth {
            bursts.entry(burst).or_default().push((index, e));
        }
    }
    assert!(bursts.len() > 30, "{} bursts", bursts.len());
    let card = |e: &LabelledEvent| e.event.fields["card"]["fingerprint"].clone();
    let mut full = 0;
    for (id, orders) in &bursts {
        let (_, first) = orders[0];
        let indices: Vec<u32> = orders.iter().map(|(i, _)| *i).collect();
        let want: Vec<u32> = (0..orders.len() as u32).collect();
        assert_eq!(indices, want, "burst {id}");
        assert!(orders.len() <= 6, "burst {id}");
        full += usize::from(orders.len() == 6);
        for (_, e) in orders {
            assert_eq!(e.event.producer, first.event.producer, "burst {id}");
            assert_eq!(e.event.topic, first.event.topic, "burst {id}");
            assert_eq!(card(e), card(first), "burst {id}");
            let cents = e.event.fields["amount_cents"].as_u64().unwrap_or(0);
            assert!(cents >= 150_000, "burst {id}: {cents}");
            assert!(e.event.ts.since(first.event.ts) <= Duration::from_secs(120));
        }
    }
    // At 20 events/s a fraud order comes every ~1.7 s, so bursts fill well inside 120 s.
    assert!(
        full * 10 >= bursts.len() * 9,
        "{full} of {} full",
        bursts.len()
    );
}

#[test]
fn generation_is_deterministic_per_seed_and_component() {
    let take = |seed, component: &str| {
        let mut g = generator(spec(), seed, component);
        (0..200)
            .map(|i| g.next_event(start().plus(Duration::from_secs(i))))
            .collect::<Vec<_>>()
    };
    assert_eq!(take(1, "events/a"), take(1, "events/a"));
    assert_ne!(take(1, "events/a"), take(2, "events/a"));
    assert_ne!(take(1, "events/a"), take(1, "events/b"));
}

#[test]
fn every_spec_problem_is_reported_with_its_path() {
    let spec: EventMixSpec = serde_json::from_value(json!({
        "regions": ["eu", "eu", ""],
        "topics": [
            {"name": "orders", "producers": [], "allowed_regions": ["eu", "mars"]},
            {"name": "orders", "producers": ["p"]}
        ],
        "shares": {"pii": 0.75, "residency": 0.5, "fraud": -0.1},
        "pii_kinds": ["email", "phone"],
        "decoy_kinds": [],
        "fraud": {"burst_size": 1, "max_span_s": 0.0}
    }))
    .expect("deserializes");
    let got =
        EventGenerator::compile(spec, Seed::new(1), "events", "events").expect_err("invalid spec");
    let got: Vec<String> = got.iter().map(ToString::to_string).collect();
    let want = [
        "events.regions[1]: expected each region once, found `eu` again",
        "events.regions[2]: expected a region name, found an empty string",
        "events.topics[1]: expected each topic once, found `orders` again",
        "events.topics[0].producers: expected at least one producer, found none",
        "events.topics[0].allowed_regions[1]: expected one of the regions in `regions`, found `mars`",
        "events.shares.fraud: expected a share in 0..=1, found `-0.1`",
        "events.shares: expected shares adding up to at most 1, found `1.15`",
        "events.pii_kinds[1]: expected one of `card_number`, `email`, `iban`, `us_ssn`, `uk_nino`, found `phone`",
        "events.decoy_kinds: expected at least one kind of hard negative, found none",
        "events.fraud.burst_size: expected a burst size in 2..=1000, found `1`",
        "events.fraud.max_span_s: expected a span above 0 seconds, found `0`",
    ];
    assert_eq!(got, want);
}

#[test]
fn residency_share_needs_a_topic_with_a_rule() {
    let spec: EventMixSpec = serde_json::from_value(json!({
        "regions": ["eu"],
        "topics": [{"name": "orders", "producers": ["p"], "allowed_regions": ["eu"]}],
        "shares": {"residency": 0.1}
    }))
    .expect("deserializes");
    let got = EventGenerator::compile(spec, Seed::new(1), "events", "events")
        .expect_err("no region to breach");
    assert_eq!(
        got.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["events.shares.residency: expected a topic whose `allowed_regions` leave out a region of `regions`, found none; a residency breach needs one"]
    );
}

// -------------------------------------------------------------------------------------
// Values

fn one_field(value: Value) -> EventSample {
    EventSample {
        schema_version: 1,
        topic: "t".into(),
        producer: "p".into(),
        region: "r".into(),
        key: String::new(),
        ts: start(),
        fields: BTreeMap::from([("v".to_string(), value)]),
    }
}

#[test]
fn check_digits_match_reference_numbers() {
    // Visa's test PAN 4111 1111 1111 1111, and the IBAN example of ISO 13616.
    assert_eq!(
        values::luhn_check_digit(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        1
    );
    assert_eq!(values::luhn_check_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
    assert_eq!(values::iban_check_digits("DE", "370400440532013000"), 89);
    assert_eq!(values::iban_check_digits("GB", "WEST12345698765432"), 82);
}

#[test]
fn generated_pii_is_one_whole_valid_match() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    type Gen = fn(&mut ChaCha8Rng) -> String;
    let cases: [(PiiKind, Gen); 5] = [
        (PiiKind::CardNumber, values::card_number),
        (PiiKind::Email, values::email),
        (PiiKind::Iban, values::iban),
        (PiiKind::UsSsn, values::ssn),
        (PiiKind::UkNino, values::nino),
    ];
    for (kind, generate) in cases {
        for _ in 0..2000 {
            let v = generate(&mut rng);
            let got: Vec<(PiiKind, std::ops::Range<usize>)> = scan(&v, KindSet::all())
                .into_iter()
                .map(|m| (m.kind, m.span))
                .collect();
            assert_eq!(got, [(kind, 0..v.len())], "`{}`: `{v}`", kind.as_str());
        }
    }
}

#[test]
fn generated_decoys_fool_the_baseline_only() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    type Gen = fn(&mut ChaCha8Rng) -> Value;
    let cases: [(&str, Gen); 5] = [
        ("order number", |r| json!(values::order_number(r))),
        ("epoch millis", |r| {
            json!(values::epoch_millis(
                r.random_range(-(1i64 << 50)..1i64 << 50)
            ))
        }),
        ("tracking number", |r| json!(values::tracking_number(r))),
        ("local address", |r| json!(values::local_address(r))),
        ("phone number", |r| json!(values::phone_number(r))),
    ];
    for (name, generate) in cases {
        for _ in 0..2000 {
            let event = one_field(generate(&mut rng));
            assert!(findings(&event).is_empty(), "`{name}`: {:?}", event.fields);
            assert!(regex_only_flags(&event), "`{name}`: {:?}", event.fields);
        }
    }
}
