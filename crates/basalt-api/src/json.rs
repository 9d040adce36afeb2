//! JSON response bodies serialised into one buffer sized for a typical record.

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// Most single records serialise to well under this: one allocation, no regrowth (axum's
/// `Json` starts at 128 bytes and reallocates as it grows).
pub(crate) const JSON_CAPACITY: usize = 1024;

/// A JSON answer, like `axum::Json` but with a pre-sized buffer and a static content type.
pub(crate) struct JsonBody<T>(pub T);

impl<T: Serialize> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        match to_json(&self.0) {
            Ok(buf) => json_response(buf),
            Err(e) => {
                tracing::error!(error = %e, "serialising a response");
                ApiError::internal().into_response()
            }
        }
    }
}

/// `value` serialised into one buffer sized for a typical record.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = Vec::with_capacity(JSON_CAPACITY);
    serde_json::to_writer(&mut buf, value)?;
    Ok(buf)
}

/// An answer with JSON serialised already.
pub(crate) fn json_response(buf: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(buf));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_the_value_as_json_with_its_content_type() {
        let res = JsonBody(serde_json::json!({"id": "a", "n": 1})).into_response();
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"id":"a","n":1}"#);
    }
}
