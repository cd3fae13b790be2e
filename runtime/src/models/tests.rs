//! Tests of the model host, the scaler features and drift.
//!
//! Tests that run a model need ONNX Runtime: they find it like the runtime does
//! (`ORT_DYLIB_PATH`, then the project venv, then the system) and fail, with the message
//! saying to run `agents/training/setup.sh`, when it is missing. They never skip.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde::Deserialize;

use super::drift::{DriftConfig, DriftError, DriftMonitor, FeatureStats};
use super::host::{
    CircuitBreaker, CircuitState, Fallback, HostOptions, InferenceError, LoadError, ModelHost,
    ModelMetadata,
};
use super::library::{
    find_project_root, LibraryError, LibrarySearch, LibrarySource, OrtEnvironment,
};
use super::scaler_features::{
    MinuteBuckets, ScalerFeatures, ScalerSeries, FEATURE_NAMES, N_FEATURES,
};
use crate::clock::{Clock, RealClock, SimClock, Timestamp};
use crate::policy::{ModelRef, TensorSpec, TensorType};

const TOL: f64 = 1e-5;

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn models_dir() -> PathBuf {
    project_root().join("agents/models")
}

/// The process's ONNX Runtime, found by the runtime's resolution order; a missing
/// library fails the test with the fix in the message.
fn ort_env() -> &'static OrtEnvironment {
    let search = LibrarySearch::from_env().with_project_root(project_root());
    match OrtEnvironment::init(&search) {
        Ok(env) => env,
        Err(e) => panic!("ONNX Runtime is needed for this test: {e}"),
    }
}

fn spec(name: &str, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.to_string(),
        elem_type: TensorType::Float32,
        shape: shape.to_vec(),
    }
}

fn model_ref(
    path: impl Into<PathBuf>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    timeout: Duration,
) -> ModelRef {
    ModelRef {
        path: path.into(),
        version: None,
        inputs,
        outputs,
        timeout,
    }
}

fn scaler_ref() -> ModelRef {
    let mut m = model_ref(
        models_dir().join("scaler-forecast.onnx"),
        vec![spec("features", &[-1, 24])],
        vec![spec("p90_ratio", &[-1, 1])],
        Duration::from_secs(5),
    );
    m.version = Some("1.0.0".into());
    m
}

fn test_model(file: &str, timeout: Duration) -> ModelRef {
    model_ref(
        models_dir().join("testdata").join(file),
        vec![spec("x", &[-1, 1])],
        vec![spec("y", &[-1, 1])],
        timeout,
    )
}

fn sim_clock() -> SimClock {
    SimClock::new(Timestamp::from_millis(1_000_000))
}

fn load(model: &ModelRef, options: HostOptions, clock: &SimClock) -> ModelHost {
    match ModelHost::load(ort_env(), model, options, Arc::new(clock.clone())) {
        Ok(host) => host,
        Err(e) => panic!("loading {}: {e}", model.path().display()),
    }
}

