//! The breaker risk model's feature vector, exactly as
//! `agents/training/conclave_training/breaker_features.py` defines it (the spec is
//! `agents/models/breaker.features.json`, also in the model's `metadata_props`).
//!
//! Notation: time is cut into 15-second buckets; bucket `j` is `(15 (j - 1), 15 j]`
//! seconds since the Unix epoch, so a sample stamped `ts` belongs to bucket
//! `ceil(ts / 15 s)` and a decision at `now` sees buckets up to `k = floor(now / 15 s)`
//! (the sample stamped `now` included, as the rule's window includes it). Per protected
//! service and bucket there are three groups of signals:
//!
//! - **own**, from the service's own metrics: the mean over the bucket's samples of
//!   `error_rate`, `latency_p50_ms`, `latency_p99_ms`, `cpu`, `backlog`, `rate_in`,
//!   `rate_out`, and of two per-sample dependency figures: the largest `error_rate` and
//!   the largest `latency_p99_ms` among the sample's `dependencies` with calls (0 when
//!   none);
//! - **callers**, from the `dependencies` entries other services report for this one:
//!   over all entries stamped in the bucket, the call-weighted error rate and the largest
//!   p99 among entries with calls (both 0 without calls), and whether there were calls;
//! - a bucket without samples of a group repeats that group's previous bucket (callers:
//!   all zeros before the first entry). The service's first own bucket `f` starts its
//!   series; history before `f` repeats bucket `f`.
//!
//! Everything is computed in `f64` and each feature cast to `f32` at the end.
//! [`BreakerFeatures`] is what the breaker agent keeps per service; [`BreakerSeries`]
//! takes finished buckets (the golden-vector tests feed it the Python side's buckets).

use std::collections::{BTreeMap, VecDeque};

use crate::clock::Timestamp;
use crate::telemetry::{Dependency, ServiceMetrics};

/// Features per row.
pub const N_FEATURES: usize = 21;

/// Feature names, in column order (the model's `feature_names`).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "err",
    "err_1m",
    "err_delta",
    "p99_rel",
    "p99_trend",
    "tail_ratio",
    "cpu",
    "cpu_delta",
    "queue_s",
    "queue_growth_s",
    "unserved",
    "load_rel",
    "caller_err",
    "caller_err_delta",
    "caller_p99_rel",
    "has_callers",
    "dep_err",
    "dep_err_delta",
    "dep_p99_rel",
    "calm_min",
    "warm",
];

/// Length of a bucket, seconds.
pub const BUCKET_SECONDS: i64 = 15;
const BUCKET_MS: i64 = BUCKET_SECONDS * 1000;
/// Buckets of history the features read: 30 minutes (the latency bases, the mean load).
pub const HISTORY_BUCKETS: usize = 120;
/// The model predicts the trip condition within this many seconds after the decision.
pub const HORIZON_SECONDS: i64 = 60;
/// The label's trip condition: the last minute's failure rate of calls to the service at
/// or above resilience4j's default `failureRateThreshold` (50 %).
pub const TRIP_FAILURE_RATE: f64 = 0.5;
/// Buckets in "the last minute".
const MINUTE: i64 = 4;
/// An error rate at or above this (own or callers') ends a calm stretch.
const CALM_ERROR_RATE: f64 = 0.01;
/// Floors and clips (see the spec file for each feature's).
const LATENCY_FLOOR_MS: f64 = 1.0;
const RATE_FLOOR: f64 = 1.0;
const LOAD_FLOOR: f64 = 0.01;
const REL_MAX: f64 = 1000.0;

/// One bucket's values, after carry-forward.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BreakerBucket {
    /// Own: mean `error_rate`.
    pub err: f64,
    /// Own: mean `latency_p50_ms`.
    pub p50: f64,
    /// Own: mean `latency_p99_ms`.
    pub p99: f64,
    /// Own: mean `cpu`.
    pub cpu: f64,
    /// Own: mean `backlog`.
    pub backlog: f64,
    /// Own: mean `rate_in`.
    pub rate_in: f64,
    /// Own: mean `rate_out`.
    pub rate_out: f64,
    /// Own: mean over samples of the largest dependency error rate (entries with calls).
    pub dep_err: f64,
    /// Own: mean over samples of the largest dependency p99 (entries with calls).
    pub dep_p99: f64,
    /// Callers: call-weighted error rate of the entries about this service.
    pub caller_err: f64,
    /// Callers: largest p99 among entries with calls.
    pub caller_p99: f64,
    /// Callers: 1 when the entries had calls, else 0.
    pub caller_has: f64,
}

