//! Synthetic load: a base rate shaped by a daily cycle, a weekend dip, a linear trend and
//! multiplicative noise, and flash crowds (which trace replays use too).

use std::f64::consts::TAU;

use conclave_runtime::Timestamp;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Check;

const SECONDS_PER_DAY: f64 = 86_400.0;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Peak hour when a spec gives a daily amplitude but no `peak_hour`: mid-afternoon, where
/// the business-hours traces (NASA-HTTP, the app-server cluster) peak.
const DEFAULT_PEAK_HOUR: f64 = 14.0;

/// Noise bucket when a spec gives none: one minute, Prometheus's default scrape interval,
/// so each metrics sample sees a fresh draw.
const DEFAULT_NOISE_BUCKET_S: f64 = 60.0;

/// A synthetic load, as written in a scenario. Only `base_rate_per_s` is required; every
/// other effect is off when omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// Mean arrivals per second, before any effect.
    pub base_rate_per_s: f64,
    /// Daily cycle: the rate swings by ± this share of itself, `0..=1` (default 0).
    pub diurnal_amplitude: Option<f64>,
    /// Hour of the daily peak on the scenario clock (UTC), `0..24` (default 14).
    pub peak_hour: Option<f64>,
    /// Weekend dip: Saturdays and Sundays (UTC) run at `1 - weekly_amplitude` of the
    /// weekday rate, `0..=1` (default 0). Real traces: NASA-HTTP weekends run at about
    /// half of weekdays.
    pub weekly_amplitude: Option<f64>,
    /// Linear trend: the rate grows by this share of the base rate per day since the
    /// scenario start (negative shrinks it; the rate stops at 0), default 0.
    pub trend_per_day: Option<f64>,
    /// Noise: relative standard deviation of a log-normal factor with mean 1, `0..=2`
    /// (default 0, no noise).
    pub noise_sd: Option<f64>,
    /// Noise: one draw per bucket of this many seconds, held for the bucket (default 60).
    pub noise_bucket_s: Option<f64>,
    /// Flash crowds.
    pub flash_crowds: Option<Vec<FlashCrowdSpec>>,
}

/// A flash crowd, as written: the rate is multiplied by `multiplier` from `at_s` for
/// `duration_s`, ramping linearly up over the first `ramp_s` and down over the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCrowdSpec {
    /// Start, in seconds since the scenario start.
    pub at_s: f64,
    /// Length of the whole window, ramps included, in seconds.
    pub duration_s: f64,
    /// The factor at full strength (below 1 makes a dip).
    pub multiplier: f64,
    /// Ramp up at the start and down at the end, seconds each, at most half the window
    /// (default 0: a step).
    pub ramp_s: Option<f64>,
}

/// A checked [`FlashCrowdSpec`].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FlashCrowd {
    start_s: f64,
    end_s: f64,
    multiplier: f64,
    ramp_s: f64,
}

impl FlashCrowd {
    pub(super) fn compile(spec: &FlashCrowdSpec, check: &mut Check, at: &str) -> FlashCrowd {
        let ramp_s = spec.ramp_s.unwrap_or(0.0);
        check.range(
            at,
            "at_s",
            spec.at_s,
            spec.at_s >= 0.0,
            "a start of at least 0 seconds",
        );
        check.range(
            at,
            "duration_s",
            spec.duration_s,
            spec.duration_s > 0.0,
            "a duration above 0 seconds",
        );
        check.range(
            at,
            "multiplier",
            spec.multiplier,
            spec.multiplier >= 0.0,
            "a multiplier of at least 0",
        );
        check.range(
            at,
            "ramp_s",
            ramp_s,
            ramp_s >= 0.0,
            "a ramp of at least 0 seconds",
        );
        if ramp_s.is_finite() && spec.duration_s.is_finite() && ramp_s * 2.0 > spec.duration_s {
            check.ramp_too_long(&format!("{at}.ramp_s"), spec.duration_s / 2.0, ramp_s);
        }
        FlashCrowd {
            start_s: spec.at_s,
            end_s: spec.at_s + spec.duration_s,
            multiplier: spec.multiplier,
            ramp_s,
        }
    }

    /// The factor at `t_s` seconds since the scenario start: 1 outside `[start, end)`.
    pub(super) fn factor(&self, t_s: f64) -> f64 {
        if !(self.start_s..self.end_s).contains(&t_s) {
            return 1.0;
        }
        let strength = if self.ramp_s > 0.0 {
            ((t_s - self.start_s) / self.ramp_s)
                .min((self.end_s - t_s) / self.ramp_s)
                .min(1.0)
        } else {
            1.0
        };
        1.0 + (self.multiplier - 1.0) * strength
    }
}

/// A checked [`SyntheticSpec`], anchored to the scenario start.
#[derive(Debug, Clone)]
pub(super) struct Synthetic {
    base: f64,
    diurnal_amplitude: f64,
    peak_hour: f64,
    weekly_amplitude: f64,
    trend_per_day: f64,
    /// Seconds from the start of the scenario's first UTC day to the scenario start.
    start_second_of_day: f64,
    /// Days since 1970-01-01 (a Thursday) of the scenario's first day.
    start_day: i64,
    noise: Option<Noise>,
}

