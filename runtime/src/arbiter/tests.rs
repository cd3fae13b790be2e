//! The arbiter's rules, one table row each, plus property tests of its invariants.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::action::BreakerState;
use crate::decision::ReasonCode as R;
use crate::overrides::{Actor, Override, OverrideKind, Role};
use crate::target::Target;
use crate::units::{Confidence, Fraction};

const POLICY: &str = r#"
apiVersion: conclave/v1
kind: Policy
metadata: {name: table, revision: t1}
spec:
  targets:
    - {name: web, kind: service, labels: {tier: edge}}
    - {name: db, kind: service, labels: {tier: critical}}
    - {name: events, kind: topic}
  agents:
    scaler: {mode: enforce, targets: {names: [web, db]}}
    breaker: {mode: enforce}
    router: {mode: advise}
    compliance: {mode: shadow, when: "proposal.confidence >= 0.5"}
  guardrails:
    defaults: {min_replicas: 2, max_replicas: 20, max_step: 5, cooldown: 60s, scale_down_stabilization: 300s, max_shed_fraction: 0.3}
    per_target:
      - select: {labels: {tier: critical}}
        limits: {on_violation: reject}
    fleet_replica_budget: 30
    max_actions_per_hour: 3
  arbiter:
    priorities: [breaker, compliance, scaler, router]
  approvals:
    - name: db-breaker
      agents: [breaker]
      actions: [breaker]
      select: {names: [db]}
      approvers: {roles: [operator]}
      timeout: 5m
      on_timeout: reject
"#;

fn policy(yaml: &str) -> Arc<Policy> {
    Arc::new(
        crate::policy::compile_str(
            "table.yaml",
            yaml,
            &["breaker", "compliance", "router", "scaler"],
        )
        .expect("table policy compiles"),
    )
}

fn t(s: u64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + i64::try_from(s).unwrap_or(0) * 1000)
}

fn prop(id: &str, agent: &str, target: &str, action: Action) -> Proposal {
    Proposal {
        id: id.into(),
        agent: agent.into(),
        target: Target::new(target),
        action,
        confidence: Confidence::try_new(0.9).expect("valid"),
        rationale: Vec::new(),
        model: None,
        fallback: None,
        at: t(0),
        trace: None,
        inference: None,
        rule: None,
    }
}

fn scale(n: u32) -> Action {
    Action::Scale { replicas: n }
}

fn shed(f: f64) -> Action {
    Action::Shed {
        fraction: Fraction::try_new(f).expect("valid fraction"),
    }
}

fn ov(id: &str, kind: OverrideKind, role: Role) -> Override {
    Override {
        id: id.into(),
        kind,
        by: Actor {
            name: "ops".into(),
            role,
        },
        reason: "table".into(),
        at: t(0),
        until: None,
    }
}

/// (decision id, outcome name, final action, reason codes)
type Expected = (
    &'static str,
    &'static str,
    Option<fn() -> Action>,
    &'static [R],
);

struct Case {
    name: &'static str,
    /// Replicas observed before deciding.
    replicas: &'static [(&'static str, u32)],
    /// Overrides applied first.
    overrides: fn() -> Vec<Override>,
    proposals: fn() -> Vec<Proposal>,
    expect: &'static [Expected],
}

fn none() -> Vec<Override> {
    Vec::new()
}

