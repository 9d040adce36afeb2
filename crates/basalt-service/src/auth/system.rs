//! The auth flows' system collections (`_otps`, `_mfas`, `_authOrigins`): finding them,
//! reading one record's entries, and deleting used or expired ones.

use std::sync::Arc;

use basalt_schema::collection::AuthOptions;
use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Access, Author, ListQuery, Record, WriteOp};
use serde_json::{Map, Value};

use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::tokens::{options, text};

pub(super) fn system_collection(svc: &Services, name: &str) -> ServiceResult<Arc<Collection>> {
    svc.store.schema().by_name(name).cloned().ok_or_else(|| {
        tracing::error!(collection = name, "system collection missing");
        ServiceError::internal()
    })
}

/// Seconds since a record's `created` timestamp.
pub(super) fn age_secs(r: &Record) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text(r, "created"), "%Y-%m-%d %H:%M:%S%.3fZ")
        .map(|t| chrono::Utc::now().timestamp() - t.and_utc().timestamp())
        .unwrap_or(i64::MAX)
}

pub(super) async fn delete_system_record(svc: &Services, c: &Arc<Collection>, id: &str) {
    let op = WriteOp::Delete {
        collection: c.clone(),
        id: id.to_string(),
        access: Access::Unrestricted,
    };
    if let Err(e) = svc
        .store
        .write(vec![op], Arc::new(RequestInfo::default()))
        .await
    {
        tracing::warn!(error = %e, collection = c.name.as_str(), "could not delete a used auth record");
    }
}

/// Deletes the entries of `sys` (`_otps` or `_mfas`) for one record that are older than
/// `max_age` seconds, so abandoned codes and challenges do not pile up.
pub(super) async fn purge_expired(
    svc: &Services,
    sys: &Arc<Collection>,
    collection_id: &str,
    record_id: &str,
    max_age: i64,
) {
    let entries = record_entries(svc, sys, collection_id, record_id, None, 200).await;
    let ops: Vec<WriteOp> = entries
        .map(|(items, _)| items)
        .unwrap_or_default()
        .iter()
        .filter(|r| age_secs(r) > max_age)
        .map(|r| WriteOp::Delete {
            collection: sys.clone(),
            id: text(r, "id").to_string(),
            access: Access::Unrestricted,
        })
        .collect();
    if !ops.is_empty()
        && let Err(e) = svc.store.write(ops, Arc::new(RequestInfo::default())).await
    {
        tracing::warn!(error = %e, collection = sys.name.as_str(), "could not purge expired auth entries");
    }
}

/// How many expired entries one cleanup write deletes.
const PURGE_BATCH: u64 = 500;

/// Deletes every entry of `sys_name` (`_otps` or `_mfas`) older than its auth
/// collection allows (`max_age` of the collection's options, in seconds), a batch per
/// write; returns how many went. The hourly `__pbOTPCleanup__` / `__pbMFACleanup__` cron
/// jobs.
pub(crate) async fn purge_all_expired(
    svc: &Services,
    sys_name: &str,
    max_age: fn(&AuthOptions) -> i64,
) -> ServiceResult<u64> {
    let sys = system_collection(svc, sys_name)?;
    let now = chrono::Utc::now();
    let mut removed = 0;
    for c in svc
        .store
        .schema()
        .collections()
        .iter()
        .filter(|c| c.is_auth())
    {
        let Some(cutoff) = chrono::TimeDelta::try_seconds(max_age(&options(c)))
            .and_then(|d| now.checked_sub_signed(d))
        else {
            continue;
        };
        let params = Map::from_iter([
            ("c".to_string(), Value::String(c.id.clone())),
            (
                "t".to_string(),
                Value::String(cutoff.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()),
            ),
        ]);
        let filter = basalt_schema::filter::parse_with_params(
            "collectionRef = {:c} && created < {:t}",
            &params,
        )
        .map_err(|_| ServiceError::internal())?;
        loop {
            let page = svc
                .store
                .list_records(ListQuery {
                    collection: sys.clone(),
                    filter: Some(filter.clone()),
                    access: Access::Unrestricted,
                    sort: vec![],
                    author: Author::Server,
                    page: 1,
                    per_page: PURGE_BATCH,
                    skip_total: true,
                    request: Arc::new(RequestInfo::default()),
                })
                .await
                .map_err(|e| ServiceError::from_store(e, "Failed to clean up."))?;
            let ops: Vec<WriteOp> = page
                .items
                .iter()
                .map(|r| WriteOp::Delete {
                    collection: sys.clone(),
                    id: text(r, "id").to_string(),
                    access: Access::Unrestricted,
                })
                .collect();
            let n = ops.len() as u64;
            if n > 0 {
                svc.store
                    .write(ops, Arc::new(RequestInfo::default()))
                    .await
                    .map_err(|e| ServiceError::from_store(e, "Failed to clean up."))?;
            }
            removed += n;
            if n < PURGE_BATCH {
                break;
            }
        }
    }
    Ok(removed)
}

/// The entries of a system collection (`_otps`, `_mfas`, `_authOrigins`) for one record,
/// optionally with one more `key = value` condition; at most `limit`, and the total.
pub(super) async fn record_entries(
    svc: &Services,
    sys: &Arc<Collection>,
    collection_id: &str,
    record_id: &str,
    extra: Option<(&str, &str)>,
    limit: u64,
) -> ServiceResult<(Vec<Record>, u64)> {
    let mut params = Map::from_iter([
        ("c".to_string(), Value::String(collection_id.to_string())),
        ("r".to_string(), Value::String(record_id.to_string())),
    ]);
    let mut filter = "collectionRef = {:c} && recordRef = {:r}".to_string();
    if let Some((key, value)) = extra {
        params.insert("x".into(), Value::String(value.to_string()));
        filter.push_str(&format!(" && {key} = {{:x}}"));
    }
    let expr = basalt_schema::filter::parse_with_params(&filter, &params)
        .map_err(|_| ServiceError::internal())?;
    let page = svc
        .store
        .list_records(ListQuery {
            collection: sys.clone(),
            filter: Some(expr),
            access: Access::Unrestricted,
            sort: vec![],
            author: Author::Server,
            page: 1,
            per_page: limit.max(1),
            skip_total: false,
            request: Arc::new(RequestInfo::default()),
        })
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to authenticate."))?;
    let total = page.total_items.unwrap_or(page.items.len() as u64);
    Ok((page.items, total))
}
