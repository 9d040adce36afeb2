//! Record handlers: resolve the collection and the applicable rule, call the store, shape
//! the answer. Rule failures answer as PocketBase does: 403 for superuser-only actions,
//! 404 when the record is not visible, 400 when a create rule rejects the new record.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use basalt_schema::filter::{parse_expand, parse_fields, parse_sort, parse_with_params};
use basalt_schema::{Collection, RequestInfo, RuleSlot};
use basalt_store::{Access, Author, ListQuery, SortKey, WriteOp};
use serde_json::{Map, Value, json};

use super::auth_input::{Target, prepare_auth_input};
use super::expand::expand_records;
use super::fields::project;
use super::shape::{PublicRecord, into_public_record, public_record};
use crate::ApiState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::request_info::{Auth, build};

pub(crate) type Params = Query<HashMap<String, String>>;

pub(crate) fn query_map(q: &HashMap<String, String>) -> Map<String, Value> {
    q.iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

pub(crate) fn collection(state: &ApiState, name: &str) -> ApiResult<Arc<Collection>> {
    state
        .store
        .schema()
        .find(name)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Missing collection context."))
}

/// A record by id whatever the rules say, for the server's own checks (token owners, old
/// passwords, linked accounts); `message` names the failed action in a store error.
pub(crate) async fn load_unrestricted(
    state: &ApiState,
    c: &Arc<Collection>,
    id: &str,
    message: &str,
) -> ApiResult<Option<basalt_store::Record>> {
    state
        .store
        .get_record(
            c,
            id,
            Access::Unrestricted,
            Arc::new(RequestInfo::default()),
        )
        .await
        .map_err(|e| ApiError::from_store(e, message))
}

/// The access for a rule: `None` when only superusers may act.
pub(crate) fn access_for(slot: &RuleSlot, auth: &Auth) -> Option<Access> {
    if auth.is_superuser() {
        return Some(Access::Unrestricted);
    }
    match slot {
        RuleSlot::Locked => None,
        RuleSlot::Open => Some(Access::Unrestricted),
        RuleSlot::Expr(e) => Some(Access::Rule(e.clone())),
    }
}

pub(crate) enum Action {
    List,
    View,
    Create,
    Update,
    Delete,
}

pub(crate) fn rule(state: &ApiState, c: &Collection, action: Action) -> RuleSlot {
    let schema = state.store.schema();
    let Some(rules) = schema.rules(&c.id) else {
        return RuleSlot::Locked;
    };
    match action {
        Action::List => rules.list.clone(),
        Action::View => rules.view.clone(),
        Action::Create => rules.create.clone(),
        Action::Update => rules.update.clone(),
        Action::Delete => rules.delete.clone(),
    }
}

/// PocketBase answers every unusable query parameter with the same opaque message; the
/// detail goes to the debug log.
fn bad_param(name: &str) -> ApiError {
    tracing::debug!(param = name, "invalid query parameter");
    ApiError::bad_request("Something went wrong while processing your request.")
}

/// Applies `expand` and `fields` from the query string and serialises the records.
pub(crate) async fn render(
    state: &ApiState,
    c: &Arc<Collection>,
    records: Vec<basalt_store::Record>,
    auth: &Auth,
    params: &HashMap<String, String>,
    req: &Arc<RequestInfo>,
) -> ApiResult<Vec<Value>> {
    let expand = params.get("expand").filter(|e| !e.trim().is_empty());
    let Some(e) = expand else {
        // Nothing to expand: the shaped records take the stored values, no copies.
        let out = records.into_iter().map(|r| into_public_record(c, r, auth));
        return project_all(out, params);
    };
    let mut out: Vec<Map<String, Value>> =
        records.iter().map(|r| public_record(c, r, auth)).collect();
    {
        let paths = parse_expand(e).map_err(|_| bad_param("expand"))?;
        expand_records(state, c, &records, &mut out, &paths, auth, req, 0).await?;
        // An asked-for expand is always present, empty when nothing could be expanded.
        for r in &mut out {
            r.entry("expand")
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    project_all(out.into_iter(), params)
}

/// Applies `fields` from the query string to shaped records.
fn project_all(
    out: impl Iterator<Item = Map<String, Value>>,
    params: &HashMap<String, String>,
) -> ApiResult<Vec<Value>> {
    let selectors = match params.get("fields").filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(parse_fields(f).map_err(|_| bad_param("fields"))?),
        None => None,
    };
    Ok(out
        .map(|m| {
            let v = Value::Object(m);
            match &selectors {
                Some(s) => project(&v, s),
                None => v,
            }
        })
        .collect())
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    auth: Auth,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<JsonBody<Value>> {
    let c = collection(&state, &name)?;
    let access =
        access_for(&rule(&state, &c, Action::List), &auth).ok_or_else(ApiError::superusers_only)?;
    let page: u64 = params
        .get("page")
        .map_or(Ok(1), |p| p.parse())
        .map_err(|_| bad_param("page"))?;
    let per_page: u64 = params
        .get("perPage")
        .map_or(Ok(30), |p| p.parse())
        .map_err(|_| bad_param("perPage"))?;
    // 0 means the default, as in PocketBase; larger pages are capped.
    let per_page = if per_page == 0 {
        30
    } else {
        per_page.min(1000)
    };
    let page = page.max(1);
    let skip_total = params
        .get("skipTotal")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "t"));
    let filter = match params.get("filter").filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(parse_with_params(f, &Map::new()).map_err(|e| {
            tracing::debug!(error = %e, "invalid filter");
            bad_param("filter")
        })?),
        None => None,
    };
    let sort = match params.get("sort") {
        Some(s) => parse_sort(s)
            .map_err(|_| bad_param("sort"))?
            .into_iter()
            .map(|k| SortKey {
                path: k.path,
                descending: k.descending,
            })
            .collect(),
        None => vec![],
    };
    let req = Arc::new(build(
        &auth,
        "GET",
        &query_map(&params),
        &headers,
        Map::new(),
    ));
    let result = state
        .store
        .list_records(ListQuery {
            collection: c.clone(),
            filter,
            access,
            sort,
            author: Author::Client,
            page,
            per_page,
            skip_total,
            request: req.clone(),
        })
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to list records."))?;
    let items = render(&state, &c, result.items, &auth, &params, &req).await?;
    let (total_items, total_pages) = match result.total_items {
        Some(t) => (t as i64, t.div_ceil(per_page) as i64),
        None => (-1, -1),
    };
    Ok(JsonBody(
        json!({"page": page, "perPage": per_page, "totalItems": total_items, "totalPages": total_pages, "items": items}),
    ))
}

