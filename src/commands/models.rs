//! `conclave models check`: load every model a policy names, as the agents would, and show
//! what was found — the ONNX Runtime library, each model's signature and metadata, and a
//! test inference on the model's own reference means (one row, timed).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use conclave_agents::Catalog;
use conclave_runtime::models::{HostOptions, ModelHost, OrtEnvironment};
use conclave_runtime::{policy, Clock, RealClock};

/// Checks the models of `policy_path`; exit 1 when any cannot be used.
pub fn check(policy_path: &Path) -> anyhow::Result<ExitCode> {
    let policy = match policy::load(policy_path, &Catalog) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                println!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
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
