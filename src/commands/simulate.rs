//! `conclave simulate`: rehearse a policy on a simulated fleet, next to what happens when
//! nothing intervenes, and write `report.json` and `report.html`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use conclave_agents::Catalog;
use conclave_runtime::policy;
use conclave_sim::driver::{simulate, RunKind};
use conclave_sim::{report, scenario};
use indicatif::{ProgressBar, ProgressStyle};

/// `conclave simulate` options.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Run the scenario under this policy instead of the one it names.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Where `report.json`, `report.html` and the runs' audit logs go
    /// (default `target/simulate/<scenario name>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where relative trace paths in the scenario resolve.
    #[arg(long, default_value = "simulations/traces")]
    pub traces: PathBuf,
    /// Record each run's telemetry, event labels and fleet states under this folder
    /// (`<run>/telemetry.jsonl` replays with `conclave run --telemetry`; all three are the
    /// models' training data).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Baselines to run next to the policy, comma-separated: `none` (static replicas),
    /// `rules` (the policy with its models removed), `oracle` (perfect-foresight scaler).
    /// Default: `none,oracle`, plus `rules` when an agent of the policy uses a model.
    #[arg(long, value_delimiter = ',')]
    pub compare: Option<Vec<String>>,
    /// `enforce` (default): the policy's agents act on the fleet as the policy says.
    /// `shadow`: they run without acting, and their would-be scaling decisions are scored
    /// against the oracle's plan.
    #[arg(long, default_value = "enforce", value_parser = ["enforce", "shadow"])]
    pub mode: String,
}

fn print_errors(errors: &[conclave_runtime::PolicyError]) {
    for e in errors {
        println!("{e}");
    }
}

/// Runs the scenario's baselines and the policy, prints the comparison, writes reports.
pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let scenario = match scenario::load(&args.scenario, &args.traces) {
        Ok(s) => s,
        Err(errors) => {
            print_errors(&errors);
            return Ok(ExitCode::from(1));
        }
    };
    let policy_path = args
        .policy
        .clone()
        .unwrap_or_else(|| scenario.policy.clone());
    let policy = match policy::load(&policy_path, &Catalog) {
        Ok(p) => Arc::new(p),
        Err(errors) => {
            print_errors(&errors);
            return Ok(ExitCode::from(1));
        }
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("target/simulate").join(&scenario.name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating `{}`", out.display()))?;

    let has_models = policy.agents().values().any(|a| a.model().is_some());
    let compare: Vec<String> = args.compare.clone().unwrap_or_else(|| {
        let mut d = vec!["none".to_owned()];
        if has_models {
            d.push("rules".to_owned());
        }
        d.push("oracle".to_owned());
        d
    });
    let mut kinds = vec![if args.mode == "shadow" {
        RunKind::Shadow
    } else {
        RunKind::Policy
    }];
    for name in &compare {
        match RunKind::parse(name.trim()) {
            Some(RunKind::Policy | RunKind::Shadow) | None => {
                anyhow::bail!(
                    "unknown baseline `{name}` in --compare; expected none, rules or oracle"
                )
            }
            Some(k) if !kinds.contains(&k) => kinds.push(k),
            Some(_) => {}
        }
    }
    // Report order: none, policy, rules, oracle (the table compares each with `none`).
    kinds.sort_by_key(|k| RunKind::ALL.iter().position(|a| a == k));
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} steps ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let run_index = std::sync::atomic::AtomicU64::new(0);
    let progress = |done: u64, total: u64| {
        if done == 1 {
            let i = run_index.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
            bar.set_prefix(kinds.get(i).map_or("", |k| k.as_str()));
            bar.set_length(total);
        }
        if done.is_multiple_of(64) || done == total {
            bar.set_position(done);
        }
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = tokio.block_on(simulate(
        &scenario,
        &policy,
        &kinds,
        &out,
        args.record.as_deref(),
        &progress,
    ))?;
    bar.finish_and_clear();

    let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
    let json_path = out.join("report.json");
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing `{}`", json_path.display()))?;
    let html_path = out.join("report.html");
    std::fs::write(&html_path, report::render_html(&report))
        .with_context(|| format!("writing `{}`", html_path.display()))?;
    println!(
        "Scenario `{}` (seed {}) under policy `{}`:",
        scenario.name,
        scenario.seed_value,
        policy.name()
    );
    print!("{}", report::render_table(&report));
    for run in &report.runs {
        if let Some(s) = &run.totals.shadow {
            println!(
                "{}: {} would-be scaling decisions; direction agreed with the oracle in {:.0} %; mean |replicas - oracle| {:.2} would-be vs {:.2} doing nothing",
                run.name,
                s.scale_decisions,
                s.direction_agreement * 100.0,
                s.mean_abs_error_would,
                s.mean_abs_error_static
            );
        }
    }
    println!("report: {}", html_path.display());
    println!("data:   {}", json_path.display());
    if let Some(dir) = &args.record {
        println!("recorded: {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
