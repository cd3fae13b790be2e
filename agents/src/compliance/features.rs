//! What the compliance agent extracts from one event: personal data found in its payload,
//! as `(kind, field path)` pairs, and whether its region breaks the topic's residency.
//!
//! The payload is walked depth-first in map order (`fields` is a `BTreeMap`; nested
//! objects follow serde_json's map, sorted by key unless its `preserve_order` feature is
//! on), so findings come out in the same order on every run. Paths look like `fields.payment.card_number` and
//! `fields.items[2].email`. Strings are scanned, and so are integers (a card number sent as
//! a JSON number) and object keys (a map keyed by e-mail address). An object key goes into
//! a path only if it is a plain name, at most 64 of `A–Z a–z 0–9 _ -` with at most three
//! digits; any other key is written `*`. Every detector's match has six or more digits or
//! an `@`, so no path can repeat a matched value.

use std::collections::BTreeMap;

use conclave_runtime::telemetry::EventSample;
use serde_json::Value;

use super::config::{ComplianceConfig, Residency};
use super::detectors::{scan, KindSet, PiiKind};

/// serde_json's own nesting limit; a deeper payload cannot have come off the wire.
const MAX_DEPTH: usize = 128;

/// At most this many findings per event are kept: enough to act on, and a bounded reason.
const MAX_FINDINGS: usize = 64;

/// Personal data at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    pub(super) kind: PiiKind,
    pub(super) path: String,
}

/// An event from a region its topic does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResidencyBreach<'a> {
    pub(super) region: &'a str,
    pub(super) allowed: &'a [String],
}

/// Findings in `event.fields`, minus those `allow_fields` expects, in walk order, each
/// `(kind, path)` once.
pub(super) fn findings(event: &EventSample, config: &ComplianceConfig) -> Vec<Finding> {
    let mut walk = Walk {
        kinds: config.detectors,
        out: Vec::new(),
    };
    if config.detectors == KindSet::EMPTY {
        return walk.out;
    }
    let mut path = String::from("fields");
    for (key, value) in &event.fields {
        walk.object_entry(&mut path, key, value, 1);
    }
    walk.out.retain(|f| !is_allowed(f, &config.allow_fields));
    walk.out
}

/// The residency breach, if `event.region` is not allowed on its topic.
pub(super) fn residency_breach<'a>(
    event: &'a EventSample,
    residency: &'a Residency,
) -> Option<ResidencyBreach<'a>> {
    let allowed = residency.allowed(&event.topic)?;
    (!allowed.contains(&event.region)).then_some(ResidencyBreach {
        region: &event.region,
        allowed,
    })
}

struct Walk {
    kinds: KindSet,
    out: Vec<Finding>,
}

