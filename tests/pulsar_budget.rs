//! The fleet replica budget shared by instances on Key_Shared (issue #4, "where global
//! limits live"): an elected budget holder grants each instance a share, the fleet never
//! runs more than the budget, and the budget survives the holder's death.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_runtime::{Action, Clock, Decision, RealClock, ReasonCode, Timestamp};

use crate::pulsar::{broker, decisions_of, metrics, outgoing, publish, rt, Instance, Topics};

const BUDGET: u32 = 20;

fn write_policy(dir: &Path, topics: &Topics, services: &[String]) -> PathBuf {
    let targets: String = services
        .iter()
        .map(|s| format!("    - {{name: {s}, kind: service}}\n"))
        .collect();
    let text = format!(
        "apiVersion: conclave/v1
kind: Policy
metadata: {{name: budget-test, revision: b-1}}
spec:
  targets:
{targets}  agents:
    scaler:
      mode: enforce
      # No HPA-style holds: every window with telemetry may change the count, so the
      # budget is what limits it.
      settings:
        metric: cpu
        target: 0.5
        cold_start: 0s
        behavior:
          scale_up: {{stabilization: 0s, policies: [{{type: pods, value: 50, period: 1s}}]}}
          scale_down: {{stabilization: 0s, policies: [{{type: pods, value: 50, period: 1s}}]}}
  guardrails:
    defaults: {{min_replicas: 1, max_replicas: 50, max_step: 2, cooldown: 0s, scale_down_stabilization: 0s}}
    fleet_replica_budget: {BUDGET}
  arbiter: {{window: 1s}}
  pulsar:
    telemetry:
      topics: [{tel}]
      subscription: conclave
      subscription_type: key_shared
      dead_letter_topic: {dead}
    actions_topic: {act}
    control_topic: {ctl}
    budget: {{reports_topic: {rep}, grants_topic: {gra}, lease: 3s}}
",
        tel = topics.telemetry,
        dead = topics.dead,
        act = topics.actions,
        ctl = topics.control,
        rep = topics.telemetry.replace("-telemetry-", "-budget-reports-"),
        gra = topics.telemetry.replace("-telemetry-", "-budget-grants-"),
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).expect("policy written");
    path
}

