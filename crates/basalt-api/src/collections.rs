//! The collections API (superusers only): list, view, create, update, delete, truncate,
//! import.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_schema::Collection;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use basalt_service::Caller;

fn parse_collection(v: Value) -> ApiResult<Collection> {
    serde_json::from_value(v).map_err(|e| {
        tracing::debug!(error = %e, "invalid collection document");
        ApiError::bad_request("Failed to load the submitted data due to invalid formatting.")
    })
}

/// Token secrets stay in the stored document, never in an answer.
fn to_json(c: &Collection) -> Value {
    c.redacted_json()
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    auth: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    auth.require_superuser()?;
    let schema = state.service.store.schema();
    let mut items: Vec<Value> = schema.collections().iter().map(|c| to_json(c)).collect();
    if let Some(f) = params.get("filter").filter(|f| !f.trim().is_empty()) {
        // Collection lists are small: the filter runs on the documents in memory.
        let expr = basalt_schema::filter::parse(f)
            .map_err(|_| ApiError::bad_request("Invalid filter parameter."))?;
        items.retain(|c| crate::doc_filter::matches(&expr, c));
    }
    if let Some(s) = params.get("sort") {
        let keys = basalt_schema::filter::parse_sort(s)
            .map_err(|_| ApiError::bad_request("Invalid sort parameter."))?;
        for k in keys.iter().rev() {
            items.sort_by(|a, b| {
                let ord = crate::doc_filter::cmp_values(a.get(&k.path), b.get(&k.path));
                if k.descending { ord.reverse() } else { ord }
            });
        }
    }
    let per_page: usize = params
        .get("perPage")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 1000);
    let page: usize = params
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Ok(Json(
        json!({"page": page, "perPage": per_page, "totalItems": total, "totalPages": total.div_ceil(per_page), "items": items}),
    ))
}

pub(crate) async fn view(
    State(state): State<ApiState>,
    auth: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_superuser()?;
    let schema = state.service.store.schema();
    let c = schema.find(&name).ok_or_else(ApiError::not_found)?;
    Ok(Json(to_json(c)))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    auth: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    auth.require_superuser()?;
    let c = parse_collection(body)?;
    let c = state
        .service
        .store
        .create_collection(c)
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to create collection."))?;
    Ok(Json(to_json(&c)))
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    auth: Caller,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    auth.require_superuser()?;
    let schema = state.service.store.schema();
    let old = schema.find(&name).ok_or_else(ApiError::not_found)?;
    // A PATCH carries only what changes: merge it over the current document (secrets
    // left out of both are kept from the stored one by validation).
    let mut doc = to_json(old);
    merge(&mut doc, body);
    let c = parse_collection(doc)?;
    let c = state
        .service
        .store
        .update_collection(&name, c)
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to update collection."))?;
    Ok(Json(to_json(&c)))
}

/// Merges `patch` into `base` as PocketBase decodes a PATCH over the stored collection:
/// objects key by key, recursively (`{"oauth2": {"enabled": false}}` keeps the
/// providers); anything else, arrays included, replaces what was there.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                match base.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    auth: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    auth.require_superuser()?;
    state
        .service
        .store
        .delete_collection(&name)
        .await
        .map_err(|e| match e {
            // System collections and collections others depend on: PocketBase's plain refusal.
            basalt_store::StoreError::Forbidden(detail) => {
                tracing::debug!(%detail, "collection delete refused");
                ApiError::bad_request("Failed to delete collection.")
            }
            e => ApiError::from_store(e, "Failed to delete collection."),
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn truncate(
    State(state): State<ApiState>,
    auth: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    auth.require_superuser()?;
    state
        .service
        .store
        .truncate_collection(&name)
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to truncate collection."))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn import(
    State(state): State<ApiState>,
    auth: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    auth.require_superuser()?;
    let delete_missing = body
        .get("deleteMissing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(Value::Array(docs)) = body.get("collections").cloned() else {
        return Err(ApiError::bad_request("Failed to import collections.").with_data(json!({"collections": {"code": "validation_required", "message": "Cannot be blank."}})));
    };
    let cols = docs
        .into_iter()
        .map(parse_collection)
        .collect::<ApiResult<Vec<_>>>()?;
    state
        .service
        .store
        .import_collections(cols, delete_missing)
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to import collections."))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge;

    #[test]
    fn a_patch_merges_objects_and_replaces_arrays_and_scalars() {
        let mut doc = json!({"name": "users", "listRule": "x", "fields": [1, 2],
            "oauth2": {"enabled": true, "providers": [{"name": "github"}], "mappedFields": {"name": "n"}}});
        merge(
            &mut doc,
            json!({"listRule": null, "fields": [3], "oauth2": {"enabled": false, "mappedFields": {"avatarURL": "a"}}}),
        );
        assert_eq!(
            doc,
            json!({"name": "users", "listRule": null, "fields": [3],
                "oauth2": {"enabled": false, "providers": [{"name": "github"}],
                    "mappedFields": {"name": "n", "avatarURL": "a"}}})
        );
    }
}
