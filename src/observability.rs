//! Logging and tracing set-up, configured by environment variables.
//!
//! Logs always go to stderr (`CONCLAVE_LOG`, default `warn`). OpenTelemetry tracing is off
//! unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set;
//! then spans of target `conclave::decision` (a trace per decision) are exported by OTLP
//! in batches. The exporter reads the standard variables itself: protocol
//! (`OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc`, the default here, or `http/protobuf`), headers,
//! timeout; the resource takes `OTEL_SERVICE_NAME` (default `conclave`) and
//! `OTEL_RESOURCE_ATTRIBUTES`; the sampler `OTEL_TRACES_SAMPLER`(`_ARG`).
//!
//! The returned [`Telemetry`] guard flushes and shuts the exporter down when dropped: keep
//! it until the command has finished (for `run`, after the runtime drained).

use opentelemetry::trace::TracerProvider as _;
use std::sync::{Arc, OnceLock};

use conclave_runtime::events::TraceExportFailed;
use conclave_runtime::metrics::Metrics;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Keeps the exporter alive; flushes it on drop.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// Where trace export failures are counted, once the command has a metrics registry.
    errors_to: Arc<OnceLock<Arc<Metrics>>>,
    // The gRPC exporter's channel lives on this runtime (tonic needs a reactor); it is
    // dropped after the provider shut down.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Counts trace export failures in `metrics` from now on (`conclave run` makes one).
    pub fn count_export_errors(&self, metrics: Arc<Metrics>) {
        let _ = self.errors_to.set(metrics);
    }
}

/// The OTLP span exporter, with each failed batch counted (or, before a registry exists,
/// logged).
#[derive(Debug)]
struct CountedSpanExporter {
    inner: opentelemetry_otlp::SpanExporter,
    errors_to: Arc<OnceLock<Arc<Metrics>>>,
}

impl SpanExporter for CountedSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            match self.errors_to.get() {
                Some(m) => TraceExportFailed { error }.emit(m.counters()),
                None => tracing::warn!(%error, "OTLP trace export failed."),
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("conclave: flushing traces failed: {e}");
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Installs the global subscriber. Never fails: when the exporter cannot be built, says so
/// on stderr and runs without it.
pub fn init() -> Telemetry {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_env("CONCLAVE_LOG")
                .unwrap_or_else(|_| EnvFilter::new("warn,conclave::keda=info")),
        );
    let mut guard = Telemetry {
        errors_to: Arc::new(OnceLock::new()),
        provider: None,
        runtime: None,
    };
    if !(env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        tracing_subscriber::registry().with(fmt).init();
        return guard;
    }
    match build_provider(guard.errors_to.clone()) {
        Ok((provider, runtime)) => {
            let tracer = provider.tracer("conclave");
            let otel = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_filter(
                    Targets::new()
                        .with_target("conclave::decision", LevelFilter::INFO)
                        .with_target("conclave::messaging", LevelFilter::INFO)
                        .with_default(LevelFilter::OFF),
                );
            tracing_subscriber::registry().with(fmt).with(otel).init();
            guard.provider = Some(provider);
            guard.runtime = Some(runtime);
        }
        Err(e) => {
            tracing_subscriber::registry().with(fmt).init();
            eprintln!("conclave: OpenTelemetry export is off: {e}");
        }
    }
    guard
}

fn build_provider(
    errors_to: Arc<OnceLock<Arc<Metrics>>>,
) -> anyhow::Result<(SdkTracerProvider, tokio::runtime::Runtime)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-export")
        .enable_all()
        .build()?;
    // The protocol defaults to gRPC (the crate's own default, with both transports built
    // in, would be HTTP).
    let grpc = match std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
    {
        Ok(p) if !p.is_empty() => match p.as_str() {
            "grpc" => true,
            "http/protobuf" => false,
            other => anyhow::bail!(
                "unsupported OTEL_EXPORTER_OTLP_PROTOCOL {other:?} (grpc or http/protobuf)"
            ),
        },
        _ => true,
    };
    let exporter = if grpc {
        let _enter = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?
    };
    let sampler = conclave_runtime::sampling::DecisionSampler::from_env(
        std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
        std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_resource(resource())
        .with_batch_exporter(CountedSpanExporter {
            inner: exporter,
            errors_to,
        })
        .build();
    Ok((provider, runtime))
}

/// The resource of everything exported (traces and metrics): `service.name` is `conclave`
/// unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` says otherwise.
pub(crate) fn resource() -> Resource {
    let mut resource = Resource::builder();
    let named_in_attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| {
        a.split(',')
            .any(|kv| kv.trim_start().starts_with("service.name="))
    });
    if !env_set("OTEL_SERVICE_NAME") && !named_in_attributes {
        resource = resource.with_service_name("conclave");
    }
    resource.build()
}
