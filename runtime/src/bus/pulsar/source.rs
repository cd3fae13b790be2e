//! Telemetry sources on Pulsar: one consumer per ingress partition on the shared
//! subscription, each driven by its own task that hands messages and wall-clock
//! watermarks to the ingress, acknowledges what the [`Acker`] releases, and recreates the
//! consumer when its watchdog finds it stalled.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::pulsar::consumer::Message;
use ::pulsar::proto::MessageIdData;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use tracing::Instrument as _;

use super::acks::{AckLedger, Delivery};
use super::consumer::{subscribe, TelemetryConsumer};
use super::dead_letters::PulsarDeadLetters;
use super::{backoff, PulsarError, PulsarTransport, SubscriptionType, EVENT_ID_PROPERTY};
use crate::bus::{BoxFuture, BusError, RawMessage, SourceItem, TelemetrySource};
use crate::clock::{Clock, Timestamp};
use crate::supervision::RuntimeHandle;

/// How often a source emits a watermark (the wall clock's progress).
const WATERMARK_EVERY: Duration = Duration::from_millis(250);
/// How long an orderly shutdown waits for a consumer's last acknowledgements and close.
const CLOSE_WAIT: Duration = Duration::from_secs(30);
/// How often the watchdog checks a quiet consumer.
const WATCHDOG_EVERY: Duration = Duration::from_secs(3);
/// Failed checks in a row before the consumer is recreated.
const WATCHDOG_STRIKES: u32 = 2;
/// Acknowledged event ids remembered for de-duplication.
const REMEMBER_IDS: usize = 1_000_000;

type Handle = (usize, String, MessageIdData);
type Ledger = Arc<Mutex<AckLedger<Handle>>>;

fn lock(l: &Ledger) -> std::sync::MutexGuard<'_, AckLedger<Handle>> {
    // The ledger is only mutated by short, panic-free sections.
    l.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the consumers did, for the summary and for tests.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Messages handed to the runtime.
    pub delivered: AtomicU64,
    /// Redeliveries recognised by event id and not handed on again.
    pub redeliveries: AtomicU64,
    /// Messages acknowledged.
    pub acked: AtomicU64,
    /// Messages negatively acknowledged (arrived while stopping).
    pub nacked: AtomicU64,
    /// Consumers recreated by the watchdog or after their stream ended.
    pub recreated: AtomicU64,
}

enum Command {
    Ack(Vec<(String, MessageIdData)>),
    /// Stop handing messages on: emit a final flush and end the source.
    Stop,
    /// Close the consumer and end the task.
    Close(oneshot::Sender<()>),
}

/// One partition's source: what its driver task hands on.
pub struct PulsarSource {
    rx: mpsc::Receiver<SourceItem>,
    name: String,
}

