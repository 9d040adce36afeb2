//! Batch: several record writes in one transaction, all or nothing; enabled and bounded
//! by the `batch` settings. A failed sub-request is reported by its index.

use std::sync::Arc;

use basalt_schema::Collection;
use basalt_store::WriteOp;
use serde_json::{Map, Value, json};

use crate::error::{ServiceError, ServiceResult};
use crate::records::{
    Action, Target, access_for, collection, into_public_record, prepare_auth_input, rule,
};
use crate::{Caller, RequestMeta, Services, request_info};

/// One sub-request of a batch: a write of `collection`'s records.
#[derive(Debug)]
pub struct BatchRequest {
    pub collection: String,
    /// `None` when the protocol's request names no write (refused in its turn once the
    /// collection is found, as PocketBase does).
    pub write: Option<BatchWrite>,
    /// Files of this sub-request ([`crate::files::spool_unchecked`]ed): for a create or
    /// an update, stored before the transaction and removed again unless it commits.
    pub uploads: Vec<crate::files::Upload>,
}

#[derive(Debug, Clone)]
pub enum BatchWrite {
    Create {
        body: Map<String, Value>,
    },
    /// Updates the record whose `id` the body names when it exists, else creates it.
    Upsert {
        body: Map<String, Value>,
    },
    Update {
        id: String,
        body: Map<String, Value>,
    },
    Delete {
        id: String,
    },
}

fn op_message(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::Create { .. } | WriteOp::Upsert { .. } | WriteOp::Import { .. } => {
            "Failed to create record."
        }
        WriteOp::Update { .. } => "Failed to update record.",
        WriteOp::Delete { .. } => "Failed to delete record.",
    }
}

fn request_error(i: usize, msg: &str) -> ServiceError {
    ServiceError::bad_request("Batch transaction failed.").with_data(json!({
        "requests": { i.to_string(): {"code": "batch_request_failed", "message": msg}}
    }))
}

/// Runs `requests` in one transaction. `None` for the list: none was given; `None` for
/// one: the protocol could not read it as a request of a collection's records (refused
/// in its turn). Each answer is the written record as the caller may see it, `None` for
/// a delete.
pub async fn run(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    requests: Option<Vec<Option<BatchRequest>>>,
) -> ServiceResult<Vec<Option<Map<String, Value>>>> {
    let settings = crate::settings::load(svc).await?;
    let b = &settings["batch"];
    if !b["enabled"].as_bool().unwrap_or(false) {
        return Err(ServiceError::forbidden("Batch requests are not allowed."));
    }
    let max = b["maxRequests"].as_u64().unwrap_or(50) as usize;
    let Some(requests) = requests else {
        return Err(ServiceError::bad_request(
            "Failed to load the submitted data due to invalid formatting.",
        )
        .with_data(
            json!({"requests": {"code": "validation_required", "message": "Cannot be blank."}}),
        ));
    };
    if requests.len() > max {
        return Err(ServiceError::bad_request("Failed to load the submitted data due to invalid formatting.")
            .with_data(json!({"requests": {"code": "validation_length_too_long", "message": format!("The length must be no more than {max}.")}})));
    }
    let mut stored = Vec::new();
    match prepare(svc, caller, requests, &mut stored).await {
        Ok((ops, targets)) => match commit(svc, caller, meta, ops, targets).await {
            Ok(out) => Ok(out),
            Err(e) => {
                discard(svc, stored).await;
                Err(e)
            }
        },
        Err(e) => {
            discard(svc, stored).await;
            Err(e)
        }
    }
}

async fn discard(svc: &Services, stored: Vec<crate::files::Stored>) {
    for s in stored {
        s.discard(svc).await;
    }
}