impl Walk {
    fn value(&mut self, path: &mut String, value: &Value, depth: usize) {
        if depth > MAX_DEPTH || self.out.len() >= MAX_FINDINGS {
            return;
        }
        match value {
            Value::String(s) => self.text(path, s),
            Value::Number(n) => {
                if let Some(i) = n.as_u64() {
                    self.text(path, &i.to_string());
                } else if let Some(i) = n.as_i64() {
                    self.text(path, &i.to_string());
                }
            }
            Value::Array(items) => {
                let len = path.len();
                for (i, item) in items.iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    self.value(path, item, depth + 1);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (key, value) in map {
                    self.object_entry(path, key, value, depth + 1);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn object_entry(&mut self, path: &mut String, key: &str, value: &Value, depth: usize) {
        let len = path.len();
        path.push('.');
        path.push_str(if is_plain_key(key) { key } else { "*" });
        self.text(path, key);
        self.value(path, value, depth);
        path.truncate(len);
    }

    fn text(&mut self, path: &str, text: &str) {
        for m in scan(text, self.kinds) {
            let is_new = !self.out.iter().any(|f| f.kind == m.kind && f.path == path);
            if is_new && self.out.len() < MAX_FINDINGS {
                self.out.push(Finding {
                    kind: m.kind,
                    path: path.to_string(),
                });
            }
        }
    }
}

/// A key safe to show: see the module comment.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && key.bytes().filter(u8::is_ascii_digit).count() <= 3
}

/// Whether `allow_fields` expects `finding.kind` at its path, exactly or with every array
/// index as `[*]`.
fn is_allowed(finding: &Finding, allow: &BTreeMap<String, KindSet>) -> bool {
    let allows = |p: &str| allow.get(p).is_some_and(|k| k.contains(finding.kind));
    allows(&finding.path) || allows(&any_index(&finding.path))
}

/// `path` with every `[<digits>]` written `[*]`.
fn any_index(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        match rest.find(']') {
            Some(close) if rest[..close].bytes().all(|b| b.is_ascii_digit()) => {
                out.push('*');
                rest = &rest[close..];
            }
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::compliance::detectors::Match;

    fn event(fields: Value) -> EventSample {
        let Value::Object(map) = fields else {
            panic!("test fields must be an object");
        };
        EventSample {
            schema_version: 1,
            topic: "orders".into(),
            producer: "shop-1".into(),
            region: "eu-west-1".into(),
            key: String::new(),
            ts: conclave_runtime::Timestamp::from_millis(0),
            fields: map.into_iter().collect(),
        }
    }

    fn found(fields: Value, settings: Value) -> Vec<(PiiKind, String)> {
        let config = ComplianceConfig::from_settings(&settings).expect("valid settings");
        findings(&event(fields), &config)
            .into_iter()
            .map(|f| (f.kind, f.path))
            .collect()
    }

    #[test]
    fn findings_carry_field_paths() {
        use PiiKind::*;
        /// `(name, fields, settings, findings)`.
        type Case = (&'static str, Value, Value, Vec<(PiiKind, &'static str)>);
        let cases: Vec<Case> = vec![
            (
                "nested object",
                json!({"payment": {"card_number": "4111 1111 1111 1111"}}),
                Value::Null,
                vec![(CardNumber, "fields.payment.card_number")],
            ),
            (
                "array element",
                json!({"items": [{"sku": "a"}, {"sku": "b"}, {"email": "x jane@example.com"}]}),
                Value::Null,
                vec![(Email, "fields.items[2].email")],
            ),
            (
                "integer card number",
                json!({"pan": 4_111_111_111_111_111_u64}),
                Value::Null,
                vec![(CardNumber, "fields.pan")],
            ),
            (
                "key holding an address is reported, not shown",
                json!({"by_email": {"jane@example.com": 3}}),
                Value::Null,
                vec![(Email, "fields.by_email.*")],
            ),
            (
                "several kinds, walk order, once per path",
                json!({"note": "ssn 123-45-6789, ssn 123-45-6789, iban DE89370400440532013000",
                       "a": "AB123456C"}),
                Value::Null,
                vec![
                    (UkNino, "fields.a"),
                    (Iban, "fields.note"),
                    (UsSsn, "fields.note"),
                ],
            ),
            (
                "allowed exact path",
                json!({"customer": {"email": "jane@example.com"}, "note": "jane@example.com"}),
                json!({"allow_fields": {"fields.customer.email": ["email"]}}),
                vec![(Email, "fields.note")],
            ),
            (
                "allowed path with any index",
                json!({"items": [{"email": "a@x.com"}, {"email": "b@x.com"}]}),
                json!({"allow_fields": {"fields.items[*].email": ["email"]}}),
                vec![],
            ),
            (
                "allowed for another kind only",
                json!({"customer": {"email": "4111111111111111"}}),
                json!({"allow_fields": {"fields.customer.email": ["email"]}}),
                vec![(CardNumber, "fields.customer.email")],
            ),
            (
                "disabled detector",
                json!({"card": "4111111111111111", "email": "jane@example.com"}),
                json!({"detectors": ["email"]}),
                vec![(Email, "fields.email")],
            ),
            (
                "clean payload",
                json!({"order_id": 1_800_000_000_002_u64, "total": 12.5, "ok": true, "x": null}),
                Value::Null,
                vec![],
            ),
        ];
        for (name, fields, settings, want) in cases {
            let want: Vec<(PiiKind, String)> =
                want.into_iter().map(|(k, p)| (k, p.to_string())).collect();
            assert_eq!(found(fields, settings), want, "case `{name}`");
        }
    }

    #[test]
    fn residency_breach_names_region_and_allowed() {
        let config =
            ComplianceConfig::from_settings(&json!({"residency": {"orders": ["eu-central-1"]}}))
                .expect("valid");
        let e = event(json!({}));
        let breach = residency_breach(&e, &config.residency).expect("eu-west-1 not allowed");
        assert_eq!(breach.region, "eu-west-1");
        assert_eq!(breach.allowed, ["eu-central-1".to_string()]);
        let ok = ComplianceConfig::from_settings(&json!({"residency": {"orders": ["eu-west-1"]}}))
            .expect("valid");
        assert_eq!(residency_breach(&e, &ok.residency), None);
    }

    #[test]
    fn any_index_rewrites_only_numeric_indices() {
        assert_eq!(any_index("fields.a[12].b[0]"), "fields.a[*].b[*]");
        assert_eq!(any_index("fields.a.b"), "fields.a.b");
    }

    fn matched_values(text: &str) -> Vec<String> {
        scan(text, KindSet::all())
            .into_iter()
            .map(|Match { span, .. }| text[span].to_string())
            .collect()
    }

    fn pii_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[0-9A-Za-z@._ \\-]{0,10}",
            Just("4111111111111111".to_string()),
            Just("4-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1".to_string()),
            Just("jane@example.com".to_string()),
            Just("NO9386011117947".to_string()),
            Just("123-45-6789".to_string()),
            Just("AB123456C".to_string()),
        ];
        proptest::collection::vec(piece, 0..4).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn paths_never_contain_a_matched_value(
            k1 in pii_text(), k2 in pii_text(), v1 in pii_text(), v2 in pii_text(),
        ) {
            let fields = json!({ k1.clone(): { k2.clone(): [v1.clone(), {k1.clone(): v2.clone()}] } });
            let all = findings(&event(fields), &ComplianceConfig::default());
            let values: Vec<String> = [&k1, &k2, &v1, &v2]
                .into_iter()
                .flat_map(|t| matched_values(t))
                .collect();
            for f in &all {
                for v in &values {
                    prop_assert!(!f.path.contains(v.as_str()), "path `{}` shows a matched value", f.path);
                }
            }
        }
    }
}
