//! Messaging spans on Pulsar (OpenTelemetry messaging semantic conventions, v1.27): a
//! `send {topic}` producer span per published message, whose W3C `traceparent` travels in
//! the message's properties, and a `process {topic}` consumer span per message received,
//! linked to that producer context. Without the `otel` feature, or with no OpenTelemetry
//! layer installed, the spans are disabled and no property is written.

use tracing::Span;

#[cfg(feature = "otel")]
use crate::trace_context::parse;
pub(crate) use crate::trace_context::traceparent_of;

/// The message property carrying the producer's trace context (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

/// Target of the messaging spans (the binary's OpenTelemetry layer exports it).
const TARGET: &str = "conclave::messaging";

/// A producer span for one message to `topic`.
pub(crate) fn send_span(topic: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "send",
        otel.name = %format_args!("send {topic}"),
        otel.kind = "producer",
        messaging.system = "pulsar",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = %topic,
    )
}

/// A consumer span for one message received from `topic`, linked to the producer's
/// context when the message carries one.
pub(crate) fn process_span(
    topic: &str,
    message_id: &str,
    event_id: &str,
    traceparent: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "process",
        otel.name = %format_args!("process {topic}"),
        otel.kind = "consumer",
        messaging.system = "pulsar",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = %topic,
        messaging.message.id = %message_id,
        conclave.event.id = %event_id,
    );
    #[cfg(feature = "otel")]
    if let Some(cx) = traceparent.and_then(parse) {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        span.add_link(cx);
    }
    #[cfg(not(feature = "otel"))]
    let _ = traceparent;
    span
}
