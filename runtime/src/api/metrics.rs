//! `GET /metrics` (the runtime's metrics in the Prometheus text format) and the layer that
//! counts every API response by status. The endpoint is public like `/healthz`: scrapers
//! rarely carry tokens, the figures name no target or decision, and the API binds
//! 127.0.0.1 unless told otherwise.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiContext;
use crate::events::ApiRequestServed;
use crate::metrics::prometheus;

/// `GET /metrics`
pub(crate) async fn metrics(State(ctx): State<ApiContext>) -> Response {
    let text = prometheus::render(&ctx.handle.metrics().snapshot());
    ([(CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response()
}

/// Counts the response to every request (`conclave.api.requests` by status).
pub(crate) async fn count(State(ctx): State<ApiContext>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    ApiRequestServed {
        status: response.status().as_u16(),
    }
    .emit(ctx.handle.metrics().counters());
    response
}
