//! The fleet replica budget shared by instances on Key_Shared (issue #4, "where global
//! limits live"): an elected budget holder grants each instance a share, the fleet never
//! runs more than the budget, and the budget survives the holder's death.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_runtime::bus::pulsar::Outgoing;
use conclave_runtime::{Action, Clock, Decision, RealClock, ReasonCode, Timestamp};

use crate::pulsar::{
    broker, decisions_of, metrics, outgoing, publish, rt, topic_stats, Instance, TestPolicy, Topics,
};

const BUDGET: u32 = 20;

/// The plain test policy with the budget in the guardrails, its exchange on the test's own
/// topics with a 3 s lease, and no HPA-style holds in the scaler: every window with
/// telemetry may change the count, so the budget is what limits it.
fn write_policy(dir: &Path, topics: &Topics, services: &[String]) -> PathBuf {
    TestPolicy {
        scaler: "metric: cpu, target: 0.5, cold_start: 0s, behavior: {scale_up: {stabilization: 0s, policies: [{type: pods, value: 50, period: 1s}]}, scale_down: {stabilization: 0s, policies: [{type: pods, value: 50, period: 1s}]}}".to_owned(),
        guardrails: format!("    defaults: {{min_replicas: 1, max_replicas: 50, max_step: 2, cooldown: 0s, scale_down_stabilization: 0s}}\n    fleet_replica_budget: {BUDGET}\n"),
        pulsar: format!(
            "    budget: {{reports_topic: {}, grants_topic: {}, lease: 3s}}\n",
            reports_topic(topics),
            topics.telemetry.replace("-telemetry-", "-budget-grants-"),
        ),
        ..TestPolicy::new(topics)
    }
    .write(dir, topics, services)
}

fn reports_topic(topics: &Topics) -> String {
    topics.telemetry.replace("-telemetry-", "-budget-reports-")
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
    let v = topic_stats(reports);
    v["subscriptions"]["conclave-budget-holder"]["activeConsumerName"]
        .as_str()
        .unwrap_or_else(|| panic!("no active holder in {v}"))
        .to_owned()
}

/// The `refused` figure of a run's `fleet budget:` summary line.
fn summary_of(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("fleet budget: "))
        .unwrap_or_else(|| panic!("no fleet budget summary in:\n{stderr}"));
    line.rsplit(", ")
        .next()
        .and_then(|last| last.strip_suffix(" refused"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no refused count in `{line}`"))
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
    let reports = reports_topic(&topics);
    let services: Vec<String> = (0..6).map(|i| format!("svc-{i}")).collect();
    let policy = write_policy(dir.path(), &topics, &services);
    let names = ["bud-a", "bud-b"];
    let a = Instance::start(&url, &policy, dir.path(), names[0]);
    let b = Instance::start(&url, &policy, dir.path(), names[1]);
    for i in [&a, &b] {
        i.wait_for("fleet_replica_budget shared", Duration::from_secs(5));
    }
    let rt = rt();
    // Bad input on the exchange: a report that is not JSON, and a grant of 1,000 replicas
    // to each instance for a report it never sent. Both are refused; nothing else changes.
    let grants = topics.telemetry.replace("-telemetry-", "-budget-grants-");
    let junk = |key: &str, payload: &[u8]| Outgoing {
        key: Some(key.to_owned()),
        event_id: None,
        payload: payload.to_vec(),
    };
    rt.block_on(publish(&url, &reports, vec![junk("bud-a", b"{not json")]));
    let forged: Vec<Outgoing> = names
        .iter()
        .map(|n| {
            let g = serde_json::json!({
                "instance": n, "seq": 999, "sent_at": RealClock.now(), "replicas": 1000,
                "lease_ms": 60_000, "holder": "mallory", "budget": 1000, "fleet_used": 0
            });
            junk(n, &serde_json::to_vec(&g).expect("json"))
        })
        .collect();
    rt.block_on(publish(&url, &grants, forged));
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
    let refused = summary_of(
        &std::fs::read_to_string(dir.path().join(format!("{survivor_name}.err")))
            .unwrap_or_default(),
    );
    // The forged grant at least (the junk report went to whichever instance held then).
    assert!(refused >= 1, "the survivor refused nothing");
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
