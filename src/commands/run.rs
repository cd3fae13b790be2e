//! `conclave run`: the runtime on the embedded bus, fed JSON Lines telemetry from a file or
//! stdin, printing decisions as they are made and writing them to the audit log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use conclave_agents::{agent_specs, Catalog};
use conclave_runtime::actuator::LogActuator;
use conclave_runtime::audit::{format_tail_line, AuditLine, AuditRecord, AuditWriter, FsyncPolicy};
use conclave_runtime::bus::{BusConfig, EmbeddedBus, OverloadPolicy, Replayer, TelemetrySource};
use conclave_runtime::metrics::Metrics;
use conclave_runtime::telemetry::JsonlDeadLetters;
use conclave_runtime::{
    policy, Clock, Decision, RealClock, Runtime, RuntimeConfig, SimClock, Timestamp, Tuning,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const TOPIC: &str = "telemetry";

/// Which clock decisions run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeMode {
    /// The wall clock: windows close as real time passes (live input).
    Wall,
    /// Event time: the clock follows the telemetry's timestamps (replays; deterministic).
    Event,
}

/// `conclave run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The policy to run under; SIGHUP reloads it (same agents and window).
    #[arg(long)]
    pub policy: PathBuf,
    /// JSON Lines telemetry, or `-` for stdin.
    #[arg(long, default_value = "-")]
    pub telemetry: String,
    /// The audit log (appended to).
    #[arg(long, default_value = "target/run/audit.jsonl")]
    pub audit: PathBuf,
    /// Where bad telemetry is kept, with the reason.
    #[arg(long, default_value = "target/run/dead-letters.jsonl")]
    pub dead_letters: PathBuf,
    /// Where the log actuator writes the actions it carries out.
    #[arg(long, default_value = "target/run/actions.log")]
    pub actions: PathBuf,
    /// `event` (default for a file) or `wall` (default for stdin).
    #[arg(long, value_enum)]
    pub time: Option<TimeMode>,
    /// Partitions of the telemetry topic (ingress actors).
    #[arg(long, default_value_t = 1)]
    pub partitions: usize,
    /// Messages a partition holds before the overload policy applies.
    #[arg(long, default_value_t = 65_536)]
    pub capacity: usize,
    /// What a full partition does: `block` the reader, or `drop-oldest`.
    #[arg(long, default_value = "block", value_parser = ["block", "drop-oldest"])]
    pub overload: String,
    /// Print only the summary, not each decision.
    #[arg(long)]
    pub quiet: bool,
    /// Run on Apache Pulsar (`pulsar://127.0.0.1:6650`): telemetry from the policy's
    /// topics (`spec.pulsar`), actions to its actions topic; `--telemetry` is not read.
    #[arg(long, value_name = "URL")]
    pub pulsar: Option<String>,
    /// This instance's name on the Pulsar subscription (default: `conclave-<pid>`).
    #[arg(long)]
    pub name: Option<String>,
    /// The operator API and the override journal.
    #[command(flatten)]
    pub api: super::serve_api::ApiArgs,
}

pub(crate) fn print_decision(d: &Decision, seq: &mut u64) {
    *seq += 1;
    let line = AuditLine {
        seq: *seq,
        record: AuditRecord::Decision(d.clone()),
    };
    println!("{}", format_tail_line(&line));
    for r in &d.reasons {
        println!("    [{}] {}", r.code.as_str(), r.message);
    }
}

