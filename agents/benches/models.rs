//! ONNX model cost (issue #6): single-row inference latency and batched throughput of the
//! scaler forecast model (`agents/models/scaler-forecast.onnx`) through the runtime's
//! `ModelHost`, next to the identity test model (what the host and ONNX Runtime cost
//! with no model work); then the scaler agent driven directly, rule only and predictive
//! in the same run, to show what the model adds per tick and per decision.
//!
//! Run: `cargo bench -p conclave-agents --bench models` (prints a table; needs ONNX
//! Runtime, which `agents/training/setup.sh` installs). Optional:
//! `-- --calls N --rounds N`.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock time; nothing here feeds decisions"
)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_runtime::models::{HostOptions, LibrarySearch, ModelHost, OrtEnvironment};
use conclave_runtime::policy::ModelRef;
use conclave_runtime::telemetry::{ServiceMetrics, Telemetry, SCHEMA_VERSION};
use conclave_runtime::{Agent, Clock, Policy, Proposals, RealClock, SimClock, Timestamp};

const START_MS: i64 = 1_795_946_400_000; // 2026-11-29T10:00:00Z
/// Targets the scaler decides for.
const TARGETS: usize = 200;
/// One metrics message per target, and one tick, every 15 s of event time.
const STEP_S: i64 = 15;
/// Simulated time the agent is driven for.
const SIM_S: i64 = 2 * 3600;
/// Requests per second one replica serves at full CPU.
const PER_REPLICA: f64 = 50.0;
/// Rows in the input pool the inference calls cycle through.
const POOL_ROWS: usize = 4096;
const SEED: u64 = 20_261_129;

/// SplitMix64: a small seeded generator, so the inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn project_root() -> PathBuf {
    let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    agents.parent().map(PathBuf::from).unwrap_or(agents)
}

fn model_path(relative: &str) -> PathBuf {
    project_root().join("agents/models").join(relative)
}

/// The process's ONNX Runtime, found as the runtime finds it (`ORT_DYLIB_PATH`, the
/// project venv, the system); the scaler's own `ScalerModel::load` then gets the same one.
fn ort() -> &'static OrtEnvironment {
    let search = LibrarySearch::from_env().with_project_root(project_root());
    match OrtEnvironment::init(&search) {
        Ok(env) => env,
        Err(e) => panic!("ONNX Runtime is needed for this benchmark: {e}"),
    }
}

/// The scaler's `model` block for the model at `path`, with its signature.
fn model_block(path: &std::path::Path, version: Option<&str>, io: (&str, &str)) -> String {
    let version = version.map_or_else(String::new, |v| format!("\n        version: \"{v}\""));
    format!(
        r#"
      model:
        path: {path:?}{version}
        inputs: [{}]
        outputs: [{}]
        timeout: 200ms
      fallback: rules"#,
        io.0,
        io.1,
        path = path.display().to_string(),
    )
}

fn scaler_model_block() -> String {
    learned_model_block(&MODELS[0])
}

/// One committed model: file, features per row (from the agent's signature), output
/// name, what it predicts.
struct Committed {
    file: &'static str,
    features: usize,
    output: &'static str,
    says: &'static str,
}

/// Every agent's committed model; the scaler's first.
const MODELS: [Committed; 4] = [
    Committed {
        file: "scaler-forecast.onnx",
        features: conclave_agents::scaler::SIGNATURE.feature_names.len(),
        output: "p90_ratio",
        says: "p90 rate ratio",
    },
    Committed {
        file: "breaker-risk.onnx",
        features: conclave_agents::breaker::SIGNATURE.feature_names.len(),
        output: "risk",
        says: "trip probability",
    },
    Committed {
        file: "router-latency.onnx",
        features: conclave_agents::router::SIGNATURE.feature_names.len(),
        output: "latency_ms",
        says: "backend latency",
    },
    Committed {
        file: "compliance-fraud.onnx",
        features: conclave_agents::compliance::SIGNATURE.feature_names.len(),
        output: "fraud",
        says: "fraud score",
    },
];

fn learned_model_block(m: &Committed) -> String {
    model_block(
        &model_path(m.file),
        Some("1.0.0"),
        (
            &format!(
                "{{name: features, type: float32, shape: [-1, {}]}}",
                m.features
            ),
            &format!("{{name: {}, type: float32, shape: [-1, 1]}}", m.output),
        ),
    )
}

