//! Time for everything that waits or windows: one `Clock` trait, a real and a simulated clock.
//!
//! Nothing else in Conclave reads the wall clock, so the same code runs live and, under
//! `SimClock`, many times faster than real time and deterministically.
#![allow(clippy::disallowed_methods)] // the one place allowed to read the wall clock

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, milliseconds since the Unix epoch (UTC).
///
/// Serialized as RFC 3339 with milliseconds (`2026-11-29T08:00:00.000Z`), so audit logs
/// and reports are readable and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// A timestamp string that is not RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("expected an RFC 3339 timestamp such as `2026-01-01T00:00:00Z`, found `{found}`")]
pub struct TimestampError {
    found: String,
}

impl Timestamp {
    /// The epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Builds a timestamp from milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// This instant moved back by `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_millis(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(self.0.unsigned_abs())
        }
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_millis(self.to_system_time())
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TimestampError {
            found: s.to_string(),
        };
        let t = humantime::parse_rfc3339_weak(s).map_err(|_| err())?;
        let ms = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => duration_millis(d),
            Err(e) => -duration_millis(e.duration()),
        };
        Ok(Timestamp(ms))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// The source of "now" for every component.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Waits until `deadline` has passed on this clock.
    fn sleep_until(
        &self,
        deadline: Timestamp,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;

    /// A reading for measuring how long work takes (latency metrics), never for deciding
    /// anything: only the difference between two readings means something. The default
    /// is [`now`](Clock::now) since the epoch (millisecond resolution; a simulated clock
    /// measures simulated time, so work takes none); [`RealClock`] reads the system's
    /// monotonic clock, with its full resolution.
    fn monotonic(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.now().as_millis()).unwrap_or(0))
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(duration_millis(d))
    }

    fn sleep_until(
        &self,
        deadline: Timestamp,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let wait = deadline.since(self.now());
        Box::pin(tokio::time::sleep(wait))
    }

    fn monotonic(&self) -> Duration {
        // Measured from the first reading in the process: `Instant` has no public origin,
        // and only differences matter.
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that only moves when told to; shared by clones.
///
/// Sleepers wake when `advance`/`set` moves time past their deadline, so a simulated day
/// runs as fast as the work it contains.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<SimInner>,
}

#[derive(Debug)]
struct SimInner {
    now_ms: AtomicI64,
    moved: tokio::sync::Notify,
}

impl SimClock {
    /// A simulated clock starting at `start`.
    pub fn new(start: Timestamp) -> Self {
        SimClock {
            inner: Arc::new(SimInner {
                now_ms: AtomicI64::new(start.0),
                moved: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Moves time forward by `d` and wakes sleepers whose deadline passed.
    pub fn advance(&self, d: Duration) {
        self.inner
            .now_ms
            .fetch_add(duration_millis(d), Ordering::SeqCst);
        self.inner.moved.notify_waiters();
    }

    /// Sets the time to `t` if it is later than now (time never runs backwards).
    pub fn set(&self, t: Timestamp) {
        self.inner.now_ms.fetch_max(t.0, Ordering::SeqCst);
        self.inner.moved.notify_waiters();
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.inner.now_ms.load(Ordering::SeqCst))
    }

    fn sleep_until(
        &self,
        deadline: Timestamp,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                // Register interest before checking, so an advance between the check and
                // the await is not missed.
                let notified = self.inner.moved.notified();
                if self.now() >= deadline {
                    return;
                }
                notified.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_through_rfc3339() {
        let t: Timestamp = "2026-11-29T08:00:01.250Z".parse().expect("valid timestamp");
        assert_eq!(t.to_string(), "2026-11-29T08:00:01.250Z");
        let json = serde_json::to_string(&t).expect("serializes");
        assert_eq!(json, "\"2026-11-29T08:00:01.250Z\"");
        let back: Timestamp = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, t);
    }

    #[test]
    fn bad_timestamp_names_what_was_found() {
        let err = "yesterday"
            .parse::<Timestamp>()
            .expect_err("not a timestamp");
        assert_eq!(
            err.to_string(),
            "expected an RFC 3339 timestamp such as `2026-01-01T00:00:00Z`, found `yesterday`"
        );
    }

    #[test]
    fn monotonic_readings_measure_the_clocks_own_time() {
        let sim = SimClock::new(Timestamp::from_millis(1_000));
        let before = sim.monotonic();
        sim.advance(Duration::from_millis(250));
        assert_eq!(sim.monotonic() - before, Duration::from_millis(250));
        let (a, b) = (RealClock.monotonic(), RealClock.monotonic());
        assert!(b >= a, "{a:?} then {b:?}");
    }

    #[tokio::test]
    async fn sim_clock_wakes_sleepers_when_advanced() {
        let clock = SimClock::new(Timestamp::from_millis(1_000));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep_until(Timestamp::from_millis(61_000)).await;
                clock.now()
            })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.advance(Duration::from_secs(30));
        let woke_at = sleeper.await.expect("sleeper finished");
        assert_eq!(woke_at, Timestamp::from_millis(61_000));
    }

    #[test]
    fn sim_clock_never_runs_backwards() {
        let clock = SimClock::new(Timestamp::from_millis(5_000));
        clock.set(Timestamp::from_millis(1_000));
        assert_eq!(clock.now(), Timestamp::from_millis(5_000));
    }
}
