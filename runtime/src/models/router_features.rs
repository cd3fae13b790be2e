//! The router latency model's feature vector, exactly as
//! `agents/training/conclave_training/router_features.py` defines it (the spec is
//! `agents/models/router.features.json`, also in the model's `metadata_props`).
//!
//! Notation: time is cut into 15-second buckets; bucket `j` is `(15 (j - 1), 15 j]`
//! seconds since the Unix epoch, so a sample stamped `ts` belongs to bucket
//! `ceil(ts / 15 s)` and a decision at `now` sees buckets up to `k = floor(now / 15 s)`.
//! Per backend and bucket: the mean over the bucket's own metrics samples of
//! `error_rate`, `latency_p50_ms`, `latency_p99_ms`, `cpu`, `backlog`, `rate_in` and
//! `rate_out`; a bucket without samples repeats the previous one; the backend's first
//! bucket `f` starts its series, and history before `f` repeats bucket `f`.
//!
//! The forecast quantity is a backend's **cost**, the expected latency of a request sent
//! to it with a failed request counted as [`FAILURE_MS`]:
//! `cost = (1 - e) · max(p99, 1) + e · 5000` with `e = clip(err, 0, 1)`.
//!
//! Everything is computed in `f64` and each feature cast to `f32` at the end.
//! [`RouterFeatures`] is what the router agent keeps per backend; [`RouterSeries`] holds
//! the finished buckets.

use std::collections::{BTreeMap, VecDeque};

use crate::clock::Timestamp;
use crate::telemetry::ServiceMetrics;

/// Features per row.
pub const N_FEATURES: usize = 23;

/// Feature names, in column order (the model's `feature_names`).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "cost_log2",
    "cost_1m_log2",
    "cost_trend",
    "cost_trend_5m",
    "cost_max_10m_log2",
    "cost_jumps_10m",
    "p99_log2",
    "p99_rel",
    "p99_trend",
    "tail_ratio",
    "err",
    "err_1m",
    "err_delta",
    "err_max_10m",
    "err_10m",
    "cpu",
    "cpu_delta",
    "queue_s",
    "queue_growth_s",
    "unserved",
    "load_rel",
    "silent_s",
    "warm",
];

/// Features left out of drift monitoring: `warm` rises on every start, `silent_s` is 0
/// whenever reports arrive on time (the rule's `stale_after` handles silence), and the
/// levels (cost, p99, tail ratio, cpu, load against the 30-min mean) follow the time of day
/// and which backends a route has: over a drift window of 1000 rows their PSI against the
/// pooled training rows is above 0.2 in most windows of the training recordings
/// themselves. What is watched are the shapes: trends, jumps, errors, queues.
pub const DRIFT_EXCLUDED: [&str; 10] = [
    "cost_log2",
    "cost_1m_log2",
    "cost_max_10m_log2",
    "p99_log2",
    "p99_rel",
    "tail_ratio",
    "cpu",
    "load_rel",
    "silent_s",
    "warm",
];

/// Length of a bucket, seconds.
pub const BUCKET_SECONDS: i64 = 15;
const BUCKET_MS: i64 = BUCKET_SECONDS * 1000;
/// Buckets of history the features read: 30 minutes (the latency base, the mean load).
pub const HISTORY_BUCKETS: usize = 120;
/// Buckets of "recent" history: 10 minutes (worst cost, error history, jumps).
pub const RECENT_BUCKETS: usize = 40;
/// The model forecasts the mean cost over this many seconds after the decision.
pub const HORIZON_SECONDS: i64 = 60;
/// What a failed request costs in the cost, milliseconds: a client that has to retry
/// elsewhere or give up has lost far more than a slow answer's time.
pub const FAILURE_MS: f64 = 5000.0;
/// Buckets in "the last minute".
const MINUTE: usize = 4;
const LATENCY_FLOOR_MS: f64 = 1.0;
const RATE_FLOOR: f64 = 1.0;
const LOAD_FLOOR: f64 = 0.01;
const REL_MAX: f64 = 1000.0;
const TREND_MAX: f64 = 10.0;
const SILENT_MAX_S: f64 = 3600.0;

/// One bucket's values, after carry-forward.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouterBucket {
    /// Mean `error_rate`.
    pub err: f64,
    /// Mean `latency_p50_ms`.
    pub p50: f64,
    /// Mean `latency_p99_ms`.
    pub p99: f64,
    /// Mean `cpu`.
    pub cpu: f64,
    /// Mean `backlog`.
    pub backlog: f64,
    /// Mean `rate_in`.
    pub rate_in: f64,
    /// Mean `rate_out`.
    pub rate_out: f64,
}

