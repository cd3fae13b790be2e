//! OTLP export of the runtime's metrics (issue #7), beside the traces of
//! `observability.rs`.
//!
//! The registry ([`Metrics`]) is made here, before any command runs, and handed to the
//! runtime (`Runtime::start_with_metrics`); the operator API serves the same registry at
//! `GET /metrics`. Export is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) is set and `OTEL_METRICS_EXPORTER` is not `none`;
//! then a periodic reader (every `OTEL_METRIC_EXPORT_INTERVAL` ms, 60 s by default, and once
//! more at exit) sends every metric of the catalog, cumulative, over the protocol
//! `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL` names (`grpc`, the
//! default, or `http/protobuf`).
//!
//! Counters and gauges are observable instruments whose callbacks read the registry. The
//! SDK (0.33) has no observable histogram and no public way to build histogram data, so
//! the inference histogram is a synchronous instrument with the runtime's bucket bounds,
//! fed at each collection with what the runtime's atomic buckets gained since the last
//! one: each new duration is replayed as its bucket's mean, which keeps every bucket's
//! count and the sum exact (min and max are not recorded). A failed export is counted
//! (`conclave.otlp.export.errors`) and logged; decisions never wait for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use conclave_runtime::events::MetricsExportFailed;
use conclave_runtime::metrics::{HistogramSnapshot, Kind, MetricDef, Metrics, Sample, Value, ALL};
use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};

/// The registry every command records into, and its exporter when one is configured.
/// Dropping it exports once more and shuts the exporter down: keep it until the command
/// has finished (for `run`, after the runtime drained).
pub struct MetricsExport {
    registry: Arc<Metrics>,
    provider: Option<SdkMeterProvider>,
    // The gRPC exporter's channel lives on this runtime (tonic needs a reactor).
    runtime: Option<tokio::runtime::Runtime>,
}

impl MetricsExport {
    /// The registry to give the runtime.
    pub fn registry(&self) -> Arc<Metrics> {
        self.registry.clone()
    }
}

impl Drop for MetricsExport {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("conclave: the last metrics export failed: {e}");
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Makes the registry and, when configured, its OTLP exporter. Never fails: a problem
/// with the exporter is said on stderr and the command runs without it.
pub fn init() -> MetricsExport {
    let mut export = MetricsExport {
        registry: Arc::new(Metrics::new()),
        provider: None,
        runtime: None,
    };
    let endpoint = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .is_some();
    match env("OTEL_METRICS_EXPORTER").as_deref() {
        None | Some("otlp") if endpoint => {}
        None | Some("otlp" | "none") => return export,
        Some(other) => {
            eprintln!(
                "conclave: OTEL_METRICS_EXPORTER {other:?} is not supported (otlp or none; \
                 `conclave run --api` serves Prometheus at /metrics); metrics export is off"
            );
            return export;
        }
    }
    match build(&export.registry) {
        Ok((provider, runtime)) => {
            export.provider = Some(provider);
            export.runtime = runtime;
        }
        Err(e) => eprintln!("conclave: OpenTelemetry metrics export is off: {e}"),
    }
    export
}

fn grpc() -> anyhow::Result<bool> {
    match env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
    {
        None => Ok(true),
        Some(p) if p == "grpc" => Ok(true),
        Some(p) if p == "http/protobuf" => Ok(false),
        Some(other) => anyhow::bail!(
            "unsupported OTEL_EXPORTER_OTLP_PROTOCOL {other:?} (grpc or http/protobuf)"
        ),
    }
}

fn build(
    registry: &Arc<Metrics>,
) -> anyhow::Result<(SdkMeterProvider, Option<tokio::runtime::Runtime>)> {
    let (exporter, runtime) = if grpc()? {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otel-metrics")
            .enable_all()
            .build()?;
        let exporter = {
            let _enter = runtime.enter();
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()?
        };
        (exporter, Some(runtime))
    } else {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .build()?;
        (exporter, None)
    };
    // The reader reads OTEL_METRIC_EXPORT_INTERVAL itself.
    let reader = PeriodicReader::builder(Counted {
        inner: exporter,
        registry: registry.clone(),
    })
    .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(crate::observability::resource())
        .with_reader(reader)
        .with_view(histogram_view)
        .build();
    register(&provider.meter("conclave"), registry);
    Ok((provider, runtime))
}

/// Histograms keep the catalog's bucket bounds and record no min/max (replayed values are
/// bucket means, not observations).
fn histogram_view(i: &Instrument) -> Option<Stream> {
    let def = ALL
        .iter()
        .find(|d| d.kind == Kind::Histogram && d.name == i.name())?;
    Stream::builder()
        .with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries: def.buckets.to_vec(),
            record_min_max: false,
        })
        .build()
        .ok()
}