const CASES: &[Case] = &[
    Case {
        name: "within_limits_enacted",
        replicas: &[("web", 4)],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "web", scale(6))],
        expect: &[("d-p", "enacted", Some(|| scale(6)), &[R::Enacted])],
    },
    Case {
        name: "above_max_clamped",
        replicas: &[("web", 18)],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "web", scale(25))],
        expect: &[(
            "d-p",
            "modified",
            Some(|| scale(20)),
            &[R::AboveMax, R::Enacted],
        )],
    },
    Case {
        name: "below_min_rejected_where_policy_rejects",
        replicas: &[("db", 4)],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "db", scale(1))],
        expect: &[("d-p", "rejected", None, &[R::BelowMin])],
    },
    Case {
        name: "step_limited",
        replicas: &[("web", 4)],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "web", scale(15))],
        expect: &[(
            "d-p",
            "modified",
            Some(|| scale(9)),
            &[R::StepLimited, R::Enacted],
        )],
    },
    Case {
        name: "no_change_rejected",
        replicas: &[("web", 4)],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "web", scale(4))],
        expect: &[("d-p", "rejected", None, &[R::NoChange])],
    },
    Case {
        name: "shed_clamped",
        replicas: &[],
        overrides: none,
        proposals: || vec![prop("p", "breaker", "web", shed(0.9))],
        expect: &[(
            "d-p",
            "modified",
            Some(|| shed(0.3)),
            &[R::ShedLimited, R::Enacted],
        )],
    },
    Case {
        name: "invalid_route_rejected",
        replicas: &[],
        overrides: none,
        proposals: || {
            vec![prop(
                "p",
                "router",
                "web",
                Action::Route {
                    weights: [("a".to_string(), -1.0)].into(),
                },
            )]
        },
        expect: &[("d-p", "advised", None, &[R::ModeAdvise, R::InvalidAction])],
    },
    Case {
        name: "freeze_overrides",
        replicas: &[("web", 4)],
        overrides: || vec![ov("f", OverrideKind::Freeze, Role::Operator)],
        proposals: || vec![prop("p", "scaler", "web", scale(6))],
        expect: &[("d-p", "overridden", None, &[R::Frozen])],
    },
    Case {
        name: "pause_overrides_only_that_agent",
        replicas: &[("web", 4)],
        overrides: || {
            vec![ov(
                "pz",
                OverrideKind::Pause {
                    agent: "scaler".into(),
                },
                Role::Operator,
            )]
        },
        proposals: || {
            vec![
                prop("p", "scaler", "web", scale(6)),
                prop("q", "breaker", "events", shed(0.1)),
            ]
        },
        expect: &[
            ("d-q", "enacted", Some(|| shed(0.1)), &[R::Enacted]),
            ("d-p", "overridden", None, &[R::AgentPaused]),
        ],
    },
    Case {
        name: "pin_enacts_and_overrides_scaling",
        replicas: &[("web", 4)],
        overrides: || {
            vec![ov(
                "pin",
                OverrideKind::Pin {
                    target: Target::new("web"),
                    replicas: 7,
                },
                Role::Operator,
            )]
        },
        proposals: || vec![prop("p", "scaler", "web", scale(6))],
        expect: &[
            (
                "d-pin",
                "enacted",
                Some(|| scale(7)),
                &[R::TargetPinned, R::Enacted],
            ),
            ("d-p", "overridden", None, &[R::TargetPinned]),
        ],
    },
    Case {
        name: "agent_not_configured_is_off",
        replicas: &[],
        overrides: none,
        proposals: || vec![prop("p", "janitor", "web", scale(6))],
        expect: &[("d-p", "rejected", None, &[R::ModeOff])],
    },
    Case {
        name: "target_not_selected",
        replicas: &[],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "events", scale(6))],
        expect: &[("d-p", "rejected", None, &[R::TargetNotSelected])],
    },
    Case {
        name: "shadow_when_condition_false",
        replicas: &[],
        overrides: none,
        proposals: || {
            let mut p = prop(
                "p",
                "compliance",
                "events",
                Action::Alert {
                    severity: crate::action::Severity::Info,
                    text: "x".into(),
                },
            );
            p.confidence = Confidence::try_new(0.2).expect("valid");
            vec![p]
        },
        expect: &[(
            "d-p",
            "shadowed",
            None,
            &[R::ModeShadow, R::ConditionNotMet],
        )],
    },
    Case {
        name: "safer_action_wins_conflict",
        replicas: &[("web", 10)],
        overrides: none,
        proposals: || {
            vec![
                prop("s", "scaler", "web", scale(7)),
                prop(
                    "b",
                    "breaker",
                    "web",
                    Action::Breaker {
                        state: BreakerState::Open,
                    },
                ),
            ]
        },
        expect: &[
            (
                "d-b",
                "enacted",
                Some(|| Action::Breaker {
                    state: BreakerState::Open,
                }),
                &[R::ConflictWon, R::Enacted],
            ),
            ("d-s", "rejected", None, &[R::ConflictLost]),
        ],
    },
    Case {
        name: "alerts_never_conflict",
        replicas: &[("web", 10)],
        overrides: none,
        proposals: || {
            vec![
                prop("s", "scaler", "web", scale(12)),
                prop(
                    "a",
                    "breaker",
                    "web",
                    Action::Alert {
                        severity: crate::action::Severity::Warning,
                        text: "slow".into(),
                    },
                ),
            ]
        },
        expect: &[
            (
                "d-a",
                "enacted",
                Some(|| Action::Alert {
                    severity: crate::action::Severity::Warning,
                    text: "slow".into(),
                }),
                &[R::Enacted],
            ),
            ("d-s", "enacted", Some(|| scale(12)), &[R::Enacted]),
        ],
    },
    Case {
        name: "shadow_would_lose_to_enforcing",
        replicas: &[("web", 10)],
        overrides: none,
        proposals: || {
            vec![
                prop("b", "breaker", "web", shed(0.1)),
                prop("c", "compliance", "web", scale(7)),
            ]
        },
        expect: &[
            ("d-b", "enacted", Some(|| shed(0.1)), &[R::Enacted]),
            ("d-c", "shadowed", None, &[R::ModeShadow, R::ConflictLost]),
        ],
    },
    Case {
        name: "shadow_never_blocks_enforcing",
        replicas: &[("web", 10)],
        overrides: none,
        proposals: || {
            vec![
                prop("s", "scaler", "web", scale(7)),
                prop("c", "compliance", "web", shed(0.1)),
            ]
        },
        expect: &[
            ("d-s", "enacted", Some(|| scale(7)), &[R::Enacted]),
            (
                "d-c",
                "shadowed",
                Some(|| shed(0.1)),
                &[R::ModeShadow, R::ConflictWon],
            ),
        ],
    },
    Case {
        name: "approval_pending",
        replicas: &[],
        overrides: none,
        proposals: || {
            vec![prop(
                "b",
                "breaker",
                "db",
                Action::Breaker {
                    state: BreakerState::Open,
                },
            )]
        },
        expect: &[(
            "d-b",
            "pending",
            Some(|| Action::Breaker {
                state: BreakerState::Open,
            }),
            &[R::ApprovalRequired],
        )],
    },
    Case {
        name: "replica_budget_clamps",
        replicas: &[("web", 10), ("db", 18)],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "web", scale(14))],
        expect: &[(
            "d-p",
            "modified",
            Some(|| scale(12)),
            &[R::ReplicaBudget, R::Enacted],
        )],
    },
    Case {
        name: "replica_budget_rejects_where_policy_rejects",
        replicas: &[("web", 14), ("db", 16)],
        overrides: none,
        proposals: || vec![prop("p", "scaler", "db", scale(18))],
        expect: &[("d-p", "rejected", None, &[R::ReplicaBudget])],
    },
];

