//! The scaler forecast model's feature vector, exactly as
//! `agents/training/conclave_training/scaler_features.py` defines it (the spec is
//! `agents/models/scaler.features.json`, also in the model's `metadata_props`).
//!
//! Notation: `r[i]` is the mean arrival rate (per second) of one target over 1-minute
//! bucket `i` (`[start + 60 i, start + 60 i + 60)`, buckets aligned to whole minutes of
//! the Unix epoch), `i = 0` the first bucket observed; `t` the last complete bucket at
//! decision time, so `now = start + 60 (t + 1)`. A minute without telemetry repeats the
//! previous minute's rate. Everything is computed in `f64` and each feature cast to
//! `f32` at the end.
//!
//! - [`ScalerSeries`] takes one rate per minute and gives the features at the last one.
//! - [`MinuteBuckets`] turns timestamped samples into those per-minute rates (the mean of
//!   the samples in each minute, gaps carried forward).
//! - [`ScalerFeatures`] is both together: what the scaler agent keeps per target.

use std::collections::VecDeque;
use std::f64::consts::PI;

use crate::clock::Timestamp;

/// Features per row.
pub const N_FEATURES: usize = 24;

/// Feature names, in column order (the model's `feature_names`).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "r_lag0",
    "r_lag1",
    "r_lag2",
    "r_lag5",
    "r_lag10",
    "r_lag15",
    "r_lag30",
    "r_lag60",
    "ewma_hl2",
    "ewma_hl30",
    "ewma_hl120",
    "ewma_hl720",
    "std30",
    "max60",
    "day_now",
    "day_ahead",
    "week_now",
    "week_ahead",
    "has_day",
    "has_week",
    "tod_sin",
    "tod_cos",
    "dow_sin",
    "dow_cos",
];

/// Length of a bucket, seconds.
pub const STEP_SECONDS: i64 = 60;
/// The forecast horizon: the model predicts bucket `t + HORIZON_MIN`.
pub const HORIZON_MIN: i64 = 10;
/// Half-life of the level `D` (the normaliser), minutes.
pub const LEVEL_HALF_LIFE_MIN: f64 = 10.0;
/// Floor of `D`, requests per second.
pub const LEVEL_FLOOR: f64 = 1e-3;
/// Ratio features are clipped to `[RATIO_MIN, RATIO_MAX]`.
pub const RATIO_MIN: f64 = 0.0;
/// See [`RATIO_MIN`].
pub const RATIO_MAX: f64 = 20.0;
const LAGS_MIN: [i64; 8] = [0, 1, 2, 5, 10, 15, 30, 60];
const EWMA_HALF_LIVES_MIN: [f64; 4] = [2.0, 30.0, 120.0, 720.0];
const STD_WINDOW_MIN: i64 = 30;
const MAX_WINDOW_MIN: i64 = 60;
const DAY_MIN: i64 = 1440;
const WEEK_MIN: i64 = 10080;
const SEASONAL_HALF_WIDTH_MIN: i64 = 2;
/// 1970-01-01 was a Thursday; Monday 00:00 is 3 days later.
const WEEK_EPOCH_OFFSET_S: f64 = 3.0 * 86400.0;
/// Buckets kept: `t - WEEK_MIN - SEASONAL_HALF_WIDTH_MIN ..= t`, the oldest any feature
/// reads.
const HISTORY: usize = (WEEK_MIN + SEASONAL_HALF_WIDTH_MIN + 1) as usize;
/// A jump of more than this (two weeks) between samples, with no decision in between,
/// starts a new series rather than carrying the last rate forward minute by minute.
pub const MAX_GAP_MIN: i64 = 2 * WEEK_MIN;

/// A sample the features cannot take.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum FeatureError {
    /// Rates are finite and `>= 0`.
    #[error("rate {0} is not a finite number >= 0")]
    BadRate(f64),
}

fn check_rate(rate: f64) -> Result<f64, FeatureError> {
    if rate.is_finite() && rate >= 0.0 {
        Ok(rate)
    } else {
        Err(FeatureError::BadRate(rate))
    }
}

/// `alpha = 1 - 2^(-1/half_life)`.
fn alpha(half_life_min: f64) -> f64 {
    1.0 - 2f64.powf(-1.0 / half_life_min)
}

/// One feature vector at bucket `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalerVector {
    /// The last complete bucket.
    pub t: u64,
    /// Decision time, Unix seconds: the end of bucket `t`.
    pub now_unix: i64,
    /// The normaliser `D = max(ewma_10[t], 0.001)`: forecast rate = output × `D`.
    pub d: f64,
    /// The features, in [`FEATURE_NAMES`] order.
    pub features: [f32; N_FEATURES],
}

impl ScalerVector {
    /// The forecast rate (requests per second) for a model output (a ratio to `D`).
    pub fn forecast_rate(&self, output: f32) -> f64 {
        f64::from(output) * self.d
    }
}

/// One target's per-minute rate series, reduced to what the features need.
#[derive(Debug, Clone)]
pub struct ScalerSeries {
    start_unix: i64,
    len: u64,
    first: f64,
    recent: VecDeque<f64>,
    level: f64,
    ewmas: [f64; 4],
    level_alpha: f64,
    ewma_alphas: [f64; 4],
}

