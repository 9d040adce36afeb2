//! Record operations: list, view, create, update, delete, each with the collection's rule
//! chosen and checked, and [`present`], a record as its caller may see it with relations
//! expanded. Rule failures answer as PocketBase does: 403 for superuser-only actions, 404
//! when the record is not visible, 400 when a create rule rejects the new record.

mod auth_input;
mod expand;
mod visibility;

use std::sync::Arc;

use basalt_schema::filter::{parse_expand, parse_sort, parse_with_params};
use basalt_schema::{Collection, RequestInfo, RuleSlot};
use basalt_store::{Access, Author, ListQuery, Record, RowView, SortKey, StoreError, WriteOp};
use serde_json::{Map, Value};

pub use auth_input::{Target, prepare_auth_input};
pub use visibility::{Visibility, into_public_record, public_record};

use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::{Caller, RequestMeta, Services, files, request_info};

pub fn collection(svc: &Services, name: &str) -> ServiceResult<Arc<Collection>> {
    svc.store
        .schema()
        .find(name)
        .cloned()
        .ok_or_else(|| ServiceError::new(ErrorKind::NotFound, "Missing collection context."))
}

/// A record by id whatever the rules say, for the server's own checks (token owners, old
/// passwords, linked accounts); `message` names the failed action in a store error.
pub async fn load_unrestricted(
    svc: &Services,
    c: &Arc<Collection>,
    id: &str,
    message: &str,
) -> ServiceResult<Option<Record>> {
    svc.store
        .get_record(
            c,
            id,
            Access::Unrestricted,
            Arc::new(RequestInfo::default()),
        )
        .await
        .map_err(|e| ServiceError::from_store(e, message))
}