/// Takes the request itself last (not a `HeaderMap`, which axum would copy): only a rule
/// reads the headers.
pub(crate) async fn view(
    State(state): State<ApiState>,
    Path((name, id)): Path<(String, String)>,
    auth: Auth,
    Query(params): Params,
    request: Request,
) -> ApiResult<Response> {
    let c = collection(&state, &name)?;
    let access =
        access_for(&rule(&state, &c, Action::View), &auth).ok_or_else(ApiError::superusers_only)?;
    // Only a rule (here or, through expand, on a related collection) reads `@request.*`:
    // a plain view skips copying the query and headers.
    let req = if matches!(access, Access::Rule(_)) || params.contains_key("expand") {
        Arc::new(build(
            &auth,
            "GET",
            &query_map(&params),
            request.headers(),
            Map::new(),
        ))
    } else {
        Arc::new(RequestInfo::default())
    };
    let record = state
        .store
        .get_record(&c, &id, access, req.clone())
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to view record."))?
        .ok_or_else(ApiError::not_found)?;
    let plain = |p: &str| params.get(p).is_none_or(|v| v.trim().is_empty());
    if plain("expand") && plain("fields") {
        // The common answer: the shaped record written straight out.
        return Ok(JsonBody(PublicRecord::new(&c, &record, &auth)).into_response());
    }
    let mut out = render(&state, &c, vec![record], &auth, &params, &req).await?;
    Ok(JsonBody(out.pop().unwrap_or(Value::Null)).into_response())
}

