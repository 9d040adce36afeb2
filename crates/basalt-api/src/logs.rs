//! `/api/logs`, `/api/logs/stats` and `/api/logs/{id}` (superusers) over
//! `basalt_service::logs`, in PocketBase's shapes; and [`RequestLogSlot`], through which
//! the `Caller` extractor tells the request log who asked.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use basalt_schema::filter::parse_fields;
use basalt_service::logs::{self, LogListInput};
use basalt_service::records::bad_param;
use basalt_service::{Caller, ServiceResult};
use basalt_store::logs::StoredLog;
use serde_json::{Value, json};

use crate::ApiState;
use crate::error::ApiResult;
use crate::json::JsonBody;
use crate::records::fields::project;
use crate::records::number;

/// Who a request was made by, as its log entry names it: filled by the `Caller`
/// extractor, put in the request only while request logging is on.
#[derive(Clone, Default)]
pub(crate) struct RequestLogSlot(pub Arc<OnceLock<(String, String)>>);

impl RequestLogSlot {
    /// `(auth collection name, record id)` of the caller.
    pub(crate) fn note(&self, caller: &Caller) {
        if let Some(a) = &caller.0 {
            let id = a
                .record
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let _ = self.0.set((a.collection_name.clone(), id.to_string()));
        }
    }
}

fn entry(l: StoredLog) -> Value {
    json!({"id": l.id, "created": l.created, "data": l.data, "message": l.message, "level": l.level})
}

/// `fields` of the query string applied to each item, as on record lists.
fn fields(params: &HashMap<String, String>, items: Vec<Value>) -> ServiceResult<Vec<Value>> {
    let Some(f) = params.get("fields").filter(|f| !f.trim().is_empty()) else {
        return Ok(items);
    };
    let selectors = parse_fields(f).map_err(|_| bad_param("fields"))?;
    Ok(items.iter().map(|v| project(v, &selectors)).collect())
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let input = LogListInput {
        page: number(&params, "page", 1),
        per_page: number(&params, "perPage", 30),
        skip_total: params
            .get("skipTotal")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "t")),
        filter: params.get("filter").cloned(),
        sort: params.get("sort").cloned(),
    };
    let page = logs::list(&state.service, &caller, input).await?;
    let (total_items, total_pages) = match page.total_items {
        Some(t) => (t as i64, t.div_ceil(page.per_page) as i64),
        None => (-1, -1),
    };
    let items = fields(&params, page.items.into_iter().map(entry).collect())?;
    Ok(JsonBody(json!({
        "items": items,
        "page": page.page,
        "perPage": page.per_page,
        "totalItems": total_items,
        "totalPages": total_pages,
    }))
    .into_response())
}

pub(crate) async fn view(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let found = logs::view(&state.service, &caller, &id).await?;
    let mut one = fields(&params, vec![entry(found)])?;
    Ok(JsonBody(one.pop().unwrap_or_default()).into_response())
}

pub(crate) async fn stats(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let hours = logs::stats(
        &state.service,
        &caller,
        params.get("filter").map(String::as_str),
    )
    .await?;
    let out: Vec<Value> = hours
        .into_iter()
        .map(|(date, total)| json!({"date": date, "total": total}))
        .collect();
    Ok(JsonBody(out).into_response())
}