/// Runs until the input ends (or Ctrl-C), then drains and prints a summary. The runtime
/// records into `metrics`.
pub fn run(args: &RunArgs, metrics: Arc<Metrics>) -> anyhow::Result<ExitCode> {
    let policy = match policy::load(&args.policy, &Catalog) {
        Ok(p) => Arc::new(p),
        Err(errors) => {
            for e in errors {
                println!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = match &args.pulsar {
        Some(url) => tokio.block_on(super::run_pulsar::run(args, url, policy, metrics)),
        None => tokio.block_on(run_async(args, policy, metrics)),
    };
    // Tokio reads stdin on a blocking thread that stays parked in `read` after Ctrl-C;
    // everything that matters was drained and flushed above, so don't wait for it.
    tokio.shutdown_background();
    result
}

async fn run_async(
    args: &RunArgs,
    policy: Arc<conclave_runtime::Policy>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<ExitCode> {
    let time = args.time.unwrap_or(if args.telemetry == "-" {
        TimeMode::Wall
    } else {
        TimeMode::Event
    });
    let specs = specs(&policy)?;
    let sim = match time {
        TimeMode::Event => Some(Arc::new(SimClock::new(Timestamp::EPOCH))),
        TimeMode::Wall => None,
    };
    let clock: Arc<dyn Clock> = match &sim {
        Some(s) => s.clone(),
        None => Arc::new(RealClock),
    };
    let bus = EmbeddedBus::new(BusConfig {
        partitions: args.partitions.max(1),
        capacity: args.capacity.max(1),
        overload: if args.overload == "drop-oldest" {
            OverloadPolicy::DropOldest
        } else {
            OverloadPolicy::Block
        },
    });
    let sources: Vec<Box<dyn TelemetrySource>> = bus
        .subscribe(TOPIC)
        .into_iter()
        .map(|s| Box::new(s) as Box<dyn TelemetrySource>)
        .collect();
    create_parents(&[&args.audit, &args.dead_letters, &args.actions])?;
    let audit = AuditWriter::open(
        &args.audit,
        FsyncPolicy::Interval(Duration::from_secs(1)),
        clock.clone(),
    )
    .with_context(|| format!("opening the audit log `{}`", args.audit.display()))?;
    let dead_letters = Arc::new(
        JsonlDeadLetters::open(&args.dead_letters)
            .with_context(|| format!("opening `{}`", args.dead_letters.display()))?,
    );
    let actions = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.actions)
        .with_context(|| format!("opening `{}`", args.actions.display()))?;
    let journal =
        super::serve_api::open_journal(&args.api.journal_path(&args.audit), clock.as_ref())?;
    let (tap_tx, mut tap) = mpsc::unbounded_channel();
    let runtime = Runtime::start_with_metrics(
        RuntimeConfig {
            journal: Some(journal),
            policy: policy.clone(),
            agents: specs,
            sources,
            audit,
            actuator: Box::new(LogActuator::new(std::io::BufWriter::new(actions))),
            dead_letters: dead_letters.clone(),
            clock: clock.clone(),
            decision_tap: Some(tap_tx),
            tuning: Tuning::default(),
        },
        metrics,
    )
    .await?;
    let servers = Arc::new(
        super::serve_api::Servers::start(&args.api, runtime.handle(), clock.clone(), None).await?,
    );
    let hangups = super::reload::on_hangup(args.policy.clone(), runtime.handle())?;
    let served = servers.clone();
    let quiet = args.quiet;
    let printer = tokio::spawn(async move {
        let mut seq = 0;
        while let Some(d) = tap.recv().await {
            if !quiet {
                print_decision(&d, &mut seq);
            }
            served.record(d);
        }
    });

    let window = policy.arbiter().window();
    let mut feeder = Replayer::new(
        bus.producer(TOPIC),
        sim.clone(),
        window,
        Tuning::default().decode.max_future_skew,
    );
    // Live input: event time is now, so the wall clock drives the windows.
    let ticker = (time == TimeMode::Wall).then(|| {
        let producer = bus.producer(TOPIC);
        let clock = clock.clone();
        tokio::spawn(async move {
            loop {
                let now = clock.now();
                if producer.publish_watermark(now).await.is_err() {
                    break;
                }
                clock.sleep_until(now.plus(Duration::from_secs(1))).await;
            }
        })
    });

    let interrupted = read_input(&args.telemetry, &mut feeder).await?;
    if let Some(t) = ticker {
        t.abort();
    }
    // Close the last (partial) window so its proposals are decided too: in event time at
    // the boundary where it would have closed, live at once.
    if time == TimeMode::Event {
        feeder.finish().await?;
    } else {
        feeder_flush_now(&bus, clock.as_ref()).await?;
    }
    hangups.abort();
    bus.close(TOPIC);
    let report = runtime.shutdown().await?;
    let _ = printer.await;
    if let Ok(servers) = Arc::try_unwrap(servers) {
        servers.shutdown().await;
    }
    dead_letters
        .flush()
        .with_context(|| format!("flushing `{}`", args.dead_letters.display()))?;
    eprintln!("{}", summary(interrupted, &report.counters, &args.audit));
    Ok(ExitCode::SUCCESS)
}

/// The agents the policy configures.
pub(crate) fn specs(
    policy: &Arc<conclave_runtime::Policy>,
) -> anyhow::Result<Vec<conclave_runtime::AgentSpec>> {
    agent_specs(policy).map_err(|errors| {
        let text: Vec<String> = errors
            .iter()
            .map(|(agent, p)| format!("spec.agents.{agent}.settings.{}: {}", p.path, p.message))
            .collect();
        anyhow::anyhow!("agent settings: {}", text.join("; "))
    })
}

/// Creates the folders of the given files.
pub(crate) fn create_parents(paths: &[&PathBuf]) -> anyhow::Result<()> {
    for path in paths {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating `{}`", dir.display()))?;
        }
    }
    Ok(())
}

/// The one-line summary after a run.
pub(crate) fn summary(
    interrupted: bool,
    c: &conclave_runtime::events::CounterSnapshot,
    audit: &Path,
) -> String {
    format!(
        "{}: {} messages, {} decoded, {} dead-lettered{}, {} decisions in {} windows, {} actions; audit log {}",
        if interrupted { "interrupted" } else { "done" },
        c.received,
        c.decoded,
        c.dead_lettered_total(),
        if c.dead_lettered.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                c.dead_lettered
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        c.decisions.values().sum::<u64>(),
        c.ticks,
        c.actuated,
        audit.display()
    )
}

async fn feeder_flush_now(bus: &EmbeddedBus, clock: &dyn Clock) -> anyhow::Result<()> {
    bus.producer(TOPIC).publish_flush(clock.now()).await?;
    Ok(())
}

/// Feeds every line of `source`; returns whether Ctrl-C stopped it early.
async fn read_input(source: &str, feeder: &mut Replayer) -> anyhow::Result<bool> {
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if source == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(Path::new(source))
                .await
                .with_context(|| format!("opening the telemetry file `{source}`"))?,
        )
    };
    let mut lines = BufReader::new(reader).split(b'\n');
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(true),
            line = lines.next_segment() => {
                let Some(line) = line.context("reading telemetry")? else {
                    return Ok(false);
                };
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                feeder.line(line).await?;
            }
        }
    }
}
