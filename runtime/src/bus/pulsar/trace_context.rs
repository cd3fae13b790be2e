//! Messaging spans on Pulsar (OpenTelemetry messaging semantic conventions, v1.27): a
//! `send {topic}` producer span per published message, whose W3C `traceparent` travels in
//! the message's properties, and a `process {topic}` consumer span per message received,
//! linked to that producer context. Without the `otel` feature, or with no OpenTelemetry
//! layer installed, the spans are disabled and no property is written.

use tracing::Span;

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

/// The `traceparent` of `span`, if it is recorded by OpenTelemetry.
pub(crate) fn traceparent_of(span: &Span) -> Option<String> {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| {
            format!(
                "00-{:032x}-{:016x}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            )
        })
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        None
    }
}

/// A `traceparent` value (version 00) as a remote span context; `None` if malformed.
#[cfg(feature = "otel")]
pub(crate) fn parse(v: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00"
        || parts.next().is_some()
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::parse;

    #[test]
    fn traceparent_values_are_checked() {
        let sc = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(
            format!("{:032x}", sc.trace_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
