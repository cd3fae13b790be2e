//! `conclave replay`: recorded telemetry through the runtime again, in event time, under
//! a (new) policy, and its decisions compared with an earlier audit log, in one step: what
//! would this policy have decided differently on that traffic?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::run::{RunArgs, TimeMode};

/// `conclave replay` options.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Recorded telemetry, JSON Lines (`conclave simulate --record DIR` writes
    /// `DIR/<run>/telemetry.jsonl`; a capture of a production topic works too).
    pub telemetry: PathBuf,
    /// The policy to replay under.
    #[arg(long)]
    pub policy: PathBuf,
    /// The audit log to compare with (e.g. `target/simulate/<scenario>/policy-audit.jsonl`).
    #[arg(long)]
    pub against: PathBuf,
    /// Where the replay's own files go (audit log, dead letters, actions).
    #[arg(long, default_value = "target/replay")]
    pub out: PathBuf,
}

/// Replays, then diffs; exit 0 when every decision is the same, 1 when any differs.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating `{}`", args.out.display()))?;
    let audit = args.out.join("audit.jsonl");
    // A replay starts from nothing: an audit log or override journal left by an earlier
    // replay would be appended to (or restored from).
    for stale in [audit.clone(), args.out.join("overrides.jsonl")] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing `{}`", stale.display())),
        }
    }
    let run = RunArgs {
        policy: args.policy.clone(),
        telemetry: args.telemetry.to_string_lossy().into_owned(),
        audit: audit.clone(),
        dead_letters: args.out.join("dead-letters.jsonl"),
        actions: args.out.join("actions.log"),
        time: Some(TimeMode::Event),
        partitions: 1,
        capacity: 65_536,
        overload: "block".to_string(),
        quiet: true,
        pulsar: None,
        name: None,
        api: super::serve_api::ApiArgs {
            api: None,
            api_tokens: None,
            api_tls_cert: None,
            api_tls_key: None,
            keda: None,
            overrides: None,
        },
    };
    // A replay's metrics are its own and go nowhere.
    let metrics = std::sync::Arc::new(conclave_runtime::metrics::Metrics::default());
    let code = super::run::run(&run, metrics)?;
    if code != ExitCode::SUCCESS {
        // The policy did not load; `run` printed why.
        return Ok(code);
    }
    println!(
        "replayed `{}` under `{}`; decisions compared with `{}`:",
        args.telemetry.display(),
        args.policy.display(),
        args.against.display()
    );
    super::decisions::diff(&args.against, &audit)
}
