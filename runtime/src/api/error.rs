//! How the API says no: a status and a JSON body `{"error": "..."}` that says what is
//! wrong in words a person can act on.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::AuthError;
use crate::arbiter::OverrideError;
use crate::overrides::Role;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 403: `role` may not do `what`, which needs `needs`.
    pub fn forbidden(role: Role, what: &str, needs: Role) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "role `{}` may not {what} (needs `{}`)",
                role.as_str(),
                needs.as_str()
            ),
        }
    }

    /// 503: the runtime cannot take it now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: e.to_string(),
        }
    }
}

impl From<OverrideError> for ApiError {
    fn from(e: OverrideError) -> Self {
        let status = match &e {
            OverrideError::MissingReason { .. }
            | OverrideError::ExpiryInPast { .. }
            | OverrideError::UnknownAgent { .. }
            | OverrideError::PinOutOfBounds { .. } => StatusCode::BAD_REQUEST,
            OverrideError::NotPermitted { .. } | OverrideError::NotAnApprover { .. } => {
                StatusCode::FORBIDDEN
            }
            OverrideError::NotPending { .. } => StatusCode::NOT_FOUND,
            OverrideError::NotSaved { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // Too large and wrong content type keep their own statuses; everything else about
        // the body (syntax, missing or unknown fields, wrong types) is a 400.
        let status = match r.status() {
            s @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => s,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: r.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"conclave\""),
            );
        }
        res
    }
}
