//! `POST /api/batch`: several record writes in one transaction, all or nothing; enabled
//! and bounded by the `batch` settings.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use basalt_store::WriteOp;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::records::{Action, Target, access_for, collection, prepare_auth_input, render, rule};
use crate::request_info::{Auth, build};
use crate::settings::load_settings;

struct Sub {
    method: String,
    collection: String,
    id: Option<String>,
    body: Map<String, Value>,
}

fn parse_sub(v: &Value) -> Option<Sub> {
    let method = v.get("method")?.as_str()?.to_ascii_uppercase();
    let url = v.get("url")?.as_str()?;
    let path = url.split('?').next()?;
    let rest = path.strip_prefix("/api/collections/")?;
    let mut parts = rest.split('/');
    let collection = parts.next()?.to_string();
    if parts.next()? != "records" {
        return None;
    }
    let id = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    let body = match v.get("body") {
        Some(Value::Object(o)) => o.clone(),
        None | Some(Value::Null) => Map::new(),
        _ => return None,
    };
    Some(Sub {
        method,
        collection,
        id,
        body,
    })
}

fn op_message(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::Create { .. } | WriteOp::Upsert { .. } => "Failed to create record.",
        WriteOp::Update { .. } => "Failed to update record.",
        WriteOp::Delete { .. } => "Failed to delete record.",
    }
}

fn request_error(i: usize, msg: &str) -> ApiError {
    ApiError::bad_request("Batch transaction failed.").with_data(json!({
        "requests": { i.to_string(): {"code": "batch_request_failed", "message": msg}}
    }))
}

pub(crate) async fn batch(
    State(state): State<ApiState>,
    auth: Auth,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Json<Value>> {
    let settings = load_settings(&state).await?;
    let b = &settings["batch"];
    if !b["enabled"].as_bool().unwrap_or(false) {
        return Err(ApiError::forbidden("Batch requests are not allowed."));
    }
    let max = b["maxRequests"].as_u64().unwrap_or(50) as usize;
    let Some(Value::Array(requests)) = body.get("requests") else {
        return Err(ApiError::bad_request(
            "Failed to load the submitted data due to invalid formatting.",
        )
        .with_data(
            json!({"requests": {"code": "validation_required", "message": "Cannot be blank."}}),
        ));
    };
    if requests.len() > max {
        return Err(ApiError::bad_request("Failed to load the submitted data due to invalid formatting.")
            .with_data(json!({"requests": {"code": "validation_length_too_long", "message": format!("The length must be no more than {max}.")}})));
    }
    let mut ops = Vec::with_capacity(requests.len());
    let mut targets = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        let Some(mut sub) = parse_sub(r) else {
            return Err(request_error(i, "Invalid batch request url or method."));
        };
        let c = collection(&state, &sub.collection)
            .map_err(|_| request_error(i, "Missing collection context."))?;
        let denied = || request_error(i, "Only superusers can perform this action.");
        let op = match (sub.method.as_str(), sub.id.take()) {
            ("POST", None) => {
                let access =
                    access_for(&rule(&state, &c, Action::Create), &auth).ok_or_else(denied)?;
                prepare_auth_input(&state, &c, &mut sub.body, &auth, Target::Create).await?;
                WriteOp::Create {
                    collection: c.clone(),
                    input: sub.body,
                    access,
                }
            }
            ("PUT", None) => {
                let create_access =
                    access_for(&rule(&state, &c, Action::Create), &auth).ok_or_else(denied)?;
                let update_access =
                    access_for(&rule(&state, &c, Action::Update), &auth).ok_or_else(denied)?;
                let id = sub
                    .body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let exists = !id.is_empty()
                    && state
                        .store
                        .get_record(&c, &id, basalt_store::Access::Unrestricted, Arc::default())
                        .await
                        .map_err(|e| {
                            ApiError::from_store(e, "Failed to process the batch request.")
                        })?
                        .is_some();
                let target = if exists {
                    Target::Update(&id)
                } else {
                    Target::Create
                };
                prepare_auth_input(&state, &c, &mut sub.body, &auth, target).await?;
                WriteOp::Upsert {
                    collection: c.clone(),
                    input: sub.body,
                    create_access,
                    update_access,
                }
            }
            ("PATCH", Some(id)) => {
                let access =
                    access_for(&rule(&state, &c, Action::Update), &auth).ok_or_else(denied)?;
                prepare_auth_input(&state, &c, &mut sub.body, &auth, Target::Update(&id)).await?;
                WriteOp::Update {
                    collection: c.clone(),
                    id,
                    input: sub.body,
                    access,
                }
            }
            ("DELETE", Some(id)) => {
                let access =
                    access_for(&rule(&state, &c, Action::Delete), &auth).ok_or_else(denied)?;
                WriteOp::Delete {
                    collection: c.clone(),
                    id,
                    access,
                }
            }
            _ => return Err(request_error(i, "Invalid batch request url or method.")),
        };
        targets.push(c);
        ops.push(op);
    }
    let mut req = build(&auth, "POST", &Map::new(), &headers, Map::new());
    req.context = "batch".into();
    let req = Arc::new(req);
    let messages: Vec<&str> = ops.iter().map(op_message).collect();
    let results = state.store.write(ops, req.clone()).await.map_err(|e| {
        // A failed sub-request reports the message its own endpoint would have used.
        let msg = match &e {
            basalt_store::StoreError::Batch { index, .. } => messages
                .get(*index)
                .copied()
                .unwrap_or("Failed to process the batch request."),
            _ => "Failed to process the batch request.",
        };
        ApiError::from_store(e, msg)
    })?;
    let no_params = Default::default();
    let mut out = Vec::with_capacity(results.len());
    for (c, r) in targets.iter().zip(results) {
        match r {
            Some(record) => {
                let body = render(&state, c, vec![record], &auth, &no_params, &req)
                    .await?
                    .pop()
                    .unwrap_or(Value::Null);
                out.push(json!({"status": 200, "body": body}));
            }
            None => out.push(json!({"status": 204, "body": null})),
        }
    }
    Ok(Json(Value::Array(out)))
}
