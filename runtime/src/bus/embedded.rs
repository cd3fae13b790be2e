//! The embedded bus: in-process topics with bounded, partitioned queues.
//!
//! Messages are partitioned by key (the target), so one target's telemetry stays in order,
//! as with Pulsar's Key_Shared subscriptions. Each partition is a bounded queue with an
//! explicit overload policy, and its depth and drop counts can be read at any time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::{ActionSink, BoxFuture, BusError, RawMessage, SourceItem, TelemetrySource};
use crate::clock::Timestamp;

/// What a full partition does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverloadPolicy {
    /// The producer waits until there is room (backpressure; nothing is lost).
    Block,
    /// The oldest queued message is dropped and counted (fresh telemetry matters more than
    /// old, and the producer never stalls).
    DropOldest,
}

impl OverloadPolicy {
    /// The name used in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            OverloadPolicy::Block => "block",
            OverloadPolicy::DropOldest => "drop-oldest",
        }
    }
}

/// How topics are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusConfig {
    /// Partitions per topic (each one is consumed by one ingress, in order).
    pub partitions: usize,
    /// Messages a partition holds before the overload policy applies.
    pub capacity: usize,
    /// What a full partition does.
    pub overload: OverloadPolicy,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            partitions: 1,
            capacity: 65_536,
            overload: OverloadPolicy::Block,
        }
    }
}

#[derive(Debug, Default)]
struct Partition {
    queue: Mutex<VecDeque<SourceItem>>,
    not_empty: Notify,
    not_full: Notify,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

impl Partition {
    fn lock(&self) -> MutexGuard<'_, VecDeque<SourceItem>> {
        // A panic while holding this lock cannot leave the deque inconsistent (every
        // critical section is a single push or drain), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    partitions: Vec<Partition>,
    closed: AtomicBool,
}

/// Figures for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionStats {
    /// Items queued now.
    pub depth: usize,
    /// Messages accepted from producers.
    pub published: u64,
    /// Messages handed to the consumer.
    pub delivered: u64,
    /// Messages dropped by the overload policy.
    pub dropped: u64,
}

/// Figures for one topic, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicStats {
    /// Per partition, in order.
    pub partitions: Vec<PartitionStats>,
}

impl TopicStats {
    /// Sum over partitions.
    pub fn total(&self) -> PartitionStats {
        self.partitions
            .iter()
            .fold(PartitionStats::default(), |a, p| PartitionStats {
                depth: a.depth + p.depth,
                published: a.published + p.published,
                delivered: a.delivered + p.delivered,
                dropped: a.dropped + p.dropped,
            })
    }
}

/// An in-process bus. Cheap to clone; clones share topics.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    config: BusConfig,
    topics: Arc<Mutex<BTreeMap<String, Arc<Topic>>>>,
}

