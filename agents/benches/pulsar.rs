//! Telemetry through a real Pulsar broker on loopback, next to the embedded bus in the
//! same run: throughput end to end (published backlog -> decoded, decided by the scaler,
//! audited, acknowledged) with one and with two runtime instances on a Key_Shared
//! subscription, and publish -> decision latency (on the actions topic for Pulsar, at the
//! decision tap for the embedded bus).
//!
//! Run: `make bench-pulsar` (starts the broker), or with a broker running:
//! `CONCLAVE_PULSAR_URL=pulsar://127.0.0.1:6650 cargo bench -p conclave-agents --bench pulsar`.
//! Optional: `-- --messages N --samples N`.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time; nothing here feeds decisions"
)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conclave_runtime::actuator::{MemoryActuator, SinkActuator};
use conclave_runtime::audit::{AuditWriter, FsyncPolicy};
use conclave_runtime::bus::pulsar::{
    open_sources, Outgoing, Publisher, PulsarActionSink, PulsarSettings, PulsarTransport,
    SubscriptionType, TopicReader, TopicSelection,
};
use conclave_runtime::bus::{BusConfig, EmbeddedBus, OverloadPolicy, TelemetrySource};
use conclave_runtime::telemetry::MemoryDeadLetters;
use conclave_runtime::{Clock, Policy, RealClock, Runtime, RuntimeConfig, Timestamp, Tuning};

const TARGETS: usize = 200;

fn policy(window: &str) -> Arc<Policy> {
    let text = format!(
        "apiVersion: conclave/v1
kind: Policy
metadata: {{name: bench-pulsar, revision: b1}}
spec:
  agents:
    scaler: {{mode: enforce, settings: {{metric: cpu, target: 0.5}}}}
  guardrails:
    defaults: {{min_replicas: 1, max_replicas: 1000, max_step: 1000, cooldown: 0s}}
  arbiter: {{window: {window}}}
"
    );
    match conclave_runtime::policy::compile_str("bench.yaml", &text, &conclave_agents::Catalog) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("bench policy: {e:?}"),
    }
}

fn metrics(i: usize, ts: Timestamp, cpu: f64) -> Vec<u8> {
    format!(
        r#"{{"type":"metrics","schema_version":1,"service":"svc-{i}","ts":"{ts}","rate_in":100.0,"rate_out":100.0,"backlog":0,"latency_p50_ms":12.5,"latency_p99_ms":40.0,"error_rate":0.01,"cpu":{cpu},"replicas":4}}"#
    )
    .into_bytes()
}

fn workload(messages: usize) -> Vec<Outgoing> {
    let now = RealClock.now();
    (0..messages)
        .map(|n| {
            let i = n % TARGETS;
            Outgoing {
                key: Some(format!("svc-{i}")),
                event_id: Some(format!("m-{n}")),
                payload: metrics(i, now, 0.4 + 0.001 * (n % 500) as f64),
            }
        })
        .collect()
}

fn settings(topic: &str, actions: &str) -> PulsarSettings {
    PulsarSettings {
        telemetry: TopicSelection::Names(vec![topic.to_owned()]),
        subscription: "bench".to_owned(),
        subscription_type: SubscriptionType::KeyShared,
        actions_topic: actions.to_owned(),
        dead_letter_topic: format!("{topic}-dlq"),
        control_topic: format!("{topic}-control"),
        ..PulsarSettings::default()
    }
}

fn specs(p: &Arc<Policy>) -> Vec<conclave_runtime::AgentSpec> {
    match conclave_agents::agent_specs(p) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    }
}

fn audit(dir: &std::path::Path, name: &str) -> AuditWriter {
    AuditWriter::open(
        &dir.join(name),
        FsyncPolicy::EveryRecord,
        Arc::new(RealClock),
    )
    .expect("audit log")
}

