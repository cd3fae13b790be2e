//! What tracing costs per decision: the same workload (200 hot targets per window, each
//! decided once; four agents) decided with tracing off,
//! on at ratio 0.01 and on at 1.0. Spans go through the same layer, filter and
//! decision-aware sampler as the binary's, to a batch processor whose exporter counts and
//! drops them (the network's cost is not Conclave's).
//!
//! A process can install one global subscriber, so the benchmark runs itself once per
//! mode: `cargo bench -p conclave-agents --bench tracing_cost` (optional
//! `-- --seconds N`).
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time; nothing here feeds decisions"
)]

#[allow(dead_code, reason = "this benchmark needs only the argument helper")]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use conclave_runtime::sampling::DecisionSampler;
use conclave_runtime::Timestamp;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

const START_MS: i64 = 1_795_946_400_000; // 2026-11-29T10:00:00Z
const TARGETS: usize = 200;
const WINDOW_S: i64 = 5;

const POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: bench, revision: b1}
spec:
  agents:
    scaler: {mode: enforce, settings: {metric: cpu, target: 0.5}}
    breaker: {mode: enforce}
    router:
      mode: advise
      settings: {routes: {edge: {backends: [svc-0, svc-1, svc-2, svc-3]}}}
    compliance:
      mode: enforce
      settings: {residency: {orders: [eu-west]}}
  guardrails:
    defaults: {min_replicas: 1, max_replicas: 1000, max_step: 1000, cooldown: 0s}
  arbiter: {window: 5s}
"#;

/// Counts spans and drops them.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn second(s: i64) -> Vec<(String, Bytes)> {
    let ts = Timestamp::from_millis(START_MS + s * 1000);
    // Every window brings a fresh set of hot services: the scaler proposes a scale-up for
    // each (an agent that already acted on a target holds it through its cold start, so
    // the same targets would not be decided again window after window).
    let w = s / WINDOW_S;
    (0..TARGETS)
        .map(|i| {
            let (cpu, replicas) = (0.9, 4);
            let line = format!(
                r#"{{"type":"metrics","schema_version":1,"service":"svc-{w}-{i}","ts":"{ts}","rate_in":100.0,"rate_out":100.0,"backlog":0,"latency_p50_ms":12.5,"latency_p99_ms":90.0,"error_rate":0.01,"cpu":{cpu},"replicas":{replicas}}}"#
            );
            (format!("svc-{w}-{i}"), Bytes::from(line))
        })
        .collect()
}

fn run_mode(mode: &str, seconds: i64) {
    let spans = Counting::default();
    let provider = match mode {
        "off" => None,
        ratio => {
            let ratio: f64 = ratio.parse().expect("ratio");
            let provider = SdkTracerProvider::builder()
                .with_sampler(DecisionSampler::new(ratio))
                .with_batch_exporter(spans.clone())
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("conclave"))
                .with_location(false)
                .with_threads(false)
                .with_filter(
                    Targets::new()
                        .with_target("conclave::decision", LevelFilter::INFO)
                        .with_default(LevelFilter::OFF),
                );
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("subscriber");
            Some(provider)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let (decisions, traced, elapsed) = rt.block_on(async {
        let common::Embedded {
            runtime,
            bus,
            clock,
            mut tap,
            ..
        } = common::embedded(POLICY, START_MS, 2).await;
        let traced = tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(d) = tap.recv().await {
                n += u64::from(d.trace_id.is_some());
            }
            n
        });
        let producer = bus.producer("telemetry");
        producer
            .publish_watermark(Timestamp::from_millis(START_MS))
            .await
            .expect("wm");
        let started = Instant::now();
        for s in 0..seconds {
            for (key, payload) in second(s) {
                producer.publish(&key, payload).await.expect("publish");
            }
            let now = Timestamp::from_millis(START_MS + (s + 1) * 1000);
            clock.set(now);
            producer.publish_watermark(now).await.expect("wm");
        }
        bus.close("telemetry");
        let report = runtime.shutdown().await.expect("shutdown");
        let elapsed = started.elapsed();
        let traced = traced.await.expect("tap");
        (
            report.counters.decisions.values().sum::<u64>(),
            traced,
            elapsed,
        )
    });
    if let Some(p) = provider {
        let _ = p.shutdown();
    }
    println!(
        "| tracing {mode} | {} | {decisions} | {:.0} | {:.2} | {traced} | {} |",
        seconds as usize * TARGETS,
        decisions as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / decisions.max(1) as f64,
        spans.0.load(Ordering::Relaxed)
    );
}

fn main() {
    let seconds = common::arg("--seconds", 1200) as i64;
    let args: Vec<String> = std::env::args().collect();
    if let Some(mode) = args
        .iter()
        .position(|a| a == "--mode")
        .and_then(|i| args.get(i + 1))
    {
        run_mode(mode, seconds);
        return;
    }
    println!(
        "tracing cost benchmark: {TARGETS} targets, {seconds} s of telemetry in {WINDOW_S} s windows, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| mode | messages | decisions | decisions/s | µs per decision (wall) | decisions traced | spans exported |");
    println!("|---|--:|--:|--:|--:|--:|--:|");
    let me = std::env::current_exe().expect("own path");
    for mode in ["off", "0.01", "1.0", "off"] {
        let out = std::process::Command::new(&me)
            .args(["--mode", mode, "--seconds", &seconds.to_string(), "--bench"])
            .output()
            .expect("bench runs itself");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
