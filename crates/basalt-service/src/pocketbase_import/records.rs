//! One collection's records: read from PocketBase's table a page at a time, given their
//! fields' shapes (JSON text parsed for json and multi-valued fields), their files copied
//! into storage, written with `WriteOp::Import` in one transaction per page, then counted
//! and sampled (checksums of source and stored records) for the report.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use basalt_files::{ObjectKey, Storage};
use basalt_schema::record::{constraint_errors, prepare_import};
use basalt_schema::{Collection, FieldKind, RequestInfo};
use basalt_store::{Access, ListQuery, PocketBaseDb, Store, StoreError, WriteOp};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{ImportError, ImportReport, PAGE, Skipped, describe_store_error, describe_validation};

/// Records compared by checksum per collection.
const SAMPLES: usize = 5;
/// The superuser PocketBase makes for its first-run installer link and deletes once a
/// real one exists.
const INSTALLER_EMAIL: &str = "__pbinstaller@example.com";
/// Constraint warnings listed per collection (the rest counted).
const WARNINGS_LISTED: usize = 10;

/// One collection's line of the verification report.
#[derive(Debug, Clone)]
pub struct CollectionReport {
    pub name: String,
    /// Rows in PocketBase's table.
    pub source: u64,
    /// Records of the collection in Basalt after the import.
    pub target: u64,
    /// Records written by this run.
    pub imported: u64,
    /// Records sampled, and how many of them are stored exactly as read.
    pub sampled: usize,
    pub sample_matches: usize,
    /// SHA-256 over the sampled source records, first 16 hex digits.
    pub sample_checksum: String,
}

/// Where a collection's rows come from: PocketBase's directory, its collection id and name.
pub(super) type From<'a> = (&'a Path, &'a str, &'a str);

