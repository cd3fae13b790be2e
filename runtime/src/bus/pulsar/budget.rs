//! The fleet replica budget on Pulsar (see [`crate::fleet_budget`]): every instance
//! reports its use on the reports topic, the active consumer of a Failover subscription on
//! that topic is the holder and answers on the grants topic, and each instance reads the
//! grants topic on a subscription of its own and hands its grants to its arbiter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::pulsar::consumer::{ConsumerOptions, InitialPosition};
use ::pulsar::{producer, Consumer, SubType, TokioExecutor};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::producer::ManagedProducer;
use super::{backoff, PulsarError, PulsarTransport};
use crate::clock::Clock;
use crate::fleet_budget::{Answer, BudgetHolder, Grant, UsageReport};
use crate::supervision::RuntimeHandle;

/// The shared subscription whose active consumer holds the budget.
pub const HOLDER_SUBSCRIPTION: &str = "conclave-budget-holder";
/// Largest report or grant accepted (a report lists every target an instance owns).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// What the budget tasks did, for the run's summary and tests.
#[derive(Debug, Default)]
pub struct BudgetStats {
    /// Reports this instance sent.
    pub reports_sent: AtomicU64,
    /// Reports this instance received as the holder.
    pub reports_held: AtomicU64,
    /// Grants this instance published as the holder.
    pub grants_published: AtomicU64,
    /// Grants this instance's arbiter took.
    pub grants_taken: AtomicU64,
    /// Reports or grants that were not what they claimed, or grants refused.
    pub refused: AtomicU64,
}

/// The running budget tasks; dropping it does not stop them, [`FleetBudget::stop`] does.
pub struct FleetBudget {
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<BudgetStats>,
}

impl FleetBudget {
    /// What the tasks did so far.
    pub fn stats(&self) -> &Arc<BudgetStats> {
        &self.stats
    }

    /// Stops the tasks (the holder's consumer leaves, so another instance takes over).
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts the three budget tasks of this instance: its reporter, its grant reader and its
/// holder candidate.
///
/// # Errors
/// [`PulsarError::Topic`] when a topic cannot be used.
pub async fn spawn_fleet_budget(
    transport: &PulsarTransport,
    runtime: RuntimeHandle,
    clock: Arc<dyn Clock>,
) -> Result<FleetBudget, PulsarError> {
    let settings = transport.settings().budget.clone();
    let stats = Arc::new(BudgetStats::default());
    let me = transport.name().to_owned();
    let reports_out = ManagedProducer::open(transport.clone(), &settings.reports_topic).await?;
    let grants_out = ManagedProducer::open(transport.clone(), &settings.grants_topic).await?;
    let grants_in = subscribe(
        transport,
        &settings.grants_topic,
        &format!("conclave-grants-{me}"),
        SubType::Exclusive,
        false,
    )
    .await?;
    let reports_in = subscribe(
        transport,
        &settings.reports_topic,
        HOLDER_SUBSCRIPTION,
        SubType::Failover,
        true,
    )
    .await?;
    let period = settings.lease / 5;
    let tasks = vec![
        tokio::spawn(report_loop(
            reports_out,
            runtime.clone(),
            period,
            stats.clone(),
        )),
        tokio::spawn(grant_loop(grants_in, runtime, me.clone(), stats.clone())),
        tokio::spawn(
            Holder {
                transport: transport.clone(),
                topic: settings.reports_topic.clone(),
                consumer: reports_in,
                grants: grants_out,
                holder: BudgetHolder::new(me, settings.lease),
                clock,
                stats: stats.clone(),
            }
            .run(),
        ),
    ];
    Ok(FleetBudget { tasks, stats })
}

async fn subscribe(
    transport: &PulsarTransport,
    topic: &str,
    subscription: &str,
    kind: SubType,
    durable: bool,
) -> Result<Consumer<Vec<u8>, TokioExecutor>, PulsarError> {
    let build = transport
        .client()
        .consumer()
        .with_topic(topic)
        .with_subscription(subscription)
        .with_subscription_type(kind)
        .with_consumer_name(transport.name())
        .with_options(ConsumerOptions {
            // Only what is said from now on matters: old reports and grants are stale.
            initial_position: InitialPosition::Latest,
            durable: Some(durable),
            ..ConsumerOptions::default()
        })
        .build::<Vec<u8>>();
    super::created(transport, "subscribe to", topic, build).await
}

fn message(payload: Vec<u8>, key: &str) -> producer::Message {
    producer::Message {
        payload,
        partition_key: Some(key.to_owned()),
        ..producer::Message::default()
    }
}

/// Sends this instance's report every `period` (a fifth of a lease).
async fn report_loop(
    mut out: ManagedProducer,
    runtime: RuntimeHandle,
    period: Duration,
    stats: Arc<BudgetStats>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let report = match runtime.fleet_report().await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => return,
        };
        let Ok(payload) = serde_json::to_vec(&report) else {
            continue;
        };
        match out.send(message(payload, &report.instance), 1).await {
            Ok(()) => {
                stats.reports_sent.fetch_add(1, Ordering::Relaxed);
            }
            // The next report supersedes this one; meanwhile the grant runs out and
            // scale-ups wait, which is the safe side.
            Err(e) => tracing::warn!(target: "conclave::budget", "Budget report not sent: {e}"),
        }
    }
}