/// Starts `instances` runtimes on a fresh topic, then publishes `messages` as fast as the
/// broker takes them and times until every message is decoded by a runtime, and until
/// every one is acknowledged (which waits for the window after the last one to close).
/// Returns (publish msg/s, decoded msg/s, acknowledged msg/s).
async fn pulsar_throughput(url: &str, instances: usize, messages: usize) -> (f64, f64, f64) {
    let topic = format!(
        "persistent://conclave/test/bench-{instances}-{}",
        RealClock.now().as_millis()
    );
    let s = settings(&topic, &format!("{topic}-actions"));
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy("1s");
    let mut running = Vec::new();
    for i in 0..instances {
        let t = PulsarTransport::connect(
            url,
            s.clone(),
            &format!("bench-{i}"),
            Duration::from_secs(10),
        )
        .await
        .expect("broker");
        let sources = open_sources(&t, 1, Duration::from_secs(1), Arc::new(RealClock))
            .await
            .expect("sources");
        let runtime = start(
            &policy,
            sources.sources,
            dir.path(),
            &format!("audit-{i}.jsonl"),
            Box::new(MemoryActuator::default()),
            None,
            true,
        )
        .await;
        let acker = tokio::spawn(sources.control.acker(runtime.handle(), None).run());
        running.push((runtime, sources.control, acker));
    }
    let publisher = PulsarTransport::connect(url, s.clone(), "bench-pub", Duration::from_secs(10))
        .await
        .expect("broker");
    let mut p = Publisher::open(&publisher, &topic).await.expect("producer");
    let work = workload(messages);
    let t0 = Instant::now();
    let sender = tokio::spawn(async move {
        for chunk in work.chunks(5_000) {
            p.send_all(chunk.to_vec()).await.expect("published");
        }
        let rate = messages as f64 / t0.elapsed().as_secs_f64();
        p.close().await;
        rate
    });
    let mut decoded_at = None;
    loop {
        let decoded: u64 = running.iter().map(|(r, _, _)| r.counters().decoded).sum();
        if decoded >= messages as u64 && decoded_at.is_none() {
            decoded_at = Some(t0.elapsed());
        }
        let acked: u64 = running
            .iter()
            .map(|(_, c, _)| c.stats().acked.load(Ordering::Relaxed))
            .sum();
        if acked >= messages as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked_rate = messages as f64 / t0.elapsed().as_secs_f64();
    let decoded_rate = messages as f64 / decoded_at.unwrap_or_else(|| t0.elapsed()).as_secs_f64();
    let publish_rate = sender.await.expect("publisher");
    for (runtime, control, acker) in running {
        control.stop();
        let _ = runtime.shutdown().await;
        acker.abort();
        control.close().await;
    }
    (publish_rate, decoded_rate, acked_rate)
}

/// The same messages through the embedded bus, on the wall clock: time until every one
/// is decoded, and until the window after the last one is decided.
async fn embedded_throughput(messages: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy("1s");
    let bus = EmbeddedBus::new(BusConfig {
        partitions: 1,
        capacity: 65_536,
        overload: OverloadPolicy::Block,
    });
    let sources: Vec<Box<dyn TelemetrySource>> = bus
        .subscribe("telemetry")
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn TelemetrySource>)
        .collect();
    let runtime = start(
        &policy,
        sources,
        dir.path(),
        "audit.jsonl",
        Box::new(MemoryActuator::default()),
        None,
        false,
    )
    .await;
    let producer = bus.producer("telemetry");
    let work = workload(messages);
    let t0 = Instant::now();
    for m in work {
        producer
            .publish(m.key.as_deref().unwrap_or(""), Bytes::from(m.payload))
            .await
            .expect("published");
    }
    while runtime.counters().decoded < messages as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let decoded = messages as f64 / t0.elapsed().as_secs_f64();
    let now = RealClock.now();
    let w = 1000;
    let end = Timestamp::from_millis(now.as_millis().div_euclid(w) * w + w);
    RealClock.sleep_until(end).await;
    producer.publish_watermark(end).await.expect("watermark");
    runtime.decided_through(end).await.expect("decided");
    let decided = messages as f64 / t0.elapsed().as_secs_f64();
    bus.close("telemetry");
    let _ = runtime.shutdown().await;
    (decoded, decided)
}

