//! The endpoints through which people act: each builds one [`Override`] stamped with who
//! (from the token), when (the runtime's clock) and why (required), and hands it to the
//! arbiter, which checks it, journals it, audits it and applies it.

use std::time::Duration;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{ApiContext, Caller};
use crate::arbiter::OverrideError;
use crate::clock::Timestamp;
use crate::decision::Decision;
use crate::overrides::{Override, OverrideKind, Role};
use crate::policy::Mode;
use crate::target::Target;

/// A JSON body whose every rejection is an [`ApiError`] with a message.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// Just a reason (unfreeze, resume, unpin, approve, deny, veto).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why, in your words (required; goes to the audit log).
    pub reason: String,
}

/// A reason and an optional expiry (freeze, pause).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimedBody {
    /// Why (required).
    pub reason: String,
    /// When it lapses (RFC 3339).
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// Or: for how long from now on the runtime's clock (`30m`, `2h`).
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
}

/// A pin: the replicas to hold a target at.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    /// Replicas (within the target's bounds).
    pub replicas: u32,
    /// Why (required).
    pub reason: String,
    /// When it lapses (RFC 3339).
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// Or: for how long from now.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
}

/// An agent's new mode.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    /// The mode.
    pub mode: Mode,
    /// Why (required).
    pub reason: String,
    /// When it lapses (RFC 3339).
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// Or: for how long from now.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
}

/// What an act did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ActResponse {
    /// The override as audited.
    #[serde(rename = "override")]
    pub override_: Override,
    /// Decisions it produced here (a settled approval, an enacted pin).
    pub decisions: Vec<Decision>,
    /// With several instances: whether the override went to the others too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
}

/// Sends `o` to the other instances, if there are any; says what happened.
async fn forward(ctx: &ApiContext, o: &Override) -> Option<String> {
    let fanout = ctx.fanout.as_ref()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    if fanout.send((o.clone(), tx)).await.is_err() {
        return Some("not forwarded: the control topic publisher stopped".into());
    }
    Some(match rx.await {
        Ok(Ok(())) => "forwarded to the other instances (control topic)".into(),
        Ok(Err(e)) => format!("not forwarded: {e}"),
        Err(_) => "not forwarded: the control topic publisher stopped".into(),
    })
}

fn expiry(
    now: Timestamp,
    until: Option<Timestamp>,
    for_: Option<&str>,
) -> Result<Option<Timestamp>, ApiError> {
    match (until, for_) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give `until` or `for`, not both")),
        (Some(u), None) => Ok(Some(u)),
        (None, Some(f)) => {
            let d: Duration = humantime::parse_duration(f).map_err(|e| {
                ApiError::bad_request(format!("`for`: `{f}` is not a duration like `30m` ({e})"))
            })?;
            if d.is_zero() {
                return Err(ApiError::bad_request("`for` must be longer than zero"));
            }
            Ok(Some(now.plus(d)))
        }
        (None, None) => Ok(None),
    }
}

