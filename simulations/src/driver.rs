//! Runs a scenario: the simulated fleet under the scenario's load and faults, either alone
//! (`none`: static replicas, nothing intervenes) or driven by the real runtime — the same
//! agents, arbiter, policy and audit log as in production — on the simulated clock through
//! the embedded bus (`policy`). Every run sees identical load, faults and events.
//!
//! Per step: apply the faults in force, step the fleet, publish its telemetry and this
//! step's event samples, publish a watermark; at each decision-window boundary, wait for the
//! window's decisions and apply the enacted ones to the fleet. The fleet reacts to a
//! decision from the next step on, and new replicas start cold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conclave_runtime::audit::{AuditWriter, FsyncPolicy};
use conclave_runtime::bus::{BusConfig, EmbeddedBus, OverloadPolicy, TelemetrySource};
use conclave_runtime::models::{FaultWindow, InjectedFault, ModelFaults};
use conclave_runtime::telemetry::{encode, MemoryDeadLetters, Telemetry};
use conclave_runtime::{Decision, Policy, Runtime, RuntimeConfig, SimClock, Timestamp, Tuning};
use tokio::sync::mpsc;

use crate::faults::{Fault, ModelFaultMode};
use crate::fleet::{ActionQueue, Fleet, FleetActuator, FleetError};
use crate::oracle::OraclePlan;
use crate::report::{
    ComplianceScore, DecisionMark, Incident, Report, RunReport, ServiceSeries, ServiceTotals,
    ShadowScore, Totals,
};
use crate::scenario::Scenario;

const TOPIC: &str = "telemetry";
/// The oracle provisions for this utilization (the scaler's usual CPU target).
const ORACLE_UTILIZATION: f64 = 0.7;
/// Decisions kept for the report's timeline.
const MAX_DECISION_MARKS: usize = 2_000;

/// Which run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Static replicas, no agent: what happens when nothing intervenes.
    None,
    /// The policy's agents through the real runtime.
    Policy,
    /// The same policy with every model removed: each agent on its rule (HPA scaler,
    /// resilience4j-style breaker, EWMA router, deterministic compliance detectors) —
    /// today's hand-tuned setup, to compare the learned agents against.
    Rules,
    /// The policy's agents in shadow: nothing acts (the fleet runs as in `none`); every
    /// scaling decision they would have made is scored against the oracle's plan.
    Shadow,
    /// A scaler with perfect foresight of every service's load (see [`crate::oracle`]):
    /// replicas ready a cold start ahead of each spike, released right after; no other
    /// action. The lower bound on violations for its cost.
    Oracle,
}