impl RouterBucket {
    /// The bucket's cost, ms (see the module docs).
    pub fn cost(&self) -> f64 {
        cost(self.err, self.p99)
    }
}

/// The cost of a backend with error rate `err` and p99 `p99_ms`: the expected latency of
/// a request, a failed one counted as [`FAILURE_MS`].
pub fn cost(err: f64, p99_ms: f64) -> f64 {
    let e = err.clamp(0.0, 1.0);
    (1.0 - e) * p99_ms.max(LATENCY_FLOOR_MS) + e * FAILURE_MS
}

/// One feature vector at bucket `k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterVector {
    /// The last complete bucket.
    pub k: i64,
    /// The features, in [`FEATURE_NAMES`] order.
    pub features: [f32; N_FEATURES],
}

/// One backend's finished buckets, the last [`HISTORY_BUCKETS`] of them.
#[derive(Debug, Clone, Default)]
pub struct RouterSeries {
    /// Index of the backend's first bucket.
    first: Option<i64>,
    /// Index of the newest bucket.
    last: i64,
    recent: VecDeque<RouterBucket>,
}

impl RouterSeries {
    /// No buckets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Index of the newest bucket, `None` before the first.
    pub fn last_index(&self) -> Option<i64> {
        self.first.map(|_| self.last)
    }

    /// The newest bucket.
    pub fn latest(&self) -> Option<&RouterBucket> {
        self.recent.back()
    }

    /// Appends bucket `index`, which must follow the newest one (`None` before the first:
    /// any index starts the series). An index not after the newest is ignored.
    pub fn push(&mut self, index: i64, bucket: RouterBucket) {
        if self.first.is_some() && index <= self.last {
            return;
        }
        if self.first.is_none() {
            self.first = Some(index);
        }
        self.last = index;
        if self.recent.len() == HISTORY_BUCKETS {
            self.recent.pop_front();
        }
        self.recent.push_back(bucket);
    }

    /// The mean cost of buckets `from..=to` (indices), when all of them are in the kept
    /// history.
    pub fn mean_cost(&self, from: i64, to: i64) -> Option<f64> {
        self.first?;
        let kept_from = self.last - self.recent.len() as i64 + 1;
        if from > to || to > self.last || from < kept_from {
            return None;
        }
        let sum: f64 = (from..=to)
            .map(|j| {
                let back = usize::try_from(self.last - j).unwrap_or(usize::MAX);
                self.at(back).cost()
            })
            .sum();
        Some(sum / (to - from + 1) as f64)
    }

    /// The bucket `back` places before the newest; history before the first bucket
    /// repeats the first (as does history older than the kept window, which no feature
    /// reads).
    fn at(&self, back: usize) -> &RouterBucket {
        let n = self.recent.len();
        &self.recent[n.saturating_sub(1 + back)]
    }

    /// `mean(v, a..b)`: the mean of `v` over the buckets `a..=b` places back.
    fn mean(&self, a: usize, b: usize, get: impl Fn(&RouterBucket) -> f64) -> f64 {
        let n = (b - a + 1) as f64;
        (a..=b).map(|i| get(self.at(i))).sum::<f64>() / n
    }

