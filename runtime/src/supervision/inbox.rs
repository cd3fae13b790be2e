//! An agent's inbox: a bounded queue that outlives the agent's incarnations, plus the
//! cursor that aligns decision ticks across ingress partitions.
//!
//! Keeping the queue and cursor outside the actor is what lets a restarted agent pick up
//! exactly where the crashed one stopped: only the message that crashed it is lost (and
//! dead-lettered), never the ones queued behind it, and never a tick, so the arbiter's
//! decision windows keep closing.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::clock::Timestamp;
use crate::telemetry::Telemetry;

/// What an ingress partition sends an agent.
#[derive(Debug, Clone)]
pub(crate) enum InboxItem {
    /// Decoded telemetry, shared by every agent (each skips the kinds it does not want);
    /// `start` is where processing resumes after a crash inside the batch.
    Batch {
        partition: usize,
        topic: Arc<str>,
        items: Arc<Vec<Telemetry>>,
        start: usize,
    },
    /// The partition has delivered everything up to the window ending at `at`.
    Tick { partition: usize, at: Timestamp },
    /// The partition's source ended.
    Closed { partition: usize },
}

impl InboxItem {
    fn partition(&self) -> usize {
        match self {
            InboxItem::Batch { partition, .. }
            | InboxItem::Tick { partition, .. }
            | InboxItem::Closed { partition } => *partition,
        }
    }
}

/// What the agent should do next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Observe these messages, from `start`.
    Batch {
        partition: usize,
        topic: Arc<str>,
        items: Arc<Vec<Telemetry>>,
        start: usize,
    },
    /// Every partition reached the window end `at`: propose.
    Tick(Timestamp),
    /// Every partition closed and everything was handled.
    Drained,
}

#[derive(Debug, Default)]
struct Cursor {
    /// Items to handle before reading the queue again (requeued or released).
    front: VecDeque<InboxItem>,
    /// Partitions that delivered the pending tick.
    ticked: BTreeSet<usize>,
    /// Partitions whose source ended.
    closed: BTreeSet<usize>,
    /// The pending tick's time.
    pending: Option<Timestamp>,
    /// Items from partitions that are ahead of the pending tick (barrier alignment, as in
    /// Flink: a partition that reached the tick waits for the others).
    stash: VecDeque<InboxItem>,
}

impl Cursor {
    fn is_aligned(&self, partitions: usize) -> bool {
        (0..partitions).all(|p| self.ticked.contains(&p) || self.closed.contains(&p))
    }

    /// Releases the pending tick once every open partition reached it.
    fn release(&mut self, partitions: usize) -> Option<Timestamp> {
        let at = self.pending?;
        if !self.is_aligned(partitions) {
            return None;
        }
        self.pending = None;
        self.ticked.clear();
        let mut released = std::mem::take(&mut self.stash);
        released.append(&mut self.front);
        self.front = released;
        Some(at)
    }
}

/// One agent's inbox, shared by the ingress partitions (senders) and every incarnation of
/// the agent (receiver).
#[derive(Debug)]
pub(crate) struct AgentInbox {
    tx: mpsc::Sender<InboxItem>,
    rx: tokio::sync::Mutex<mpsc::Receiver<InboxItem>>,
    cursor: Mutex<Cursor>,
    partitions: usize,
}