/// Every carried-out scale, from every instance's audit log, in decision-time order.
fn scales(dir: &Path, names: &[&str]) -> Vec<(Timestamp, String, u32)> {
    let mut out: Vec<(Timestamp, String, u32)> = names
        .iter()
        .flat_map(|n| decisions_of(dir, n))
        .filter(|d| d.outcome.is_acted_on())
        .filter_map(|d| match d.action {
            Some(Action::Scale { replicas }) => Some((d.at, d.target.to_string(), replicas)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Each target's replicas after `scales` (2 before any), and the fleet's total after each
/// window, with the window.
fn replay(
    services: &[String],
    scales: &[(Timestamp, String, u32)],
) -> (BTreeMap<String, u32>, Vec<(Timestamp, u32)>) {
    let mut now: BTreeMap<String, u32> = services.iter().map(|s| (s.clone(), 2)).collect();
    let mut totals: Vec<(Timestamp, u32)> = Vec::new();
    for (at, target, replicas) in scales {
        now.insert(target.clone(), *replicas);
        let total = now.values().sum();
        match totals.last_mut() {
            Some(last) if last.0 == *at => last.1 = total,
            _ => totals.push((*at, total)),
        }
    }
    (now, totals)
}

/// The active consumer of the holder subscription on the reports topic (admin API).
fn holder_of(reports: &str) -> String {
    let admin = std::env::var("CONCLAVE_PULSAR_ADMIN").unwrap_or("127.0.0.1:8080".into());
    let path = reports.replacen("persistent://", "/admin/v2/persistent/", 1) + "/stats";
    let mut s = std::net::TcpStream::connect(&admin).expect("admin API reachable");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {admin}\r\n\r\n").expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(json).expect("stats JSON");
    v["subscriptions"]["conclave-budget-holder"]["activeConsumerName"]
        .as_str()
        .unwrap_or_else(|| panic!("no active holder in {v}"))
        .to_owned()
}

fn budget_reasons(ds: &[Decision]) -> Vec<String> {
    ds.iter()
        .flat_map(|d| &d.reasons)
        .filter(|r| r.code == ReasonCode::ReplicaBudget)
        .map(|r| r.message.clone())
        .collect()
}

#[test]
fn instances_share_the_fleet_budget_through_an_elected_holder_that_fails_over() {
    let Some((url, _broker)) = broker() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = Topics::new("budget");
    let reports = topics.telemetry.replace("-telemetry-", "-budget-reports-");
    let services: Vec<String> = (0..6).map(|i| format!("svc-{i}")).collect();
    let policy = write_policy(dir.path(), &topics, &services);
    let names = ["bud-a", "bud-b"];
    let a = Instance::start(&url, &policy, dir.path(), names[0]);
    let b = Instance::start(&url, &policy, dir.path(), names[1]);
    for i in [&a, &b] {
        i.wait_for("fleet_replica_budget shared", Duration::from_secs(5));
    }
    let rt = rt();
    let mut round = 0u32;
    // Telemetry every half second that reports what the fleet runs now (the enacted
    // scales in both audit logs) at `cpu(target)`: a closed loop, like a real fleet.
    let mut run_for = |secs: u64, cpu: &dyn Fn(&str) -> f64| {
        let clock = RealClock;
        let start = clock.now();
        while clock.now().since(start) < Duration::from_secs(secs) {
            let (running, _) = replay(&services, &scales(dir.path(), &names));
            let now = clock.now();
            let msgs = services
                .iter()
                .map(|s| {
                    let body = metrics(s, now, cpu(s), running[s]);
                    outgoing(s, body, format!("{s}-{round}"))
                })
                .collect();
            rt.block_on(publish(&url, &topics.telemetry, msgs));
            round += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // Everyone overloaded: each target wants twice what it runs.
    run_for(12, &|_| 0.95);
    let holder = holder_of(&reports);
    assert!(names.contains(&holder.as_str()), "holder {holder}");
    let (survivor, dead) = if holder == names[0] { (b, a) } else { (a, b) };
    let survivor_name = names
        .iter()
        .find(|n| **n != holder)
        .copied()
        .unwrap_or_default();
    let killed_at = RealClock.now();
    dead.kill();
    // Half the targets calm down and shrink; the rest still want more, which only the new
    // holder's grants can give them.
    run_for(16, &|s| if s < "svc-3" { 0.1 } else { 0.95 });
    survivor.stop();
    let summary = std::fs::read_to_string(dir.path().join(format!("{survivor_name}.err")))
        .unwrap_or_default();

    let all = scales(dir.path(), &names);
    let (end, totals) = replay(&services, &all);
    let peak = totals.iter().map(|(_, t)| *t).max().unwrap_or(0);
    assert!(
        totals.iter().all(|(_, t)| *t <= BUDGET),
        "the fleet went over {BUDGET}: {totals:?}"
    );
    // The budget was shared out, not just withheld: the fleet reached it.
    assert!(peak >= BUDGET - 2, "peak {peak}: {totals:?}");
    // Both instances scaled under grants from the first holder.
    let first: Vec<Decision> = names
        .iter()
        .flat_map(|n| decisions_of(dir.path(), n))
        .collect();
    let reasons = budget_reasons(&first);
    let by_first = format!("granted by `{holder}`");
    assert!(
        reasons.iter().any(|r| r.contains(&by_first)),
        "no decision limited by {holder}'s grant: {reasons:?}"
    );
    // After the holder died the survivor held the budget: the calm targets shrank and the
    // busy ones grew into what they freed, under the survivor's own grants.
    let after: Vec<&(Timestamp, String, u32)> =
        all.iter().filter(|(at, _, _)| *at > killed_at).collect();
    for s in ["svc-0", "svc-1", "svc-2"] {
        assert_eq!(
            end[s],
            1,
            "{s} shrank to its minimum: {after:?}\n{summary}\n{:?}",
            decisions_of(dir.path(), survivor_name)
                .iter()
                .filter(|d| d.at > killed_at)
                .map(|d| (
                    d.at,
                    d.target.to_string(),
                    d.outcome.name(),
                    d.reasons
                        .iter()
                        .map(|r| r.message.clone())
                        .collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>()
        );
    }
    let grew: BTreeSet<&str> = after
        .iter()
        .filter(|(at, t, r)| {
            t.as_str() >= "svc-3"
                && all
                    .iter()
                    .rfind(|(a2, t2, _)| a2 < at && t2 == t)
                    .is_some_and(|(_, _, before)| r > before)
        })
        .map(|(_, t, _)| t.as_str())
        .collect();
    assert!(
        !grew.is_empty(),
        "no busy target grew after the failover: {after:?}"
    );
    let survivor_decisions: Vec<Decision> = decisions_of(dir.path(), survivor_name)
        .into_iter()
        .filter(|d| d.at > killed_at)
        .collect();
    let by_survivor = format!("granted by `{survivor_name}`");
    assert!(
        budget_reasons(&survivor_decisions)
            .iter()
            .any(|r| r.contains(&by_survivor)),
        "the survivor never decided under its own grant: {:?}\n{summary}",
        budget_reasons(&survivor_decisions)
    );
    assert!(
        end.values().sum::<u32>() >= BUDGET - 2,
        "the freed replicas were used again: {end:?}"
    );
}
