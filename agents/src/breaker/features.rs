//! The breaker's feature windows per protected service: estimated calls, failures and slow
//! calls over time ([`CallWindow`]), and the last few load samples for shedding
//! ([`LoadHistory`]).
//!
//! Telemetry is aggregate, so calls are estimated. A metrics sample at `ts` says "over the
//! interval since my previous sample, these were the rates"; the window stores that as a
//! [`Span`] of constant rates over `(previous ts, ts]` and counts the part of each span that
//! falls in the range asked about. A source's first sample has no previous one and only
//! starts its clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use conclave_runtime::telemetry::{Dependency, ServiceMetrics};
use conclave_runtime::Timestamp;

/// Calls, failures and slow calls (all estimates, hence `f64`) over a time range.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct CallCounts {
    pub(super) calls: f64,
    pub(super) failures: f64,
    pub(super) slow: f64,
}

impl CallCounts {
    /// Failed calls in percent of calls (0 without calls).
    pub(super) fn failure_rate_pct(&self) -> f64 {
        percent(self.failures, self.calls)
    }

    /// Slow calls in percent of calls (0 without calls).
    pub(super) fn slow_call_rate_pct(&self) -> f64 {
        percent(self.slow, self.calls)
    }

    fn add(&mut self, other: CallCounts) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.slow += other.slow;
    }
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}

/// Whose figures a count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum View {
    /// The callers' `dependencies` entries for the service (what the breaker protects:
    /// the callers' experience, including network failures and timeouts the service never
    /// sees).
    Callers,
    /// The service's own metrics, used only when no caller reports on it.
    Own,
}

/// Constant rates over `(start, end]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    start: Timestamp,
    end: Timestamp,
    calls_per_s: f64,
    error_rate: f64,
    slow_share: f64,
}

impl Span {
    /// The part of this span inside `(from, to]`; `None` when they do not overlap.
    fn count(&self, from: Timestamp, to: Timestamp) -> Option<CallCounts> {
        let start = self.start.max(from);
        let end = self.end.min(to);
        if end <= start {
            return None;
        }
        let calls = self.calls_per_s * end.since(start).as_secs_f64();
        Some(CallCounts {
            calls,
            failures: calls * self.error_rate,
            slow: calls * self.slow_share,
        })
    }
}

/// One reporter's spans (the service itself, or one caller).
#[derive(Debug, Default)]
struct Source {
    last: Option<Timestamp>,
    spans: VecDeque<Span>,
}

impl Source {
    /// Records a sample at `ts`; samples not newer than the last one are ignored
    /// (telemetry arrives in order per reporter, so these are duplicates).
    fn record(&mut self, ts: Timestamp, calls_per_s: f64, error_rate: f64, slow_share: f64) {
        match self.last {
            Some(prev) if ts <= prev => return,
            Some(prev) => self.spans.push_back(Span {
                start: prev,
                end: ts,
                calls_per_s,
                error_rate,
                slow_share,
            }),
            None => {}
        }
        self.last = Some(ts);
    }

    fn count(&self, from: Timestamp, to: Timestamp) -> Option<CallCounts> {
        let mut total: Option<CallCounts> = None;
        for span in &self.spans {
            if let Some(c) = span.count(from, to) {
                total.get_or_insert_with(CallCounts::default).add(c);
            }
        }
        total
    }

    fn prune(&mut self, horizon: Timestamp) {
        while self.spans.front().is_some_and(|s| s.end <= horizon) {
            self.spans.pop_front();
        }
    }

    fn is_stale(&self, horizon: Timestamp) -> bool {
        self.spans.is_empty() && self.last.is_none_or(|t| t <= horizon)
    }
}

/// Estimated calls to one service over time, from itself and from its callers.
#[derive(Debug, Default)]
pub(super) struct CallWindow {
    own: Source,
    callers: BTreeMap<String, Source>,
    /// The service's latest own p50, used to estimate the slow share of the callers' view
    /// (callers report only a p99).
    own_p50_ms: Option<f64>,
}

