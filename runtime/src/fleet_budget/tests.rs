//! The shared fleet budget: exact grants for the holder's cases, the arbiter's budget rule
//! under a grant, and a property test that instances enforcing their grants never take
//! the fleet over its budget, whatever the order of reports, deaths and takeovers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::action::Action;
use crate::arbiter::{Arbiter, ArbiterState};
use crate::decision::{Outcome, ReasonCode};
use crate::policy::Policy;
use crate::proposal::Proposal;
use crate::units::Confidence;

const LEASE: Duration = Duration::from_secs(10);

fn t(s: u64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + i64::try_from(s).unwrap_or(0) * 1000)
}

fn report(
    instance: &str,
    seq: u64,
    at: Timestamp,
    targets: &[(&str, u32)],
    wanted: u64,
) -> UsageReport {
    UsageReport {
        instance: instance.into(),
        seq,
        sent_at: at,
        budget: 20,
        targets: targets.iter().map(|(t, r)| (Target::new(*t), *r)).collect(),
        wanted,
        held: None,
        released: BTreeMap::new(),
        actions: BTreeMap::new(),
    }
}

fn granted(a: Answer) -> Grant {
    match a {
        Answer::Grant(g) => g,
        Answer::WarmingUp { until } => panic!("warming up until {until}"),
    }
}

/// A holder warming up until t(10), having heard from every instance in `first` at t(0)
/// and t(5) (instances report five times a lease).
fn warm(first: &[UsageReport]) -> BudgetHolder {
    let mut h = BudgetHolder::new("holder", LEASE);
    for at in [t(0), t(5)] {
        for r in first {
            assert_eq!(
                h.on_report(r.clone(), at),
                Answer::WarmingUp { until: t(10) }
            );
        }
    }
    h
}

#[test]
fn a_new_holder_grants_nothing_for_one_lease() {
    let mut h = BudgetHolder::new("a", LEASE);
    assert_eq!(
        h.on_report(report("a", 1, t(0), &[("web", 4)], 0), t(0)),
        Answer::WarmingUp { until: t(10) }
    );
    assert_eq!(
        h.on_report(report("a", 2, t(5), &[("web", 4)], 0), t(5)),
        Answer::WarmingUp { until: t(10) }
    );
    let g = granted(h.on_report(report("a", 3, t(10), &[("web", 4)], 0), t(10)));
    // Alone: all of the budget.
    assert_eq!(
        (g.seq, g.sent_at, g.replicas, g.fleet_used),
        (3, t(10), 20, 4)
    );
    // Silent for over half a lease: it may have lost the election meanwhile.
    assert_eq!(
        h.on_report(report("a", 4, t(16), &[("web", 4)], 0), t(16)),
        Answer::WarmingUp { until: t(26) }
    );
    // A report of a grant from another holder, in force for 12 s more, postpones it.
    let mut r = report("a", 5, t(17), &[("web", 4)], 0);
    r.held = Some(HeldReport {
        holder: "b".into(),
        replicas: 9,
        remaining_ms: 12_000,
    });
    assert_eq!(h.on_report(r, t(17)), Answer::WarmingUp { until: t(29) });
}

#[test]
fn free_replicas_go_to_demand_first_then_evenly() {
    let a = report("a", 1, t(0), &[("web", 6)], 0);
    let b = report("b", 1, t(0), &[("db", 4)], 6);
    let mut h = warm(&[a, b]);
    // Free: 20 - 10 = 10; b wants 6 of it; the other 4 are split evenly.
    let ga = granted(h.on_report(report("a", 2, t(10), &[("web", 6)], 0), t(10)));
    assert_eq!(ga.replicas, 6 + 2);
    let gb = granted(h.on_report(report("b", 2, t(10), &[("db", 4)], 6), t(10)));
    assert_eq!(gb.replicas, 4 + 6 + 2);
    assert_eq!(ga.replicas + gb.replicas, 20);
}

