//! KEDA's external scaler (feature `keda`): Kubernetes scales a workload on what
//! Conclave decided, so the arbiter, guardrails, approvals and overrides still govern it.
//!
//! A `ScaledObject` names the Conclave target in its metadata (`target: checkout`). The
//! metric is the target's replicas from the latest decision that was carried out, with a
//! target size of 1, so the HPA KEDA drives lands on exactly those replicas. With the
//! scaler agent in shadow mode the answer is the reactive (HPA) recommendation its
//! proposal started from, and what Conclave would have answered is logged. A target is
//! active while its answer is above zero; `StreamIsActive` pushes each change.

mod book;

use std::net::SocketAddr;
use std::pin::Pin;

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

pub use book::{Enacted, ScaleBook, Shadowed};

use crate::policy::Mode;
use crate::supervision::RuntimeHandle;
use crate::target::Target;

/// The generated protocol types (proto/externalscaler.proto, from KEDA).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("externalscaler");
}

use pb::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use pb::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};

/// The metadata key naming the Conclave target.
pub const TARGET_KEY: &str = "target";
/// The agent whose decisions are served.
const AGENT: &str = "scaler";

/// The service.
#[derive(Clone)]
pub struct KedaScaler {
    handle: RuntimeHandle,
    book: ScaleBook,
    shutdown: watch::Receiver<bool>,
}

/// The metric name for `target` (KEDA prefixes it per trigger).
pub fn metric_name(target: &Target) -> String {
    let clean: String = target
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("conclave-replicas-{clean}")
}

impl KedaScaler {
    /// The scaler for the runtime behind `handle` (under the policy in force there, reloads
    /// included), answering from `book`.
    pub fn new(handle: RuntimeHandle, book: ScaleBook) -> Self {
        KedaScaler {
            handle,
            book,
            shutdown: watch::channel(false).1,
        }
    }

    /// The target a ScaledObject follows, or why it cannot be served.
    fn target_of(&self, r: &ScaledObjectRef) -> Result<(String, Target), Status> {
        if r.name.is_empty() {
            return Err(Status::invalid_argument(
                "the ScaledObjectRef has no name (KEDA always sends one)",
            ));
        }
        let so = format!("ScaledObject `{}/{}`", r.namespace, r.name);
        let Some(t) = r
            .scaler_metadata
            .get(TARGET_KEY)
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
        else {
            return Err(Status::invalid_argument(format!(
                "{so}: metadata has no `{TARGET_KEY}` (the Conclave target it follows)"
            )));
        };
        let target = Target::new(t);
        let in_force = self.handle.policy();
        let policy = in_force.name();
        let selected = in_force.selects(AGENT, &target);
        if !selected && !in_force.targets().contains_key(&target) {
            return Err(Status::not_found(format!(
                "{so}: target `{t}` is not in policy `{policy}`"
            )));
        }
        if !selected {
            return Err(Status::failed_precondition(format!(
                "{so}: policy `{policy}` does not give target `{t}` to the scaler agent"
            )));
        }
        Ok((so, target))
    }

    /// The replicas to answer for `target`.
    fn answer(&self, so: &str, target: &Target) -> Result<u32, Status> {
        let view = self.handle.view();
        let mode = view.agents.iter().find(|a| a.name == AGENT).map(|a| a.mode);
        match mode {
            None | Some(Mode::Off) => Err(Status::failed_precondition(format!(
                "{so}: the scaler agent is off in policy `{}`",
                self.handle.policy().name()
            ))),
            Some(Mode::Shadow) => match self.book.shadowed(target) {
                Some(s) => {
                    tracing::info!(
                        target: "conclave::keda",
                        "{so}: shadow: answered {} for `{target}` (reactive), would have answered {} ({})",
                        s.reactive,
                        s.would,
                        s.decision
                    );
                    Ok(s.reactive)
                }
                None => Err(Status::unavailable(format!(
                    "{so}: no shadow decision for `{target}` yet; KEDA keeps the current replicas"
                ))),
            },
            Some(_) => self.book.enacted(target).map(|e| e.replicas).ok_or_else(|| {
                Status::unavailable(format!(
                    "{so}: no scale of `{target}` has been carried out yet; KEDA keeps the current replicas"
                ))
            }),
        }
    }

