//! What sharing the fleet replica budget costs (issue #4): the arbiter deciding a window of
//! 200 scale-ups against its own view of the fleet (`local`, the baseline, as a single
//! instance does) and against a grant over the targets it owns (`shared`); the holder
//! answering one report; an instance building its report.
//!
//! Run: `cargo bench -p conclave-runtime --bench fleet_budget`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use conclave_runtime::fleet_budget::{Answer, BudgetHolder, FleetShare, Grant, UsageReport};
use conclave_runtime::{Action, Arbiter, ArbiterState, Confidence, Proposal, Target, Timestamp};

const TARGETS: usize = 200;
const LEASE: Duration = Duration::from_secs(10);

fn policy() -> Arc<conclave_runtime::Policy> {
    let targets: String = (0..TARGETS)
        .map(|i| format!("    - {{name: svc-{i}, kind: service}}\n"))
        .collect();
    let yaml = format!(
        "apiVersion: conclave/v1\nkind: Policy\nmetadata: {{name: bench}}\nspec:\n  targets:\n{targets}  agents:\n    scaler: {{mode: enforce}}\n  guardrails:\n    defaults: {{min_replicas: 1, max_replicas: 100, max_step: 10, cooldown: 0s, scale_down_stabilization: 0s}}\n    fleet_replica_budget: 100000\n"
    );
    Arc::new(
        conclave_runtime::policy::compile_str("bench.yaml", &yaml, &["scaler"])
            .expect("bench policy compiles"),
    )
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + s * 1000)
}

fn names() -> Vec<Target> {
    (0..TARGETS)
        .map(|i| Target::new(format!("svc-{i}")))
        .collect()
}

fn proposals(targets: &[Target], now: Timestamp) -> Vec<Proposal> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| Proposal {
            id: format!("p-{i}"),
            agent: "scaler".into(),
            target: t.clone(),
            action: Action::Scale { replicas: 6 },
            confidence: Confidence::try_new(0.9).expect("valid"),
            rationale: Vec::new(),
            model: None,
            fallback: None,
            at: now,
            trace: None,
            inference: None,
            rule: None,
        })
        .collect()
}

fn decide(c: &mut Criterion) {
    let arbiter = Arbiter::new(policy());
    let targets = names();
    let now = at(1);
    let mut local = ArbiterState::new();
    for t in &targets {
        local.observe_replicas(t.clone(), 4);
    }
    let mut shared = {
        let mut share = FleetShare::new("bench", LEASE);
        share.observe(&targets, now);
        ArbiterState::with_fleet_share(share)
    };
    for t in &targets {
        shared.observe_replicas(t.clone(), 4);
    }
    let replicas: BTreeMap<Target, u32> = targets.iter().map(|t| (t.clone(), 4)).collect();
    let share = shared.fleet_share_mut().expect("shared");
    let r = share.report(&replicas, &BTreeMap::new(), 100_000, now);
    share
        .accept(&Grant {
            instance: "bench".into(),
            seq: r.seq,
            sent_at: r.sent_at,
            replicas: 100_000,
            lease_ms: 10_000,
            holder: "bench".into(),
            budget: 100_000,
            fleet_used: r.used(),
            others_actions: BTreeMap::new(),
        })
        .expect("grant taken");

    let mut group = c.benchmark_group("decide_200_scale_ups");
    group.throughput(Throughput::Elements(TARGETS as u64));
    for (name, state) in [("local_budget", &local), ("shared_budget", &shared)] {
        let enacted = arbiter
            .decide(&mut state.clone(), now, proposals(&targets, now))
            .iter()
            .filter(|d| d.outcome.is_acted_on())
            .count();
        assert_eq!(enacted, TARGETS, "{name}: every scale-up fits the budget");
        group.bench_function(name, |b| {
            b.iter_batched(
                || (state.clone(), proposals(&targets, now)),
                |(mut s, ps)| black_box(arbiter.decide(&mut s, now, ps)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn exchange(c: &mut Criterion) {
    let targets = names();
    let mut group = c.benchmark_group("budget_exchange_200_targets");
    for instances in [2usize, 8] {
        // A warm holder that has heard from every instance.
        let reports: Vec<UsageReport> = (0..instances)
            .map(|i| UsageReport {
                instance: format!("i{i}"),
                seq: 1,
                sent_at: at(0),
                budget: 100_000,
                targets: targets
                    .iter()
                    .skip(i)
                    .step_by(instances)
                    .map(|t| (t.clone(), 4))
                    .collect(),
                released: BTreeMap::new(),
                actions: BTreeMap::new(),
                wanted: 3,
                held: None,
            })
            .collect();
        let mut holder = BudgetHolder::new("i0", LEASE);
        for s in [0, 4, 8, 10] {
            for r in &reports {
                let mut r = r.clone();
                r.sent_at = at(s);
                holder.on_report(r, at(s));
            }
        }
        let mut next = reports[0].clone();
        next.sent_at = at(10);
        assert!(matches!(
            holder.clone().on_report(next.clone(), at(10)),
            Answer::Grant(_)
        ));
        group.bench_function(
            format!("holder_answers_a_report_{instances}_instances"),
            |b| {
                b.iter_batched(
                    || (holder.clone(), next.clone()),
                    |(mut h, r)| black_box(h.on_report(r, at(10))),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    let replicas: BTreeMap<Target, u32> = targets.iter().map(|t| (t.clone(), 4)).collect();
    let mut share = FleetShare::new("bench", LEASE);
    share.observe(&targets, at(0));
    group.bench_function("instance_builds_its_report", |b| {
        b.iter(|| black_box(share.report(&replicas, &BTreeMap::new(), 100_000, at(1))))
    });
    group.finish();
}

criterion_group!(benches, decide, exchange);
criterion_main!(benches);
