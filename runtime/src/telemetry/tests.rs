//! Decoder and dead-letter tests: one named test per bad-input class, the exact value of
//! each valid kind, `decode(encode(t)) == t`, and the JSON Lines format.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::clock::Timestamp;

/// The receive time every case decodes at.
fn now() -> Timestamp {
    ts("2026-11-29T08:00:00Z")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp is RFC 3339")
}

const METRICS: &str = r#"{"type":"metrics","schema_version":1,"service":"checkout","ts":"2026-11-29T07:59:30.000Z","rate_in":1250.5,"rate_out":1248,"backlog":42,"latency_p50_ms":12.5,"latency_p99_ms":87.25,"error_rate":0.002,"cpu":0.62,"replicas":6,"region":"eu-west-1","dependencies":[{"service":"payments","calls_per_s":310.0,"error_rate":0.001,"latency_p99_ms":45.0}]}"#;

const EVENT: &str = r#"{"type":"event","schema_version":1,"topic":"orders","producer":"order-service","region":"eu-west-1","key":"order-1842","ts":"2026-11-29T07:59:58.000Z","fields":{"order_id":"1842","amount":129.9,"email":"jane@example.com","items":[{"sku":"A-1","qty":2}]}}"#;

const HEALTH: &str = r#"{"type":"health","schema_version":1,"service":"checkout","ts":"2026-11-29T07:59:59.000Z","status":"degraded","ready_replicas":4,"detail":"2 pods failing readiness"}"#;

const METRICS_FIELDS: &str = "`type`, `schema_version`, `service`, `ts`, `rate_in`, `rate_out`, `backlog`, `latency_p50_ms`, `latency_p99_ms`, `error_rate`, `cpu`, `replicas`, `region`, `dependencies`";

/// `base` with the first occurrence of `from` replaced by `to`.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "`{from}` is not in the base payload");
    base.replacen(from, to, 1)
}

fn decode(payload: &[u8]) -> Result<Telemetry, DecodeError> {
    Decoder::default().decode(payload, now())
}

fn expected_metrics() -> ServiceMetrics {
    ServiceMetrics {
        schema_version: 1,
        service: "checkout".into(),
        ts: ts("2026-11-29T07:59:30Z"),
        rate_in: 1250.5,
        rate_out: 1248.0,
        backlog: 42,
        latency_p50_ms: 12.5,
        latency_p99_ms: 87.25,
        error_rate: 0.002,
        cpu: 0.62,
        replicas: 6,
        region: Some("eu-west-1".into()),
        dependencies: vec![Dependency {
            service: "payments".into(),
            calls_per_s: 310.0,
            error_rate: 0.001,
            latency_p99_ms: 45.0,
        }],
    }
}

// ---------------------------------------------------------------------------------------
// Valid messages

#[test]
fn valid_metrics_decode_to_the_exact_struct() {
    let t = decode(METRICS.as_bytes()).expect("valid metrics");
    assert_eq!(t, Telemetry::Metrics(expected_metrics()));
}

#[test]
fn valid_event_decodes_to_the_exact_struct() {
    let t = decode(EVENT.as_bytes()).expect("valid event");
    let fields: BTreeMap<String, serde_json::Value> = [
        ("order_id".to_string(), json!("1842")),
        ("amount".to_string(), json!(129.9)),
        ("email".to_string(), json!("jane@example.com")),
        ("items".to_string(), json!([{"sku": "A-1", "qty": 2}])),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        t,
        Telemetry::Event(EventSample {
            schema_version: 1,
            topic: "orders".into(),
            producer: "order-service".into(),
            region: "eu-west-1".into(),
            key: "order-1842".into(),
            ts: ts("2026-11-29T07:59:58Z"),
            fields,
        })
    );
}

#[test]
fn valid_health_decodes_to_the_exact_struct() {
    let t = decode(HEALTH.as_bytes()).expect("valid health");
    assert_eq!(
        t,
        Telemetry::Health(Health {
            schema_version: 1,
            service: "checkout".into(),
            ts: ts("2026-11-29T07:59:59Z"),
            status: HealthStatus::Degraded,
            ready_replicas: Some(4),
            detail: Some("2 pods failing readiness".into()),
        })
    );
}