fn load_err(model: &ModelRef) -> LoadError {
    match ModelHost::load(
        ort_env(),
        model,
        HostOptions::default(),
        Arc::new(sim_clock()),
    ) {
        Ok(host) => panic!("expected a load error, loaded {host:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------
// Golden vectors (agents/models/testdata/scaler-parity.json, written by train_scaler.py)

#[derive(Debug, Deserialize)]
struct Golden {
    model_version: String,
    feature_names: Vec<String>,
    tolerance: f64,
    start_unix: i64,
    rates: Vec<f64>,
    points: Vec<GoldenPoint>,
}

#[derive(Debug, Deserialize)]
struct GoldenPoint {
    t: u64,
    now_unix: i64,
    #[serde(rename = "D")]
    d: f64,
    features: Vec<f64>,
    output: f64,
    forecast_rate: f64,
}

fn golden() -> Golden {
    let path = models_dir().join("testdata/scaler-parity.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn assert_close(what: &str, rust: f64, python: f64, tol: f64) {
    assert!(
        (rust - python).abs() <= tol,
        "{what}: rust {rust} vs python {python} (diff {:e} > {tol:e})",
        (rust - python).abs()
    );
}

#[test]
fn golden_file_matches_the_rust_constants() {
    let g = golden();
    assert_eq!(g.feature_names, FEATURE_NAMES);
    assert!(g.tolerance <= TOL);
    assert_eq!(g.model_version, "1.0.0");
    assert_eq!(g.points.len(), 25);
}

#[test]
fn scaler_features_match_python_golden_vectors() {
    let g = golden();
    let mut series = ScalerSeries::new(g.start_unix);
    let mut points = g.points.iter().peekable();
    for (i, r) in g.rates.iter().enumerate() {
        series.push(*r).expect("golden rates are valid");
        while let Some(p) = points.next_if(|p| p.t == i as u64) {
            let v = series.features().expect("a bucket was pushed");
            assert_eq!(v.t, p.t);
            assert_eq!(v.now_unix, p.now_unix, "now at t={}", p.t);
            assert_close(&format!("D at t={}", p.t), v.d, p.d, 1e-9 * p.d.max(1.0));
            assert_eq!(p.features.len(), N_FEATURES);
            for (k, (rust, python)) in v.features.iter().zip(&p.features).enumerate() {
                assert_close(
                    &format!("{} at t={}", FEATURE_NAMES[k], p.t),
                    f64::from(*rust),
                    *python,
                    TOL,
                );
            }
        }
    }
    assert!(points.next().is_none(), "every golden point was checked");
}

#[test]
fn samples_through_minute_buckets_give_the_same_features() {
    // Two samples per minute whose mean is the golden rate, at :10 and :40.
    let g = golden();
    let n = 1_500;
    let mut features = ScalerFeatures::new();
    for (i, r) in g.rates[..n].iter().enumerate() {
        let start = (g.start_unix + 60 * i as i64) * 1000;
        features
            .observe(Timestamp::from_millis(start + 10_000), r * 0.5)
            .expect("valid");
        features
            .observe(Timestamp::from_millis(start + 40_000), r * 1.5)
            .expect("valid");
    }
    let now = Timestamp::from_millis((g.start_unix + 60 * n as i64) * 1000);
    let v = features.at(now).expect("minutes are complete");
    let expected = ScalerSeries::from_rates(g.start_unix, &g.rates[..n])
        .expect("valid")
        .features()
        .expect("non-empty");
    assert_eq!(v.t, expected.t);
    assert_eq!(v.now_unix, expected.now_unix);
    for (name, (a, b)) in FEATURE_NAMES
        .iter()
        .zip(v.features.iter().zip(expected.features))
    {
        assert_close(name, f64::from(*a), f64::from(b), TOL);
    }
    // The golden point at t = 600 through the sample path as well.
    let p = g.points.iter().find(|p| p.t == 600).expect("golden point");
    let mut features = ScalerFeatures::new();
    for (i, r) in g.rates[..=600].iter().enumerate() {
        let ts = (g.start_unix + 60 * i as i64) * 1000 + 30_000;
        features
            .observe(Timestamp::from_millis(ts), *r)
            .expect("valid");
    }
    let v = features
        .at(Timestamp::from_millis(p.now_unix * 1000))
        .expect("complete");
    for (name, (a, b)) in FEATURE_NAMES.iter().zip(v.features.iter().zip(&p.features)) {
        assert_close(name, f64::from(*a), *b, TOL);
    }
}

#[test]
fn minute_gaps_repeat_the_last_value() {
    let mut features = ScalerFeatures::new();
    let at = |min: i64, s: i64| Timestamp::from_millis((min * 60 + s) * 1000);
    // Minutes 0, 1 observed; 2..=4 silent; 5 observed.
    features.observe(at(0, 5), 10.0).expect("valid");
    features.observe(at(1, 5), 20.0).expect("valid");
    features.observe(at(5, 5), 40.0).expect("valid");
    // Not complete yet: minute 5 ends at 6:00.
    let v = features.at(at(5, 59)).expect("minutes 0..=4 complete");
    assert_eq!(v.t, 4);
    let v = features.at(at(6, 0)).expect("minute 5 complete");
    assert_eq!(v.t, 5);
    let expected = ScalerSeries::from_rates(0, &[10.0, 20.0, 20.0, 20.0, 20.0, 40.0])
        .expect("valid")
        .features()
        .expect("non-empty");
    assert_eq!(v, expected);
    // Decisions with no telemetry carry the last minute forward.
    let v = features.at(at(8, 0)).expect("complete");
    assert_eq!(v.t, 7);
    assert_eq!(
        features.series().and_then(ScalerSeries::last_rate),
        Some(40.0)
    );
    // A sample for a closed minute is late and ignored.
    features.observe(at(3, 0), 99.0).expect("valid");
    assert_eq!(features.late(), 1);
    assert_eq!(features.at(at(8, 0)).map(|v| v.t), Some(7));
}

#[test]
fn bad_rates_are_refused() {
    let mut s = ScalerSeries::new(0);
    assert!(s.push(f64::NAN).is_err());
    assert!(s.push(-1.0).is_err());
    assert!(s.is_empty());
    let mut b = MinuteBuckets::new();
    let err = b
        .observe(Timestamp::EPOCH, f64::INFINITY, &mut |_, _| {})
        .expect_err("not finite");
    assert_eq!(err.to_string(), "rate inf is not a finite number >= 0");
}

#[test]
fn features_before_a_day_of_history_are_neutral() {
    let s = ScalerSeries::from_rates(0, &[5.0; 100]).expect("valid");
    let v = s.features().expect("non-empty");
    // Lags, ewmas, max are exactly 1 on a constant series; std is 0; seasonal 1, flags 0.
    for (name, x) in FEATURE_NAMES.iter().zip(&v.features[..12]) {
        assert!((x - 1.0).abs() < 1e-6, "{name}");
    }
    assert_eq!(v.features[12], 0.0);
    assert_eq!(v.features[13], 1.0);
    assert_eq!(&v.features[14..20], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    assert_eq!(v.forecast_rate(2.0), 10.0);
}

// ---------------------------------------------------------------------------------------
// ONNX Runtime: output parity, metadata, signature, files

#[test]
fn ort_outputs_match_python_onnxruntime() {
    let g = golden();
    let clock = sim_clock();
    let host = load(&scaler_ref(), HostOptions::default(), &clock);
    let rows: Vec<[f32; N_FEATURES]> = g
        .points
        .iter()
        .map(|p| {
            let mut row = [0f32; N_FEATURES];
            for (dst, src) in row.iter_mut().zip(&p.features) {
                *dst = *src as f32;
            }
            row
        })
        .collect();
    let out = host.infer_rows(&rows).expect("inference");
    assert_eq!(out.len(), g.points.len());
    for (p, o) in g.points.iter().zip(&out) {
        assert_close(
            &format!("output at t={}", p.t),
            f64::from(*o),
            p.output,
            TOL,
        );
    }

    // End to end: Rust features -> ort -> forecast, against the Python forecast.
    let mut series = ScalerSeries::new(g.start_unix);
    let mut vectors = Vec::new();
    let mut points = g.points.iter().peekable();
    for (i, r) in g.rates.iter().enumerate() {
        series.push(*r).expect("valid");
        while points.next_if(|p| p.t == i as u64).is_some() {
            vectors.push(series.features().expect("non-empty"));
        }
    }
    let flat: Vec<f32> = vectors.iter().flat_map(|v| v.features).collect();
    let out = host.infer(&flat, vectors.len()).expect("inference");
    for ((p, v), o) in g.points.iter().zip(&vectors).zip(&out) {
        assert_close(
            &format!("output at t={}", p.t),
            f64::from(*o),
            p.output,
            TOL,
        );
        assert_close(
            &format!("forecast at t={}", p.t),
            v.forecast_rate(*o),
            p.forecast_rate,
            TOL * p.d.max(1.0),
        );
    }

    // One row at a time gives the same as the batch.
    for (row, expected) in rows.iter().zip(host.infer_rows(&rows).expect("batch")) {
        let single = host.infer_rows(std::slice::from_ref(row)).expect("single");
        assert_eq!(single, vec![expected]);
    }
    // Zero rows: nothing, without calling the model.
    assert_eq!(host.infer(&[], 0), Ok(Vec::new()));
}

#[test]
fn ndarray_input_is_accepted() {
    let clock = sim_clock();
    let host = load(
        &test_model("identity.onnx", Duration::from_secs(5)),
        HostOptions::default(),
        &clock,
    );
    let x = ndarray::Array2::from_shape_vec((3, 1), vec![1.0f32, 2.0, 3.0]).expect("shape");
    assert_eq!(host.infer_array(x.view()), Ok(vec![1.0, 2.0, 3.0]));
    // A non-contiguous view (every other row) is copied.
    let x = ndarray::Array2::from_shape_vec((4, 1), vec![1.0f32, 2.0, 3.0, 4.0]).expect("shape");
    let every_other = x.slice(ndarray::s![..;2, ..]);
    assert_eq!(host.infer_array(every_other), Ok(vec![1.0, 3.0]));
    let wide = ndarray::Array2::<f32>::zeros((1, 2));
    assert!(matches!(
        host.infer_array(wide.view()),
        Err(InferenceError::Input(_))
    ));
}

#[test]
fn scaler_metadata_is_read() {
    let clock = sim_clock();
    let host = load(&scaler_ref(), HostOptions::default(), &clock);
    let m = host.metadata();
    assert_eq!(m.name(), Some("scaler-forecast"));
    assert_eq!(m.version(), Some("1.0.0"));
    let digest = m.training_data_sha256().expect("digest");
    assert_eq!(digest.len(), 64);
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(m.feature_names(), FEATURE_NAMES);
    assert_eq!(m.reference_stats().len(), N_FEATURES);
    for (s, name) in m.reference_stats().iter().zip(FEATURE_NAMES) {
        assert_eq!(s.name, name);
        assert_eq!(s.decile_edges.len(), 9);
        assert_eq!(s.proportions.len(), 10);
    }
    assert_eq!(m.output_range(), Some((0.0, 20.0)));
    assert!(m.props().contains_key("feature_spec"));
    assert_eq!(host.row_len(), N_FEATURES);
    assert_eq!(
        host.signature(),
        "[features: f32 [-1, 24]] -> [p90_ratio: f32 [-1, 1]]"
    );
}

#[test]
fn signature_mismatch_names_both_signatures() {
    let mut m = scaler_ref();
    m.inputs = vec![spec("x", &[-1, 10])];
    let err = load_err(&m);
    assert!(matches!(err, LoadError::Signature { .. }), "{err:?}");
    assert_eq!(err.fallback(), Fallback::ModelUnavailable);
    let text = err.to_string();
    assert!(
        text.contains("expected inputs [x: f32 [-1, 10]], model has [features: f32 [-1, 24]]"),
        "{text}"
    );
    assert!(text.contains("scaler-forecast.onnx"), "{text}");
    assert!(!text.contains("outputs"), "outputs match: {text}");

    // Wrong output type and shape.
    let mut m = scaler_ref();
    m.outputs = vec![TensorSpec {
        name: "p90_ratio".into(),
        elem_type: TensorType::Float32,
        shape: vec![-1],
    }];
    let text = load_err(&m).to_string();
    assert!(
        text.contains("expected outputs [p90_ratio: f32 [-1]], model has [p90_ratio: f32 [-1, 1]]"),
        "{text}"
    );

    // An input of the right name and shape but the wrong type cannot even be fed.
    let mut m = scaler_ref();
    m.inputs[0].elem_type = TensorType::Float64;
    let err = load_err(&m);
    assert!(matches!(err, LoadError::Unsupported { .. }), "{err}");
}

#[test]
fn pinned_version_must_match() {
    let mut m = scaler_ref();
    m.version = Some("2.0.0".into());
    let err = load_err(&m);
    assert_eq!(
        err.to_string(),
        format!(
            "model `{}`: the policy expects version 2.0.0, the model's metadata says 1.0.0",
            m.path().display()
        )
    );
}

#[test]
fn corrupt_file_is_a_clear_load_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.onnx");
    std::fs::write(
        &path,
        b"\x08\x07this is not a protobuf \xff\xfe\x00\x01 model",
    )
    .expect("write");
    let mut m = scaler_ref();
    m.path = path.clone();
    let err = load_err(&m);
    assert!(matches!(err, LoadError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "model file `{}` is corrupt or not an ONNX model: ",
            path.display()
        )),
        "{err}"
    );

    std::fs::write(&path, b"").expect("write");
    let err = load_err(&m);
    assert_eq!(
        err.to_string(),
        format!(
            "model file `{}` is corrupt or not an ONNX model: the file is empty",
            path.display()
        )
    );

    // A truncated real model.
    let bytes = std::fs::read(models_dir().join("scaler-forecast.onnx")).expect("model");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let err = load_err(&m);
    assert!(matches!(err, LoadError::Corrupt { .. }), "{err:?}");
}

#[test]
fn missing_file_is_a_clear_load_error() {
    let mut m = scaler_ref();
    m.path = models_dir().join("no-such-model.onnx");
    let err = load_err(&m);
    assert_eq!(
        err.to_string(),
        format!("model file `{}` does not exist", m.path.display())
    );
    assert_eq!(err.fallback().as_str(), "model_unavailable");
}

// ---------------------------------------------------------------------------------------
// Guards and the circuit breaker

#[test]
fn nan_output_falls_back() {
    let clock = sim_clock();
    let host = load(
        &test_model("nan.onnx", Duration::from_secs(5)),
        HostOptions::default(),
        &clock,
    );
    let err = host.infer(&[1.0, 2.0], 2).expect_err("NaN output");
    assert!(
        matches!(err, InferenceError::NonFinite { row: 0, index: 0, value } if value.is_nan()),
        "{err:?}"
    );
    assert_eq!(err.fallback(), Fallback::NonFiniteOutput);
    assert_eq!(err.fallback().to_string(), "non_finite_output");
}

#[test]
fn out_of_range_output_falls_back() {
    let clock = sim_clock();
    let host = load(
        &test_model("identity.onnx", Duration::from_secs(5)),
        HostOptions::default(),
        &clock,
    );
    assert_eq!(host.metadata().output_range(), Some((0.0, 10.0)));
    assert_eq!(host.infer(&[0.0, 5.0, 10.0], 3), Ok(vec![0.0, 5.0, 10.0]));
    let err = host.infer(&[5.0, 11.0], 2).expect_err("out of range");
    assert_eq!(
        err,
        InferenceError::OutOfRange {
            row: 1,
            index: 1,
            value: 11.0,
            min: 0.0,
            max: 10.0
        }
    );
    assert_eq!(err.fallback().as_str(), "out_of_range");
    assert_eq!(
        err.to_string(),
        "output 1 (row 1) is 11, outside the declared range [0, 10]"
    );
    let err = host.infer(&[-0.5], 1).expect_err("below range");
    assert_eq!(err.fallback(), Fallback::OutOfRange);
}

#[test]
fn bad_input_is_refused_without_counting_against_the_model() {
    let clock = sim_clock();
    let options = HostOptions {
        failure_threshold: 1,
        ..HostOptions::default()
    };
    let host = load(
        &test_model("identity.onnx", Duration::from_secs(5)),
        options,
        &clock,
    );
    let err = host
        .infer(&[1.0, 2.0, 3.0], 2)
        .expect_err("3 values for 2 rows");
    assert_eq!(
        err.to_string(),
        "bad model input: 2 rows of 1 values need 2 values, found 3"
    );
    assert_eq!(err.fallback(), Fallback::InferenceError);
    let err = host.infer(&[1.0, f32::NAN], 2).expect_err("NaN input");
    assert!(matches!(err, InferenceError::Input(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "bad model input: row 1, value 0 (`x`) is not finite: NaN"
    );
    assert_eq!(
        host.circuit(),
        CircuitState::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(host.infer(&[1.0], 1), Ok(vec![1.0]));
}

#[test]
fn inference_is_timed_on_the_injected_timer_and_refused_input_is_not() {
    let clock = sim_clock();
    let timer = SimClock::new(Timestamp::from_millis(0));
    let host = load(
        &test_model("identity.onnx", Duration::from_secs(5)),
        HostOptions::default(),
        &clock,
    )
    .with_timer(Arc::new(timer));
    // The metadata `name` labels the figures.
    assert_eq!(host.stats().name(), "test-identity");
    assert_eq!(host.infer(&[1.0], 1), Ok(vec![1.0]));
    assert!(host.infer(&[1.0, 2.0, 3.0], 2).is_err(), "bad input");
    assert_eq!(host.infer(&[], 0), Ok(vec![]), "no rows, no call");
    let h = host.stats().inference();
    // One call, which took no time on a timer that never moves: the first bucket.
    assert_eq!(h.count(), 1, "{h:?}");
    assert_eq!(h.buckets[0].count, 1, "{h:?}");
    assert_eq!(h.sum(), 0.0);
}

#[test]
fn slow_model_times_out_and_the_runtime_goes_on() {
    let clock = sim_clock();
    let options = HostOptions {
        failure_threshold: 2,
        ..HostOptions::default()
    };
    let timeout = Duration::from_millis(150);
    let host = load(&test_model("slow.onnx", timeout), options, &clock);
    let wall = RealClock;
    let started = wall.now();
    let err = host.infer(&[1.0], 1).expect_err("slow");
    assert_eq!(err, InferenceError::Timeout { after: timeout });
    assert_eq!(err.fallback().as_str(), "timeout");
    assert_eq!(err.to_string(), "inference timed out after 150ms");
    // The run was terminated: the worker is free again well before the model would end
    // by itself (about 20 s), so the second call also gets its full timeout.
    let err = host.infer(&[1.0], 1).expect_err("slow again");
    assert_eq!(err.fallback(), Fallback::Timeout);
    let elapsed = wall.now().since(started);
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    // Two failures in a row open the circuit: the model is not called.
    let err = host.infer(&[1.0], 1).expect_err("circuit open");
    assert_eq!(err.fallback(), Fallback::CircuitOpen);
    assert!(matches!(
        host.circuit(),
        CircuitState::Open { until } if until == clock.now().plus(Duration::from_secs(30))
    ));
    // Both timed-out calls are in the latency histogram (on the wall clock: the breaker's
    // simulated clock did not move), each at least its timeout; the refused call is not.
    let h = host.stats().inference();
    assert_eq!(h.count(), 2, "{h:?}");
    assert!(h.sum() >= 0.3, "{h:?}");
    assert_eq!(
        h.buckets
            .iter()
            .take_while(|b| b.le < 0.15)
            .map(|b| b.count)
            .sum::<u64>(),
        0,
        "{h:?}"
    );

    // Meanwhile another model on the same environment answers.
    let identity = load(
        &test_model("identity.onnx", Duration::from_secs(5)),
        HostOptions::default(),
        &clock,
    );
    assert_eq!(identity.infer(&[2.0], 1), Ok(vec![2.0]));
}

#[test]
fn circuit_opens_after_k_failures_and_half_opens_after_the_cool_off() {
    let clock = sim_clock();
    let options = HostOptions {
        failure_threshold: 3,
        cool_off: Duration::from_secs(30),
        ..HostOptions::default()
    };
    let host = load(
        &test_model("identity.onnx", Duration::from_secs(5)),
        options,
        &clock,
    );
    // A success in between resets the count.
    for _ in 0..2 {
        assert!(host.infer(&[11.0], 1).is_err());
    }
    assert_eq!(host.infer(&[1.0], 1), Ok(vec![1.0]));
    for _ in 0..3 {
        let err = host.infer(&[11.0], 1).expect_err("out of range");
        assert_eq!(err.fallback(), Fallback::OutOfRange);
    }
    let opened = clock.now();
    let until = opened.plus(Duration::from_secs(30));
    assert_eq!(host.circuit(), CircuitState::Open { until });
    // Open: even a good input is not sent to the model.
    let err = host.infer(&[1.0], 1).expect_err("open");
    assert_eq!(err, InferenceError::CircuitOpen { until: Some(until) });
    assert_eq!(err.fallback().as_str(), "circuit_open");

    clock.advance(Duration::from_secs(29));
    assert!(host.infer(&[1.0], 1).is_err(), "still cooling off");
    clock.advance(Duration::from_secs(1));
    assert_eq!(host.circuit(), CircuitState::HalfOpen { probing: false });
    // The probe fails: open again for a full cool-off.
    assert_eq!(
        host.infer(&[11.0], 1).map_err(|e| e.fallback()),
        Err(Fallback::OutOfRange)
    );
    let until = clock.now().plus(Duration::from_secs(30));
    assert_eq!(host.circuit(), CircuitState::Open { until });
    clock.advance(Duration::from_secs(30));
    // The probe succeeds: closed.
    assert_eq!(host.infer(&[3.0], 1), Ok(vec![3.0]));
    assert_eq!(
        host.circuit(),
        CircuitState::Closed {
            consecutive_failures: 0
        }
    );
}

#[test]
fn nan_model_trips_the_circuit() {
    let clock = sim_clock();
    let host = load(
        &test_model("nan.onnx", Duration::from_secs(5)),
        HostOptions {
            failure_threshold: 2,
            cool_off: Duration::from_secs(10),
            ..HostOptions::default()
        },
        &clock,
    );
    let reasons: Vec<Fallback> = (0..4)
        .map(|_| host.infer(&[1.0], 1).expect_err("NaN").fallback())
        .collect();
    assert_eq!(
        reasons,
        [
            Fallback::NonFiniteOutput,
            Fallback::NonFiniteOutput,
            Fallback::CircuitOpen,
            Fallback::CircuitOpen
        ]
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        host.infer(&[1.0], 1).map_err(|e| e.fallback()),
        Err(Fallback::NonFiniteOutput),
        "the half-open probe calls the model"
    );
    assert_eq!(
        host.infer(&[1.0], 1).map_err(|e| e.fallback()),
        Err(Fallback::CircuitOpen)
    );
}

#[test]
fn breaker_lets_one_probe_through_at_a_time() {
    let t0 = Timestamp::from_millis(0);
    let mut b = CircuitBreaker::new(1, Duration::from_secs(5));
    assert_eq!(b.admit(t0), Ok(()));
    b.record_failure(t0);
    let until = t0.plus(Duration::from_secs(5));
    assert_eq!(b.admit(t0), Err(Some(until)));
    assert_eq!(b.admit(until), Ok(()), "the probe");
    assert_eq!(b.state(until), CircuitState::HalfOpen { probing: true });
    assert_eq!(
        b.admit(until),
        Err(None),
        "a second caller waits for the probe"
    );
    b.record_success();
    assert_eq!(b.admit(until), Ok(()));
    assert_eq!(
        b.state(until),
        CircuitState::Closed {
            consecutive_failures: 0
        }
    );
}

#[test]
fn hosts_are_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ModelHost>();
    send_sync::<OrtEnvironment>();
    let clock = sim_clock();
    let host = Arc::new(load(
        &test_model("identity.onnx", Duration::from_secs(5)),
        HostOptions::default(),
        &clock,
    ));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let host = Arc::clone(&host);
            std::thread::spawn(move || {
                let x = [i as f32; 8];
                host.infer(&x, 8)
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().expect("thread");
        assert_eq!(out, Ok(vec![i as f32; 8]));
    }
}

#[test]
fn fallback_reasons_are_the_recorded_names() {
    let names: Vec<&str> = Fallback::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "inference_error",
            "timeout",
            "non_finite_output",
            "out_of_range",
            "model_unavailable",
            "circuit_open"
        ]
    );
    for f in Fallback::ALL {
        assert_eq!(
            serde_json::to_value(f).expect("serializes"),
            serde_json::Value::String(f.as_str().into())
        );
    }
}

#[test]
fn malformed_metadata_is_named() {
    let props = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
    let (key, problem) =
        ModelMetadata::from_props(props("output_range", "[3, 1]")).expect_err("min > max");
    assert_eq!(key, "output_range");
    assert!(problem.contains("min <= max"), "{problem}");
    let (key, _) =
        ModelMetadata::from_props(props("reference_stats", "{}")).expect_err("not a list");
    assert_eq!(key, "reference_stats");
    let bad = r#"[{"name":"x","mean":0,"std":1,"decile_edges":[1,0],"proportions":[0.3,0.3,0.4]}]"#;
    let (_, problem) =
        ModelMetadata::from_props(props("reference_stats", bad)).expect_err("unsorted");
    assert!(problem.contains("not sorted"), "{problem}");
    let m = ModelMetadata::from_props(Default::default()).expect("all optional");
    assert_eq!(m.name(), None);
    assert_eq!(m.output_range(), None);
}

// ---------------------------------------------------------------------------------------
// Library resolution

#[test]
fn library_resolution_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let capi = root.join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
    std::fs::create_dir_all(&capi).expect("mkdir");
    std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").expect("write");
    std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").expect("write");
    let explicit = root.join("custom.so");
    std::fs::write(&explicit, b"").expect("write");

    // 1. ORT_DYLIB_PATH wins.
    let search = LibrarySearch {
        env_path: Some(explicit.clone().into_os_string()),
        project_root: Some(root.to_path_buf()),
    };
    let found = search.locate().expect("found");
    assert_eq!(found.source, LibrarySource::EnvVar);
    assert_eq!(found.path, explicit);

    // ... and pointing nowhere is an error, not a fall-through.
    let search = LibrarySearch {
        env_path: Some(root.join("nope.so").into_os_string()),
        project_root: Some(root.to_path_buf()),
    };
    let err = search.locate().expect_err("missing");
    assert!(matches!(err, LibraryError::EnvPathMissing { .. }));
    assert!(
        err.to_string().contains("run `agents/training/setup.sh`"),
        "{err}"
    );

    // 2. The project venv (empty ORT_DYLIB_PATH counts as unset).
    let search = LibrarySearch {
        env_path: Some("".into()),
        project_root: Some(root.to_path_buf()),
    };
    let found = search.locate().expect("found");
    assert_eq!(found.source, LibrarySource::ProjectVenv);
    assert_eq!(found.path, capi.join("libonnxruntime.so.1.31.1"));

    // 3. Otherwise the system loader; when it fails too, the error says what fixes it.
    let empty = tempfile::tempdir().expect("temp dir");
    let search = LibrarySearch::default().with_project_root(empty.path());
    let found = search.locate().expect("system");
    assert_eq!(found.source, LibrarySource::System);
    assert_eq!(found.path, PathBuf::from("libonnxruntime.so"));
    let text = search
        .not_found("libonnxruntime.so: cannot open shared object file")
        .to_string();
    assert!(
        text.starts_with(
            "ONNX Runtime library not found (ORT_DYLIB_PATH is not set; no libonnxruntime.so* in "
        ),
        "{text}"
    );
    assert!(
        text.contains("system loader: libonnxruntime.so: cannot open shared object file"),
        "{text}"
    );
    assert!(text.ends_with(
        "run `agents/training/setup.sh` (it installs onnxruntime 1.31.1 into the project venv), \
         or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31 or later"
    ), "{text}");
}

#[test]
fn project_root_is_found_from_below() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/models");
    assert_eq!(find_project_root(&here), Some(project_root()));
    let elsewhere = tempfile::tempdir().expect("temp dir");
    assert_eq!(find_project_root(elsewhere.path()), None);
}

#[test]
fn environment_reports_its_library() {
    let env = ort_env();
    assert!(
        env.build_info().starts_with("ORT Build Info"),
        "{}",
        env.build_info()
    );
    assert!(env
        .library()
        .path
        .to_string_lossy()
        .contains("libonnxruntime"));
}

// ---------------------------------------------------------------------------------------
// Drift

fn uniform_stats(names: &[&str]) -> Vec<FeatureStats> {
    names
        .iter()
        .map(|n| FeatureStats {
            name: (*n).to_string(),
            mean: 0.5,
            std: 0.2887,
            decile_edges: (1..10).map(|i| f64::from(i) / 10.0).collect(),
            proportions: vec![0.1; 10],
        })
        .collect()
}

/// A value in bin `b` of `stats`, uniform within the bin (the outer bins get a width
/// of one inner bin).
fn sample_in_bin(stats: &FeatureStats, b: usize, u: f64) -> f64 {
    let e = &stats.decile_edges;
    let width = ((e[e.len() - 1] - e[0]) / (e.len() - 1) as f64).max(1e-3);
    let (lo, hi) = if b == 0 {
        (e[0] - width, e[0])
    } else if b == e.len() {
        (e[b - 1], e[b - 1] + width)
    } else {
        (e[b - 1], e[b])
    };
    lo + u * (hi - lo)
}

/// Rows drawn from the reference distribution (bin by its proportions), then
/// `shift(feature, value)` applied.
fn reference_rows(
    stats: &[FeatureStats],
    n: usize,
    seed: u64,
    shift: impl Fn(usize, f64) -> f64,
) -> Vec<f32> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * stats.len());
    for _ in 0..n {
        for (f, s) in stats.iter().enumerate() {
            let mut pick: f64 = rng.random();
            let mut bin = s.proportions.len() - 1;
            for (i, p) in s.proportions.iter().enumerate() {
                if pick < *p {
                    bin = i;
                    break;
                }
                pick -= p;
            }
            let x = sample_in_bin(s, bin, rng.random());
            out.push(shift(f, x) as f32);
        }
    }
    out
}

