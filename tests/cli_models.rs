//! `conclave models check` (issue #6): the real scaler model through ONNX Runtime from the
//! project venv, a signature mismatch, and a corrupt file.

use std::path::Path;
use std::process::Command;

use crate::golden::root;

fn policy(dir: &Path, model: &Path, width: u32) -> std::path::PathBuf {
    let text = format!(
        "apiVersion: conclave/v1
kind: Policy
metadata: {{name: models-check}}
spec:
  agents:
    scaler:
      mode: shadow
      model:
        path: {}
        inputs: [{{name: features, type: float32, shape: [-1, {width}]}}]
        outputs: [{{name: p90_ratio, type: float32, shape: [-1, 1]}}]
",
        model.display()
    );
    let p = dir.join(format!("policy-{width}.yaml"));
    std::fs::write(&p, text).expect("written");
    p
}

fn check(policy: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["models", "check", "--policy"])
        .arg(policy)
        .current_dir(root())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_scaler_model_loads_with_its_signature_and_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = root().join("agents/models/scaler-forecast.onnx");
    let (code, out) = check(&policy(dir.path(), &model, 24));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("  signature: [features: f32 [-1, 24]] -> [p90_ratio: f32 [-1, 1]]"),
        "{out}"
    );
    assert!(
        out.contains(
            "  metadata: name scaler-forecast, version 1.0.0, training data sha256 94aacf8b"
        ),
        "{out}"
    );
    assert!(
        out.contains("  test inference on the reference means: ["),
        "{out}"
    );
}

#[test]
fn a_signature_mismatch_and_a_corrupt_file_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = root().join("agents/models/scaler-forecast.onnx");
    let (code, out) = check(&policy(dir.path(), &model, 10));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "expected inputs [features: f32 [-1, 10]], model has [features: f32 [-1, 24]]"
        ),
        "{out}"
    );
    assert!(out.contains("  fallback: model_unavailable"), "{out}");

    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"this is not a protobuf").expect("written");
    let (code, out) = check(&policy(dir.path(), &corrupt, 24));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  error: "), "{out}");
    assert!(out.contains("  fallback: model_unavailable"), "{out}");
}

fn explain(input: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("row.json");
    std::fs::write(&path, input).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args([
            "models",
            "explain",
            "--policy",
            "simulations/scenarios/trace-learned-policy.yaml",
            "--top",
            "3",
        ])
        .arg(&path)
        .current_dir(root())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_ranks_the_features_that_moved_the_forecast() {
    // A surge now: the current minute at 3x the level, the rest at their training means.
    let (code, out, err) = explain(r#"{"r_lag0": 3.0}"#);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("scaler-forecast 1.0.0 on "), "{out}");
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[2].trim_start().starts_with("r_lag0 "), "{out}");
    assert!(lines[2].contains("contribution   +"), "{out}");

    let (code, _, err) = explain(r#"{"r_lag99": 1.0}"#);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown feature `r_lag99`; the model's features are r_lag0, "),
        "{err}"
    );
    let (code, _, err) = explain("[1, 2]");
    assert_eq!(code, 2);
    assert!(err.contains("expected 24 numbers, found 2"), "{err}");
    let (code, _, err) = explain(r#"{"r_lag0": "high"}"#);
    assert_eq!(code, 2);
    assert!(
        err.contains("r_lag0: expected a finite number, found \"high\""),
        "{err}"
    );
}
