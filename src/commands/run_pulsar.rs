//! `conclave run --pulsar URL`: the runtime on Apache Pulsar. Telemetry comes from the
//! policy's topics on a shared subscription and is acknowledged only after the decisions
//! it fed are in the audit log; actions go to the actions topic; bad telemetry to the
//! dead-letter topic (and the local dead-letter file); overrides from the control topic.
//! Runs until Ctrl-C or SIGTERM, then drains: everything received is decided,
//! acknowledged, and the consumers closed.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use conclave_runtime::actuator::SinkActuator;
use conclave_runtime::audit::{AuditWriter, FsyncPolicy};
use conclave_runtime::bus::pulsar::{
    open_sources, spawn_control, spawn_control_publisher, spawn_fleet_budget, ControlEvent,
    PulsarActionSink, PulsarDeadLetters, PulsarTransport, SubscriptionType, TopicReader,
};
use conclave_runtime::fleet_budget::FleetShare;
use conclave_runtime::metrics::Metrics;
use conclave_runtime::telemetry::{DeadLetter, DeadLetterSink, JsonlDeadLetters};
use conclave_runtime::{Clock, Policy, RealClock, Runtime, RuntimeConfig, Tuning};
use tokio::sync::mpsc;

use super::run::{create_parents, print_decision, specs, summary, RunArgs};

/// Dead letters go to the Pulsar topic and the local file.
#[derive(Debug)]
struct Both(PulsarDeadLetters, Arc<JsonlDeadLetters>);

impl DeadLetterSink for Both {
    fn send(&self, letter: DeadLetter) {
        self.1.send(letter.clone());
        self.0.send(letter);
    }
}