/// Log-normal noise with mean 1, one draw per bucket.
#[derive(Debug, Clone)]
struct Noise {
    sigma: f64,
    bucket_s: f64,
    /// Positioned per bucket before each draw, never advanced in place.
    rng: ChaCha8Rng,
}

impl Synthetic {
    pub(super) fn compile(
        spec: &SyntheticSpec,
        start: Timestamp,
        rng: ChaCha8Rng,
        check: &mut Check,
        at: &str,
    ) -> Synthetic {
        let diurnal_amplitude = spec.diurnal_amplitude.unwrap_or(0.0);
        let peak_hour = spec.peak_hour.unwrap_or(DEFAULT_PEAK_HOUR);
        let weekly_amplitude = spec.weekly_amplitude.unwrap_or(0.0);
        let trend_per_day = spec.trend_per_day.unwrap_or(0.0);
        let noise_sd = spec.noise_sd.unwrap_or(0.0);
        let noise_bucket_s = spec.noise_bucket_s.unwrap_or(DEFAULT_NOISE_BUCKET_S);
        check.range(
            at,
            "base_rate_per_s",
            spec.base_rate_per_s,
            spec.base_rate_per_s >= 0.0,
            "a rate of at least 0 per second",
        );
        check.range(
            at,
            "diurnal_amplitude",
            diurnal_amplitude,
            (0.0..=1.0).contains(&diurnal_amplitude),
            "a share in 0..=1",
        );
        check.range(
            at,
            "peak_hour",
            peak_hour,
            (0.0..24.0).contains(&peak_hour),
            "an hour in 0..24",
        );
        check.range(
            at,
            "weekly_amplitude",
            weekly_amplitude,
            (0.0..=1.0).contains(&weekly_amplitude),
            "a share in 0..=1",
        );
        check.range(
            at,
            "trend_per_day",
            trend_per_day,
            trend_per_day.is_finite(),
            "a finite share per day",
        );
        check.range(
            at,
            "noise_sd",
            noise_sd,
            (0.0..=2.0).contains(&noise_sd),
            "a relative standard deviation in 0..=2",
        );
        check.range(
            at,
            "noise_bucket_s",
            noise_bucket_s,
            noise_bucket_s > 0.0,
            "a bucket above 0 seconds",
        );
        let ms = start.as_millis();
        Synthetic {
            base: spec.base_rate_per_s,
            diurnal_amplitude,
            peak_hour,
            weekly_amplitude,
            trend_per_day,
            start_second_of_day: ms.rem_euclid(MILLIS_PER_DAY) as f64 / 1000.0,
            start_day: ms.div_euclid(MILLIS_PER_DAY),
            noise: (noise_sd > 0.0).then(|| Noise {
                // A log-normal with mean 1 and relative sd s has sigma² = ln(1 + s²).
                sigma: noise_sd.mul_add(noise_sd, 1.0).ln().sqrt(),
                bucket_s: noise_bucket_s,
                rng,
            }),
        }
    }

    /// The rate `t_s` seconds after the scenario start, before flash crowds.
    pub(super) fn rate_at(&self, t_s: f64) -> f64 {
        let since_midnight = self.start_second_of_day + t_s;
        let hour = since_midnight.rem_euclid(SECONDS_PER_DAY) / 3600.0;
        let diurnal = 1.0 + self.diurnal_amplitude * (TAU * (hour - self.peak_hour) / 24.0).cos();
        let day = self.start_day + (since_midnight / SECONDS_PER_DAY).floor() as i64;
        // 1970-01-01 was a Thursday: day 0 has weekday index 3 (Monday = 0).
        let is_weekend = (day + 3).rem_euclid(7) >= 5;
        let weekly = if is_weekend {
            1.0 - self.weekly_amplitude
        } else {
            1.0
        };
        let trend = (1.0 + self.trend_per_day * t_s / SECONDS_PER_DAY).max(0.0);
        let noise = self.noise.as_ref().map_or(1.0, |n| n.factor(t_s));
        self.base * diurnal * weekly * trend * noise
    }
}

impl Noise {
    /// The factor for the bucket holding `t_s`: a pure function of (stream, bucket), so
    /// the value does not depend on which times were asked for before.
    fn factor(&self, t_s: f64) -> f64 {
        let bucket = (t_s / self.bucket_s).floor().max(0.0) as u128;
        let mut rng = self.rng.clone();
        // Two u64 draws per bucket: four 32-bit words.
        rng.set_word_pos(bucket * 4);
        let z = standard_normal(rng.next_u64(), rng.next_u64());
        (self.sigma * z - self.sigma * self.sigma / 2.0).exp()
    }
}

/// Box–Muller: a standard normal from two uniform draws.
fn standard_normal(a: u64, b: u64) -> f64 {
    // 53 random bits each; `u1` in (0, 1] so its logarithm is finite.
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    let u1 = 1.0 - unit(a);
    let u2 = unit(b);
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}