fn attributes(def: &MetricDef, sample: &Sample) -> Vec<KeyValue> {
    def.labels
        .iter()
        .zip(&sample.labels)
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// One instrument per catalog entry, reading the registry when the SDK collects.
fn register(meter: &Meter, registry: &Arc<Metrics>) {
    for def in ALL {
        let r = registry.clone();
        match def.kind {
            Kind::Counter => {
                meter
                    .u64_observable_counter(def.name)
                    .with_description(def.help)
                    .with_unit(def.unit)
                    .with_callback(move |o| {
                        for s in r.samples(def) {
                            if let Value::Counter(v) = s.value {
                                o.observe(v, &attributes(def, &s));
                            }
                        }
                    })
                    .build();
            }
            Kind::Gauge => {
                meter
                    .f64_observable_gauge(def.name)
                    .with_description(def.help)
                    .with_unit(def.unit)
                    .with_callback(move |o| {
                        for s in r.samples(def) {
                            if let Value::Gauge(v) = s.value {
                                o.observe(v, &attributes(def, &s));
                            }
                        }
                    })
                    .build();
            }
            Kind::Histogram => {
                let histogram = meter
                    .f64_histogram(def.name)
                    .with_description(def.help)
                    .with_unit(def.unit)
                    .build();
                let replay = Replay {
                    def,
                    histogram,
                    seen: Mutex::new(BTreeMap::new()),
                };
                // Callbacks run before the SDK reads any instrument, so this one, which
                // reports nothing itself, brings the histogram up to date first.
                meter
                    .u64_observable_gauge(format!("{}.replay", def.name))
                    .with_callback(move |_| replay.catch_up(&r))
                    .build();
            }
        }
    }
}

/// Per bucket, the count and sum (seconds) of one series already replayed.
type Replayed = Vec<(u64, f64)>;

/// Feeds a synchronous histogram with what a runtime histogram gained since last time.
struct Replay {
    def: &'static MetricDef,
    histogram: Histogram<f64>,
    /// By series (label values).
    seen: Mutex<BTreeMap<Vec<String>, Replayed>>,
}

impl Replay {
    fn catch_up(&self, registry: &Metrics) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for s in registry.samples(self.def) {
            let Value::Histogram(h) = &s.value else {
                continue;
            };
            let attrs = attributes(self.def, &s);
            let before = seen.entry(s.labels.clone()).or_default();
            replay(h, before, |v| self.histogram.record(v, &attrs));
        }
    }
}

/// Calls `record` once per duration `h` has beyond `before` (updated), with the mean of
/// the new durations of its bucket (kept inside the bucket's bounds).
fn replay(h: &HistogramSnapshot, before: &mut Replayed, mut record: impl FnMut(f64)) {
    before.resize(h.buckets.len(), (0, 0.0));
    let mut lower = f64::NEG_INFINITY;
    for (b, (count, sum)) in h.buckets.iter().zip(before.iter_mut()) {
        let new = b.count.saturating_sub(*count);
        if new > 0 {
            let mean = ((b.sum - *sum) / new as f64).min(b.le);
            let mean = if mean > lower { mean } else { lower.next_up() };
            for _ in 0..new {
                record(mean);
            }
        }
        *count = b.count;
        *sum = b.sum;
        lower = b.le;
    }
}

/// The OTLP exporter, counting and logging its failures.
struct Counted<E> {
    inner: E,
    registry: Arc<Metrics>,
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(error) = &result {
            MetricsExportFailed { error }.emit(self.registry.counters());
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use conclave_runtime::metrics::Bucket;

    use super::*;

    fn snapshot(buckets: &[(f64, u64, f64)]) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: buckets
                .iter()
                .map(|&(le, count, sum)| Bucket { le, count, sum })
                .collect(),
        }
    }

    #[test]
    fn replay_records_only_what_is_new_as_bucket_means() {
        let mut before = Vec::new();
        let mut got = Vec::new();
        let h = snapshot(&[(0.001, 2, 0.0012), (1.0, 1, 0.5), (f64::INFINITY, 0, 0.0)]);
        replay(&h, &mut before, |v| got.push(v));
        assert_eq!(got, [0.0006, 0.0006, 0.5]);
        got.clear();
        let h = snapshot(&[(0.001, 2, 0.0012), (1.0, 1, 0.5), (f64::INFINITY, 1, 7.0)]);
        replay(&h, &mut before, |v| got.push(v));
        assert_eq!(got, [7.0]);
        got.clear();
        replay(&h, &mut before, |v| got.push(v));
        assert!(got.is_empty(), "{got:?}");
        // A mean that rounding put on a bound stays inside its bucket.
        let mut before = Vec::new();
        let h = snapshot(&[(0.001, 1, 0.0011), (1.0, 1, 0.001), (f64::INFINITY, 0, 0.0)]);
        replay(&h, &mut before, |v| got.push(v));
        assert_eq!(got, [0.001, 0.001f64.next_up()]);
    }
}