#[test]
fn demand_beyond_the_free_replicas_is_shared_by_demand() {
    let a = report("a", 1, t(0), &[("web", 5)], 9);
    let b = report("b", 1, t(0), &[("db", 5)], 3);
    let mut h = warm(&[a.clone(), b.clone()]);
    // Free 10, wanted 12: a gets 10*9/12 = 7, b 10*3/12 = 2.
    let ga = granted(h.on_report(report("a", 2, t(10), &[("web", 5)], 9), t(10)));
    let gb = granted(h.on_report(report("b", 2, t(10), &[("db", 5)], 3), t(10)));
    assert_eq!((ga.replicas, gb.replicas), (12, 7));
}

#[test]
fn a_smaller_grant_counts_as_the_larger_until_that_expires() {
    let mut h = warm(&[
        report("a", 1, t(0), &[("web", 2)], 0),
        report("b", 1, t(0), &[("db", 2)], 0),
    ]);
    // a asks for a lot while b is idle: a gets 2 + 16 wanted.
    let ga = granted(h.on_report(report("a", 2, t(10), &[("web", 2)], 16), t(10)));
    assert_eq!(ga.replicas, 18);
    // b now wants 10; a's grant of 18 may be in force at a until t(20): b gets the 2 it
    // runs and nothing more.
    let gb = granted(h.on_report(report("b", 2, t(11), &[("db", 2)], 10), t(11)));
    assert_eq!(gb.replicas, 2);
    // a reports it used none of it and wants nothing: its new grant is smaller, but the
    // holder keeps counting the 18 until it expires.
    let ga = granted(h.on_report(report("a", 3, t(14), &[("web", 2)], 0), t(14)));
    assert!(ga.replicas < 18, "{ga:?}");
    let gb = granted(h.on_report(report("b", 3, t(15), &[("db", 2)], 10), t(15)));
    assert_eq!(gb.replicas, 2);
    // Free 16, b wants 10: a gets 2 + (16 - 10) / 2.
    let ga = granted(h.on_report(report("a", 4, t(18), &[("web", 2)], 0), t(18)));
    assert_eq!(ga.replicas, 5);
    // a's grant of 18 expired at t(20), but a may have scaled up to it before then: it
    // counts until a reports again. After that only a's later, smaller grants count.
    let gb = granted(h.on_report(report("b", 4, t(20), &[("db", 2)], 10), t(20)));
    assert_eq!(gb.replicas, 2);
    granted(h.on_report(report("a", 5, t(21), &[("web", 2)], 0), t(21)));
    let gb = granted(h.on_report(report("b", 5, t(21), &[("db", 2)], 10), t(21)));
    assert_eq!(gb.replicas, 20 - 5);
}

#[test]
fn a_dead_instances_targets_stay_counted_until_someone_reports_them() {
    let mut h = warm(&[
        report("a", 1, t(0), &[("web", 8)], 0),
        report("b", 1, t(0), &[("db", 4)], 0),
    ]);
    // Free 8, split evenly: a may take web to 12.
    assert_eq!(
        granted(h.on_report(report("a", 2, t(10), &[("web", 8)], 0), t(10))).replicas,
        12
    );
    granted(h.on_report(report("b", 2, t(10), &[("db", 4)], 0), t(10)));
    // a dies after t(10); b goes on reporting. At t(21) a is no longer live and its
    // grants expired, but web still runs, at up to 12 (a may have scaled it after its
    // last report): b may have 20 - 12.
    granted(h.on_report(report("b", 3, t(15), &[("db", 4)], 0), t(15)));
    granted(h.on_report(report("b", 4, t(19), &[("db", 4)], 0), t(19)));
    let gb = granted(h.on_report(report("b", 5, t(21), &[("db", 4)], 20), t(21)));
    assert_eq!((gb.replicas, gb.fleet_used), (8, 16));
    // b takes web over (Key_Shared moved the key) and reports what it runs: 8.
    let gb = granted(h.on_report(report("b", 6, t(22), &[("db", 4), ("web", 8)], 20), t(22)));
    assert_eq!(gb.replicas, 20);
}