/// The access for a rule: `None` when only superusers may act.
pub fn access_for(slot: &RuleSlot, caller: &Caller) -> Option<Access> {
    if caller.is_superuser() {
        return Some(Access::Unrestricted);
    }
    match slot {
        RuleSlot::Locked => None,
        RuleSlot::Open => Some(Access::Unrestricted),
        RuleSlot::Expr(e) => Some(Access::Rule(e.clone())),
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Action {
    List,
    View,
    Create,
    Update,
    Delete,
}

pub fn rule(svc: &Services, c: &Collection, action: Action) -> RuleSlot {
    let schema = svc.store.schema();
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
/// The keys of a `sort` query parameter (none when absent); a bad one is PocketBase's
/// 400 naming `sort`.
pub(crate) fn sort_keys(sort: Option<&str>) -> ServiceResult<Vec<SortKey>> {
    let Some(s) = sort else {
        return Ok(vec![]);
    };
    Ok(parse_sort(s)
        .map_err(|_| bad_param("sort"))?
        .into_iter()
        .map(|k| SortKey {
            path: k.path,
            descending: k.descending,
        })
        .collect())
}

pub fn bad_param(name: &str) -> ServiceError {
    tracing::debug!(param = name, "invalid query parameter");
    ServiceError::bad_request("Something went wrong while processing your request.")
}

/// A parameter as the protocol read it; `Err` names one it could not read. It is refused
/// where PocketBase refuses it: after the collection and its rule were checked.
pub type Param<T> = Result<T, InvalidParam>;

/// A parameter a protocol could not read (its name).
#[derive(Debug, Clone, Copy)]
pub struct InvalidParam(pub &'static str);

/// One page of a collection's records.
#[derive(Debug, Clone)]
pub struct ListInput {
    pub collection: String,
    /// 1-based; smaller values read as 1.
    pub page: Param<u64>,
    /// 0 means the default (30); larger than 1000 is capped.
    pub per_page: Param<u64>,
    pub skip_total: bool,
    /// A filter in PocketBase's language; blank is none.
    pub filter: Option<String>,
    /// PocketBase's `sort` (`-created,title`).
    pub sort: Option<String>,
}

/// A list's answer: stored records, to be shown through [`present`].
pub struct RecordPage<T = Vec<Record>> {
    pub collection: Arc<Collection>,
    pub page: u64,
    pub per_page: u64,
    /// `None` when the count was skipped.
    pub total_items: Option<u64>,
    /// The records, or what [`list_rows`]' `each` made of them.
    pub items: T,
    /// The request as rules saw it (expand's rules see the same).
    pub request: Arc<RequestInfo>,
}

/// Records the caller wrote or may view, to be shown through [`present`].
pub struct Found {
    pub collection: Arc<Collection>,
    pub record: Record,
    pub request: Arc<RequestInfo>,
}

pub async fn list(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    input: ListInput,
) -> ServiceResult<RecordPage> {
    list_rows(svc, caller, meta, input, Vec::new(), |items, row| {
        items.push(row.record()?);
        Ok(())
    })
    .await
}

/// [`list`] with each row of the page handed to `each` as it is stored (with `out`,
/// returned as the page's items), for an answer written straight from the rows: `each`
/// runs while a reader is held, so it only formats.
pub async fn list_rows<S, F>(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    input: ListInput,
    out: S,
    each: F,
) -> ServiceResult<RecordPage<S>>
where
    S: Send + 'static,
    F: FnMut(&mut S, &RowView<'_>) -> Result<(), StoreError> + Send + 'static,
{
    let c = collection(svc, &input.collection)?;
    let access = access_for(&rule(svc, &c, Action::List), caller)
        .ok_or_else(ServiceError::superusers_only)?;
    let page = input.page.map_err(|p| bad_param(p.0))?;
    let per_page = input.per_page.map_err(|p| bad_param(p.0))?;
    // 0 means the default, as in PocketBase; larger pages are capped.
    let per_page = if per_page == 0 {
        30
    } else {
        per_page.min(1000)
    };
    let page = page.max(1);
    let filter = match input.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(parse_with_params(f, &Map::new()).map_err(|e| {
            tracing::debug!(error = %e, "invalid filter");
            bad_param("filter")
        })?),
        None => None,
    };
    let sort = sort_keys(input.sort.as_deref())?;
    let req = Arc::new(request_info(caller, "GET", meta, Map::new()));
    let result = svc
        .store
        .list_rows(
            ListQuery {
                collection: c.clone(),
                filter,
                access,
                sort,
                author: Author::Client,
                page,
                per_page,
                skip_total: input.skip_total,
                request: req.clone(),
            },
            out,
            each,
        )
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to list records."))?;
    Ok(RecordPage {
        collection: c,
        page,
        per_page,
        total_items: result.total_items,
        items: result.rows,
        request: req,
    })
}

/// One record by id, if the caller may view it.
#[derive(Debug, Clone)]
pub struct ViewInput {
    pub collection: String,
    pub id: String,
    /// Whether the answer will be expanded: its rules read the request too.
    pub expanding: bool,
}

pub async fn view(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    input: ViewInput,
) -> ServiceResult<Found> {
    let c = collection(svc, &input.collection)?;
    let access = access_for(&rule(svc, &c, Action::View), caller)
        .ok_or_else(ServiceError::superusers_only)?;
    // Only a rule (here or, through expand, on a related collection) reads `@request.*`:
    // a plain view skips copying the query and headers.
    let req = if matches!(access, Access::Rule(_)) || input.expanding {
        Arc::new(request_info(caller, "GET", meta, Map::new()))
    } else {
        Arc::new(RequestInfo::default())
    };
    let record = svc
        .store
        .get_record(&c, &input.id, access, req.clone())
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to view record."))?
        .ok_or_else(ServiceError::not_found)?;
    Ok(Found {
        collection: c,
        record,
        request: req,
    })
}

/// The collection a write targets, refusing views and checking the action's rule.
fn writable(
    svc: &Services,
    name: &str,
    caller: &Caller,
    action: Action,
) -> ServiceResult<(Arc<Collection>, Access)> {
    let c = collection(svc, name)?;
    if c.is_view() {
        return Err(ServiceError::bad_request("View collections are read-only."));
    }
    let access =
        access_for(&rule(svc, &c, action), caller).ok_or_else(ServiceError::superusers_only)?;
    Ok((c, access))
}

/// Runs one write and returns the stored record.
async fn write_one(
    svc: &Services,
    c: Arc<Collection>,
    op: WriteOp,
    req: Arc<RequestInfo>,
    message: &str,
) -> ServiceResult<Found> {
    let mut out = files::write(svc, vec![op], req.clone())
        .await
        .map_err(|e| ServiceError::from_store(e, message))?;
    let record = out.pop().flatten().ok_or_else(ServiceError::internal)?;
    Ok(Found {
        collection: c,
        record,
        request: req,
    })
}

/// A record to create from `body` (PocketBase's record input: values, `+`/`-` modifiers,
/// and for auth collections `password`/`passwordConfirm`).
#[derive(Debug)]
pub struct CreateInput {
    pub collection: String,
    pub body: Map<String, Value>,
    /// Files of the request ([`crate::files::spool`]ed), stored before the write and
    /// removed again unless it commits.
    pub uploads: Vec<crate::files::Upload>,
    /// Whether the answer will be expanded: its rules read the request too.
    pub expanding: bool,
}

/// The request as the rules of a write see it: built only when a rule (the action's own,
/// or through expand a related collection's) may read `@request.*`; a write under an
/// open rule skips copying the body, the query and the headers.
fn write_request(
    caller: &Caller,
    method: &str,
    meta: &dyn RequestMeta,
    access: &Access,
    expanding: bool,
    body: &Map<String, Value>,
) -> Arc<RequestInfo> {
    Arc::new(if matches!(access, Access::Rule(_)) || expanding {
        request_info(caller, method, meta, body.clone())
    } else {
        RequestInfo::default()
    })
}

pub async fn create(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    input: CreateInput,
) -> ServiceResult<Found> {
    let CreateInput {
        collection: name,
        mut body,
        uploads,
        expanding,
    } = input;
    const MESSAGE: &str = "Failed to create record.";
    let (c, access) = writable(svc, &name, caller, Action::Create)?;
    let req = write_request(caller, "POST", meta, &access, expanding, &body);
    prepare_auth_input(svc, &c, &mut body, caller, Target::Create).await?;
    let stored = if uploads.is_empty() {
        files::Stored::default()
    } else {
        // Files are stored under the record's id before its transaction: draw the id now
        // when the body names none.
        let id = match body.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => {
                let id = basalt_schema::id::random_id(15);
                body.insert("id".into(), Value::String(id.clone()));
                id
            }
        };
        files::store(svc, &c, &id, &mut body, uploads, MESSAGE).await?
    };
    let op = WriteOp::Create {
        uploads: stored.names.clone(),
        collection: c.clone(),
        input: body,
        access,
    };
    match write_one(svc, c, op, req, MESSAGE).await {
        Ok(found) => Ok(found),
        Err(e) => {
            stored.discard(svc).await;
            Err(e)
        }
    }
}

/// Changes to record `id` (for auth collections also `oldPassword`).
#[derive(Debug)]
pub struct UpdateInput {
    pub collection: String,
    pub id: String,
    pub body: Map<String, Value>,
    /// As for [`CreateInput::uploads`].
    pub uploads: Vec<crate::files::Upload>,
    /// As for [`CreateInput::expanding`].
    pub expanding: bool,
}

pub async fn update(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    input: UpdateInput,
) -> ServiceResult<Found> {
    let UpdateInput {
        collection: name,
        id,
        mut body,
        uploads,
        expanding,
    } = input;
    const MESSAGE: &str = "Failed to update record.";
    let (c, access) = writable(svc, &name, caller, Action::Update)?;
    let req = write_request(caller, "PATCH", meta, &access, expanding, &body);
    prepare_auth_input(svc, &c, &mut body, caller, Target::Update(&id)).await?;
    let stored = if uploads.is_empty() {
        files::Stored::default()
    } else {
        files::store(svc, &c, &id, &mut body, uploads, MESSAGE).await?
    };
    let op = WriteOp::Update {
        uploads: stored.names.clone(),
        collection: c.clone(),
        id: id.clone(),
        input: body,
        access,
    };
    match write_one(svc, c.clone(), op, req, MESSAGE).await {
        Ok(found) => Ok(found),
        Err(e) => {
            stored.discard(svc).await;
            Err(e)
        }
    }
}

pub async fn delete(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    collection: &str,
    id: String,
) -> ServiceResult<()> {
    let (c, access) = writable(svc, collection, caller, Action::Delete)?;
    // Only a rule reads `@request.*`: an open delete skips copying the query and headers.
    let req = if matches!(access, Access::Rule(_)) {
        Arc::new(request_info(caller, "DELETE", meta, Map::new()))
    } else {
        Arc::new(RequestInfo::default())
    };
    // Its files (and those of records its deletion cascades to) go once it committed.
    files::write(
        svc,
        vec![WriteOp::Delete {
            collection: c.clone(),
            id: id.clone(),
            access,
        }],
        req,
    )
    .await
    .map_err(|e| ServiceError::from_store(e, "Failed to delete record."))?;
    Ok(())
}

/// `records` of `c` as `caller` may see them, with the relations named by `expand`
/// (PocketBase's `expand`, blank for none) replaced by the records they may view.
pub async fn present(
    svc: &Services,
    c: &Arc<Collection>,
    records: Vec<Record>,
    caller: &Caller,
    expand: Option<&str>,
    req: &Arc<RequestInfo>,
) -> ServiceResult<Vec<Map<String, Value>>> {
    let Some(e) = expand.filter(|e| !e.trim().is_empty()) else {
        // Nothing to expand: the shaped records take the stored values, no copies.
        return Ok(records
            .into_iter()
            .map(|r| into_public_record(c, r, caller))
            .collect());
    };
    let mut out: Vec<Map<String, Value>> = records
        .iter()
        .map(|r| public_record(c, r, caller))
        .collect();
    let paths = parse_expand(e).map_err(|_| bad_param("expand"))?;
    expand::expand_records(svc, c, &records, &mut out, &paths, caller, req, 0).await?;
    // An asked-for expand is always present, empty when nothing could be expanded.
    for r in &mut out {
        r.entry("expand")
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(out)
}