impl AgentInbox {
    /// An inbox holding up to `capacity` items fed by `partitions` ingress partitions.
    pub(crate) fn new(capacity: usize, partitions: usize) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Arc::new(AgentInbox {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            cursor: Mutex::new(Cursor::default()),
            partitions: partitions.max(1),
        })
    }

    /// A sender for an ingress partition.
    pub(crate) fn sender(&self) -> mpsc::Sender<InboxItem> {
        self.tx.clone()
    }

    fn cursor(&self) -> MutexGuard<'_, Cursor> {
        // Every critical section leaves the cursor consistent; a panic elsewhere while it
        // was held does not make it wrong.
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts an item back at the front (the rest of a batch after a crash).
    pub(crate) fn requeue_front(&self, item: InboxItem) {
        self.cursor().front.push_front(item);
    }

    /// Refuses further items (the agent was retired); senders see the channel closed.
    pub(crate) async fn close(&self) {
        self.rx.lock().await.close();
    }

    /// Items queued in the channel now (for depth figures).
    pub(crate) fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Another batch that is ready now, if the next item is one (never waits). Lets an
    /// agent handle several small batches in one call: per-call overhead, not per-message
    /// work, dominates when the bus is lightly loaded.
    pub(crate) fn try_next_batch(&self) -> Option<Next> {
        let mut c = self.cursor();
        let item = match c.front.pop_front() {
            Some(item) => item,
            None => {
                let mut rx = self.rx.try_lock().ok()?;
                rx.try_recv().ok()?
            }
        };
        match item {
            InboxItem::Batch {
                partition,
                topic,
                items,
                start,
            } if !c.ticked.contains(&partition) => Some(Next::Batch {
                partition,
                topic,
                items,
                start,
            }),
            other => {
                c.front.push_front(other);
                None
            }
        }
    }

    /// The next thing to do, waiting for input if there is none.
    pub(crate) async fn next(&self) -> Next {
        loop {
            let front = self.cursor().front.pop_front();
            let item = match front {
                Some(item) => item,
                None => {
                    let received = self.rx.lock().await.recv().await;
                    match received {
                        Some(item) => item,
                        // Every sender is gone: nothing more will come.
                        None => return Next::Drained,
                    }
                }
            };
            let mut c = self.cursor();
            let p = item.partition();
            if c.ticked.contains(&p) {
                c.stash.push_back(item);
                continue;
            }
            match item {
                InboxItem::Batch {
                    partition,
                    topic,
                    items,
                    start,
                } => {
                    return Next::Batch {
                        partition,
                        topic,
                        items,
                        start,
                    }
                }
                InboxItem::Tick { partition, at } => {
                    c.ticked.insert(partition);
                    c.pending = Some(c.pending.map_or(at, |p| p.max(at)));
                    if let Some(at) = c.release(self.partitions) {
                        return Next::Tick(at);
                    }
                }
                InboxItem::Closed { partition } => {
                    c.closed.insert(partition);
                    if let Some(at) = c.release(self.partitions) {
                        return Next::Tick(at);
                    }
                    if c.closed.len() >= self.partitions && c.front.is_empty() {
                        return Next::Drained;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(partition: usize, n: usize) -> InboxItem {
        InboxItem::Batch {
            partition,
            topic: Arc::from("t"),
            items: Arc::new(Vec::with_capacity(n)),
            start: n,
        }
    }

    fn describe(n: &Next) -> String {
        match n {
            Next::Batch {
                partition, start, ..
            } => format!("batch p{partition} #{start}"),
            Next::Tick(at) => format!("tick {}", at.as_millis()),
            Next::Drained => "drained".into(),
        }
    }

    #[tokio::test]
    async fn a_partition_ahead_of_the_tick_waits_for_the_others() {
        let inbox = AgentInbox::new(16, 2);
        let tx = inbox.sender();
        let at = Timestamp::from_millis(15_000);
        for item in [
            batch(0, 1),
            InboxItem::Tick { partition: 0, at },
            batch(0, 2), // belongs to the next window: must wait for partition 1's tick
            batch(1, 3),
            InboxItem::Tick { partition: 1, at },
            InboxItem::Closed { partition: 0 },
            InboxItem::Closed { partition: 1 },
        ] {
            tx.send(item).await.expect("send");
        }
        drop(tx);
        let mut got = Vec::new();
        loop {
            let n = inbox.next().await;
            got.push(describe(&n));
            if matches!(n, Next::Drained) {
                break;
            }
        }
        assert_eq!(
            got,
            vec![
                "batch p0 #1",
                "batch p1 #3",
                "tick 15000",
                "batch p0 #2",
                "drained"
            ]
        );
    }

    #[tokio::test]
    async fn a_closed_partition_does_not_hold_ticks_back() {
        let inbox = AgentInbox::new(16, 2);
        let tx = inbox.sender();
        let at = Timestamp::from_millis(30_000);
        tx.send(InboxItem::Closed { partition: 1 })
            .await
            .expect("send");
        tx.send(InboxItem::Tick { partition: 0, at })
            .await
            .expect("send");
        assert_eq!(describe(&inbox.next().await), "tick 30000");
        inbox.requeue_front(batch(0, 5));
        assert_eq!(describe(&inbox.next().await), "batch p0 #5");
    }
}