impl CallWindow {
    /// Records the service's own metrics. Calls are completions (`rate_out`): only a
    /// completed call has an outcome, as resilience4j records calls on completion.
    pub(super) fn record_own(&mut self, m: &ServiceMetrics, slow_call_duration: Duration) {
        self.own_p50_ms = Some(m.latency_p50_ms);
        let slow = slow_share(
            Some(m.latency_p50_ms),
            m.latency_p99_ms,
            millis(slow_call_duration),
        );
        self.own.record(m.ts, m.rate_out, m.error_rate, slow);
    }

    /// Records what `caller` saw of this service in its sample at `ts`.
    pub(super) fn record_caller(
        &mut self,
        caller: &str,
        ts: Timestamp,
        dep: &Dependency,
        slow_call_duration: Duration,
    ) {
        let slow = slow_share(
            self.own_p50_ms,
            dep.latency_p99_ms,
            millis(slow_call_duration),
        );
        self.callers.entry(caller.to_string()).or_default().record(
            ts,
            dep.calls_per_s,
            dep.error_rate,
            slow,
        );
    }

    /// Counts over `(from, to]`: the callers' view summed over callers when any caller's
    /// spans overlap the range, else the service's own view.
    pub(super) fn count(&self, from: Timestamp, to: Timestamp) -> (CallCounts, View) {
        let mut callers: Option<CallCounts> = None;
        for source in self.callers.values() {
            if let Some(c) = source.count(from, to) {
                callers.get_or_insert_with(CallCounts::default).add(c);
            }
        }
        match callers {
            Some(c) => (c, View::Callers),
            None => (self.own.count(from, to).unwrap_or_default(), View::Own),
        }
    }

    /// Forgets spans that end at or before `horizon`, and callers with nothing newer.
    pub(super) fn prune(&mut self, horizon: Timestamp) {
        self.own.prune(horizon);
        self.callers.retain(|_, s| {
            s.prune(horizon);
            !s.is_stale(horizon)
        });
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Estimated share of calls slower than `threshold_ms`, from two quantiles.
///
/// Latency distributions are not reported, only p50 and p99, so the share is interpolated
/// linearly between the points they pin: 100 % slow at a threshold of 0, 50 % at p50, 1 %
/// at p99. Above p99 the tail is invisible and the estimate is 0. Without a p50 (the
/// callers' view before the service reported) all that is known is "at least 1 % when the
/// threshold is below p99". Consequently the default 100 % slow-call threshold never trips
/// on this estimate; lower it (e.g. to 50 %) to use slow calls.
pub(super) fn slow_share(p50_ms: Option<f64>, p99_ms: f64, threshold_ms: f64) -> f64 {
    match p50_ms {
        // `threshold_ms` > 0 (settings check), so `p50` > 0 here.
        Some(p50) if threshold_ms < p50 => 1.0 - 0.5 * threshold_ms / p50,
        // p50 <= threshold < p99, so the denominator is positive.
        Some(p50) if threshold_ms < p99_ms => 0.5 - 0.49 * (threshold_ms - p50) / (p99_ms - p50),
        None if threshold_ms < p99_ms => 0.01,
        _ => 0.0,
    }
}

/// One metrics sample, as shedding sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LoadSample {
    pub(super) ts: Timestamp,
    pub(super) rate_in: f64,
    pub(super) rate_out: f64,
    pub(super) backlog: u64,
    pub(super) latency_p99_ms: f64,
}

/// The last `capacity` load samples of a service, oldest first.
#[derive(Debug)]
pub(super) struct LoadHistory {
    capacity: usize,
    samples: VecDeque<LoadSample>,
}

impl LoadHistory {
    /// Keeps at most `capacity` samples.
    pub(super) fn new(capacity: usize) -> Self {
        LoadHistory {
            capacity,
            samples: VecDeque::with_capacity(capacity),
        }
    }

