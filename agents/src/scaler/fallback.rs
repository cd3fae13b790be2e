//! The scaler's rule: the Kubernetes Horizontal Pod Autoscaler algorithm with `behavior`,
//! as in `pkg/controller/podautoscaler/horizontal.go` (`stabilizeRecommendationWithBehaviors`,
//! `convertDesiredReplicasWithBehaviorRate`, `calculateScaleUpLimitWithScalingRules`,
//! `calculateScaleDownLimitWithBehaviors`), plus a cold-start hold.
//!
//! Order, as in HPA's `reconcileAutoscaler`: a replica count outside the policy's bounds is
//! brought inside first, with no behaviors; otherwise the metric gives a raw
//! recommendation (tolerance applied), stabilization picks from recent recommendations,
//! the cold-start hold may keep a scale-up back, and the rate limits and bounds cap it.

use std::time::Duration;

use conclave_runtime::{factor, Confidence, Factor, Timestamp};

use super::config::{Metric, PolicyKind, ScalerConfig, ScalingRules, SelectPolicy};
use super::features::{Reading, TargetWindow, Timed};
use crate::learned::noted;

/// Slack for comparisons on ratios computed in floating point: `4 × (1.4 / 0.7)` must not
/// become 9 and `0.77 / 0.7` must stay inside a 0.1 tolerance because a division rounded
/// up in the last bit (HPA mostly avoids this by working in integer milli-units).
const FLOAT_SLACK: f64 = 1e-9;

/// The policy's replica bounds for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
}

/// What the metric alone asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricRecommendation {
    /// Desired replicas (the current count when within tolerance).
    pub replicas: u32,
    /// Usage ratio: value / target, or total / (target × replicas) for per-replica
    /// metrics (infinite with zero replicas and some load).
    pub ratio: f64,
}

/// HPA's replica calculation. For utilization-style metrics (`cpu`, `latency_p99_ms`)
/// desired = ceil(current × value / target); for `AverageValue`-style metrics (`rate_in`,
/// `backlog`, as KEDA's Pulsar scaler) desired = ceil(total / target). Either way nothing
/// changes while `|ratio - 1| <= tolerance`.
pub fn metric_recommendation(
    metric: Metric,
    value: f64,
    target: f64,
    current: u32,
    tolerance: f64,
) -> MetricRecommendation {
    let current_f = f64::from(current);
    let (ratio, desired) = if metric.is_per_replica() {
        (value / (target * current_f), value / target)
    } else {
        let ratio = value / target;
        (ratio, ratio * current_f)
    };
    // With zero replicas and zero load the ratio is 0/0: nothing to do.
    if ratio.is_nan() || (ratio - 1.0).abs() <= tolerance + FLOAT_SLACK {
        return MetricRecommendation {
            replicas: current,
            ratio,
        };
    }
    MetricRecommendation {
        replicas: ceil_replicas(desired),
        ratio,
    }
}

fn ceil_replicas(x: f64) -> u32 {
    // `as` saturates: a runaway ratio asks for u32::MAX, which the bounds then cap.
    (x - FLOAT_SLACK).ceil().max(0.0) as u32
}

/// HPA's stabilization: the result is the current count brought into
/// `[lowest recommendation within the scale-up window, highest within the scale-down
/// window]` (both windows include `desired`). Records `desired` at `now`.
///
/// On the first evaluation of a target, as HPA's `maybeInitScaleDownStabilizationWindow`,
/// the history is seeded with the current count when the scale-down window is non-zero, so
/// a restarted agent does not scale down before it has a window of its own evidence.
pub fn stabilize(
    history: &mut Option<Vec<Timed>>,
    now: Timestamp,
    desired: u32,
    current: u32,
    up: &ScalingRules,
    down: &ScalingRules,
) -> u32 {
    let history = history.get_or_insert_with(|| {
        if down.stabilization() > Duration::ZERO {
            vec![Timed {
                at: now,
                replicas: current,
            }]
        } else {
            Vec::new()
        }
    });
    let up_cutoff = now.minus(up.stabilization());
    let down_cutoff = now.minus(down.stabilization());
    let mut up_rec = desired;
    let mut down_rec = desired;
    for rec in history.iter() {
        if rec.at > up_cutoff {
            up_rec = up_rec.min(rec.replicas);
        }
        if rec.at > down_cutoff {
            down_rec = down_rec.max(rec.replicas);
        }
    }
    // A recommendation inside neither window never will be again: the cutoffs only move on.
    let oldest_useful = up_cutoff.min(down_cutoff);
    history.retain(|r| r.at > oldest_useful);
    history.push(Timed {
        at: now,
        replicas: desired,
    });
    current.max(up_rec).min(down_rec)
}