fn check(case: &Case) {
    let arbiter = Arbiter::new(policy(POLICY));
    let mut state = ArbiterState::new();
    for (target, r) in case.replicas {
        state.observe_replicas(Target::new(*target), *r);
    }
    let mut decisions = Vec::new();
    for o in (case.overrides)() {
        decisions.extend(
            arbiter
                .apply_override(&mut state, o, t(0))
                .unwrap_or_else(|e| panic!("{}: override refused: {e}", case.name)),
        );
    }
    decisions.extend(arbiter.decide(&mut state, t(0), (case.proposals)()));
    // Pin decisions come first (overrides), then proposals by target and id.
    let got: Vec<(String, &'static str, Option<Action>, Vec<R>)> = decisions
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                d.outcome.name(),
                d.action.clone(),
                d.reason_codes(),
            )
        })
        .collect();
    let want: Vec<(String, &'static str, Option<Action>, Vec<R>)> = case
        .expect
        .iter()
        .map(|(id, o, a, r)| (id.to_string(), *o, a.map(|f| f()), r.to_vec()))
        .collect();
    let sort = |mut v: Vec<(String, &'static str, Option<Action>, Vec<R>)>| {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        sort(got),
        sort(want),
        "case {}: decisions differ; reasons: {:#?}",
        case.name,
        decisions.iter().map(|d| &d.reasons).collect::<Vec<_>>()
    );
}