impl TelemetrySource for PulsarSource {
    fn recv_batch<'a>(
        &'a mut self,
        max: usize,
        out: &'a mut Vec<SourceItem>,
    ) -> BoxFuture<'a, Result<usize, BusError>> {
        Box::pin(async move {
            let Some(first) = self.rx.recv().await else {
                return Ok(0);
            };
            out.push(first);
            let mut n = 1;
            while n < max {
                match self.rx.try_recv() {
                    Ok(item) => {
                        out.push(item);
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            Ok(n)
        })
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Controls the driver tasks after the runtime has started.
pub struct SourceControl {
    commands: Vec<mpsc::UnboundedSender<Command>>,
    ledger: Ledger,
    stats: Arc<ConsumerStats>,
}

impl SourceControl {
    /// Stops handing on telemetry: each source flushes its last window and ends, so the
    /// runtime can drain. Messages that arrive after this are negatively acknowledged.
    pub fn stop(&self) {
        for c in &self.commands {
            let _ = c.send(Command::Stop);
        }
    }

    /// After the runtime drained (every delivered message decided, audited and carried
    /// out): acknowledges everything still pending, then closes the consumers. A driver
    /// takes the close after the acknowledgements before it, so the wait covers them; it
    /// is long because an acknowledgement not sent now is a redelivery to someone else.
    pub async fn close(self) {
        let all = lock(&self.ledger).release_all();
        send_acks(&self.commands, all);
        for c in &self.commands {
            let (tx, rx) = oneshot::channel();
            if c.send(Command::Close(tx)).is_ok()
                && tokio::time::timeout(CLOSE_WAIT, rx).await.is_err()
            {
                tracing::warn!(
                    "Pulsar consumer did not finish acknowledging and closing within {CLOSE_WAIT:?}; the rest will be redelivered."
                );
            }
        }
    }

    /// Counters.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.stats.clone()
    }

    /// The acknowledger for this set of sources.
    pub fn acker(&self, runtime: RuntimeHandle, dead_letters: Option<PulsarDeadLetters>) -> Acker {
        Acker {
            commands: self.commands.clone(),
            ledger: self.ledger.clone(),
            runtime,
            dead_letters,
        }
    }
}

fn send_acks(commands: &[mpsc::UnboundedSender<Command>], handles: Vec<Handle>) {
    let mut by_driver: BTreeMap<usize, Vec<(String, MessageIdData)>> = BTreeMap::new();
    for (driver, topic, id) in handles {
        by_driver.entry(driver).or_default().push((topic, id));
    }
    for (driver, ids) in by_driver {
        if let Some(c) = commands.get(driver) {
            let _ = c.send(Command::Ack(ids));
        }
    }
}

/// Acknowledges messages once the windows they fed are decided, audited and carried out,
/// and their dead letters (if any) are in the dead-letter topic.
pub struct Acker {
    commands: Vec<mpsc::UnboundedSender<Command>>,
    ledger: Ledger,
    runtime: RuntimeHandle,
    dead_letters: Option<PulsarDeadLetters>,
}

impl Acker {
    /// Runs until the runtime stops.
    pub async fn run(self) {
        loop {
            let next = lock(&self.ledger).oldest_pending();
            let Some(boundary) = next else {
                tokio::time::sleep(WATERMARK_EVERY).await;
                continue;
            };
            if self.runtime.decided_through(boundary).await.is_err() {
                return;
            }
            if let Some(d) = &self.dead_letters {
                d.flushed().await;
            }
            let ready = lock(&self.ledger).release_through(boundary);
            send_acks(&self.commands, ready);
        }
    }
}

/// The sources for the runtime, and their control.
pub struct PulsarSources {
    /// One per ingress partition.
    pub sources: Vec<Box<dyn TelemetrySource>>,
    /// Stop, acknowledge, close.
    pub control: SourceControl,
}

/// Subscribes `partitions` consumers (one for a failover subscription) and starts their
/// driver tasks. Every consumer is subscribed before this returns, so a missing topic or
/// an unreachable broker is reported here.
///
/// # Errors
/// [`PulsarError::Topic`] when subscribing fails.
pub async fn open_sources(
    transport: &PulsarTransport,
    partitions: usize,
    window: Duration,
    clock: Arc<dyn Clock>,
) -> Result<PulsarSources, PulsarError> {
    let n = match transport.settings().subscription_type {
        SubscriptionType::KeyShared => partitions.max(1),
        SubscriptionType::Failover => 1,
    };
    let ledger: Ledger = Arc::new(Mutex::new(AckLedger::new(window, REMEMBER_IDS)));
    let stats = Arc::new(ConsumerStats::default());
    let mut sources: Vec<Box<dyn TelemetrySource>> = Vec::with_capacity(n);
    let mut commands = Vec::with_capacity(n);
    for index in 0..n {
        let consumer = subscribe(transport, index).await?;
        let (out_tx, out_rx) = mpsc::channel(4096);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            index,
            transport: transport.clone(),
            consumer,
            out: Some(out_tx),
            commands: cmd_rx,
            ledger: ledger.clone(),
            clock: clock.clone(),
            stats: stats.clone(),
            quiet_checks: 0,
            failed_attempts: 0,
            received_since_check: false,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1),
            next_boundary: Timestamp::from_millis(0),
        };
        tokio::spawn(driver.run());
        sources.push(Box::new(PulsarSource {
            rx: out_rx,
            name: format!("pulsar/{}/{index}", transport.settings().subscription),
        }));
        commands.push(cmd_tx);
    }
    Ok(PulsarSources {
        sources,
        control: SourceControl {
            commands,
            ledger,
            stats,
        },
    })
}

