//! The one body type every edge response and proxied request uses, and the small responses
//! the edge answers itself (errors in PocketBase's shape, redirects).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Boxed so upstream, API, file and generated bodies share one type.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// The body of an error the edge answers itself, in PocketBase's
/// `{"status","message","data"}` shape.
pub fn error_json(status: StatusCode, message: &str) -> String {
    serde_json::json!({"status": status.as_u16(), "message": message, "data": {}}).to_string()
}

/// An error answered by the edge itself, in PocketBase's shape.
pub fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(full(error_json(status, message)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The same error as raw HTTP/1.1 bytes, for connections rejected before hyper sees them.
pub fn raw_error(status: StatusCode, message: &str) -> Vec<u8> {
    let body = error_json(status, message);
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        body
    )
    .into_bytes()
}

pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
