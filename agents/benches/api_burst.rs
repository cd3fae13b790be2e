//! Does a burst of operator-API requests slow decisions? The same workload (20 targets,
//! four agents, a window at a time) is decided three times in one run: without the API,
//! with the API serving but idle, and with client threads hammering it (the operator view,
//! decision queries, bad tokens, refused acts) the whole time. Prints window close ->
//! decided latency for each and the request rate the clients got.
//!
//! Run: `cargo bench -p conclave-agents --bench api_burst` (BENCHMARKS.md records it).
//! Optional: `-- --seconds N --clients N`.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time; nothing here feeds decisions"
)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conclave_runtime::api::{self, auth, ApiConfig, ApiContext, DecisionFeed, TokenStore};
use conclave_runtime::{Role, Timestamp};

const START_MS: i64 = 1_795_946_400_000; // 2026-11-29T10:00:00Z
const TARGETS: usize = 20;

const POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: bench, revision: b1}
spec:
  agents:
    scaler: {mode: enforce}
    breaker: {mode: enforce}
    router:
      mode: advise
      settings: {routes: {edge: {backends: [svc-0, svc-1, svc-2, svc-3]}}}
    compliance:
      mode: enforce
      settings: {residency: {orders: [eu-west]}}
  guardrails:
    defaults: {min_replicas: 1, max_replicas: 1000, max_step: 1000, cooldown: 1s}
  arbiter: {window: 15s}
"#;

fn second(s: i64) -> Vec<(String, Bytes)> {
    let ts = Timestamp::from_millis(START_MS + s * 1000);
    (0..TARGETS)
        .map(|i| {
            let cpu = 0.4 + 0.5 * (((s as f64) / 60.0 + i as f64).sin().abs());
            let line = format!(
                r#"{{"type":"metrics","schema_version":1,"service":"svc-{i}","ts":"{ts}","rate_in":100.0,"rate_out":100.0,"backlog":0,"latency_p50_ms":12.5,"latency_p99_ms":90.0,"error_rate":0.01,"cpu":{cpu:.3},"replicas":4}}"#
            );
            (format!("svc-{i}"), Bytes::from(line))
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Off,
    Idle,
    Burst,
}

struct Figures {
    latencies: Vec<Duration>,
    decisions: u64,
    requests: u64,
    elapsed: Duration,
}

/// Client threads calling the API until `stop`: a mix of what a busy console, a script
/// gone wrong and an attacker would send.
fn clients(
    addr: SocketAddr,
    token: String,
    n: usize,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (token, stop, count) = (token.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let base = format!("http://{addr}");
                let bearer = format!("Bearer {token}");
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let _ = match i % 4 {
                        0 => agent
                            .get(&format!("{base}/api/v1/view"))
                            .header("Authorization", &bearer)
                            .call(),
                        1 => agent
                            .get(&format!("{base}/api/v1/decisions?limit=100"))
                            .header("Authorization", &bearer)
                            .call(),
                        2 => agent
                            .get(&format!("{base}/api/v1/agents"))
                            .header("Authorization", "Bearer conclave_00000000_x")
                            .call(),
                        _ => agent
                            .post(&format!("{base}/api/v1/agents/nobody/pause"))
                            .header("Authorization", &bearer)
                            .send_json(serde_json::json!({"reason": "bench"})),
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect()
}

async fn run(seconds: i64, api_mode: Api, n_clients: usize) -> Figures {
    let common::Embedded {
        runtime,
        bus,
        clock,
        policy,
        mut tap,
        ..
    } = common::embedded(POLICY, START_MS, 2).await;
    let feed = DecisionFeed::new(2_000);
    let f2 = feed.clone();
    let pump = tokio::spawn(async move {
        while let Some(d) = tap.recv().await {
            f2.push(d);
        }
    });
    let (token, entry) = auth::generate("bench", Role::Operator).expect("token");
    let tokens =
        TokenStore::parse("bench", &auth::to_yaml(&[entry]).expect("yaml")).expect("tokens");
    let server = if api_mode == Api::Off {
        None
    } else {
        let config = ApiConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            tls: None,
        };
        let ctx = ApiContext::new(runtime.handle(), feed, tokens, clock.clone());
        Some(api::serve(&config, ctx).await.expect("serve"))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let workers = match (&server, api_mode) {
        (Some(s), Api::Burst) => clients(
            s.local_addr(),
            token,
            n_clients,
            stop.clone(),
            count.clone(),
        ),
        _ => Vec::new(),
    };
    let producer = bus.producer("telemetry");
    producer
        .publish_watermark(Timestamp::from_millis(START_MS))
        .await
        .expect("wm");
    let window_s = policy.arbiter().window().as_secs() as i64;
    let mut latencies = Vec::new();
    let started = Instant::now();
    for s in 0..seconds {
        for (key, payload) in second(s) {
            producer.publish(&key, payload).await.expect("publish");
        }
        let now = Timestamp::from_millis(START_MS + (s + 1) * 1000);
        clock.set(now);
        producer.publish_watermark(now).await.expect("wm");
        if (s + 1) % window_s == 0 {
            let t0 = Instant::now();
            runtime.decided_through(now).await.expect("decided");
            latencies.push(t0.elapsed());
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    bus.close("telemetry");
    let report = runtime.shutdown().await.expect("shutdown");
    let _ = pump.await;
    if let Some(s) = server {
        s.shutdown().await;
    }
    latencies.sort();
    Figures {
        latencies,
        decisions: report.counters.decisions.values().sum(),
        requests: count.load(Ordering::Relaxed),
        elapsed,
    }
}

fn main() {
    let seconds = common::arg("--seconds", 15 * 400) as i64;
    let n_clients = common::arg("--clients", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    println!(
        "api burst benchmark: {TARGETS} targets, {seconds} s of telemetry ({} windows), {n_clients} client threads, {} cores",
        seconds / 15,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| row | window close -> decided p50 / p99 / max ms | decisions | API requests | requests/s |");
    println!("|---|--:|--:|--:|--:|");
    rt.block_on(async {
        for (name, mode) in [
            ("baseline: no API", Api::Off),
            ("API serving, idle", Api::Idle),
            ("API under a burst", Api::Burst),
        ] {
            let f = run(seconds, mode, n_clients).await;
            let ms = |p: f64| common::percentile(&f.latencies, p).as_secs_f64() * 1e3;
            println!(
                "| {name} | {:.3} / {:.3} / {:.3} | {} | {} | {:.0} |",
                ms(0.5),
                ms(0.99),
                ms(1.0),
                f.decisions,
                f.requests,
                f.requests as f64 / f.elapsed.as_secs_f64()
            );
        }
    });
}