/// `POOL_ROWS` rows around a model's training distribution: reference mean plus
/// reference std times a normal draw (within 3 std), kept non-negative for features
/// whose training values were (the scaler has its own domains: [`scaler_rows`]).
fn reference_rows(host: &ModelHost, rng: &mut Rng) -> Vec<f32> {
    let stats = host.metadata().reference_stats();
    assert_eq!(stats.len(), host.row_len(), "reference stats per feature");
    let mut rows = Vec::with_capacity(POOL_ROWS * stats.len());
    for _ in 0..POOL_ROWS {
        for s in stats {
            let v = s.mean + s.std * rng.normal().clamp(-3.0, 3.0);
            let non_negative = s.decile_edges.first().is_none_or(|e| *e >= 0.0);
            rows.push(if non_negative { v.max(0.0) } else { v } as f32);
        }
    }
    rows
}

/// The scaler on every target, with `model` (a [`model_block`]) or on its rule alone.
fn policy(model: &str) -> Arc<Policy> {
    let yaml = format!(
        r#"apiVersion: conclave/v1
kind: Policy
metadata: {{name: bench-models, revision: b1}}
spec:
  agents:
    scaler:
      mode: enforce
      targets: {{globs: ["*"]}}{model}
  guardrails:
    defaults: {{min_replicas: 1, max_replicas: 1000, max_step: 1000, cooldown: 15s}}
  arbiter: {{window: 15s}}
"#
    );
    let file = project_root().join("agents/benches/bench-models.yaml");
    match conclave_runtime::policy::compile_str(
        &file.display().to_string(),
        &yaml,
        &conclave_agents::Catalog,
    ) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("bench policy: {e:?}"),
    }
}

fn model_ref(policy: &Policy) -> ModelRef {
    policy
        .agent("scaler")
        .and_then(|a| a.model())
        .cloned()
        .expect("the bench policy names a model")
}

fn load(model: &ModelRef) -> ModelHost {
    let clock = SimClock::new(Timestamp::from_millis(START_MS));
    match ModelHost::load(ort(), model, HostOptions::default(), Arc::new(clock)) {
        Ok(host) => host,
        Err(e) => panic!("loading {}: {e}", model.path().display()),
    }
}

/// `POOL_ROWS` rows around the model's training distribution: each feature is its
/// reference mean plus its reference std times a normal draw (within 3 std), kept in
/// the feature's domain (ratios in `[0, 20]`, `has_*` flags 0/1 with the mean as the
/// share of 1s, clock features in `[-1, 1]`).
fn scaler_rows(host: &ModelHost, rng: &mut Rng) -> Vec<f32> {
    let stats = host.metadata().reference_stats();
    assert_eq!(stats.len(), host.row_len(), "reference stats per feature");
    let mut rows = Vec::with_capacity(POOL_ROWS * stats.len());
    for _ in 0..POOL_ROWS {
        for s in stats {
            let v = if s.name.starts_with("has_") {
                if rng.uniform() < s.mean {
                    1.0
                } else {
                    0.0
                }
            } else {
                let v = s.mean + s.std * rng.normal().clamp(-3.0, 3.0);
                if s.name.ends_with("_sin") || s.name.ends_with("_cos") {
                    v.clamp(-1.0, 1.0)
                } else {
                    v.clamp(0.0, 20.0)
                }
            };
            rows.push(v as f32);
        }
    }
    rows
}

