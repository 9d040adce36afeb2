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
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub collection: String,
    /// `None` when the protocol's request names no write (refused in its turn once the
    /// collection is found, as PocketBase does).
    pub write: Option<BatchWrite>,
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
        WriteOp::Create { .. } | WriteOp::Upsert { .. } => "Failed to create record.",
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
                WriteOp::Create {
                    uploads: Vec::new(),
                    collection: c.clone(),
                    input: body,
                    access,
                }
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
                WriteOp::Update {
                    uploads: Vec::new(),
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