    fn max(&self, a: usize, b: usize, get: impl Fn(&RouterBucket) -> f64) -> f64 {
        (a..=b)
            .map(|i| get(self.at(i)))
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// `v[k] / min(v[j] > 0 for j in k-119..=k)`, clipped to `[1, 1000]`; 1 when `v[k]` is
    /// not above 0.
    fn rel(&self, get: impl Fn(&RouterBucket) -> f64) -> f64 {
        let now = get(self.at(0));
        if now <= 0.0 {
            return 1.0;
        }
        let base = (0..HISTORY_BUCKETS)
            .map(|b| get(self.at(b)))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        (now / base).clamp(1.0, REL_MAX)
    }

    /// The features at the newest bucket, `silent_s` given (it depends on the decision
    /// time, not on the buckets); `None` before the first bucket.
    pub fn features(&self, silent_s: f64) -> Option<RouterVector> {
        let first = self.first?;
        if self.recent.is_empty() {
            return None;
        }
        let k = self.last;
        let x = *self.at(0);
        let mut f = [0f64; N_FEATURES];
        let mut i = 0;
        let mut put = |v: f64| {
            f[i] = v;
            i += 1;
        };

        let c = x.cost();
        let m1 = self.mean(0, MINUTE - 1, RouterBucket::cost);
        put(c.log2());
        put(m1.log2());
        put((c / self.at(MINUTE).cost())
            .log2()
            .clamp(-TREND_MAX, TREND_MAX));
        put(
            (m1 / self.mean(4 * MINUTE, 5 * MINUTE - 1, RouterBucket::cost))
                .log2()
                .clamp(-TREND_MAX, TREND_MAX),
        );
        put(self.max(0, RECENT_BUCKETS - 1, RouterBucket::cost).log2());
        let jumps = (0..RECENT_BUCKETS - 1)
            .filter(|&b| (self.at(b).cost() / self.at(b + 1).cost()).log2().abs() >= 1.0)
            .count();
        put(jumps as f64);

        put(x.p99.max(LATENCY_FLOOR_MS).log2());
        put(self.rel(|b| b.p99));
        put(
            (x.p99.max(LATENCY_FLOOR_MS) / self.at(MINUTE).p99.max(LATENCY_FLOOR_MS))
                .log2()
                .clamp(-TREND_MAX, TREND_MAX),
        );
        put((x.p99 / x.p50.max(LATENCY_FLOOR_MS)).clamp(0.0, REL_MAX));

        let err_1m = self.mean(0, MINUTE - 1, |b| b.err);
        put(x.err);
        put(err_1m);
        put(err_1m - self.mean(MINUTE, 2 * MINUTE - 1, |b| b.err));
        put(self.max(0, RECENT_BUCKETS - 1, |b| b.err));
        put(self.mean(0, RECENT_BUCKETS - 1, |b| b.err));

        put(x.cpu.clamp(0.0, 10.0));
        put((x.cpu - self.at(MINUTE).cpu).clamp(-10.0, 10.0));
        let out = x.rate_out.max(RATE_FLOOR);
        put((x.backlog / out).clamp(0.0, 3600.0));
        put(((x.backlog - self.at(MINUTE).backlog) / out).clamp(-3600.0, 3600.0));
        put(((x.rate_in - x.rate_out) / x.rate_in.max(RATE_FLOOR)).clamp(-1.0, 1.0));
        let mean_in = self.mean(0, HISTORY_BUCKETS - 1, |b| b.rate_in);
        put((x.rate_in / mean_in.max(LOAD_FLOOR)).clamp(0.0, 100.0));

        put(silent_s.clamp(0.0, SILENT_MAX_S));
        let seen = usize::try_from(k - first + 1).unwrap_or(usize::MAX);
        put(seen.min(HISTORY_BUCKETS) as f64 / HISTORY_BUCKETS as f64);

        Some(RouterVector {
            k,
            features: f.map(|v| v as f32),
        })
    }
}

/// Sums of one bucket's samples, before it closes.
#[derive(Debug, Clone, Copy, Default)]
struct Accum {
    n: u32,
    sum: RouterBucket,
}

/// The bucket a sample stamped `ts` belongs to: `ceil(ts / 15 s)`.
pub fn bucket_of(ts: Timestamp) -> i64 {
    let ms = ts.as_millis();
    ms.div_euclid(BUCKET_MS) + i64::from(ms.rem_euclid(BUCKET_MS) != 0)
}

/// The last bucket complete at `now`: `floor(now / 15 s)`.
pub fn complete_at(now: Timestamp) -> i64 {
    now.as_millis().div_euclid(BUCKET_MS)
}

/// Open buckets kept at most: samples stamped far ahead of the decisions (a clock
/// skewed by more than this many buckets, an hour) are ignored rather than stored.
const MAX_OPEN: usize = 240;

/// The router's per-backend feature state: samples in, feature vector at a decision.
///
/// Buckets close at decisions ([`RouterFeatures::at`]), not when a newer sample arrives:
/// under the runtime's watermarks every sample stamped up to `now` has arrived by the
/// decision at `now`. A sample for a bucket already closed is late and ignored (counted).
#[derive(Debug, Clone, Default)]
pub struct RouterFeatures {
    open: BTreeMap<i64, Accum>,
    series: RouterSeries,
    carried: RouterBucket,
    closed: Option<i64>,
    /// The newest stamp of an accepted sample.
    newest: Option<Timestamp>,
    late: u64,
}

impl RouterFeatures {
    /// No samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples ignored as late (or too far ahead).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The finished buckets.
    pub fn series(&self) -> &RouterSeries {
        &self.series
    }

