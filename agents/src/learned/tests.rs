//! The shared learned-model plumbing on the one-value test models
//! (`agents/models/testdata/`, made by `agents/training/make_test_models.py`). Needs ONNX
//! Runtime (found by the runtime's resolution order); never skips.

use std::time::Duration;

use conclave_runtime::models::Fallback;
use conclave_runtime::policy::ModelRef;
use conclave_runtime::{ModelId, Timestamp};

use super::*;
use crate::test_support::{compile_at, models_dir, require_ort};

const ONE: Signature = Signature {
    agent: "test",
    kind: "test",
    feature_names: &["x"],
    outputs_per_row: 1,
};

/// The scaler's model reference in a policy naming `path` with a `[-1, 1]` signature.
fn model_ref(path: &str) -> ModelRef {
    require_ort();
    let yaml = format!(
        r#"apiVersion: conclave/v1
kind: Policy
metadata: {{name: learned-test}}
spec:
  targets: [{{name: checkout, kind: service}}]
  agents:
    scaler:
      mode: enforce
      targets: {{names: [checkout]}}
      model:
        path: {path}
        inputs: [{{name: x, type: float32, shape: [-1, 1]}}]
        outputs: [{{name: y, type: float32, shape: [-1, 1]}}]
        timeout: 5s
  arbiter: {{window: 15s}}
"#
    );
    let policy = compile_at(&models_dir().join("learned-test.yaml"), &yaml);
    policy
        .agent("scaler")
        .and_then(|a| a.model())
        .cloned()
        .expect("the policy names a model")
}

fn learned(path: &str, signature: &Signature) -> Learned {
    let model = LearnedModel::load(&model_ref(path), signature);
    Learned::new(model, signature, DriftSettings::default(), &[])
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + s * 1000)
}

#[test]
fn one_call_per_batch_and_its_record_for_the_trace() {
    let mut l = learned("testdata/identity.onnx", &ONE);
    assert_eq!(
        l.model_id(),
        Some(&ModelId {
            name: "test-identity".into(),
            version: "0.0.1".into()
        })
    );
    l.begin_features();
    l.start_batch();
    l.push_row(&[0.25]);
    l.push_row(&[0.75]);
    assert_eq!(l.infer(at(0), 2), Ok(vec![0.25, 0.75]));
    let record = l.inference().expect("a loaded model's call is recorded");
    assert_eq!((record.rows, record.features), (2, 1));
    assert_eq!(record.fallback, None);
    assert!(record.latency.is_some(), "the model was called and timed");
    assert_eq!(l.stats().map(|s| s.inference().count()), Some(1));

    // An empty batch calls nothing, and says so.
    l.start_batch();
    assert_eq!(l.infer(at(15), 0), Ok(Vec::new()));
    let record = l.inference().expect("recorded");
    assert_eq!((record.rows, record.latency), (0, None));
}

#[test]
fn a_nan_model_is_a_fault_for_the_batch_and_the_record_says_why() {
    let mut l = learned("testdata/nan.onnx", &ONE);
    l.start_batch();
    l.push_row(&[1.0]);
    assert_eq!(
        l.infer(at(0), 1),
        Err(Fault::Model(Fallback::NonFiniteOutput))
    );
    let record = l.inference().expect("recorded");
    assert_eq!(record.fallback.as_deref(), Some("non_finite_output"));
    assert!(!Fault::Model(Fallback::NonFiniteOutput).is_standing());
}

#[test]
fn a_model_for_other_features_is_unavailable_naming_both() {
    const TWO: Signature = Signature {
        agent: "pair",
        kind: "pair test",
        feature_names: &["a", "b"],
        outputs_per_row: 1,
    };
    let mut l = learned("testdata/identity.onnx", &TWO);
    let path = models_dir().join("testdata/identity.onnx");
    assert_eq!(
        l.load_error(),
        Some(
            format!(
                "model `{}` is not a pair test model: it takes rows of 1 values, the pair \
                 computes 2 features",
                path.display()
            )
            .as_str()
        )
    );
    l.start_batch();
    assert_eq!(
        l.infer(at(0), 0),
        Err(Fault::Model(Fallback::ModelUnavailable))
    );
    assert!(Fault::Model(Fallback::ModelUnavailable).is_standing());
    // Nothing was called: no record, and no execute_tool span.
    assert!(l.inference().is_none());
}

#[test]
fn a_missing_file_is_unavailable() {
    let l = learned("testdata/no-such-model.onnx", &ONE);
    let error = l.load_error().expect("unavailable");
    assert!(
        error.ends_with("no-such-model.onnx` does not exist"),
        "{error}"
    );
    assert_eq!(l.model_id(), None);
}

#[test]
fn inference_records_compare_without_their_timings() {
    let id = ModelId {
        name: "m".into(),
        version: "1".into(),
    };
    let a = Inference {
        model: id.clone(),
        rows: 3,
        features: 2,
        feature_time: Duration::from_micros(5),
        latency: Some(Duration::from_micros(40)),
        fallback: None,
    };
    let b = Inference {
        feature_time: Duration::from_micros(9),
        latency: Some(Duration::from_micros(77)),
        ..a.clone()
    };
    assert_eq!(a, b);
    assert_ne!(a, Inference { rows: 4, ..b });
}
