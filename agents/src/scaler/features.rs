//! The scaler's per-target feature window: the latest reading, the replica changes seen in
//! telemetry (HPA's scale events), past recommendations (for stabilization) and the
//! cold-start hold after a scale-up.

use std::time::Duration;

use conclave_runtime::Timestamp;

/// One metrics message, reduced to what the scaler uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When it was measured.
    pub ts: Timestamp,
    /// Replicas running (ready or not).
    pub replicas: u32,
    /// The configured metric's value (a total for per-replica metrics).
    pub value: f64,
}

/// A replica count at a time: a scale event's size, or a past recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// When.
    pub at: Timestamp,
    /// How many replicas (changed, or recommended).
    pub replicas: u32,
}

/// After a scale-up, the new replicas do not serve until the cold start has passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdStart {
    /// When the new replicas are expected to serve.
    pub until: Timestamp,
    /// The metric's value just before the scale-up was seen.
    pub reference: f64,
}

/// Everything the scaler remembers about one target.
#[derive(Debug, Clone, Default)]
pub struct TargetWindow {
    latest: Option<Reading>,
    scale_ups: Vec<Timed>,
    scale_downs: Vec<Timed>,
    recommendations: Option<Vec<Timed>>,
    cold_start: Option<ColdStart>,
}

impl TargetWindow {
    /// Takes in one reading. Readings older than the latest are ignored (the runtime
    /// delivers in order; this keeps the event lists monotonic if it ever does not).
    ///
    /// A change in `replicas` from the previous reading is recorded as a scale event at
    /// the reading's time. Events are taken from telemetry rather than from this agent's
    /// proposals because a proposal may be rejected, clamped or enacted late; what the
    /// fleet actually did is what HPA's rate limits are about. An increase also starts a
    /// cold-start hold of `cold_start`.
    pub fn record(&mut self, reading: Reading, cold_start: Duration) {
        if let Some(prev) = self.latest {
            if reading.ts < prev.ts {
                return;
            }
            if reading.replicas > prev.replicas {
                self.scale_ups.push(Timed {
                    at: reading.ts,
                    replicas: reading.replicas - prev.replicas,
                });
                self.cold_start = Some(ColdStart {
                    until: reading.ts.plus(cold_start),
                    reference: prev.value,
                });
            } else if reading.replicas < prev.replicas {
                self.scale_downs.push(Timed {
                    at: reading.ts,
                    replicas: prev.replicas - reading.replicas,
                });
            }
        }
        self.latest = Some(reading);
    }

    /// The newest reading.
    pub fn latest(&self) -> Option<Reading> {
        self.latest
    }

    /// Replica increases seen, oldest first.
    pub fn scale_ups(&self) -> &[Timed] {
        &self.scale_ups
    }

    /// Replica decreases seen, oldest first.
    pub fn scale_downs(&self) -> &[Timed] {
        &self.scale_downs
    }

    /// The cold-start hold, if it is still running at `now`.
    pub fn cold_start_at(&self, now: Timestamp) -> Option<ColdStart> {
        self.cold_start.filter(|c| now < c.until)
    }

    /// Past recommendations, or `None` before the first evaluation of this target (HPA
    /// seeds the scale-down window then; see `fallback::stabilize`).
    pub fn recommendations_mut(&mut self) -> &mut Option<Vec<Timed>> {
        &mut self.recommendations
    }

    /// Drops scale events at or before `now - keep` (no policy period reaches them).
    pub fn forget_events(&mut self, now: Timestamp, keep: Duration) {
        let cutoff = now.minus(keep);
        self.scale_ups.retain(|e| e.at > cutoff);
        self.scale_downs.retain(|e| e.at > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(s: i64, replicas: u32, value: f64) -> Reading {
        Reading {
            ts: Timestamp::from_millis(s * 1000),
            replicas,
            value,
        }
    }

    #[test]
    fn replica_changes_become_events_and_scale_ups_start_a_hold() {
        let mut w = TargetWindow::default();
        let cold = Duration::from_secs(30);
        w.record(reading(0, 2, 0.9), cold);
        w.record(reading(10, 6, 0.8), cold);
        w.record(reading(20, 4, 0.5), cold);
        w.record(reading(15, 9, 0.5), cold); // out of order: ignored
        assert_eq!(
            w.scale_ups(),
            &[Timed {
                at: Timestamp::from_millis(10_000),
                replicas: 4
            }]
        );
        assert_eq!(
            w.scale_downs(),
            &[Timed {
                at: Timestamp::from_millis(20_000),
                replicas: 2
            }]
        );
        assert_eq!(w.latest(), Some(reading(20, 4, 0.5)));
        let hold = w
            .cold_start_at(Timestamp::from_millis(39_999))
            .expect("hold runs until 40 s");
        assert_eq!(hold.reference, 0.9);
        assert_eq!(w.cold_start_at(Timestamp::from_millis(40_000)), None);

        w.forget_events(Timestamp::from_millis(25_000), Duration::from_secs(15));
        assert!(w.scale_ups().is_empty(), "10 s is at the cutoff");
        assert_eq!(w.scale_downs().len(), 1);
    }
}