impl ScalerSeries {
    /// An empty series whose bucket 0 starts at `start_unix` (seconds).
    pub fn new(start_unix: i64) -> Self {
        ScalerSeries {
            start_unix,
            len: 0,
            first: 0.0,
            recent: VecDeque::with_capacity(HISTORY),
            level: 0.0,
            ewmas: [0.0; 4],
            level_alpha: alpha(LEVEL_HALF_LIFE_MIN),
            ewma_alphas: EWMA_HALF_LIVES_MIN.map(alpha),
        }
    }

    /// A series from consecutive per-minute rates.
    ///
    /// # Errors
    /// [`FeatureError::BadRate`] at the first rate that is negative or not finite.
    pub fn from_rates(start_unix: i64, rates: &[f64]) -> Result<Self, FeatureError> {
        let mut s = ScalerSeries::new(start_unix);
        for r in rates {
            s.push(*r)?;
        }
        Ok(s)
    }

    /// Start of bucket 0, Unix seconds.
    pub fn start_unix(&self) -> i64 {
        self.start_unix
    }

    /// Buckets so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bucket was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rate of the last bucket.
    pub fn last_rate(&self) -> Option<f64> {
        self.recent.back().copied()
    }

    /// Appends the next minute's rate.
    ///
    /// # Errors
    /// [`FeatureError::BadRate`]; the series is unchanged.
    pub fn push(&mut self, rate: f64) -> Result<(), FeatureError> {
        let r = check_rate(rate)?;
        if self.len == 0 {
            self.first = r;
            self.level = r;
            self.ewmas = [r; 4];
        } else {
            self.level += self.level_alpha * (r - self.level);
            for (e, a) in self.ewmas.iter_mut().zip(self.ewma_alphas) {
                *e += a * (r - *e);
            }
        }
        if self.recent.len() == HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back(r);
        self.len += 1;
        Ok(())
    }

    /// `r[max(i, 0)]` for `t - HISTORY < i <= t`.
    fn r(&self, t: i64, i: i64) -> f64 {
        if i <= 0 {
            return self.first;
        }
        let back = usize::try_from(t - i).unwrap_or(0);
        self.recent
            .len()
            .checked_sub(1 + back)
            .and_then(|k| self.recent.get(k))
            .copied()
            .unwrap_or(self.first)
    }

    /// The features at the last bucket, `None` before the first.
    pub fn features(&self) -> Option<ScalerVector> {
        if self.len == 0 {
            return None;
        }
        let t = i64::try_from(self.len - 1).unwrap_or(i64::MAX);
        let d = self.level.max(LEVEL_FLOOR);
        let ratio = |x: f64| (x / d).clamp(RATIO_MIN, RATIO_MAX);
        let mut f = [0f64; N_FEATURES];
        let mut k = 0;
        let mut put = |v: f64| {
            f[k] = v;
            k += 1;
        };

        for lag in LAGS_MIN {
            put(ratio(self.r(t, t - lag)));
        }
        for e in self.ewmas {
            put(ratio(e));
        }
        let n = STD_WINDOW_MIN as f64;
        let mean = (0..STD_WINDOW_MIN).map(|j| self.r(t, t - j)).sum::<f64>() / n;
        let var = (0..STD_WINDOW_MIN)
            .map(|j| {
                let x = self.r(t, t - j) - mean;
                x * x
            })
            .sum::<f64>()
            / n;
        put(ratio(var.sqrt()));
        let max = (0..MAX_WINDOW_MIN)
            .map(|j| self.r(t, t - j))
            .fold(f64::NEG_INFINITY, f64::max);
        put(ratio(max));

        let s = SEASONAL_HALF_WIDTH_MIN;
        let mut has = [0.0; 2];
        for (slot, period) in [DAY_MIN, WEEK_MIN].into_iter().enumerate() {
            let ok = t >= period + s;
            has[slot] = if ok { 1.0 } else { 0.0 };
            for offset in [0, HORIZON_MIN] {
                let value = if ok {
                    let c = t + offset - period;
                    let sum: f64 = (-s..=s).map(|o| self.r(t, (c + o).min(t))).sum();
                    ratio(sum / (2 * s + 1) as f64)
                } else {
                    1.0
                };
                put(value);
            }
        }
        put(has[0]);
        put(has[1]);

        let now_unix = self.start_unix + STEP_SECONDS * (t + 1);
        let now = self.start_unix as f64 + 60.0 * (t as f64 + 1.0);
        let day_phase = now.rem_euclid(86400.0) / 86400.0;
        let week_phase = (now + WEEK_EPOCH_OFFSET_S).rem_euclid(604_800.0) / 604_800.0;
        put((2.0 * PI * day_phase).sin());
        put((2.0 * PI * day_phase).cos());
        put((2.0 * PI * week_phase).sin());
        put((2.0 * PI * week_phase).cos());

        Some(ScalerVector {
            t: self.len - 1,
            now_unix,
            d,
            features: f.map(|x| x as f32),
        })
    }
}

