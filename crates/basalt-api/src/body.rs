//! Request bodies: JSON objects, urlencoded forms and multipart forms (text parts and the
//! SDK's `@jsonPayload` part) into one field map; for record writes also the files.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use basalt_service::ServiceError;
use basalt_service::files::{self, Upload};
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
        let (body, _) = read(req, state, false).await?;
        Ok(Body(body))
    }
}

/// A record write's body: its fields and its files (multipart parts with a file name,
/// spooled to disk as they arrive; see `basalt_service::files::spool`).
pub struct RecordBody {
    pub body: Map<String, Value>,
    pub uploads: Vec<Upload>,
}

impl FromRequest<ApiState> for RecordBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let (body, uploads) = read(req, state, true).await?;
        Ok(RecordBody { body, uploads })
    }
}

/// An upload whose client sent nothing for the idle timeout.
fn request_timeout() -> ApiError {
    ApiError::new(axum::http::StatusCode::REQUEST_TIMEOUT, "Request timeout.")
}

/// A batch's body: its fields (`@jsonPayload` in a multipart body) and the files of its
/// sub-requests (parts named `requests.N.FIELD`), spooled before their collections are
/// known; each is checked against its field when its sub-request stores it.
pub struct BatchBody {
    pub body: Map<String, Value>,
    pub uploads: Vec<(usize, Upload)>,
}

impl FromRequest<ApiState> for BatchBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !ct.starts_with("multipart/form-data") {
            let (body, _) = read(req, state, false).await?;
            return Ok(BatchBody {
                body,
                uploads: vec![],
            });
        }
        let idle = req
            .extensions()
            .get::<crate::idle_body::IdleBounded>()
            .map(|b| b.timed_out.clone());
        let timed_out = || idle.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
        let fail = |e: MultipartError| {
            if timed_out() {
                request_timeout()
            } else {
                multipart_error(e)
            }
        };
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|_| invalid_body())?;
        let mut out = Map::new();
        let mut uploads = Vec::new();
        while let Some(field) = mp.next_field().await.map_err(fail)? {
            let name = field.name().unwrap_or_default().to_string();
            if let Some(file_name) = field.file_name().map(str::to_string) {
                let Some((index, target)) = crate::batch::file_target(&name) else {
                    continue;
                };
                let target = target.to_string();
                let too_large = AtomicBool::new(false);
                let up = files::spool_unchecked(
                    &state.service,
                    &target,
                    &file_name,
                    field,
                    |e: MultipartError| {
                        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                            too_large.store(true, Ordering::Relaxed);
                        }
                        ServiceError::bad_request(
                            "Something went wrong while processing your request.",
                        )
                    },
                )
                .await;
                match up {
                    Ok(up) => uploads.push((index, up)),
                    Err(_) if timed_out() => return Err(request_timeout()),
                    Err(_) if too_large.load(Ordering::Relaxed) => {
                        return Err(ApiError::new(
                            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                            "Request entity too large.",
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let text = field.text().await.map_err(fail)?;
            if name == "@jsonPayload" {
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => out.extend(o),
                    _ => return Err(invalid_body()),
                }
            } else {
                push_form_value(&mut out, name, text);
            }
        }
        Ok(BatchBody { body: out, uploads })
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(e.status(), "Request entity too large.")
    } else {
        invalid_body()
    }
}

/// The collection a records route names (`/api/collections/{c}/records[/{id}]`).
pub(crate) fn records_collection(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/collections/")?;
    let (c, rest) = rest.split_once('/')?;
    (rest == "records" || rest.starts_with("records/")).then(|| c.to_string())
}

async fn read(
    req: Request,
    state: &ApiState,
    files: bool,
) -> Result<(Map<String, Value>, Vec<Upload>), ApiError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let collection = if files {
            records_collection(req.uri().path())
        } else {
            None
        };
        let message = if req.method() == axum::http::Method::POST {
            "Failed to create record."
        } else {
            "Failed to update record."
        };
        let idle = req
            .extensions()
            .get::<crate::idle_body::IdleBounded>()
            .map(|b| b.timed_out.clone());
        let timed_out = || idle.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|_| invalid_body())?;
        let mut out = Map::new();
        let mut uploads = Vec::new();
        while let Some(field) = mp.next_field().await.map_err(|e| {
            if timed_out() {
                request_timeout()
            } else {
                multipart_error(e)
            }
        })? {
            let name = field.name().unwrap_or_default().to_string();
            if let Some(file_name) = field.file_name().map(str::to_string) {
                let Some(collection) = &collection else {
                    return Err(ApiError::bad_request(
                        "File uploads are only accepted by record create and update.",
                    ));
                };
                // A body cut by the size limit answers 413, as everywhere.
                let too_large = AtomicBool::new(false);
                let up = files::spool(
                    &state.service,
                    collection,
                    &name,
                    &file_name,
                    field,
                    message,
                    |e: MultipartError| {
                        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                            too_large.store(true, Ordering::Relaxed);
                        }
                        ServiceError::bad_request(
                            "Something went wrong while processing your request.",
                        )
                    },
                )
                .await;
                match up {
                    Ok(up) => uploads.extend(up),
                    Err(_) if timed_out() => return Err(request_timeout()),
                    Err(_) if too_large.load(Ordering::Relaxed) => {
                        return Err(ApiError::new(
                            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                            "Request entity too large.",
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let text = field.text().await.map_err(|e| {
                if timed_out() {
                    request_timeout()
                } else {
                    multipart_error(e)
                }
            })?;
            if name == "@jsonPayload" {
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => out.extend(o),
                    _ => return Err(invalid_body()),
                }
            } else {
                push_form_value(&mut out, name, text);
            }
        }
        return Ok((out, uploads));
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
        return Ok((out, vec![]));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((Map::new(), vec![]));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(o)) => Ok((o, vec![])),
        _ => Err(invalid_body()),
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
