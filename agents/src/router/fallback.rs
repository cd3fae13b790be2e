//! The router's rule: least-loaded weights from latency, error and load EWMAs, with a
//! floor for every healthy backend, weight 0 for unhealthy or silent ones, and rounding to
//! thousandths that sum to exactly 1. With forecasts ([`route_weights_forecast`]) the same
//! formula runs on the model's forecast cost instead of the EWMAs.
//!
//! Score of a serving backend: `(1 - errors) / (latency_p99 × (1 + load / mean_load))`.
//! p99 rather than p50: a saturating backend shows it in its tail first (queueing), and a
//! request routed there risks that tail; the EWMA takes out p99's sample noise. The load
//! term (requests/s per replica, relative to the mean of the serving backends) leans
//! traffic away from the busier replicas before their latency shows it; it is relative so
//! the score has no units to tune.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use conclave_runtime::{Factor, Timestamp};

use super::features::BackendWindow;

/// Weights are proposed in thousandths.
const UNITS: u32 = 1000;
/// Latency below 1 ms is a measurement artefact (an idle backend reporting 0), and would
/// make the score infinite.
const MIN_LATENCY_MS: f64 = 1.0;
/// Slack for float comparisons of weights that are sums of thousandths.
const WEIGHT_SLACK: f64 = 1e-9;

/// Why a backend gets no traffic, or that it serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Availability {
    /// Reporting and healthy; its score.
    Serving(f64),
    /// Error-rate EWMA above `unhealthy_error_rate`.
    Unhealthy,
    /// No report for longer than `stale_after` (or never, once the route is warm).
    Silent,
    /// Reports zero replicas.
    NoReplicas,
}

/// What the rule needs besides the windows.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Least weight of every serving backend.
    pub floor: f64,
    /// Error-rate EWMA above which a backend is unhealthy.
    pub unhealthy_error_rate: f64,
    /// A backend silent for longer than this is down.
    pub stale_after: Duration,
}

/// The rule's answer for one route.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Some backend has never reported and the route's first report is younger than
    /// `stale_after`: too early to tell a slow starter from a dead one.
    WarmingUp,
    /// No backend can serve: every one is unhealthy, silent or without replicas. Moving
    /// traffic between failing backends helps nobody and would only churn the balancer,
    /// so the current weights stay and nothing is proposed.
    NoneServing,
    /// Weights for every backend, in thousandths summing to exactly 1000, with the
    /// rationale.
    Weights {
        /// Thousandths per backend.
        units: BTreeMap<String, u32>,
        /// Per-backend EWMAs and the reason for any weight of 0.
        factors: Vec<Factor>,
    },
}

/// Classifies one backend at `now`.
pub fn availability(
    window: Option<&BackendWindow>,
    now: Timestamp,
    mean_load: f64,
    rules: &Rules,
) -> Availability {
    let Some(w) = window else {
        return Availability::Silent;
    };
    if now.since(w.last_seen()) > rules.stale_after {
        Availability::Silent
    } else if w.replicas() == 0 {
        Availability::NoReplicas
    } else if w.error_rate() > rules.unhealthy_error_rate {
        Availability::Unhealthy
    } else {
        Availability::Serving(score(w, mean_load))
    }
}

/// The least-loaded score; higher gets more traffic.
pub fn score(w: &BackendWindow, mean_load: f64) -> f64 {
    (1.0 - w.error_rate()).max(0.0)
        / (w.latency_p99_ms().max(MIN_LATENCY_MS) * (1.0 + relative_load(w, mean_load)))
}

/// The score with a forecast: the forecast cost takes the place of `p99 / (1 - errors)`,
/// the load term stays.
pub fn forecast_score(w: &BackendWindow, mean_load: f64, cost_ms: f64) -> f64 {
    1.0 / (cost_ms.max(MIN_LATENCY_MS) * (1.0 + relative_load(w, mean_load)))
}

fn relative_load(w: &BackendWindow, mean_load: f64) -> f64 {
    if mean_load > 0.0 {
        w.load_per_replica() / mean_load
    } else {
        0.0
    }
}

/// Shares proportional to `scores`, then raised to `floor` where below it, taking the
/// difference proportionally from the others (repeated until no share is below the
/// floor). Shares sum to 1. If the floors alone exceed 1, or every score is 0, the shares
/// are equal.
pub fn spread(scores: &[f64], floor: f64) -> Vec<f64> {
    let n = scores.len();
    if n == 0 {
        return Vec::new();
    }
    // usize -> f64 is exact for any realistic backend count.
    let equal = 1.0 / n as f64;
    if floor * n as f64 >= 1.0 - WEIGHT_SLACK {
        return vec![equal; n];
    }
    let mut floored = vec![false; n];
    loop {
        let pinned = floored.iter().filter(|f| **f).count();
        let left = 1.0 - floor * pinned as f64;
        let total: f64 = (0..n).filter(|&i| !floored[i]).map(|i| scores[i]).sum();
        let free = n - pinned;
        let shares: Vec<f64> = (0..n)
            .map(|i| {
                if floored[i] {
                    floor
                } else if total > 0.0 {
                    left * scores[i] / total
                } else {
                    left / free as f64
                }
            })
            .collect();
        let mut changed = false;
        for i in 0..n {
            if !floored[i] && shares[i] < floor - WEIGHT_SLACK {
                floored[i] = true;
                changed = true;
            }
        }
        // Each pass pins at least one more share, and they cannot all be pinned because
        // the floors sum to less than 1; so this ends within `n` passes.
        if !changed {
            return shares;
        }
    }
}