#[allow(clippy::too_many_arguments)]
pub(super) async fn import_collection(
    store: &Store,
    db: &PocketBaseDb,
    storage: &dyn Storage,
    (dir, source_id, source_name): From<'_>,
    target: &Arc<Collection>,
    moved: &HashMap<String, String>,
    report: &mut ImportReport,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<CollectionReport, ImportError> {
    let total = tokio::task::block_in_place(|| db.count(source_name))?;
    let columns = tokio::task::block_in_place(|| db.columns(source_name))?;
    let mut line = CollectionReport {
        name: target.name.clone(),
        source: total,
        target: 0,
        imported: 0,
        sampled: 0,
        sample_matches: 0,
        sample_checksum: String::new(),
    };
    for col in &columns {
        if target.field(col).is_none()
            && !report
                .skipped
                .iter()
                .any(|s| s.what.starts_with(&format!("{source_name}.{col}")))
        {
            report.skipped.push(Skipped::new(
                format!("{source_name}.{col}"),
                "a column with no field in the collection: its values are left out",
            ));
        }
    }
    let mut warned = 0usize;
    let mut samples: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut after = String::new();
    let now = basalt_schema::value::now_string();
    loop {
        let rows = tokio::task::block_in_place(|| db.page(source_name, &after, PAGE))?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut ops = Vec::with_capacity(rows.len());
        let mut unmet: Vec<(String, String)> = Vec::new();
        for row in &rows {
            let id = row
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if target.name == "_superusers"
                && row.get("email").and_then(Value::as_str) == Some(INSTALLER_EMAIL)
            {
                report.skipped.push(Skipped::new(
                    format!("record _superusers/{id}"),
                    "PocketBase's temporary installer account (no one knows its password)",
                ));
                continue;
            }
            let mut input = shaped(target, row, moved);
            copy_files(storage, dir, source_id, target, &id, &mut input, report).await;
            match prepare_import(target, &input, &now) {
                Ok(prepared) => {
                    let errs = constraint_errors(target, &prepared);
                    if !errs.is_empty() {
                        unmet.push((id.clone(), describe_validation(&errs)));
                    }
                    if samples.len() < SAMPLES {
                        samples.push((id.clone(), prepared));
                    }
                }
                Err(e) => {
                    report.skipped.push(Skipped::new(
                        format!("record {}/{id}", target.name),
                        describe_validation(&e),
                    ));
                    continue;
                }
            }
            ops.push(WriteOp::Import {
                collection: target.clone(),
                record: input,
            });
        }
        line.imported += write_page(store, ops, &target.name, report).await?;
        // Only records that were written are compared with what is stored, or named
        // as kept.
        let written = |id: &str| {
            let what = format!("record {}/{id}", target.name);
            !report.skipped.iter().rev().any(|s| s.what == what)
        };
        samples.retain(|(id, _)| written(id));
        for (id, msg) in unmet.into_iter().filter(|(id, _)| written(id)) {
            if warned < WARNINGS_LISTED {
                report.warnings.push(format!(
                    "{}/{id} kept, though it does not meet its fields' constraints now: {msg}",
                    target.name
                ));
            }
            warned += 1;
        }
        progress(&format!(
            "{}: {}/{} records",
            target.name, line.imported, total
        ));
    }
    if warned > WARNINGS_LISTED {
        report.warnings.push(format!(
            "{}: {} more records do not meet their fields' constraints now",
            target.name,
            warned - WARNINGS_LISTED
        ));
    }
    line.target = count(store, target).await?;
    verify_samples(store, target, &samples, &mut line).await?;
    Ok(line)
}

/// The row's values in their fields' shapes: json and multi-valued fields are JSON text
/// in PocketBase's table; collection references follow collections kept under another id.
fn shaped(
    target: &Collection,
    row: &Map<String, Value>,
    moved: &HashMap<String, String>,
) -> Map<String, Value> {
    let mut input = Map::new();
    for f in &target.fields {
        let Some(v) = row.get(&f.name) else {
            continue;
        };
        let parse = matches!(f.kind, FieldKind::Json(_)) || f.is_multiple();
        let v = match v {
            Value::String(s) if parse => {
                if s.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(s).unwrap_or_else(|_| v.clone())
                }
            }
            other => other.clone(),
        };
        let v = match (f.name.as_str(), &v) {
            ("collectionRef", Value::String(s)) if target.name == "_externalAuths" => {
                Value::String(moved.get(s).cloned().unwrap_or_else(|| s.clone()))
            }
            _ => v,
        };
        input.insert(f.name.clone(), v);
    }
    input
}

/// Copies the files `input` names from PocketBase's `storage/` (a file already stored
/// with the same size is left as it is); a name whose file is missing or unsafe is
/// dropped from the record and reported.
async fn copy_files(
    storage: &dyn Storage,
    dir: &Path,
    source_id: &str,
    target: &Collection,
    id: &str,
    input: &mut Map<String, Value>,
    report: &mut ImportReport,
) {
    for f in target
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::File(_)))
    {
        let names: Vec<String> = match input.get(&f.name) {
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => continue,
        };
        let mut kept = Vec::new();
        for name in names {
            match copy_one(storage, dir, source_id, &target.id, id, &name).await {
                Ok(copied) => {
                    if copied {
                        report.files_copied += 1;
                    } else {
                        report.files_present += 1;
                    }
                    kept.push(Value::String(name));
                }
                Err(reason) => report.skipped.push(Skipped::new(
                    format!("file {}/{id}/{name}", target.name),
                    reason,
                )),
            }
        }
        let v = if f.is_multiple() {
            Value::Array(kept)
        } else {
            kept.pop().unwrap_or(Value::String(String::new()))
        };
        input.insert(f.name.clone(), v);
    }
}