impl EmbeddedBus {
    /// A bus whose topics all use `config`.
    pub fn new(config: BusConfig) -> Self {
        EmbeddedBus {
            config: BusConfig {
                partitions: config.partitions.max(1),
                capacity: config.capacity.max(1),
                overload: config.overload,
            },
            topics: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// The layout in force.
    pub fn config(&self) -> BusConfig {
        self.config
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Topic {
                    name: Arc::from(name),
                    partitions: (0..self.config.partitions)
                        .map(|_| Partition::default())
                        .collect(),
                    closed: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// A producer for `topic` (created on first use).
    pub fn producer(&self, topic: &str) -> Producer {
        Producer {
            topic: self.topic(topic),
            config: self.config,
        }
    }

    /// One source per partition of `topic`, in partition order. Each partition must have
    /// exactly one consumer.
    pub fn subscribe(&self, topic: &str) -> Vec<EmbeddedSource> {
        let t = self.topic(topic);
        (0..t.partitions.len())
            .map(|index| EmbeddedSource {
                topic: t.clone(),
                index,
            })
            .collect()
    }

    /// Figures for `topic`, or `None` when it does not exist.
    pub fn stats(&self, topic: &str) -> Option<TopicStats> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map(|t| TopicStats {
            partitions: t
                .partitions
                .iter()
                .map(|p| PartitionStats {
                    depth: p.lock().len(),
                    published: p.published.load(Ordering::Relaxed),
                    delivered: p.delivered.load(Ordering::Relaxed),
                    dropped: p.dropped.load(Ordering::Relaxed),
                })
                .collect(),
        })
    }

    /// Closes `topic`: producers get [`BusError::Closed`], consumers drain what is queued
    /// and then see the end.
    pub fn close(&self, topic: &str) {
        let t = self.topic(topic);
        t.closed.store(true, Ordering::SeqCst);
        for p in &t.partitions {
            p.not_empty.notify_one();
            p.not_full.notify_waiters();
        }
    }

    /// The messages queued on `topic` (all partitions), oldest first per partition, without
    /// consuming them; for tests and the actions topic.
    pub fn peek(&self, topic: &str) -> Vec<RawMessage> {
        let t = self.topic(topic);
        let mut out = Vec::new();
        for p in &t.partitions {
            for item in p.lock().iter() {
                if let SourceItem::Message(m) = item {
                    out.push(m.clone());
                }
            }
        }
        out
    }
}

/// Partition for a key: FNV-1a, so the mapping is the same in every run.
fn partition_of(key: &str, partitions: usize) -> usize {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // Partition counts are small; the modulo of a u64 fits in usize.
    (h % partitions.max(1) as u64) as usize
}

/// Publishes to one topic.
#[derive(Debug, Clone)]
pub struct Producer {
    topic: Arc<Topic>,
    config: BusConfig,
}

impl Producer {
    /// Publishes one message with a partition key (the target). Under
    /// [`OverloadPolicy::Block`] this waits while the partition is full.
    ///
    /// # Errors
    /// [`BusError::Closed`] once the topic is closed.
    pub async fn publish(&self, key: &str, payload: Bytes) -> Result<(), BusError> {
        let p = partition_of(key, self.topic.partitions.len());
        let item = SourceItem::Message(RawMessage {
            topic: self.topic.name.clone(),
            key: Some(key.to_string()),
            payload,
            trace: None,
        });
        self.push(p, item).await
    }

    /// Publishes a watermark to every partition: all telemetry before `at` has been sent.
    ///
    /// # Errors
    /// [`BusError::Closed`] once the topic is closed.
    pub async fn publish_watermark(&self, at: Timestamp) -> Result<(), BusError> {
        for p in 0..self.topic.partitions.len() {
            self.push(p, SourceItem::Watermark(at)).await?;
        }
        Ok(())
    }

    /// Asks every partition's consumer to close the current decision window at `at`.
    ///
    /// # Errors
    /// [`BusError::Closed`] once the topic is closed.
    pub async fn publish_flush(&self, at: Timestamp) -> Result<(), BusError> {
        for p in 0..self.topic.partitions.len() {
            self.push(p, SourceItem::Flush(at)).await?;
        }
        Ok(())
    }

    async fn push(&self, index: usize, item: SourceItem) -> Result<(), BusError> {
        let part = &self.topic.partitions[index];
        let is_message = matches!(item, SourceItem::Message(_));
        let mut item = Some(item);
        loop {
            let not_full = part.not_full.notified();
            tokio::pin!(not_full);
            not_full.as_mut().enable();
            {
                if self.topic.closed.load(Ordering::SeqCst) {
                    return Err(BusError::Closed);
                }
                let mut q = part.lock();
                // Watermarks never wait and are never dropped: they are tiny and losing one
                // would stall decision windows.
                if q.len() < self.config.capacity || !is_message {
                    if let Some(it) = item.take() {
                        q.push_back(it);
                    }
                } else if self.config.overload == OverloadPolicy::DropOldest {
                    if let Some(pos) = q.iter().position(|i| matches!(i, SourceItem::Message(_))) {
                        q.remove(pos);
                        part.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(it) = item.take() {
                        q.push_back(it);
                    }
                }
                if item.is_none() {
                    drop(q);
                    if is_message {
                        part.published.fetch_add(1, Ordering::Relaxed);
                    }
                    part.not_empty.notify_one();
                    return Ok(());
                }
            }
            not_full.await;
        }
    }
}

impl ActionSink for Producer {
    /// In-process: properties have nowhere to go (the record carries the decision id).
    fn publish<'a>(
        &'a self,
        key: &'a str,
        payload: Bytes,
        _properties: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(Producer::publish(self, key, payload))
    }
}

/// One partition of a topic, as a [`TelemetrySource`].
#[derive(Debug)]
pub struct EmbeddedSource {
    topic: Arc<Topic>,
    index: usize,
}

impl EmbeddedSource {
    async fn next_batch(&mut self, max: usize, out: &mut Vec<SourceItem>) -> usize {
        let part = &self.topic.partitions[self.index];
        loop {
            let not_empty = part.not_empty.notified();
            tokio::pin!(not_empty);
            not_empty.as_mut().enable();
            {
                let mut q = part.lock();
                if !q.is_empty() {
                    let n = q.len().min(max.max(1));
                    let mut messages = 0u64;
                    for item in q.drain(..n) {
                        if matches!(item, SourceItem::Message(_)) {
                            messages += 1;
                        }
                        out.push(item);
                    }
                    drop(q);
                    part.delivered.fetch_add(messages, Ordering::Relaxed);
                    part.not_full.notify_waiters();
                    return n;
                }
                if self.topic.closed.load(Ordering::SeqCst) {
                    return 0;
                }
            }
            not_empty.await;
        }
    }
}

impl TelemetrySource for EmbeddedSource {
    fn recv_batch<'a>(
        &'a mut self,
        max: usize,
        out: &'a mut Vec<SourceItem>,
    ) -> BoxFuture<'a, Result<usize, BusError>> {
        Box::pin(async move { Ok(self.next_batch(max, out).await) })
    }

    fn describe(&self) -> String {
        format!("embedded/{}/{}", self.topic.name, self.index)
    }

    fn depth_probe(&self) -> Option<crate::metrics::DepthProbe> {
        let (topic, index) = (self.topic.clone(), self.index);
        Some(crate::metrics::DepthProbe::new(move || {
            topic.partitions.get(index).map_or(0, |p| p.lock().len())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(partitions: usize, capacity: usize, overload: OverloadPolicy) -> EmbeddedBus {
        EmbeddedBus::new(BusConfig {
            partitions,
            capacity,
            overload,
        })
    }

    async fn drain(src: &mut EmbeddedSource) -> Vec<SourceItem> {
        let mut out = Vec::new();
        while src.next_batch(1000, &mut out).await > 0 {}
        out
    }

    fn payloads(items: &[SourceItem]) -> Vec<String> {
        items
            .iter()
            .filter_map(|i| match i {
                SourceItem::Message(m) => Some(String::from_utf8_lossy(&m.payload).into_owned()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn one_key_stays_in_one_partition_in_order() {
        let b = bus(4, 100, OverloadPolicy::Block);
        let mut sources = b.subscribe("t");
        let p = b.producer("t");
        for i in 0..20 {
            p.publish("cart", Bytes::from(format!("m{i}")))
                .await
                .expect("publish");
        }
        b.close("t");
        let mut non_empty = 0;
        for s in &mut sources {
            let got = payloads(&drain(s).await);
            if !got.is_empty() {
                non_empty += 1;
                let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
                assert_eq!(got, want);
            }
        }
        assert_eq!(non_empty, 1);
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
        let b = bus(1, 3, OverloadPolicy::DropOldest);
        let mut src = b.subscribe("t").remove(0);
        let p = b.producer("t");
        for i in 0..10 {
            p.publish("k", Bytes::from(format!("m{i}")))
                .await
                .expect("publish");
        }
        p.publish_watermark(Timestamp::from_millis(5))
            .await
            .expect("wm");
        let stats = b.stats("t").expect("topic").total();
        assert_eq!((stats.depth, stats.published, stats.dropped), (4, 10, 7));
        b.close("t");
        let items = drain(&mut src).await;
        assert_eq!(payloads(&items), vec!["m7", "m8", "m9"]);
        assert_eq!(
            items.last(),
            Some(&SourceItem::Watermark(Timestamp::from_millis(5)))
        );
        let stats = b.stats("t").expect("topic").total();
        assert_eq!(stats.delivered + stats.dropped, stats.published);
    }

    #[tokio::test]
    async fn block_waits_for_room_and_loses_nothing() {
        let b = bus(1, 2, OverloadPolicy::Block);
        let mut src = b.subscribe("t").remove(0);
        let p = b.producer("t");
        let producer = tokio::spawn(async move {
            for i in 0..50 {
                p.publish("k", Bytes::from(format!("m{i}")))
                    .await
                    .expect("publish");
            }
        });
        let mut got = Vec::new();
        while got.len() < 50 {
            let mut out = Vec::new();
            src.next_batch(1, &mut out).await;
            assert!(b.stats("t").expect("t").total().depth <= 2);
            got.extend(payloads(&out));
        }
        producer.await.expect("producer");
        let want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want);
        assert_eq!(b.stats("t").expect("t").total().dropped, 0);
    }

    #[tokio::test]
    async fn closed_topic_refuses_producers() {
        let b = bus(1, 2, OverloadPolicy::Block);
        let p = b.producer("t");
        b.close("t");
        assert!(matches!(
            p.publish("k", Bytes::from_static(b"x")).await,
            Err(BusError::Closed)
        ));
    }
}
