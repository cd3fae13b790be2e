//! The closed-form pieces of the fleet model: queueing delay in an M/M/c-like queue,
//! retries, and the share of calls a timeout cuts off. Pure functions of plain numbers, so
//! each is tested against its textbook values on its own.

use std::f64::consts::SQRT_2;

/// p99 over p50 of a service's own work when unloaded. Service times in a steady service
/// are narrow (a lognormal with σ ≈ 0.17 has this ratio); the wide tails seen in practice
/// come from queueing and dependencies, which the model adds on top.
pub(super) const OWN_P99_OVER_P50: f64 = 1.5;

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

/// Squared coefficient of variation of the service time, for the lognormal whose p99/p50 is
/// [`OWN_P99_OVER_P50`]: `exp(σ²) − 1` with `σ = ln(1.5) / z99`.
fn service_time_scv() -> f64 {
    let sigma = OWN_P99_OVER_P50.ln() / Z99;
    (sigma * sigma).exp_m1()
}

/// Highest utilization the waiting-time formula is evaluated at. At ρ = 1 the stationary
/// wait is infinite; past 0.99 the backlog term (queued work ÷ capacity) describes the
/// delay better than a steady state that is never reached.
pub(super) const RHO_MAX: f64 = 0.99;

/// The `quantile` of the time a request waits for a server, in milliseconds, with Poisson
/// arrivals at utilization `rho` of `capacity_rps` spread over `servers` parallel servers.
///
/// The probability of waiting at all is Sakasegawa's approximation of Erlang C,
/// `ρ^(√(2(c+1)) − 1)` (exact for c = 1). Given a wait, it is exponential with rate
/// `cμ − λ = capacity·(1 − ρ)`, as in M/M/c, scaled by the Allen–Cunneen factor
/// `(1 + c_s²)/2` for the narrower service times of [`OWN_P99_OVER_P50`]. So the
/// quantile is `ln(P_wait / (1 − q)) / (capacity·(1 − ρ))`, or zero when fewer than
/// `1 − q` of requests wait.
pub(super) fn wait_quantile_ms(rho: f64, servers: f64, capacity_rps: f64, quantile: f64) -> f64 {
    if !(rho > 0.0 && capacity_rps > 0.0) {
        return 0.0;
    }
    let rho = rho.min(RHO_MAX);
    let servers = servers.max(1.0);
    let p_wait = rho.powf((2.0 * (servers + 1.0)).sqrt() - 1.0);
    let tail = 1.0 - quantile;
    if p_wait <= tail {
        return 0.0;
    }
    let drain_per_ms = capacity_rps * (1.0 - rho) / 1000.0;
    (p_wait / tail).ln() / drain_per_ms * (1.0 + service_time_scv()) / 2.0
}

/// Expected attempts per call when each attempt fails with probability `p` and a call
/// makes at most `attempts`: `1 + p + … + p^(attempts−1)`.
pub(super) fn expected_attempts(p: f64, attempts: u32) -> f64 {
    let p = p.clamp(0.0, 1.0);
    if 1.0 - p < 1e-12 {
        return f64::from(attempts);
    }
    (1.0 - p.powi(attempts_exponent(attempts))) / (1.0 - p)
}

/// Attempts made by the call at the 99th percentile: the fewest `k` with
/// `P(more than k) = p^k ≤ 1 %`, at most `attempts`.
pub(super) fn p99_attempts(p: f64, attempts: u32) -> f64 {
    let most = f64::from(attempts.max(1));
    if p <= 0.0 {
        1.0
    } else if p >= 1.0 {
        most
    } else {
        // The epsilon keeps p = 0.01 at exactly one attempt despite rounding in the logs.
        ((0.01f64.ln() / p.ln()) - 1e-9).ceil().clamp(1.0, most)
    }
}

/// Probability that every one of `attempts` attempts fails: `p^attempts`.
pub(super) fn all_attempts_fail(p: f64, attempts: u32) -> f64 {
    p.clamp(0.0, 1.0).powi(attempts_exponent(attempts))
}

