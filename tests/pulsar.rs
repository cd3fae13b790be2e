//! The runtime on a real Apache Pulsar broker (issue #4). `make test` starts the broker
//! (`deploy/pulsar/pulsar.sh`) and sets `CONCLAVE_PULSAR_URL`; without it these tests say
//! so and pass, unless `CONCLAVE_REQUIRE_PULSAR=1` (set by `make test`) makes that a
//! failure. Each test uses its own topics in the `conclave/test` namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use conclave_runtime::bus::pulsar::{
    Outgoing, Publisher, PulsarSettings, PulsarTransport, TopicReader,
};
use conclave_runtime::{Clock, Decision, RealClock, Timestamp};

use crate::golden::root;

/// One broker test at a time: one of them restarts the broker.
static BROKER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The broker for these tests (held exclusively while the guard lives), or `None` (with a
/// note) when there is none.
pub(crate) fn broker() -> Option<(String, std::sync::MutexGuard<'static, ()>)> {
    match std::env::var("CONCLAVE_PULSAR_URL") {
        Ok(u) if !u.is_empty() => Some((
            u,
            BROKER
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )),
        _ => {
            assert!(
                std::env::var("CONCLAVE_REQUIRE_PULSAR").as_deref() != Ok("1"),
                "CONCLAVE_REQUIRE_PULSAR=1 but CONCLAVE_PULSAR_URL is not set"
            );
            eprintln!("no broker: set CONCLAVE_PULSAR_URL (make test does) to run this test");
            None
        }
    }
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

/// What a broker test starts from: the broker (held), a folder, fresh topics and a
/// scaler policy on them.
struct Setup {
    url: String,
    guard: std::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    topics: Topics,
    policy: PathBuf,
}

/// The set-up for test `name` over `services`, or `None` without a broker.
fn setup(name: &str, services: &[String]) -> Option<Setup> {
    let (url, guard) = broker()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = Topics::new(name);
    let policy = write_policy(dir.path(), &topics, services);
    Some(Setup {
        url,
        guard,
        dir,
        topics,
        policy,
    })
}

/// Fresh topic names for one test.
pub(crate) struct Topics {
    pub(crate) telemetry: String,
    pub(crate) actions: String,
    pub(crate) control: String,
    pub(crate) dead: String,
}

impl Topics {
    pub(crate) fn new(test: &str) -> Self {
        let n = RealClock.now().as_millis();
        let t = |what: &str| format!("persistent://conclave/test/{test}-{what}-{n}");
        Topics {
            telemetry: t("telemetry"),
            actions: t("actions"),
            control: t("control"),
            dead: t("dlq"),
        }
    }
}

/// A scaler-only test policy on `services` and `topics`, with one-second windows. The
/// parts tests vary are fields; [`TestPolicy::new`] gives the plain one.
pub(crate) struct TestPolicy {
    /// The telemetry selection line: `topics: [..]` or `topic_pattern: ".."`.
    pub(crate) selection: String,
    /// The scaler's settings, as a YAML flow mapping's inside.
    pub(crate) scaler: String,
    /// The lines under `guardrails:`, indented by four.
    pub(crate) guardrails: String,
    /// More lines under `pulsar:`, indented by four.
    pub(crate) pulsar: String,
}

impl TestPolicy {
    /// Telemetry from `topics.telemetry`, the scaler at 50 % CPU, wide guardrails.
    pub(crate) fn new(topics: &Topics) -> Self {
        TestPolicy {
            selection: format!("topics: [{}]", topics.telemetry),
            scaler: "metric: cpu, target: 0.5".to_owned(),
            guardrails:
                "    defaults: {min_replicas: 1, max_replicas: 50, max_step: 40, cooldown: 0s}\n"
                    .to_owned(),
            pulsar: String::new(),
        }
    }

    /// Writes `policy.yaml` in `dir`.
    pub(crate) fn write(&self, dir: &Path, topics: &Topics, services: &[String]) -> PathBuf {
        let targets: String = services
            .iter()
            .map(|s| format!("    - {{name: {s}, kind: service}}\n"))
            .collect();
        let names = services.join(", ");
        let text = format!(
            "apiVersion: conclave/v1
kind: Policy
metadata: {{name: pulsar-test, revision: p-1}}
spec:
  targets:
{targets}  agents:
    scaler:
      mode: enforce
      targets: {{names: [{names}]}}
      settings: {{{scaler}}}
  guardrails:
{guardrails}  arbiter: {{window: 1s}}
  pulsar:
    telemetry:
      {selection}
      subscription: conclave
      subscription_type: key_shared
      dead_letter_topic: {dead}
    actions_topic: {act}
    control_topic: {ctl}
{pulsar}",
            scaler = self.scaler,
            guardrails = self.guardrails,
            selection = self.selection,
            pulsar = self.pulsar,
            dead = topics.dead,
            act = topics.actions,
            ctl = topics.control,
        );
        let path = dir.join("policy.yaml");
        std::fs::write(&path, text).expect("policy written");
        path
    }
}

/// The plain [`TestPolicy`].
pub(crate) fn write_policy(dir: &Path, topics: &Topics, services: &[String]) -> PathBuf {
    TestPolicy::new(topics).write(dir, topics, services)
}

/// One metrics message for `service` at `ts`: `cpu` of 0.5 per replica of `replicas`
/// wanted, so the scaler's answer is `ceil(replicas * cpu / 0.5)`.
pub(crate) fn metrics(service: &str, ts: Timestamp, cpu: f64, replicas: u32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "metrics", "schema_version": 1, "service": service, "ts": ts,
        "rate_in": 100.0, "rate_out": 100.0, "backlog": 0, "latency_p50_ms": 10.0,
        "latency_p99_ms": 40.0, "error_rate": 0.0, "cpu": cpu, "replicas": replicas
    }))
    .expect("json")
}