/// Why a recommendation was capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// HPA `ScaleUpLimit`: the scale-up policies allow no more this period.
    ScaleUpRate,
    /// HPA `TooManyReplicas`: the policy's `max_replicas`.
    MaxReplicas,
    /// HPA `ScaleDownLimit`: the scale-down policies allow no fewer this period.
    ScaleDownRate,
    /// HPA `TooFewReplicas`: the policy's `min_replicas`.
    MinReplicas,
}

impl Limit {
    /// The name used in rationales.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::ScaleUpRate => "scale_up_rate",
            Limit::MaxReplicas => "max_replicas",
            Limit::ScaleDownRate => "scale_down_rate",
            Limit::MinReplicas => "min_replicas",
        }
    }
}

/// Replicas changed by events strictly after `now - period`.
fn changed_within(events: &[Timed], now: Timestamp, period: Duration) -> i64 {
    let cutoff = now.minus(period);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| i64::from(e.replicas))
        .sum()
}

/// The replica count at the start of a policy's period: now, undoing the scale-ups and
/// scale-downs seen within it.
fn at_period_start(
    current: i64,
    ups: &[Timed],
    downs: &[Timed],
    now: Timestamp,
    period: Duration,
) -> i64 {
    current - changed_within(ups, now, period) + changed_within(downs, now, period)
}

