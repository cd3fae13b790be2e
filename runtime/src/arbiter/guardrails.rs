//! Guardrails: cooldown, replica bounds, step size, scale-down stabilization, shed limit.
//! Each either clamps the action (with a reason) or rejects it, as the policy says.

use super::candidate::Candidate;
use super::state::ArbiterState;
use crate::action::Action;
use crate::clock::Timestamp;
use crate::decision::{Reason, ReasonCode};
use crate::policy::{OnViolation, Policy};
use crate::units::Fraction;

fn fmt_duration(d: std::time::Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

pub(crate) fn apply(policy: &Policy, state: &ArbiterState, now: Timestamp, c: &mut Candidate) {
    let target = c.proposal.target.clone();
    let limits = policy.limits_for(&target);
    let kind = c.action.kind();
    let clamp = limits.on_violation == OnViolation::Clamp;

    // Cooldown damps flapping capacity and routing changes: scale and route only. It never
    // holds back a protective action (shed, quarantine), nor any breaker transition: the
    // breaker's own state machine times those (wait in open, probes), and a refused
    // transition leaves the breaker stuck — the agent does not propose it again.
    if matches!(
        kind,
        crate::action::ActionKind::Scale | crate::action::ActionKind::Route
    ) {
        if let Some(last) = state.last_acted(&target, kind) {
            let until = last.plus(limits.cooldown);
            if now < until {
                c.reject(Reason::new(
                    ReasonCode::Cooldown,
                    format!(
                        "last {} on `{target}` was at {last}; cooldown {} lasts until {until}",
                        kind.as_str(),
                        fmt_duration(limits.cooldown)
                    ),
                ));
                return;
            }
        }
    }

    match c.action.clone() {
        Action::Scale { replicas: proposed } => {
            let mut desired = proposed;
            if desired < limits.min_replicas {
                let msg = format!(
                    "{desired} replicas is below min_replicas {}",
                    limits.min_replicas
                );
                if !clamp {
                    return c.reject(Reason::new(ReasonCode::BelowMin, msg));
                }
                c.reasons.push(Reason::new(
                    ReasonCode::BelowMin,
                    format!("{msg}; raised to {}", limits.min_replicas),
                ));
                desired = limits.min_replicas;
            }
            if desired > limits.max_replicas {
                let msg = format!(
                    "{desired} replicas is above max_replicas {}",
                    limits.max_replicas
                );
                if !clamp {
                    return c.reject(Reason::new(ReasonCode::AboveMax, msg));
                }
                c.reasons.push(Reason::new(
                    ReasonCode::AboveMax,
                    format!("{msg}; lowered to {}", limits.max_replicas),
                ));
                desired = limits.max_replicas;
            }
            c.recommendation = Some(desired);
            if let Some(current) = state.replicas(&target) {
                if desired.abs_diff(current) > limits.max_step {
                    let msg = format!(
                        "a step from {current} to {desired} replicas exceeds max_step {}",
                        limits.max_step
                    );
                    if !clamp {
                        return c.reject(Reason::new(ReasonCode::StepLimited, msg));
                    }
                    let stepped = if desired > current {
                        current.saturating_add(limits.max_step)
                    } else {
                        current.saturating_sub(limits.max_step)
                    };
                    // Bounds win over the step limit, so a target outside its bounds (after
                    // a policy change) is brought back inside in one decision.
                    let stepped = stepped.clamp(limits.min_replicas, limits.max_replicas);
                    c.reasons.push(Reason::new(
                        ReasonCode::StepLimited,
                        format!("{msg}; limited to {stepped}"),
                    ));
                    desired = stepped;
                }
                if desired < current {
                    let window = limits.scale_down_stabilization;
                    let since = now.minus(window);
                    let highest = state
                        .recommendations
                        .get(&target)
                        .into_iter()
                        .flatten()
                        .filter(|(t, _)| *t > since)
                        .map(|(_, r)| *r)
                        .max()
                        .unwrap_or(desired);
                    let floor = highest.min(current);
                    if floor > desired {
                        c.reasons.push(Reason::new(
                            ReasonCode::Stabilized,
                            format!(
                                "scale-down to {desired} held at {floor}: the highest recommendation in the last {} was {highest}",
                                fmt_duration(window)
                            ),
                        ));
                        desired = floor;
                    }
                }
                if desired == current {
                    return c.reject(Reason::new(
                        ReasonCode::NoChange,
                        format!("`{target}` already runs {current} replicas"),
                    ));
                }
            }
            c.action = Action::Scale { replicas: desired };
        }
        Action::Shed { fraction } => {
            let max = limits.max_shed_fraction;
            if fraction.get() > max.get() {
                let msg = format!("shedding {fraction} exceeds max_shed_fraction {max}");
                if !clamp {
                    return c.reject(Reason::new(ReasonCode::ShedLimited, msg));
                }
                c.reasons.push(Reason::new(
                    ReasonCode::ShedLimited,
                    format!("{msg}; limited to {max}"),
                ));
                c.action = Action::Shed { fraction: max };
            }
            if c.action
                == (Action::Shed {
                    fraction: Fraction::ZERO,
                })
                && fraction.get() > 0.0
            {
                c.reject(Reason::new(
                    ReasonCode::ShedLimited,
                    "max_shed_fraction is 0: shedding is not allowed",
                ));
            }
        }
        Action::Route { weights } => {
            let valid = !weights.is_empty()
                && weights.values().all(|w| w.is_finite() && *w >= 0.0)
                && weights.values().any(|w| *w > 0.0);
            if !valid {
                c.reject(Reason::new(
                    ReasonCode::InvalidAction,
                    "route weights must be finite, non-negative and not all zero",
                ));
            }
        }
        Action::Breaker { .. } | Action::Quarantine { .. } | Action::Alert { .. } => {}
    }
}