fn attempts_exponent(attempts: u32) -> i32 {
    // Attempts are checked to be at most 10 when the spec is compiled.
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

/// Share of calls slower than `threshold_ms`, for a latency distribution known by its p50
/// and p99: a lognormal through both (`σ = ln(p99/p50) / z99`). A zero p50 means calls
/// fail fast (a service that is down), so none are slow.
pub(super) fn share_slower_than(p50_ms: f64, p99_ms: f64, threshold_ms: f64) -> f64 {
    if p50_ms <= 0.0 {
        return 0.0;
    }
    if threshold_ms <= 0.0 {
        return 1.0;
    }
    let sigma = (p99_ms.max(p50_ms) / p50_ms).ln() / Z99;
    let log_ratio = (threshold_ms / p50_ms).ln();
    if sigma < 1e-9 {
        return if log_ratio < 0.0 { 1.0 } else { 0.0 };
    }
    (0.5 * erfc(log_ratio / sigma / SQRT_2)).clamp(0.0, 1.0)
}

/// The complementary error function, Abramowitz & Stegun 7.1.26 (absolute error below
/// 1.5e-7, ample for a share of calls).
fn erfc(x: f64) -> f64 {
    const P: f64 = 0.327_591_1;
    const A: [f64; 5] = [
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    ];
    let z = x.abs();
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let upper = poly * (-z * z).exp();
    if x >= 0.0 {
        upper
    } else {
        2.0 - upper
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn erfc_matches_reference_values() {
        // erfc from tables (Abramowitz & Stegun, table 7.1).
        const CASES: &[(f64, f64)] = &[
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ];
        for &(x, want) in CASES {
            assert!(close(erfc(x), want, 2e-7), "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn single_server_wait_is_mm1_scaled_by_allen_cunneen() {
        // M/M/1 at ρ = 0.5, μ = 100/s: P(wait) = 0.5, waits ~ Exp(50/s); the p99 is
        // ln(0.5/0.01)/50 s = 78.2 ms, times (1 + c_s²)/2.
        let want = (50.0f64).ln() / 50.0 * 1000.0 * (1.0 + service_time_scv()) / 2.0;
        let got = wait_quantile_ms(0.5, 1.0, 100.0, 0.99);
        assert!(close(got, want, 1e-9), "got {got}, want {want}");
        // Half the requests wait: the median waits nothing.
        assert_eq!(wait_quantile_ms(0.5, 1.0, 100.0, 0.5), 0.0);
    }

    #[test]
    fn wait_grows_sharply_towards_saturation_and_shrinks_with_servers() {
        let at = |rho| wait_quantile_ms(rho, 8.0, 800.0, 0.99);
        assert!(at(0.5) < at(0.8) && at(0.8) < at(0.95) && at(0.95) < at(0.99));
        assert!(at(0.99) > 20.0 * at(0.8), "{} vs {}", at(0.99), at(0.8));
        assert_eq!(at(2.0), at(RHO_MAX), "clamped past RHO_MAX");
        assert!(wait_quantile_ms(0.7, 50.0, 800.0, 0.99) < at(0.7));
        assert_eq!(wait_quantile_ms(0.0, 8.0, 800.0, 0.99), 0.0);
        assert_eq!(wait_quantile_ms(0.5, 8.0, 0.0, 0.99), 0.0);
    }

    #[test]
    fn retries_follow_the_geometric_series() {
        const CASES: &[(&str, f64, u32, f64, f64)] = &[
            // name, p, attempts, expected, p99 attempts
            ("healthy", 0.0, 3, 1.0, 1.0),
            ("no retries", 0.5, 1, 1.0, 1.0),
            ("half fail", 0.5, 3, 1.75, 3.0),
            ("one in ten", 0.1, 3, 1.11, 2.0),
            ("one in a hundred", 0.01, 3, 1.0101, 1.0),
            ("all fail", 1.0, 3, 3.0, 3.0),
        ];
        for &(name, p, attempts, mean, p99) in CASES {
            assert!(
                close(expected_attempts(p, attempts), mean, 1e-9),
                "{name}: expected {}",
                expected_attempts(p, attempts)
            );
            assert_eq!(p99_attempts(p, attempts), p99, "{name}: p99");
        }
        assert!(close(all_attempts_fail(0.5, 3), 0.125, 1e-12));
    }

    #[test]
    fn share_slower_than_follows_the_lognormal_through_p50_and_p99() {
        // At p50 half are slower, at p99 one in a hundred.
        assert!(close(share_slower_than(100.0, 300.0, 100.0), 0.5, 1e-7));
        assert!(close(share_slower_than(100.0, 300.0, 300.0), 0.01, 1e-6));
        assert!(share_slower_than(100.0, 300.0, 3000.0) < 1e-6);
        assert_eq!(share_slower_than(0.0, 0.0, 100.0), 0.0, "fail fast");
        assert_eq!(share_slower_than(100.0, 100.0, 99.0), 1.0, "no spread");
        assert_eq!(share_slower_than(100.0, 100.0, 101.0), 0.0, "no spread");
    }
}
