//! The supervision tree with small test agents: windows, dead letters, crashes, hangs,
//! retirement, overload and shutdown. The real agents are exercised end to end in the
//! top-level `tests/` (runtime module).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::action::Action;
use crate::actuator::MemoryActuator;
use crate::agent::{factor, Agent, AgentSpec, Draft, Proposals};
use crate::audit::{AuditReader, AuditRecord, FsyncPolicy};
use crate::bus::{BusConfig, EmbeddedBus, OverloadPolicy, Producer};
use crate::clock::SimClock;
use crate::telemetry::{MemoryDeadLetters, ServiceMetrics, Telemetry, TelemetryKind};
use crate::units::Confidence;

const POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: supervision, revision: s1}
spec:
  targets:
    - {name: web, kind: service}
    - {name: api, kind: service}
  agents:
    scaler: {mode: enforce}
    router: {mode: shadow}
  guardrails:
    defaults: {min_replicas: 1, max_replicas: 50, max_step: 50, cooldown: 1s, scale_down_stabilization: 1s}
  arbiter: {window: 10s}
"#;

const START: i64 = 1_800_000_000_000;

fn at(s: i64) -> Timestamp {
    Timestamp::from_millis(START + s * 1000)
}

/// Proposes `replicas + 1` for the last metrics of each service seen in a window; panics
/// on a service called `panic`, blocks on one called `hang` until released.
struct Doubler {
    name: &'static str,
    last: std::collections::BTreeMap<String, u32>,
    release: Arc<AtomicBool>,
    stuck: Arc<AtomicUsize>,
}

impl Agent for Doubler {
    fn name(&self) -> &'static str {
        self.name
    }
    fn wants(&self, kind: TelemetryKind) -> bool {
        kind == TelemetryKind::Metrics
    }
    fn observe(&mut self, t: &Telemetry, _out: &mut Proposals) {
        if let Telemetry::Metrics(m) = t {
            if m.service == "panic" {
                panic!("crafted input");
            }
            if m.service == "hang" {
                self.stuck.fetch_add(1, Ordering::SeqCst);
                while !self.release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                return;
            }
            self.last.insert(m.service.clone(), m.replicas);
        }
    }
    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        for (service, replicas) in std::mem::take(&mut self.last) {
            out.propose(Draft {
                at: now,
                target: crate::target::Target::new(service),
                action: Action::Scale {
                    replicas: replicas + 1,
                },
                confidence: Confidence::ONE,
                rationale: vec![factor("replicas", f64::from(replicas))],
                model: None,
                fallback: None,
                inference: None,
                rule: None,
            });
        }
    }
}

fn spec(name: &'static str, release: Arc<AtomicBool>, stuck: Arc<AtomicUsize>) -> AgentSpec {
    AgentSpec {
        name,
        factory: Arc::new(move || {
            Box::new(Doubler {
                name,
                last: Default::default(),
                release: release.clone(),
                stuck: stuck.clone(),
            })
        }),
    }
}

fn metrics(service: &str, s: i64, replicas: u32) -> Bytes {
    let m = Telemetry::Metrics(ServiceMetrics {
        schema_version: 1,
        service: service.into(),
        ts: at(s),
        rate_in: 10.0,
        rate_out: 10.0,
        backlog: 0,
        latency_p50_ms: 5.0,
        latency_p99_ms: 20.0,
        error_rate: 0.0,
        cpu: 0.5,
        replicas,
        region: None,
        dependencies: Vec::new(),
    });
    Bytes::from(serde_json::to_vec(&m).expect("encode"))
}