#[test]
fn table_of_rules() {
    for case in CASES {
        check(case);
    }
}

fn half_open() -> Action {
    Action::Breaker {
        state: BreakerState::HalfOpen,
    }
}

#[test]
fn cooldown_applies_to_scale_and_route_only() {
    let arbiter = Arbiter::new(policy(POLICY));
    let mut state = ArbiterState::new();
    let open = Action::Breaker {
        state: BreakerState::Open,
    };
    let half = Action::Breaker {
        state: BreakerState::HalfOpen,
    };
    let closed = Action::Breaker {
        state: BreakerState::Closed,
    };
    let d = arbiter.decide(
        &mut state,
        t(0),
        vec![prop("a", "breaker", "web", open.clone())],
    );
    assert_eq!(d[0].outcome, Outcome::Enacted);
    let d = arbiter.decide(&mut state, t(20), vec![prop("b", "breaker", "web", half)]);
    assert_eq!(d[0].outcome, Outcome::Enacted, "half-open within 60 s");
    let d = arbiter.decide(&mut state, t(40), vec![prop("c", "breaker", "web", open)]);
    assert_eq!(
        d[0].outcome,
        Outcome::Enacted,
        "re-open after a failed probe"
    );
    // (A fresh state each time: the table policy allows 3 actions per hour per agent.)
    let mut state = ArbiterState::new();
    arbiter.decide(
        &mut state,
        t(0),
        vec![prop("d", "breaker", "web", half_open())],
    );
    let d = arbiter.decide(&mut state, t(30), vec![prop("e", "breaker", "web", closed)]);
    assert_eq!(
        d[0].outcome,
        Outcome::Enacted,
        "closing after good probes: the breaker's own timing, not cooldown"
    );
    let mut state = ArbiterState::new();
    let shed = Action::Shed {
        fraction: Fraction::try_new(0.2).expect("valid"),
    };
    let d = arbiter.decide(
        &mut state,
        t(0),
        vec![prop("f", "breaker", "web", shed.clone())],
    );
    assert_eq!(d[0].outcome, Outcome::Enacted);
    let d = arbiter.decide(&mut state, t(1), vec![prop("g", "breaker", "web", shed)]);
    assert_eq!(
        d[0].outcome,
        Outcome::Enacted,
        "shedding is never cooled down"
    );
}

#[test]
fn cooldown_and_stabilization_across_windows() {
    let arbiter = Arbiter::new(policy(POLICY));
    let mut state = ArbiterState::new();
    state.observe_replicas(Target::new("web"), 10);
    let d = arbiter.decide(
        &mut state,
        t(0),
        vec![prop("a", "scaler", "web", scale(12))],
    );
    assert_eq!(d[0].outcome, Outcome::Enacted);
    let d = arbiter.decide(
        &mut state,
        t(30),
        vec![prop("b", "scaler", "web", scale(8))],
    );
    assert_eq!(
        d[0].reason_codes(),
        vec![R::Cooldown],
        "within 60 s cooldown"
    );
    let d = arbiter.decide(
        &mut state,
        t(90),
        vec![prop("c", "scaler", "web", scale(8))],
    );
    // 12 was recommended 90 s ago, inside the 300 s window: the scale-down stops at 12 = now.
    assert_eq!(d[0].reason_codes(), vec![R::Stabilized, R::NoChange]);
    let d = arbiter.decide(
        &mut state,
        t(400),
        vec![prop("e", "scaler", "web", scale(8))],
    );
    assert_eq!(
        (d[0].outcome.name(), d[0].action.clone()),
        ("enacted", Some(scale(8))),
        "{:?}",
        d[0].reasons
    );
}