#[test]
fn the_strictest_budget_of_the_live_instances_applies() {
    let mut low = report("b", 1, t(0), &[("db", 1)], 0);
    low.budget = 12;
    let mut h = warm(&[report("a", 1, t(0), &[("web", 1)], 0), low.clone()]);
    low.seq = 2;
    low.sent_at = t(10);
    // b: 1 used, half of the 10 free.
    assert_eq!(granted(h.on_report(low, t(10))).replicas, 6);
    // a: what b's grant leaves of 12.
    let ga = granted(h.on_report(report("a", 2, t(10), &[("web", 1)], 30), t(10)));
    assert_eq!((ga.budget, ga.replicas), (12, 12 - 6));
}

#[test]
fn an_instance_takes_only_grants_for_its_own_recent_reports() {
    let mut share = FleetShare::new("a", LEASE);
    let replicas: BTreeMap<Target, u32> = [(Target::new("web"), 3)].into();
    share.observe(&[Target::new("web")], t(0));
    let r = share.report(&replicas, &BTreeMap::new(), 20, t(1));
    assert_eq!((r.seq, r.used(), r.wanted), (1, 3, 0));
    let grant = |instance: &str, seq: u64, sent_at: Timestamp| Grant {
        instance: instance.into(),
        seq,
        sent_at,
        replicas: 9,
        lease_ms: 60_000,
        holder: "h".into(),
        budget: 20,
        fleet_used: 3,
        others_actions: BTreeMap::new(),
    };
    assert_eq!(
        share.accept(&grant("b", 1, t(1))),
        Err(GrantRefused::NotMine("b".into()))
    );
    assert_eq!(
        share.accept(&grant("a", 1, t(0))),
        Err(GrantRefused::UnknownReport {
            seq: 1,
            sent_at: t(0)
        })
    );
    assert_eq!(share.accept(&grant("a", 1, t(1))), Ok(()));
    // The lease is the shorter of the two, from the report's send time.
    assert_eq!(
        share.grant().map(|g| (g.replicas, g.until)),
        Some((9, t(11)))
    );
    assert_eq!(
        share.accept(&grant("a", 1, t(1))),
        Err(GrantRefused::Stale { seq: 1, held: 1 })
    );
    share.expire(t(10));
    assert!(share.grant().is_some());
    share.expire(t(11));
    assert!(share.grant().is_none());
    // A target without telemetry for a lease is no longer owned or reported.
    let r = share.report(&replicas, &BTreeMap::new(), 20, t(10));
    assert!(r.targets.is_empty(), "{r:?}");
}

const POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: shared, revision: s1}
spec:
  targets:
    - {name: web, kind: service}
    - {name: db, kind: service}
  agents:
    scaler: {mode: enforce}
  guardrails:
    defaults: {min_replicas: 1, max_replicas: 40, max_step: 10, cooldown: 0s, scale_down_stabilization: 0s}
    fleet_replica_budget: 20
"#;