    /// Takes one of the backend's metrics samples. Non-finite figures are ignored (the
    /// decoder refuses them; this keeps the features finite regardless).
    pub fn observe(&mut self, m: &ServiceMetrics) {
        let b = RouterBucket {
            err: m.error_rate,
            p50: m.latency_p50_ms,
            p99: m.latency_p99_ms,
            cpu: m.cpu,
            // u64 -> f64 loses precision only above 2^53 requests.
            backlog: m.backlog as f64,
            rate_in: m.rate_in,
            rate_out: m.rate_out,
        };
        let figures = [b.err, b.p50, b.p99, b.cpu, b.rate_in, b.rate_out];
        if figures.iter().any(|v| !v.is_finite()) {
            return;
        }
        let j = bucket_of(m.ts);
        if self.closed.is_some_and(|closed| j <= closed)
            || (!self.open.contains_key(&j) && self.open.len() >= MAX_OPEN)
        {
            self.late += 1;
            return;
        }
        let a = self.open.entry(j).or_default();
        a.n += 1;
        a.sum.err += b.err;
        a.sum.p50 += b.p50;
        a.sum.p99 += b.p99;
        a.sum.cpu += b.cpu;
        a.sum.backlog += b.backlog;
        a.sum.rate_in += b.rate_in;
        a.sum.rate_out += b.rate_out;
        self.newest = Some(self.newest.map_or(m.ts, |t| t.max(m.ts)));
    }

    /// Closes the buckets complete at `now` and returns the features at the last one
    /// (`None` before the backend's first sample).
    pub fn at(&mut self, now: Timestamp) -> Option<RouterVector> {
        self.close_through(complete_at(now));
        let silent_s = self.newest.map_or(SILENT_MAX_S, |t| {
            (now.as_millis() - t.as_millis()) as f64 / 1000.0
        });
        self.series.features(silent_s)
    }