#[test]
fn approve_veto_deny_and_timeout() {
    let arbiter = Arbiter::new(policy(POLICY));
    let open = || Action::Breaker {
        state: BreakerState::Open,
    };
    let mut state = ArbiterState::new();
    arbiter.decide(
        &mut state,
        t(0),
        vec![
            prop("a", "breaker", "db", open()),
            prop("b", "breaker", "db", open()),
        ],
    );
    assert_eq!(
        state.pending().count(),
        1,
        "the second open conflicts with the first and loses"
    );

    let viewer = ov(
        "v1",
        OverrideKind::Approve {
            decision: "d-a".into(),
        },
        Role::Viewer,
    );
    assert!(matches!(
        arbiter.apply_override(&mut state, viewer, t(1)),
        Err(OverrideError::NotPermitted { .. })
    ));
    let veto = ov(
        "v2",
        OverrideKind::Veto {
            decision: "d-a".into(),
        },
        Role::Operator,
    );
    let d = arbiter
        .apply_override(&mut state, veto, t(2))
        .expect("veto applies");
    assert_eq!(
        (d[0].outcome.clone(), d[0].reason_codes()),
        (
            Outcome::Overridden { by: "v2".into() },
            vec![R::ConflictWon, R::ApprovalRequired, R::Vetoed]
        )
    );
    let again = ov(
        "v3",
        OverrideKind::Approve {
            decision: "d-a".into(),
        },
        Role::Operator,
    );
    assert!(matches!(
        arbiter.apply_override(&mut state, again, t(3)),
        Err(OverrideError::NotPending { .. })
    ));

    arbiter.decide(&mut state, t(100), vec![prop("c", "breaker", "db", open())]);
    let d = arbiter.decide(&mut state, t(100 + 300), Vec::new());
    assert_eq!(
        (d[0].id.as_str(), d[0].outcome.name(), d[0].reason_codes()),
        (
            "d-c",
            "rejected",
            vec![R::ApprovalRequired, R::ApprovalTimedOut]
        )
    );
}

#[test]
fn action_budget_counts_enacted_actions_per_hour() {
    let arbiter = Arbiter::new(policy(POLICY));
    let mut state = ArbiterState::new();
    for (i, target) in ["a", "b", "c", "d"].iter().enumerate() {
        let d = arbiter.decide(
            &mut state,
            t(i as u64),
            vec![prop(target, "breaker", target, shed(0.1))],
        );
        let want = if i < 3 {
            vec![R::Enacted]
        } else {
            vec![R::ActionBudget]
        };
        assert_eq!(d[0].reason_codes(), want, "action {i}");
    }
    let d = arbiter.decide(
        &mut state,
        t(3700),
        vec![prop("e", "breaker", "e", shed(0.1))],
    );
    assert_eq!(
        d[0].reason_codes(),
        vec![R::Enacted],
        "budget renews after an hour"
    );
}

#[test]
fn override_checks() {
    let arbiter = Arbiter::new(policy(POLICY));
    let mut state = ArbiterState::new();
    let mut o = ov(
        "m",
        OverrideKind::SetMode {
            agent: "scaler".into(),
            mode: Mode::Off,
        },
        Role::Operator,
    );
    assert!(matches!(
        arbiter.apply_override(&mut state, o.clone(), t(0)),
        Err(OverrideError::NotPermitted { .. })
    ));
    o.by.role = Role::Admin;
    o.until = Some(t(0));
    assert!(matches!(
        arbiter.apply_override(&mut state, o.clone(), t(0)),
        Err(OverrideError::ExpiryInPast { .. })
    ));
    o.until = None;
    o.reason = " ".into();
    assert!(matches!(
        arbiter.apply_override(&mut state, o, t(0)),
        Err(OverrideError::MissingReason { .. })
    ));
    let pin = ov(
        "p",
        OverrideKind::Pin {
            target: Target::new("web"),
            replicas: 1,
        },
        Role::Operator,
    );
    let err = arbiter
        .apply_override(&mut state, pin, t(0))
        .expect_err("below min");
    assert_eq!(
        err.to_string(),
        "override `p`: pin of `web` to 1 replicas is outside its bounds 2..=20"
    );
}

