//! The actor that consumes one source partition: decodes, dead-letters what is bad, and
//! hands decoded telemetry to every agent in batches, with decision ticks in between.
//!
//! Ticks come from watermarks: when event time passes a window boundary (a multiple of the
//! policy's `arbiter.window` since the epoch), every agent gets a tick for that boundary,
//! after all telemetry the partition delivered before it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use super::arbiter_host::ArbiterMsg;
use super::inbox::InboxItem;
use crate::bus::{BusError, RawMessage, SourceItem, TelemetrySource};
use crate::clock::{Clock, Timestamp};
use crate::events::{Counters, TelemetryDeadLettered, TelemetryReceived};
use crate::target::Target;
use crate::telemetry::{DeadLetter, DeadLetterSink, Decoder, Telemetry};

/// At most this many window boundaries are ticked for one watermark; a watermark further
/// ahead (a producer's clock gone wrong) closes one window at the last boundary instead
/// of flooding agents with empty windows.
const MAX_TICKS_PER_WATERMARK: i64 = 10_000;
/// A decision links to at most this many of its window's messages per partition: the
/// first ones say where the window's telemetry came from; hundreds of links would not.
const MAX_LINKS_PER_TARGET: usize = 8;

/// Consumes one partition.
pub(crate) struct IngressActor;

/// Messages to an ingress.
#[derive(Debug)]
pub(crate) enum IngressMsg {
    /// Take the next batch from the source.
    Pump,
}

pub(crate) struct IngressArgs {
    pub(crate) partition: usize,
    pub(crate) source: Box<dyn TelemetrySource>,
    pub(crate) decoder: Decoder,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) window: Duration,
    pub(crate) batch_max: usize,
    pub(crate) dead_letters: Arc<dyn DeadLetterSink>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) inboxes: Vec<mpsc::Sender<InboxItem>>,
    pub(crate) arbiter: ActorRef<ArbiterMsg>,
    /// Told when the source has ended and everything was handed on.
    pub(crate) done: mpsc::UnboundedSender<usize>,
    /// Report every target telemetry arrived for (see `Tuning::decide_only_observed`).
    pub(crate) track_seen: bool,
}

pub(crate) struct IngressState {
    args: IngressArgs,
    items: Vec<SourceItem>,
    batch: Vec<Telemetry>,
    topic: Option<Arc<str>>,
    next_boundary: Option<Timestamp>,
    last_tick: Option<Timestamp>,
    replicas: BTreeMap<Target, u32>,
    seen: BTreeSet<Target>,
    /// Receive spans of this window's messages, per target (only for traced messages).
    links: BTreeMap<Target, Vec<Arc<str>>>,
}