    fn close_through(&mut self, k: i64) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() > k {
                break;
            }
            let (b, a) = entry.remove_entry();
            self.fill_to(b);
            let n = f64::from(a.n);
            self.carried = RouterBucket {
                err: a.sum.err / n,
                p50: a.sum.p50 / n,
                p99: a.sum.p99 / n,
                cpu: a.sum.cpu / n,
                backlog: a.sum.backlog / n,
                rate_in: a.sum.rate_in / n,
                rate_out: a.sum.rate_out / n,
            };
            self.series.push(b, self.carried);
        }
        self.fill_to(k + 1);
        self.closed = Some(self.closed.map_or(k, |c| c.max(k)));
    }

    /// Pushes carried-forward buckets up to (not including) `b`; only the last
    /// [`HISTORY_BUCKETS`] of a long gap, as no feature reads further back.
    fn fill_to(&mut self, b: i64) {
        let Some(last) = self.series.last_index() else {
            return;
        };
        let from = (last + 1).max(b - HISTORY_BUCKETS as i64);
        for j in from..b {
            self.series.push(j, self.carried);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Parity with the Python definition (golden vectors written by
    //! `agents/training/train_router.py`), and the bucket rules the golden stream does not
    //! reach (late samples, long gaps).

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;
    use crate::clock::SimClock;
    use crate::models::host::{HostOptions, ModelHost};
    use crate::models::library::{LibrarySearch, OrtEnvironment};
    use crate::policy::{ModelRef, TensorSpec, TensorType};

    fn models_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
            .join("agents/models")
    }

    #[derive(Debug, Deserialize)]
    struct Golden {
        feature_names: Vec<String>,
        drift_excluded: Vec<String>,
        tolerance: f64,
        ticks_ms: Vec<i64>,
        samples: Vec<ServiceMetrics>,
        points: Vec<Point>,
    }

    #[derive(Debug, Deserialize)]
    struct Point {
        now_ms: i64,
        service: String,
        k: i64,
        features: Vec<f64>,
        output: f64,
    }

    fn golden() -> Golden {
        let path = models_dir().join("testdata/router-parity.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }

    /// Feeds the golden samples to per-backend state as the agent does, deciding at every
    /// tick after the samples stamped at or before it; returns every vector by (tick,
    /// backend).
    fn replay(g: &Golden) -> BTreeMap<(i64, String), RouterVector> {
        let mut state: BTreeMap<String, RouterFeatures> = BTreeMap::new();
        let mut samples = g.samples.iter().peekable();
        let mut out = BTreeMap::new();
        for &now in &g.ticks_ms {
            let now_ts = Timestamp::from_millis(now);
            while let Some(m) = samples.next_if(|m| m.ts <= now_ts) {
                state.entry(m.service.clone()).or_default().observe(m);
            }
            for (service, f) in &mut state {
                if let Some(v) = f.at(now_ts) {
                    out.insert((now, service.clone()), v);
                }
            }
        }
        assert!(samples.next().is_none(), "every sample was fed");
        out
    }

    #[test]
    fn golden_file_matches_the_rust_constants() {
        let g = golden();
        assert_eq!(g.feature_names, FEATURE_NAMES);
        assert_eq!(g.drift_excluded, DRIFT_EXCLUDED);
        assert_eq!(g.tolerance, 1e-5);
    }

    #[test]
    fn router_features_match_python_golden_vectors() {
        let g = golden();
        let got = replay(&g);
        assert!(g.points.len() > 90, "golden points: {}", g.points.len());
        let mut services = BTreeSet::new();
        for p in &g.points {
            let v = got
                .get(&(p.now_ms, p.service.clone()))
                .unwrap_or_else(|| panic!("no Rust vector for {} at {}", p.service, p.now_ms));
            assert_eq!(v.k, p.k, "{} at {}", p.service, p.now_ms);
            for (j, (r, py)) in v.features.iter().zip(&p.features).enumerate() {
                assert!(
                    (f64::from(*r) - py).abs() <= g.tolerance,
                    "{} of {} at {}: rust {r}, python {py}",
                    FEATURE_NAMES[j],
                    p.service,
                    p.now_ms
                );
            }
            services.insert(p.service.clone());
        }
        assert_eq!(services.into_iter().collect::<Vec<_>>(), ["ap", "eu", "us"]);
        // Rust has a vector exactly where Python does, at the golden ticks.
        let ticks: BTreeSet<i64> = g.points.iter().map(|p| p.now_ms).collect();
        let rust = got.keys().filter(|(t, _)| ticks.contains(t)).count();
        assert_eq!(rust, g.points.len());
    }

    #[test]
    fn ort_outputs_match_python_onnxruntime() {
        let g = golden();
        let root = models_dir().join("../..");
        let env = match OrtEnvironment::init(&LibrarySearch::from_env().with_project_root(root)) {
            Ok(env) => env,
            Err(e) => panic!("ONNX Runtime is needed for this test: {e}"),
        };
        let spec = |name: &str, width: i64| TensorSpec {
            name: name.to_string(),
            elem_type: TensorType::Float32,
            shape: vec![-1, width],
        };
        let model = ModelRef {
            path: models_dir().join("router-latency.onnx"),
            version: Some("1.0.0".into()),
            inputs: vec![spec("features", N_FEATURES as i64)],
            outputs: vec![spec("latency_ms", 1)],
            timeout: Duration::from_secs(5),
        };
        let clock = SimClock::new(Timestamp::from_millis(0));
        let host = ModelHost::load(env, &model, HostOptions::default(), Arc::new(clock))
            .unwrap_or_else(|e| panic!("loading the router model: {e}"));
        assert_eq!(host.metadata().output_range(), Some((1.0, 600_000.0)));
        assert_eq!(host.metadata().feature_names(), FEATURE_NAMES);
        // Rust features -> ort, against Python features -> Python onnxruntime.
        let got = replay(&g);
        let flat: Vec<f32> = g
            .points
            .iter()
            .flat_map(|p| got[&(p.now_ms, p.service.clone())].features)
            .collect();
        let out = host.infer(&flat, g.points.len()).expect("inference");
        for (p, o) in g.points.iter().zip(&out) {
            let rel = (f64::from(*o) - p.output).abs() / p.output;
            assert!(
                rel <= g.tolerance,
                "latency_ms of {} at {}: rust {o}, python {}",
                p.service,
                p.now_ms,
                p.output
            );
        }
    }

    fn sample(ts_ms: i64, err: f64, p99: f64) -> ServiceMetrics {
        ServiceMetrics {
            schema_version: 1,
            service: "b".into(),
            ts: Timestamp::from_millis(ts_ms),
            rate_in: 10.0,
            rate_out: 10.0,
            backlog: 0,
            latency_p50_ms: 10.0,
            latency_p99_ms: p99,
            error_rate: err,
            cpu: 0.5,
            replicas: 1,
            region: None,
            dependencies: Vec::new(),
        }
    }

    fn col(name: &str) -> usize {
        FEATURE_NAMES
            .iter()
            .position(|x| *x == name)
            .unwrap_or_else(|| panic!("no feature `{name}`"))
    }

    #[test]
    fn cost_counts_a_failure_as_five_seconds() {
        let cases: &[(&str, f64, f64, f64)] = &[
            ("healthy", 0.0, 40.0, 40.0),
            ("one_percent", 0.01, 40.0, 0.99 * 40.0 + 50.0),
            ("down_reports_no_latency", 1.0, 0.0, 5000.0),
            ("idle_floor", 0.0, 0.0, 1.0),
            ("clipped_error", 1.5, 40.0, 5000.0),
        ];
        for (name, err, p99, want) in cases {
            assert!(
                (cost(*err, *p99) - want).abs() < 1e-9,
                "case {name}: {}",
                cost(*err, *p99)
            );
        }
    }

    #[test]
    fn samples_for_closed_buckets_are_late_and_ignored() {
        let mut f = RouterFeatures::new();
        let base = 1_800_000_000_000; // a multiple of 15 s
        f.observe(&sample(base + 5_000, 0.0, 20.0));
        f.observe(&sample(base + 15_000, 0.0, 20.0));
        let v = f
            .at(Timestamp::from_millis(base + 15_000))
            .expect("a vector");
        assert_eq!(v.k, base / 15_000 + 1);
        assert_eq!(v.features[col("silent_s")], 0.0);
        // Bucket (base, base + 15 s] is closed: a failing sample for it is late.
        f.observe(&sample(base + 10_000, 1.0, 20.0));
        assert_eq!(f.late(), 1);
        let v = f
            .at(Timestamp::from_millis(base + 20_000))
            .expect("a vector");
        assert_eq!(
            v.features[col("err")],
            0.0,
            "the closed bucket is unchanged"
        );
        assert_eq!(
            v.features[col("silent_s")],
            5.0,
            "the late sample is no report"
        );
        assert_eq!(f.series().latest().map(RouterBucket::cost), Some(20.0));
    }

    #[test]
    fn long_gaps_carry_forward_and_keep_the_series_start() {
        let mut f = RouterFeatures::new();
        let base = 1_800_000_000_000;
        f.observe(&sample(base + 15_000, 0.2, 40.0));
        let first = f
            .at(Timestamp::from_millis(base + 15_000))
            .expect("a vector");
        // Ten hours later: one vector, the gap carried forward (the last 120 buckets of
        // it), `warm` full, the error still the last one seen, silence capped at an hour.
        let later = Timestamp::from_millis(base + 15_000 + 10 * 3_600_000);
        let v = f.at(later).expect("a vector");
        assert_eq!(v.k, first.k + 2400);
        assert_eq!(v.features[col("err")], 0.2);
        assert_eq!(v.features[col("err_max_10m")], 0.2);
        assert_eq!(v.features[col("warm")], 1.0);
        assert_eq!(v.features[col("silent_s")], 3600.0);
        assert_eq!(v.features[col("cost_jumps_10m")], 0.0);
        assert_eq!(v.features[col("cost_trend")], 0.0);
        let want = (0.8f64 * 40.0 + 0.2 * 5000.0).log2() as f32;
        assert_eq!(v.features[col("cost_log2")], want);
    }

    #[test]
    fn a_flapping_backend_counts_its_jumps() {
        let mut f = RouterFeatures::new();
        let base = 1_800_000_000_000;
        // Ten minutes of 15 s buckets, failing 40 % in every other minute: the cost jumps
        // (up or down) at each of the 9 minute boundaries inside the window.
        for j in 1..=40 {
            let err = if (j - 1) / 4 % 2 == 1 { 0.4 } else { 0.0 };
            f.observe(&sample(base + j * 15_000, err, 50.0));
        }
        let v = f
            .at(Timestamp::from_millis(base + 40 * 15_000))
            .expect("a vector");
        assert_eq!(v.features[col("cost_jumps_10m")], 9.0);
        assert_eq!(v.features[col("err_max_10m")], 0.4);
        assert!((f64::from(v.features[col("err_10m")]) - 0.2).abs() < 1e-6);
    }
}