fn mean(d: &[Duration]) -> Duration {
    if d.is_empty() {
        return Duration::ZERO;
    }
    d.iter().sum::<Duration>() / u32::try_from(d.len()).unwrap_or(u32::MAX)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `calls` inferences of `batch` rows each, cycling through `pool`, after a warm-up.
/// Returns each call's time (sorted) and the total.
fn infer_calls(
    host: &ModelHost,
    pool: &[f32],
    batch: usize,
    calls: usize,
) -> (Vec<Duration>, Duration) {
    let row = host.row_len();
    let pool_rows = pool.len() / row;
    let mut checksum = 0.0f64;
    let mut call = |k: usize| {
        let start = (k * batch) % (pool_rows - batch + 1);
        let input = &pool[start * row..(start + batch) * row];
        match host.infer(input, batch) {
            Ok(out) => checksum += f64::from(out[0]),
            Err(e) => panic!("inference ({batch} rows): {e}"),
        }
    };
    for k in 0..50 {
        call(k);
    }
    let mut times = Vec::with_capacity(calls);
    let started = Instant::now();
    for k in 0..calls {
        let t0 = Instant::now();
        call(k);
        times.push(t0.elapsed());
    }
    let total = started.elapsed();
    std::hint::black_box(checksum);
    times.sort();
    (times, total)
}

/// One metrics message per target per step for `SIM_S`: each target has its own level
/// (20 to 2,000 req/s), a slow wave (30 to 120 min period, +-30 %), some a steady trend
/// (+-20 % an hour), and 5 % noise per sample; replicas fixed at what the level needs at
/// the 0.7 CPU target, so the waves push CPU out of the tolerance band now and then.
fn workload(rng: &mut Rng) -> Vec<Vec<Telemetry>> {
    struct Shape {
        level: f64,
        period_s: f64,
        phase: f64,
        trend_per_h: f64,
        replicas: u32,
    }
    let shapes: Vec<Shape> = (0..TARGETS)
        .map(|i| {
            let level = 20.0 * 100f64.powf(rng.uniform());
            let trend_per_h = if i % 4 == 0 {
                0.4 * rng.uniform() - 0.2
            } else {
                0.0
            };
            Shape {
                level,
                period_s: 60.0 * (30.0 + 90.0 * rng.uniform()),
                phase: rng.uniform(),
                trend_per_h,
                replicas: (level / (PER_REPLICA * 0.7)).ceil().max(1.0) as u32,
            }
        })
        .collect();
    (0..SIM_S / STEP_S)
        .map(|step| {
            let s = step * STEP_S;
            let ts = Timestamp::from_millis(START_MS + s * 1000);
            shapes
                .iter()
                .enumerate()
                .map(|(i, sh)| {
                    let wave = (std::f64::consts::TAU * (s as f64 / sh.period_s + sh.phase)).sin();
                    let trend = 1.0 + sh.trend_per_h * s as f64 / 3600.0;
                    let noise = 1.0 + 0.05 * rng.normal().clamp(-3.0, 3.0);
                    let rate = (sh.level * (1.0 + 0.3 * wave) * trend * noise).max(0.0);
                    let cpu = rate / (f64::from(sh.replicas) * PER_REPLICA);
                    Telemetry::Metrics(ServiceMetrics {
                        schema_version: SCHEMA_VERSION,
                        service: format!("svc-{i:03}"),
                        ts,
                        rate_in: rate,
                        rate_out: rate,
                        backlog: 0,
                        latency_p50_ms: 12.5,
                        latency_p99_ms: 40.0 + 40.0 * cpu,
                        error_rate: 0.001,
                        cpu,
                        replicas: sh.replicas,
                        region: None,
                        dependencies: Vec::new(),
                    })
                })
                .collect()
        })
        .collect()
}

/// The scaler the catalog builds for `policy` (with a model, loaded once here).
fn scaler_factory(policy: &Arc<Policy>) -> conclave_runtime::AgentFactory {
    let specs = match conclave_agents::agent_specs(policy) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    };
    specs
        .into_iter()
        .find(|s| s.name == "scaler")
        .map(|s| s.factory)
        .expect("the policy runs the scaler")
}

#[derive(Default)]
struct AgentFigures {
    ticks: Vec<Duration>,
    observe: Duration,
    messages: u64,
    decisions: u64,
    proposals: u64,
    with_model: u64,
    with_fallback: u64,
}

/// Feeds each step's messages to a fresh agent, then ticks at the step's time.
fn drive(factory: &conclave_runtime::AgentFactory, work: &[Vec<Telemetry>], f: &mut AgentFigures) {
    let mut agent: Box<dyn Agent> = factory();
    let mut out = Proposals::new("scaler");
    for (step, batch) in work.iter().enumerate() {
        let now = Timestamp::from_millis(START_MS + step as i64 * STEP_S * 1000);
        let t0 = Instant::now();
        for m in batch {
            agent.observe(m, &mut out);
        }
        f.observe += t0.elapsed();
        f.messages += batch.len() as u64;
        let t0 = Instant::now();
        agent.tick(now, &mut out);
        f.ticks.push(t0.elapsed());
        // Every target has fresh metrics at every tick: each is one decision.
        f.decisions += batch.len() as u64;
        for p in out.take() {
            f.proposals += 1;
            f.with_model += u64::from(p.model.is_some());
            f.with_fallback += u64::from(p.fallback.is_some());
        }
    }
}