impl RunKind {
    /// Every kind, by name (for `--compare`).
    pub const ALL: [RunKind; 5] = [
        RunKind::None,
        RunKind::Policy,
        RunKind::Shadow,
        RunKind::Rules,
        RunKind::Oracle,
    ];

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<RunKind> {
        RunKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The run's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::None => "none",
            RunKind::Policy => "policy",
            RunKind::Rules => "rules",
            RunKind::Shadow => "shadow",
            RunKind::Oracle => "oracle",
        }
    }

    fn description(self) -> &'static str {
        match self {
            RunKind::None => "static replicas, nothing intervenes",
            RunKind::Policy => "the policy's agents through the runtime",
            RunKind::Rules => "the policy's agents on their rules (models removed)",
            RunKind::Shadow => "the policy's agents in shadow, scored against the oracle",
            RunKind::Oracle => "perfect-foresight scaler at 70 % utilization",
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The fleet refused a step or a fault.
    #[error("the fleet refused the simulation at {at}")]
    Fleet {
        /// Simulated time.
        at: Timestamp,
        /// Why.
        #[source]
        source: FleetError,
    },
    /// The runtime failed.
    #[error("the runtime failed")]
    Runtime(#[from] conclave_runtime::RuntimeError),
    /// The audit log could not be opened.
    #[error("cannot open the run's audit log")]
    Audit(#[from] conclave_runtime::audit::AuditError),
    /// The agents' settings are wrong (cannot happen for a policy that compiled).
    #[error("agent settings: {0}")]
    Agents(String),
    /// The bus closed under the driver.
    #[error("the bus closed during the run")]
    Bus(#[from] conclave_runtime::bus::BusError),
    /// A recording could not be written.
    #[error("cannot write the recording `{path}`")]
    Record {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Writes what a run saw, for training models (#6) and replaying with `conclave run`:
/// `telemetry.jsonl` (every metrics and event message, as sent), `truth.jsonl` (each
/// event's ground-truth label) and `fleet.jsonl` (each service's state at every decision
/// window: replicas, load, latency, errors, breach).
struct Recorder {
    dir: std::path::PathBuf,
    telemetry: std::io::BufWriter<std::fs::File>,
    truth: std::io::BufWriter<std::fs::File>,
    fleet: std::io::BufWriter<std::fs::File>,
}

/// Which recording file.
#[derive(Clone, Copy)]
enum Stream {
    Telemetry,
    Truth,
    Fleet,
}

impl Stream {
    fn file(self) -> &'static str {
        match self {
            Stream::Telemetry => "telemetry.jsonl",
            Stream::Truth => "truth.jsonl",
            Stream::Fleet => "fleet.jsonl",
        }
    }
}

impl Recorder {
    fn open(dir: &Path) -> Result<Self, SimError> {
        let create = |s: Stream| {
            let path = dir.join(s.file());
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::File::create(&path))
                .map(std::io::BufWriter::new)
                .map_err(|source| SimError::Record { path, source })
        };
        Ok(Recorder {
            dir: dir.to_path_buf(),
            telemetry: create(Stream::Telemetry)?,
            truth: create(Stream::Truth)?,
            fleet: create(Stream::Fleet)?,
        })
    }

    fn line(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), SimError> {
        use std::io::Write;
        let w = match stream {
            Stream::Telemetry => &mut self.telemetry,
            Stream::Truth => &mut self.truth,
            Stream::Fleet => &mut self.fleet,
        };
        // One message per line: a poison payload with a line break would split in two,
        // so its breaks are written escaped.
        let escaped: Vec<u8>;
        let bytes = if bytes.contains(&b'\n') {
            escaped = bytes
                .iter()
                .flat_map(|&b| {
                    if b == b'\n' {
                        vec![b'\\', b'n']
                    } else {
                        vec![b]
                    }
                })
                .collect();
            &escaped[..]
        } else {
            bytes
        };
        w.write_all(bytes)
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|source| SimError::Record {
                path: self.dir.join(stream.file()),
                source,
            })
    }

    fn finish(mut self) -> Result<(), SimError> {
        use std::io::Write;
        for (s, w) in [
            (Stream::Telemetry, &mut self.telemetry),
            (Stream::Truth, &mut self.truth),
            (Stream::Fleet, &mut self.fleet),
        ] {
            w.flush().map_err(|source| SimError::Record {
                path: self.dir.join(s.file()),
                source,
            })?;
        }
        Ok(())
    }
}

/// Called after every step with (steps done, steps in all); drives a progress bar.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Accumulates a run's figures from fleet snapshots.
struct Tally {
    step_s: f64,
    sample_every: u64,
    key: Vec<String>,
    services: BTreeMap<String, ServiceTotals>,
    series: BTreeMap<String, ServiceSeries>,
    /// Each service's cumulative arrivals at the previous step, in snapshot order (the
    /// fleet's services are fixed and its snapshot is sorted), for per-step load.
    arrived_before: Vec<f64>,
    incidents: Vec<Incident>,
    open_incident: Option<Incident>,
    worst_p99: f64,
}

impl Tally {
    fn new(scenario: &Scenario, fleet: &Fleet) -> Self {
        let step_s = scenario.step.as_secs_f64();
        let slo: BTreeMap<&str, f64> = scenario
            .fleet
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.slo_p99_ms))
            .collect();
        let services = fleet
            .service_names()
            .map(|n| {
                (
                    n.to_string(),
                    ServiceTotals {
                        name: n.to_string(),
                        slo_violation_minutes: 0.0,
                        replica_hours: 0.0,
                        peak_replicas: 0,
                        worst_p99_ms: 0.0,
                        slo_p99_ms: slo.get(n).copied().unwrap_or(0.0),
                    },
                )
            })
            .collect();
        let series = scenario
            .key_services
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    ServiceSeries {
                        name: n.clone(),
                        slo_p99_ms: slo.get(n.as_str()).copied().unwrap_or(0.0),
                        t_s: Vec::new(),
                        load: Vec::new(),
                        replicas: Vec::new(),
                        p99_ms: Vec::new(),
                        error_rate: Vec::new(),
                    },
                )
            })
            .collect();
        // About 2,000 points per series whatever the run's length.
        let steps = (scenario.duration.as_secs_f64() / step_s).ceil() as u64;
        Tally {
            step_s,
            sample_every: (steps / 2_000).max(1),
            key: scenario.key_services.clone(),
            services,
            series,
            arrived_before: Vec::new(),
            incidents: Vec::new(),
            open_incident: None,
            worst_p99: 0.0,
        }
    }

    fn record(&mut self, step: u64, t_s: f64, fleet: &Fleet) {
        let mut breaching = Vec::new();
        let sample = step.is_multiple_of(self.sample_every);
        let snapshot = fleet.snapshot();
        self.arrived_before.resize(snapshot.len(), 0.0);
        for (i, s) in snapshot.into_iter().enumerate() {
            let replicas = s.ready_replicas + s.starting_replicas;
            let arrived = s.ledger.arrived - self.arrived_before[i];
            self.arrived_before[i] = s.ledger.arrived;
            if let Some(t) = self.services.get_mut(&s.service) {
                if s.is_breaching {
                    t.slo_violation_minutes += self.step_s / 60.0;
                }
                t.replica_hours = s.replica_seconds / 3600.0;
                t.peak_replicas = t.peak_replicas.max(replicas);
                t.worst_p99_ms = t.worst_p99_ms.max(s.latency_p99_ms);
            }
            self.worst_p99 = self.worst_p99.max(s.latency_p99_ms);
            if sample && self.key.contains(&s.service) {
                if let Some(series) = self.series.get_mut(&s.service) {
                    series.t_s.push(t_s);
                    series.load.push(arrived / self.step_s);
                    series.replicas.push(f64::from(replicas));
                    series.p99_ms.push(s.latency_p99_ms);
                    series.error_rate.push(s.error_rate);
                }
            }
            if s.is_breaching {
                breaching.push(s.service);
            }
        }
        // An incident: two or more services breaching at once, from the first such step
        // to the last.
        if breaching.len() >= 2 {
            let inc = self.open_incident.get_or_insert_with(|| Incident {
                start_s: t_s - self.step_s,
                end_s: t_s,
                services: Vec::new(),
            });
            inc.end_s = t_s;
            let mut all: BTreeSet<String> = inc.services.drain(..).collect();
            all.extend(breaching);
            inc.services = all.into_iter().collect();
        } else if let Some(inc) = self.open_incident.take() {
            self.incidents.push(inc);
        }
    }

    fn finish(
        mut self,
        kind: RunKind,
        fleet: &Fleet,
        decisions: BTreeMap<String, u64>,
        marks: Vec<DecisionMark>,
        dead_lettered: u64,
        compliance: Option<ComplianceScore>,
    ) -> RunReport {
        if let Some(inc) = self.open_incident.take() {
            self.incidents.push(inc);
        }
        let snap = fleet.snapshot();
        let totals = Totals {
            slo_violation_minutes: self
                .services
                .values()
                .map(|s| s.slo_violation_minutes)
                .sum(),
            incidents: self.incidents.len() as u64,
            arrived: snap.iter().map(|s| s.ledger.arrived).sum(),
            failed: snap.iter().map(|s| s.ledger.failed).sum(),
            dropped: snap.iter().map(|s| s.ledger.dropped()).sum(),
            worst_p99_ms: self.worst_p99,
            replica_hours: snap.iter().map(|s| s.replica_seconds).sum::<f64>() / 3600.0,
            cost: fleet.total_cost(),
            decisions,
            dead_lettered,
            compliance,
            shadow: None,
            model_fallbacks: BTreeMap::new(),
        };
        RunReport {
            name: kind.as_str().to_string(),
            description: kind.description().to_string(),
            totals,
            services: self.services.into_values().collect(),
            series: self.series.into_values().collect(),
            incidents: self.incidents,
            decisions: marks,
        }
    }
}