/// The client alone, no runtime: drain `messages` already published, one acknowledgement
/// per message (as the runtime does). Returns (publish msg/s, drain msg/s).
async fn client_only(url: &str, messages: usize) -> (f64, f64) {
    let topic = format!(
        "persistent://conclave/test/bench-client-{}",
        RealClock.now().as_millis()
    );
    let s = settings(&topic, &format!("{topic}-actions"));
    let t = PulsarTransport::connect(url, s, "bench-client", Duration::from_secs(10))
        .await
        .expect("broker");
    let mut reader = TopicReader::open(&t, &topic, "bench-client")
        .await
        .expect("reader");
    let mut p = Publisher::open(&t, &topic).await.expect("producer");
    let work = workload(messages);
    let t0 = Instant::now();
    for chunk in work.chunks(5_000) {
        p.send_all(chunk.to_vec()).await.expect("published");
    }
    let publish = messages as f64 / t0.elapsed().as_secs_f64();
    p.close().await;
    let t0 = Instant::now();
    let mut n = 0;
    while n < messages {
        if reader.next(Duration::from_secs(10)).await.is_none() {
            panic!("drained only {n} of {messages}");
        }
        n += 1;
    }
    (publish, messages as f64 / t0.elapsed().as_secs_f64())
}

/// A runtime with the bench's policy, real clock and an fsynced audit log.
async fn start(
    policy: &Arc<Policy>,
    sources: Vec<Box<dyn TelemetrySource>>,
    dir: &std::path::Path,
    audit_name: &str,
    actuator: Box<dyn conclave_runtime::actuator::Actuator>,
    tap: Option<tokio::sync::mpsc::UnboundedSender<conclave_runtime::Decision>>,
    decide_only_observed: bool,
) -> Runtime {
    Runtime::start(RuntimeConfig {
        journal: None,
        policy: policy.clone(),
        agents: specs(policy),
        sources,
        audit: audit(dir, audit_name),
        actuator,
        dead_letters: Arc::new(MemoryDeadLetters::default()),
        clock: Arc::new(RealClock),
        decision_tap: tap,
        tuning: Tuning {
            decide_only_observed,
            ..Tuning::default()
        },
    })
    .await
    .expect("runtime")
}