/// Timestamped samples to per-minute mean rates, gaps carried forward.
///
/// A sample belongs to the minute containing its timestamp (`[m, m + 60 s)`), so under
/// the runtime's watermarks ("everything before `now` was delivered") the minutes ending
/// at or before `now` are complete at `now`. A sample for a minute already closed is
/// late and ignored (counted).
#[derive(Debug, Clone, Default)]
pub struct MinuteBuckets {
    /// The minute being filled: (minute index since the epoch, sum, count).
    open: Option<(i64, f64, u32)>,
    /// The next minute to be emitted (all before it were).
    next: Option<i64>,
    last_value: f64,
    late: u64,
}

impl MinuteBuckets {
    /// No samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples ignored because their minute was already closed.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Takes one sample; minutes it completes are passed to `emit` as
    /// `(minute index since the epoch, rate)`, in order, gaps included.
    ///
    /// # Errors
    /// [`FeatureError::BadRate`]; the sample is ignored.
    pub fn observe(
        &mut self,
        ts: Timestamp,
        rate: f64,
        emit: &mut impl FnMut(i64, f64),
    ) -> Result<(), FeatureError> {
        let rate = check_rate(rate)?;
        let minute = ts.as_millis().div_euclid(60_000);
        if self.next.is_some_and(|n| minute < n) {
            self.late += 1;
            return Ok(());
        }
        match &mut self.open {
            Some((m, sum, count)) if *m == minute => {
                *sum += rate;
                *count += 1;
            }
            Some((m, _, _)) if minute < *m => self.late += 1,
            _ => {
                self.close_before(minute, emit);
                self.open = Some((minute, rate, 1));
            }
        }
        Ok(())
    }

    /// Emits every minute that ends at or before `now` (the open one, then gaps).
    pub fn close_through(&mut self, now: Timestamp, emit: &mut impl FnMut(i64, f64)) {
        self.close_before(now.as_millis().div_euclid(60_000), emit);
    }

    /// Emits every minute before `minute`.
    fn close_before(&mut self, minute: i64, emit: &mut impl FnMut(i64, f64)) {
        if let Some((m, sum, count)) = self.open {
            if m >= minute {
                return;
            }
            self.fill_to(m, emit);
            self.last_value = sum / f64::from(count.max(1));
            emit(m, self.last_value);
            self.next = Some(m + 1);
            self.open = None;
        }
        self.fill_to(minute, emit);
    }

    /// Emits carried-forward minutes from `next` up to (not including) `minute`; a gap
    /// of more than [`MAX_GAP_MIN`] is skipped instead (the next minute emitted is then
    /// not contiguous, which starts a new series).
    fn fill_to(&mut self, minute: i64, emit: &mut impl FnMut(i64, f64)) {
        let Some(mut n) = self.next else { return };
        if minute - n > MAX_GAP_MIN {
            n = minute;
        }
        while n < minute {
            emit(n, self.last_value);
            n += 1;
        }
        self.next = Some(n);
    }
}

/// The scaler's per-target feature state: samples in, feature vector at a decision.
#[derive(Debug, Clone, Default)]
pub struct ScalerFeatures {
    buckets: MinuteBuckets,
    series: Option<ScalerSeries>,
}

impl ScalerFeatures {
    /// No samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one arrival-rate sample (requests per second) measured at `ts`.
    ///
    /// # Errors
    /// [`FeatureError::BadRate`]; the sample is ignored.
    pub fn observe(&mut self, ts: Timestamp, rate: f64) -> Result<(), FeatureError> {
        let Self { buckets, series } = self;
        buckets.observe(ts, rate, &mut |minute, r| push_minute(series, minute, r))
    }

    /// Closes the minutes complete at `now` and returns the features at the last one
    /// (`None` before a minute is complete).
    pub fn at(&mut self, now: Timestamp) -> Option<ScalerVector> {
        let Self { buckets, series } = self;
        buckets.close_through(now, &mut |minute, r| push_minute(series, minute, r));
        self.series.as_ref().and_then(ScalerSeries::features)
    }

    /// The per-minute series so far.
    pub fn series(&self) -> Option<&ScalerSeries> {
        self.series.as_ref()
    }

    /// Samples ignored as late.
    pub fn late(&self) -> u64 {
        self.buckets.late()
    }
}

fn push_minute(series: &mut Option<ScalerSeries>, minute: i64, rate: f64) {
    let expected_next = series
        .as_ref()
        .map(|s| s.start_unix() / STEP_SECONDS + i64::try_from(s.len()).unwrap_or(i64::MAX));
    // Minutes arrive contiguous, gaps carried forward; after a skipped gap (longer than
    // MAX_GAP_MIN) they do not, and the target starts a new series.
    let s = match (series.as_mut(), expected_next) {
        (Some(s), Some(next)) if next == minute => s,
        _ => series.insert(ScalerSeries::new(minute * STEP_SECONDS)),
    };
    // Rates were checked by MinuteBuckets.
    let _ = s.push(rate);
}