/// Per producer: did it send a violation, and was it quarantined by the end.
#[derive(Default)]
struct ComplianceTally {
    violators: BTreeSet<String>,
    producers: BTreeSet<String>,
}

impl ComplianceTally {
    fn score(&self, fleet: &Fleet) -> ComplianceScore {
        let quarantined: BTreeSet<&String> = self
            .producers
            .iter()
            .filter(|p| fleet.is_quarantined(p))
            .collect();
        let caught = quarantined
            .iter()
            .filter(|p| self.violators.contains(**p))
            .count() as u64;
        let false_positives = quarantined.len() as u64 - caught;
        let violations = self.violators.len() as u64;
        ComplianceScore {
            violations,
            caught,
            false_positives,
            recall: if violations == 0 {
                1.0
            } else {
                caught as f64 / violations as f64
            },
            precision: if quarantined.is_empty() {
                1.0
            } else {
                caught as f64 / quarantined.len() as f64
            },
        }
    }
}

fn fleet_err(at: Timestamp) -> impl FnOnce(FleetError) -> SimError {
    move |source| SimError::Fleet { at, source }
}

/// The scenario's `model_fault` windows, in decision time, for the agents' model hosts.
fn model_faults(scenario: &Scenario) -> ModelFaults {
    let at = |d: Duration| scenario.start.plus(d);
    ModelFaults::new(
        scenario
            .faults
            .faults()
            .iter()
            .filter_map(|f| match &f.fault {
                Fault::ModelFault { agent, mode } => Some(FaultWindow {
                    agent: agent.clone(),
                    from: at(f.start),
                    until: at(f.end),
                    fault: match mode {
                        ModelFaultMode::Unavailable => InjectedFault::Unavailable,
                        ModelFaultMode::Timeout => InjectedFault::Timeout,
                        ModelFaultMode::InvalidOutput => InjectedFault::InvalidOutput,
                    },
                }),
                _ => None,
            })
            .collect(),
    )
}

