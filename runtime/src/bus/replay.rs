//! Replaying recorded JSON Lines telemetry onto a bus in event time: the clock follows the
//! messages' timestamps, and a watermark is published whenever a message enters a new
//! decision window. `conclave run --time event` and the tests use it; the same input
//! always produces the same windows.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::{BusError, Producer};
use crate::clock::{SimClock, Timestamp};

/// The fields read before decoding, to key and time a line.
#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

/// The partition key (service or topic) and timestamp of a line, when it has them.
pub fn peek(line: &[u8]) -> (String, Option<Timestamp>) {
    match serde_json::from_slice::<Peek>(line) {
        Ok(p) => (
            p.service.or(p.topic).unwrap_or_default(),
            p.ts.and_then(|t| t.parse().ok()),
        ),
        // Not JSON: published anyway, so the ingress dead-letters it with the reason.
        Err(_) => (String::new(), None),
    }
}

/// Publishes lines and moves event time.
#[derive(Debug)]
pub struct Replayer {
    producer: Producer,
    clock: Option<Arc<SimClock>>,
    window_ms: i64,
    max_future_skew: Duration,
    event_time: Option<Timestamp>,
}

impl Replayer {
    /// Replays onto `producer`. With `clock`, event time drives it and watermarks; without,
    /// lines are only published (live input, where a wall-clock ticker publishes them).
    /// `max_future_skew` should be the decoder's: a timestamp further ahead than that is a
    /// producer's clock gone wrong and does not move event time.
    pub fn new(
        producer: Producer,
        clock: Option<Arc<SimClock>>,
        window: Duration,
        max_future_skew: Duration,
    ) -> Self {
        Replayer {
            producer,
            clock,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1),
            max_future_skew,
            event_time: None,
        }
    }

    /// Event time so far (the latest plausible timestamp seen).
    pub fn event_time(&self) -> Option<Timestamp> {
        self.event_time
    }

    /// Publishes one line.
    ///
    /// # Errors
    /// [`BusError::Closed`] when the bus was closed.
    pub async fn line(&mut self, line: &[u8]) -> Result<(), BusError> {
        let (key, ts) = peek(line);
        if let (Some(clock), Some(ts)) = (&self.clock, ts) {
            let plausible = self
                .event_time
                .is_none_or(|t| ts <= t.plus(self.max_future_skew));
            if plausible && self.event_time.is_none_or(|t| ts > t) {
                let w = self.window_ms;
                let new_window = self
                    .event_time
                    .is_none_or(|t| ts.as_millis().div_euclid(w) != t.as_millis().div_euclid(w));
                self.event_time = Some(ts);
                clock.set(ts);
                if new_window {
                    self.producer.publish_watermark(ts).await?;
                }
            }
        }
        self.producer
            .publish(&key, Bytes::copy_from_slice(line))
            .await
    }

    /// Closes the last, partial window at the boundary where it would have closed, and
    /// returns that time (`None` when no line had a usable timestamp).
    ///
    /// # Errors
    /// [`BusError::Closed`] when the bus was closed.
    pub async fn finish(&mut self) -> Result<Option<Timestamp>, BusError> {
        let Some(t) = self.event_time else {
            return Ok(None);
        };
        let w = self.window_ms;
        let end = Timestamp::from_millis(t.as_millis().div_euclid(w) * w + w);
        if let Some(clock) = &self.clock {
            clock.set(end);
        }
        self.producer.publish_flush(end).await?;
        Ok(Some(end))
    }
}