fn decide_scale(
    state: &mut ArbiterState,
    target: &str,
    to: u32,
    at: Timestamp,
) -> crate::decision::Decision {
    let policy: Arc<Policy> = Arc::new(
        crate::policy::compile_str("shared.yaml", POLICY, &["scaler"]).expect("policy compiles"),
    );
    let p = scale_proposal(&format!("p-{target}-{}", at.as_millis()), target, to, at);
    let mut out = Arbiter::new(policy).decide(state, at, vec![p]);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// The scaler proposing `to` replicas for `target` at `at`.
fn scale_proposal(id: &str, target: &str, to: u32, at: Timestamp) -> Proposal {
    Proposal {
        id: id.into(),
        agent: "scaler".into(),
        target: Target::new(target),
        action: Action::Scale { replicas: to },
        confidence: Confidence::try_new(0.9).expect("valid"),
        rationale: Vec::new(),
        model: None,
        fallback: None,
        at,
        trace: None,
        inference: None,
        rule: None,
    }
}

#[test]
fn the_budget_rule_uses_the_grant_over_the_targets_this_instance_owns() {
    let mut share = FleetShare::new("a", LEASE);
    share.observe(&[Target::new("web")], t(0));
    let mut state = ArbiterState::with_fleet_share(share);
    state.observe_replicas(Target::new("web"), 4);
    // db runs 15 elsewhere: this instance does not own it, so it is the holder's business.
    state.observe_replicas(Target::new("db"), 15);

    let d = decide_scale(&mut state, "web", 6, t(1));
    assert_eq!(d.outcome, Outcome::Rejected);
    assert_eq!(d.reason_codes(), vec![ReasonCode::ReplicaBudget]);
    assert_eq!(
        d.reasons[0].message,
        "fleet_replica_budget 20 is shared by the instances and this one holds no grant from the budget holder (none elected yet, warming up, or unreachable); adding 2 replicas waits for one"
    );
    // Demand is reported to the holder.
    assert_eq!(
        crate::fleet_budget::budget_shortfall(std::slice::from_ref(&d), state.all_replicas()),
        2
    );

    let share = state.fleet_share_mut().expect("shared");
    let r = share.report(
        &[(Target::new("web"), 4)].into(),
        &BTreeMap::new(),
        20,
        t(1),
    );
    share
        .accept(&Grant {
            instance: "a".into(),
            seq: r.seq,
            sent_at: r.sent_at,
            replicas: 7,
            lease_ms: 10_000,
            holder: "b".into(),
            budget: 20,
            fleet_used: 19,
            others_actions: BTreeMap::new(),
        })
        .expect("grant taken");
    let d = decide_scale(&mut state, "web", 9, t(2));
    assert_eq!(
        d.outcome,
        Outcome::Modified {
            from: Action::Scale { replicas: 9 },
            to: Action::Scale { replicas: 7 }
        }
    );
    assert_eq!(
        d.reasons[0].message,
        "this instance's targets run 4 of the 7 replicas granted by `b` from fleet_replica_budget 20; adding 5 would exceed it; limited to 7"
    );
    // Scaling down never needs a grant.
    state.fleet_share_mut().expect("shared").expire(t(30));
    let d = decide_scale(&mut state, "web", 3, t(31));
    assert_eq!(d.outcome, Outcome::Enacted);
}

/// One step of the property test's world.
#[derive(Debug, Clone)]
enum Step {
    /// Instance `i` reports (with this demand) and scales its targets up within its grant.
    Report { i: usize, wanted: u64 },
    /// Instance `i` dies (stops reporting; its targets keep running, and move to a live
    /// instance).
    Die { i: usize },
    /// Target `t` moves to instance `i` (Key_Shared handed its key over).
    Move { t: usize, i: usize },
    /// Time passes.
    Wait { secs: u64 },
    /// The other holder candidate becomes the active consumer.
    Failover,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..3usize, 0..12u64).prop_map(|(i, wanted)| Step::Report { i, wanted }),
        1 => (0..3usize).prop_map(|i| Step::Die { i }),
        1 => (0..6usize, 0..3usize).prop_map(|(t, i)| Step::Move { t, i }),
        3 => (1..8u64).prop_map(|secs| Step::Wait { secs }),
        1 => Just(Step::Failover),
    ]
}

/// The property test's world: instances that own targets, report, take grants and scale.
struct World {
    targets: Vec<Target>,
    replicas: BTreeMap<Target, u32>,
    owner: Vec<usize>,
    dead: BTreeSet<usize>,
    shares: Vec<FleetShare>,
    known: Vec<BTreeSet<Target>>,
    /// Known to every instance (a pin reaches all of them through the control topic).
    pinned: BTreeSet<Target>,
    holders: [BudgetHolder; 2],
    active: usize,
    last_report: Vec<Timestamp>,
    now: Timestamp,
    sent: usize,
}

const WORLD_BUDGET: u32 = 30;

impl World {
    fn new() -> Self {
        let targets: Vec<Target> = (0..6).map(|n| Target::new(format!("t{n}"))).collect();
        World {
            replicas: targets.iter().map(|t| (t.clone(), 2)).collect(),
            pinned: [targets[0].clone()].into(),
            targets,
            owner: (0..6).map(|n| n % 3).collect(),
            dead: BTreeSet::new(),
            shares: ["i0", "i1", "i2"]
                .iter()
                .map(|n| FleetShare::new(*n, LEASE))
                .collect(),
            known: vec![BTreeSet::new(); 3],
            holders: [
                BudgetHolder::new("i0", LEASE),
                BudgetHolder::new("i1", LEASE),
            ],
            active: 0,
            last_report: vec![t(0); 3],
            now: t(0),
            sent: 0,
        }
    }

