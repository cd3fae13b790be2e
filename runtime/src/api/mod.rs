//! The operator API and console, served by the running runtime (feature `api`).
//!
//! Everything but `/healthz`, `/readyz`, `/metrics`, the console page and the OpenAPI
//! document needs a bearer token ([`auth`]). Reads come from the published operator view and the decision
//! feed; acts become [`Override`](crate::Override)s the arbiter checks, journals and
//! audits. Who may do what is the table in the README ("Operator API").

mod act;
pub mod auth;
mod error;
mod feed;
mod metrics;
pub mod openapi;
mod read;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

pub use auth::{AuthError, TokenEntry, TokenStore};
pub use error::ApiError;
pub use feed::{DecisionFeed, DecisionQuery};

use crate::clock::Clock;
use crate::overrides::{Actor, Override, Role};
use crate::supervision::RuntimeHandle;

/// The largest request body accepted (every body is a few fields).
pub const BODY_LIMIT: usize = 16 * 1024;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The address to bind (127.0.0.1 unless told otherwise).
    pub bind: SocketAddr,
    /// Certificate chain and private key (PEM) to serve HTTPS with; plain HTTP if `None`.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Hands an override applied here to the other instances (the Pulsar control topic) and
/// answers whether it went out.
pub type Fanout = mpsc::Sender<(Override, oneshot::Sender<Result<(), String>>)>;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiContext {
    handle: RuntimeHandle,
    feed: DecisionFeed,
    tokens: TokenStore,
    clock: Arc<dyn Clock>,
    fanout: Option<Fanout>,
    shutdown: watch::Receiver<bool>,
}

impl ApiContext {
    /// The API of the runtime behind `handle`: recent decisions from `feed`, callers
    /// checked against `tokens`, overrides stamped by `clock`.
    pub fn new(
        handle: RuntimeHandle,
        feed: DecisionFeed,
        tokens: TokenStore,
        clock: Arc<dyn Clock>,
    ) -> Self {
        ApiContext {
            handle,
            feed,
            tokens,
            clock,
            fanout: None,
            shutdown: watch::channel(false).1,
        }
    }

    /// With several instances: every override applied here is also sent to the others,
    /// and an answer to a decision pending elsewhere is passed on to its owner.
    #[must_use]
    pub fn with_fanout(mut self, fanout: Fanout) -> Self {
        self.fanout = Some(fanout);
        self
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The certificate or key could not be used.
    #[error("API TLS: {0}")]
    Tls(String),
}

/// The caller, authenticated from the `Authorization` header.
pub(crate) struct Caller(Actor);

impl Caller {
    /// The caller as the actor of an override, if their role reaches `needs`.
    pub(crate) fn require(self, needs: Role, what: &str) -> Result<Actor, ApiError> {
        if self.0.role < needs {
            return Err(ApiError::forbidden(self.0.role, what, needs));
        }
        Ok(self.0)
    }
}

impl FromRequestParts<ApiContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.to_str().map_err(|_| AuthError::Malformed))
            .transpose()?;
        Ok(Caller(ctx.tokens.authenticate(header).await?))
    }
}

impl ApiContext {
    fn new_override_id(&self) -> Result<String, ApiError> {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b)
            .map_err(|e| ApiError::unavailable(format!("no randomness for an id: {e}")))?;
        Ok(format!(
            "ov-{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ))
    }
}

/// The routes (the OpenAPI document lists the same ones; a test holds them together).
pub fn router(ctx: ApiContext) -> Router {
    let counted = ctx.clone();
    Router::new()
        .route("/", get(read::console))
        .route("/healthz", get(read::healthz))
        .route("/readyz", get(read::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/openapi.json", get(read::openapi))
        .route("/api/v1/view", get(read::view))
        .route("/api/v1/agents", get(read::agents))
        .route("/api/v1/approvals", get(read::approvals))
        .route("/api/v1/overrides", get(read::overrides))
        .route("/api/v1/decisions", get(read::decisions))
        .route("/api/v1/decisions/stream", get(read::stream))
        .route("/api/v1/decisions/{id}", get(read::decision))
        .route("/api/v1/decisions/{id}/approve", post(act::approve))
        .route("/api/v1/decisions/{id}/deny", post(act::deny))
        .route("/api/v1/decisions/{id}/veto", post(act::veto))
        .route("/api/v1/freeze", post(act::freeze))
        .route("/api/v1/unfreeze", post(act::unfreeze))
        .route("/api/v1/agents/{agent}/pause", post(act::pause))
        .route("/api/v1/agents/{agent}/resume", post(act::resume))
        .route("/api/v1/agents/{agent}/mode", put(act::set_mode))
        .route("/api/v1/targets/{target}/pin", post(act::pin))
        .route("/api/v1/targets/{target}/unpin", post(act::unpin))
        .fallback(|| async { ApiError::not_found("no such endpoint (see /api/v1/openapi.json)") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            counted,
            metrics::count,
        ))
        .with_state(ctx)
}

/// A running API server.
pub struct ApiServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// The address it listens on (the port is chosen by the system when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends live streams, and waits for requests in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds and serves the API until [`ApiServer::shutdown`].
///
/// # Errors
/// [`ServeError`] when the address cannot be bound or the TLS files cannot be used.
pub async fn serve(config: &ApiConfig, ctx: ApiContext) -> Result<ApiServer, ServeError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|error| ServeError::Bind {
            addr: config.bind,
            error,
        })?;
    let addr = listener.local_addr().map_err(|error| ServeError::Bind {
        addr: config.bind,
        error,
    })?;
    let (stop, shutdown) = watch::channel(false);
    let app = router(ApiContext {
        shutdown: shutdown.clone(),
        ..ctx
    });
    let mut until_stopped = shutdown;
    let task = match tls {
        None => tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = until_stopped.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("The API server stopped: {e}");
            }
        }),
        Some(acceptor) => tokio::spawn(tls::serve(listener, acceptor, app, until_stopped)),
    };
    Ok(ApiServer { addr, stop, task })
}
