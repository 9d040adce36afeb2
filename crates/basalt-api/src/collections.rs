//! The collections API (superusers only) over `basalt_service::collections`: list, view,
//! create, update, delete, truncate, import.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_service::Caller;
use basalt_service::collections::{self, CollectionQuery};
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiResult;

pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    // Unreadable numbers take the defaults, as in PocketBase.
    let number = |name: &str, default: usize| {
        params
            .get(name)
            .and_then(|p| p.parse().ok())
            .unwrap_or(default)
    };
    let q = CollectionQuery {
        filter: params.get("filter").cloned(),
        sort: params.get("sort").cloned(),
        page: number("page", 1),
        per_page: number("perPage", 30),
    };
    let p = collections::list(&state.service, &caller, q)?;
    Ok(Json(
        json!({"page": p.page, "perPage": p.per_page, "totalItems": p.total_items, "totalPages": p.total_items.div_ceil(p.per_page), "items": p.items}),
    ))
}

pub(crate) async fn view(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(collections::view(&state.service, &caller, &name)?))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        collections::create(&state.service, &caller, body).await?,
    ))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        collections::update(&state.service, &caller, &name, body).await?,
    ))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    collections::delete(&state.service, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn truncate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    collections::truncate(&state.service, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn import(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let delete_missing = body
        .get("deleteMissing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let docs = match body.get("collections") {
        Some(Value::Array(docs)) => Some(docs.clone()),
        _ => None,
    };
    collections::import(&state.service, &caller, docs, delete_missing).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
