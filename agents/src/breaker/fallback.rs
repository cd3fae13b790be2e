//! The breaker's rules: the resilience4j state machine over estimated call counts, and the
//! load-shedding rule over recent load samples. They always run; the risk model (`risk`)
//! can only open a breaker these rules hold closed.
//!
//! The agent cannot see whether the arbiter enacted a proposal, so [`Position`] and the
//! shed fraction are the state the agent last *proposed*, not the state in force.

use conclave_runtime::{factor, BreakerState, Factor, Timestamp};

use super::config::{BreakerConfig, ShedConfig};
use super::features::{CallCounts, CallWindow, LoadSample, View};

/// Where the agent believes a service's breaker is, and since when. Like resilience4j,
/// each transition starts counting afresh: calls before `since` are not judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    /// Calls flow; rates are judged over the sliding window.
    Closed { since: Timestamp },
    /// No calls flow until `wait_in_open` has passed.
    Open { since: Timestamp },
    /// Probe calls flow; judged once `permitted_calls_in_half_open` calls were seen.
    HalfOpen { since: Timestamp },
}

/// A state change to propose.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Transition {
    pub(super) to: BreakerState,
    pub(super) rationale: Vec<Factor>,
}

/// Advances `position` at tick `now`, returning the transition to propose, if any.
///
/// * closed → open: over `(max(now - window, since), now]`, at least
///   `minimum_number_of_calls` calls and a failure or slow-call rate at or above its
///   threshold;
/// * open → half-open: `wait_in_open` after opening (judged on tick time, so up to one
///   decision window late);
/// * half-open → closed or open: once `permitted_calls_in_half_open` calls were counted
///   since entering half-open, closed when both rates are under their thresholds, open
///   otherwise. Without probe traffic the breaker stays half-open (resilience4j's
///   `maxWaitDurationInHalfOpenState` default of 0 means the same).
pub(super) fn step(
    position: &mut Position,
    calls: &CallWindow,
    now: Timestamp,
    config: &BreakerConfig,
) -> Option<Transition> {
    let (next, rationale) = match *position {
        Position::Closed { since } => {
            let from = now.minus(config.window).max(since);
            let (counts, view) = calls.count(from, now);
            if !has_at_least(&counts, config.minimum_number_of_calls)
                || !is_failing(&counts, config)
            {
                return None;
            }
            let mut r = rates(&counts, view, config);
            r.push(factor(
                "minimum_number_of_calls",
                config.minimum_number_of_calls as f64,
            ));
            (Position::Open { since: now }, r)
        }
        Position::Open { since } => {
            let open_for = now.since(since);
            if open_for < config.wait_in_open {
                return None;
            }
            (
                Position::HalfOpen { since: now },
                vec![
                    factor("open_for_s", open_for.as_secs_f64()),
                    factor("wait_in_open_s", config.wait_in_open.as_secs_f64()),
                ],
            )
        }
        Position::HalfOpen { since } => {
            let (counts, view) = calls.count(since, now);
            if !has_at_least(&counts, config.permitted_calls_in_half_open) {
                return None;
            }
            let mut r = rates(&counts, view, config);
            r.push(factor(
                "permitted_calls_in_half_open",
                config.permitted_calls_in_half_open as f64,
            ));
            if is_failing(&counts, config) {
                (Position::Open { since: now }, r)
            } else {
                (Position::Closed { since: now }, r)
            }
        }
    };
    *position = next;
    Some(Transition {
        to: match next {
            Position::Closed { .. } => BreakerState::Closed,
            Position::Open { .. } => BreakerState::Open,
            Position::HalfOpen { .. } => BreakerState::HalfOpen,
        },
        rationale,
    })
}

/// Whether the (estimated, fractional) call count reaches `n`; the tolerance keeps
/// `10/s * 10 s` from missing 100 by float rounding.
pub(super) fn has_at_least(counts: &CallCounts, n: u64) -> bool {
    counts.calls + 1e-6 >= n as f64
}

/// Either rate at or above its threshold, as in resilience4j.
fn is_failing(counts: &CallCounts, config: &BreakerConfig) -> bool {
    counts.failure_rate_pct() >= config.failure_rate_threshold
        || counts.slow_call_rate_pct() >= config.slow_call_rate_threshold
}

