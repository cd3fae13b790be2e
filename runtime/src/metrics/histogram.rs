//! A fixed-bucket histogram of durations recorded with atomics: no lock and no allocation
//! on the recording path, so it can sit in the inference call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds, inclusive) of the inference latency buckets: 0.5 ms to 5 s. A
/// small model answers in well under a millisecond, a batch of a large one in tens; the
/// upper end reaches past any sane inference timeout, so a timeout is visible as such.
pub const INFERENCE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Counts of durations per bucket, and their sums.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, increasing; the last bucket (`+Inf`) is implicit.
    bounds: &'static [f64],
    /// Upper bounds in nanoseconds (what a recording compares with).
    bounds_nanos: Vec<u64>,
    /// One per bound, plus `+Inf`.
    counts: Vec<AtomicU64>,
    /// Nanoseconds recorded per bucket (the OTLP export needs each bucket's sum; the
    /// total is their sum).
    sums_nanos: Vec<AtomicU64>,
}

/// One bucket of a [`HistogramSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Upper bound in seconds, inclusive (`f64::INFINITY` for the last).
    pub le: f64,
    /// Durations recorded in this bucket alone (not cumulative).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

/// A copy of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Every bucket, in order, the `+Inf` one last.
    pub buckets: Vec<Bucket>,
}

impl HistogramSnapshot {
    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.count).sum()
    }

    /// Their sum, in seconds.
    pub fn sum(&self) -> f64 {
        self.buckets.iter().map(|b| b.sum).sum()
    }
}

impl Histogram {
    /// An empty histogram with these upper bounds (seconds, increasing).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            bounds_nanos: bounds
                .iter()
                .map(|b| Duration::from_secs_f64(b.max(0.0)).as_nanos())
                .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
                .collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sums_nanos: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one duration.
    pub fn record(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Buckets are few (13): a scan is as fast as a binary search.
        let i = self
            .bounds_nanos
            .iter()
            .position(|b| nanos <= *b)
            .unwrap_or(self.bounds_nanos.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sums_nanos[i].fetch_add(nanos, Ordering::Relaxed);
    }

    /// A copy of the counts. Recordings running meanwhile may or may not be in it, each
    /// whole (its count and sum are in the same bucket).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let les = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY));
        HistogramSnapshot {
            buckets: les
                .zip(self.counts.iter().zip(&self.sums_nanos))
                .map(|(le, (count, sum))| Bucket {
                    le,
                    count: count.load(Ordering::Relaxed),
                    sum: Duration::from_nanos(sum.load(Ordering::Relaxed)).as_secs_f64(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let h = Histogram::new(&[0.001, 0.01]);
        for ms in [0, 1, 2, 10, 11, 5_000] {
            h.record(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        let counts: Vec<(f64, u64)> = s.buckets.iter().map(|b| (b.le, b.count)).collect();
        assert_eq!(counts, [(0.001, 2), (0.01, 2), (f64::INFINITY, 2)]);
        assert_eq!(s.count(), 6);
        assert!((s.sum() - 5.024).abs() < 1e-9, "{}", s.sum());
        assert!((s.buckets[2].sum - 5.011).abs() < 1e-9);
    }

    #[test]
    fn the_inference_buckets_increase() {
        assert!(INFERENCE_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