fn mark(d: &Decision, start: Timestamp) -> DecisionMark {
    DecisionMark {
        t_s: d.at.since(start).as_secs_f64(),
        agent: d.agent.clone(),
        target: d.target.to_string(),
        outcome: d.outcome.name().to_string(),
        action: d.action.as_ref().map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// Runs `kind` over `scenario`; the policy run writes its audit log to `audit`.
///
/// # Errors
/// [`SimError`] when the fleet, the runtime or the audit log fails.
pub async fn run(
    scenario: &Scenario,
    policy: &Arc<Policy>,
    kind: RunKind,
    audit: &Path,
    record: Option<&Path>,
    progress: Progress<'_>,
) -> Result<RunReport, SimError> {
    let start = scenario.start;
    let mut recorder = record.map(Recorder::open).transpose()?;
    let mut fleet =
        Fleet::try_new(&scenario.fleet, scenario.seed_value).map_err(fleet_err(start))?;
    let mut tally = Tally::new(scenario, &fleet);
    let mut events = scenario.event_generator();
    let mut compliance = ComplianceTally::default();
    let mut event_credit = 0.0;
    let mut poison_rng = scenario.seed.rng("faults/poison");

    let clock = Arc::new(SimClock::new(start));
    let queue = ActionQueue::new();
    let bus = EmbeddedBus::new(BusConfig {
        partitions: 1,
        capacity: 1 << 20,
        overload: OverloadPolicy::Block,
    });
    let (tap_tx, mut tap) = mpsc::unbounded_channel::<Decision>();
    let dead = Arc::new(MemoryDeadLetters::default());
    let transformed;
    let policy = match kind {
        RunKind::Rules => {
            transformed = Arc::new(policy.without_models());
            &transformed
        }
        RunKind::Shadow => {
            transformed = Arc::new(policy.all_in_shadow());
            &transformed
        }
        _ => policy,
    };
    let runtime = if matches!(kind, RunKind::Policy | RunKind::Rules | RunKind::Shadow) {
        let specs = conclave_agents::agent_specs_with_faults(policy, &model_faults(scenario))
            .map_err(|e| {
                SimError::Agents(
                    e.iter()
                        .map(|(a, p)| format!("{a}.{}: {}", p.path, p.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        let sources: Vec<Box<dyn TelemetrySource>> = bus
            .subscribe(TOPIC)
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn TelemetrySource>)
            .collect();
        if audit.exists() {
            // A fresh log per run; a leftover one would continue its numbering.
            let _ = std::fs::remove_file(audit);
        }
        Some(
            Runtime::start(RuntimeConfig {
                journal: None,
                policy: policy.clone(),
                agents: specs,
                sources,
                audit: AuditWriter::open(audit, FsyncPolicy::Never, clock.clone())?,
                actuator: Box::new(FleetActuator::new(queue.clone())),
                dead_letters: dead.clone(),
                clock: clock.clone(),
                decision_tap: Some(tap_tx),
                tuning: Tuning::default(),
            })
            .await?,
        )
    } else {
        drop(tap_tx);
        None
    };
    let producer = bus.producer(TOPIC);
    let window_ms = i64::try_from(policy.arbiter().window().as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    if runtime.is_some() {
        producer.publish_watermark(start).await?;
    }

    let steps = (scenario.duration.as_secs_f64() / scenario.step.as_secs_f64()).ceil() as u64;
    let plan = match kind {
        RunKind::Oracle | RunKind::Shadow => {
            Some(OraclePlan::compute(scenario, ORACLE_UTILIZATION).map_err(fleet_err(start))?)
        }
        _ => None,
    };
    let mut shadow = (kind == RunKind::Shadow).then(ShadowTally::default);
    let mut planned: BTreeMap<String, u32> = BTreeMap::new();
    let mut marks = Vec::new();
    for step in 1..=steps {
        let since = scenario.step * u32::try_from(step).unwrap_or(u32::MAX);
        let now = start.plus(since);
        if let Some(plan) = plan.as_ref().filter(|_| kind == RunKind::Oracle) {
            let before = now.minus(scenario.step);
            for service in plan.services() {
                let Some(r) = plan.replicas_at(service, step) else {
                    continue;
                };
                if planned.get(service) != Some(&r) {
                    planned.insert(service.to_string(), r);
                    fleet
                        .apply(
                            &conclave_runtime::Action::Scale { replicas: r },
                            &conclave_runtime::Target::new(service),
                            before,
                        )
                        .map_err(fleet_err(before))?;
                }
            }
        }
        let fx = scenario.faults.fleet_effects_at(since);
        for (service, factor) in fx.slowdowns() {
            fleet
                .set_slowdown(service, factor)
                .map_err(fleet_err(now))?;
        }
        for (service, extra) in fx.extra_error_rates() {
            fleet
                .set_error_rate(service, extra)
                .map_err(fleet_err(now))?;
        }
        for (region, down) in fx.regions() {
            fleet
                .set_region_down(region, down)
                .map_err(fleet_err(now))?;
        }
        let loads: BTreeMap<String, f64> = scenario
            .load
            .iter()
            .map(|(name, m)| (name.clone(), m.rate_at(since)))
            .collect();
        fleet
            .step(now, scenario.step, &loads)
            .map_err(fleet_err(now))?;

        let active = scenario.faults.active_at(since);
        let poison: Vec<_> = active
            .iter()
            .filter_map(|f| match &f.fault {
                Fault::PoisonTelemetry(p) => Some(p),
                _ => None,
            })
            .collect();
        let schema_changes: Vec<_> = active
            .iter()
            .filter_map(|f| match &f.fault {
                Fault::SchemaChange(c) => Some(c),
                _ => None,
            })
            .collect();
        // What goes on the bus for one telemetry message: a poison burst in force may
        // replace it with broken bytes (which the runtime must dead-letter and survive).
        let mut wire = |t: Telemetry| -> Bytes {
            for p in &poison {
                if let Some((_, bytes)) = p.corrupt(&t, &mut poison_rng) {
                    return Bytes::from(bytes);
                }
            }
            Bytes::from(encode(&t))
        };
        if let Some((rate, generator)) = events.as_mut() {
            event_credit += *rate * scenario.step.as_secs_f64();
            while event_credit >= 1.0 {
                event_credit -= 1.0;
                let e = generator.next_event(now);
                compliance.producers.insert(e.event.producer.clone());
                if e.truth.is_violation() {
                    compliance.violators.insert(e.event.producer.clone());
                }
                if let Some(r) = recorder.as_mut() {
                    let label = serde_json::json!({
                        "ts": e.event.ts,
                        "topic": e.event.topic,
                        "producer": e.event.producer,
                        "key": e.event.key,
                        "truth": e.truth.kind().as_str(),
                        "violation": e.truth.is_violation(),
                    });
                    r.line(Stream::Truth, label.to_string().as_bytes())?;
                }
                let is_sent = runtime.is_some() || recorder.is_some();
                if is_sent && !fleet.is_quarantined(&e.event.producer) {
                    let mut event = e.event;
                    for c in &schema_changes {
                        c.apply(&mut event);
                    }
                    let key = event.topic.clone();
                    let bytes = wire(Telemetry::Event(event));
                    if let Some(r) = recorder.as_mut() {
                        r.line(Stream::Telemetry, &bytes)?;
                    }
                    if runtime.is_some() {
                        producer.publish(&key, bytes).await?;
                    }
                }
            }
        }
        if let Some(rt) = &runtime {
            clock.set(now);
            for m in fleet.metrics(now) {
                let key = m.service.clone();
                let bytes = wire(Telemetry::Metrics(m));
                if let Some(r) = recorder.as_mut() {
                    r.line(Stream::Telemetry, &bytes)?;
                }
                producer.publish(&key, bytes).await?;
            }
            // Telemetry at `now` belongs to the window ending after it; the watermark
            // just past `now` closes the windows up to and including `now`.
            producer.publish_watermark(now).await?;
            if now.as_millis().rem_euclid(window_ms) == 0 {
                rt.decided_through(now).await?;
                for (action, error) in fleet.apply_queued(&queue, now) {
                    tracing::debug!(target_name = %action.target, error = %error, "The fleet refused an action.");
                }
            }
            while let Ok(d) = tap.try_recv() {
                if let (Some(t), Some(p)) = (shadow.as_mut(), plan.as_ref()) {
                    t.score(&d, p, &fleet, step);
                }
                if marks.len() < MAX_DECISION_MARKS {
                    marks.push(mark(&d, start));
                }
            }
        }
        if let Some(r) = recorder.as_mut() {
            if runtime.is_none() {
                // Baseline runs publish nothing; record the telemetry a real fleet would
                // have sent, so every run can train and replay.
                for m in fleet.metrics(now) {
                    r.line(Stream::Telemetry, &encode(&Telemetry::Metrics(m)))?;
                }
            }
            if now.as_millis().rem_euclid(window_ms) == 0 {
                for snap in fleet.snapshot() {
                    let line = serde_json::json!({ "ts": now, "service": snap });
                    r.line(Stream::Fleet, line.to_string().as_bytes())?;
                }
            }
        }
        tally.record(step, since.as_secs_f64(), &fleet);
        progress(step, steps);
    }

    let (decisions, dead_lettered, fallbacks) = match runtime {
        Some(rt) => {
            bus.close(TOPIC);
            let report = rt.shutdown().await?;
            let fallbacks: BTreeMap<String, u64> = report
                .counters
                .fallbacks
                .iter()
                .flat_map(|(agent, reasons)| {
                    reasons
                        .iter()
                        .map(move |(reason, n)| (format!("{agent}: {reason}"), *n))
                })
                .collect();
            (
                report
                    .counters
                    .decisions
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                report.counters.dead_lettered_total(),
                fallbacks,
            )
        }
        None => (BTreeMap::new(), 0, BTreeMap::new()),
    };
    while let Ok(d) = tap.try_recv() {
        if let (Some(t), Some(p)) = (shadow.as_mut(), plan.as_ref()) {
            t.score(&d, p, &fleet, steps);
        }
        if marks.len() < MAX_DECISION_MARKS {
            marks.push(mark(&d, start));
        }
    }
    if let Some(r) = recorder {
        r.finish()?;
    }
    let score = events.as_ref().map(|_| compliance.score(&fleet));
    let mut report = tally.finish(kind, &fleet, decisions, marks, dead_lettered, score);
    report.totals.shadow = shadow.map(ShadowTally::finish);
    report.totals.model_fallbacks = fallbacks;
    Ok(report)
}

/// Runs every kind over `scenario` and assembles the report. Audit logs of policy runs go
/// to `out_dir/<run>-audit.jsonl`; with `record`, each run's telemetry, event labels and
/// fleet states go to `record/<run>/`.
///
/// # Errors
/// As [`run`].
pub async fn simulate(
    scenario: &Scenario,
    policy: &Arc<Policy>,
    kinds: &[RunKind],
    out_dir: &Path,
    record: Option<&Path>,
    progress: Progress<'_>,
) -> Result<Report, SimError> {
    let mut runs = Vec::new();
    for kind in kinds {
        let audit = out_dir.join(format!("{}-audit.jsonl", kind.as_str()));
        let rec = record.map(|d| d.join(kind.as_str()));
        runs.push(run(scenario, policy, *kind, &audit, rec.as_deref(), progress).await?);
    }
    Ok(Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed_value,
        duration_s: scenario.duration.as_secs_f64(),
        step_s: scenario.step.as_secs_f64(),
        key_services: scenario.key_services.clone(),
        runs,
    })
}

/// Scores shadow scaling decisions against the oracle's plan at the same step.
#[derive(Default)]
struct ShadowTally {
    decisions: u64,
    agreed: u64,
    error_would: f64,
    error_static: f64,
    /// Replicas running per service at `running_step`: read from the fleet once per step,
    /// not once per decision.
    running: BTreeMap<String, u32>,
    running_step: Option<u64>,
}

impl ShadowTally {
    fn score(&mut self, d: &Decision, plan: &OraclePlan, fleet: &Fleet, step: u64) {
        use conclave_runtime::{Action, Outcome, Verdict};
        let (Outcome::Shadowed { would }, Some(Action::Scale { replicas })) =
            (&d.outcome, &d.action)
        else {
            return;
        };
        if !matches!(would, Verdict::Enacted | Verdict::Modified) {
            return;
        }
        let service = d.target.as_str();
        let Some(ideal) = plan.replicas_at(service, step) else {
            return;
        };
        if self.running_step != Some(step) {
            self.running = fleet
                .snapshot()
                .into_iter()
                .map(|s| (s.service, s.ready_replicas + s.starting_replicas))
                .collect();
            self.running_step = Some(step);
        }
        let Some(&now) = self.running.get(service) else {
            return;
        };
        self.decisions += 1;
        let (w, i, c) = (i64::from(*replicas), i64::from(ideal), i64::from(now));
        if (w - c).signum() == (i - c).signum() {
            self.agreed += 1;
        }
        self.error_would += (w - i).abs() as f64;
        self.error_static += (c - i).abs() as f64;
    }

    fn finish(self) -> ShadowScore {
        let n = self.decisions.max(1) as f64;
        ShadowScore {
            scale_decisions: self.decisions,
            direction_agreement: self.agreed as f64 / n,
            mean_abs_error_would: self.error_would / n,
            mean_abs_error_static: self.error_static / n,
        }
    }
}