/// Hands the grants meant for this instance to its arbiter.
async fn grant_loop(
    mut consumer: Consumer<Vec<u8>, TokioExecutor>,
    runtime: RuntimeHandle,
    me: String,
    stats: Arc<BudgetStats>,
) {
    while let Some(m) = consumer.next().await {
        let Ok(m) = m else { continue };
        let _ = consumer.ack(&m).await;
        if m.key().as_deref() != Some(me.as_str()) {
            continue;
        }
        let grant: Grant = match parse(&m.payload.data) {
            Ok(g) => g,
            Err(e) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "conclave::budget", "Grant ignored: {e}");
                continue;
            }
        };
        match runtime.fleet_grant(grant).await {
            Ok(Ok(())) => {
                stats.grants_taken.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(why)) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "conclave::budget", "Grant not taken: {why}");
            }
            Err(_) => return,
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "{} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
            payload.len()
        ));
    }
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// This instance's holder candidate: it receives reports only while Pulsar makes it the
/// active consumer.
struct Holder {
    transport: PulsarTransport,
    topic: String,
    consumer: Consumer<Vec<u8>, TokioExecutor>,
    grants: ManagedProducer,
    holder: BudgetHolder,
    clock: Arc<dyn Clock>,
    stats: Arc<BudgetStats>,
}

impl Holder {
    async fn run(mut self) {
        let mut attempt = 0;
        loop {
            while let Some(m) = self.consumer.next().await {
                attempt = 0;
                let Ok(m) = m else { continue };
                let _ = self.consumer.ack(&m).await;
                self.take(&m.payload.data).await;
            }
            // The stream ended (the client gave up on the connection): subscribe again,
            // and the holder waits a lease before granting, as a new one would.
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            match subscribe(
                &self.transport,
                &self.topic,
                HOLDER_SUBSCRIPTION,
                SubType::Failover,
                true,
            )
            .await
            {
                Ok(c) => self.consumer = c,
                Err(e) => {
                    tracing::warn!(target: "conclave::budget", "Budget holder cannot resubscribe: {e}")
                }
            }
        }
    }

    async fn take(&mut self, payload: &[u8]) {
        let report: UsageReport = match parse(payload) {
            Ok(r) => r,
            Err(e) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "conclave::budget", "Budget report ignored: {e}");
                return;
            }
        };
        self.stats.reports_held.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        // A report that waited in the backlog (no holder was up) says nothing current.
        if now.since(report.sent_at) > self.holder.lease() {
            return;
        }
        match self.holder.on_report(report, now) {
            Answer::WarmingUp { .. } => {}
            Answer::Grant(g) => {
                let Ok(payload) = serde_json::to_vec(&g) else {
                    return;
                };
                match self.grants.send(message(payload, &g.instance), 1).await {
                    Ok(()) => {
                        self.stats.grants_published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(target: "conclave::budget", "Grant not published: {e}")
                    }
                }
            }
        }
    }
}
