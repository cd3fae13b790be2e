//! The endpoints that only look: health, the operator view, decisions and their live
//! stream. None of them sends the arbiter a message (the view is published to a watch
//! channel, decisions to the feed), so a burst of reads cannot delay a decision.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use futures::Stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::feed::DecisionQuery;
use super::{ApiContext, Caller};
use crate::decision::Decision;
use crate::overrides::{AgentView, OperatorView, Override, PendingApproval};

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the runtime is deciding.
pub(crate) async fn readyz(State(ctx): State<ApiContext>) -> Response {
    if ctx.handle.is_running() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the arbiter is not running\n",
        )
            .into_response()
    }
}

/// `GET /`: the operator console.
pub(crate) async fn console() -> Html<&'static str> {
    Html(include_str!("console.html"))
}

/// `GET /api/v1/openapi.json`
pub(crate) async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

/// `GET /api/v1/view`: everything the console shows but decisions.
pub(crate) async fn view(State(ctx): State<ApiContext>, _c: Caller) -> Json<OperatorView> {
    // The view is as of the arbiter's last change; its clock reading is as of now.
    let mut v = ctx.handle.view();
    v.now = ctx.clock.now();
    Json(v)
}

/// `GET /api/v1/agents`
pub(crate) async fn agents(State(ctx): State<ApiContext>, _c: Caller) -> Json<Vec<AgentView>> {
    Json(ctx.handle.view().agents)
}

/// `GET /api/v1/approvals`
pub(crate) async fn approvals(
    State(ctx): State<ApiContext>,
    _c: Caller,
) -> Json<Vec<PendingApproval>> {
    Json(ctx.handle.view().pending)
}

/// The overrides in force.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OverridesResponse {
    /// Whether a freeze is in force.
    pub frozen: bool,
    /// Freeze, pauses, pins and modes in force.
    pub overrides: Vec<Override>,
}

/// `GET /api/v1/overrides`
pub(crate) async fn overrides(
    State(ctx): State<ApiContext>,
    _c: Caller,
) -> Json<OverridesResponse> {
    let v = ctx.handle.view();
    Json(OverridesResponse {
        frozen: v.frozen,
        overrides: v.overrides,
    })
}

/// `GET /api/v1/decisions?target=&agent=&outcome=&limit=`
pub(crate) async fn decisions(
    State(ctx): State<ApiContext>,
    _c: Caller,
    q: Result<Query<DecisionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Decision>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(ctx.feed.query(&q)))
}

/// `GET /api/v1/decisions/{id}`: every record of the decision still held (e.g. pending,
/// then approved).
pub(crate) async fn decision(
    State(ctx): State<ApiContext>,
    _c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Decision>>, ApiError> {
    let records = ctx.feed.get(&id);
    if records.is_empty() {
        return Err(ApiError::not_found(format!(
            "no decision `{id}` among the recent ones (the audit log has them all: `conclave decisions explain {id}`)"
        )));
    }
    Ok(Json(records))
}

/// `GET /api/v1/decisions/stream`: server-sent events, one `decision` event per decision
/// as it is made; `lagged` when a slow reader missed some.
pub(crate) async fn stream(
    State(ctx): State<ApiContext>,
    _c: Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = ctx.feed.subscribe();
    let shutdown = ctx.shutdown.clone();
    let events = futures::stream::unfold((rx, shutdown), |(mut rx, mut shutdown)| async move {
        loop {
            let got = tokio::select! {
                // The stream ends when the server stops, so a graceful shutdown does not
                // wait forever on open consoles.
                _ = shutdown.changed() => return None,
                got = rx.recv() => got,
            };
            let event = match got {
                Ok(d) => match serde_json::to_string(&*d) {
                    Ok(json) => Event::default()
                        .event("decision")
                        .id(d.id.clone())
                        .data(json),
                    Err(_) => continue,
                },
                Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (rx, shutdown)));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