/// The writes of `requests`, with their files stored (noted in `stored`, so they can be
/// removed if anything fails).
async fn prepare(
    svc: &Services,
    caller: &Caller,
    requests: Vec<Option<BatchRequest>>,
    stored: &mut Vec<crate::files::Stored>,
) -> ServiceResult<(Vec<WriteOp>, Vec<Arc<Collection>>)> {
    let mut ops = Vec::with_capacity(requests.len());
    let mut targets: Vec<Arc<Collection>> = Vec::with_capacity(requests.len());
    for (i, r) in requests.into_iter().enumerate() {
        let Some(r) = r else {
            return Err(request_error(i, "Invalid batch request url or method."));
        };
        let c = collection(svc, &r.collection)
            .map_err(|_| request_error(i, "Missing collection context."))?;
        let denied = || request_error(i, "Only superusers can perform this action.");
        let op = match r.write {
            Some(BatchWrite::Create { mut body }) => {
                let access =
                    access_for(&rule(svc, &c, Action::Create), caller).ok_or_else(denied)?;
                prepare_auth_input(svc, &c, &mut body, caller, Target::Create).await?;
                let names = if r.uploads.is_empty() {
                    Vec::new()
                } else {
                    // Files are stored under the record's id: draw it now when the body
                    // names none.
                    let id = match body.get("id") {
                        Some(Value::String(id)) if !id.is_empty() => id.clone(),
                        _ => {
                            let id = basalt_schema::id::random_id(15);
                            body.insert("id".into(), Value::String(id.clone()));
                            id
                        }
                    };
                    store_files(
                        svc,
                        &c,
                        &id,
                        &mut body,
                        r.uploads,
                        (i, "Failed to create record."),
                        stored,
                    )
                    .await?
                };
                WriteOp::Create {
                    uploads: names,
                    collection: c.clone(),
                    input: body,
                    access,
                }
            }
            Some(BatchWrite::Upsert { .. } | BatchWrite::Delete { .. })
                if !r.uploads.is_empty() =>
            {
                return Err(request_error(
                    i,
                    "File uploads are only accepted by record create and update.",
                ));
            }
            Some(BatchWrite::Upsert { mut body }) => {
                let create_access =
                    access_for(&rule(svc, &c, Action::Create), caller).ok_or_else(denied)?;
                let update_access =
                    access_for(&rule(svc, &c, Action::Update), caller).ok_or_else(denied)?;
                let id = body
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let exists = !id.is_empty()
                    && svc
                        .store
                        .get_record(&c, &id, basalt_store::Access::Unrestricted, Arc::default())
                        .await
                        .map_err(|e| {
                            ServiceError::from_store(e, "Failed to process the batch request.")
                        })?
                        .is_some();
                let target = if exists {
                    Target::Update(&id)
                } else {
                    Target::Create
                };
                prepare_auth_input(svc, &c, &mut body, caller, target).await?;
                WriteOp::Upsert {
                    collection: c.clone(),
                    input: body,
                    create_access,
                    update_access,
                }
            }
            Some(BatchWrite::Update { id, mut body }) => {
                let access =
                    access_for(&rule(svc, &c, Action::Update), caller).ok_or_else(denied)?;
                prepare_auth_input(svc, &c, &mut body, caller, Target::Update(&id)).await?;
                let names = store_files(
                    svc,
                    &c,
                    &id,
                    &mut body,
                    r.uploads,
                    (i, "Failed to update record."),
                    stored,
                )
                .await?;
                WriteOp::Update {
                    uploads: names,
                    collection: c.clone(),
                    id,
                    input: body,
                    access,
                }
            }
            Some(BatchWrite::Delete { id }) => {
                let access =
                    access_for(&rule(svc, &c, Action::Delete), caller).ok_or_else(denied)?;
                WriteOp::Delete {
                    collection: c.clone(),
                    id,
                    access,
                }
            }
            None => {
                return Err(request_error(i, "Invalid batch request url or method."));
            }
        };
        targets.push(c);
        ops.push(op);
    }
    Ok((ops, targets))
}

/// Stores sub-request `i`'s files for record `id` and names them in `body`.
async fn store_files(
    svc: &Services,
    c: &Collection,
    id: &str,
    body: &mut Map<String, Value>,
    uploads: Vec<crate::files::Upload>,
    (i, message): (usize, &str),
    stored: &mut Vec<crate::files::Stored>,
) -> ServiceResult<Vec<String>> {
    if uploads.is_empty() {
        return Ok(Vec::new());
    }
    let s = crate::files::store(svc, c, id, body, uploads, message)
        .await
        .map_err(|e| {
            // A storage outage stays a 5xx; the client's fault is the sub-request's.
            if matches!(
                e.kind,
                crate::ErrorKind::Internal | crate::ErrorKind::Unavailable
            ) {
                return e;
            }
            ServiceError::bad_request("Batch transaction failed.").with_data(json!({
                "requests": { i.to_string(): {
                    "code": "batch_request_failed",
                    "message": "Batch request failed.",
                    "response": e.body(),
                }}
            }))
        })?;
    let names = s.names.clone();
    stored.push(s);
    Ok(names)
}

/// Runs the prepared writes in one transaction.
async fn commit(
    svc: &Services,
    caller: &Caller,
    meta: &dyn RequestMeta,
    ops: Vec<WriteOp>,
    targets: Vec<Arc<Collection>>,
) -> ServiceResult<Vec<Option<Map<String, Value>>>> {
    let mut req = request_info(caller, "POST", meta, Map::new());
    req.context = "batch".into();
    let req = Arc::new(req);
    let messages: Vec<&str> = ops.iter().map(op_message).collect();
    let results = crate::files::write(svc, ops, req).await.map_err(|e| {
        // A failed sub-request reports the message its own endpoint would have used.
        let msg = match &e {
            basalt_store::StoreError::Batch { index, .. } => messages
                .get(*index)
                .copied()
                .unwrap_or("Failed to process the batch request."),
            _ => "Failed to process the batch request.",
        };
        ServiceError::from_store(e, msg)
    })?;
    Ok(targets
        .iter()
        .zip(results)
        .map(|(c, r)| r.map(|record| into_public_record(c, record, caller)))
        .collect())
}