fn main() {
    let calls = common::arg("--calls", 2_000).max(1);
    let rounds = common::arg("--rounds", 3).max(1);
    let env = ort();
    let mut rng = Rng(SEED);
    println!(
        "models benchmark: ONNX Runtime {} ({}), {} cores, HostOptions::default() (1 intra-op thread, worker thread per model)",
        env.library().path.display(),
        env.library().source,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Every committed model, its reference rows, and its name as its metadata gives it.
    let mut models: Vec<(String, ModelHost, Vec<f32>)> = Vec::new();
    for m in &MODELS {
        let host = load(&model_ref(&policy(&learned_model_block(m))));
        let pool = if m.file.starts_with("scaler") {
            scaler_rows(&host, &mut rng)
        } else {
            reference_rows(&host, &mut rng)
        };
        let name = format!(
            "{} {} ({} features -> {})",
            host.metadata().name().unwrap_or(m.file),
            host.metadata().version().unwrap_or("?"),
            m.features,
            m.says
        );
        models.push((name, host, pool));
    }
    let identity_policy = policy(&model_block(
        &model_path("testdata/identity.onnx"),
        None,
        (
            "{name: x, type: float32, shape: [-1, 1]}",
            "{name: y, type: float32, shape: [-1, 1]}",
        ),
    ));
    let identity = load(&model_ref(&identity_policy));
    let identity_pool: Vec<f32> = (0..POOL_ROWS).map(|_| rng.uniform() as f32).collect();

    println!("\nsingle inference (1 row per call), {calls} calls after 50 warm-up calls; rows = reference mean + std x N(0,1)");
    println!("| model | p50 µs | p99 µs | mean µs |");
    println!("|---|--:|--:|--:|");
    let baseline = (
        "baseline: testdata/identity.onnx (host + ORT overhead)".to_string(),
        &identity,
        &identity_pool,
    );
    for (label, host, rows) in models
        .iter()
        .map(|(n, h, p)| (n.clone(), h, p))
        .chain(std::iter::once(baseline))
    {
        let (times, _) = infer_calls(host, rows, 1, calls);
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} |",
            us(common::percentile(&times, 0.5)),
            us(common::percentile(&times, 0.99)),
            us(mean(&times))
        );
    }

    // What the host's latency metric (issue #7) adds to every call above: two readings of
    // the wall clock's monotonic time and one atomic histogram record, measured alone.
    let stats = conclave_runtime::metrics::ModelStats::new("bench");
    let timing_calls = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..timing_calls {
        let t0 = RealClock.monotonic();
        stats.record_inference(std::hint::black_box(
            RealClock.monotonic().saturating_sub(t0),
        ));
    }
    let per_call = started.elapsed() / timing_calls;
    std::hint::black_box(stats.inference());
    println!(
        "| latency metric alone (2 monotonic clock reads + 1 histogram record; in every call above), {timing_calls} times | | | {:.3} |",
        us(per_call)
    );

    for (name, host, pool) in &models {
        println!("\nbatched throughput, {name}");
        println!("| rows per call | calls | rows/s | call p50 µs | call p99 µs | µs per row |");
        println!("|--:|--:|--:|--:|--:|--:|");
        for batch in [1usize, 16, 256] {
            let n = (calls * 16 / batch.max(16)).max(100);
            let (times, total) = infer_calls(host, pool, batch, n);
            let rows = (n * batch) as f64;
            println!(
                "| {batch} | {n} | {:.0} | {:.1} | {:.1} | {:.2} |",
                rows / total.as_secs_f64(),
                us(common::percentile(&times, 0.5)),
                us(common::percentile(&times, 0.99)),
                us(total) / rows
            );
        }
    }
    drop(identity);
    drop(models);
    let scaler_policy = policy(&scaler_model_block());

    let work = workload(&mut rng);
    let rule_policy = policy("");
    let rule = scaler_factory(&rule_policy);
    let predictive = scaler_factory(&scaler_policy);
    let mut r = AgentFigures::default();
    let mut p = AgentFigures::default();
    for _ in 0..rounds {
        drive(&rule, &work, &mut r);
        drive(&predictive, &work, &mut p);
    }
    println!(
        "\nscaler agent driven directly: {TARGETS} targets, metrics every {STEP_S} s per target, tick every {STEP_S} s, {} h of event time ({} ticks), {rounds} rounds alternating rule-only / predictive (fresh agent each round)",
        SIM_S / 3600,
        work.len()
    );
    println!("| scaler | ticks | tick mean µs | tick p50 µs | tick p99 µs | per decision µs | observe µs/msg | proposals | with model | fallback |");
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mut rows = Vec::new();
    for (label, f) in [("rule only", &mut r), ("predictive (rule + model)", &mut p)] {
        f.ticks.sort();
        let tick_mean = mean(&f.ticks);
        let per_decision =
            f.ticks.iter().sum::<Duration>().as_secs_f64() * 1e6 / f.decisions as f64;
        let per_msg = us(f.observe) / f.messages as f64;
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.3} | {:.3} | {} | {} | {} |",
            f.ticks.len(),
            us(tick_mean),
            us(common::percentile(&f.ticks, 0.5)),
            us(common::percentile(&f.ticks, 0.99)),
            per_decision,
            per_msg,
            f.proposals,
            f.with_model,
            f.with_fallback
        );
        rows.push((
            us(tick_mean),
            us(common::percentile(&f.ticks, 0.99)),
            per_decision,
            per_msg,
        ));
    }
    let (a, b) = (rows[0], rows[1]);
    println!(
        "| model adds | | {:+.1} | | {:+.1} | {:+.3} | {:+.3} | | | |",
        b.0 - a.0,
        b.1 - a.1,
        b.2 - a.2,
        b.3 - a.3
    );
    println!("(a decision: one target evaluated at one tick; every target has fresh metrics at every tick, so {TARGETS} per tick. The first ticks of each predictive round have no complete minute of rate_in yet and do not call the model.)");
}
