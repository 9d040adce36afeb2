//! Record handlers: the query string and body read into the operations' inputs
//! (`basalt_service::records`), their answers shaped and written as PocketBase's.

use std::collections::HashMap;
use std::io::Write;
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
use basalt_store::StoreError;
use serde_json::Value;

use super::conditional::Validators;
use super::fields::project;
use super::shape::{PublicRecord, StoredRow};
use crate::ApiState;
use crate::body::RecordBody;
use crate::error::{ApiError, ApiResult};
use crate::json::{JSON_CAPACITY, JsonBody, to_json};
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
pub(crate) fn number(
    params: &HashMap<String, String>,
    name: &'static str,
    default: u64,
) -> Result<u64, InvalidParam> {
    params
        .get(name)
        .map_or(Ok(default), |p| p.parse())
        .map_err(|_| InvalidParam(name))
}

/// Takes the request itself last (not a `HeaderMap`, which axum would copy): only a rule
/// reads the headers.
pub(crate) async fn list(
    State(state): State<ApiState>,
    Path(collection): Path<String>,
    caller: Caller,
    Query(params): Params,
    request: Request,
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
        headers: request.headers(),
    };
    if let Some(only) = row_fields(&params) {
        // The common answer: each row written out as it is stored, no record decoded.
        let viewer = caller.clone();
        let items = Vec::with_capacity(JSON_CAPACITY);
        let page = ops::list_rows(
            &state.service,
            &caller,
            &meta,
            input,
            items,
            move |out, row| {
                out.push(if out.is_empty() { b'[' } else { b',' });
                StoredRow::new(row.collection(), row, &viewer)
                    .only(only.as_deref())
                    .write_json(out)
                    .map_err(|e| StoreError::Internal(format!("serialising a record: {e}")))
            },
        )
        .await?;
        let (total_items, total_pages) = totals(page.total_items, page.per_page);
        let mut body = Vec::with_capacity(page.items.len() + 96);
        write!(
            body,
            "{{\"page\":{},\"perPage\":{},\"totalItems\":{total_items},\"totalPages\":{total_pages},\"items\":",
            page.page, page.per_page
        )
        .map_err(|_| ApiError::internal())?;
        if page.items.is_empty() {
            body.extend_from_slice(b"[]}");
        } else {
            body.extend_from_slice(&page.items);
            body.extend_from_slice(b"]}");
        }
        return Ok(Validators::of(&state.service, &page.collection).answer(
            &state.metrics,
            request.headers(),
            body,
        ));
    }
    let page = ops::list(&state.service, &caller, &meta, input).await?;
    let (total_items, total_pages) = totals(page.total_items, page.per_page);
    let items = render(
        &state,
        &page.collection,
        page.items,
        &caller,
        &params,
        &page.request,
    )
    .await?;
    let body = to_json(&ListPage {
        page: page.page,
        per_page: page.per_page,
        total_items,
        total_pages,
        items,
    })
    .map_err(serialising)?;
    Ok(Validators::of(&state.service, &page.collection).answer(
        &state.metrics,
        request.headers(),
        body,
    ))
}

fn serialising(e: serde_json::Error) -> ApiError {
    tracing::error!(error = %e, "serialising a response");
    ApiError::internal()
}

/// `totalItems` and `totalPages` as PocketBase writes them: -1 when the count was skipped.
fn totals(total_items: Option<u64>, per_page: u64) -> (i64, i64) {
    match total_items {
        Some(t) => (t as i64, t.div_ceil(per_page) as i64),
        None => (-1, -1),
    }
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
    let validators = Validators::of(&state.service, &found.collection);
    let body = if plain_shape(&params) {
        // The common answer: the shaped record written straight out.
        to_json(&PublicRecord::new(
            &found.collection,
            &found.record,
            &caller,
        ))
    } else {
        let mut out = render(
            &state,
            &found.collection,
            vec![found.record],
            &caller,
            &params,
            &found.request,
        )
        .await?;
        to_json(&out.pop().unwrap_or(Value::Null))
    }
    .map_err(serialising)?;
    Ok(validators.answer(&state.metrics, request.headers(), body))
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
/// What a list answer written from the stored rows keeps of each record (`Some(None)`:
/// every key; `Some(Some(names))`: the top-level keys `fields` names), or `None` when the
/// answer needs the decoded records: an `expand`, or a `fields` list with nested paths,
/// excerpts or a syntax error (whose 400 the decoded road answers).
fn row_fields(params: &HashMap<String, String>) -> Option<Option<Vec<String>>> {
    if params.get("expand").is_some_and(|v| !v.trim().is_empty()) {
        return None;
    }
    let Some(fields) = params.get("fields").filter(|f| !f.trim().is_empty()) else {
        return Some(None);
    };
    let selectors = parse_fields(fields).ok()?;
    let mut names = Vec::with_capacity(selectors.len());
    for s in selectors {
        match s.path.as_slice() {
            [name] if s.excerpt.is_none() && name == "*" => return Some(None),
            [name] if s.excerpt.is_none() => names.push(name.clone()),
            _ => return None,
        }
    }
    Some(Some(names))
}

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