    fn mine(&self, i: usize) -> Vec<Target> {
        (0..6)
            .filter(|n| self.owner[*n] == i)
            .map(|n| self.targets[n].clone())
            .collect()
    }

    /// Instance `i` reports; the grant is lost when `lose`; with `scale`, it then scales its
    /// targets up as far as its grant allows.
    fn report(&mut self, i: usize, wanted: u64, lose: bool, scale: bool) {
        if self.dead.contains(&i) {
            return;
        }
        let now = self.now;
        let mine = self.mine(i);
        self.known[i].extend(mine.iter().cloned());
        let share = &mut self.shares[i];
        share.observe(&mine, now);
        share.expire(now);
        let view: BTreeMap<Target, u32> = self
            .replicas
            .iter()
            .filter(|(t, _)| self.known[i].contains(*t) || self.pinned.contains(*t))
            .map(|(t, r)| (t.clone(), *r))
            .collect();
        let mut r = share.report(&view, &BTreeMap::new(), WORLD_BUDGET, now);
        r.wanted = wanted;
        self.last_report[i] = now;
        self.sent += 1;
        if let Answer::Grant(g) = self.holders[self.active].on_report(r, now) {
            if !lose {
                let _ = share.accept(&g);
            }
        }
        if !scale {
            return;
        }
        if let Some(g) = share.grant().cloned() {
            for t in &mine {
                let room = g.replicas.saturating_sub(share.used(&self.replicas, now));
                let add = u32::try_from(room.min(5)).unwrap_or(0);
                *self.replicas.entry(t.clone()).or_default() += add;
            }
        }
    }

    /// Time passes a second at a time; live instances report every 2 s, as the runtime's
    /// reporter does (five times a lease).
    fn wait(&mut self, secs: u64) {
        for _ in 0..secs {
            self.now = self.now.plus(Duration::from_secs(1));
            for i in 0..3 {
                if self.now.since(self.last_report[i]) >= Duration::from_secs(2) {
                    self.report(i, 0, false, false);
                }
            }
        }
    }

    fn die(&mut self, i: usize) {
        self.dead.insert(i);
        if i < 2 && self.active == i {
            self.active = 1 - i;
        }
        // Key_Shared hands a dead consumer's keys to a live one, whose telemetry then names
        // them (a target whose telemetry stopped too would be forgotten by a new holder: see
        // the module's notes).
        if let Some(heir) = (0..3).find(|n| !self.dead.contains(n)) {
            for o in self.owner.iter_mut().filter(|o| **o == i) {
                *o = heir;
            }
        }
    }
}

proptest! {
    /// Three instances, six targets, budget 30, lease 10 s; instances 0 and 1 are holder
    /// candidates and the active one changes at random (and when it dies); only the active
    /// one hears reports. Grants travel instantly or are lost; an instance scales its
    /// owned targets up as far as its grant allows. The fleet never exceeds the budget.
    #[test]
    fn instances_that_enforce_their_grants_keep_the_fleet_within_budget(
        steps in proptest::collection::vec(step(), 1..120),
        lost in proptest::collection::vec(any::<bool>(), 120),
    ) {
        let mut w = World::new();
        // Every instance reports from its start, so the holder knows every target before
        // its warm-up ends (see the module's notes on targets nobody reported yet).
        for i in 0..3 {
            w.report(i, 0, false, false);
        }
        for (k, s) in steps.into_iter().enumerate() {
            match s {
                Step::Wait { secs } => w.wait(secs),
                Step::Die { i } => w.die(i),
                Step::Failover => if !w.dead.contains(&(1 - w.active)) { w.active = 1 - w.active },
                Step::Move { t, i } => if !w.dead.contains(&i) { w.owner[t] = i },
                Step::Report { i, wanted } => w.report(i, wanted, lost[k % lost.len()], true),
            }
            let total: u32 = w.replicas.values().sum();
            prop_assert!(total <= WORLD_BUDGET, "fleet at {total} after step {k}: {:?}", w.replicas);
        }
        prop_assert!(w.sent > 0);
    }
}

