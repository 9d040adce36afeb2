//! Collection operations (superusers only): list, view, create, update, delete,
//! truncate, import. Collections travel as PocketBase's collection documents, token
//! secrets always left out of an answer.

mod doc_filter;

use basalt_schema::Collection;
use serde_json::{Value, json};

use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Services};

fn parse_collection(v: Value) -> ServiceResult<Collection> {
    serde_json::from_value(v).map_err(|e| {
        tracing::debug!(error = %e, "invalid collection document");
        ServiceError::bad_request("Failed to load the submitted data due to invalid formatting.")
    })
}

/// Token secrets stay in the stored document, never in an answer.
fn to_json(c: &Collection) -> Value {
    c.redacted_json()
}

/// Which collections to list.
#[derive(Debug, Clone)]
pub struct CollectionQuery {
    /// A filter over the documents; blank is none.
    pub filter: Option<String>,
    pub sort: Option<String>,
    /// 1-based; 0 reads as 1.
    pub page: usize,
    /// Clamped to 1..=1000.
    pub per_page: usize,
}

/// One page of collection documents.
#[derive(Debug, Clone)]
pub struct CollectionPage {
    pub page: usize,
    pub per_page: usize,
    pub total_items: usize,
    pub items: Vec<Value>,
}

pub fn list(svc: &Services, caller: &Caller, q: CollectionQuery) -> ServiceResult<CollectionPage> {
    caller.require_superuser()?;
    let schema = svc.store.schema();
    let mut items: Vec<Value> = schema.collections().iter().map(|c| to_json(c)).collect();
    if let Some(f) = q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        // Collection lists are small: the filter runs on the documents in memory.
        let expr = basalt_schema::filter::parse(f)
            .map_err(|_| ServiceError::bad_request("Invalid filter parameter."))?;
        items.retain(|c| doc_filter::matches(&expr, c));
    }
    if let Some(s) = q.sort.as_deref() {
        let keys = basalt_schema::filter::parse_sort(s)
            .map_err(|_| ServiceError::bad_request("Invalid sort parameter."))?;
        for k in keys.iter().rev() {
            items.sort_by(|a, b| {
                let ord = doc_filter::cmp_values(a.get(&k.path), b.get(&k.path));
                if k.descending { ord.reverse() } else { ord }
            });
        }
    }
    let per_page = q.per_page.clamp(1, 1000);
    let page = q.page.max(1);
    let total_items = items.len();
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Ok(CollectionPage {
        page,
        per_page,
        total_items,
        items,
    })
}

pub fn view(svc: &Services, caller: &Caller, name: &str) -> ServiceResult<Value> {
    caller.require_superuser()?;
    let schema = svc.store.schema();
    let c = schema.find(name).ok_or_else(ServiceError::not_found)?;
    Ok(to_json(c))
}

/// Creates a collection from its document.
pub async fn create(svc: &Services, caller: &Caller, doc: Value) -> ServiceResult<Value> {
    caller.require_superuser()?;
    let c = parse_collection(doc)?;
    let c = svc
        .store
        .create_collection(c)
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to create collection."))?;
    Ok(to_json(&c))
}

/// Changes collection `name` by `patch`, a partial document.
pub async fn update(
    svc: &Services,
    caller: &Caller,
    name: &str,
    patch: Value,
) -> ServiceResult<Value> {
    caller.require_superuser()?;
    let schema = svc.store.schema();
    let old = schema.find(name).ok_or_else(ServiceError::not_found)?;
    // A PATCH carries only what changes: merge it over the current document (secrets
    // left out of both are kept from the stored one by validation).
    let mut doc = to_json(old);
    merge(&mut doc, patch);
    let c = parse_collection(doc)?;
    let (c, dropped) = svc
        .store
        .update_collection_dropping_files(name, c)
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to update collection."))?;
    // The files of removed file fields go once the change committed.
    crate::files::delete_dropped(svc, &dropped).await;
    crate::record_caching::follow_collections(svc, &schema).await;
    Ok(to_json(&c))
}

/// Merges `patch` into `base` as PocketBase decodes a PATCH over the stored collection:
/// objects key by key, recursively (`{"oauth2": {"enabled": false}}` keeps the
/// providers); anything else, arrays included, replaces what was there.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                match base.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

pub async fn delete(svc: &Services, caller: &Caller, name: &str) -> ServiceResult<()> {
    caller.require_superuser()?;
    let before = svc.store.schema();
    let dropped = svc
        .store
        .delete_collection(name)
        .await
        .map_err(|e| match e {
            // System collections and collections others depend on: PocketBase's plain refusal.
            basalt_store::StoreError::Forbidden(detail) => {
                tracing::debug!(%detail, "collection delete refused");
                ServiceError::bad_request("Failed to delete collection.")
            }
            e => ServiceError::from_store(e, "Failed to delete collection."),
        })?;
    // Its files go once the deletion committed.
    crate::files::delete_dropped(svc, &dropped).await;
    crate::record_caching::follow_collections(svc, &before).await;
    Ok(())
}

/// Deletes every record of collection `name`, and (after the commit) their files and
/// those of the records its cascades deleted elsewhere.
pub async fn truncate(svc: &Services, caller: &Caller, name: &str) -> ServiceResult<()> {
    caller.require_superuser()?;
    let dropped = svc
        .store
        .truncate_collection(name)
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to truncate collection."))?;
    crate::files::delete_dropped(svc, &dropped).await;
    Ok(())
}

/// Creates or replaces the collections of `docs` (`None`: none were given), deleting
/// the others when `delete_missing`.
pub async fn import(
    svc: &Services,
    caller: &Caller,
    docs: Option<Vec<Value>>,
    delete_missing: bool,
) -> ServiceResult<()> {
    caller.require_superuser()?;
    let Some(docs) = docs else {
        return Err(ServiceError::bad_request("Failed to import collections.").with_data(json!({"collections": {"code": "validation_required", "message": "Cannot be blank."}})));
    };
    let cols = docs
        .into_iter()
        .map(parse_collection)
        .collect::<ServiceResult<Vec<_>>>()?;
    let before = svc.store.schema();
    let dropped = svc
        .store
        .import_collections(cols, delete_missing)
        .await
        .map_err(|e| ServiceError::from_store(e, "Failed to import collections."))?;
    // The files of the file fields and collections it removed go once it committed.
    crate::files::delete_dropped(svc, &dropped).await;
    crate::record_caching::follow_collections(svc, &before).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge;

    #[test]
    fn a_patch_merges_objects_and_replaces_arrays_and_scalars() {
        let mut doc = json!({"name": "users", "listRule": "x", "fields": [1, 2],
            "oauth2": {"enabled": true, "providers": [{"name": "github"}], "mappedFields": {"name": "n"}}});
        merge(
            &mut doc,
            json!({"listRule": null, "fields": [3], "oauth2": {"enabled": false, "mappedFields": {"avatarURL": "a"}}}),
        );
        assert_eq!(
            doc,
            json!({"name": "users", "listRule": null, "fields": [3],
                "oauth2": {"enabled": false, "providers": [{"name": "github"}],
                    "mappedFields": {"name": "n", "avatarURL": "a"}}})
        );
    }
}
