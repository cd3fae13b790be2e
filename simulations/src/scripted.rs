//! A scripted run of the arbiter on the simulated clock: a load ramp, a latency spike with
//! conflicting proposals, a large scale-up that waits for approval, a freeze during an
//! incident, and a PII finding. Every decision and override goes to the audit log.
//!
//! The proposals are written by hand, standing in for the agents until they land (#3).

use std::sync::Arc;
use std::time::Duration;

use conclave_runtime::audit::{AuditError, AuditRecord, AuditWriter};
use conclave_runtime::{
    Action, Actor, Arbiter, ArbiterState, Clock, Confidence, Decision, Factor, Fraction, Override,
    OverrideKind, Policy, Proposal, QuarantineScope, Role, SimClock, Target, Timestamp,
};

/// What a scripted run produced.
#[derive(Debug)]
pub struct ScriptedRun {
    /// Every decision, in the order made.
    pub decisions: Vec<Decision>,
    /// Overrides refused, with why.
    pub refused: Vec<String>,
}

enum Step {
    Observe(&'static str, u32),
    Propose(Vec<Proposal>),
    Override(Override),
    Wait(Duration),
}

fn proposal(
    id: &str,
    agent: &str,
    target: &str,
    action: Action,
    confidence: f64,
    why: &[(&str, f64)],
    at: Timestamp,
) -> Proposal {
    Proposal {
        id: id.to_string(),
        agent: agent.to_string(),
        target: Target::new(target),
        action,
        confidence: Confidence::try_new(confidence).unwrap_or(Confidence::ZERO),
        rationale: why
            .iter()
            .map(|(n, v)| Factor {
                name: (*n).to_string(),
                value: *v,
                note: None,
            })
            .collect(),
        model: None,
        fallback: None,
        at,
        trace: None,
        inference: None,
        rule: None,
    }
}

fn human(
    id: &str,
    kind: OverrideKind,
    name: &str,
    role: Role,
    reason: &str,
    at: Timestamp,
) -> Override {
    Override {
        id: id.into(),
        kind,
        by: Actor {
            name: name.into(),
            role,
        },
        reason: reason.into(),
        at,
        until: None,
    }
}

fn script(start: Timestamp) -> Vec<Step> {
    let at = |mins: u64| start.plus(Duration::from_secs(mins * 60));
    let shed = |f: f64| Action::Shed {
        fraction: Fraction::try_new(f).unwrap_or(Fraction::ZERO),
    };
    vec![
        Step::Observe("storefront", 6),
        Step::Observe("checkout", 8),
        Step::Observe("payments", 6),
        // 10:00 morning ramp: the scaler asks for more storefront capacity, twice.
        Step::Propose(vec![proposal(
            "ramp-1",
            "scaler",
            "storefront",
            Action::Scale { replicas: 9 },
            0.92,
            &[("rate_in_rps", 840.0), ("target_rps_per_replica", 100.0)],
            at(0),
        )]),
        Step::Wait(Duration::from_secs(90)),
        Step::Propose(vec![proposal(
            "ramp-2",
            "scaler",
            "storefront",
            Action::Scale { replicas: 24 },
            0.88,
            &[("rate_in_rps", 2300.0), ("target_rps_per_replica", 100.0)],
            at(2),
        )]),
        // 10:05 payments slows: the breaker sheds checkout while the scaler wants it smaller.
        Step::Wait(Duration::from_secs(180)),
        Step::Propose(vec![
            proposal(
                "spike-s",
                "scaler",
                "checkout",
                Action::Scale { replicas: 5 },
                0.7,
                &[("cpu", 0.31)],
                at(5),
            ),
            proposal(
                "spike-b",
                "breaker",
                "checkout",
                shed(0.25),
                0.81,
                &[("payments_latency_p99_ms", 2400.0), ("error_rate", 0.12)],
                at(5),
            ),
            proposal(
                "spike-r",
                "router",
                "checkout",
                Action::Route {
                    weights: [
                        ("eu-central".to_string(), 0.8),
                        ("eu-west".to_string(), 0.2),
                    ]
                    .into(),
                },
                0.6,
                &[("eu_west_latency_p99_ms", 1900.0)],
                at(5),
            ),
        ]),
        // 10:08 a large checkout scale-up needs an operator; a viewer's attempt is refused.
        Step::Wait(Duration::from_secs(180)),
        Step::Propose(vec![proposal(
            "big-1",
            "scaler",
            "checkout",
            Action::Scale { replicas: 14 },
            0.9,
            &[("forecast_p90_rps", 1400.0)],
            at(8),
        )]),
        Step::Wait(Duration::from_secs(60)),
        Step::Override(human(
            "ov-1",
            OverrideKind::Approve {
                decision: "d-big-1".into(),
            },
            "victor",
            Role::Viewer,
            "looks fine",
            at(9),
        )),
        Step::Override(human(
            "ov-2",
            OverrideKind::Approve {
                decision: "d-big-1".into(),
            },
            "alice",
            Role::Operator,
            "flash sale at 10:15",
            at(9),
        )),
        // 10:12 incident: everything is frozen; a scale proposal is held; then unfrozen.
        Step::Wait(Duration::from_secs(180)),
        Step::Override(human(
            "ov-3",
            OverrideKind::Freeze,
            "alice",
            Role::Operator,
            "incident INC-4711",
            at(12),
        )),
        Step::Propose(vec![proposal(
            "frozen-1",
            "scaler",
            "storefront",
            Action::Scale { replicas: 20 },
            0.9,
            &[("rate_in_rps", 1800.0)],
            at(12),
        )]),
        Step::Wait(Duration::from_secs(300)),
        Step::Override(human(
            "ov-4",
            OverrideKind::Unfreeze,
            "alice",
            Role::Operator,
            "INC-4711 resolved",
            at(17),
        )),
        // 10:18 a card number shows up in the orders topic; compliance runs in shadow here.
        Step::Propose(vec![proposal(
            "pii-1",
            "compliance",
            "orders",
            Action::Quarantine {
                scope: QuarantineScope::Producer("batch-import".into()),
                reason: "card number (Luhn valid) in payload.note".into(),
            },
            0.99,
            &[("luhn_valid_fields", 1.0)],
            at(17),
        )]),
    ]
}

/// Runs the script under `policy` from `start`, appending every decision and override to
/// `audit`.
///
/// # Errors
/// [`AuditError`] when the audit log cannot be written; decisions are not dropped silently.
pub fn run_scripted(
    policy: Arc<Policy>,
    start: Timestamp,
    audit: &mut AuditWriter,
) -> Result<ScriptedRun, AuditError> {
    let clock = SimClock::new(start);
    let arbiter = Arbiter::new(policy);
    let mut state = ArbiterState::new();
    let mut run = ScriptedRun {
        decisions: Vec::new(),
        refused: Vec::new(),
    };
    for step in script(start) {
        let decided = match step {
            Step::Observe(target, replicas) => {
                state.observe_replicas(Target::new(target), replicas);
                Vec::new()
            }
            Step::Wait(d) => {
                clock.advance(d);
                arbiter.expire(&mut state, clock.now())
            }
            Step::Propose(mut ps) => {
                for p in &mut ps {
                    p.at = clock.now();
                }
                arbiter.decide(&mut state, clock.now(), ps)
            }
            Step::Override(mut o) => {
                o.at = clock.now();
                match arbiter.apply_override(&mut state, o.clone(), clock.now()) {
                    Ok(ds) => {
                        audit.append(&AuditRecord::Override(o))?;
                        ds
                    }
                    Err(e) => {
                        run.refused.push(e.to_string());
                        Vec::new()
                    }
                }
            }
        };
        for d in decided {
            audit.append(&AuditRecord::Decision(d.clone()))?;
            run.decisions.push(d);
        }
    }
    audit.sync()?;
    Ok(run)
}
