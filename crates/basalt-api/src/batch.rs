//! `POST /api/batch`: the body's sub-requests (`{method, url, body}`) read into
//! `basalt_service::batch` writes, run in one transaction, answered per sub-request.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use basalt_service::Caller;
use basalt_service::batch::{self, BatchRequest, BatchWrite};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::body::BatchBody;
use crate::error::ApiResult;
use crate::request_info::HttpMeta;

/// A sub-request, `None` when its method or URL is not one of a collection's records.
fn parse_sub(v: &Value) -> Option<BatchRequest> {
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
    let write = match (method.as_str(), id) {
        ("POST", None) => Some(BatchWrite::Create { body }),
        ("PUT", None) => Some(BatchWrite::Upsert { body }),
        ("PATCH", Some(id)) => Some(BatchWrite::Update { id, body }),
        ("DELETE", Some(id)) => Some(BatchWrite::Delete { id }),
        _ => None,
    };
    Some(BatchRequest {
        collection,
        write,
        uploads: Vec::new(),
    })
}

/// Which sub-request and field a batch's file part names: PocketBase's SDK sends
/// `requests.N.FIELD` (the field possibly with a `+`/`-` modifier).
pub(crate) fn file_target(part: &str) -> Option<(usize, &str)> {
    let rest = part.strip_prefix("requests.")?;
    let (n, field) = rest.split_once('.')?;
    Some((n.parse().ok()?, field))
}

pub(crate) async fn batch(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    BatchBody { body, uploads }: BatchBody,
) -> ApiResult<Json<Value>> {
    let mut requests: Option<Vec<Option<BatchRequest>>> = match body.get("requests") {
        Some(Value::Array(requests)) => Some(requests.iter().map(parse_sub).collect()),
        _ => None,
    };
    // Files join their sub-request; a part naming none is ignored, as an unknown field is.
    if let Some(requests) = &mut requests {
        for (index, up) in uploads {
            if let Some(Some(r)) = requests.get_mut(index) {
                r.uploads.push(up);
            }
        }
    }
    // Rules of a batch see its headers, not its query string.
    let meta = HttpMeta {
        query: &HashMap::new(),
        headers: &headers,
    };
    let results = batch::run(&state.service, &caller, &meta, requests).await?;
    let out = results
        .into_iter()
        .map(|r| match r {
            Some(record) => json!({"status": 200, "body": record}),
            None => json!({"status": 204, "body": null}),
        })
        .collect();
    Ok(Json(Value::Array(out)))
}