/// One feature vector at bucket `k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerVector {
    /// The last complete bucket.
    pub k: i64,
    /// The features, in [`FEATURE_NAMES`] order.
    pub features: [f32; N_FEATURES],
}

/// One service's finished buckets, the last [`HISTORY_BUCKETS`] of them.
#[derive(Debug, Clone, Default)]
pub struct BreakerSeries {
    /// Index of the service's first bucket.
    first: Option<i64>,
    /// Index of the newest bucket.
    last: i64,
    recent: VecDeque<BreakerBucket>,
}

impl BreakerSeries {
    /// No buckets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Index of the newest bucket, `None` before the first.
    pub fn last_index(&self) -> Option<i64> {
        self.first.map(|_| self.last)
    }

    /// The newest bucket.
    pub fn latest(&self) -> Option<&BreakerBucket> {
        self.recent.back()
    }

    /// Appends bucket `index`, which must follow the newest one (`None` before the first:
    /// any index starts the series). A gap is the caller's to fill (see
    /// [`BreakerFeatures`]); an index not after the newest is ignored.
    pub fn push(&mut self, index: i64, bucket: BreakerBucket) {
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

    /// The bucket `back` places before the newest; history before the first bucket
    /// repeats the first (as does history older than the kept window, which no feature
    /// reads).
    fn at(&self, back: usize) -> &BreakerBucket {
        let n = self.recent.len();
        let i = n.saturating_sub(1 + back);
        // `recent` is not empty when features are asked for.
        &self.recent[i]
    }

    fn mean(&self, from_back: usize, to_back: usize, get: impl Fn(&BreakerBucket) -> f64) -> f64 {
        let n = (to_back - from_back + 1) as f64;
        (from_back..=to_back).map(|b| get(self.at(b))).sum::<f64>() / n
    }

    /// `v[k] / min(v[j] > 0 for j in k-119..=k)`, clipped to `[1, 1000]`; 1 when `v[k]` is
    /// not above 0.
    fn rel(&self, get: impl Fn(&BreakerBucket) -> f64) -> f64 {
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

    /// The failure rate of calls to the service over the last minute (buckets `k-3..=k`):
    /// the callers' mean error rate when callers made calls in any of those buckets, else
    /// the service's own. `None` before the first bucket.
    pub fn fail_1m(&self) -> Option<f64> {
        self.first?;
        if self.recent.is_empty() {
            return None;
        }
        let m = MINUTE as usize;
        let has_callers = (0..m).any(|b| self.at(b).caller_has > 0.0);
        Some(if has_callers {
            self.mean(0, m - 1, |b| b.caller_err)
        } else {
            self.mean(0, m - 1, |b| b.err)
        })
    }

    /// Whether the label's trip condition holds at the newest bucket.
    pub fn is_tripped(&self) -> bool {
        self.fail_1m().is_some_and(|f| f >= TRIP_FAILURE_RATE)
    }

    /// The features at the newest bucket, `None` before the first.
    pub fn features(&self) -> Option<BreakerVector> {
        let first = self.first?;
        if self.recent.is_empty() {
            return None;
        }
        let k = self.last;
        let x = *self.at(0);
        let m = MINUTE as usize;
        let mut f = [0f64; N_FEATURES];
        let mut i = 0;
        let mut put = |v: f64| {
            f[i] = v;
            i += 1;
        };

        let err_1m = self.mean(0, m - 1, |b| b.err);
        put(x.err);
        put(err_1m);
        put(err_1m - self.mean(m, 2 * m - 1, |b| b.err));
        put(self.rel(|b| b.p99));
        let p99_before = self.at(m).p99;
        put(
            (x.p99.max(LATENCY_FLOOR_MS) / p99_before.max(LATENCY_FLOOR_MS))
                .log2()
                .clamp(-10.0, 10.0),
        );
        put((x.p99 / x.p50.max(LATENCY_FLOOR_MS)).clamp(0.0, REL_MAX));
        put(x.cpu.clamp(0.0, 10.0));
        put((x.cpu - self.at(m).cpu).clamp(-10.0, 10.0));
        let out = x.rate_out.max(RATE_FLOOR);
        put((x.backlog / out).clamp(0.0, 3600.0));
        put(((x.backlog - self.at(m).backlog) / out).clamp(-3600.0, 3600.0));
        put(((x.rate_in - x.rate_out) / x.rate_in.max(RATE_FLOOR)).clamp(-1.0, 1.0));
        let mean_in = self.mean(0, HISTORY_BUCKETS - 1, |b| b.rate_in);
        put((x.rate_in / mean_in.max(LOAD_FLOOR)).clamp(0.0, 100.0));

        put(x.caller_err);
        put(self.mean(0, m - 1, |b| b.caller_err) - self.mean(m, 2 * m - 1, |b| b.caller_err));
        put(self.rel(|b| b.caller_p99));
        put(x.caller_has);

        put(x.dep_err);
        put(self.mean(0, m - 1, |b| b.dep_err) - self.mean(m, 2 * m - 1, |b| b.dep_err));
        put(self.rel(|b| b.dep_p99));

        // Buckets since the last one with an error rate (own or callers') of 1 % or more,
        // in minutes; 30 when none in the window. History before the first bucket is not
        // searched: it repeats the first, which is searched.
        let seen = usize::try_from(k - first + 1).unwrap_or(usize::MAX);
        let calm = (0..HISTORY_BUCKETS.min(seen))
            .find(|b| {
                let v = self.at(*b);
                v.err.max(v.caller_err) >= CALM_ERROR_RATE
            })
            .map_or(30.0, |b| b as f64 / MINUTE as f64);
        put(calm);
        put(seen.min(HISTORY_BUCKETS) as f64 / HISTORY_BUCKETS as f64);

        Some(BreakerVector {
            k,
            features: f.map(|v| v as f32),
        })
    }
}

/// Sums of one bucket's samples, before it closes.
#[derive(Debug, Clone, Copy, Default)]
struct Accum {
    own: u32,
    err: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
    backlog: f64,
    rate_in: f64,
    rate_out: f64,
    dep_err: f64,
    dep_p99: f64,
    callers: u32,
    calls: f64,
    weighted_err: f64,
    caller_p99: f64,
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

/// The breaker's per-service feature state: samples in, feature vector at a decision.
///
/// Buckets close at decisions ([`BreakerFeatures::at`]), not when a newer sample
/// arrives: callers report on their own schedule, and under the runtime's watermarks
/// every sample stamped up to `now` has arrived by the decision at `now`. A sample for a
/// bucket already closed is late and ignored (counted).
#[derive(Debug, Clone, Default)]
pub struct BreakerFeatures {
    open: BTreeMap<i64, Accum>,
    series: BreakerSeries,
    /// Carried-forward values: the newest closed bucket.
    carried: BreakerBucket,
    /// The newest bucket closed so far.
    closed: Option<i64>,
    late: u64,
}

/// Open buckets kept at most: samples stamped far ahead of the decisions (a clock
/// skewed by more than this many buckets, an hour) are ignored rather than stored.
const MAX_OPEN: usize = 240;

impl BreakerFeatures {
    /// No samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples ignored as late (or too far ahead).
    pub fn late(&self) -> u64 {
        self.late
    }

    fn accum(&mut self, ts: Timestamp) -> Option<&mut Accum> {
        let b = bucket_of(ts);
        if self.closed.is_some_and(|closed| b <= closed) {
            self.late += 1;
            return None;
        }
        if !self.open.contains_key(&b) && self.open.len() >= MAX_OPEN {
            self.late += 1;
            return None;
        }
        Some(self.open.entry(b).or_default())
    }

    /// Takes one of the service's own metrics samples. Non-finite figures are ignored
    /// (the decoder refuses them; this keeps the features finite regardless).
    pub fn observe_own(&mut self, m: &ServiceMetrics) {
        let figures = [
            m.error_rate,
            m.latency_p50_ms,
            m.latency_p99_ms,
            m.cpu,
            m.rate_in,
            m.rate_out,
        ];
        if figures.iter().any(|v| !v.is_finite()) {
            return;
        }
        let (mut dep_err, mut dep_p99) = (0f64, 0f64);
        for d in &m.dependencies {
            if d.service == m.service || d.calls_per_s.is_nan() || d.calls_per_s <= 0.0 {
                continue;
            }
            if d.error_rate.is_finite() {
                dep_err = dep_err.max(d.error_rate);
            }
            if d.latency_p99_ms.is_finite() {
                dep_p99 = dep_p99.max(d.latency_p99_ms);
            }
        }
        let Some(a) = self.accum(m.ts) else { return };
        a.own += 1;
        a.err += m.error_rate;
        a.p50 += m.latency_p50_ms;
        a.p99 += m.latency_p99_ms;
        a.cpu += m.cpu;
        // u64 -> f64 loses precision only above 2^53 messages.
        a.backlog += m.backlog as f64;
        a.rate_in += m.rate_in;
        a.rate_out += m.rate_out;
        a.dep_err += dep_err;
        a.dep_p99 += dep_p99;
    }

    /// Takes what a caller saw of this service in its sample stamped `ts`.
    pub fn observe_caller(&mut self, ts: Timestamp, dep: &Dependency) {
        if ![dep.calls_per_s, dep.error_rate, dep.latency_p99_ms]
            .iter()
            .all(|v| v.is_finite())
        {
            return;
        }
        let Some(a) = self.accum(ts) else { return };
        a.callers += 1;
        if dep.calls_per_s > 0.0 {
            a.calls += dep.calls_per_s;
            a.weighted_err += dep.calls_per_s * dep.error_rate;
            a.caller_p99 = a.caller_p99.max(dep.latency_p99_ms);
        }
    }

    /// Closes the buckets complete at `now` and returns the features at the last one
    /// (`None` before the service's first own sample).
    pub fn at(&mut self, now: Timestamp) -> Option<BreakerVector> {
        self.close_through(complete_at(now));
        self.series.features()
    }

    /// The finished buckets.
    pub fn series(&self) -> &BreakerSeries {
        &self.series
    }

    fn close_through(&mut self, k: i64) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() > k {
                break;
            }
            let (b, a) = entry.remove_entry();
            // The series starts at the first bucket with an own sample; caller figures
            // before it still carry into it.
            self.fill_to(b);
            self.apply(a);
            if a.own > 0 || self.series.last_index().is_some() {
                self.series.push(b, self.carried);
            }
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

    /// Folds a closed bucket's sums into the carried values.
    fn apply(&mut self, a: Accum) {
        let c = &mut self.carried;
        if a.own > 0 {
            let n = f64::from(a.own);
            c.err = a.err / n;
            c.p50 = a.p50 / n;
            c.p99 = a.p99 / n;
            c.cpu = a.cpu / n;
            c.backlog = a.backlog / n;
            c.rate_in = a.rate_in / n;
            c.rate_out = a.rate_out / n;
            c.dep_err = a.dep_err / n;
            c.dep_p99 = a.dep_p99 / n;
        }
        if a.callers > 0 {
            if a.calls > 0.0 {
                c.caller_err = a.weighted_err / a.calls;
                c.caller_p99 = a.caller_p99;
                c.caller_has = 1.0;
            } else {
                c.caller_err = 0.0;
                c.caller_p99 = 0.0;
                c.caller_has = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Parity with the Python definition (golden vectors written by
    //! `agents/training/train_breaker.py`), and the bucket rules the golden stream does not
    //! reach (late samples, long gaps).

    use std::collections::BTreeMap;
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
        fail_1m: f64,
        features: Vec<f64>,
        output: f64,
    }

    fn golden() -> Golden {
        let path = models_dir().join("testdata/breaker-parity.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }

    /// Feeds the golden samples to per-service state as the agent does (own samples to
    /// their service, dependency entries to the called one, self-calls skipped), deciding
    /// at every tick after the samples stamped at or before it; returns every vector by
    /// (tick, service) with the last minute's failure rate.
    fn replay(g: &Golden) -> BTreeMap<(i64, String), (BreakerVector, f64)> {
        let mut state: BTreeMap<String, BreakerFeatures> = BTreeMap::new();
        let mut samples = g.samples.iter().peekable();
        let mut out = BTreeMap::new();
        for &now in &g.ticks_ms {
            let now_ts = Timestamp::from_millis(now);
            while let Some(m) = samples.next_if(|m| m.ts <= now_ts) {
                state.entry(m.service.clone()).or_default().observe_own(m);
                for d in m.dependencies.iter().filter(|d| d.service != m.service) {
                    state
                        .entry(d.service.clone())
                        .or_default()
                        .observe_caller(m.ts, d);
                }
            }
            for (service, f) in &mut state {
                if let Some(v) = f.at(now_ts) {
                    let fail = f.series().fail_1m().expect("a series with a vector");
                    out.insert((now, service.clone()), (v, fail));
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
        assert_eq!(g.tolerance, 1e-5);
    }

    #[test]
    fn breaker_features_match_python_golden_vectors() {
        let g = golden();
        let got = replay(&g);
        assert!(g.points.len() > 100, "golden points: {}", g.points.len());
        let mut services = std::collections::BTreeSet::new();
        for p in &g.points {
            let key = (p.now_ms, p.service.clone());
            let (v, fail) = got
                .get(&key)
                .unwrap_or_else(|| panic!("no Rust vector for {} at {}", p.service, p.now_ms));
            assert_eq!(v.k, p.k, "{} at {}", p.service, p.now_ms);
            assert!(
                (fail - p.fail_1m).abs() <= g.tolerance,
                "fail_1m of {} at {}: rust {fail}, python {}",
                p.service,
                p.now_ms,
                p.fail_1m
            );
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
        // The golden ticks cover every service that reported, including `db`, whose
        // callers' figures came before its own.
        assert_eq!(
            services.into_iter().collect::<Vec<_>>(),
            ["api", "cache", "db", "worker"]
        );
        // Rust has a vector exactly where Python does, at the golden ticks.
        let ticks: std::collections::BTreeSet<i64> = g.points.iter().map(|p| p.now_ms).collect();
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
            path: models_dir().join("breaker-risk.onnx"),
            version: Some("1.0.0".into()),
            inputs: vec![spec("features", N_FEATURES as i64)],
            outputs: vec![spec("risk", 1)],
            timeout: Duration::from_secs(5),
        };
        let clock = SimClock::new(Timestamp::from_millis(0));
        let host = ModelHost::load(env, &model, HostOptions::default(), Arc::new(clock))
            .unwrap_or_else(|e| panic!("loading the breaker model: {e}"));
        assert_eq!(host.metadata().output_range(), Some((0.0, 1.0)));
        // Rust features -> ort, against Python features -> Python onnxruntime.
        let got = replay(&g);
        let flat: Vec<f32> = g
            .points
            .iter()
            .flat_map(|p| got[&(p.now_ms, p.service.clone())].0.features)
            .collect();
        let out = host.infer(&flat, g.points.len()).expect("inference");
        for (p, o) in g.points.iter().zip(&out) {
            assert!(
                (f64::from(*o) - p.output).abs() <= g.tolerance,
                "risk of {} at {}: rust {o}, python {}",
                p.service,
                p.now_ms,
                p.output
            );
        }
    }

    fn sample(service: &str, ts_ms: i64, err: f64, p99: f64) -> ServiceMetrics {
        ServiceMetrics {
            schema_version: 1,
            service: service.into(),
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

    #[test]
    fn samples_for_closed_buckets_are_late_and_ignored() {
        let mut f = BreakerFeatures::new();
        let base = 1_800_000_000_000; // a multiple of 15 s
        f.observe_own(&sample("s", base + 5_000, 0.0, 20.0));
        f.observe_own(&sample("s", base + 15_000, 0.0, 20.0));
        let v = f
            .at(Timestamp::from_millis(base + 15_000))
            .expect("a vector");
        assert_eq!(v.k, base / 15_000 + 1);
        // Bucket (base, base + 15 s] is closed: a failing sample for it is late.
        f.observe_own(&sample("s", base + 10_000, 1.0, 20.0));
        assert_eq!(f.late(), 1);
        let v = f
            .at(Timestamp::from_millis(base + 20_000))
            .expect("a vector");
        assert_eq!(v.features[0], 0.0, "err of the closed bucket is unchanged");
        // A sample stamped exactly at a boundary belongs to the bucket ending there.
        assert_eq!(
            bucket_of(Timestamp::from_millis(base + 15_000)),
            base / 15_000 + 1
        );
        assert_eq!(
            bucket_of(Timestamp::from_millis(base + 15_001)),
            base / 15_000 + 2
        );
        assert_eq!(
            complete_at(Timestamp::from_millis(base + 29_999)),
            base / 15_000 + 1
        );
    }

    #[test]
    fn long_gaps_carry_forward_and_keep_the_series_start() {
        let mut f = BreakerFeatures::new();
        let base = 1_800_000_000_000;
        f.observe_own(&sample("s", base + 15_000, 0.2, 40.0));
        let first = f
            .at(Timestamp::from_millis(base + 15_000))
            .expect("a vector");
        // Ten hours later: one vector, the gap carried forward (400 buckets skipped to the
        // last 120), `warm` full, the error still the last one seen.
        let later = Timestamp::from_millis(base + 15_000 + 10 * 3_600_000);
        let v = f.at(later).expect("a vector");
        assert_eq!(v.k, first.k + 2400);
        let col = |n: &str| {
            FEATURE_NAMES
                .iter()
                .position(|x| *x == n)
                .expect("a feature")
        };
        assert_eq!(v.features[col("err")], 0.2);
        assert_eq!(v.features[col("warm")], 1.0);
        assert_eq!(
            v.features[col("calm_min")],
            0.0,
            "errors at 20 % every bucket"
        );
        assert_eq!(v.features[col("p99_rel")], 1.0);
        let fail = f.series().fail_1m().expect("a series");
        assert!((fail - 0.2).abs() < 1e-12, "fail_1m {fail}");
        assert!(!f.series().is_tripped());
    }
}
