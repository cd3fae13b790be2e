//! The runtime end to end (issue #3): telemetry in, decisions out, with the real agents.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use conclave_runtime::actuator::MemoryActuator;
use conclave_runtime::audit::{AuditReader, AuditRecord, AuditWriter, FsyncPolicy};
use conclave_runtime::bus::{BusConfig, EmbeddedBus, OverloadPolicy, Replayer, TelemetrySource};
use conclave_runtime::telemetry::{MemoryDeadLetters, Telemetry, TelemetryKind};
use conclave_runtime::{
    Agent, AgentSpec, Decision, Proposals, Runtime, RuntimeConfig, ShutdownReport, SimClock,
    Timestamp, Tuning,
};

use crate::golden::{assert_golden, root};

const POLICY: &str = "tests/fixtures/runtime/policy.yaml";
const E2E: &str = "tests/fixtures/runtime/e2e.jsonl";
const BAD: &str = "tests/fixtures/runtime/bad-input.jsonl";

/// Runs `conclave run` from the repository root; returns (exit code, stdout, stderr).
fn conclave_run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .arg("run")
        .args(args)
        .current_dir(root())
        .output()
        .expect("conclave binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_args<'a>(dir: &'a Path, telemetry: &'a str, tag: &str) -> Vec<String> {
    vec![
        "--policy".into(),
        POLICY.into(),
        "--telemetry".into(),
        telemetry.into(),
        "--audit".into(),
        dir.join(format!("{tag}-audit.jsonl")).display().to_string(),
        "--dead-letters".into(),
        dir.join(format!("{tag}-dead.jsonl")).display().to_string(),
        "--actions".into(),
        dir.join(format!("{tag}-actions.log")).display().to_string(),
    ]
}

fn decision_summary(d: &Decision) -> String {
    format!(
        "{} {} {} {} {}",
        d.at,
        d.agent,
        d.target,
        d.outcome.name(),
        d.action.as_ref().map(|a| a.to_string()).unwrap_or_default()
    )
}

#[test]
fn scripted_telemetry_gives_the_exact_decisions_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = run_args(dir.path(), E2E, "e2e");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = conclave_run(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert_golden("run/e2e.txt", &out);
    assert_eq!(
        err.trim_end(),
        format!(
            "done: 151 messages, 151 decoded, 0 dead-lettered, 10 decisions in 14 windows, 9 actions; audit log {}",
            dir.path().join("e2e-audit.jsonl").display()
        )
    );
    let scan = AuditReader::read_all(&dir.path().join("e2e-audit.jsonl")).expect("audit");
    let got: Vec<String> = scan
        .lines
        .iter()
        .filter_map(|l| match &l.record {
            AuditRecord::Decision(d) => Some(decision_summary(d)),
            AuditRecord::Override(_) => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "2026-11-29T10:00:15.000Z router storefront enacted route storefront-eu=0.5, storefront-us=0.5",
            // The US backend's p99 went from 50 to 400 ms at 30 s.
            "2026-11-29T10:00:45.000Z router storefront enacted route storefront-eu=0.848, storefront-us=0.152",
            // Load ramp at 60 s: cpu 0.95 at 4 replicas -> ceil(4 * 0.95 / 0.7) = 6.
            "2026-11-29T10:01:15.000Z scaler checkout enacted scale to 6 replicas",
            // A card number in an order event at 70 s.
            "2026-11-29T10:01:15.000Z compliance orders enacted quarantine producer `web-shop` (card number at fields.payment.card_number)",
            "2026-11-29T10:01:15.000Z compliance orders enacted alert (Warning): personal data from producer `web-shop` on topic `orders`: card number at fields.payment.card_number",
            // The fleet has not caught up yet (still 4 replicas reported): the repeat is
            // held back by the 30 s cooldown.
            "2026-11-29T10:01:30.000Z scaler checkout rejected ",
            // An event from us-east on an eu-west-only topic at 100 s.
            "2026-11-29T10:01:45.000Z compliance orders enacted quarantine producer `us-importer` (region `us-east` not allowed on topic `orders`)",
            "2026-11-29T10:01:45.000Z compliance orders enacted alert (Critical): event from region `us-east` on topic `orders` breaks residency (allowed: eu-west)",
            // 60 % failures on payments from 60 s: the 60 s window reaches the 50 %
            // threshold at 120 s; 60 s later the breaker probes.
            "2026-11-29T10:02:00.000Z breaker payments enacted open the breaker",
            "2026-11-29T10:03:00.000Z breaker payments enacted half-open the breaker",
        ]
    );
    let rejected = scan
        .lines
        .iter()
        .find_map(|l| match &l.record {
            AuditRecord::Decision(d) if d.outcome.name() == "rejected" => Some(d.clone()),
            _ => None,
        })
        .expect("a rejected decision");
    assert_eq!(
        rejected.reasons[0].message,
        "last scale on `checkout` was at 2026-11-29T10:01:15.000Z; cooldown 30s lasts until 2026-11-29T10:01:45.000Z"
    );
    // No event value ever reaches the audit log: only field paths.
    let text = std::fs::read_to_string(dir.path().join("e2e-audit.jsonl")).expect("audit text");
    assert!(
        !text.contains("4111"),
        "a card number leaked into the audit log"
    );
    let actions = std::fs::read_to_string(dir.path().join("e2e-actions.log")).expect("actions");
    assert_eq!(actions.lines().count(), 9);
}

