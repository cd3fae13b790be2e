//! Telemetry as it travels on the wire: versioned JSON (`schema_version`), decoded into
//! typed values once at the edge, so agents never see a malformed message.
//!
//! Decoding is total: every byte string either becomes a [`Telemetry`] or a
//! [`DecodeError`] with a bounded [`DeadLetterReason`]; see [`Decoder::decode`].

mod dead_letter;
mod decode;
mod types;

#[cfg(test)]
mod tests;

pub use dead_letter::{
    DeadLetter, DeadLetterReason, DeadLetterSink, JsonlDeadLetters, MemoryDeadLetters,
};
pub use decode::{DecodeError, DecodeLimits, Decoder, Expected, FieldPath, Found};
pub use types::{
    encode, Dependency, EventSample, Health, HealthStatus, ServiceMetrics, Telemetry,
    TelemetryKind, SCHEMA_VERSION,
};