/// HPA's `calculateScaleUpLimitWithScalingRules`: the most replicas the scale-up policies
/// allow now, each policy measured from the replica count at the start of its period.
pub fn scale_up_limit(
    current: u32,
    ups: &[Timed],
    downs: &[Timed],
    rules: &ScalingRules,
    now: Timestamp,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select() {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    fold_policies(
        current,
        ups,
        downs,
        rules,
        now,
        pick,
        |start, kind, value| match kind {
            PolicyKind::Pods => start + value,
            // Rounded up, as HPA, or a small target could never grow by a percentage.
            PolicyKind::Percent => {
                (start * (100 + value)).div_euclid(100)
                    + i64::from((start * (100 + value)).rem_euclid(100) != 0)
            }
        },
    )
}

/// Each policy's limit from the replica count at the start of its period, combined with
/// `pick`; `current` when there is no policy.
fn fold_policies(
    current: u32,
    ups: &[Timed],
    downs: &[Timed],
    rules: &ScalingRules,
    now: Timestamp,
    pick: fn(i64, i64) -> i64,
    limit: impl Fn(i64, PolicyKind, i64) -> i64,
) -> i64 {
    let current = i64::from(current);
    rules
        .policies()
        .iter()
        .map(|p| {
            let start = at_period_start(current, ups, downs, now, p.period());
            limit(start, p.kind(), i64::from(p.value()))
        })
        .reduce(pick)
        .unwrap_or(current)
}

/// HPA's `calculateScaleDownLimitWithBehaviors`: the fewest replicas the scale-down
/// policies allow now, each policy measured from the replica count at the start of its
/// period.
pub fn scale_down_limit(
    current: u32,
    ups: &[Timed],
    downs: &[Timed],
    rules: &ScalingRules,
    now: Timestamp,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select() {
        SelectPolicy::Disabled => return i64::from(current),
        // The smallest change is the highest floor.
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    fold_policies(
        current,
        ups,
        downs,
        rules,
        now,
        pick,
        |start, kind, value| match kind {
            PolicyKind::Pods => start - value,
            // Truncated toward zero, as HPA's int32 conversion.
            PolicyKind::Percent => start * (100 - value) / 100,
        },
    )
}

/// HPA's `convertDesiredReplicasWithBehaviorRate`: caps `desired` by the rate limits of
/// its direction and by the bounds, and says which cap applied.
pub fn limit_rate(
    desired: u32,
    current: u32,
    bounds: Bounds,
    window: &TargetWindow,
    config: &ScalerConfig,
    now: Timestamp,
) -> (u32, Option<Limit>) {
    let (ups, downs) = (window.scale_ups(), window.scale_downs());
    if desired > current {
        // Below current means earlier scale-ups used the budget: hold, never shrink here.
        let limit =
            scale_up_limit(current, ups, downs, config.scale_up(), now).max(i64::from(current));
        let (allowed, why) = if i64::from(bounds.max) > limit {
            (limit, Limit::ScaleUpRate)
        } else {
            (i64::from(bounds.max), Limit::MaxReplicas)
        };
        if i64::from(desired) > allowed {
            return (to_replicas(allowed), Some(why));
        }
    } else if desired < current {
        let limit =
            scale_down_limit(current, ups, downs, config.scale_down(), now).min(i64::from(current));
        let (allowed, why) = if i64::from(bounds.min) < limit {
            (limit, Limit::ScaleDownRate)
        } else {
            (i64::from(bounds.min), Limit::MinReplicas)
        };
        if i64::from(desired) < allowed {
            return (to_replicas(allowed), Some(why));
        }
    }
    (desired, None)
}

fn to_replicas(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The rule's answer for one target at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Replicas to run (equal to the current count when nothing should change).
    pub replicas: u32,
    /// How sure the rule is; see [`confidence`].
    pub confidence: Confidence,
    /// Why, for the proposal's rationale.
    pub factors: Vec<Factor>,
}

/// Confidence of a metric-driven change: 0.5 at the edge of the tolerance band, rising
/// linearly to 1.0 at twice the tolerance from a ratio of 1, and 1.0 beyond. A change
/// just outside the band rests on a reading that the next sample may well undo; one far
/// outside it does not. Without a band (tolerance 0) or with an infinite ratio (load on
/// zero replicas) the rule is sure.
pub fn confidence(ratio: f64, tolerance: f64) -> Confidence {
    if !ratio.is_finite() || tolerance <= 0.0 {
        return Confidence::ONE;
    }
    let beyond = ((ratio - 1.0).abs() - tolerance) / tolerance;
    Confidence::saturating(0.5 + 0.5 * beyond.clamp(0.0, 1.0))
}

/// Runs the whole rule for the target whose window is `window`, on its newest `reading`.
pub fn recommend(
    config: &ScalerConfig,
    window: &mut TargetWindow,
    reading: Reading,
    now: Timestamp,
    bounds: Bounds,
) -> Recommendation {
    let current = reading.replicas;
    let mut factors = vec![
        factor(config.metric().as_str(), reading.value),
        factor("target", config.target()),
        factor("current_replicas", f64::from(current)),
    ];
    // As HPA: a count outside the bounds is corrected first, without behaviors.
    if current > bounds.max || current < bounds.min {
        let (replicas, limit) = if current > bounds.max {
            (bounds.max, Limit::MaxReplicas)
        } else {
            (bounds.min, Limit::MinReplicas)
        };
        factors.push(noted(
            "limit",
            f64::from(replicas),
            &format!(
                "{}: current replicas outside the policy's bounds",
                limit.as_str()
            ),
        ));
        return Recommendation {
            replicas,
            confidence: Confidence::ONE,
            factors,
        };
    }

    let m = metric_recommendation(
        config.metric(),
        reading.value,
        config.target(),
        current,
        config.tolerance(),
    );
    if m.ratio.is_finite() {
        factors.push(factor("ratio", m.ratio));
    }
    factors.push(factor("metric_replicas", f64::from(m.replicas)));
    let stabilized = stabilize(
        window.recommendations_mut(),
        now,
        m.replicas,
        current,
        config.scale_up(),
        config.scale_down(),
    );
    factors.push(factor("stabilized_replicas", f64::from(stabilized)));

    let mut wanted = stabilized;
    if stabilized > current {
        if let Some(hold) = window.cold_start_at(now) {
            // New replicas are not serving yet, so the metric still shows the load the
            // last scale-up answered. Asking again would double-count it. Only a metric
            // worse than when that scale-up was seen is new evidence.
            if reading.value <= hold.reference {
                wanted = current;
                factors.push(noted(
                    "cold_start_remaining_s",
                    hold.until.since(now).as_secs_f64(),
                    "scale-up held: new replicas still starting, metric not worse than at the last scale-up",
                ));
            } else {
                factors.push(noted(
                    "cold_start_reference",
                    hold.reference,
                    "metric worse than at the last scale-up: cold-start hold lifted",
                ));
            }
        }
    }

    let (replicas, limit) = limit_rate(wanted, current, bounds, window, config, now);
    if let Some(limit) = limit {
        factors.push(noted("limit", f64::from(replicas), limit.as_str()));
    }
    Recommendation {
        replicas,
        confidence: confidence(m.ratio, config.tolerance()),
        factors,
    }
}

#[cfg(test)]
#[path = "fallback_tests.rs"]
mod tests;