#[test]
fn the_same_input_twice_writes_byte_identical_audit_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for tag in ["a", "b"] {
        let args = run_args(dir.path(), E2E, tag);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) =
            conclave_run(&[&args[..], &["--quiet", "--partitions", "3"]].concat());
        assert_eq!(code, 0, "{out}{err}");
    }
    let a = std::fs::read(dir.path().join("a-audit.jsonl")).expect("a");
    let b = std::fs::read(dir.path().join("b-audit.jsonl")).expect("b");
    assert!(!a.is_empty());
    assert!(
        a == b,
        "two runs of the same input wrote different audit logs"
    );
}

#[test]
fn every_bad_input_class_is_dead_lettered_with_its_reason_and_the_run_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = run_args(dir.path(), BAD, "bad");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = conclave_run(&[&args[..], &["--quiet"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "done: 20 messages, 10 decoded, 10 dead-lettered (invalid_value: 2, malformed_json: 1, oversized_payload: 1, timestamp_out_of_range: 2, unsupported_version: 1, wrong_shape: 3), 0 decisions in 1 windows, 0 actions; audit log {}",
            dir.path().join("bad-audit.jsonl").display()
        )
    );
    let dead = std::fs::read_to_string(dir.path().join("bad-dead.jsonl")).expect("dead letters");
    let got: Vec<(String, String)> = dead
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("dead letter is JSON");
            (
                v["reason"].as_str().unwrap_or_default().to_string(),
                window_bounds_as_placeholders(v["error"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    let want = [
        ("malformed_json", "expected a JSON object, found invalid JSON at line 1 column 2"),
        ("wrong_shape", "expected a JSON object, found an array"),
        ("wrong_shape", "field `type`: expected one of `metrics`, `event`, `health`, found `weather`"),
        ("wrong_shape", "field `rate_in`: expected a number >= 0, found a string"),
        ("unsupported_version", "field `schema_version`: expected a supported version (`1`), found `9`"),
        ("invalid_value", "field `cpu`: expected a finite number, found `NaN`"),
        ("invalid_value", "field `rate_in`: expected a number >= 0, found `-5.0`"),
        ("timestamp_out_of_range", "field `ts`: expected a time between `NOW-24h` and `NOW+5m`, found `2026-11-29T12:00:00.000Z`"),
        ("timestamp_out_of_range", "field `ts`: expected a time between `NOW-24h` and `NOW+5m`, found `2026-11-26T10:00:00.000Z`"),
        ("oversized_payload", "expected a payload of at most 65536 bytes, found 70257 bytes"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(r, e)| (r.to_string(), e.to_string()))
        .collect();
    assert_eq!(got, want);
}

/// The decoder's timestamp window is relative to the clock when the message is decoded,
/// which in an event-time replay is wherever the replayer's clock has got to (a few
/// seconds either way, by scheduling). Replaces the bounds with `NOW-24h` / `NOW+5m`
/// after checking they are 24 h behind and 5 min ahead of one instant.
fn window_bounds_as_placeholders(error: &str) -> String {
    let Some((head, rest)) = error.split_once("between `") else {
        return error.to_owned();
    };
    let mut parts = rest.splitn(3, '`');
    let (Some(low), Some(_), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
        return error.to_owned();
    };
    let Some((high, tail)) = tail.split_once('`') else {
        return error.to_owned();
    };
    let low: Timestamp = low.parse().expect("lower bound");
    let high: Timestamp = high.parse().expect("upper bound");
    assert_eq!(
        high.since(low),
        std::time::Duration::from_secs(24 * 3600 + 300),
        "{error}"
    );
    format!("{head}between `NOW-24h` and `NOW+5m`{tail}")
}

/// Replays `lines` through a runtime built with `agents` on the simulated clock.
async fn replay(
    agents: Vec<AgentSpec>,
    lines: &[String],
    bus: BusConfig,
) -> (
    ShutdownReport,
    Vec<Decision>,
    Arc<MemoryDeadLetters>,
    EmbeddedBus,
) {
    replay_on(agents, lines, EmbeddedBus::new(bus)).await
}

/// [`replay`] on a bus the caller made (and may watch while it runs).
async fn replay_on(
    agents: Vec<AgentSpec>,
    lines: &[String],
    bus: EmbeddedBus,
) -> (
    ShutdownReport,
    Vec<Decision>,
    Arc<MemoryDeadLetters>,
    EmbeddedBus,
) {
    let policy = Arc::new(conclave_agents::load_policy(&root().join(POLICY)).expect("policy"));
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(SimClock::new(Timestamp::EPOCH));
    let sources: Vec<Box<dyn TelemetrySource>> = bus
        .subscribe("telemetry")
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn TelemetrySource>)
        .collect();
    let dead = Arc::new(MemoryDeadLetters::default());
    let actuator = MemoryActuator::new();
    let audit = dir.path().join("audit.jsonl");
    let runtime = Runtime::start(RuntimeConfig {
        journal: None,
        policy: policy.clone(),
        agents,
        sources,
        audit: AuditWriter::open(&audit, FsyncPolicy::Never, clock.clone()).expect("audit"),
        actuator: Box::new(actuator.clone()),
        dead_letters: dead.clone(),
        clock: clock.clone(),
        decision_tap: None,
        tuning: Tuning::default(),
    })
    .await
    .expect("start");
    let mut replayer = Replayer::new(
        bus.producer("telemetry"),
        Some(clock),
        policy.arbiter().window(),
        Tuning::default().decode.max_future_skew,
    );
    for line in lines {
        replayer.line(line.as_bytes()).await.expect("publish");
    }
    replayer.finish().await.expect("finish");
    bus.close("telemetry");
    let report = runtime.shutdown().await.expect("shutdown");
    let decisions = crate::golden::audit_decisions(&audit);
    (report, decisions, dead, bus)
}

fn e2e_lines() -> Vec<String> {
    std::fs::read_to_string(root().join(E2E))
        .expect("fixture")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Wraps an agent and panics on metrics from a service called `poison`, as a bug
/// triggered by one crafted input would.
struct PanicsOnPoison(Box<dyn Agent>);

impl Agent for PanicsOnPoison {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn wants(&self, kind: TelemetryKind) -> bool {
        self.0.wants(kind)
    }
    fn observe(&mut self, t: &Telemetry, out: &mut Proposals) {
        if let Telemetry::Metrics(m) = t {
            assert!(m.service != "poison", "crafted input crashed the agent");
        }
        self.0.observe(t, out);
    }
    fn tick(&mut self, now: Timestamp, out: &mut Proposals) {
        self.0.tick(now, out);
    }
}

fn real_agents(poisoned: Option<&'static str>) -> Vec<AgentSpec> {
    let policy = Arc::new(conclave_agents::load_policy(&root().join(POLICY)).expect("policy"));
    conclave_agents::agent_specs(&policy)
        .expect("specs")
        .into_iter()
        .map(|spec| {
            if Some(spec.name) == poisoned {
                let inner = spec.factory.clone();
                AgentSpec {
                    name: spec.name,
                    factory: Arc::new(move || Box::new(PanicsOnPoison(inner()))),
                }
            } else {
                spec
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_agent_is_restarted_and_the_other_three_decide_as_before() {
    let lines = e2e_lines();
    let (_, baseline, _, _) = replay(real_agents(None), &lines, BusConfig::default()).await;

    // The same telemetry with a crafted message in the middle that crashes the router.
    let mut poisoned = lines.clone();
    let at = (60..lines.len())
        .find(|&i| lines[i].contains("\"service\": \"storefront-eu\""))
        .expect("a storefront-eu sample");
    poisoned.insert(at + 1, lines[at].replace("storefront-eu", "poison"));
    let (report, decisions, dead, _) =
        replay(real_agents(Some("router")), &poisoned, BusConfig::default()).await;

    let others = |ds: &[Decision]| -> Vec<String> {
        ds.iter()
            .filter(|d| d.agent != "router")
            .map(decision_summary)
            .collect()
    };
    assert_eq!(others(&decisions), others(&baseline));
    assert_eq!(others(&baseline).len(), 8);
    assert_eq!(report.counters.restarts.get("router"), Some(&1));
    assert_eq!(report.counters.restarts.len(), 1);
    let letters = dead.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason.as_str(), "agent_panicked");
    assert!(letters[0].error.contains(
        "agent `router` panicked handling this message: crafted input crashed the agent"
    ));
    // Every message was observed by the agents that want it, the poison one included
    // for the three healthy agents.
    assert_eq!(report.counters.decoded, 152);
    // The restarted router lost its EWMAs but keeps routing afterwards.
    assert!(decisions.iter().any(|d| d.agent == "router"));
}

fn flood(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"type":"metrics","schema_version":1,"service":"svc-{}","ts":"2026-11-29T10:00:{:02}.000Z","rate_in":10.0,"rate_out":10.0,"backlog":0,"latency_p50_ms":5.0,"latency_p99_ms":9.0,"error_rate":0.0,"cpu":0.5,"replicas":2}}"#,
                i % 50,
                (i * 59 / n.max(1)) % 60
            )
        })
        .collect()
}

/// An agent that holds its first message until the gate opens: the pipeline behind it
/// backs up for certain, however fast or slow the machine is.
struct HeldUntil(Arc<std::sync::atomic::AtomicBool>);

impl Agent for HeldUntil {
    fn name(&self) -> &'static str {
        "held"
    }
    fn wants(&self, _: TelemetryKind) -> bool {
        true
    }
    fn observe(&mut self, _: &Telemetry, _: &mut Proposals) {
        while !self.0.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    fn tick(&mut self, _: Timestamp, _: &mut Proposals) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_drop_oldest_bounds_the_queue_and_accounts_for_every_message() {
    let sent = 50_000;
    let bus = EmbeddedBus::new(BusConfig {
        partitions: 2,
        capacity: 256,
        overload: OverloadPolicy::DropOldest,
    });
    // The held agent blocks until the bus has dropped something, so drops happen by
    // construction, not because this machine's producer happened to be faster.
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (bus, gate) = (bus.clone(), gate.clone());
        tokio::spawn(async move {
            while bus
                .stats("telemetry")
                .is_none_or(|s| s.total().dropped == 0)
            {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            gate.store(true, std::sync::atomic::Ordering::Release);
        })
    };
    let mut agents = real_agents(None);
    let g = gate.clone();
    agents.push(AgentSpec {
        name: "held",
        factory: Arc::new(move || Box::new(HeldUntil(g.clone()))),
    });
    let (report, _, _, bus) = replay_on(agents, &flood(sent), bus).await;
    watcher.await.expect("watcher");
    let stats = bus.stats("telemetry").expect("topic").total();
    assert_eq!(stats.published, sent as u64);
    assert_eq!(report.counters.received + stats.dropped, sent as u64);
    assert_eq!(report.counters.received, stats.delivered);
    assert_eq!(report.counters.decoded, report.counters.received);
    assert!(stats.dropped > 0, "the producer outran the agents");
    assert_eq!(stats.depth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_block_slows_the_producer_and_loses_nothing() {
    let sent = 20_000;
    let (report, _, _, bus) = replay(
        real_agents(None),
        &flood(sent),
        BusConfig {
            partitions: 2,
            capacity: 64,
            overload: OverloadPolicy::Block,
        },
    )
    .await;
    let stats = bus.stats("telemetry").expect("topic").total();
    assert_eq!(stats.dropped, 0);
    assert_eq!(report.counters.received, sent as u64);
    assert_eq!(report.counters.decoded, sent as u64);
    for agent in ["breaker", "router", "scaler"] {
        assert_eq!(
            report.counters.observed.get(agent),
            Some(&(sent as u64)),
            "{agent} saw every message"
        );
    }
}

#[test]
fn ctrl_c_drains_what_was_read_and_exits_cleanly() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = run_args(dir.path(), "-", "live");
    let mut child = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .arg("run")
        .args(&args)
        .args(["--time", "event"])
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("conclave runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = e2e_lines();
    // Up to the first sample at 75 s: its watermark closes the window holding the card
    // number event (70 s), so that decision in the log proves every line was read.
    let last = lines
        .iter()
        .position(|l| l.contains("2026-11-29T10:01:15"))
        .expect("a sample at 75 s");
    for line in &lines[..=last] {
        writeln!(stdin, "{line}").expect("write");
    }
    stdin.flush().expect("flush");
    let audit = dir.path().join("live-audit.jsonl");
    while !std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .contains("web-shop")
    {
        std::thread::yield_now();
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let sent = last + 1;
    assert!(
        stderr.starts_with(&format!(
            "interrupted: {sent} messages, {sent} decoded, 0 dead-lettered"
        )),
        "{stderr}"
    );
    // The interrupted run still closed its last window and synced the log.
    let scan = AuditReader::read_all(&audit).expect("audit");
    assert_eq!((scan.torn, scan.corrupt.len()), (None, 0));
    drop(stdin);
}

#[test]
fn decisions_diff_shows_what_a_policy_change_would_have_decided() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The same telemetry under the shipped policy and under one with a lower CPU target.
    let lower = dir.path().join("lower-target.yaml");
    let text = std::fs::read_to_string(root().join(POLICY)).expect("policy");
    assert!(text.contains("target: 0.7}"));
    std::fs::write(&lower, text.replace("target: 0.7}", "target: 0.4}")).expect("written");
    let mut runs = Vec::new();
    for (tag, policy) in [
        ("a", root().join(POLICY)),
        ("b", root().join(POLICY)),
        ("c", lower),
    ] {
        let mut args = run_args(dir.path(), E2E, tag);
        args[1] = policy.display().to_string();
        args.push("--quiet".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = conclave_run(&args);
        assert_eq!(code, 0, "{err}");
        runs.push(dir.path().join(format!("{tag}-audit.jsonl")));
    }
    let diff = |old: &Path, new: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["decisions", "diff"])
            .args([old, new])
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = diff(&runs[0], &runs[1]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "10 same, 0 changed, 0 only in new, 0 only in old\n");
    let (code, out) = diff(&runs[0], &runs[2]);
    assert_eq!(code, Some(1), "{out}");
    assert_golden("decisions/diff-lower-cpu-target.txt", &out);
}

#[test]
fn replay_compares_a_policy_change_with_the_original_decisions_in_one_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let conclave = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(args)
            .current_dir(crate::golden::root())
            .output()
            .expect("conclave runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, _) = conclave(&[
        "run",
        "--quiet",
        "--policy",
        "tests/fixtures/runtime/policy.yaml",
        "--telemetry",
        "tests/fixtures/runtime/e2e.jsonl",
        "--audit",
        &p("orig.jsonl"),
        "--dead-letters",
        &p("dl.jsonl"),
        "--actions",
        &p("a.log"),
    ]);
    assert_eq!(code, Some(0));
    // The same policy: every decision the same, exit 0.
    let (code, out) = conclave(&[
        "replay",
        "tests/fixtures/runtime/e2e.jsonl",
        "--policy",
        "tests/fixtures/runtime/policy.yaml",
        "--against",
        &p("orig.jsonl"),
        "--out",
        &p("same"),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("10 same, 0 changed, 0 only in new, 0 only in old")
    );
    // The scaler aiming at 50 % instead of 70 % CPU: what changes, exit 1.
    let policy =
        std::fs::read_to_string(crate::golden::root().join("tests/fixtures/runtime/policy.yaml"))
            .expect("policy");
    std::fs::write(
        p("lower-target.yaml"),
        policy.replace("target: 0.7", "target: 0.5"),
    )
    .expect("write");
    let (code, out) = conclave(&[
        "replay",
        "tests/fixtures/runtime/e2e.jsonl",
        "--policy",
        &p("lower-target.yaml"),
        "--against",
        &p("orig.jsonl"),
        "--out",
        &p("changed"),
    ]);
    assert_eq!(code, Some(1), "{out}");
    let diff: String = out.lines().skip(1).map(|l| format!("{l}\n")).collect();
    crate::golden::assert_golden("replay/lower-target.txt", &diff);
}

/// Sends `signal` (`-HUP`, `-INT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sighup_reloads_the_policy_without_losing_telemetry_and_refuses_what_it_cannot_apply() {
    use std::io::{BufRead as _, Write as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = std::fs::read_to_string(root().join(POLICY)).expect("policy");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, &fixture).expect("policy copied");
    let mut args = run_args(dir.path(), "-", "reload");
    args[1] = policy.display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .arg("run")
        .args(&args)
        .args(["--time", "event"])
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("conclave runs");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let (tx, stderr) = std::sync::mpsc::channel::<String>();
    let reader = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let forward = std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next_line = || {
        stderr
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a line on stderr")
    };

    let lines = e2e_lines();
    let half = lines
        .iter()
        .position(|l| l.contains("2026-11-29T10:01:15"))
        .expect("a sample at 75 s");
    for line in &lines[..=half] {
        writeln!(stdin, "{line}").expect("write");
    }
    stdin.flush().expect("flush");
    let audit = dir.path().join("reload-audit.jsonl");
    while !std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .contains("web-shop")
    {
        std::thread::yield_now();
    }

    // Refused: broken YAML, then a policy that changes the decision window.
    let shown = policy.display().to_string();
    std::fs::write(&policy, "apiVersion: conclave/v1\nkind: [").expect("write");
    signal(pid, "-HUP");
    let refused = next_line();
    assert!(
        refused.starts_with(&format!(
            "reload of `{shown}` refused, the running policy stays: "
        )),
        "{refused}"
    );
    std::fs::write(&policy, fixture.replace("window: 15s", "window: 30s")).expect("write");
    signal(pid, "-HUP");
    assert_eq!(
        next_line(),
        format!(
            "reload of `{shown}` refused, the running policy stays: the new policy's decision \
             window is 30s, the running one's 15s; changing it needs a restart"
        )
    );
    // Applied: a new revision whose scaler aims at 50 % CPU instead of 70 %.
    std::fs::write(
        &policy,
        fixture
            .replace("revision: e2e-1", "revision: e2e-2")
            .replace(
                "settings: {metric: cpu, target: 0.7}",
                "settings: {metric: cpu, target: 0.5}",
            ),
    )
    .expect("write");
    signal(pid, "-HUP");
    assert_eq!(next_line(), format!("reloaded `{shown}` (revision e2e-2)"));

    for line in &lines[half + 1..] {
        writeln!(stdin, "{line}").expect("write");
    }
    drop(stdin);
    let status = child.wait().expect("exit");
    let summary = next_line();
    assert_eq!(status.code(), Some(0), "{summary}");
    let sent = lines.len();
    assert!(
        summary.starts_with(&format!(
            "done: {sent} messages, {sent} decoded, 0 dead-lettered"
        )),
        "nothing was lost across the reloads: {summary}"
    );
    let _ = forward.join();

    // Windows decided before the reload are the old revision's, the rest the new one's,
    // and the new scaler target is in the new scaler decisions' reasons.
    let reloaded_at: Timestamp = "2026-11-29T10:01:15Z".parse().expect("time");
    let decisions = crate::golden::audit_decisions(&audit);
    assert!(decisions.iter().any(|d| d.at <= reloaded_at));
    assert!(decisions
        .iter()
        .any(|d| d.at > reloaded_at && d.agent == "scaler"));
    for d in &decisions {
        let want = if d.at <= reloaded_at {
            "e2e-1"
        } else {
            "e2e-2"
        };
        assert_eq!(d.policy_revision, want, "{}", d.id);
        for p in d.proposals.iter().filter(|p| p.agent == "scaler") {
            let target = p
                .rationale
                .iter()
                .find(|f| f.name == "target")
                .map(|f| f.value);
            let want = if d.at <= reloaded_at { 0.7 } else { 0.5 };
            assert_eq!(target, Some(want), "{}", p.id);
        }
    }
}
