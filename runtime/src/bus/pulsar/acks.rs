//! Which delivered messages may be acknowledged, and which deliveries are redeliveries.
//!
//! A message is acknowledged only once the decision window it fed has been decided,
//! audited and carried out (at-least-once). Messages reach agents in delivery order with
//! watermarks in between, so a message delivered after the watermark `w` is part of the
//! window that ends at the first boundary after `w`: once that window is decided, it may
//! be acknowledged. A redelivery (same event id) is not handed to agents again; it is
//! acknowledged as soon as the original is.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::clock::Timestamp;

/// What to do with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// First time: hand it to the agents.
    New,
    /// Seen before: do not hand it on; it is acknowledged with (or after) the original.
    Redelivery,
}

/// Pending acknowledgements and the memory of recent event ids.
#[derive(Debug)]
pub struct AckLedger<M> {
    window_ms: i64,
    /// The boundary new deliveries wait for.
    next_boundary: Option<i64>,
    /// Messages by the window end after which they may be acknowledged, in delivery
    /// order, each with its event id when it was a first delivery (so releasing a window
    /// retires exactly its ids, oldest first).
    pending: BTreeMap<i64, Vec<(M, Option<String>)>>,
    /// Event ids delivered and not yet acknowledged, with the boundary they wait for.
    in_flight: HashMap<String, i64>,
    /// Event ids already acknowledged (oldest first, bounded).
    done: HashSet<String>,
    done_order: VecDeque<String>,
    remember: usize,
    redeliveries: u64,
}