struct Driver {
    index: usize,
    transport: PulsarTransport,
    consumer: TelemetryConsumer,
    /// `None` once stopped.
    out: Option<mpsc::Sender<SourceItem>>,
    commands: mpsc::UnboundedReceiver<Command>,
    ledger: Ledger,
    clock: Arc<dyn Clock>,
    stats: Arc<ConsumerStats>,
    quiet_checks: u32,
    failed_attempts: u32,
    received_since_check: bool,
    window_ms: i64,
    /// The first window boundary after the last watermark.
    next_boundary: Timestamp,
}

/// The event id: the producer's, else the broker's message id (stable across
/// redeliveries of the same message).
fn event_id(m: &Message<Vec<u8>>) -> String {
    if let Some(p) = m
        .payload
        .metadata
        .properties
        .iter()
        .find(|p| p.key == EVENT_ID_PROPERTY)
    {
        return p.value.clone();
    }
    let id = m.message_id();
    format!(
        "{}@{}:{}:{}:{}",
        m.topic,
        id.ledger_id,
        id.entry_id,
        id.partition.unwrap_or(-1),
        id.batch_index.unwrap_or(-1)
    )
}

impl Driver {
    async fn run(mut self) {
        let mut watermarks = tokio::time::interval(WATERMARK_EVERY);
        let mut watchdog = tokio::time::interval(WATCHDOG_EVERY);
        watchdog.tick().await;
        loop {
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Ack(ids)) => self.ack(ids).await,
                    Some(Command::Stop) => self.stop().await,
                    Some(Command::Close(done)) => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), self.consumer.close()).await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                _ = watermarks.tick() => self.watermark().await,
                _ = watchdog.tick() => self.check().await,
                msg = self.consumer.next() => match msg {
                    Some(Ok(m)) => self.deliver(m).await,
                    Some(Err(e)) => {
                        tracing::warn!(consumer = self.index, error = %e, "Pulsar consumer error.");
                    }
                    None => {
                        tracing::warn!(consumer = self.index, "Pulsar consumer stream ended; recreating it.");
                        self.recreate().await;
                    }
                },
            }
        }
    }

    async fn deliver(&mut self, m: Message<Vec<u8>>) {
        self.received_since_check = true;
        if self.out.is_none() {
            // Stopping: give it back to the subscription (another instance, or this one
            // after a restart, will decide on it).
            if self.consumer.nack(&m).await.is_ok() {
                self.stats.nacked.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        // A message that arrives after a window boundary belongs to the next window, even
        // if the periodic watermark has not said so yet: otherwise an instance that takes
        // over a key could decide it in the window its previous owner already decided.
        if self.clock.now() >= self.next_boundary {
            self.watermark().await;
        }
        let Some(out) = &self.out else { return };
        let id = event_id(&m);
        let handle = (self.index, m.topic.clone(), m.message_id().clone());
        let delivery = lock(&self.ledger).deliver(&id, handle);
        if delivery == Delivery::Redelivery {
            self.stats.redeliveries.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let key = m.key();
        let traceparent = m
            .payload
            .metadata
            .properties
            .iter()
            .find(|p| p.key == super::trace_context::TRACEPARENT)
            .map(|p| p.value.clone());
        let message_id = format!("{}:{}", m.message_id().ledger_id, m.message_id().entry_id);
        let span =
            super::trace_context::process_span(&m.topic, &message_id, &id, traceparent.as_deref());
        let Message { topic, payload, .. } = m;
        let raw = RawMessage {
            topic: Arc::from(topic.as_str()),
            key,
            payload: bytes::Bytes::from(payload.data),
            trace: super::trace_context::traceparent_of(&span).map(Arc::from),
        };
        // The span covers handing the message to the runtime (ingress takes it from here).
        if out
            .send(SourceItem::Message(raw))
            .instrument(span)
            .await
            .is_ok()
        {
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn watermark(&mut self) {
        let Some(out) = &self.out else { return };
        let now = self.clock.now();
        let w = self.window_ms;
        self.next_boundary = Timestamp::from_millis(now.as_millis().div_euclid(w) * w + w);
        lock(&self.ledger).watermark(now);
        let _ = out.send(SourceItem::Watermark(now)).await;
    }

    async fn stop(&mut self) {
        if let Some(out) = self.out.take() {
            let now = self.clock.now();
            lock(&self.ledger).watermark(now);
            let _ = out.send(SourceItem::Flush(now)).await;
        }
    }

    async fn ack(&mut self, ids: Vec<(String, MessageIdData)>) {
        for (topic, id) in ids {
            match self.consumer.ack_with_id(&topic, id).await {
                Ok(()) => {
                    self.stats.acked.fetch_add(1, Ordering::Relaxed);
                }
                // Lost with a broken connection: the broker redelivers it, and the ledger
                // recognises the redelivery and acknowledges it again.
                Err(e) => tracing::warn!(error = %e, "Pulsar ack failed; it will be redelivered."),
            }
        }
    }

    /// The watchdog: a consumer that received nothing since the last check must prove
    /// the broker still knows it (consumer stats come from the broker's own view of the
    /// subscription); two failed proofs in a row and it is recreated.
    async fn check(&mut self) {
        if std::mem::take(&mut self.received_since_check) {
            self.quiet_checks = 0;
            return;
        }
        let probe = tokio::time::timeout(WATCHDOG_EVERY, self.consumer.get_stats()).await;
        match probe {
            Ok(Ok(_)) => self.quiet_checks = 0,
            Ok(Err(e)) => {
                self.quiet_checks += 1;
                tracing::warn!(consumer = self.index, error = %e, strikes = self.quiet_checks, "Pulsar consumer check failed.");
            }
            Err(_) => {
                self.quiet_checks += 1;
                tracing::warn!(
                    consumer = self.index,
                    strikes = self.quiet_checks,
                    "Pulsar consumer check timed out."
                );
            }
        }
        if self.quiet_checks >= WATCHDOG_STRIKES {
            self.recreate().await;
        }
    }

    /// One attempt to recreate the consumer (after backoff when earlier ones failed);
    /// the loop comes back here while it keeps failing, so commands (stop, close) are
    /// still served while the broker is away.
    async fn recreate(&mut self) {
        if self.failed_attempts > 0 {
            tokio::time::sleep(backoff(self.failed_attempts)).await;
        }
        // Windows keep closing while the broker is away (decisions on what arrived).
        self.watermark().await;
        match subscribe(&self.transport, self.index).await {
            Ok(c) => {
                let mut old = std::mem::replace(&mut self.consumer, c);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(2), old.close()).await;
                });
                self.quiet_checks = 0;
                self.failed_attempts = 0;
                self.stats.recreated.fetch_add(1, Ordering::Relaxed);
                tracing::info!(consumer = self.index, "Pulsar consumer recreated.");
            }
            Err(e) => {
                self.failed_attempts += 1;
                tracing::warn!(consumer = self.index, error = %e, "Recreating the Pulsar consumer failed; retrying.");
            }
        }
    }
}