pub(super) fn rates(counts: &CallCounts, view: View, config: &BreakerConfig) -> Vec<Factor> {
    vec![
        factor("failure_rate_pct", round2(counts.failure_rate_pct())),
        factor("slow_call_rate_pct", round2(counts.slow_call_rate_pct())),
        factor("calls", counts.calls.round()),
        factor("failure_rate_threshold_pct", config.failure_rate_threshold),
        factor(
            "slow_call_rate_threshold_pct",
            config.slow_call_rate_threshold,
        ),
        factor(
            "callers_view",
            match view {
                View::Callers => 1.0,
                View::Own => 0.0,
            },
        ),
    ]
}

/// Two decimals: enough for a rationale or a shed fraction, and stable across float noise.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A smaller change than this to the proposed shed fraction is not worth a proposal.
const SHED_CHANGE_STEP: f64 = 0.05;

/// A shed fraction to propose.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ShedChange {
    pub(super) fraction: f64,
    pub(super) rationale: Vec<Factor>,
}

/// The shedding rule over the last `samples` load samples (oldest first), given the
/// fraction last proposed (`current`, 0 when not shedding).
///
/// * Overloaded when the backlog rose at every sample and the latest p99 is above the
///   `latency_p99_ms` SLO, or when every sample has `rate_in > rate_out * (1 +
///   rate_margin)`. The fraction is then `1 - rate_out / rate_in` of the latest sample,
///   at least `min_fraction` (a latency-only overload has no rate gap yet) and at most
///   `max_fraction`, to two decimals.
/// * Recovered when the backlog never rose, no p99 was above the SLO and no sample had the
///   rate gap: shedding stops with a fraction of 0.
///
/// Whether `rate_in` counts work before or after an enacted shed is not known to the
/// agent, so while shedding it only raises the fraction (by at least 5 points) and never
/// lowers it until recovery; otherwise a shed that works would look like a smaller
/// overload and be wound down into flapping.
pub(super) fn shed_step(
    current: f64,
    samples: &[LoadSample],
    config: &ShedConfig,
) -> Option<ShedChange> {
    let (first, latest) = (samples.first()?, samples.last()?);
    let has_gap = |s: &LoadSample| s.rate_in > s.rate_out * (1.0 + config.rate_margin);
    let above_slo = |s: &LoadSample| {
        config
            .latency_p99_ms
            .is_some_and(|slo| s.latency_p99_ms > slo)
    };
    let backlog_rising = samples.windows(2).all(|w| w[1].backlog > w[0].backlog);
    let backlog_rose = samples.windows(2).any(|w| w[1].backlog > w[0].backlog);
    let overloaded = (backlog_rising && above_slo(latest)) || samples.iter().all(has_gap);
    let recovered = !backlog_rose && !samples.iter().any(above_slo) && !samples.iter().any(has_gap);

    let deficit = if latest.rate_in > 0.0 {
        (1.0 - latest.rate_out / latest.rate_in).max(0.0)
    } else {
        0.0
    };
    let fraction = if overloaded {
        let wanted = round2(deficit.max(config.min_fraction)).min(config.max_fraction);
        let is_change = if current == 0.0 {
            true
        } else {
            wanted >= current + SHED_CHANGE_STEP
        };
        if !is_change {
            return None;
        }
        wanted
    } else if recovered && current > 0.0 {
        0.0
    } else {
        return None;
    };
    let mut rationale = vec![
        factor("rate_in", latest.rate_in),
        factor("rate_out", latest.rate_out),
        factor("rate_deficit", round2(deficit)),
        factor("backlog", latest.backlog as f64),
        factor(
            "backlog_growth",
            latest.backlog as f64 - first.backlog as f64,
        ),
        factor("latency_p99_ms", latest.latency_p99_ms),
    ];
    if let Some(slo) = config.latency_p99_ms {
        rationale.push(factor("latency_p99_slo_ms", slo));
    }
    Some(ShedChange {
        fraction,
        rationale,
    })
}
