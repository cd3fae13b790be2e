//! Events of the telemetry the runtime exports about itself (OTLP).

use super::Counters;

/// An OTLP export of the runtime's metrics failed (the collector is down or refused it).
/// Decisions do not wait for exports: the figures go out with the next one.
#[derive(Debug)]
pub struct MetricsExportFailed<'a> {
    /// The error.
    pub error: &'a dyn std::error::Error,
}

impl MetricsExportFailed<'_> {
    /// Logs and counts it.
    pub fn emit(self, counters: &Counters) {
        counters.add_export_error("metrics");
        tracing::warn!(error = %self.error, "OTLP metrics export failed; the next export carries the figures.");
    }
}

/// An OTLP export of decision traces failed. Decisions go on; the spans of that batch are
/// lost (the audit log still has every decision and its trace id).
#[derive(Debug)]
pub struct TraceExportFailed<'a> {
    /// The error.
    pub error: &'a dyn std::error::Error,
}

impl TraceExportFailed<'_> {
    /// Logs and counts it.
    pub fn emit(self, counters: &Counters) {
        counters.add_export_error("traces");
        tracing::warn!(error = %self.error, "OTLP trace export failed; that batch of spans is lost.");
    }
}
