//! `expand`: replaces relation ids with the related records the requester may view
//! (each target collection's view rule applies), nested up to six levels, including
//! back-relations (`comments_via_post`). A hidden relation field is followed for
//! superusers only.

use std::collections::BTreeMap;
use std::sync::Arc;

use basalt_schema::filter::{CompareOp, Expr, Literal, Operand, Path, PathRoot};
use basalt_schema::{Collection, RequestInfo};
use basalt_store::{Author, ListQuery, Record};
use serde_json::{Map, Value};

use super::{Action, access_for, public_record, rule};
use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Services};

const MAX_DEPTH: usize = 6;
const MAX_BACK_RELATIONS: u64 = 1000;

fn ids_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// Whether the requester may follow relation field `f`: a hidden one is the superusers'
/// alone, as its ids are never shown to anyone else (PocketBase expands it for anyone).
fn readable(f: &basalt_schema::Field, caller: &Caller) -> bool {
    !f.hidden || caller.is_superuser()
}

/// Expands `paths` on `out` (the shaped forms of `records`, same order).
#[allow(clippy::too_many_arguments)]
pub(super) fn expand_records<'a>(
    svc: &'a Services,
    c: &'a Arc<Collection>,
    records: &'a [Record],
    out: &'a mut [Map<String, Value>],
    paths: &'a [Vec<String>],
    caller: &'a Caller,
    req: &'a Arc<RequestInfo>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ServiceResult<()>> + Send + 'a>> {
    Box::pin(async move {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        // Group the paths by their first segment.
        let mut groups: BTreeMap<&str, Vec<Vec<String>>> = BTreeMap::new();
        for p in paths {
            if let Some((first, rest)) = p.split_first() {
                let entry = groups.entry(first.as_str()).or_default();
                if !rest.is_empty() {
                    entry.push(rest.to_vec());
                }
            }
        }
        let schema = svc.store.schema();
        for (name, sub) in groups {
            if let Some((src, field_name)) = name.split_once("_via_") {
                let Some(src_c) = schema.by_name(src).cloned() else {
                    continue;
                };
                let Some(field) = src_c
                    .field(field_name)
                    .filter(|f| f.relation_target() == Some(c.id.as_str()))
                    .filter(|f| readable(f, caller))
                else {
                    continue;
                };
                let Some(access) = access_for(&rule(svc, &src_c, Action::View), caller) else {
                    continue;
                };
                let multi = field.is_multiple();
                for (i, r) in records.iter().enumerate() {
                    let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                    let filter = Expr::Compare {
                        left: Operand::Path(Path {
                            root: PathRoot::Record,
                            segments: vec![field.name.clone()],
                            modifier: multi.then_some(basalt_schema::filter::Modifier::Each),
                        }),
                        op: if multi {
                            CompareOp::AnyEq
                        } else {
                            CompareOp::Eq
                        },
                        right: Operand::Literal(Literal::String(id.to_string())),
                    };
                    let page = svc
                        .store
                        .list_records(ListQuery {
                            collection: src_c.clone(),
                            filter: Some(filter),
                            access: access.clone(),
                            sort: vec![],
                            author: Author::Server,
                            page: 1,
                            per_page: MAX_BACK_RELATIONS,
                            skip_total: true,
                            request: req.clone(),
                        })
                        .await
                        .map_err(|e| ServiceError::from_store(e, "Failed to expand."))?;
                    if page.items.is_empty() {
                        continue;
                    }
                    let mut shaped: Vec<Map<String, Value>> = page
                        .items
                        .iter()
                        .map(|x| public_record(&src_c, x, caller))
                        .collect();
                    expand_records(
                        svc,
                        &src_c,
                        &page.items,
                        &mut shaped,
                        &sub,
                        caller,
                        req,
                        depth + 1,
                    )
                    .await?;
                    set_expand(
                        &mut out[i],
                        name,
                        Value::Array(shaped.into_iter().map(Value::Object).collect()),
                    );
                }
                continue;
            }
            let Some(field) = c.field(name).filter(|f| readable(f, caller)) else {
                continue;
            };
            let Some(target_id) = field.relation_target() else {
                continue;
            };
            let Some(target) = schema.by_id(target_id).cloned() else {
                continue;
            };
            let Some(access) = access_for(&rule(svc, &target, Action::View), caller) else {
                continue;
            };
            let mut all_ids: Vec<String> = records
                .iter()
                .flat_map(|r| ids_of(r.get(&field.name)))
                .collect();
            all_ids.sort();
            all_ids.dedup();
            if all_ids.is_empty() {
                continue;
            }
            let found = svc
                .store
                .get_records(&target, all_ids, access, req.clone())
                .await
                .map_err(|e| ServiceError::from_store(e, "Failed to expand."))?;
            let mut shaped: Vec<Map<String, Value>> = found
                .iter()
                .map(|x| public_record(&target, x, caller))
                .collect();
            expand_records(
                svc,
                &target,
                &found,
                &mut shaped,
                &sub,
                caller,
                req,
                depth + 1,
            )
            .await?;
            let by_id: BTreeMap<String, Value> = found
                .iter()
                .zip(shaped)
                .map(|(r, s)| {
                    (
                        r.get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        Value::Object(s),
                    )
                })
                .collect();
            for (i, r) in records.iter().enumerate() {
                let ids = ids_of(r.get(&field.name));
                let items: Vec<Value> =
                    ids.iter().filter_map(|id| by_id.get(id).cloned()).collect();
                if items.is_empty() {
                    continue;
                }
                let v = if field.is_multiple() {
                    Value::Array(items)
                } else {
                    items.into_iter().next().unwrap_or(Value::Null)
                };
                set_expand(&mut out[i], &field.name, v);
            }
        }
        Ok(())
    })
}

fn set_expand(record: &mut Map<String, Value>, key: &str, v: Value) {
    let expand = record
        .entry("expand")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = expand {
        m.insert(key.to_string(), v);
    }
}
