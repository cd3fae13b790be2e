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

/// What a body says besides its own fields: why, and until when.
trait Said {
    /// The reason and the expiry at `now`.
    fn said(&self, now: Timestamp) -> Result<(String, Option<Timestamp>), ApiError>;
}

impl Said for ReasonBody {
    fn said(&self, _now: Timestamp) -> Result<(String, Option<Timestamp>), ApiError> {
        Ok((self.reason.clone(), None))
    }
}

macro_rules! timed {
    ($($t:ty),*) => {$(
        impl Said for $t {
            fn said(&self, now: Timestamp) -> Result<(String, Option<Timestamp>), ApiError> {
                Ok((self.reason.clone(), expiry(now, self.until, self.for_.as_deref())?))
            }
        }
    )*};
}
timed!(TimedBody, PinBody, ModeBody);

type Acted = Result<(StatusCode, Json<ActResponse>), ApiError>;

async fn act(
    ctx: &ApiContext,
    caller: Caller,
    needs: Role,
    what: &str,
    kind: OverrideKind,
    said: &impl Said,
) -> Acted {
    let by = caller.require(needs, what)?;
    let now = ctx.clock.now();
    let (reason, until) = said.said(now)?;
    let o = Override {
        id: ctx.new_override_id()?,
        kind,
        by,
        reason,
        at: now,
        until,
    };
    let applied = ctx
        .handle
        .apply_override(o.clone())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let (status, decisions, fleet) = match applied {
        Ok(decisions) => (StatusCode::OK, decisions, forward(ctx, &o).await),
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
            (status, Vec::new(), fleet)
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        status,
        Json(ActResponse {
            override_: o,
            decisions,
            fleet,
        }),
    ))
}

/// One endpoint per act: its body type, the least role, what it is called in a refusal,
/// and the override it makes (from the path parameter, if any, and the body).
macro_rules! endpoint {
    ($(#[$doc:meta])* $name:ident($body:ty) $needs:ident $what:literal => |$b:ident| $kind:expr) => {
        $(#[$doc])*
        pub(crate) async fn $name(State(ctx): State<ApiContext>, caller: Caller, Body($b): Body<$body>) -> Acted {
            act(&ctx, caller, Role::$needs, $what, $kind, &$b).await
        }
    };
    ($(#[$doc:meta])* $name:ident($param:ident, $body:ty) $needs:ident $what:literal => |$b:ident| $kind:expr) => {
        $(#[$doc])*
        pub(crate) async fn $name(
            State(ctx): State<ApiContext>,
            Path($param): Path<String>,
            caller: Caller,
            Body($b): Body<$body>,
        ) -> Acted {
            act(&ctx, caller, Role::$needs, $what, $kind, &$b).await
        }
    };
}

endpoint!(
    /// `POST /api/v1/freeze`
    freeze(TimedBody) Operator "freeze the arbiter" => |b| OverrideKind::Freeze
);
endpoint!(
    /// `POST /api/v1/unfreeze`
    unfreeze(ReasonBody) Operator "unfreeze the arbiter" => |b| OverrideKind::Unfreeze
);
endpoint!(
    /// `POST /api/v1/agents/{agent}/pause`
    pause(agent, TimedBody) Operator "pause an agent" => |b| OverrideKind::Pause { agent }
);
endpoint!(
    /// `POST /api/v1/agents/{agent}/resume`
    resume(agent, ReasonBody) Operator "resume an agent" => |b| OverrideKind::Resume { agent }
);
endpoint!(
    /// `PUT /api/v1/agents/{agent}/mode`
    set_mode(agent, ModeBody) Admin "change an agent's mode" => |b| OverrideKind::SetMode { agent, mode: b.mode }
);
endpoint!(
    /// `POST /api/v1/targets/{target}/pin`
    pin(target, PinBody) Operator "pin a target" => |b| OverrideKind::Pin { target: Target::new(target), replicas: b.replicas }
);
endpoint!(
    /// `POST /api/v1/targets/{target}/unpin`
    unpin(target, ReasonBody) Operator "unpin a target" => |b| OverrideKind::Unpin { target: Target::new(target) }
);
// Approve and deny need an operator at least; the approval rule then says which of them
// may answer, and the arbiter checks that against the caller.
endpoint!(
    /// `POST /api/v1/decisions/{id}/approve`
    approve(decision, ReasonBody) Operator "approve a decision" => |b| OverrideKind::Approve { decision }
);
endpoint!(
    /// `POST /api/v1/decisions/{id}/deny`
    deny(decision, ReasonBody) Operator "deny a decision" => |b| OverrideKind::Deny { decision }
);
endpoint!(
    /// `POST /api/v1/decisions/{id}/veto`
    veto(decision, ReasonBody) Operator "veto a decision" => |b| OverrideKind::Veto { decision }
);