pub(crate) fn outgoing(service: &str, payload: Vec<u8>, id: String) -> Outgoing {
    Outgoing {
        key: Some(service.to_owned()),
        event_id: Some(id),
        payload,
    }
}

pub(crate) async fn connect(url: &str) -> PulsarTransport {
    PulsarTransport::connect(
        url,
        PulsarSettings::default(),
        "conclave-test",
        Duration::from_secs(10),
    )
    .await
    .expect("broker reachable")
}

pub(crate) async fn publish(url: &str, topic: &str, messages: Vec<Outgoing>) {
    let t = connect(url).await;
    let mut p = Publisher::open(&t, topic).await.expect("producer");
    p.send_all(messages).await.expect("published");
    p.close().await;
}

/// A `conclave run --pulsar` process.
pub(crate) struct Instance {
    child: Child,
    dir: PathBuf,
    name: String,
}

impl Instance {
    pub(crate) fn start(url: &str, policy: &Path, dir: &Path, name: &str) -> Instance {
        Self::start_with(url, policy, dir, name, &[])
    }

    fn start_with(url: &str, policy: &Path, dir: &Path, name: &str, extra: &[&str]) -> Instance {
        Self::start_env(url, policy, dir, name, extra, &[])
    }

    fn start_env(
        url: &str,
        policy: &Path,
        dir: &Path,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Instance {
        let err = std::fs::File::create(dir.join(format!("{name}.err"))).expect("file");
        let out = std::fs::File::create(dir.join(format!("{name}.out"))).expect("file");
        let child = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args([
                "run", "--quiet", "--pulsar", url, "--name", name, "--policy",
            ])
            .arg(policy)
            .arg("--audit")
            .arg(dir.join(format!("{name}-audit.jsonl")))
            .arg("--dead-letters")
            .arg(dir.join(format!("{name}-dead.jsonl")))
            .arg("--overrides")
            .arg(dir.join(format!("{name}-overrides.jsonl")))
            .args(extra)
            .envs(env.iter().copied())
            .current_dir(root())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("conclave runs");
        let i = Instance {
            child,
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        i.wait_for("running on", Duration::from_secs(30));
        i
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.err", self.name))).unwrap_or_default()
    }

    pub(crate) fn wait_for(&self, text: &str, limit: Duration) {
        let clock = RealClock;
        let start = clock.now();
        while !self.stderr().contains(text) {
            assert!(
                clock.now().since(start) < limit,
                "{} did not print `{text}` within {limit:?}:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status and the `pulsar:` summary line's figures.
    pub(crate) fn stop(mut self) -> BTreeMap<String, u64> {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("waits");
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            self.name,
            self.stderr()
        );
        pulsar_summary(&self.stderr())
    }

    /// SIGKILL: a crash, nothing drained.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decisions in an instance's audit log.
pub(crate) fn decisions_of(dir: &Path, name: &str) -> Vec<Decision> {
    crate::golden::audit_decisions(&dir.join(format!("{name}-audit.jsonl")))
}

/// `pulsar: 10 delivered, 0 redeliveries skipped, ...` -> {"delivered": 10, ...}.
pub(crate) fn pulsar_summary(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("pulsar: "))
        .unwrap_or_else(|| panic!("no pulsar summary in:\n{stderr}"));
    line.trim_start_matches("pulsar: ")
        .split(", ")
        .filter_map(|part| {
            let (n, what) = part.split_once(' ')?;
            Some((what.to_owned(), n.parse().ok()?))
        })
        .collect()
}

/// A topic's stats from the broker's admin API (plain HTTP on loopback).
pub(crate) fn topic_stats(topic: &str) -> serde_json::Value {
    let admin = std::env::var("CONCLAVE_PULSAR_ADMIN").unwrap_or("127.0.0.1:8080".into());
    let path = topic.replacen("persistent://", "/admin/v2/persistent/", 1) + "/stats";
    let mut s = std::net::TcpStream::connect(&admin).expect("admin API reachable");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {admin}\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(json).expect("stats JSON")
}

/// The subscription's backlog.
pub(crate) fn backlog(topic: &str, subscription: &str) -> u64 {
    let v = topic_stats(topic);
    v["subscriptions"][subscription]["msgBacklog"]
        .as_u64()
        .unwrap_or_else(|| panic!("no backlog for {subscription} in {v}"))
}

pub(crate) fn enacted_scales(ds: &[Decision]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in ds.iter().filter(|d| d.outcome.name() == "enacted") {
        if let Some(a) = &d.action {
            out.entry(d.target.to_string())
                .or_default()
                .push(a.to_string());
        }
    }
    out
}

#[test]
fn telemetry_from_a_separate_producer_becomes_actions_and_audit_records() {
    let services: Vec<String> = ["cart", "checkout", "search"].map(String::from).to_vec();
    let Some(Setup {
        url,
        guard: _broker,
        dir,
        topics,
        policy,
    }) = setup("e2e", &services)
    else {
        return;
    };
    let a = Instance::start(&url, &policy, dir.path(), "e2e-a");

    // A separate producer: the CLI, from a file.
    let now = RealClock.now();
    let file = dir.path().join("telemetry.jsonl");
    let lines: Vec<String> = [("cart", 1.0, 4), ("checkout", 0.75, 4), ("search", 0.5, 6)]
        .iter()
        .map(|(s, cpu, r)| String::from_utf8(metrics(s, now, *cpu, *r)).expect("utf8"))
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["publish", "--pulsar", &url, "--topic", &topics.telemetry])
        .arg(&file)
        .output()
        .expect("publish runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("published 3 messages to "));

    let rt = rt();
    let actions = rt.block_on(async {
        let t = connect(&url).await;
        let mut r = TopicReader::open(&t, &topics.actions, "test-reader")
            .await
            .expect("reader");
        let mut got = Vec::new();
        while got.len() < 2 {
            match r.next(Duration::from_secs(20)).await {
                Some(m) => got.push(m),
                None => break,
            }
        }
        got
    });
    let summary = a.stop();

    // cart: 4 * 1.0 / 0.5 = 8; checkout: 4 * 0.75 / 0.5 = 6; search is at its target.
    let mut seen: Vec<(String, String, String)> = actions
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("action JSON");
            assert_eq!(
                m.properties.get("conclave-decision-id").map(String::as_str),
                v["decision"].as_str(),
                "decision id in the properties"
            );
            assert_eq!(v["outcome"]["kind"], "enacted", "{v}");
            assert!(v["reasons"][0]["code"].is_string(), "{v}");
            (
                m.key.clone().unwrap_or_default(),
                v["target"].as_str().unwrap_or_default().to_owned(),
                v["action"].to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0.as_str(), seen[0].1.as_str()), ("cart", "cart"));
    assert_eq!(seen[0].2, r#"{"scale":{"replicas":8}}"#);
    assert_eq!(
        (seen[1].0.as_str(), seen[1].1.as_str()),
        ("checkout", "checkout")
    );
    assert_eq!(seen[1].2, r#"{"scale":{"replicas":6}}"#);

    let audited = enacted_scales(&decisions_of(dir.path(), "e2e-a"));
    assert_eq!(
        audited,
        BTreeMap::from([
            ("cart".to_string(), vec!["scale to 8 replicas".to_string()]),
            (
                "checkout".to_string(),
                vec!["scale to 6 replicas".to_string()]
            ),
        ])
    );
    assert_eq!(summary["delivered"], 3);
    assert_eq!(summary["acknowledged"], 3);
    assert_eq!(
        backlog(&topics.telemetry, "conclave"),
        0,
        "everything acknowledged"
    );
}

#[test]
fn an_override_on_the_control_topic_takes_effect() {
    let services = vec!["cart".to_string()];
    let Some(Setup {
        url,
        guard: _broker,
        dir,
        topics,
        policy,
    }) = setup("control", &services)
    else {
        return;
    };
    let a = Instance::start(&url, &policy, dir.path(), "ctl-a");
    let rt = rt();
    let freeze = serde_json::json!({
        "id": "o-freeze-1", "kind": "freeze", "by": {"name": "ana", "role": "operator"},
        "reason": "incident 42", "at": RealClock.now()
    });
    rt.block_on(publish(
        &url,
        &topics.control,
        vec![Outgoing {
            key: None,
            event_id: None,
            payload: b"{not an override".to_vec(),
        }],
    ));
    rt.block_on(publish(
        &url,
        &topics.control,
        vec![Outgoing {
            key: None,
            event_id: None,
            payload: serde_json::to_vec(&freeze).expect("json"),
        }],
    ));
    a.wait_for(
        "control: control message is not an override",
        Duration::from_secs(20),
    );
    // Wait until the freeze is in force before sending telemetry.
    let out_path = dir.path().join("ctl-a.out");
    let clock = RealClock;
    let start = clock.now();
    while !std::fs::read_to_string(&out_path)
        .unwrap_or_default()
        .contains("override o-freeze-1 applied")
    {
        assert!(
            clock.now().since(start) < Duration::from_secs(20),
            "freeze not applied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let now = RealClock.now();
    rt.block_on(publish(
        &url,
        &topics.telemetry,
        vec![outgoing("cart", metrics("cart", now, 1.0, 4), "c-1".into())],
    ));
    // Two windows later the decision is in.
    std::thread::sleep(Duration::from_secs(4));
    a.stop();
    let ds = decisions_of(dir.path(), "ctl-a");
    let cart: Vec<&Decision> = ds.iter().filter(|d| d.target.as_str() == "cart").collect();
    assert_eq!(cart.len(), 1, "{ds:?}");
    assert_eq!(cart[0].outcome.name(), "overridden");
    assert!(
        cart[0].reasons.iter().any(|r| r.message.contains("freeze")),
        "{:?}",
        cart[0].reasons
    );
}

#[test]
fn a_poison_message_goes_to_the_dead_letter_topic_and_the_rest_are_decided() {
    let services = vec!["cart".to_string(), "search".to_string()];
    let Some(Setup {
        url,
        guard: _broker,
        dir,
        topics,
        policy,
    }) = setup("poison", &services)
    else {
        return;
    };
    let a = Instance::start(&url, &policy, dir.path(), "poison-a");
    let rt = rt();
    let now = RealClock.now();
    rt.block_on(publish(
        &url,
        &topics.telemetry,
        vec![
            outgoing("cart", metrics("cart", now, 0.5, 4), "p-1".into()),
            outgoing(
                "cart",
                b"{\"type\": \"metrics\", \"service\": ".to_vec(),
                "p-2".into(),
            ),
            outgoing("cart", metrics("cart", now, 1.0, 4), "p-3".into()),
            outgoing("search", metrics("search", now, 1.0, 2), "p-4".into()),
        ],
    ));
    let dead = rt.block_on(async {
        let t = connect(&url).await;
        let mut r = TopicReader::open(&t, &topics.dead, "test-reader")
            .await
            .expect("reader");
        r.next(Duration::from_secs(20)).await
    });
    std::thread::sleep(Duration::from_secs(3));
    let summary = a.stop();
    let dead = dead.expect("a dead letter");
    assert_eq!(
        dead.payload,
        b"{\"type\": \"metrics\", \"service\": ".to_vec()
    );
    assert_eq!(
        dead.properties
            .get("conclave-dead-letter-reason")
            .map(String::as_str),
        Some("malformed_json")
    );
    assert_eq!(
        dead.properties.get("conclave-origin-topic"),
        Some(&topics.telemetry)
    );
    assert!(dead.properties.contains_key("conclave-dead-letter-error"));
    assert_eq!(
        enacted_scales(&decisions_of(dir.path(), "poison-a")),
        BTreeMap::from([
            ("cart".to_string(), vec!["scale to 8 replicas".to_string()]),
            (
                "search".to_string(),
                vec!["scale to 4 replicas".to_string()]
            ),
        ]),
        "the messages after the poison one were decided"
    );
    assert_eq!(summary["delivered"], 4);
    assert_eq!(summary["dead letters published"], 1);
    assert_eq!(
        backlog(&topics.telemetry, "conclave"),
        0,
        "the poison message was acknowledged too"
    );
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing_and_enacts_nothing_twice() {
    let services: Vec<String> = (0..4).map(|i| format!("svc-{i}")).collect();
    let Some(Setup {
        url,
        guard: _broker,
        dir,
        topics,
        policy,
    }) = setup("restart", &services)
    else {
        return;
    };
    let a = Instance::start(&url, &policy, dir.path(), "restart-a");
    let rt = rt();
    let batch = |round: u32| {
        let now = RealClock.now();
        services
            .iter()
            .map(|s| {
                outgoing(
                    s,
                    metrics(s, now, 0.5 * f64::from(round + 1), 2),
                    format!("{s}-{round}"),
                )
            })
            .collect::<Vec<_>>()
    };
    for round in 0..3 {
        rt.block_on(publish(&url, &topics.telemetry, batch(round)));
        std::thread::sleep(Duration::from_millis(700));
    }
    let restart = Command::new(root().join("deploy/pulsar/pulsar.sh"))
        .arg("restart")
        .status()
        .expect("pulsar.sh runs");
    assert!(restart.success(), "broker restarted");
    let after_restart = RealClock.now();
    for round in 3..6 {
        rt.block_on(publish(&url, &topics.telemetry, batch(round)));
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(Duration::from_secs(4));
    let summary = a.stop();
    eprintln!("restart run: {summary:?}");
    let ds = decisions_of(dir.path(), "restart-a");

    // Every event id reached the agents exactly once (redeliveries were recognised).
    assert_eq!(summary["delivered"], 24, "{summary:?}");
    // Decisions resumed after the restart, on the telemetry sent after it (cpu 2.0 and
    // more: 8 replicas or more wanted, clamped by the scaler's scale-up rate).
    for s in &services {
        assert!(
            ds.iter().any(|d| d.target.as_str() == s
                && d.at > after_restart
                && d.outcome.name() == "enacted"
                && d.proposals.iter().any(|p| p
                    .rationale
                    .iter()
                    .any(|f| f.name == "metric_replicas" && f.value >= 8.0))),
            "no decision for {s} after the restart: {ds:?}"
        );
    }
    // No decision id twice.
    let ids: BTreeSet<&str> = ds.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), ds.len(), "a decision was made twice");
    assert_eq!(
        backlog(&topics.telemetry, "conclave"),
        0,
        "everything acknowledged"
    );
}

#[test]
fn two_instances_on_key_shared_own_disjoint_targets_and_take_over_on_failure() {
    let services: Vec<String> = (0..8).map(|i| format!("svc-{i}")).collect();
    let Some(Setup {
        url,
        guard: _broker,
        dir,
        topics,
        policy,
    }) = setup("scaleout", &services)
    else {
        return;
    };
    let a = Instance::start(&url, &policy, dir.path(), "so-a");
    let b = Instance::start(&url, &policy, dir.path(), "so-b");
    let rt = rt();
    let mut round = 0u32;
    let mut send_for = |secs: u64| {
        let clock = RealClock;
        let start = clock.now();
        while clock.now().since(start) < Duration::from_secs(secs) {
            let now = clock.now();
            // Steady overload: every window with telemetry has a scale-up to decide.
            let cpu = 1.0;
            let msgs = services
                .iter()
                .map(|s| outgoing(s, metrics(s, now, cpu, 4), format!("{s}-{round}")))
                .collect();
            rt.block_on(publish(&url, &topics.telemetry, msgs));
            round += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    send_for(8);
    let killed_at = RealClock.now();
    let a_targets: BTreeSet<String> = decisions_of(dir.path(), "so-a")
        .iter()
        .map(|d| d.target.to_string())
        .collect();
    a.kill();
    send_for(12);
    b.stop();

    let da = decisions_of(dir.path(), "so-a");
    let db = decisions_of(dir.path(), "so-b");
    assert!(!da.is_empty() && !db.is_empty(), "both instances decided");
    // Never two arbiters for one target in one window.
    let wa: BTreeSet<(String, Timestamp)> =
        da.iter().map(|d| (d.target.to_string(), d.at)).collect();
    let wb: BTreeSet<(String, Timestamp)> =
        db.iter().map(|d| (d.target.to_string(), d.at)).collect();
    let both: Vec<_> = wa.intersection(&wb).collect();
    assert!(both.is_empty(), "decided by both in one window: {both:?}");
    // After A died, B decided for every target A had, within 10 seconds.
    assert!(!a_targets.is_empty());
    for t in &a_targets {
        let first = db
            .iter()
            .filter(|d| d.target.as_str() == t && d.at > killed_at)
            .map(|d| d.at)
            .min();
        let first = first.unwrap_or_else(|| panic!("B never took over {t}"));
        assert!(
            first.since(killed_at) < Duration::from_secs(10),
            "{t} taken over after {:?}; B decided: {:?}\n{}",
            first.since(killed_at),
            db.iter()
                .map(|d| (d.target.to_string(), d.at.since(killed_at)))
                .collect::<Vec<_>>(),
            std::fs::read_to_string(dir.path().join("so-b.err")).unwrap_or_default()
        );
    }
}

#[test]
fn bad_urls_unreachable_brokers_and_missing_topics_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = Topics::new("errors");
    let policy = write_policy(dir.path(), &topics, &["cart".to_string()]);
    let run = |url: &str, policy: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["run", "--pulsar", url, "--policy"])
            .arg(policy)
            .arg("--audit")
            .arg(dir.path().join("audit.jsonl"))
            .arg("--dead-letters")
            .arg(dir.path().join("dead.jsonl"))
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("http://127.0.0.1:8080", &policy);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("invalid Pulsar URL `http://127.0.0.1:8080`: expected a URL starting with `pulsar://` or `pulsar+ssl://`"),
        "{err}"
    );
    // Nothing listens on port 1.
    let (code, err) = run("pulsar://127.0.0.1:1", &policy);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot reach the Pulsar broker at pulsar://127.0.0.1:1"),
        "{err}"
    );

    let Some((url, _broker)) = broker() else {
        return;
    };
    let missing = dir.path().join("missing.yaml");
    std::fs::write(
        &missing,
        std::fs::read_to_string(&policy)
            .expect("policy")
            .replace(&topics.telemetry, "persistent://conclave/ops/no-such-topic"),
    )
    .expect("written");
    let (code, err) = run(&url, &missing);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot subscribe to `persistent://conclave/ops/no-such-topic`"),
        "{err}"
    );
}

#[test]
fn an_act_through_one_instances_api_reaches_every_instance() {
    let Some(Setup {
        url,
        guard: _guard,
        dir,
        topics: _,
        policy,
    }) = setup("api-fleet", &["svc-a".to_string()])
    else {
        return;
    };
    let tokens = crate::api::Tokens::make(dir.path());
    let file = tokens.file.to_string_lossy().into_owned();
    let api = ["--api", "127.0.0.1:0", "--api-tokens", file.as_str()];
    let a = Instance::start_with(&url, &policy, dir.path(), "fleet-a", &api);
    let b = Instance::start_with(&url, &policy, dir.path(), "fleet-b", &api);
    let base = |i: &Instance| {
        let err = i.stderr();
        let line = err
            .lines()
            .find_map(|l| l.strip_prefix("api: listening on "))
            .map(str::to_owned);
        line.unwrap_or_else(|| panic!("{} printed no API address:\n{err}", i.name))
    };
    let (base_a, base_b) = (base(&a), base(&b));

    let (status, v) = crate::api::call(
        &base_a,
        "POST",
        "/api/v1/freeze",
        Some(&tokens.operator),
        Some(r#"{"reason": "fleet-wide freeze"}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["fleet"],
        "forwarded to the other instances (control topic)"
    );
    let id = v["override"]["id"].as_str().expect("id").to_owned();
    // B applies it from the control topic: same override, same id.
    let clock = RealClock;
    let start = clock.now();
    loop {
        let (_, o) = crate::api::call(
            &base_b,
            "GET",
            "/api/v1/overrides",
            Some(&tokens.viewer),
            None,
        );
        if o["frozen"] == true {
            assert_eq!(o["overrides"][0]["id"], id.as_str());
            assert_eq!(o["overrides"][0]["by"]["name"], "ana");
            break;
        }
        assert!(
            clock.now().since(start) < Duration::from_secs(30),
            "B never froze: {o}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // An answer to a decision pending nowhere here is passed on: 202, and whoever holds
    // no such decision says so.
    let (status, v) = crate::api::call(
        &base_a,
        "POST",
        "/api/v1/decisions/d-elsewhere/approve",
        Some(&tokens.operator),
        Some(r#"{"reason": "ok"}"#),
    );
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["decisions"], serde_json::json!([]));
    b.wait_for("no pending decision `d-elsewhere`", Duration::from_secs(30));
    a.stop();
    b.stop();
    // Each instance audited the freeze once: A did not apply its own message again.
    for name in ["fleet-a", "fleet-b"] {
        let log =
            std::fs::read_to_string(dir.path().join(format!("{name}-audit.jsonl"))).expect("audit");
        let freezes = log
            .lines()
            .filter(|l| l.contains(&format!("\"id\":\"{id}\"")))
            .count();
        assert_eq!(freezes, 1, "{name}: {log}");
    }
}

#[test]
fn a_published_message_is_traced_from_send_to_process() {
    let Some(jaeger) = crate::otel::jaeger() else {
        return;
    };
    let Some(Setup {
        url,
        guard: _guard,
        dir,
        topics,
        policy,
    }) = setup("trace", &["svc-t".to_string()])
    else {
        return;
    };
    let n = RealClock.now().as_millis();
    let (svc_run, svc_pub) = (
        format!("conclave-msg-run-{n}"),
        format!("conclave-msg-pub-{n}"),
    );
    let otlp = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
    let a = Instance::start_env(
        &url,
        &policy,
        dir.path(),
        "trace-a",
        &[],
        &[otlp, ("OTEL_SERVICE_NAME", &svc_run)],
    );
    let file = dir.path().join("telemetry.jsonl");
    let line = String::from_utf8(metrics("svc-t", RealClock.now(), 1.0, 2)).expect("utf8");
    std::fs::write(&file, line + "\n").expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["publish", "--pulsar", &url, "--topic", &topics.telemetry])
        .arg(&file)
        .envs([otlp, ("OTEL_SERVICE_NAME", svc_pub.as_str())])
        .output()
        .expect("publish runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans_of = |service: &str, operation: &str| -> Vec<serde_json::Value> {
        let v = crate::otel::get(&jaeger, &format!("/api/traces?service={service}&limit=20"));
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["operationName"] == operation)
            .collect()
    };
    let send_op = format!("send {}", topics.telemetry);
    let process_op = format!("process {}", topics.telemetry);
    let clock = RealClock;
    let start = clock.now();
    let send = loop {
        if let Some(s) = spans_of(&svc_pub, &send_op).into_iter().next() {
            break s;
        }
        assert!(
            clock.now().since(start) < Duration::from_secs(30),
            "no `{send_op}` span in Jaeger"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // The runtime exports on its batch schedule and at exit.
    a.stop();
    let start = clock.now();
    let process = loop {
        if let Some(s) = spans_of(&svc_run, &process_op).into_iter().next() {
            break s;
        }
        assert!(
            clock.now().since(start) < Duration::from_secs(30),
            "no `{process_op}` span in Jaeger"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let linked = process["references"].as_array().is_some_and(|r| {
        r.iter().any(|r| {
            r["refType"] == "FOLLOWS_FROM"
                && r["traceID"] == send["traceID"]
                && r["spanID"] == send["spanID"]
        })
    });
    assert!(
        linked,
        "process links to the producer's context: {}",
        process["references"]
    );
    let t = crate::otel::tags(&process);
    for (key, want) in [
        ("messaging.system", "pulsar"),
        ("messaging.operation.type", "process"),
        ("messaging.destination.name", topics.telemetry.as_str()),
        ("span.kind", "consumer"),
    ] {
        assert_eq!(t.get(key).map(String::as_str), Some(want), "{key} in {t:?}");
    }
    assert!(
        t.get("messaging.message.id")
            .is_some_and(|m| m.contains(':')),
        "{t:?}"
    );
    let s = crate::otel::tags(&send);
    assert_eq!(
        s.get("span.kind").map(String::as_str),
        Some("producer"),
        "{s:?}"
    );
    // The decision of the message's window links to the message's receive span.
    let start = clock.now();
    let decide = loop {
        if let Some(s) = spans_of(&svc_run, "decide svc-t").into_iter().next() {
            break s;
        }
        assert!(
            clock.now().since(start) < Duration::from_secs(30),
            "no `decide svc-t` span in Jaeger"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let fed = decide["references"].as_array().is_some_and(|r| {
        r.iter().any(|r| {
            r["refType"] == "FOLLOWS_FROM"
                && r["traceID"] == process["traceID"]
                && r["spanID"] == process["spanID"]
        })
    });
    assert!(
        fed,
        "decide links to the receive span of the message that fed it: {}",
        decide["references"]
    );
}

#[test]
fn every_instance_answers_keda_for_every_target() {
    use conclave_runtime::keda::pb::external_scaler_client::ExternalScalerClient;
    use conclave_runtime::keda::pb::{GetMetricsRequest, ScaledObjectRef};

    let services: Vec<String> = (0..6).map(|i| format!("svc-k{i}")).collect();
    let Some(Setup {
        url,
        guard: _guard,
        dir,
        topics,
        policy,
    }) = setup("keda-fleet", &services)
    else {
        return;
    };
    let keda = ["--keda", "127.0.0.1:0"];
    let a = Instance::start_with(&url, &policy, dir.path(), "keda-a", &keda);
    let b = Instance::start_with(&url, &policy, dir.path(), "keda-b", &keda);
    let addr = |i: &Instance| {
        i.wait_for(
            "keda: external scaler listening on ",
            Duration::from_secs(30),
        );
        let err = i.stderr();
        let line = err
            .lines()
            .find_map(|l| l.strip_prefix("keda: external scaler listening on "))
            .map(str::to_owned);
        line.unwrap_or_else(|| panic!("{} printed no KEDA address", i.name))
    };
    let addrs = [addr(&a), addr(&b)];
    // Each service at 2 replicas and twice its target load: the scaler asks for 4.
    let now = RealClock.now();
    let messages: Vec<Outgoing> = services
        .iter()
        .enumerate()
        .map(|(i, s)| outgoing(s, metrics(s, now, 1.0, 2), format!("k-{i}")))
        .collect();
    let rt = rt();
    rt.block_on(publish(&url, &topics.telemetry, messages));
    let answers = rt.block_on(async {
        let clock = RealClock;
        let start = clock.now();
        loop {
            let mut answers = BTreeMap::new();
            for addr in &addrs {
                let mut client = ExternalScalerClient::connect(format!("http://{addr}"))
                    .await
                    .expect("gRPC connects");
                for s in &services {
                    let req = GetMetricsRequest {
                        scaled_object_ref: Some(ScaledObjectRef {
                            name: s.clone(),
                            namespace: "shop".into(),
                            scaler_metadata: [("target".to_string(), s.clone())].into(),
                        }),
                        metric_name: format!("s0-conclave-replicas-{s}"),
                    };
                    let v = client
                        .get_metrics(req)
                        .await
                        .ok()
                        .map(|r| r.into_inner().metric_values[0].metric_value);
                    answers.insert((addr.clone(), s.clone()), v);
                }
            }
            if answers.values().all(|v| *v == Some(4))
                || clock.now().since(start) > Duration::from_secs(60)
            {
                break answers;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    a.stop();
    b.stop();
    // Both instances answer 4 for all six, though each decided only the keys it owns.
    assert!(answers.values().all(|v| *v == Some(4)), "{answers:?}");
    let decided_a = decisions_of(dir.path(), "keda-a").len();
    let decided_b = decisions_of(dir.path(), "keda-b").len();
    assert_eq!(
        decided_a + decided_b,
        services.len(),
        "each target decided once, by its owner"
    );
}
