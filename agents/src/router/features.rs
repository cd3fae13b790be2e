//! The router's per-backend feature window: exponentially weighted moving averages of
//! p99 latency, error rate and load per replica, plus when the backend last reported.

use conclave_runtime::telemetry::ServiceMetrics;
use conclave_runtime::Timestamp;

/// What the router knows about one backend service.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendWindow {
    first_seen: Timestamp,
    last_seen: Timestamp,
    replicas: u32,
    latency_p99_ms: f64,
    error_rate: f64,
    load_per_replica: f64,
}

impl BackendWindow {
    /// A window started by its first report: the averages start at its values.
    pub fn new(m: &ServiceMetrics) -> Self {
        BackendWindow {
            first_seen: m.ts,
            last_seen: m.ts,
            replicas: m.replicas,
            latency_p99_ms: m.latency_p99_ms,
            error_rate: m.error_rate,
            load_per_replica: load_per_replica(m),
        }
    }

    /// Folds one report in with weight `alpha`. Reports older than the newest are ignored
    /// (the runtime delivers in order; this keeps `last_seen` monotonic if it ever does not).
    pub fn update(&mut self, m: &ServiceMetrics, alpha: f64) {
        if m.ts < self.last_seen {
            return;
        }
        let ewma = |avg: f64, x: f64| alpha * x + (1.0 - alpha) * avg;
        self.last_seen = m.ts;
        self.replicas = m.replicas;
        self.latency_p99_ms = ewma(self.latency_p99_ms, m.latency_p99_ms);
        self.error_rate = ewma(self.error_rate, m.error_rate);
        self.load_per_replica = ewma(self.load_per_replica, load_per_replica(m));
    }

    /// When the backend first reported.
    pub fn first_seen(&self) -> Timestamp {
        self.first_seen
    }
    /// When the backend last reported.
    pub fn last_seen(&self) -> Timestamp {
        self.last_seen
    }
    /// Replicas in the last report.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }
    /// p99 latency EWMA, milliseconds.
    pub fn latency_p99_ms(&self) -> f64 {
        self.latency_p99_ms
    }
    /// Error-rate EWMA, `0.0..=1.0`.
    pub fn error_rate(&self) -> f64 {
        self.error_rate
    }
    /// Requests/s per replica, EWMA.
    pub fn load_per_replica(&self) -> f64 {
        self.load_per_replica
    }
}

/// `rate_in` per replica; with no replicas the whole rate (the backend gets no weight
/// then anyway, see `fallback::Availability`).
fn load_per_replica(m: &ServiceMetrics) -> f64 {
    m.rate_in / f64::from(m.replicas.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_runtime::telemetry::SCHEMA_VERSION;

    fn m(s: i64, latency: f64, errors: f64, rate_in: f64, replicas: u32) -> ServiceMetrics {
        ServiceMetrics {
            schema_version: SCHEMA_VERSION,
            service: "a".into(),
            ts: Timestamp::from_millis(s * 1000),
            rate_in,
            rate_out: rate_in,
            backlog: 0,
            latency_p50_ms: latency / 2.0,
            latency_p99_ms: latency,
            error_rate: errors,
            cpu: 0.5,
            replicas,
            region: None,
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn averages_start_at_the_first_report_and_move_by_alpha() {
        let mut w = BackendWindow::new(&m(0, 100.0, 0.0, 400.0, 4));
        w.update(&m(5, 200.0, 0.1, 300.0, 3), 0.3);
        assert!((w.latency_p99_ms() - 130.0).abs() < 1e-9);
        assert!((w.error_rate() - 0.03).abs() < 1e-9);
        assert!((w.load_per_replica() - 100.0).abs() < 1e-9);
        assert_eq!(w.replicas(), 3);
        w.update(&m(4, 1000.0, 1.0, 0.0, 1), 0.3);
        assert_eq!(
            w.last_seen(),
            Timestamp::from_millis(5000),
            "older report ignored"
        );
        assert_eq!(w.first_seen(), Timestamp::EPOCH);
    }
}