/// Publish -> the decision on the actions topic, one message at a time (100 ms windows).
async fn pulsar_latency(url: &str, samples: usize) -> Vec<Duration> {
    let topic = format!(
        "persistent://conclave/test/bench-lat-{}",
        RealClock.now().as_millis()
    );
    let actions = format!("{topic}-actions");
    let s = settings(&topic, &actions);
    let t = PulsarTransport::connect(url, s.clone(), "bench-lat", Duration::from_secs(10))
        .await
        .expect("broker");
    let mut reader = TopicReader::open(&t, &actions, "bench-reader")
        .await
        .expect("reader");
    let sources = open_sources(&t, 1, Duration::from_millis(100), Arc::new(RealClock))
        .await
        .expect("sources");
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy("100ms");
    let runtime = start(
        &policy,
        sources.sources,
        dir.path(),
        "audit.jsonl",
        Box::new(SinkActuator::new(
            PulsarActionSink::open(&t).await.expect("actions"),
        )),
        None,
        true,
    )
    .await;
    let acker = tokio::spawn(sources.control.acker(runtime.handle(), None).run());
    let mut p = Publisher::open(&t, &topic).await.expect("producer");
    let mut out = Vec::with_capacity(samples);
    for n in 0..samples {
        let i = n % TARGETS;
        let t0 = Instant::now();
        p.send_all(vec![Outgoing {
            key: Some(format!("svc-{i}")),
            event_id: Some(format!("lat-{n}")),
            payload: metrics(i, RealClock.now(), 1.0),
        }])
        .await
        .expect("published");
        let want = format!("svc-{i}");
        loop {
            match reader.next(Duration::from_secs(10)).await {
                Some(m) if m.key.as_deref() == Some(want.as_str()) => break,
                Some(_) => continue,
                None => panic!("no decision for sample {n}"),
            }
        }
        out.push(t0.elapsed());
        // Land the next sample at a random point of a window, not right after a close.
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    sources.control.stop();
    let _ = runtime.shutdown().await;
    acker.abort();
    sources.control.close().await;
    p.close().await;
    out
}

/// The same on the embedded bus: publish -> decision at the tap (100 ms windows, the
/// same 250 ms-or-on-arrival watermarks as the Pulsar source).
async fn embedded_latency(samples: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy("100ms");
    let bus = EmbeddedBus::new(BusConfig {
        partitions: 1,
        capacity: 65_536,
        overload: OverloadPolicy::Block,
    });
    let sources: Vec<Box<dyn TelemetrySource>> = bus
        .subscribe("telemetry")
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn TelemetrySource>)
        .collect();
    let (tap_tx, mut tap) = tokio::sync::mpsc::unbounded_channel();
    let runtime = start(
        &policy,
        sources,
        dir.path(),
        "audit.jsonl",
        Box::new(MemoryActuator::default()),
        Some(tap_tx),
        false,
    )
    .await;
    let producer = bus.producer("telemetry");
    let ticker = tokio::spawn({
        let producer = bus.producer("telemetry");
        async move {
            loop {
                if producer.publish_watermark(RealClock.now()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let mut out = Vec::with_capacity(samples);
    for n in 0..samples {
        let i = n % TARGETS;
        let t0 = Instant::now();
        producer
            .publish(
                &format!("svc-{i}"),
                Bytes::from(metrics(i, RealClock.now(), 1.0)),
            )
            .await
            .expect("published");
        loop {
            match tokio::time::timeout(Duration::from_secs(10), tap.recv()).await {
                Ok(Some(d)) if d.target.as_str() == format!("svc-{i}") => break,
                Ok(Some(_)) => continue,
                _ => panic!("no decision for sample {n}"),
            }
        }
        out.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    ticker.abort();
    bus.close("telemetry");
    let _ = runtime.shutdown().await;
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let Ok(url) = std::env::var("CONCLAVE_PULSAR_URL") else {
        println!("pulsar bench: set CONCLAVE_PULSAR_URL (make bench-pulsar starts a broker)");
        return;
    };
    let messages = common::arg("--messages", 100_000);
    let samples = common::arg("--samples", 150).min(TARGETS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        println!("{messages} metrics messages over {TARGETS} targets, scaler on every target, 1 s windows, audit fsync per record");
        println!("{:<28} {:>14} {:>22} {:>14}", "transport", "decoded msg/s", "decided (+acked) msg/s", "publish msg/s");
        let (decoded, decided) = embedded_throughput(messages).await;
        println!("{:<28} {decoded:>14.0} {decided:>22.0} {:>14}", "embedded bus, 1 instance", "-");
        let (publish, drain) = client_only(&url, messages).await;
        println!("{:<28} {drain:>14.0} {:>22} {publish:>14.0}", "pulsar client alone", "-");
        for instances in [1, 2] {
            let (publish, decoded, acked) = pulsar_throughput(&url, instances, messages).await;
            println!(
                "{:<28} {decoded:>14.0} {acked:>22.0} {publish:>14.0}",
                format!("pulsar, {instances} instance(s)")
            );
        }
        println!("\npublish -> decision, {samples} samples, 100 ms windows (a window's wait is part of it)");
        let mut e = embedded_latency(samples).await;
        e.sort();
        println!(
            "embedded bus (decision tap)       : p50 {}  p99 {}",
            ms(common::percentile(&e, 0.5)),
            ms(common::percentile(&e, 0.99))
        );
        let mut p = pulsar_latency(&url, samples).await;
        p.sort();
        println!(
            "pulsar (actions topic)            : p50 {}  p99 {}",
            ms(common::percentile(&p, 0.5)),
            ms(common::percentile(&p, 0.99))
        );
    });
}
