//! `conclave`: the command line. Parses arguments, calls into the crates, maps errors to
//! exit codes (0 ok, 1 the input was checked and found wanting, 2 usage or I/O error).

mod commands;
mod metrics_export;
mod observability;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Multi-agent autonomous operations for event-driven platforms.
#[derive(Debug, Parser)]
#[command(name = "conclave", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, explain, test and describe policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Read the decision audit log.
    #[command(subcommand)]
    Decisions(DecisionsCommand),
    /// Run a scripted arbiter demo under a policy and write its audit log.
    /// Run the agents and the arbiter on telemetry (JSON Lines from a file or stdin) on the
    /// embedded bus; decisions go to stdout and the audit log.
    Run(commands::run::RunArgs),
    /// Rehearse a policy on a simulated fleet (scenario file), next to the `none`
    /// baseline; prints a comparison and writes report.json and report.html.
    Simulate(commands::simulate::SimulateArgs),
    /// Replay recorded telemetry under a policy (event time) and compare its decisions
    /// with an earlier audit log; exit 1 when any differs.
    Replay(commands::replay::ReplayArgs),
    /// Publish JSON Lines telemetry to a Pulsar topic, keyed by target.
    Publish(commands::publish::PublishArgs),
    /// ONNX models named in a policy.
    #[command(subcommand)]
    Models(ModelsCommand),
    #[command(flatten)]
    Operator(commands::operator_cli::OperatorCommand),
    Demo {
        /// The policy to run under.
        #[arg(long, default_value = "policies/ecommerce.yaml")]
        policy: PathBuf,
        /// Where to write the audit log.
        #[arg(long, default_value = "target/demo/audit.jsonl")]
        audit: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Load every model the policy names (as the agents would), print the ONNX Runtime
    /// library, each model's signature and metadata, and run a test inference.
    Check {
        /// The policy.
        #[arg(long)]
        policy: PathBuf,
    },
    /// The output of an agent's model for one input row (JSON: an array in feature order,
    /// or an object feature -> value), and the features that moved it most.
    Explain {
        /// The policy naming the model.
        #[arg(long)]
        policy: PathBuf,
        /// The agent whose model to explain.
        #[arg(long, default_value = "scaler")]
        agent: String,
        /// How many features to list.
        #[arg(long, default_value_t = 8)]
        top: usize,
        /// The input row.
        input: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate policy files; list every error with its line and column.
    Validate {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the effective policy with every default filled in.
    Explain {
        /// Policy file.
        file: PathBuf,
    },
    /// Print the JSON Schema of policy files.
    Schema,
    /// Run policy tests (files of `kind: PolicyTest`, or folders of them).
    Test {
        /// Test files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum DecisionsCommand {
    /// Print the last decisions, one per line.
    Tail {
        /// The audit log.
        #[arg(long, default_value = "target/demo/audit.jsonl")]
        log: PathBuf,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing records as they are appended.
        #[arg(short, long)]
        follow: bool,
        /// Only this agent's decisions.
        #[arg(long)]
        agent: Option<String>,
        /// Only decisions about this target.
        #[arg(long)]
        target: Option<String>,
        /// Only decisions with this outcome (enacted, modified, shadowed, advised, rejected,
        /// pending, overridden).
        #[arg(long)]
        outcome: Option<String>,
    },
    /// The gap between each agent's model and its rule: how often the rule alone would
    /// have proposed the same, by how much they differ, the latest disagreements, and
    /// the proposals the rule made because the model could not be used.
    Gap {
        /// The audit log (a shadow run's, or a live one's).
        #[arg(long, default_value = "target/demo/audit.jsonl")]
        log: PathBuf,
    },
    /// Compare two audit logs' decisions by id (e.g. a replay of recorded telemetry
    /// under a new policy against the original run); exit 1 when they differ.
    Diff {
        /// The original audit log.
        old: PathBuf,
        /// The one to compare with it.
        new: PathBuf,
    },
    /// Explain one decision: its proposals, reasons in order, outcome and trace.
    Explain {
        /// The decision id.
        id: String,
        /// The audit log.
        #[arg(long, default_value = "target/demo/audit.jsonl")]
        log: PathBuf,
    },
}

/// Restores the default SIGPIPE action, so `conclave ... | head` ends quietly when the
/// reader goes away instead of panicking in `println!` (Rust ignores SIGPIPE by default).
/// Only for commands that talk to no network peer: a vectored write (`writev`) to a socket
/// whose peer closed raises SIGPIPE too, and would kill a runtime during a broker restart.
#[cfg(unix)]
fn reset_sigpipe() {
    // SAFETY: called once at the start of `main`, before any thread exists; setting a
    // signal's disposition to its default has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn reset_sigpipe() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Policy(_)
            | Command::Decisions(_)
            | Command::Demo { .. }
            | Command::Simulate(_)
            | Command::Models(_)
            | Command::Replay(_)
    ) {
        reset_sigpipe();
    }
    // Logs go to stderr, warnings and up unless `CONCLAVE_LOG` says otherwise; traces go
    // by OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The guard flushes them once the
    // command (for `run`, the drained runtime) has finished.
    let telemetry = observability::init();
    let result = match cli.command {
        Command::Policy(PolicyCommand::Validate { files }) => commands::policy::validate(&files),
        Command::Policy(PolicyCommand::Explain { file }) => commands::policy::explain(&file),
        Command::Policy(PolicyCommand::Schema) => commands::policy::schema(),
        Command::Policy(PolicyCommand::Test { paths }) => commands::policy::test(&paths),
        Command::Decisions(DecisionsCommand::Tail {
            log,
            lines,
            follow,
            agent,
            target,
            outcome,
        }) => {
            let filter = conclave_runtime::audit::TailFilter {
                agent,
                target: target.map(conclave_runtime::Target::new),
                outcome,
            };
            commands::decisions::tail(&log, lines, follow, filter)
        }
        Command::Decisions(DecisionsCommand::Gap { log }) => commands::decisions::gap(&log),
        Command::Decisions(DecisionsCommand::Diff { old, new }) => {
            commands::decisions::diff(&old, &new)
        }
        Command::Decisions(DecisionsCommand::Explain { id, log }) => {
            commands::decisions::explain(&log, &id)
        }
        Command::Demo { policy, audit } => commands::demo::run(&policy, &audit),
        Command::Run(args) => {
            // The runtime's metrics: served at /metrics with --api, sent by OTLP when
            // OTEL_EXPORTER_OTLP_ENDPOINT is set (once more when this guard drops).
            let metrics = metrics_export::init();
            telemetry.count_export_errors(metrics.registry());
            commands::run::run(&args, metrics.registry())
        }
        Command::Operator(cmd) => commands::operator_cli::run(cmd),
        Command::Simulate(args) => commands::simulate::run(&args),
        Command::Publish(args) => commands::publish::run(&args),
        Command::Replay(args) => commands::replay::run(&args),
        Command::Models(ModelsCommand::Check { policy }) => commands::models::check(&policy),
        Command::Models(ModelsCommand::Explain {
            policy,
            agent,
            top,
            input,
        }) => commands::models::explain(&policy, &agent, &input, top),
    };
    drop(telemetry);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