#[test]
fn drift_flagged_on_a_shifted_stream_not_on_an_unshifted_one() {
    let stats = uniform_stats(&["a", "b", "c"]);
    let mut steady = DriftMonitor::new(stats.clone(), DriftConfig::default()).expect("valid");
    steady
        .observe_batch(&reference_rows(&stats, 3_000, 1, |_, x| x))
        .expect("rows");
    let report = steady.report();
    assert_eq!(
        report.rows, 1_000,
        "a rolling window of the last 1,000 rows"
    );
    assert!(!report.drifted, "{report:?}");
    assert!(report.features.iter().all(|f| f.psi < 0.05), "{report:?}");

    // Feature `b` moves up by three deciles.
    let mut shifted = DriftMonitor::new(stats.clone(), DriftConfig::default()).expect("valid");
    shifted
        .observe_batch(&reference_rows(&stats, 1_000, 2, |f, x| {
            if f == 1 {
                x + 0.3
            } else {
                x
            }
        }))
        .expect("rows");
    let report = shifted.report();
    assert!(report.drifted, "{report:?}");
    assert_eq!(report.worst().map(|f| f.name.as_str()), Some("b"));
    assert!(
        !report.features[0].drifted && !report.features[2].drifted,
        "{report:?}"
    );

    // The window rolls: after 1,000 reference rows the shift is forgotten.
    shifted
        .observe_batch(&reference_rows(&stats, 1_000, 3, |_, x| x))
        .expect("rows");
    assert!(!shifted.report().drifted);
}

