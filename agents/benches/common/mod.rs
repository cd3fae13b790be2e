//! Helpers every benchmark binary of this crate shares.

use std::time::Duration;

/// The `p` quantile (0..=1) of durations sorted ascending; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The number after `name` on the command line (`-- --messages 5000`), else `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runtime on the embedded bus with four agents under `policy` (YAML), on a simulated
/// clock starting at `start_ms`, an audit log in a temporary folder (no fsync) and a
/// memory actuator; every decision also goes to the returned tap.
#[allow(dead_code, reason = "not every benchmark runs the whole pipeline")]
pub struct Embedded {
    pub runtime: conclave_runtime::Runtime,
    pub bus: conclave_runtime::bus::EmbeddedBus,
    pub clock: std::sync::Arc<conclave_runtime::SimClock>,
    pub policy: std::sync::Arc<conclave_runtime::Policy>,
    pub tap: tokio::sync::mpsc::UnboundedReceiver<conclave_runtime::Decision>,
    _dir: tempfile::TempDir,
}

#[allow(dead_code, reason = "not every benchmark runs the whole pipeline")]
pub async fn embedded(policy_yaml: &str, start_ms: i64, partitions: usize) -> Embedded {
    use std::sync::Arc;

    use conclave_runtime::actuator::MemoryActuator;
    use conclave_runtime::audit::{AuditWriter, FsyncPolicy};
    use conclave_runtime::bus::{BusConfig, EmbeddedBus, OverloadPolicy, TelemetrySource};
    use conclave_runtime::telemetry::MemoryDeadLetters;
    use conclave_runtime::{Runtime, RuntimeConfig, SimClock, Timestamp, Tuning};

    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Arc::new(
        conclave_runtime::policy::compile_str("bench.yaml", policy_yaml, &conclave_agents::Catalog)
            .expect("bench policy"),
    );
    let clock = Arc::new(SimClock::new(Timestamp::from_millis(start_ms)));
    let bus = EmbeddedBus::new(BusConfig {
        partitions,
        capacity: 65_536,
        overload: OverloadPolicy::Block,
    });
    let sources: Vec<Box<dyn TelemetrySource>> = bus
        .subscribe("telemetry")
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn TelemetrySource>)
        .collect();
    let (tap_tx, tap) = tokio::sync::mpsc::unbounded_channel();
    let runtime = Runtime::start(RuntimeConfig {
        journal: None,
        policy: policy.clone(),
        agents: conclave_agents::agent_specs(&policy).expect("specs"),
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
        decision_tap: Some(tap_tx),
        tuning: Tuning::default(),
    })
    .await
    .expect("start");
    Embedded {
        runtime,
        bus,
        clock,
        policy,
        tap,
        _dir: dir,
    }
}
