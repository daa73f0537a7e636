//! The JSON error answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error: HTTP status + `{"error", "field", "detail"}` JSON.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong and what to fix.
    pub error: String,
    /// The request field at fault, if any.
    pub field: Option<String>,
    /// Extra structured detail (e.g. a test-case diff).
    pub detail: Option<Value>,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
            detail: None,
        }
    }
    /// 400 Bad Request.
    pub fn bad(error: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
    /// 422 Unprocessable Entity.
    pub fn unprocessable(error: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, error)
    }
    /// 404 Not Found.
    pub fn not_found(error: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, error)
    }
    /// 409 Conflict.
    pub fn conflict(error: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, error)
    }
    /// 500 Internal Server Error.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {error}"),
        )
    }
    /// Set the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }
    /// Attach structured detail.
    pub fn detail(mut self, detail: Value) -> ApiError {
        self.detail = Some(detail);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.error)
    }
}

impl std::error::Error for ApiError {}

impl From<strowger_store::StoreError> for ApiError {
    fn from(e: strowger_store::StoreError) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error, "field": self.field });
        if let Some(d) = self.detail {
            body["detail"] = d;
        }
        (self.status, axum::Json(body)).into_response()
    }
}