    fn is_active(&self, so: &str, target: &Target) -> Result<bool, Status> {
        match self.answer(so, target) {
            Ok(r) => Ok(r > 0),
            // Nothing decided yet: not active, rather than an error KEDA would retry.
            Err(s) if s.code() == tonic::Code::Unavailable => Ok(false),
            Err(s) => Err(s),
        }
    }
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;
type SpecStream = Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for KedaScaler {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let (so, target) = self.target_of(request.get_ref())?;
        let result = KedaScaler::is_active(self, &so, &target)?;
        Ok(Response::new(IsActiveResponse { result }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<ActiveStream>, Status> {
        let (so, target) = self.target_of(request.get_ref())?;
        let state = (self.clone(), so, target, self.book.changes(), None::<bool>);
        let stream =
            futures::stream::unfold(state, |(me, so, target, mut changes, last)| async move {
                let mut shutdown = me.shutdown.clone();
                loop {
                    let now = match me.is_active(&so, &target) {
                        Ok(a) => a,
                        Err(e) => return Some((Err(e), (me, so, target, changes, last))),
                    };
                    // The current state first, then each change.
                    if last != Some(now) {
                        return Some((
                            Ok(IsActiveResponse { result: now }),
                            (me, so, target, changes, Some(now)),
                        ));
                    }
                    tokio::select! {
                        changed = changes.changed() => if changed.is_err() { return None },
                        _ = shutdown.wait_for(|s| *s) => return None,
                    }
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let (_, target) = self.target_of(request.get_ref())?;
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: metric_name(&target),
                target_size: 1,
                target_size_float: 1.0,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let req = request.get_ref();
        let r = req
            .scaled_object_ref
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("GetMetricsRequest has no scaledObjectRef"))?;
        let (so, target) = self.target_of(r)?;
        let want = metric_name(&target);
        // KEDA may prefix the name (`s0-...`); it must end with ours.
        if !req.metric_name.is_empty() && !req.metric_name.ends_with(&want) {
            return Err(Status::invalid_argument(format!(
                "{so}: unknown metric `{}` (this ScaledObject's metric is `{want}`)",
                req.metric_name
            )));
        }
        let replicas = self.answer(&so, &target)?;
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: req.metric_name.clone(),
                metric_value: i64::from(replicas),
                metric_value_float: f64::from(replicas),
            }],
        }))
    }

    type StreamMetricSpecStream = SpecStream;

    async fn stream_metric_spec(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<SpecStream>, Status> {
        // Optional in the protocol: the spec never changes (target size 1), so KEDA's
        // pull of GetMetricSpec is all it needs.
        Err(Status::unimplemented(
            "the metric spec is constant; use GetMetricSpec",
        ))
    }
}

/// Why the scaler could not start.
#[derive(Debug, thiserror::Error)]
#[error("KEDA external scaler: cannot listen on {addr}: {error}")]
pub struct KedaServeError {
    addr: SocketAddr,
    error: std::io::Error,
}

/// A running external scaler.
pub struct KedaServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl KedaServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Ends streams and stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves `scaler` on `bind` until [`KedaServer::shutdown`].
///
/// # Errors
/// [`KedaServeError`] when the address cannot be bound.
pub async fn serve(bind: SocketAddr, scaler: KedaScaler) -> Result<KedaServer, KedaServeError> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|error| KedaServeError { addr: bind, error })?;
    let addr = listener
        .local_addr()
        .map_err(|error| KedaServeError { addr: bind, error })?;
    let (stop, shutdown) = watch::channel(false);
    let scaler = KedaScaler {
        shutdown: shutdown.clone(),
        ..scaler
    };
    let mut until = shutdown;
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(ExternalScalerServer::new(scaler))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = until.wait_for(|s| *s).await;
                },
            )
            .await;
        if let Err(e) = served {
            tracing::error!("The KEDA external scaler stopped: {e}");
        }
    });
    Ok(KedaServer { addr, stop, task })
}
