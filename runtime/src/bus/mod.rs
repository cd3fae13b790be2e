//! Transports: where telemetry comes from and where actions go.
//!
//! The runtime reads telemetry through [`TelemetrySource`] and publishes actions through
//! [`ActionSink`]; the embedded bus (in-process, the default) and the Pulsar transport
//! implement the same traits, so the pipeline does not know which one it runs on.

mod embedded;
mod replay;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Timestamp;

pub use embedded::{
    BusConfig, EmbeddedBus, EmbeddedSource, OverloadPolicy, PartitionStats, Producer, TopicStats,
};
pub use replay::{peek, Replayer};

/// A boxed, sendable future (the traits are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message as a transport delivers it, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    /// The topic it was published on.
    pub topic: Arc<str>,
    /// The partition key (the target), when the producer set one.
    pub key: Option<String>,
    /// The payload, untouched.
    pub payload: Bytes,
    /// W3C `traceparent` of the transport's receive span (Pulsar's `process {topic}`),
    /// when it is traced: the decisions of the message's window link to it.
    pub trace: Option<Arc<str>>,
}

/// What a source yields: messages, and watermarks that say how far event time has got.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceItem {
    /// A message.
    Message(RawMessage),
    /// Every message with a timestamp before this one has been delivered; decision windows
    /// that end at or before it can close.
    Watermark(Timestamp),
    /// Close the current decision window now, at this time (shutdown, end of a replay),
    /// even if it is not a window boundary.
    Flush(Timestamp),
}

/// Transport failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The topic has no subscription in this bus.
    #[error("topic `{0}` is not known to this bus; subscribe before publishing")]
    UnknownTopic(String),
    /// The bus was closed.
    #[error("the bus is closed")]
    Closed,
    /// A transport-specific failure.
    #[error("transport error: {0}")]
    Transport(String),
}

/// A partition's worth of telemetry, consumed by one ingress.
pub trait TelemetrySource: Send + Sync + 'static {
    /// Waits until at least one item is available, then moves up to `max` items into
    /// `out`. Returns how many were added; `0` means the source is closed and drained.
    fn recv_batch<'a>(
        &'a mut self,
        max: usize,
        out: &'a mut Vec<SourceItem>,
    ) -> BoxFuture<'a, Result<usize, BusError>>;

    /// A short name for logs (`embedded/telemetry/0`).
    fn describe(&self) -> String;

    /// Reads how many items wait in this partition, when the transport can tell (the
    /// embedded bus can; a broker keeps its own backlog figures). For the
    /// `conclave.bus.partition.depth` metric.
    fn depth_probe(&self) -> Option<crate::metrics::DepthProbe> {
        None
    }
}

/// Where actions are published (for actuators that live outside this process).
pub trait ActionSink: Send + Sync + 'static {
    /// Publishes one encoded action record keyed by target, with message properties
    /// (decision id, trace context) where the transport has them.
    fn publish<'a>(
        &'a self,
        key: &'a str,
        payload: Bytes,
        properties: &'a [(&'static str, String)],
    ) -> BoxFuture<'a, Result<(), BusError>>;
}

#[cfg(feature = "pulsar")]
pub mod pulsar;