/// Rounds shares (summing to 1) to thousandths summing to exactly 1000, by largest
/// remainder: every share is rounded down, then the units left go one each to the largest
/// remainders, ties to the earlier index (backends are in name order).
pub fn to_units(shares: &[f64]) -> Vec<u32> {
    let scaled: Vec<f64> = shares
        .iter()
        .map(|s| s * f64::from(UNITS) + WEIGHT_SLACK)
        .collect();
    // Shares are in 0..=1, so the floors fit in u32.
    let mut units: Vec<u32> = scaled.iter().map(|x| x.floor().max(0.0) as u32).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (scaled[a] - scaled[a].floor(), scaled[b] - scaled[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut sum: u32 = units.iter().sum();
    for &i in order.iter().cycle().take(shares.len() * 2) {
        if sum >= UNITS {
            break;
        }
        units[i] += 1;
        sum += 1;
    }
    // Slack could only push the total over when every share is already whole; take the
    // excess from the largest, first in name order.
    while sum > UNITS {
        let Some(i) = (0..units.len()).max_by(|&a, &b| units[a].cmp(&units[b]).then(b.cmp(&a)))
        else {
            break;
        };
        units[i] -= 1;
        sum -= 1;
    }
    units
}

fn noted(name: String, value: f64, note: Option<String>) -> Factor {
    Factor { name, value, note }
}

/// Runs the rule for one route over its `backends` (name order).
pub fn route_weights(
    backends: &BTreeSet<String>,
    windows: &BTreeMap<String, BackendWindow>,
    now: Timestamp,
    rules: &Rules,
) -> Outcome {
    weights(backends, windows, now, rules, None)
}

/// The rule's formula on forecasts: availability as the rule judges it (silent, no
/// replicas, unhealthy errors), then every serving backend scored by [`forecast_score`]
/// with its cost in `cost_ms` (every backend the rule serves must have one; a missing one
/// scores 0 rather than borrowing the rule's score).
pub fn route_weights_forecast(
    backends: &BTreeSet<String>,
    windows: &BTreeMap<String, BackendWindow>,
    now: Timestamp,
    rules: &Rules,
    cost_ms: &BTreeMap<String, f64>,
) -> Outcome {
    weights(backends, windows, now, rules, Some(cost_ms))
}

fn weights(
    backends: &BTreeSet<String>,
    windows: &BTreeMap<String, BackendWindow>,
    now: Timestamp,
    rules: &Rules,
    cost_ms: Option<&BTreeMap<String, f64>>,
) -> Outcome {
    let seen: Vec<&BackendWindow> = backends.iter().filter_map(|b| windows.get(b)).collect();
    if seen.len() < backends.len() {
        let first = seen.iter().map(|w| w.first_seen()).min();
        match first {
            Some(first) if now.since(first) > rules.stale_after => {}
            _ => return Outcome::WarmingUp,
        }
    }

    // Mean load over backends that would otherwise serve, so a silent or failing backend
    // does not skew the others' relative load.
    let candidates: Vec<&BackendWindow> = seen
        .iter()
        .copied()
        .filter(|w| {
            now.since(w.last_seen()) <= rules.stale_after
                && w.replicas() > 0
                && w.error_rate() <= rules.unhealthy_error_rate
        })
        .collect();
    let mean_load = if candidates.is_empty() {
        0.0
    } else {
        candidates.iter().map(|w| w.load_per_replica()).sum::<f64>() / candidates.len() as f64
    };

    let mut states: Vec<(&String, Availability)> = backends
        .iter()
        .map(|b| (b, availability(windows.get(b), now, mean_load, rules)))
        .collect();
    if let Some(cost_ms) = cost_ms {
        for (b, a) in &mut states {
            if let Availability::Serving(score) = a {
                *score = match (cost_ms.get(*b), windows.get(*b)) {
                    (Some(c), Some(w)) => forecast_score(w, mean_load, *c),
                    _ => 0.0,
                };
            }
        }
    }
    let serving: Vec<f64> = states
        .iter()
        .filter_map(|(_, a)| match a {
            Availability::Serving(s) => Some(*s),
            _ => None,
        })
        .collect();
    if serving.is_empty() {
        return Outcome::NoneServing;
    }
    // The floor in whole thousandths, so rounding cannot take a floored backend below it.
    let floor = (rules.floor * f64::from(UNITS) - WEIGHT_SLACK).ceil() / f64::from(UNITS);
    let mut serving_units = to_units(&spread(&serving, floor)).into_iter();

    let mut units = BTreeMap::new();
    let mut factors = Vec::new();
    for (name, state) in &states {
        let u = match state {
            Availability::Serving(_) => serving_units.next().unwrap_or(0),
            _ => 0,
        };
        units.insert((*name).clone(), u);
        let Some(w) = windows.get(*name) else {
            factors.push(noted(
                format!("{name}.reported"),
                0.0,
                Some("never reported: weight 0".into()),
            ));
            continue;
        };
        factors.push(noted(
            format!("{name}.latency_p99_ms_ewma"),
            w.latency_p99_ms(),
            None,
        ));
        let error_note = (*state == Availability::Unhealthy)
            .then(|| "above `unhealthy_error_rate`: weight 0".to_string());
        factors.push(noted(
            format!("{name}.error_rate_ewma"),
            w.error_rate(),
            error_note,
        ));
        factors.push(noted(
            format!("{name}.load_per_replica_ewma"),
            w.load_per_replica(),
            None,
        ));
        match state {
            Availability::Silent => factors.push(noted(
                format!("{name}.silent_s"),
                now.since(w.last_seen()).as_secs_f64(),
                Some("no metrics for longer than `stale_after`: weight 0".into()),
            )),
            Availability::NoReplicas => factors.push(noted(
                format!("{name}.replicas"),
                0.0,
                Some("no replicas: weight 0".into()),
            )),
            Availability::Serving(_) | Availability::Unhealthy => {}
        }
    }
    Outcome::Weights { units, factors }
}

/// Whether `next` differs enough from the last proposal to propose it: always when there
/// was none; when some weight moves by more than `min_change`; and when a backend starts
/// or stops getting traffic at all, however small its weight (draining a failing backend
/// must not wait for its floor share to exceed `min_change`).
pub fn warrants_change(
    last: Option<&BTreeMap<String, f64>>,
    next: &BTreeMap<String, f64>,
    min_change: f64,
) -> bool {
    let Some(last) = last else {
        return true;
    };
    let names: BTreeSet<&String> = last.keys().chain(next.keys()).collect();
    names.into_iter().any(|b| {
        let before = last.get(b).copied().unwrap_or(0.0);
        let after = next.get(b).copied().unwrap_or(0.0);
        (after - before).abs() > min_change + WEIGHT_SLACK || ((before > 0.0) != (after > 0.0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn spread_is_proportional_above_the_floor() {
        let cases: &[(&str, &[f64], f64, &[f64])] = &[
            ("proportional", &[3.0, 1.0], 0.05, &[0.75, 0.25]),
            ("floor_lifts_the_weak", &[99.0, 1.0], 0.05, &[0.95, 0.05]),
            ("floor_cascades", &[100.0, 3.0, 1.0], 0.1, &[0.8, 0.1, 0.1]),
            ("all_zero_scores", &[0.0, 0.0], 0.05, &[0.5, 0.5]),
            ("floors_fill_everything", &[9.0, 1.0], 0.5, &[0.5, 0.5]),
            ("single", &[2.0], 0.05, &[1.0]),
        ];
        for (name, scores, floor, want) in cases {
            let got = spread(scores, *floor);
            assert!(close(&got, want), "case {name}: {got:?}");
        }
    }

    #[test]
    fn units_sum_to_exactly_one_thousand() {
        let cases: &[(&str, &[f64], &[u32])] = &[
            (
                "thirds_remainder_to_first",
                &[1.0 / 3.0; 3],
                &[334, 333, 333],
            ),
            (
                "largest_remainder_wins",
                &[0.1234, 0.4, 0.4766],
                &[123, 400, 477],
            ),
            ("exact", &[0.25, 0.75], &[250, 750]),
            (
                "sevenths",
                &[1.0 / 7.0; 7],
                &[143, 143, 143, 143, 143, 143, 142],
            ),
        ];
        for (name, shares, want) in cases {
            let got = to_units(shares);
            assert_eq!(&got, want, "case {name}");
            assert_eq!(got.iter().sum::<u32>(), 1000, "case {name}");
        }
    }

    #[test]
    fn change_is_warranted_by_size_or_by_draining() {
        let w = |a: f64, b: f64| BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        assert!(warrants_change(None, &w(0.5, 0.5), 0.05));
        assert!(!warrants_change(Some(&w(0.5, 0.5)), &w(0.54, 0.46), 0.05));
        assert!(
            !warrants_change(Some(&w(0.5, 0.5)), &w(0.55, 0.45), 0.05),
            "not more than"
        );
        assert!(warrants_change(Some(&w(0.5, 0.5)), &w(0.551, 0.449), 0.05));
        assert!(
            warrants_change(Some(&w(0.96, 0.04)), &w(1.0, 0.0), 0.05),
            "drained"
        );
    }
}