#[test]
fn drift_against_the_scaler_models_reference_stats() {
    let clock = sim_clock();
    let host = load(&scaler_ref(), HostOptions::default(), &clock);
    let stats = host.metadata().reference_stats().to_vec();
    let mut monitor = DriftMonitor::new(stats.clone(), DriftConfig::default()).expect("valid");
    monitor
        .observe_batch(&reference_rows(&stats, 1_000, 7, |_, x| x))
        .expect("rows");
    let report = monitor.report();
    assert!(!report.drifted, "{:?}", report.worst());

    // Load 50% above its level: every lag ratio moves.
    let mut monitor = DriftMonitor::new(stats.clone(), DriftConfig::default()).expect("valid");
    monitor
        .observe_batch(&reference_rows(&stats, 1_000, 7, |f, x| {
            if f < 8 {
                x * 1.5
            } else {
                x
            }
        }))
        .expect("rows");
    let report = monitor.report();
    assert!(report.drifted);
    assert!(report.features[..8].iter().all(|f| f.drifted), "{report:?}");
    assert!(
        report.features[8..].iter().all(|f| !f.drifted),
        "{report:?}"
    );
}

#[test]
fn drift_needs_enough_rows_and_valid_rows() {
    let stats = uniform_stats(&["a"]);
    let config = DriftConfig {
        window: 100,
        threshold: 0.2,
        min_rows: 50,
    };
    let mut m = DriftMonitor::new(stats, config).expect("valid");
    for _ in 0..49 {
        m.observe(&[5.0]).expect("row");
    }
    let report = m.report();
    assert!(report.features[0].psi > 0.2);
    assert!(!report.drifted, "49 rows are below min_rows");
    m.observe(&[5.0]).expect("row");
    assert!(m.report().drifted);
    assert_eq!(
        m.observe(&[1.0, 2.0]),
        Err(DriftError::Width {
            expected: 1,
            found: 2
        })
    );
    assert!(matches!(
        m.observe(&[f32::NAN]),
        Err(DriftError::NonFinite { .. })
    ));
    m.reset();
    assert_eq!(m.report().rows, 0);
    assert!(!m.report().drifted);
}

#[test]
fn psi_follows_the_spec_binning() {
    // bin = number of edges <= x: x equal to an edge goes up.
    let stats = &uniform_stats(&["a"])[0];
    assert_eq!(stats.bin(0.05), 0);
    assert_eq!(stats.bin(0.1), 1);
    assert_eq!(stats.bin(0.95), 9);
    // Equal edges: a 0/1 flag falls in bin 0 or bin 9.
    let flag = FeatureStats {
        name: "flag".into(),
        mean: 0.5,
        std: 0.5,
        decile_edges: vec![0.5; 9],
        proportions: vec![0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5],
    };
    assert_eq!(flag.bin(0.0), 0);
    assert_eq!(flag.bin(1.0), 9);
    // PSI by hand: live all in bin 0 vs 0.5 / 0.5.
    let psi = super::drift::psi(&flag.proportions, &[10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 10);
    let expected = (1.0 - 0.5) * (1.0f64 / 0.5).ln() + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
    assert!((psi - expected).abs() < 1e-12, "{psi} vs {expected}");
}