impl<M> AckLedger<M> {
    /// A ledger for decision windows of `window`, remembering the last `remember`
    /// acknowledged event ids for de-duplication.
    pub fn new(window: std::time::Duration, remember: usize) -> Self {
        AckLedger {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1),
            next_boundary: None,
            pending: BTreeMap::new(),
            in_flight: HashMap::new(),
            done: HashSet::new(),
            done_order: VecDeque::new(),
            remember: remember.max(1),
            redeliveries: 0,
        }
    }

    /// Records a watermark handed to the runtime right after everything delivered so far.
    pub fn watermark(&mut self, at: Timestamp) {
        let w = self.window_ms;
        let next = at.as_millis().div_euclid(w) * w + w;
        // A watermark on a boundary closes the window ending there; later deliveries wait
        // for the one after it.
        self.next_boundary = Some(self.next_boundary.map_or(next, |n| n.max(next)));
    }

    /// Records a delivery of `event_id` (message handle `m`).
    pub fn deliver(&mut self, event_id: &str, m: M) -> Delivery {
        if self.done.contains(event_id) {
            // Already decided and acknowledged once: acknowledge again at the next chance.
            self.redeliveries += 1;
            self.pending.entry(i64::MIN).or_default().push((m, None));
            return Delivery::Redelivery;
        }
        if let Some(&b) = self.in_flight.get(event_id) {
            self.redeliveries += 1;
            self.pending.entry(b).or_default().push((m, None));
            return Delivery::Redelivery;
        }
        // Before the first watermark nothing has a phase yet; the first window to close
        // covers these messages, so they wait for the first decided window.
        let b = self.next_boundary.unwrap_or(i64::MIN + 1);
        self.in_flight.insert(event_id.to_owned(), b);
        self.pending
            .entry(b)
            .or_default()
            .push((m, Some(event_id.to_owned())));
        Delivery::New
    }

    /// The boundary the oldest pending message waits for, if any.
    pub fn oldest_pending(&self) -> Option<Timestamp> {
        self.pending
            .keys()
            .next()
            .map(|&b| Timestamp::from_millis(b.max(0)))
    }

    /// Takes every message whose window ends at or before `decided` (the runtime has
    /// decided, audited and carried out everything through it).
    pub fn release_through(&mut self, decided: Timestamp) -> Vec<M> {
        let rest = self.pending.split_off(&(decided.as_millis() + 1));
        let ready = std::mem::replace(&mut self.pending, rest);
        self.finish(ready)
    }

    /// Takes every pending message (after an orderly shutdown decided everything).
    pub fn release_all(&mut self) -> Vec<M> {
        let ready = std::mem::take(&mut self.pending);
        self.finish(ready)
    }

    fn finish(&mut self, ready: BTreeMap<i64, Vec<(M, Option<String>)>>) -> Vec<M> {
        let mut out = Vec::with_capacity(ready.values().map(Vec::len).sum());
        for (m, id) in ready.into_values().flatten() {
            if let Some(id) = id {
                self.in_flight.remove(&id);
                self.remember_done(id);
            }
            out.push(m);
        }
        out
    }

    fn remember_done(&mut self, id: String) {
        if self.done.insert(id.clone()) {
            self.done_order.push_back(id);
        }
        while self.done_order.len() > self.remember {
            if let Some(old) = self.done_order.pop_front() {
                self.done.remove(&old);
            }
        }
    }

    /// Messages waiting for their window.
    pub fn pending_len(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// Redeliveries seen (not handed to agents again).
    pub fn redeliveries(&self) -> u64 {
        self.redeliveries
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{AckLedger, Delivery};
    use crate::clock::Timestamp;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn a_message_waits_for_the_window_it_fed() {
        let mut l = AckLedger::new(Duration::from_secs(10), 100);
        l.watermark(at(3));
        assert_eq!(l.deliver("a", 1), Delivery::New);
        l.watermark(at(9));
        assert_eq!(l.deliver("b", 2), Delivery::New);
        l.watermark(at(12));
        assert_eq!(l.deliver("c", 3), Delivery::New);
        assert!(l.release_through(at(0)).is_empty());
        assert_eq!(l.oldest_pending(), Some(at(10)));
        assert_eq!(l.release_through(at(10)), vec![1, 2]);
        assert_eq!(l.release_through(at(19)), Vec::<i32>::new());
        assert_eq!(l.release_through(at(20)), vec![3]);
        assert_eq!(l.pending_len(), 0);
    }

    #[test]
    fn a_watermark_on_a_boundary_moves_later_messages_to_the_next_window() {
        let mut l = AckLedger::new(Duration::from_secs(10), 100);
        l.watermark(at(10));
        l.deliver("a", 1);
        assert!(l.release_through(at(10)).is_empty());
        assert_eq!(l.release_through(at(20)), vec![1]);
    }

    #[test]
    fn redeliveries_are_not_handed_on_and_are_acknowledged_with_the_original() {
        let mut l = AckLedger::new(Duration::from_secs(10), 100);
        l.watermark(at(1));
        assert_eq!(l.deliver("a", 1), Delivery::New);
        // Broker restart: the unacknowledged message comes again, on a new consumer.
        assert_eq!(l.deliver("a", 11), Delivery::Redelivery);
        assert_eq!(l.release_through(at(10)), vec![1, 11]);
        // After it was acknowledged, a late redelivery is acknowledged at the next chance.
        assert_eq!(l.deliver("a", 21), Delivery::Redelivery);
        assert_eq!(l.release_through(at(0)), vec![21]);
        assert_eq!(l.redeliveries(), 2);
    }

    #[test]
    fn before_the_first_watermark_messages_wait_for_the_first_decided_window() {
        let mut l = AckLedger::new(Duration::from_secs(10), 100);
        l.deliver("a", 1);
        assert_eq!(l.release_through(at(10)), vec![1]);
    }

    #[test]
    fn memory_of_acknowledged_ids_is_bounded() {
        let mut l = AckLedger::new(Duration::from_secs(10), 2);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            l.deliver(id, i);
        }
        l.release_all();
        assert_eq!(
            l.deliver("a", 9),
            Delivery::New,
            "forgotten: oldest beyond 2"
        );
        assert_eq!(l.deliver("c", 9), Delivery::Redelivery);
    }
}
