//! `ServiceError`: a failed operation as PocketBase's error body needs it: the class of
//! failure, the client-facing message and the field errors (`data`). Causes are mapped
//! explicitly; internal detail is logged, never carried.

use basalt_schema::ValidationErrors;
use basalt_schema::error::ValidationError;
use basalt_store::StoreError;
use serde_json::{Map, Value, json};

/// What kind of failure, as a protocol tells its clients (REST: the status code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input, or a rule that refused a write (400).
    BadRequest,
    /// A token is needed and none valid was given (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// Nothing there, or nothing the caller may see (404).
    NotFound,
    /// Too many attempts (429).
    TooManyRequests,
    /// Our fault; the detail went to the log (500).
    Internal,
    /// The store cannot take the operation now, or its outcome is unknown (503).
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status PocketBase answers with (its error body carries it too).
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
    /// Field errors (`{field: {code, message}}`), or PocketBase's `data` of the failure.
    pub data: Value,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            data: json!({}),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "The requested resource wasn't found.")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// A records action whose rule is null (superusers only).
    pub fn superusers_only() -> Self {
        Self::forbidden("Only superusers can perform this action.")
    }

    /// A signed-in caller who is not a superuser on a superusers-only route (settings,
    /// collections, backups, crons, impersonation): PocketBase's words for its route guard.
    pub fn not_allowed() -> Self {
        Self::forbidden("The authorized record is not allowed to perform this action.")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorKind::Unauthorized,
            "The request requires valid record authorization token.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
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
            StoreError::SuperusersOnly(msg) => Self::forbidden(msg),
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
                    ErrorKind::Unavailable,
                    "The service is temporarily unavailable.",
                )
            }
            StoreError::OutcomeUnknown(detail) => {
                tracing::error!(%detail, "write outcome unknown");
                Self::new(
                    ErrorKind::Unavailable,
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

    /// PocketBase's error body `{"status","message","data"}`: what a batch reports of
    /// its failed sub-request, and what REST answers.
    pub fn body(&self) -> Value {
        json!({"status": self.kind.status(), "message": self.message, "data": self.data})
    }
}

/// Field errors as PocketBase's `data`: `{field: {code, message[, params]}}`, nested.
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
