//! `ApiError`: every failure as PocketBase's error body `{"status","message","data"}`:
//! the operations' [`ServiceError`]s (their kind mapped to a status code) and the
//! protocol's own. Causes are mapped explicitly; internal detail is logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_schema::ValidationErrors;
use basalt_service::ServiceError;
use basalt_store::StoreError;
use serde_json::{Value, json};

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
        ServiceError::bad_request(message).into()
    }

    pub fn not_found() -> Self {
        ServiceError::not_found().into()
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ServiceError::forbidden(message).into()
    }

    pub fn internal() -> Self {
        ServiceError::internal().into()
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    pub fn validation(message: &str, errs: &ValidationErrors) -> Self {
        ServiceError::validation(message, errs).into()
    }

    /// Maps a store failure, with `message` for validation failures of this action.
    pub fn from_store(e: StoreError, message: &str) -> Self {
        ServiceError::from_store(e, message).into()
    }

    pub fn body(&self) -> Value {
        json!({"status": self.status.as_u16(), "message": self.message, "data": self.data})
    }
}

/// A failed operation as REST answers it: the status its kind names.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status =
            StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            message: e.message,
            data: e.data,
        }
    }
}

/// What a 503 tells the client to wait before trying again (`Retry-After`): the database
/// restarting, unreachable for a while, or a write that met a concurrent one.
pub(crate) const RETRY_AFTER_SECS: &str = "2";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        res.extensions_mut()
            .insert(crate::request_log::ErrorMessage(self.message));
        res
    }
}

#[cfg(test)]
mod tests {
    use basalt_service::{ErrorKind, ServiceError};

    use super::ApiError;

    /// Every kind of failure answers with the status PocketBase's body says it has.
    #[test]
    fn a_service_error_keeps_its_status() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::TooManyRequests,
            ErrorKind::Internal,
            ErrorKind::Unavailable,
        ] {
            let e = ApiError::from(ServiceError::new(kind, "m"));
            assert_eq!(e.status.as_u16(), kind.status(), "{kind:?}");
            assert_eq!(e.body()["status"], kind.status(), "{kind:?}");
        }
    }
}
