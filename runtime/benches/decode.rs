//! Telemetry decoding cost per message: the runtime's budget is 1,000,000 messages/s end
//! to end on 2 cores, so decoding has to stay well under a microsecond.
//!
//! `serde_derive_baseline` decodes the same metrics message with serde's derived,
//! internally tagged `Deserialize` for `Telemetry` (buffering through `Content`), with
//! none of the decoder's checks, to show what the single-pass decoder saves.
//!
//! Run: `cargo bench -p conclave-runtime --bench decode`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use conclave_runtime::telemetry::{Decoder, Telemetry};
use conclave_runtime::Timestamp;

/// A typical metrics message: one dependency, ~330 bytes.
const METRICS: &str = r#"{"type":"metrics","schema_version":1,"service":"checkout","ts":"2026-11-29T07:59:30.000Z","rate_in":1250.5,"rate_out":1248.0,"backlog":42,"latency_p50_ms":12.5,"latency_p99_ms":87.25,"error_rate":0.002,"cpu":0.62,"replicas":6,"region":"eu-west-1","dependencies":[{"service":"payments","calls_per_s":310.0,"error_rate":0.001,"latency_p99_ms":45.0}]}"#;

/// A sampled order event with a handful of fields.
const EVENT: &str = r#"{"type":"event","schema_version":1,"topic":"orders","producer":"order-service","region":"eu-west-1","key":"order-1842","ts":"2026-11-29T07:59:58.000Z","fields":{"order_id":"1842","amount":129.9,"currency":"EUR","email":"jane@example.com","items":[{"sku":"A-1","qty":2}]}}"#;

/// The metrics message cut off halfway: a JSON syntax error.
const TRUNCATED: &str = r#"{"type":"metrics","schema_version":1,"service":"checkout","ts":"2026-11-29T07:59:30.000Z","rate_in":1250.5,"rate_out":1248.0,"backlog":42,"latency_p50_ms":12.5,"latency"#;

/// The metrics message with Python's `NaN` for `cpu`.
const NAN: &str = r#"{"type":"metrics","schema_version":1,"service":"checkout","ts":"2026-11-29T07:59:30.000Z","rate_in":1250.5,"rate_out":1248.0,"backlog":42,"latency_p50_ms":12.5,"latency_p99_ms":87.25,"error_rate":0.002,"cpu":NaN,"replicas":6,"region":"eu-west-1","dependencies":[]}"#;

/// The metrics message with a negative rate (a value fault: the whole message is parsed).
const NEGATIVE_RATE: &str = r#"{"type":"metrics","schema_version":1,"service":"checkout","ts":"2026-11-29T07:59:30.000Z","rate_in":-1250.5,"rate_out":1248.0,"backlog":42,"latency_p50_ms":12.5,"latency_p99_ms":87.25,"error_rate":0.002,"cpu":0.62,"replicas":6,"region":"eu-west-1","dependencies":[{"service":"payments","calls_per_s":310.0,"error_rate":0.001,"latency_p99_ms":45.0}]}"#;

fn decode(c: &mut Criterion) {
    let decoder = Decoder::default();
    let now: Timestamp = "2026-11-29T08:00:00Z".parse().expect("valid timestamp");
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));

    for (name, payload, valid) in [
        ("metrics", METRICS, true),
        ("event", EVENT, true),
        ("malformed_truncated", TRUNCATED, false),
        ("invalid_nan", NAN, false),
        ("invalid_negative_rate", NEGATIVE_RATE, false),
    ] {
        assert_eq!(
            decoder.decode(payload.as_bytes(), now).is_ok(),
            valid,
            "{name}: unexpected decode result"
        );
        group.bench_function(name, |b| {
            b.iter(|| decoder.decode(black_box(payload.as_bytes()), now))
        });
    }

    group.bench_function("serde_derive_baseline_metrics", |b| {
        b.iter(|| serde_json::from_slice::<Telemetry>(black_box(METRICS.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
