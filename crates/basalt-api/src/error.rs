//! `ApiError`: every failure as PocketBase's error body `{"status","message","data"}`.
//! Causes are mapped explicitly; internal detail is logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_schema::ValidationErrors;
use basalt_schema::error::ValidationError;
use basalt_store::StoreError;
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub data: Value,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            data: json!({}),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "The requested resource wasn't found.",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn superusers_only() -> Self {
        Self::forbidden("Only superusers can perform this action.")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The request requires valid record authorization token.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong while processing your request.",
        )
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    pub fn validation(message: &str, errs: &ValidationErrors) -> Self {
        Self::bad_request(message).with_data(validation_data(errs))
    }

    /// Maps a store failure, with `message` for validation failures of this action.
    pub fn from_store(e: StoreError, message: &str) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Validation(errs) => Self::validation(message, &errs),
            StoreError::InvalidQuery(detail) => {
                tracing::debug!(%detail, "invalid query");
                Self::bad_request("Something went wrong while processing your request.")
            }
            StoreError::RuleFailed => Self::bad_request(message),
            StoreError::SuperusersOnly(msg) => Self::new(StatusCode::FORBIDDEN, msg),
            StoreError::Forbidden(msg) => Self::bad_request(msg),
            StoreError::Batch { index, source } => {
                let inner = Self::from_store(*source, message);
                Self::bad_request("Batch transaction failed.").with_data(json!({
                    "requests": { index.to_string(): {
                        "code": "batch_request_failed",
                        "message": "Batch request failed.",
                        "response": inner.body(),
                    }}
                }))
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable.",
                )
            }
            StoreError::OutcomeUnknown(detail) => {
                tracing::error!(%detail, "write outcome unknown");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The write may or may not have been saved: read it back before retrying.",
                )
            }
            StoreError::Corrupt(detail) => {
                // The store logged the database file and counted it; health is degraded.
                tracing::error!(%detail, "database corruption");
                Self::internal()
            }
            StoreError::Internal(detail) => {
                tracing::error!(%detail, "internal store error");
                Self::internal()
            }
        }
    }

    pub fn body(&self) -> Value {
        json!({"status": self.status.as_u16(), "message": self.message, "data": self.data})
    }
}

pub fn validation_data(errs: &ValidationErrors) -> Value {
    let mut out = Map::new();
    for (k, v) in &errs.errors {
        out.insert(
            k.clone(),
            match v {
                ValidationError::Leaf(f) => match &f.params {
                    Some(p) => json!({"code": f.code, "message": f.message, "params": p}),
                    None => json!({"code": f.code, "message": f.message}),
                },
                ValidationError::Nested(n) => validation_data(n),
            },
        );
    }
    Value::Object(out)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
