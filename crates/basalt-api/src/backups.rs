//! `/api/backups` (superusers; the download takes a superuser's file token) over
//! `basalt_service::backups`: list, create, upload (multipart `file`), download, delete
//! and restore, with PocketBase's statuses and bodies.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basalt_service::{Caller, ServiceError, backups};
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::records::Params;

pub(crate) async fn list(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<Value>> {
    let items = backups::list(&state.service, &caller).await?;
    Ok(Json(Value::Array(
        items
            .into_iter()
            .map(|b| {
                json!({"key": b.key, "size": b.size,
                    "modified": b.modified_text()})
            })
            .collect(),
    )))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_superuser()?;
    let loading = || ApiError::bad_request("An error occurred while loading the submitted data.");
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(&body).map_err(|_| loading())? {
            Value::Object(o) => match o.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(loading()),
            },
            _ => return Err(loading()),
        }
    };
    backups::create(&state.service, &caller, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn upload(
    State(state): State<ApiState>,
    caller: Caller,
    req: Request,
) -> ApiResult<StatusCode> {
    caller.require_superuser()?;
    let mut mp = Multipart::from_request(req, &state).await.map_err(|_| {
        ApiError::bad_request("An error occurred while loading the submitted data.")
    })?;
    while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") || field.file_name().is_none() {
            continue;
        }
        let filename = field.file_name().map(str::to_string);
        let too_large = std::sync::atomic::AtomicBool::new(false);
        let res = backups::upload(
            &state.service,
            &caller,
            filename.as_deref(),
            field,
            |e: MultipartError| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                ServiceError::bad_request("Something went wrong while processing your request.")
            },
        )
        .await;
        return match res {
            Ok(()) => Ok(StatusCode::NO_CONTENT),
            Err(_) if too_large.load(std::sync::atomic::Ordering::Relaxed) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request entity too large.",
            )),
            Err(e) => Err(e.into()),
        };
    }
    backups::upload(
        &state.service,
        &caller,
        None,
        futures_util::stream::empty::<Result<Bytes, MultipartError>>(),
        |_| ServiceError::internal(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(e.status(), "Request entity too large.")
    } else {
        ApiError::bad_request("An error occurred while loading the submitted data.")
    }
}

pub(crate) async fn download(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    Query(params): Params,
) -> ApiResult<Response> {
    let token = params.get("token").map(String::as_str);
    let d = backups::download(&state.service, token, &key).await?;
    let mut out = HeaderMap::new();
    let put = |out: &mut HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            out.insert(k, v);
        }
    };
    let safe: String = key
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    put(
        &mut out,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{safe}\""),
    );
    put(&mut out, header::CONTENT_TYPE, "application/zip");
    put(&mut out, header::CONTENT_LENGTH, &d.meta.size.to_string());
    put(
        &mut out,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox",
    );
    put(
        &mut out,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(d.meta.last_modified),
    );
    Ok((StatusCode::OK, out, Body::from_stream(d.body)).into_response())
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    backups::delete(&state.service, &caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn restore(
    State(state): State<ApiState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    backups::restore(&state.service, &caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
