//! `conclave models check`: load every model a policy names, as the agents would, and show
//! what was found — the ONNX Runtime library, each model's signature and metadata, and a
//! test inference on the model's own reference means (one row, timed).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use conclave_agents::Catalog;
use conclave_runtime::models::{HostOptions, ModelHost, OrtEnvironment};
use conclave_runtime::{policy, Clock, RealClock};

/// The policy, or `None` after printing its errors.
fn load(path: &Path) -> Option<conclave_runtime::Policy> {
    match policy::load(path, &Catalog) {
        Ok(p) => Some(p),
        Err(errors) => {
            for e in errors {
                println!("{e}");
            }
            None
        }
    }
}

/// Checks the models of `policy_path`; exit 1 when any cannot be used.
pub fn check(policy_path: &Path) -> anyhow::Result<ExitCode> {
    let Some(policy) = load(policy_path) else {
        return Ok(ExitCode::from(1));
    };
    let models: Vec<_> = policy
        .agents()
        .iter()
        .filter_map(|(name, a)| a.model().map(|m| (name.clone(), m.clone())))
        .collect();
    if models.is_empty() {
        println!("{}: no agent names a model", policy_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let env = match OrtEnvironment::global() {
        Ok(env) => env,
        Err(e) => {
            println!("ONNX Runtime: {e}");
            println!("the agents run on their rules until this is fixed");
            return Ok(ExitCode::from(1));
        }
    };
    println!(
        "ONNX Runtime: {} ({:?})",
        env.library().path.display(),
        env.library().source
    );
    let clock: Arc<dyn Clock> = Arc::new(RealClock);
    let mut failed = false;
    for (agent, model) in models {
        println!("\n{agent}: {}", model.path().display());
        let host = match ModelHost::load(env, &model, HostOptions::default(), clock.clone()) {
            Ok(h) => h,
            Err(e) => {
                println!("  error: {e}");
                println!("  fallback: {}", e.fallback());
                failed = true;
                continue;
            }
        };
        let md = host.metadata();
        println!("  signature: {}", host.signature());
        println!(
            "  metadata: name {}, version {}, training data sha256 {}",
            md.name().unwrap_or("-"),
            md.version().unwrap_or("-"),
            md.training_data_sha256().unwrap_or("-")
        );
        println!(
            "  features ({}): {}",
            md.feature_names().len(),
            md.feature_names().join(", ")
        );
        if let Some((lo, hi)) = md.output_range() {
            println!("  output range: [{lo}, {hi}]");
        }
        let row: Vec<f32> = if md.reference_stats().len() == host.row_len() {
            md.reference_stats().iter().map(|s| s.mean as f32).collect()
        } else {
            vec![0.0; host.row_len()]
        };
        let start = clock.now();
        match host.infer(&row, 1) {
            Ok(out) => println!(
                "  test inference on the reference means: {:?} in {:.2} ms",
                out,
                clock.now().since(start).as_secs_f64() * 1000.0
            ),
            Err(e) => {
                println!("  test inference failed: {e} (fallback: {})", e.fallback());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `conclave models explain`: the model's output for one input row, and which features
/// moved it most. Contributions are by occlusion: each feature in turn is set to its
/// training mean (from the model's reference statistics) and the change in output is its
/// contribution — model-agnostic, so it works for the tree ensembles shipped here, and
/// all rows go to the model as one batch.
pub fn explain(
    policy_path: &Path,
    agent: &str,
    input: &Path,
    top: usize,
) -> anyhow::Result<ExitCode> {
    let Some(policy) = load(policy_path) else {
        return Ok(ExitCode::from(1));
    };
    let Some(model) = policy.agents().get(agent).and_then(|a| a.model()) else {
        anyhow::bail!(
            "agent `{agent}` of {} names no model",
            policy_path.display()
        );
    };
    let env = OrtEnvironment::global()?;
    let host = ModelHost::load(env, model, HostOptions::default(), Arc::new(RealClock))?;
    let md = host.metadata();
    let names = md.feature_names();
    let means: Vec<f32> = md.reference_stats().iter().map(|s| s.mean as f32).collect();
    if names.len() != host.row_len() || means.len() != host.row_len() {
        anyhow::bail!(
            "the model's metadata has {} feature names and {} reference statistics for {} inputs; cannot explain without them",
            names.len(),
            means.len(),
            host.row_len()
        );
    }
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading `{}`", input.display()))?;
    let row = parse_row(&text, names, &means).with_context(|| format!("`{}`", input.display()))?;
    let mut batch = row.clone();
    for i in 0..row.len() {
        let mut r = row.clone();
        r[i] = means[i];
        batch.extend(r);
    }
    let out = host.infer(&batch, row.len() + 1)?;
    let per_row = out.len() / (row.len() + 1);
    let base = out[0];
    println!(
        "{} {} on {}: output {base}",
        md.name().unwrap_or("model"),
        md.version().unwrap_or("-"),
        input.display()
    );
    let mut contributions: Vec<(usize, f32)> = (0..row.len())
        .map(|i| (i, base - out[(i + 1) * per_row]))
        .collect();
    contributions.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    println!("top features (output minus output with the feature at its training mean):");
    for (i, c) in contributions.into_iter().take(top) {
        println!(
            "  {:<14} value {:>10.4}  mean {:>10.4}  contribution {:>+9.4}",
            names[i], row[i], means[i], c
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A row from JSON: an array of numbers in the model's feature order, or an object of
/// feature name -> number (features left out take their training mean).
fn parse_row(text: &str, names: &[String], means: &[f32]) -> anyhow::Result<Vec<f32>> {
    let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let number = |x: &serde_json::Value, what: &str| -> anyhow::Result<f32> {
        x.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f as f32)
            .ok_or_else(|| anyhow::anyhow!("{what}: expected a finite number, found {x}"))
    };
    match v {
        serde_json::Value::Array(items) => {
            if items.len() != names.len() {
                anyhow::bail!("expected {} numbers, found {}", names.len(), items.len());
            }
            items
                .iter()
                .enumerate()
                .map(|(i, x)| number(x, &names[i]))
                .collect()
        }
        serde_json::Value::Object(map) => {
            if let Some(unknown) = map.keys().find(|k| !names.contains(k)) {
                anyhow::bail!(
                    "unknown feature `{unknown}`; the model's features are {}",
                    names.join(", ")
                );
            }
            names
                .iter()
                .zip(means)
                .map(|(n, m)| map.get(n).map_or(Ok(*m), |x| number(x, n)))
                .collect()
        }
        _ => anyhow::bail!("expected an array of numbers or an object of feature -> number"),
    }
}