async fn act(
    ctx: &ApiContext,
    caller: Caller,
    needs: Role,
    what: &str,
    kind: OverrideKind,
    reason: String,
    until: Option<Timestamp>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    let by = caller.require(needs, what)?;
    let o = Override {
        id: ctx.new_override_id()?,
        kind,
        by,
        reason,
        at: ctx.clock.now(),
        until,
    };
    let applied = ctx
        .handle
        .apply_override(o.clone())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    match applied {
        Ok(decisions) => {
            let fleet = forward(ctx, &o).await;
            Ok((
                StatusCode::OK,
                Json(ActResponse {
                    override_: o,
                    decisions,
                    fleet,
                }),
            ))
        }
        // Pending on another instance (each decides the targets it owns): its owner
        // settles it when the answer arrives on the control topic.
        Err(OverrideError::NotPending { .. }) if ctx.fanout.is_some() => {
            let fleet = forward(ctx, &o).await;
            let sent = fleet.as_deref().is_some_and(|f| f.starts_with("forwarded"));
            let status = if sent {
                StatusCode::ACCEPTED
            } else {
                StatusCode::NOT_FOUND
            };
            Ok((
                status,
                Json(ActResponse {
                    override_: o,
                    decisions: Vec::new(),
                    fleet,
                }),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/v1/freeze`
pub(crate) async fn freeze(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Body(b): Body<TimedBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    let until = expiry(ctx.clock.now(), b.until, b.for_.as_deref())?;
    act(
        &ctx,
        caller,
        Role::Operator,
        "freeze the arbiter",
        OverrideKind::Freeze,
        b.reason,
        until,
    )
    .await
}

/// `POST /api/v1/unfreeze`
pub(crate) async fn unfreeze(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Body(b): Body<ReasonBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    act(
        &ctx,
        caller,
        Role::Operator,
        "unfreeze the arbiter",
        OverrideKind::Unfreeze,
        b.reason,
        None,
    )
    .await
}

/// `POST /api/v1/agents/{agent}/pause`
pub(crate) async fn pause(
    State(ctx): State<ApiContext>,
    Path(agent): Path<String>,
    caller: Caller,
    Body(b): Body<TimedBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    let until = expiry(ctx.clock.now(), b.until, b.for_.as_deref())?;
    act(
        &ctx,
        caller,
        Role::Operator,
        "pause an agent",
        OverrideKind::Pause { agent },
        b.reason,
        until,
    )
    .await
}

/// `POST /api/v1/agents/{agent}/resume`
pub(crate) async fn resume(
    State(ctx): State<ApiContext>,
    Path(agent): Path<String>,
    caller: Caller,
    Body(b): Body<ReasonBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    act(
        &ctx,
        caller,
        Role::Operator,
        "resume an agent",
        OverrideKind::Resume { agent },
        b.reason,
        None,
    )
    .await
}

/// `PUT /api/v1/agents/{agent}/mode`
pub(crate) async fn set_mode(
    State(ctx): State<ApiContext>,
    Path(agent): Path<String>,
    caller: Caller,
    Body(b): Body<ModeBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    let until = expiry(ctx.clock.now(), b.until, b.for_.as_deref())?;
    let kind = OverrideKind::SetMode {
        agent,
        mode: b.mode,
    };
    act(
        &ctx,
        caller,
        Role::Admin,
        "change an agent's mode",
        kind,
        b.reason,
        until,
    )
    .await
}

/// `POST /api/v1/targets/{target}/pin`
pub(crate) async fn pin(
    State(ctx): State<ApiContext>,
    Path(target): Path<String>,
    caller: Caller,
    Body(b): Body<PinBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    let until = expiry(ctx.clock.now(), b.until, b.for_.as_deref())?;
    let kind = OverrideKind::Pin {
        target: Target::new(target),
        replicas: b.replicas,
    };
    act(
        &ctx,
        caller,
        Role::Operator,
        "pin a target",
        kind,
        b.reason,
        until,
    )
    .await
}

/// `POST /api/v1/targets/{target}/unpin`
pub(crate) async fn unpin(
    State(ctx): State<ApiContext>,
    Path(target): Path<String>,
    caller: Caller,
    Body(b): Body<ReasonBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    let kind = OverrideKind::Unpin {
        target: Target::new(target),
    };
    act(
        &ctx,
        caller,
        Role::Operator,
        "unpin a target",
        kind,
        b.reason,
        None,
    )
    .await
}

/// `POST /api/v1/decisions/{id}/approve`
pub(crate) async fn approve(
    State(ctx): State<ApiContext>,
    Path(decision): Path<String>,
    caller: Caller,
    Body(b): Body<ReasonBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    // Operators at least; the approval rule then says which of them may answer, and the
    // arbiter checks that against the caller.
    act(
        &ctx,
        caller,
        Role::Operator,
        "approve a decision",
        OverrideKind::Approve { decision },
        b.reason,
        None,
    )
    .await
}

/// `POST /api/v1/decisions/{id}/deny`
pub(crate) async fn deny(
    State(ctx): State<ApiContext>,
    Path(decision): Path<String>,
    caller: Caller,
    Body(b): Body<ReasonBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    act(
        &ctx,
        caller,
        Role::Operator,
        "deny a decision",
        OverrideKind::Deny { decision },
        b.reason,
        None,
    )
    .await
}

/// `POST /api/v1/decisions/{id}/veto`
pub(crate) async fn veto(
    State(ctx): State<ApiContext>,
    Path(decision): Path<String>,
    caller: Caller,
    Body(b): Body<ReasonBody>,
) -> Result<(StatusCode, Json<ActResponse>), ApiError> {
    act(
        &ctx,
        caller,
        Role::Operator,
        "veto a decision",
        OverrideKind::Veto { decision },
        b.reason,
        None,
    )
    .await
}