async fn copy_one(
    storage: &dyn Storage,
    dir: &Path,
    source_id: &str,
    target_id: &str,
    id: &str,
    name: &str,
) -> Result<bool, String> {
    // The source path is built only from names that make a valid key.
    ObjectKey::file(source_id, id, name).map_err(|_| "not a safe file name".to_string())?;
    let key =
        ObjectKey::file(target_id, id, name).map_err(|_| "not a safe file name".to_string())?;
    let path = dir.join("storage").join(source_id).join(id).join(name);
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|_| format!("missing from {}", dir.join("storage").display()))?;
    if let Ok(existing) = storage.head(&key).await
        && existing.size == meta.len()
    {
        return Ok(false);
    }
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| format!("cannot be read: {e}"))?;
    storage
        .put(&key, &mut file, u64::MAX)
        .await
        .map_err(|e| format!("cannot be stored: {e}"))?;
    Ok(true)
}

/// Writes one page in one transaction; a record the store refuses is reported and the
/// rest written without it. Answers how many were written.
async fn write_page(
    store: &Store,
    mut ops: Vec<WriteOp>,
    name: &str,
    report: &mut ImportReport,
) -> Result<u64, ImportError> {
    while !ops.is_empty() {
        match store
            .write(ops.clone(), Arc::new(RequestInfo::default()))
            .await
        {
            Ok(done) => return Ok(done.len() as u64),
            // Only a record's own refusal skips it; anything else stops the import.
            Err(StoreError::Batch { index, source })
                if index < ops.len()
                    && matches!(
                        *source,
                        StoreError::Validation(_) | StoreError::Forbidden(_)
                    ) =>
            {
                let op = ops.remove(index);
                report.skipped.push(Skipped::new(
                    format!("record {name}/{}", import_id(&op)),
                    describe_store_error(&source),
                ));
            }
            Err(e @ (StoreError::Validation(_) | StoreError::Forbidden(_))) if ops.len() == 1 => {
                let op = ops.remove(0);
                report.skipped.push(Skipped::new(
                    format!("record {name}/{}", import_id(&op)),
                    describe_store_error(&e),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(0)
}

fn import_id(op: &WriteOp) -> String {
    match op {
        WriteOp::Import { record, .. } => record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

async fn count(store: &Store, c: &Arc<Collection>) -> Result<u64, ImportError> {
    let page = store
        .list_records(ListQuery {
            collection: c.clone(),
            filter: None,
            access: Access::Unrestricted,
            sort: Vec::new(),
            author: basalt_store::Author::Server,
            page: 1,
            per_page: 1,
            skip_total: false,
            request: Arc::new(RequestInfo::default()),
        })
        .await?;
    Ok(page.total_items.unwrap_or_default())
}

fn checksum(records: &[&Map<String, Value>]) -> String {
    let mut h = Sha256::new();
    for r in records {
        // serde_json's maps keep keys sorted: the text is canonical.
        h.update(Value::Object((*r).clone()).to_string().as_bytes());
        h.update(b"\n");
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn verify_samples(
    store: &Store,
    c: &Arc<Collection>,
    samples: &[(String, Map<String, Value>)],
    line: &mut CollectionReport,
) -> Result<(), ImportError> {
    let ids = samples.iter().map(|(id, _)| id.clone()).collect();
    let stored = store
        .get_records(
            c,
            ids,
            Access::Unrestricted,
            Arc::new(RequestInfo::default()),
        )
        .await?;
    line.sampled = samples.len();
    line.sample_matches = samples
        .iter()
        .filter(|(id, want)| {
            stored
                .iter()
                .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
                .is_some_and(|got| checksum(&[got]) == checksum(&[want]))
        })
        .count();
    let all: Vec<&Map<String, Value>> = samples.iter().map(|(_, r)| r).collect();
    line.sample_checksum = checksum(&all);
    Ok(())
}

/// Relations that name records the import did not bring (the source's own dangling
/// references, or records left out): listed as warnings.
pub(super) async fn check_relations(
    store: &Store,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let schema = store.schema();
    for line in &report.collections.clone() {
        let Some(c) = schema.by_name(&line.name).cloned() else {
            continue;
        };
        for (id, field) in store.dangling_relations(&c, 20).await? {
            report.warnings.push(format!(
                "{}/{id}: relation {field} names a record that does not exist",
                c.name
            ));
        }
    }
    Ok(())
}
