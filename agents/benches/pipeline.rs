//! Pipeline throughput and decision latency on the embedded bus: decode -> four agents ->
//! arbiter -> audit, with 20 and 200 targets, next to two baselines measured in the same
//! run (the bus alone, and decode with no agents), so the figures say where time goes.
//!
//! Run: `cargo bench -p conclave-agents --bench pipeline` (prints a table; BENCHMARKS.md
//! records it). Optional: `-- --messages N`.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time; nothing here feeds decisions"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conclave_runtime::actuator::MemoryActuator;
use conclave_runtime::audit::{AuditWriter, FsyncPolicy};
use conclave_runtime::bus::{BusConfig, EmbeddedBus, OverloadPolicy, SourceItem, TelemetrySource};
use conclave_runtime::telemetry::MemoryDeadLetters;
use conclave_runtime::{AgentSpec, Runtime, RuntimeConfig, SimClock, Timestamp, Tuning};

const START_MS: i64 = 1_795_946_400_000; // 2026-11-29T10:00:00Z
const PARTITIONS: usize = 2;

fn policy_yaml(targets: usize) -> String {
    let backends: Vec<String> = (0..targets.min(4)).map(|i| format!("svc-{i}")).collect();
    format!(
        r#"
apiVersion: conclave/v1
kind: Policy
metadata: {{name: bench, revision: b1}}
spec:
  agents:
    scaler: {{mode: enforce}}
    breaker: {{mode: enforce}}
    router:
      mode: advise
      settings: {{routes: {{edge: {{backends: [{}]}}}}}}
    compliance:
      mode: enforce
      settings: {{residency: {{orders: [eu-west]}}}}
  guardrails:
    defaults: {{min_replicas: 1, max_replicas: 1000, max_step: 1000, cooldown: 1s}}
  arbiter: {{window: 15s}}
"#,
        backends.join(", ")
    )
}

/// One second of telemetry: a metrics sample per target, and an order event for every
/// tenth target; load swings with time so agents do propose now and then.
fn second(targets: usize, s: i64) -> Vec<(String, Bytes)> {
    let ts = Timestamp::from_millis(START_MS + s * 1000);
    let mut out = Vec::with_capacity(targets + targets / 10);
    for i in 0..targets {
        let cpu = 0.4 + 0.5 * (((s as f64) / 60.0 + i as f64).sin().abs());
        let line = format!(
            r#"{{"type":"metrics","schema_version":1,"service":"svc-{i}","ts":"{ts}","rate_in":{r:.1},"rate_out":{r:.1},"backlog":{b},"latency_p50_ms":12.5,"latency_p99_ms":{p99:.1},"error_rate":0.01,"cpu":{cpu:.3},"replicas":4}}"#,
            r = 100.0 + (s % 50) as f64,
            b = (s % 7) * 3,
            p99 = 80.0 + (i % 5) as f64 * 10.0,
        );
        out.push((format!("svc-{i}"), Bytes::from(line)));
        if i % 10 == 0 {
            let line = format!(
                r#"{{"type":"event","schema_version":1,"topic":"orders","producer":"shop-{i}","region":"eu-west","key":"o-{s}","ts":"{ts}","fields":{{"order_id":"o-{s}-{i}","amount":12.5,"note":"gift wrap please"}}}}"#
            );
            out.push(("orders".to_string(), Bytes::from(line)));
        }
    }
    out
}

fn workload(targets: usize, messages: usize) -> Vec<Vec<(String, Bytes)>> {
    let per_second = targets + targets / 10;
    let seconds = messages.div_ceil(per_second) as i64;
    (0..seconds).map(|s| second(targets, s)).collect()
}

struct Figures {
    messages: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    decisions: u64,
}

/// Runs the workload through a runtime with `agents`. With `wait_each_window`, the driver
/// waits for each window's decisions before sending the next (latency mode).
async fn pipeline(
    targets: usize,
    seconds: &[Vec<(String, Bytes)>],
    agents: Vec<AgentSpec>,
    policy: Arc<conclave_runtime::Policy>,
    wait_each_window: bool,
) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(SimClock::new(Timestamp::from_millis(START_MS)));
    let bus = EmbeddedBus::new(BusConfig {
        partitions: PARTITIONS,
        capacity: 65_536,
        overload: OverloadPolicy::Block,
    });
    let sources: Vec<Box<dyn TelemetrySource>> = bus
        .subscribe("telemetry")
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn TelemetrySource>)
        .collect();
    let runtime = Runtime::start(RuntimeConfig {
        journal: None,
        policy: policy.clone(),
        agents,
        sources,
        audit: AuditWriter::open(
            &dir.path().join("audit.jsonl"),
            FsyncPolicy::Never,
            clock.clone(),
        )
        .expect("audit"),
        actuator: Box::new(MemoryActuator::new()),
        dead_letters: Arc::new(MemoryDeadLetters::default()),
        clock: clock.clone(),
        decision_tap: None,
        tuning: Tuning::default(),
    })
    .await
    .expect("start");
    let producer = bus.producer("telemetry");
    let window_s = policy.arbiter().window().as_secs() as i64;
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut messages = 0u64;
    producer
        .publish_watermark(Timestamp::from_millis(START_MS))
        .await
        .expect("wm");
    for (s, batch) in seconds.iter().enumerate() {
        let s = s as i64;
        for (key, payload) in batch {
            producer
                .publish(key, payload.clone())
                .await
                .expect("publish");
        }
        messages += batch.len() as u64;
        let now = Timestamp::from_millis(START_MS + (s + 1) * 1000);
        clock.set(now);
        producer.publish_watermark(now).await.expect("wm");
        if wait_each_window && (s + 1) % window_s == 0 {
            let t0 = Instant::now();
            runtime.decided_through(now).await.expect("decided");
            latencies.push(t0.elapsed());
        }
    }
    bus.close("telemetry");
    let report = runtime.shutdown().await.expect("shutdown");
    let elapsed = started.elapsed();
    assert_eq!(report.counters.decoded, messages, "every message decoded");
    let _ = targets;
    latencies.sort();
    Figures {
        messages,
        elapsed,
        latencies,
        decisions: report.counters.decisions.values().sum(),
    }
}