impl IngressState {
    fn window_ms(&self) -> i64 {
        i64::try_from(self.args.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// Decodes one message into the batch; `false` when it was dead-lettered.
    fn decode(&mut self, m: RawMessage) -> bool {
        let now = self.args.clock.now();
        match self.args.decoder.decode(&m.payload, now) {
            Ok(t) => {
                if self.args.track_seen && !self.seen.contains(t.key()) {
                    self.seen.insert(t.target());
                }
                if let Telemetry::Metrics(sm) = &t {
                    // Per message: allocate a key only for a service not seen this window.
                    match self.replicas.get_mut(sm.service.as_str()) {
                        Some(r) => *r = sm.replicas,
                        None => {
                            self.replicas.insert(Target::new(&sm.service), sm.replicas);
                        }
                    }
                }
                if let Some(trace) = m.trace {
                    let links = self.links.entry(t.target()).or_default();
                    if links.len() < MAX_LINKS_PER_TARGET {
                        links.push(trace);
                    }
                }
                self.topic.get_or_insert_with(|| m.topic.clone());
                self.batch.push(t);
                true
            }
            Err(e) => {
                let error = e.to_string();
                let reason = e.reason();
                TelemetryDeadLettered {
                    topic: &m.topic,
                    reason,
                    error: &error,
                }
                .emit(&self.args.counters);
                self.args.dead_letters.send(DeadLetter {
                    at: now,
                    topic: m.topic.to_string(),
                    reason,
                    error,
                    payload: m.payload.to_vec(),
                });
                false
            }
        }
    }

    /// Hands the decoded batch to every agent (waiting for room: backpressure).
    async fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let items = Arc::new(std::mem::take(&mut self.batch));
        let topic = self.topic.clone().unwrap_or_else(|| Arc::from(""));
        self.send_all(|partition| InboxItem::Batch {
            partition,
            topic: topic.clone(),
            items: items.clone(),
            start: 0,
        })
        .await;
    }

    async fn send_all(&self, item: impl Fn(usize) -> InboxItem) {
        for tx in &self.args.inboxes {
            if tx.send(item(self.args.partition)).await.is_err() {
                // The agent was retired after too many restarts; its work is skipped and
                // counted, and the others go on.
                self.args
                    .counters
                    .skipped_retired
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    async fn tick(&mut self, at: Timestamp) {
        self.last_tick = Some(at);
        self.flush_batch().await;
        let replicas = std::mem::take(&mut self.replicas).into_iter().collect();
        let seen = std::mem::take(&mut self.seen).into_iter().collect();
        let links = std::mem::take(&mut self.links);
        // The arbiter host lives as long as the ingress; see `ArbiterMsg::ReplicasObserved`.
        let _ = self
            .args
            .arbiter
            .send_message(ArbiterMsg::ReplicasObserved {
                at,
                replicas,
                seen,
                links,
            });
        self.send_all(|partition| InboxItem::Tick { partition, at })
            .await;
    }

    async fn watermark(&mut self, wm: Timestamp) {
        let w = self.window_ms();
        let Some(next) = self.next_boundary else {
            // The first watermark sets the phase. On a boundary it closes an (empty) window
            // there, so a driver can wait for it like any other; otherwise the first window
            // ends at the next boundary.
            let floor = wm.as_millis().div_euclid(w) * w;
            if floor == wm.as_millis() {
                self.tick(wm).await;
            }
            self.next_boundary = Some(Timestamp::from_millis(floor + w));
            return;
        };
        if wm < next {
            return;
        }
        let crossed = (wm.as_millis() - next.as_millis()) / w + 1;
        let mut at = next.as_millis();
        if crossed > MAX_TICKS_PER_WATERMARK {
            at += (crossed - 1) * w;
        }
        while at <= wm.as_millis() {
            self.tick(Timestamp::from_millis(at)).await;
            at += w;
        }
        self.next_boundary = Some(Timestamp::from_millis(at));
    }

    async fn flush_at(&mut self, at: Timestamp) {
        if self.last_tick.is_some_and(|t| t >= at) {
            // That window is already closed; just hand on what is pending.
            self.flush_batch().await;
            return;
        }
        self.tick(at).await;
        let w = self.window_ms();
        self.next_boundary = Some(Timestamp::from_millis(at.as_millis().div_euclid(w) * w + w));
    }
}

impl Actor for IngressActor {
    type Msg = IngressMsg;
    type State = IngressState;
    type Arguments = IngressArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: IngressArgs,
    ) -> Result<IngressState, ActorProcessingErr> {
        myself.send_message(IngressMsg::Pump)?;
        Ok(IngressState {
            items: Vec::with_capacity(args.batch_max),
            batch: Vec::with_capacity(args.batch_max),
            args,
            topic: None,
            next_boundary: None,
            last_tick: None,
            replicas: BTreeMap::new(),
            seen: BTreeSet::new(),
            links: BTreeMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        IngressMsg::Pump: IngressMsg,
        s: &mut IngressState,
    ) -> Result<(), ActorProcessingErr> {
        let mut items = std::mem::take(&mut s.items);
        let max = s.args.batch_max;
        let got = s.args.source.recv_batch(max, &mut items).await;
        let n = match got {
            Ok(n) => n,
            Err(BusError::Closed) => 0,
            Err(e) => {
                tracing::error!(source = %s.args.source.describe(), error = %e, "Telemetry source failed; retrying.");
                s.items = items;
                myself.send_message(IngressMsg::Pump)?;
                return Ok(());
            }
        };
        if n == 0 {
            s.flush_batch().await;
            s.send_all(|partition| InboxItem::Closed { partition })
                .await;
            let _ = s.args.done.send(s.args.partition);
            myself.stop(Some(super::agent_host::DRAINED.to_string()));
            return Ok(());
        }
        let mut messages = 0u64;
        let mut decoded = 0u64;
        for item in items.drain(..) {
            match item {
                SourceItem::Message(m) => {
                    messages += 1;
                    if s.topic.as_deref().is_some_and(|t| *t != *m.topic) {
                        // Batches carry one topic (for dead letters); start a new one.
                        s.flush_batch().await;
                        s.topic = Some(m.topic.clone());
                    }
                    decoded += u64::from(s.decode(m));
                }
                SourceItem::Watermark(at) => s.watermark(at).await,
                SourceItem::Flush(at) => s.flush_at(at).await,
            }
        }
        s.items = items;
        TelemetryReceived { messages, decoded }.emit(&s.args.counters);
        s.flush_batch().await;
        myself.send_message(IngressMsg::Pump)?;
        Ok(())
    }
}