struct Harness {
    runtime: Runtime,
    bus: EmbeddedBus,
    producer: Producer,
    clock: Arc<SimClock>,
    watchdog: Arc<SimClock>,
    actuator: MemoryActuator,
    dead: Arc<MemoryDeadLetters>,
    audit: std::path::PathBuf,
    release: Arc<AtomicBool>,
    stuck: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

async fn harness(partitions: usize, restart: RestartPolicy) -> Harness {
    harness_with(partitions, restart, POLICY, None).await
}

/// A harness on `policy`; with `share`, the fleet budget is shared (and ownership tracked).
async fn harness_with(
    partitions: usize,
    restart: RestartPolicy,
    policy: &str,
    share: Option<crate::fleet_budget::FleetShare>,
) -> Harness {
    let policy = Arc::new(
        crate::policy::compile_str("s.yaml", policy, &["router", "scaler"]).expect("policy"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let clock = Arc::new(SimClock::new(at(0)));
    let watchdog = Arc::new(SimClock::new(at(0)));
    let bus = EmbeddedBus::new(BusConfig {
        partitions,
        capacity: 1024,
        overload: OverloadPolicy::Block,
    });
    let sources = bus
        .subscribe("telemetry")
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn crate::bus::TelemetrySource>)
        .collect();
    let producer = bus.producer("telemetry");
    let actuator = MemoryActuator::new();
    let dead = Arc::new(MemoryDeadLetters::default());
    let release = Arc::new(AtomicBool::new(false));
    let stuck = Arc::new(AtomicUsize::new(0));
    let runtime = Runtime::start(RuntimeConfig {
        journal: None,
        policy,
        agents: vec![
            spec("scaler", release.clone(), stuck.clone()),
            spec("router", release.clone(), stuck.clone()),
        ],
        sources,
        audit: AuditWriter::open(&audit, FsyncPolicy::Never, clock.clone()).expect("audit"),
        actuator: Box::new(actuator.clone()),
        dead_letters: dead.clone(),
        clock: clock.clone(),
        decision_tap: None,
        tuning: Tuning {
            heartbeat: Duration::from_secs(5),
            restart,
            watchdog: watchdog.clone(),
            decide_only_observed: share.is_some(),
            fleet_share: share,
            ..Tuning::default()
        },
    })
    .await
    .expect("start");
    Harness {
        runtime,
        bus,
        producer,
        clock,
        watchdog,
        actuator,
        dead,
        audit,
        release,
        stuck,
        _dir: dir,
    }
}

fn immediate() -> RestartPolicy {
    RestartPolicy {
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
        budget: 3,
        budget_window: Duration::from_secs(60),
    }
}

impl Harness {
    async fn send(&self, service: &str, s: i64, replicas: u32) {
        self.producer
            .publish(service, metrics(service, s, replicas))
            .await
            .expect("publish");
    }

    async fn window(&self, s: i64) {
        self.clock.set(at(s));
        self.producer.publish_watermark(at(s)).await.expect("wm");
        self.runtime.decided_through(at(s)).await.expect("decided");
    }

    async fn finish(
        self,
    ) -> (
        ShutdownReport,
        Vec<String>,
        MemoryActuator,
        Arc<MemoryDeadLetters>,
    ) {
        self.bus.close("telemetry");
        let report = self.runtime.shutdown().await.expect("shutdown");
        let lines = AuditReader::read_all(&self.audit)
            .expect("read audit")
            .lines
            .into_iter()
            .map(|l| match l.record {
                AuditRecord::Decision(d) => {
                    format!(
                        "{} {} {} {}",
                        d.at.as_millis() - START,
                        d.id,
                        d.outcome.name(),
                        d.action.map(|a| a.to_string()).unwrap_or_default()
                    )
                }
                AuditRecord::Override(o) => format!("override {}", o.id),
            })
            .collect();
        (report, lines, self.actuator, self.dead)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_close_in_order_and_everything_is_audited() {
    let h = harness(2, immediate()).await;
    h.window(0).await; // sets the phase: first window ends at 10 s
    h.send("web", 1, 2).await;
    h.send("api", 2, 4).await;
    h.window(10).await;
    h.send("web", 11, 3).await;
    h.window(20).await;
    let (report, lines, actuator, _) = h.finish().await;
    assert_eq!(
        lines,
        vec![
            "10000 d-router-api-1800000010000 shadowed scale to 5 replicas",
            "10000 d-scaler-api-1800000010000 enacted scale to 5 replicas",
            "10000 d-router-web-1800000010000 shadowed scale to 3 replicas",
            "10000 d-scaler-web-1800000010000 enacted scale to 3 replicas",
            "20000 d-router-web-1800000020000 shadowed scale to 4 replicas",
            "20000 d-scaler-web-1800000020000 enacted scale to 4 replicas",
        ]
    );
    assert_eq!(actuator.applied().len(), 3);
    assert_eq!(report.counters.received, 3);
    assert_eq!(report.counters.decoded, 3);
    assert_eq!(
        report.counters.ticks, 3,
        "the first watermark closes an empty window"
    );
    assert_eq!(report.counters.audit_records, 6);
    assert_eq!(report.next_audit_seq, 7);
}

/// The gauge `name`'s value, if it has one.
fn gauge(h: &Harness, name: &str) -> Option<f64> {
    let snapshot = h.runtime.metrics().snapshot();
    let family = snapshot.families.iter().find(|f| f.def.name == name)?;
    match family.samples.first().map(|s| &s.value) {
        Some(crate::metrics::Value::Gauge(v)) => Some(*v),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_budget_waits_for_a_grant_reports_demand_and_shows_its_gauges() {
    use crate::fleet_budget::{FleetShare, Grant, GrantRefused};
    let policy = POLICY.replace(
        "  arbiter: {window: 10s}",
        "    fleet_replica_budget: 10\n  arbiter: {window: 10s}",
    );
    let share = FleetShare::new("me", Duration::from_secs(60));
    let h = harness_with(1, immediate(), &policy, Some(share)).await;
    assert_eq!(
        gauge(&h, "conclave.fleet_budget.granted"),
        None,
        "nothing yet"
    );
    h.window(0).await;
    h.send("web", 1, 2).await;
    h.window(10).await;
    // No grant: the scale-up to 3 waited, and the report says so.
    assert_eq!(gauge(&h, "conclave.fleet_budget.granted"), Some(0.0));
    assert_eq!(gauge(&h, "conclave.fleet_budget.used"), Some(2.0));
    let handle = h.runtime.handle();
    let report = handle
        .fleet_report()
        .await
        .expect("running")
        .expect("the budget is shared");
    assert_eq!(
        (
            report.instance.as_str(),
            report.budget,
            report.used(),
            report.wanted
        ),
        ("me", 10, 2, 1)
    );
    assert_eq!(
        report
            .targets
            .keys()
            .map(crate::target::Target::as_str)
            .collect::<Vec<_>>(),
        ["web"]
    );
    let grant = |seq: u64| Grant {
        instance: "me".into(),
        seq,
        sent_at: report.sent_at,
        replicas: 5,
        lease_ms: 60_000,
        holder: "other".into(),
        budget: 10,
        fleet_used: 2,
        others_actions: std::collections::BTreeMap::new(),
    };
    assert_eq!(
        handle.fleet_grant(grant(99)).await.expect("running"),
        Err(GrantRefused::UnknownReport {
            seq: 99,
            sent_at: report.sent_at
        })
    );
    assert_eq!(
        handle
            .fleet_grant(grant(report.seq))
            .await
            .expect("running"),
        Ok(())
    );
    assert_eq!(gauge(&h, "conclave.fleet_budget.granted"), Some(5.0));
    // With the grant, the same scale-up is enacted.
    h.send("web", 11, 2).await;
    h.window(20).await;
    assert_eq!(gauge(&h, "conclave.fleet_budget.used"), Some(3.0));
    let (_, lines, _, _) = h.finish().await;
    assert_eq!(
        lines,
        vec![
            // Nothing would be carried out: the budget refused the enforcing scaler, and
            // the shadow router's verdict is the same.
            "10000 d-router-web-1800000010000 shadowed ",
            "10000 d-scaler-web-1800000010000 rejected ",
            "20000 d-router-web-1800000020000 shadowed scale to 3 replicas",
            "20000 d-scaler-web-1800000020000 enacted scale to 3 replicas",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_telemetry_is_dead_lettered_and_the_next_message_still_counts() {
    let h = harness(1, immediate()).await;
    h.window(0).await;
    h.producer
        .publish("web", Bytes::from_static(b"{not json"))
        .await
        .expect("publish");
    h.send("web", 1, 2).await;
    h.window(10).await;
    let (report, lines, _, dead) = h.finish().await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(report.counters.received, 2);
    assert_eq!(report.counters.decoded, 1);
    assert_eq!(report.counters.dead_lettered_total(), 1);
    let letters = dead.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload, b"{not json");
    assert_eq!(letters[0].topic, "telemetry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_agent_is_restarted_and_loses_only_the_poison_message() {
    let h = harness(1, immediate()).await;
    h.window(0).await;
    h.send("web", 1, 2).await;
    h.send("panic", 2, 1).await;
    h.send("api", 3, 7).await;
    h.window(10).await;
    h.send("web", 11, 5).await;
    h.window(20).await;
    let (report, lines, _, dead) = h.finish().await;
    // Both agents panic on the same message (they are the same test agent): each loses
    // its window state (web) but keeps the messages queued behind the poison one (api).
    assert_eq!(
        lines,
        vec![
            "10000 d-router-api-1800000010000 shadowed scale to 8 replicas",
            "10000 d-scaler-api-1800000010000 enacted scale to 8 replicas",
            "20000 d-router-web-1800000020000 shadowed scale to 6 replicas",
            "20000 d-scaler-web-1800000020000 enacted scale to 6 replicas",
        ]
    );
    assert_eq!(report.counters.restarts.get("scaler"), Some(&1));
    assert_eq!(report.counters.restarts.get("router"), Some(&1));
    let reasons: Vec<&str> = dead.letters().iter().map(|l| l.reason.as_str()).collect();
    assert_eq!(reasons, vec!["agent_panicked", "agent_panicked"]);
    assert!(dead.letters()[0]
        .error
        .contains("panicked handling this message: crafted input"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_agent_is_abandoned_at_its_deadline_and_restarted() {
    let h = harness(1, immediate()).await;
    h.window(0).await;
    h.send("hang", 1, 1).await;
    h.send("api", 2, 3).await;
    // Wait until both agents are stuck on the message, then pass their deadline.
    while h.stuck.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    h.watchdog.advance(Duration::from_secs(6));
    h.window(10).await;
    h.release.store(true, Ordering::SeqCst);
    let (report, lines, _, dead) = h.finish().await;
    assert_eq!(
        lines,
        vec![
            "10000 d-router-api-1800000010000 shadowed scale to 4 replicas",
            "10000 d-scaler-api-1800000010000 enacted scale to 4 replicas",
        ]
    );
    let reasons: Vec<&str> = dead.letters().iter().map(|l| l.reason.as_str()).collect();
    assert_eq!(reasons, vec!["agent_hung", "agent_hung"]);
    assert_eq!(report.counters.restarts.values().sum::<u64>(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_its_restart_budget_is_retired_and_windows_keep_closing() {
    let h = harness(
        1,
        RestartPolicy {
            budget: 1,
            ..immediate()
        },
    )
    .await;
    h.window(0).await;
    h.send("panic", 1, 1).await;
    h.send("panic", 2, 1).await;
    h.send("web", 3, 2).await;
    h.window(10).await;
    h.send("web", 11, 9).await;
    h.window(20).await;
    let (report, lines, _, _) = h.finish().await;
    assert_eq!(
        lines,
        Vec::<String>::new(),
        "both agents retired before proposing"
    );
    assert_eq!(report.counters.restarts.values().sum::<u64>(), 2);
    assert_eq!(report.counters.ticks, 3);
    assert!(report.counters.skipped_retired > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_puts_the_new_policy_in_force_and_refuses_other_agents_or_windows() {
    let h = harness(1, immediate()).await;
    let handle = h.runtime.handle();
    let compile = |yaml: &str| {
        Arc::new(crate::policy::compile_str("s.yaml", yaml, &["router", "scaler"]).expect("policy"))
    };
    let agents = || {
        vec![
            spec("scaler", h.release.clone(), h.stuck.clone()),
            spec("router", h.release.clone(), h.stuck.clone()),
        ]
    };
    h.window(0).await;
    h.send("web", 1, 2).await;
    h.window(10).await;
    assert_eq!(handle.policy().revision(), "s1");

    let s2 = POLICY.replace("revision: s1", "revision: s2");
    handle
        .reload(compile(&s2), agents())
        .await
        .expect("reloaded");
    assert_eq!(handle.policy().revision(), "s2");
    assert_eq!(
        handle
            .reload(compile(&s2.replace("window: 10s", "window: 20s")), agents())
            .await,
        Err(ReloadError::Window {
            running: Duration::from_secs(10),
            new: Duration::from_secs(20),
        })
    );
    assert_eq!(
        handle
            .reload(
                compile(&s2),
                vec![spec("scaler", h.release.clone(), h.stuck.clone())]
            )
            .await,
        Err(ReloadError::Agents {
            running: vec!["scaler", "router"],
            new: vec!["scaler"],
        })
    );
    assert_eq!(
        handle.policy().revision(),
        "s2",
        "a refused reload changes nothing"
    );

    h.send("web", 11, 3).await;
    h.window(20).await;
    let revisions: Vec<(i64, String)> = AuditReader::read_all(&h.audit)
        .expect("read audit")
        .lines
        .into_iter()
        .filter_map(|l| match l.record {
            AuditRecord::Decision(d) => Some((d.at.as_millis() - START, d.policy_revision)),
            AuditRecord::Override(_) => None,
        })
        .collect();
    assert_eq!(
        revisions,
        [
            (10_000, "s1".to_string()),
            (10_000, "s1".to_string()),
            (20_000, "s2".to_string()),
            (20_000, "s2".to_string()),
        ]
    );
    let (report, ..) = h.finish().await;
    assert_eq!(report.counters.decoded, 2, "nothing lost across the reload");
}