/// The collection a write targets, refusing views and checking the action's rule.
fn writable(
    state: &ApiState,
    name: &str,
    auth: &Auth,
    action: Action,
) -> ApiResult<(Arc<Collection>, Access)> {
    let c = collection(state, name)?;
    if c.is_view() {
        return Err(ApiError::bad_request("View collections are read-only."));
    }
    let access =
        access_for(&rule(state, &c, action), auth).ok_or_else(ApiError::superusers_only)?;
    Ok((c, access))
}

/// Runs one write and answers with the stored record shaped for the requester.
async fn write_one(
    state: &ApiState,
    c: &Arc<Collection>,
    op: WriteOp,
    auth: &Auth,
    params: &HashMap<String, String>,
    req: Arc<RequestInfo>,
    message: &str,
) -> ApiResult<JsonBody<Value>> {
    let mut out = state
        .store
        .write(vec![op], req.clone())
        .await
        .map_err(|e| ApiError::from_store(e, message))?;
    let record = out.pop().flatten().ok_or_else(ApiError::internal)?;
    let mut rendered = render(state, c, vec![record], auth, params, &req).await?;
    Ok(JsonBody(rendered.pop().unwrap_or(Value::Null)))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    auth: Auth,
    Query(params): Params,
    headers: HeaderMap,
    Body(mut body): Body,
) -> ApiResult<JsonBody<Value>> {
    let (c, access) = writable(&state, &name, &auth, Action::Create)?;
    let req = Arc::new(build(
        &auth,
        "POST",
        &query_map(&params),
        &headers,
        body.clone(),
    ));
    prepare_auth_input(&state, &c, &mut body, &auth, Target::Create).await?;
    let op = WriteOp::Create {
        collection: c.clone(),
        input: body,
        access,
    };
    write_one(
        &state,
        &c,
        op,
        &auth,
        &params,
        req,
        "Failed to create record.",
    )
    .await
}

pub(crate) async fn update(
    State(state): State<ApiState>,
    Path((name, id)): Path<(String, String)>,
    auth: Auth,
    Query(params): Params,
    headers: HeaderMap,
    Body(mut body): Body,
) -> ApiResult<JsonBody<Value>> {
    let (c, access) = writable(&state, &name, &auth, Action::Update)?;
    let req = Arc::new(build(
        &auth,
        "PATCH",
        &query_map(&params),
        &headers,
        body.clone(),
    ));
    prepare_auth_input(&state, &c, &mut body, &auth, Target::Update(&id)).await?;
    let op = WriteOp::Update {
        collection: c.clone(),
        id,
        input: body,
        access,
    };
    write_one(
        &state,
        &c,
        op,
        &auth,
        &params,
        req,
        "Failed to update record.",
    )
    .await
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    Path((name, id)): Path<(String, String)>,
    auth: Auth,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (c, access) = writable(&state, &name, &auth, Action::Delete)?;
    // Only a rule reads `@request.*`: an open delete skips copying the query and headers.
    let req = if matches!(access, Access::Rule(_)) {
        Arc::new(build(
            &auth,
            "DELETE",
            &query_map(&params),
            &headers,
            Map::new(),
        ))
    } else {
        Arc::new(RequestInfo::default())
    };
    state
        .store
        .write(
            vec![WriteOp::Delete {
                collection: c,
                id,
                access,
            }],
            req,
        )
        .await
        .map_err(|e| ApiError::from_store(e, "Failed to delete record."))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
