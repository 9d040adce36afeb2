//! Request bodies: JSON objects, urlencoded forms and multipart forms (text parts and the
//! SDK's `@jsonPayload` part) into one field map.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::error::ApiError;

/// The submitted fields of a create/update request.
pub struct Body(pub Map<String, Value>);

fn invalid_body() -> ApiError {
    ApiError::bad_request("Something went wrong while processing your request.")
}

impl FromRequest<ApiState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ct.starts_with("multipart/form-data") {
            let mut mp = Multipart::from_request(req, state)
                .await
                .map_err(|_| invalid_body())?;
            let mut out = Map::new();
            while let Some(field) = mp.next_field().await.map_err(|_| invalid_body())? {
                let name = field.name().unwrap_or_default().to_string();
                if field.file_name().is_some() {
                    return Err(ApiError::bad_request("File uploads are not supported yet."));
                }
                let text = field.text().await.map_err(|_| invalid_body())?;
                if name == "@jsonPayload" {
                    match serde_json::from_str::<Value>(&text) {
                        Ok(Value::Object(o)) => out.extend(o),
                        _ => return Err(invalid_body()),
                    }
                } else {
                    push_form_value(&mut out, name, text);
                }
            }
            return Ok(Body(out));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(e.status(), "Request entity too large.")
            } else {
                invalid_body()
            }
        })?;
        if ct.starts_with("application/x-www-form-urlencoded") {
            let mut out = Map::new();
            for (k, v) in form_urlencoded_pairs(&bytes) {
                push_form_value(&mut out, k, v);
            }
            return Ok(Body(out));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) => Ok(Body(o)),
            _ => Err(invalid_body()),
        }
    }
}

/// Repeated form keys become arrays.
fn push_form_value(out: &mut Map<String, Value>, k: String, v: String) {
    match out.get_mut(&k) {
        Some(Value::Array(a)) => a.push(Value::String(v)),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, Value::String(v)]);
        }
        None => {
            out.insert(k, Value::String(v));
        }
    }
}

fn form_urlencoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes).unwrap_or_default()
}