fn limits_policy(min: u32, max: u32, step: u32) -> String {
    format!(
        "apiVersion: conclave/v1\nkind: Policy\nmetadata: {{name: prop}}\nspec:\n  agents:\n    scaler: {{mode: enforce}}\n    breaker: {{mode: enforce}}\n  guardrails:\n    defaults: {{min_replicas: {min}, max_replicas: {max}, max_step: {step}, cooldown: 0s}}\n"
    )
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0u32..200).prop_map(|r| Action::Scale { replicas: r }),
        (0.0f64..=1.0).prop_map(|f| Action::Shed {
            fraction: Fraction::try_new(f).expect("in range")
        }),
        Just(Action::Breaker {
            state: BreakerState::Open
        }),
        Just(Action::Breaker {
            state: BreakerState::Closed
        }),
    ]
}

fn arb_proposals() -> impl Strategy<Value = Vec<Proposal>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["scaler", "breaker"]),
            prop::sample::select(vec!["a", "b", "c"]),
            arb_action(),
            0.0f64..=1.0,
        ),
        0..12,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (agent, target, action, conf))| {
                let mut p = prop(&format!("p{i:02}"), agent, target, action);
                p.confidence = Confidence::try_new(conf).expect("in range");
                p
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn enacted_scaling_stays_within_guardrails(
        (min, max) in (0u32..20).prop_flat_map(|min| (Just(min), min.max(1)..60)),
        step in 1u32..20,
        current in prop::collection::vec(0u32..80, 3),
        proposals in arb_proposals(),
    ) {
        let arbiter = Arbiter::new(policy(&limits_policy(min, max, step)));
        let mut state = ArbiterState::new();
        for (t_name, r) in ["a", "b", "c"].iter().zip(&current) {
            state.observe_replicas(Target::new(*t_name), *r);
        }
        let before = state.clone();
        for d in arbiter.decide(&mut state, t(0), proposals) {
            if let (true, Some(Action::Scale { replicas })) = (d.outcome.is_acted_on(), &d.action) {
                prop_assert!(*replicas >= min && *replicas <= max, "{} outside {}..={}", replicas, min, max);
                let cur = before.replicas(&d.target).unwrap_or(0);
                if (min..=max).contains(&cur) {
                    prop_assert!(replicas.abs_diff(cur) <= step, "step {} -> {} exceeds {}", cur, replicas, step);
                }
            }
            if let (true, Some(Action::Shed { fraction })) = (d.outcome.is_acted_on(), &d.action) {
                prop_assert!(fraction.get() <= 0.5);
            }
        }
    }

    #[test]
    fn freeze_means_nothing_is_enacted(proposals in arb_proposals()) {
        let arbiter = Arbiter::new(policy(&limits_policy(1, 50, 10)));
        let mut state = ArbiterState::new();
        arbiter.apply_override(&mut state, ov("f", OverrideKind::Freeze, Role::Operator), t(0)).expect("freeze");
        let n = proposals.len();
        let decisions = arbiter.decide(&mut state, t(1), proposals);
        prop_assert_eq!(decisions.len(), n);
        for d in decisions {
            prop_assert!(!d.outcome.is_acted_on(), "{:?} was acted on under freeze", d.outcome);
            prop_assert_eq!(d.reason_codes(), vec![R::Frozen]);
        }
    }

    #[test]
    fn decisions_do_not_depend_on_arrival_order(proposals in arb_proposals(), seed in any::<u64>()) {
        let arbiter = Arbiter::new(policy(&limits_policy(1, 50, 10)));
        let mut shuffled = proposals.clone();
        // A deterministic shuffle from the seed (Fisher-Yates with an LCG).
        let mut x = seed;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        let mut s1 = ArbiterState::new();
        let mut s2 = ArbiterState::new();
        for s in [&mut s1, &mut s2] {
            s.observe_replicas(Target::new("a"), 5);
            s.observe_replicas(Target::new("b"), 9);
        }
        let a = arbiter.decide(&mut s1, t(0), proposals);
        let b = arbiter.decide(&mut s2, t(0), shuffled);
        prop_assert_eq!(a, b);
    }
}