/// The bus alone: publish and consume every message, no decoding.
async fn bus_only(seconds: &[Vec<(String, Bytes)>]) -> Figures {
    let bus = EmbeddedBus::new(BusConfig {
        partitions: PARTITIONS,
        capacity: 65_536,
        overload: OverloadPolicy::Block,
    });
    let mut consumers = Vec::new();
    for mut source in bus.subscribe("telemetry") {
        consumers.push(tokio::spawn(async move {
            let mut buf: Vec<SourceItem> = Vec::with_capacity(512);
            let mut n = 0u64;
            loop {
                buf.clear();
                match source.recv_batch(512, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        n += buf
                            .iter()
                            .filter(|i| matches!(i, SourceItem::Message(_)))
                            .count() as u64
                    }
                }
            }
            n
        }));
    }
    let producer = bus.producer("telemetry");
    let started = Instant::now();
    let mut messages = 0;
    for batch in seconds {
        for (key, payload) in batch {
            producer
                .publish(key, payload.clone())
                .await
                .expect("publish");
        }
        messages += batch.len() as u64;
    }
    bus.close("telemetry");
    let mut consumed = 0;
    for c in consumers {
        consumed += c.await.expect("consumer");
    }
    assert_eq!(consumed, messages);
    Figures {
        messages,
        elapsed: started.elapsed(),
        latencies: Vec::new(),
        decisions: 0,
    }
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn row(name: &str, targets: usize, f: &Figures) {
    let rate = f.messages as f64 / f.elapsed.as_secs_f64();
    let lat = if f.latencies.is_empty() {
        "-".to_string()
    } else {
        format!(
            "{:.3} / {:.3}",
            common::percentile(&f.latencies, 0.5).as_secs_f64() * 1e3,
            common::percentile(&f.latencies, 0.99).as_secs_f64() * 1e3
        )
    };
    let (rss, hwm) = rss_kib();
    println!(
        "| {name} | {targets} | {} | {:.0} | {} | {} | {} / {} |",
        f.messages,
        rate,
        lat,
        f.decisions,
        rss / 1024,
        hwm / 1024
    );
}

fn main() {
    let messages = common::arg("--messages", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    println!(
        "pipeline benchmark: {messages} messages per row, {PARTITIONS} partitions, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| row | targets | messages | messages/s | window close -> decided p50 / p99 ms | decisions | RSS / peak MiB |");
    println!("|---|--:|--:|--:|--:|--:|--:|");
    rt.block_on(async {
        for targets in [20usize, 200] {
            let (rss_before, _) = rss_kib();
            let seconds = workload(targets, messages);
            let payload: usize = seconds.iter().flatten().map(|(_, p)| p.len()).sum();
            let (rss_loaded, _) = rss_kib();
            println!(
                "| workload: {targets} targets, {:.0} MiB of payloads held in memory (RSS {} -> {} MiB) | | | | | | |",
                payload as f64 / 1048576.0,
                rss_before / 1024,
                rss_loaded / 1024
            );
            let policy = Arc::new(
                conclave_runtime::policy::compile_str(
                    "bench.yaml",
                    &policy_yaml(targets),
                    &conclave_agents::Catalog,
                )
                .expect("bench policy"),
            );
            let specs = conclave_agents::agent_specs(&policy).expect("specs");
            let f = bus_only(&seconds).await;
            row("baseline: bus only", targets, &f);
            let f = pipeline(targets, &seconds, Vec::new(), policy.clone(), false).await;
            row("baseline: decode, no agents", targets, &f);
            let f = pipeline(targets, &seconds, specs.clone(), policy.clone(), false).await;
            row("decode -> 4 agents -> arbiter -> audit", targets, &f);
            let f = pipeline(targets, &seconds, specs, policy.clone(), true).await;
            row("same, waiting on every window", targets, &f);
        }
    });
}