async fn terminated() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub(crate) async fn run(
    args: &RunArgs,
    url: &str,
    policy: Arc<Policy>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<ExitCode> {
    let specs = specs(&policy)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("conclave-{}", std::process::id()));
    // Deployment over policy: the token and CA files may come from the environment.
    let settings = policy.pulsar().clone().with_env(|v| std::env::var_os(v));
    let transport = PulsarTransport::connect(url, settings.clone(), &name, Duration::from_secs(10))
        .await
        .context("connecting to Pulsar")?;
    let clock: Arc<dyn Clock> = Arc::new(RealClock);
    let window = policy.arbiter().window();
    let sources = open_sources(&transport, args.partitions, window, clock.clone())
        .await
        .context("subscribing to the telemetry topics")?;
    let actions = PulsarActionSink::open(&transport)
        .await
        .context("opening the actions topic")?;
    let pulsar_dead_letters = PulsarDeadLetters::open(&transport)
        .await
        .context("opening the dead-letter topic")?;
    create_parents(&[&args.audit, &args.dead_letters])?;
    let local_dead_letters = Arc::new(
        JsonlDeadLetters::open(&args.dead_letters)
            .with_context(|| format!("opening `{}`", args.dead_letters.display()))?,
    );
    let audit = AuditWriter::open(
        &args.audit,
        // Acknowledging a message promises its decision is durable: fsync every record.
        FsyncPolicy::EveryRecord,
        clock.clone(),
    )
    .with_context(|| format!("opening the audit log `{}`", args.audit.display()))?;
    let journal =
        super::serve_api::open_journal(&args.api.journal_path(&args.audit), clock.as_ref())?;
    let (tap_tx, mut tap) = mpsc::unbounded_channel();
    let key_shared = settings.subscription_type == SubscriptionType::KeyShared;
    // Instances that split the targets share the fleet budget through an elected holder;
    // a failover singleton sees every target and keeps the budget itself.
    let shared_budget = key_shared && policy.fleet_replica_budget().is_some();
    let runtime = Runtime::start_with_metrics(
        RuntimeConfig {
            journal: Some(journal),
            policy: policy.clone(),
            agents: specs,
            sources: sources.sources,
            audit,
            actuator: Box::new(SinkActuator::new(actions)),
            dead_letters: Arc::new(Both(
                pulsar_dead_letters.clone(),
                local_dead_letters.clone(),
            )),
            clock: clock.clone(),
            decision_tap: Some(tap_tx),
            tuning: Tuning {
                decide_only_observed: key_shared,
                fleet_share: shared_budget
                    .then(|| FleetShare::new(name.clone(), settings.budget.lease)),
                ..Tuning::default()
            },
        },
        metrics,
    )
    .await?;
    let fleet_budget = if shared_budget {
        Some(
            spawn_fleet_budget(&transport, runtime.handle(), clock.clone())
                .await
                .context("sharing the fleet replica budget")?,
        )
    } else {
        None
    };
    let control_sources = sources.control;
    let acker = tokio::spawn(
        control_sources
            .acker(runtime.handle(), Some(pulsar_dead_letters.clone()))
            .run(),
    );
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    spawn_control(&transport, runtime.handle(), control_tx)
        .await
        .context("subscribing to the control topic")?;
    // Overrides made through this instance's API go to the others on the control topic.
    let fanout = match args.api.api {
        Some(_) => Some(
            spawn_control_publisher(&transport)
                .await
                .context("publishing to the control topic")?,
        ),
        None => None,
    };
    let servers = Arc::new(
        super::serve_api::Servers::start(&args.api, runtime.handle(), clock.clone(), fanout)
            .await?,
    );
    // Every instance answers KEDA for every target: the scales the others carried out
    // arrive on the actions topic.
    let actions_reader = match servers.scale_book() {
        Some(book) => {
            let mut reader = TopicReader::open_non_durable(
                &transport,
                &settings.actions_topic,
                &format!("conclave-keda-{name}"),
            )
            .await
            .context("reading the actions topic for the KEDA scaler")?;
            let book = book.clone();
            Some(tokio::spawn(async move {
                loop {
                    if let Some(m) = reader.next(Duration::from_secs(3600)).await {
                        book.record_action(&m.payload);
                    }
                }
            }))
        }
        None => None,
    };
    let served = servers.clone();
    let auth = match &settings.auth {
        Some(from) => format!(", token in {from}"),
        None => String::new(),
    };
    eprintln!(
        "{name}: running on {url}{auth}, subscription `{}` ({:?}), actions to {}",
        settings.subscription, settings.subscription_type, settings.actions_topic
    );
    if shared_budget {
        eprintln!(
            "{name}: fleet_replica_budget shared: reports to {}, grants on {}, lease {:?}",
            settings.budget.reports_topic, settings.budget.grants_topic, settings.budget.lease
        );
    }
    let quiet = args.quiet;
    let printer = tokio::spawn(async move {
        let mut seq = 0;
        loop {
            tokio::select! {
                d = tap.recv() => match d {
                    Some(d) => {
                        if !quiet {
                            print_decision(&d, &mut seq);
                        }
                        served.record(d);
                    }
                    None => break,
                },
                Some(e) = control_rx.recv() => match e {
                    ControlEvent::Applied(o, _) => println!("override {} applied: {:?} by {} ({})", o.id, o.kind, o.by.name, o.reason),
                    ControlEvent::Rejected(why) => eprintln!("control: {why}"),
                },
            }
        }
    });

    let hangups = super::reload::on_hangup(args.policy.clone(), runtime.handle())?;
    terminated().await;
    hangups.abort();
    eprintln!("{name}: stopping; deciding what was received");
    control_sources.stop();
    let budget_stats = fleet_budget.map(|b| {
        let stats = b.stats().clone();
        // Leaving the holder subscription hands the budget to another instance.
        b.stop();
        stats
    });
    let report = runtime.shutdown().await?;
    acker.abort();
    pulsar_dead_letters.flushed().await;
    let stats = control_sources.stats();
    control_sources.close().await;
    let _ = printer.await;
    if let Ok(servers) = Arc::try_unwrap(servers) {
        servers.shutdown().await;
    }
    if let Some(reader) = actions_reader {
        reader.abort();
    }
    local_dead_letters
        .flush()
        .with_context(|| format!("flushing `{}`", args.dead_letters.display()))?;
    eprintln!("{}", summary(true, &report.counters, &args.audit));
    eprintln!(
        "pulsar: {} delivered, {} redeliveries skipped, {} acknowledged, {} returned (nack), {} consumers recreated, {} dead letters published, {} proposals for targets owned elsewhere",
        stats.delivered.load(Ordering::Relaxed),
        stats.redeliveries.load(Ordering::Relaxed),
        stats.acked.load(Ordering::Relaxed),
        stats.nacked.load(Ordering::Relaxed),
        stats.recreated.load(Ordering::Relaxed),
        pulsar_dead_letters.published(),
        report.counters.proposals_not_owned,
    );
    if let Some(b) = budget_stats {
        eprintln!(
            "fleet budget: {} reports sent, {} grants taken, {} reports received as holder, {} grants published, {} refused",
            b.reports_sent.load(Ordering::Relaxed),
            b.grants_taken.load(Ordering::Relaxed),
            b.reports_held.load(Ordering::Relaxed),
            b.grants_published.load(Ordering::Relaxed),
            b.refused.load(Ordering::Relaxed),
        );
    }
    Ok(ExitCode::SUCCESS)
}
