//! API errors: one enum, one status code each, one JSON shape `{error, message}`.
//! Internal errors are logged with their detail and answered without it.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or invalid.
    #[error("{0}")]
    BadRequest(String),
    /// No or a wrong token.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// Not possible in the current state.
    #[error("{0}")]
    Conflict(String),
    /// The body is too large.
    #[error("{0}")]
    TooLarge(String),
    /// Too many calls: try again after this many seconds.
    #[error("{message}")]
    TooMany {
        /// What to tell the caller.
        message: String,
        /// Seconds until a call will be taken.
        retry_after: u64,
    },
    /// The server cannot take it now (its disk is full); the caller may try again.
    #[error("{0}")]
    Unavailable(String),
    /// Our fault; detail logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// What the caller is told (an internal error's detail goes to the log instead).
    pub fn message(&self) -> String {
        match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering a call");
                "internal error; the server log has the detail".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        let detail = e.to_string();
        if crate::disk::says_full(&detail) {
            tracing::error!(%detail, "the database's disk is full");
            return ApiError::Unavailable(
                "the server's disk is full: nothing was stored; try again once an operator has \
                 freed space (the status page shows the disk)"
                    .to_owned(),
            );
        }
        if e.is_unreachable() {
            tracing::error!(%detail, "the database is unreachable");
            return ApiError::Unavailable(format!(
                "the database is unreachable ({detail}): nothing was done; try again in a \
                 minute (Autoland goes on where it was once the database answers; the log \
                 and `autoland check` say more)"
            ));
        }
        ApiError::Internal(detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = self.message();
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        if let ApiError::TooMany { retry_after, .. } = &self
            && let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
