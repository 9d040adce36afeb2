//! Record handlers: the query string and body read into the operations' inputs
//! (`basalt_service::records`), their answers shaped and written as PocketBase's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use basalt_schema::filter::parse_fields;
use basalt_schema::{Collection, RequestInfo};
use basalt_service::records::{
    self as ops, CreateInput, InvalidParam, ListInput, UpdateInput, ViewInput, bad_param,
};
use basalt_service::{Caller, ServiceResult};
use serde_json::Value;

use super::fields::project;
use super::shape::PublicRecord;
use crate::ApiState;
use crate::body::RecordBody;
use crate::error::ApiResult;
use crate::json::JsonBody;
use crate::request_info::HttpMeta;

pub(crate) type Params = Query<HashMap<String, String>>;

/// Shows `records` as the caller may see them, with `expand` and `fields` of the query
/// string applied.
pub(crate) async fn render(
    state: &ApiState,
    c: &Arc<Collection>,
    records: Vec<basalt_store::Record>,
    caller: &Caller,
    params: &HashMap<String, String>,
    req: &Arc<RequestInfo>,
) -> ServiceResult<Vec<Value>> {
    let expand = params.get("expand").map(String::as_str);
    let shown = ops::present(&state.service, c, records, caller, expand, req).await?;
    let selectors = match params.get("fields").filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(parse_fields(f).map_err(|_| bad_param("fields"))?),
        None => None,
    };
    Ok(shown
        .into_iter()
        .map(|m| {
            let v = Value::Object(m);
            match &selectors {
                Some(s) => project(&v, s),
                None => v,
            }
        })
        .collect())
}

/// A number of the query string, absent: `default`.
fn number(
    params: &HashMap<String, String>,
    name: &'static str,
    default: u64,
) -> Result<u64, InvalidParam> {
    params
        .get(name)
        .map_or(Ok(default), |p| p.parse())
        .map_err(|_| InvalidParam(name))
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    caller: Caller,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let input = ListInput {
        collection,
        page: number(&params, "page", 1),
        per_page: number(&params, "perPage", 30),
        skip_total: params
            .get("skipTotal")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "t")),
        filter: params.get("filter").cloned(),
        sort: params.get("sort").cloned(),
    };
    let meta = HttpMeta {
        query: &params,
        headers: &headers,
    };
    let page = ops::list(&state.service, &caller, &meta, input).await?;
    let (total_items, total_pages) = match page.total_items {
        Some(t) => (t as i64, t.div_ceil(page.per_page) as i64),
        None => (-1, -1),
    };
    if plain_shape(&params) {
        // The common answer: each shaped record written straight out, no map per row.
        let items: Vec<PublicRecord> = page
            .items
            .iter()
            .map(|r| PublicRecord::new(&page.collection, r, &caller))
            .collect();
        return Ok(JsonBody(ListPage {
            page: page.page,
            per_page: page.per_page,
            total_items,
            total_pages,
            items,
        })
        .into_response());
    }
    let items = render(
        &state,
        &page.collection,
        page.items,
        &caller,
        &params,
        &page.request,
    )
    .await?;
    Ok(JsonBody(ListPage {
        page: page.page,
        per_page: page.per_page,
        total_items,
        total_pages,
        items,
    })
    .into_response())
}

/// A list answer in PocketBase's shape (`totalItems`/`totalPages` -1 when skipped).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListPage<T> {
    page: u64,
    per_page: u64,
    total_items: i64,
    total_pages: i64,
    items: Vec<T>,
}

/// Takes the request itself last (not a `HeaderMap`, which axum would copy): only a rule
/// reads the headers.
pub(crate) async fn view(
    State(state): State<ApiState>,
    Path((collection, id)): Path<(String, String)>,
    caller: Caller,
    Query(params): Params,
    request: Request,
) -> ApiResult<Response> {
    let meta = HttpMeta {
        query: &params,
        headers: request.headers(),
    };
    let input = ViewInput {
        collection,
        id,
        expanding: params.contains_key("expand"),
    };
    let found = ops::view(&state.service, &caller, &meta, input).await?;
    if plain_shape(&params) {
        // The common answer: the shaped record written straight out.
        return Ok(
            JsonBody(PublicRecord::new(&found.collection, &found.record, &caller)).into_response(),
        );
    }
    let mut out = render(
        &state,
        &found.collection,
        vec![found.record],
        &caller,
        &params,
        &found.request,
    )
    .await?;
    Ok(JsonBody(out.pop().unwrap_or(Value::Null)).into_response())
}

/// Answers a written record shaped for the caller.
async fn written(
    state: &ApiState,
    found: ops::Found,
    caller: &Caller,
    params: &HashMap<String, String>,
) -> ApiResult<Response> {
    if plain_shape(params) {
        // As a plain view: the shaped record written straight out.
        return Ok(
            JsonBody(PublicRecord::new(&found.collection, &found.record, caller)).into_response(),
        );
    }
    let mut rendered = render(
        state,
        &found.collection,
        vec![found.record],
        caller,
        params,
        &found.request,
    )
    .await?;
    Ok(JsonBody(rendered.pop().unwrap_or(Value::Null)).into_response())
}

/// Neither `expand` nor `fields` asks for more than the shaped record.
fn plain_shape(params: &HashMap<String, String>) -> bool {
    let plain = |p: &str| params.get(p).is_none_or(|v| v.trim().is_empty());
    plain("expand") && plain("fields")
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    caller: Caller,
    Query(params): Params,
    headers: HeaderMap,
    RecordBody { body, uploads }: RecordBody,
) -> ApiResult<Response> {
    let meta = HttpMeta {
        query: &params,
        headers: &headers,
    };
    let input = CreateInput {
        collection,
        body,
        uploads,
        expanding: params.contains_key("expand"),
    };
    let found = ops::create(&state.service, &caller, &meta, input).await?;
    written(&state, found, &caller, &params).await
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    Path((collection, id)): Path<(String, String)>,
    caller: Caller,
    Query(params): Params,
    headers: HeaderMap,
    RecordBody { body, uploads }: RecordBody,
) -> ApiResult<Response> {
    let meta = HttpMeta {
        query: &params,
        headers: &headers,
    };
    let input = UpdateInput {
        collection,
        id,
        body,
        uploads,
        expanding: params.contains_key("expand"),
    };
    let found = ops::update(&state.service, &caller, &meta, input).await?;
    written(&state, found, &caller, &params).await
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    Path((collection, id)): Path<(String, String)>,
    caller: Caller,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let meta = HttpMeta {
        query: &params,
        headers: &headers,
    };
    ops::delete(&state.service, &caller, &meta, &collection, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