#[test]
fn a_grant_carries_what_the_other_instances_enacted_in_the_last_hour() {
    let acts = |list: &[(&str, &[u64])]| -> BTreeMap<String, Vec<Timestamp>> {
        list.iter()
            .map(|(agent, at)| (agent.to_string(), at.iter().map(|s| t(*s)).collect()))
            .collect()
    };
    let mut a = report("a", 1, t(0), &[("web", 2)], 0);
    a.actions = acts(&[("scaler", &[0, 5])]);
    let mut b = report("b", 1, t(0), &[("db", 2)], 0);
    b.actions = acts(&[("scaler", &[8]), ("breaker", &[9])]);
    let mut h = warm(&[a.clone(), b.clone()]);
    let ga = granted(h.on_report(a.clone(), t(10)));
    assert_eq!(
        ga.others_actions,
        BTreeMap::from([("breaker".to_string(), 1), ("scaler".to_string(), 1)])
    );
    let gb = granted(h.on_report(b.clone(), t(10)));
    assert_eq!(
        gb.others_actions,
        BTreeMap::from([("scaler".to_string(), 2)])
    );
    // An hour after a's first action only its second counts; a is silent by then, and
    // what it enacted still counts for the hour.
    b.sent_at = t(3603);
    for s in (15..=3600).step_by(5) {
        let mut r = b.clone();
        r.sent_at = t(s);
        h.on_report(r, t(s));
    }
    let gb = granted(h.on_report(b, t(3603)));
    assert_eq!(
        gb.others_actions,
        BTreeMap::from([("scaler".to_string(), 1)])
    );
}

const ACTIONS_POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: shared-actions, revision: s1}
spec:
  targets:
    - {name: web, kind: service}
    - {name: db, kind: service}
  agents:
    scaler: {mode: enforce}
  guardrails:
    defaults: {min_replicas: 1, max_replicas: 40, max_step: 10, cooldown: 0s, scale_down_stabilization: 0s}
    max_actions_per_hour: 3
"#;

#[test]
fn the_action_budget_counts_what_the_other_instances_enacted() {
    let policy: Arc<Policy> = Arc::new(
        crate::policy::compile_str("shared.yaml", ACTIONS_POLICY, &["scaler"])
            .expect("policy compiles"),
    );
    let arbiter = Arbiter::new(policy);
    let propose = scale_proposal;
    let mut share = FleetShare::new("a", LEASE);
    share.observe(&[Target::new("web"), Target::new("db")], t(0));
    let mut state = ArbiterState::with_fleet_share(share);
    state.observe_replicas(Target::new("web"), 4);
    state.observe_replicas(Target::new("db"), 4);
    // One action here.
    let d = arbiter.decide(&mut state, t(1), vec![propose("p1", "web", 5, t(1))]);
    assert_eq!(d[0].outcome, Outcome::Enacted);
    // A grant saying the others enacted 2 of the scaler's 3 this hour.
    let replicas = state.all_replicas().clone();
    let share = state.fleet_share_mut().expect("shared");
    let r = share.report(&replicas, &BTreeMap::new(), 20, t(2));
    share
        .accept(&Grant {
            instance: "a".into(),
            seq: r.seq,
            sent_at: r.sent_at,
            replicas: 1000,
            lease_ms: 10_000,
            holder: "b".into(),
            budget: 1000,
            fleet_used: 0,
            others_actions: BTreeMap::from([("scaler".to_string(), 2)]),
        })
        .expect("grant taken");
    let d = arbiter.decide(&mut state, t(3), vec![propose("p2", "db", 5, t(3))]);
    assert_eq!(d[0].outcome, Outcome::Rejected);
    assert_eq!(
        d[0].reasons[0].message,
        "agent `scaler` has had 3 actions enacted in the last hour across the instances (1 here, 2 elsewhere); max_actions_per_hour is 3"
    );
    // Without a grant in force, only this instance's own count is known.
    state.fleet_share_mut().expect("shared").expire(t(20));
    let d = arbiter.decide(&mut state, t(21), vec![propose("p3", "db", 5, t(21))]);
    assert_eq!(d[0].outcome, Outcome::Enacted);
}