    /// Adds a sample; one not newer than the last is ignored.
    pub(super) fn record(&mut self, m: &ServiceMetrics) {
        if self.capacity == 0 || self.samples.back().is_some_and(|s| m.ts <= s.ts) {
            return;
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(LoadSample {
            ts: m.ts,
            rate_in: m.rate_in,
            rate_out: m.rate_out,
            backlog: m.backlog,
            latency_p99_ms: m.latency_p99_ms,
        });
    }

    /// The samples, oldest first, once the history is full; `None` before.
    pub(super) fn full(&mut self) -> Option<&[LoadSample]> {
        if self.samples.len() < self.capacity {
            return None;
        }
        Some(self.samples.make_contiguous())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn slow_share_interpolates_between_quantiles() {
        let cases = [
            (
                "threshold below p50",
                Some(3000.0),
                6000.0,
                2000.0,
                1.0 - 0.5 * 2.0 / 3.0,
            ),
            ("threshold at p50", Some(2000.0), 6000.0, 2000.0, 0.5),
            ("midway p50..p99", Some(1000.0), 3000.0, 2000.0, 0.255),
            ("threshold at p99", Some(100.0), 2000.0, 2000.0, 0.0),
            ("threshold above p99", Some(100.0), 500.0, 2000.0, 0.0),
            ("no p50, below p99", None, 3000.0, 2000.0, 0.01),
            ("no p50, above p99", None, 1000.0, 2000.0, 0.0),
        ];
        for (name, p50, p99, threshold, want) in cases {
            let got = slow_share(p50, p99, threshold);
            assert!((got - want).abs() < 1e-9, "case `{name}`: {got} != {want}");
        }
    }

    #[test]
    fn spans_count_only_their_overlap_with_the_range() {
        let mut s = Source::default();
        s.record(t(0), 10.0, 0.5, 0.0); // starts the clock only
        s.record(t(10), 10.0, 0.5, 0.0); // 100 calls over (0, 10]
        s.record(t(20), 20.0, 0.0, 1.0); // 200 calls over (10, 20]
        let c = s.count(t(5), t(15)).expect("overlap");
        assert_eq!(c.calls, 50.0 + 100.0);
        assert_eq!(c.failures, 25.0);
        assert_eq!(c.slow, 100.0);
        assert_eq!(s.count(t(20), t(30)), None);
        s.prune(t(10));
        assert_eq!(s.count(t(0), t(30)).map(|c| c.calls), Some(200.0));
    }

    #[test]
    fn callers_view_wins_when_present() {
        let own = |ts: i64| ServiceMetrics {
            schema_version: 1,
            service: "payments".into(),
            ts: t(ts),
            rate_in: 10.0,
            rate_out: 10.0,
            backlog: 0,
            latency_p50_ms: 10.0,
            latency_p99_ms: 20.0,
            error_rate: 0.0,
            cpu: 0.5,
            replicas: 2,
            region: None,
            dependencies: Vec::new(),
        };
        let dep = Dependency {
            service: "payments".into(),
            calls_per_s: 5.0,
            error_rate: 1.0,
            latency_p99_ms: 20.0,
        };
        let mut w = CallWindow::default();
        let slow = Duration::from_secs(60);
        w.record_own(&own(0), slow);
        w.record_own(&own(10), slow);
        assert_eq!(w.count(t(0), t(10)).1, View::Own);
        assert_eq!(w.count(t(0), t(10)).0.calls, 100.0);
        w.record_caller("checkout", t(0), &dep, slow);
        w.record_caller("checkout", t(10), &dep, slow);
        w.record_caller("cart", t(5), &dep, slow);
        w.record_caller("cart", t(10), &dep, slow);
        let (c, view) = w.count(t(0), t(10));
        assert_eq!(view, View::Callers);
        assert_eq!((c.calls, c.failures), (75.0, 75.0));
        w.prune(t(10));
        assert_eq!(w.count(t(0), t(10)).1, View::Own);
        assert!(w.callers.is_empty());
    }
}