#[test]
fn type_may_come_anywhere_in_the_object() {
    let without_type = edit(METRICS, r#""type":"metrics","#, "");
    let last = format!(
        "{},\"type\":\"metrics\"}}",
        &without_type[..without_type.len() - 1]
    );
    let middle = edit(
        &edit(METRICS, r#""type":"metrics","#, ""),
        r#""cpu":0.62,"#,
        r#""cpu":0.62,"type":"metrics","#,
    );
    for (name, payload) in [("last", last), ("middle", middle)] {
        let t = decode(payload.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t, Telemetry::Metrics(expected_metrics()), "{name}");
    }
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    let metrics = r#"{"type":"metrics","schema_version":1,"service":"s","ts":"2026-11-29T08:00:00Z","rate_in":0,"rate_out":0,"backlog":0,"latency_p50_ms":0,"latency_p99_ms":0,"error_rate":0,"cpu":0,"replicas":0,"region":null}"#;
    let Ok(Telemetry::Metrics(m)) = decode(metrics.as_bytes()) else {
        panic!("minimal metrics rejected");
    };
    assert_eq!((m.region, m.dependencies), (None, vec![]));

    let event = r#"{"fields":{},"ts":"2026-11-29T08:00:00Z","region":"r","producer":"p","topic":"t","schema_version":1,"type":"event"}"#;
    let Ok(Telemetry::Event(e)) = decode(event.as_bytes()) else {
        panic!("minimal event rejected");
    };
    assert_eq!(e.key, "");

    let health = r#"{"type":"health","schema_version":1,"service":"s","ts":"2026-11-29T08:00:00Z","status":"down","ready_replicas":null,"detail":null}"#;
    let Ok(Telemetry::Health(h)) = decode(health.as_bytes()) else {
        panic!("minimal health rejected");
    };
    assert_eq!((h.ready_replicas, h.detail), (None, None));
}

#[test]
fn timestamps_on_the_limits_are_accepted() {
    let limits = DecodeLimits::default();
    for (name, at) in [
        ("oldest", now().minus(limits.max_age)),
        ("newest", now().plus(limits.max_future_skew)),
    ] {
        let payload = edit(HEALTH, "2026-11-29T07:59:59.000Z", &at.to_string());
        assert!(decode(payload.as_bytes()).is_ok(), "{name}");
    }
}

#[test]
fn limits_are_configurable() {
    let decoder = Decoder::new(DecodeLimits {
        max_payload_bytes: 100,
        max_future_skew: Duration::ZERO,
        max_age: Duration::from_secs(1),
    });
    assert_eq!(decoder.limits().max_payload_bytes, 100);
    let err = decoder
        .decode(METRICS.as_bytes(), now())
        .expect_err("over 100 bytes");
    assert_eq!(err.reason(), DeadLetterReason::OversizedPayload);
    let err = decoder.decode(b"", now()).expect_err("empty");
    assert_eq!(err.reason(), DeadLetterReason::MalformedJson);
}

// ---------------------------------------------------------------------------------------
// Rejected messages: one test per class, with the exact reason and message

/// Asserts `payload` is rejected for `reason` with exactly `message`.
fn assert_rejected(case: &str, payload: &[u8], reason: DeadLetterReason, message: &str) {
    match decode(payload) {
        Ok(t) => panic!("{case}: decoded to {t:?}"),
        Err(e) => {
            assert_eq!(e.to_string(), message, "{case}: message");
            assert_eq!(e.reason(), reason, "{case}: reason (message `{e}`)");
        }
    }
}

/// One `#[test]` per case, so a failure names its case.
macro_rules! rejects {
    ($($case:ident: $payload:expr => $reason:ident, $message:expr;)*) => {
        $(
            #[test]
            fn $case() {
                let payload: Vec<u8> = $payload.into();
                assert_rejected(stringify!($case), &payload, DeadLetterReason::$reason, &$message);
            }
        )*
    };
}

rejects! {
    // Size comes first, before any parsing.
    oversized_payload: vec![b'x'; 64 * 1024 + 1] => OversizedPayload,
        "expected a payload of at most 65536 bytes, found 65537 bytes";

    // Not JSON.
    empty_payload: "" => MalformedJson,
        "expected a JSON object, found an empty payload";
    whitespace_payload: " \n\t" => MalformedJson,
        "expected a JSON object, found an empty payload";
    not_json: "hello" => MalformedJson,
        "expected a JSON object, found invalid JSON at line 1 column 1";
    truncated_json: &METRICS[..60] => MalformedJson,
        "expected a complete JSON object, found the end of the payload at line 1 column 60";
    trailing_characters: format!("{METRICS} x") => MalformedJson,
        format!("expected a JSON object, found invalid JSON at line 1 column {}", METRICS.len() + 2);
    invalid_utf8_in_string: [&br#"{"service":""#[..], &[0xff, 0xfe], &br#""}"#[..]].concat() => MalformedJson,
        "expected a JSON object, found invalid JSON at line 1 column 13";
    single_quoted_json: "{'type':'metrics'}" => MalformedJson,
        "expected a JSON object, found invalid JSON at line 1 column 2";
    // serde_json stops at 128 levels (the object, `fields`, then 126 arrays).
    nested_too_deep: edit(EVENT, r#""fields":{"#, &format!(r#""fields":{{"deep":{}{},"#, "[".repeat(200), "]".repeat(200))) => MalformedJson,
        "expected a JSON object, found invalid JSON at line 1 column 294";
    deeply_nested_array_is_still_an_array: format!("{}{}", "[".repeat(200), "]".repeat(200)) => WrongShape,
        "expected a JSON object, found an array";

    // Wrong shape.
    array_instead_of_object: "[1,2,3]" => WrongShape,
        "expected a JSON object, found an array";
    string_instead_of_object: r#""metrics""# => WrongShape,
        "expected a JSON object, found a string";
    null_instead_of_object: "null" => WrongShape,
        "expected a JSON object, found null";
    missing_type: edit(METRICS, r#""type":"metrics","#, "") => WrongShape,
        "missing field `type`, expected one of `metrics`, `event`, `health`";
    unknown_type: edit(METRICS, r#""type":"metrics""#, r#""type":"trace""#) => WrongShape,
        "field `type`: expected one of `metrics`, `event`, `health`, found `trace`";
    unknown_type_is_clipped: edit(METRICS, r#""type":"metrics""#, &format!(r#""type":"{}""#, "t".repeat(100))) => WrongShape,
        format!("field `type`: expected one of `metrics`, `event`, `health`, found `{}…`", "t".repeat(32));
    type_not_a_string: edit(METRICS, r#""type":"metrics""#, r#""type":3"#) => WrongShape,
        "field `type`: expected one of `metrics`, `event`, `health`, found `3`";
    missing_field: edit(METRICS, r#""cpu":0.62,"#, "") => WrongShape,
        "`metrics` message: missing field `cpu`";
    missing_fields_are_reported_in_schema_order: edit(edit(METRICS, r#""cpu":0.62,"#, "").as_str(), r#""backlog":42,"#, "") => WrongShape,
        "`metrics` message: missing field `backlog`";
    unknown_field: edit(METRICS, r#""cpu":0.62,"#, r#""cpu":0.62,"colour":"red","#) => WrongShape,
        format!("`metrics` message: unknown field `colour`, expected one of {METRICS_FIELDS}");
    field_of_another_kind: edit(METRICS, r#""cpu":0.62,"#, r#""cpu":0.62,"status":"down","#) => WrongShape,
        format!("`metrics` message: unknown field `status`, expected one of {METRICS_FIELDS}");
    first_unknown_field_in_payload_order: edit(METRICS, r#""service""#, r#""zzz":1,"topic":"x","service""#) => WrongShape,
        format!("`metrics` message: unknown field `zzz`, expected one of {METRICS_FIELDS}");
    duplicate_field: edit(METRICS, r#""cpu":0.62,"#, r#""cpu":0.62,"cpu":0.7,"#) => WrongShape,
        "duplicate field `cpu`";
    string_where_number_expected: edit(METRICS, r#""cpu":0.62"#, r#""cpu":"0.62""#) => WrongShape,
        "field `cpu`: expected a number >= 0, found a string";
    null_where_number_expected: edit(METRICS, r#""rate_in":1250.5"#, r#""rate_in":null"#) => WrongShape,
        "field `rate_in`: expected a number >= 0, found null";
    object_where_number_expected: edit(METRICS, r#""backlog":42"#, r#""backlog":{"n":42}"#) => WrongShape,
        "field `backlog`: expected an integer >= 0, found an object";
    number_where_string_expected: edit(METRICS, r#""service":"checkout""#, r#""service":7"#) => WrongShape,
        "field `service`: expected a name of 1 to 253 characters, found `7`";
    dependencies_an_object: edit(METRICS, r#"[{"service":"payments","calls_per_s":310.0,"error_rate":0.001,"latency_p99_ms":45.0}]"#, "{}") => WrongShape,
        "field `dependencies`: expected an array, found an object";
    dependency_not_an_object: edit(METRICS, r#"[{"#, r#"[true,{"#) => WrongShape,
        "field `dependencies[0]`: expected an object, found `true`";
    dependency_missing_field: edit(METRICS, r#","latency_p99_ms":45.0}"#, "}") => WrongShape,
        "`metrics` message: missing field `dependencies[0].latency_p99_ms`";
    dependency_unknown_field: edit(METRICS, r#""calls_per_s":310.0,"#, r#""calls_per_s":310.0,"qps":3,"#) => WrongShape,
        "`metrics` message: unknown field `dependencies[0].qps`, expected one of `service`, `calls_per_s`, `error_rate`, `latency_p99_ms`";
    event_fields_a_string: r#"{"type":"event","schema_version":1,"topic":"t","producer":"p","region":"r","ts":"2026-11-29T08:00:00Z","fields":"jane@example.com"}"# => WrongShape,
        "field `fields`: expected an object, found a string";
    event_region_null: edit(EVENT, r#""region":"eu-west-1""#, r#""region":null"#) => WrongShape,
        "field `region`: expected a string of at most 253 characters, found null";
    ts_not_a_string: edit(HEALTH, r#""2026-11-29T07:59:59.000Z""#, "1764403199") => WrongShape,
        "field `ts`: expected an RFC 3339 timestamp such as `2026-01-01T00:00:00Z`, found `1764403199`";
    status_not_a_string: edit(HEALTH, r#""status":"degraded""#, r#""status":2"#) => WrongShape,
        "field `status`: expected one of `healthy`, `degraded`, `down`, found `2`";

    // Version.
    schema_version_2: edit(METRICS, r#""schema_version":1"#, r#""schema_version":2"#) => UnsupportedVersion,
        "field `schema_version`: expected a supported version (`1`), found `2`";
    schema_version_missing: edit(METRICS, r#""schema_version":1,"#, "") => UnsupportedVersion,
        "missing field `schema_version`, expected a supported version (`1`)";
    schema_version_a_string: edit(METRICS, r#""schema_version":1"#, r#""schema_version":"1""#) => UnsupportedVersion,
        "field `schema_version`: expected a supported version (`1`), found a string";
    schema_version_fractional: edit(METRICS, r#""schema_version":1"#, r#""schema_version":1.0"#) => UnsupportedVersion,
        "field `schema_version`: expected a supported version (`1`), found `1.0`";
    schema_version_2_outranks_its_new_fields: edit(METRICS, r#""schema_version":1"#, r#""schema_version":2,"gpu":0.5"#) => UnsupportedVersion,
        "field `schema_version`: expected a supported version (`1`), found `2`";

    // Non-finite numbers, as Python's json.dumps writes them.
    nan_token: edit(METRICS, r#""cpu":0.62"#, r#""cpu":NaN"#) => InvalidValue,
        "field `cpu`: expected a finite number, found `NaN`";
    infinity_token: edit(METRICS, r#""rate_in":1250.5"#, r#""rate_in":Infinity"#) => InvalidValue,
        "field `rate_in`: expected a finite number, found `Infinity`";
    negative_infinity_token: edit(METRICS, r#""latency_p99_ms":87.25"#, r#""latency_p99_ms":-Infinity"#) => InvalidValue,
        "field `latency_p99_ms`: expected a finite number, found `-Infinity`";
    number_too_large_for_f64: edit(METRICS, r#""rate_in":1250.5"#, r#""rate_in":1e999"#) => InvalidValue,
        "field `rate_in`: expected a finite number, found `1e999`";
    negative_number_too_large_for_f64: edit(METRICS, r#""cpu":0.62"#, r#""cpu":-1e999"#) => InvalidValue,
        "field `cpu`: expected a finite number, found `-1e999`";
    nan_in_a_dependency: edit(METRICS, r#""calls_per_s":310.0"#, r#""calls_per_s":NaN"#) => InvalidValue,
        "field `dependencies[0].calls_per_s`: expected a finite number, found `NaN`";
    nan_in_event_fields_is_not_quoted: edit(EVENT, r#""amount":129.9"#, r#""amount":NaN"#) => InvalidValue,
        "field `fields`: expected a finite number, found a non-finite number";
    nan_on_a_later_line: "{\n  \"type\": \"metrics\",\n  \"cpu\":\n    NaN\n}" => InvalidValue,
        "field `cpu`: expected a finite number, found `NaN`";
    nan_outside_any_field: "NaN" => InvalidValue,
        "expected a finite number, found `NaN`";

    // Values out of their domain.
    negative_rate_in: edit(METRICS, r#""rate_in":1250.5"#, r#""rate_in":-5"#) => InvalidValue,
        "field `rate_in`: expected a number >= 0, found `-5`";
    negative_latency: edit(METRICS, r#""latency_p50_ms":12.5"#, r#""latency_p50_ms":-0.5"#) => InvalidValue,
        "field `latency_p50_ms`: expected a number >= 0, found `-0.5`";
    negative_cpu: edit(METRICS, r#""cpu":0.62"#, r#""cpu":-0.1"#) => InvalidValue,
        "field `cpu`: expected a number >= 0, found `-0.1`";
    negative_backlog: edit(METRICS, r#""backlog":42"#, r#""backlog":-3"#) => InvalidValue,
        "field `backlog`: expected an integer >= 0, found `-3`";
    fractional_backlog: edit(METRICS, r#""backlog":42"#, r#""backlog":4.5"#) => InvalidValue,
        "field `backlog`: expected an integer >= 0, found `4.5`";
    replicas_over_u32: edit(METRICS, r#""replicas":6"#, r#""replicas":5000000000"#) => InvalidValue,
        "field `replicas`: expected an integer in 0..=4294967295, found `5000000000`";
    error_rate_above_one: edit(METRICS, r#""error_rate":0.002"#, r#""error_rate":1.5"#) => InvalidValue,
        "field `error_rate`: expected a number in [0, 1], found `1.5`";
    dependency_error_rate_above_one: edit(METRICS, r#""error_rate":0.001"#, r#""error_rate":2"#) => InvalidValue,
        "field `dependencies[0].error_rate`: expected a number in [0, 1], found `2`";
    p50_above_p99: edit(METRICS, r#""latency_p50_ms":12.5"#, r#""latency_p50_ms":120"#) => InvalidValue,
        "field `latency_p50_ms`: expected at most `latency_p99_ms` (`87.25`), found `120.0`";
    empty_service: edit(METRICS, r#""service":"checkout""#, r#""service":"""#) => InvalidValue,
        "field `service`: expected a name of 1 to 253 characters, found an empty string";
    empty_topic: edit(EVENT, r#""topic":"orders""#, r#""topic":"""#) => InvalidValue,
        "field `topic`: expected a name of 1 to 253 characters, found an empty string";
    empty_dependency_service: edit(METRICS, r#""service":"payments""#, r#""service":"""#) => InvalidValue,
        "field `dependencies[0].service`: expected a name of 1 to 253 characters, found an empty string";
    service_name_too_long: edit(METRICS, r#""service":"checkout""#, &format!(r#""service":"{}""#, "s".repeat(254))) => InvalidValue,
        "field `service`: expected a name of 1 to 253 characters, found a string of 254 characters";
    producer_name_too_long: edit(EVENT, r#""producer":"order-service""#, &format!(r#""producer":"{}""#, "é".repeat(300))) => InvalidValue,
        "field `producer`: expected a string of at most 253 characters, found a string of 300 characters";
    unknown_status: edit(HEALTH, r#""status":"degraded""#, r#""status":"meh""#) => InvalidValue,
        "field `status`: expected one of `healthy`, `degraded`, `down`, found `meh`";
    negative_ready_replicas: edit(HEALTH, r#""ready_replicas":4"#, r#""ready_replicas":-1"#) => InvalidValue,
        "field `ready_replicas`: expected an integer in 0..=4294967295 or null, found `-1`";
    ts_not_rfc3339: edit(HEALTH, "2026-11-29T07:59:59.000Z", "yesterday") => InvalidValue,
        "field `ts`: expected an RFC 3339 timestamp such as `2026-01-01T00:00:00Z`, found `yesterday`";

    // Timestamps.
    ts_one_hour_in_the_future: edit(HEALTH, "2026-11-29T07:59:59.000Z", "2026-11-29T09:00:00Z") => TimestampOutOfRange,
        "field `ts`: expected a time between `2026-11-28T08:00:00.000Z` and `2026-11-29T08:05:00.000Z`, found `2026-11-29T09:00:00.000Z`";
    ts_two_days_old: edit(HEALTH, "2026-11-29T07:59:59.000Z", "2026-11-27T08:00:00Z") => TimestampOutOfRange,
        "field `ts`: expected a time between `2026-11-28T08:00:00.000Z` and `2026-11-29T08:05:00.000Z`, found `2026-11-27T08:00:00.000Z`";
    ts_just_past_the_skew: edit(HEALTH, "2026-11-29T07:59:59.000Z", "2026-11-29T08:05:00.001Z") => TimestampOutOfRange,
        "field `ts`: expected a time between `2026-11-28T08:00:00.000Z` and `2026-11-29T08:05:00.000Z`, found `2026-11-29T08:05:00.001Z`";

    // Order of checks when a payload has several faults.
    syntax_error_outranks_earlier_shape_fault: format!("{},", edit(METRICS, r#""cpu":0.62,"#, r#""cpu":0.62,"colour":"red","#)) => MalformedJson,
        format!("expected a JSON object, found invalid JSON at line 1 column {}", METRICS.len() + 16);
    shape_fault_outranks_earlier_value_fault: edit(METRICS, r#""cpu":0.62,"#, r#""cpu":-1,"colour":"red","#) => WrongShape,
        format!("`metrics` message: unknown field `colour`, expected one of {METRICS_FIELDS}");
    missing_field_outranks_value_fault: edit(edit(METRICS, r#""cpu":0.62,"#, "").as_str(), r#""rate_in":1250.5"#, r#""rate_in":-1"#) => WrongShape,
        "`metrics` message: missing field `cpu`";
    first_value_fault_in_payload_order: edit(edit(METRICS, r#""cpu":0.62"#, r#""cpu":-1"#).as_str(), r#""rate_in":1250.5"#, r#""rate_in":-2"#) => InvalidValue,
        "field `rate_in`: expected a number >= 0, found `-2`";
    value_fault_outranks_timestamp: edit(edit(HEALTH, "2026-11-29T07:59:59.000Z", "2020-01-01T00:00:00Z").as_str(), r#""status":"degraded""#, r#""status":"fine""#) => InvalidValue,
        "field `status`: expected one of `healthy`, `degraded`, `down`, found `fine`";
}

#[test]
fn messages_never_quote_strings_from_the_payload() {
    // Strings where a number belongs may be anything, personal data included.
    let payload = edit(METRICS, r#""cpu":0.62"#, r#""cpu":"jane@example.com""#);
    let err = decode(payload.as_bytes()).expect_err("string for a number");
    assert!(!err.to_string().contains("jane"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Properties

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,40}"
}

/// A non-negative measurement as producers write it: at most 12 significant digits. Such
/// values survive serde_json's default (fast, not always correctly rounded) float parser
/// exactly; arbitrary 17-digit doubles may come back one ulp off.
fn measure() -> impl Strategy<Value = f64> {
    (0u64..1_000_000_000_000).prop_map(|n| n as f64 / 1000.0)
}

fn fraction() -> impl Strategy<Value = f64> {
    (0u32..=1_000_000).prop_map(|n| f64::from(n) / 1e6)
}

/// A timestamp the default limits accept at [`now`].
fn recent() -> impl Strategy<Value = Timestamp> {
    let limits = DecodeLimits::default();
    let oldest = now().minus(limits.max_age).as_millis();
    let newest = now().plus(limits.max_future_skew).as_millis();
    (oldest..=newest).prop_map(Timestamp::from_millis)
}

fn dependency() -> impl Strategy<Value = Dependency> {
    (name(), measure(), fraction(), measure()).prop_map(
        |(service, calls_per_s, error_rate, latency_p99_ms)| Dependency {
            service,
            calls_per_s,
            error_rate,
            latency_p99_ms,
        },
    )
}

fn metrics() -> impl Strategy<Value = Telemetry> {
    (
        (name(), recent(), measure(), measure(), any::<u64>()),
        (measure(), measure(), fraction(), measure(), any::<u32>()),
        (
            proptest::option::of(name()),
            proptest::collection::vec(dependency(), 0..4),
        ),
    )
        .prop_map(
            |(
                (service, ts, rate_in, rate_out, backlog),
                (a, b, error_rate, cpu, replicas),
                (region, dependencies),
            )| {
                Telemetry::Metrics(ServiceMetrics {
                    schema_version: SCHEMA_VERSION,
                    service,
                    ts,
                    rate_in,
                    rate_out,
                    backlog,
                    latency_p50_ms: a.min(b),
                    latency_p99_ms: a.max(b),
                    error_rate,
                    cpu,
                    replicas,
                    region,
                    dependencies,
                })
            },
        )
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        measure().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Telemetry> {
    (
        name(),
        ".{0,20}",
        name(),
        ".{0,20}",
        recent(),
        proptest::collection::btree_map(".{0,12}", json_value(), 0..6),
    )
        .prop_map(|(topic, producer, region, key, ts, fields)| {
            Telemetry::Event(EventSample {
                schema_version: SCHEMA_VERSION,
                topic,
                producer,
                region,
                key,
                ts,
                fields,
            })
        })
}

fn health() -> impl Strategy<Value = Telemetry> {
    (
        name(),
        recent(),
        prop_oneof![
            Just(HealthStatus::Healthy),
            Just(HealthStatus::Degraded),
            Just(HealthStatus::Down),
        ],
        proptest::option::of(any::<u32>()),
        proptest::option::of(".{0,40}"),
    )
        .prop_map(|(service, ts, status, ready_replicas, detail)| {
            Telemetry::Health(Health {
                schema_version: SCHEMA_VERSION,
                service,
                ts,
                status,
                ready_replicas,
                detail,
            })
        })
}

fn telemetry() -> impl Strategy<Value = Telemetry> {
    prop_oneof![metrics(), event(), health()]
}

proptest! {
    #[test]
    fn decode_inverts_encode(t in telemetry()) {
        let bytes = encode(&t);
        let back = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(back, t);
    }

    #[test]
    fn decode_is_total_on_arbitrary_bytes(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&payload);
    }

    /// Damaged messages are rejected or decoded, never panic, and an event's field values
    /// never reach the error message.
    #[test]
    fn damaged_messages_never_quote_event_fields(
        t in event(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut t = t;
        if let Telemetry::Event(e) = &mut t {
            e.fields.insert("email".into(), json!("SECRET-jane@example.com"));
        }
        let mut bytes = encode(&t);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Err(e) = decode(&bytes) {
            prop_assert!(!e.to_string().contains("SECRET"), "{}", e);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dead letters

fn letter(payload: &[u8], reason: DeadLetterReason) -> DeadLetter {
    DeadLetter {
        at: ts("2026-11-29T08:00:00.250Z"),
        topic: "persistent://ops/telemetry/metrics".into(),
        reason,
        error: "field `cpu`: expected a finite number, found `NaN`".into(),
        payload: payload.to_vec(),
    }
}

#[test]
fn jsonl_sink_writes_one_exact_line_per_letter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dead-letters.jsonl");
    let sink = JsonlDeadLetters::open(&path).expect("opens");
    sink.send(letter(br#"{"cpu":NaN}"#, DeadLetterReason::InvalidValue));
    sink.send(letter(
        &[0xff, 0x00, b'a', 0xfe],
        DeadLetterReason::MalformedJson,
    ));
    sink.flush().expect("flushes");
    assert_eq!(sink.write_errors(), 0);
    assert_eq!(sink.path(), path);

    let written = std::fs::read_to_string(&path).expect("reads back");
    let expected = concat!(
        r#"{"at":"2026-11-29T08:00:00.250Z","topic":"persistent://ops/telemetry/metrics","reason":"invalid_value","error":"field `cpu`: expected a finite number, found `NaN`","payload":"{\"cpu\":NaN}"}"#,
        "\n",
        r#"{"at":"2026-11-29T08:00:00.250Z","topic":"persistent://ops/telemetry/metrics","reason":"malformed_json","error":"field `cpu`: expected a finite number, found `NaN`","payload_base64":"/wBh/g=="}"#,
        "\n",
    );
    assert_eq!(written, expected);
}

#[test]
fn jsonl_sink_appends_to_an_existing_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dead-letters.jsonl");
    for _ in 0..2 {
        let sink = JsonlDeadLetters::open(&path).expect("opens");
        sink.send(letter(b"x", DeadLetterReason::MalformedJson));
        // Dropping the sink flushes it.
    }
    let written = std::fs::read_to_string(&path).expect("reads back");
    assert_eq!(written.lines().count(), 2, "{written}");
}

#[test]
fn jsonl_sink_keeps_lines_whole_under_concurrent_senders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dead-letters.jsonl");
    let sink = std::sync::Arc::new(JsonlDeadLetters::open(&path).expect("opens"));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    sink.send(letter(&[b'p'; 300], DeadLetterReason::WrongShape));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender finished");
    }
    sink.flush().expect("flushes");
    let written = std::fs::read_to_string(&path).expect("reads back");
    assert_eq!(written.lines().count(), 1000);
    for line in written.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(v["reason"], "wrong_shape");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn jsonl_sink_counts_write_errors_instead_of_failing() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let Ok(sink) = JsonlDeadLetters::open("/dev/full") else {
        return;
    };
    sink.send(letter(b"x", DeadLetterReason::MalformedJson));
    assert!(sink.flush().is_err());
    // A letter larger than the buffer goes straight to the file, and fails there.
    sink.send(letter(
        &[b'p'; 64 * 1024],
        DeadLetterReason::OversizedPayload,
    ));
    assert_eq!(sink.write_errors(), 2);
}

#[test]
fn memory_sink_keeps_letters_in_order() {
    let sink = MemoryDeadLetters::default();
    sink.send(letter(b"a", DeadLetterReason::MalformedJson));
    sink.send(letter(b"b", DeadLetterReason::AgentHung));
    let payloads: Vec<_> = sink.letters().into_iter().map(|l| l.payload).collect();
    assert_eq!(payloads, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn dead_letter_from_a_decode_error_carries_reason_and_message() {
    let payload = edit(METRICS, r#""cpu":0.62"#, r#""cpu":NaN"#);
    let err = decode(payload.as_bytes()).expect_err("NaN");
    let l = DeadLetter::from_decode_error(now(), "metrics", &err, payload.as_bytes());
    assert_eq!(l.reason, DeadLetterReason::InvalidValue);
    assert_eq!(
        l.error,
        "field `cpu`: expected a finite number, found `NaN`"
    );
    assert_eq!(l.payload, payload.as_bytes());
    assert_eq!(l.topic, "metrics");
    assert_eq!(l.at, now());
}
