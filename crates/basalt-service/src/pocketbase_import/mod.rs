//! `basalt import pocketbase`: a PocketBase (v0.23+) data directory — `data.db` and
//! `storage/` — brought into a Basalt store through the store's own writes, so every
//! invariant holds: collections (`Store::import_collections`, ids kept), records
//! (`WriteOp::Import`: ids, autodates, bcrypt password hashes and file names kept; a
//! record already there is replaced, so a second run changes nothing), superusers and
//! OAuth2 links, the settings (decrypted with PocketBase's `--encryptionEnv` key), and
//! the files of file fields. Rows are read and written a page at a time, so memory does
//! not grow with the database. PocketBase's tokens are not honoured: users sign in again
//! (their passwords work; a bcrypt hash becomes argon2id at the next sign-in).
//!
//! The caller (the binary) makes sure neither PocketBase nor a Basalt server has either
//! directory open.

mod collections;
mod records;
mod settings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use basalt_files::Storage;
use basalt_store::{PocketBaseDb, Store};
use serde_json::Value;

pub use records::CollectionReport;

/// Records read and written per transaction.
pub const PAGE: usize = 500;

/// Why the import stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

impl ImportError {
    pub(crate) fn new(msg: impl Into<String>) -> ImportError {
        ImportError(msg.into())
    }
}

impl From<basalt_store::StoreError> for ImportError {
    fn from(e: basalt_store::StoreError) -> ImportError {
        ImportError(describe_store_error(&e))
    }
}

/// What was left out, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

impl Skipped {
    pub(crate) fn new(what: impl Into<String>, reason: impl Into<String>) -> Skipped {
        Skipped {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportSource {
    /// PocketBase's data directory (`pb_data`).
    pub dir: PathBuf,
    /// PocketBase's `--encryptionEnv` key, when its settings are encrypted.
    pub encryption_key: Option<String>,
}

/// The verification report.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub collections: Vec<CollectionReport>,
    /// Collection documents imported.
    pub collections_imported: usize,
    pub files_copied: u64,
    pub files_present: u64,
    pub settings_imported: bool,
    /// Left out: fields, options, settings, records, files.
    pub skipped: Vec<Skipped>,
    /// Kept, but worth a look: records that do not meet their fields' constraints now,
    /// relations naming missing records, collections kept under another id.
    pub warnings: Vec<String>,
}

/// A human-readable message of a store error (field errors spelled out).
pub(crate) fn describe_store_error(e: &basalt_store::StoreError) -> String {
    match e {
        basalt_store::StoreError::Validation(v) => describe_validation(v),
        basalt_store::StoreError::Batch { source, .. } => describe_store_error(source),
        other => other.to_string(),
    }
}

pub(crate) fn describe_validation(v: &basalt_schema::ValidationErrors) -> String {
    let data = crate::validation_data(v);
    let mut parts = Vec::new();
    if let Some(o) = data.as_object() {
        for (k, e) in o {
            parts.push(format!(
                "{k}: {}",
                e["message"].as_str().unwrap_or("invalid")
            ));
        }
    }
    if parts.is_empty() {
        v.to_string()
    } else {
        parts.join("; ")
    }
}

/// Runs the whole import into `store`, files into `storage`; `progress` receives a line
/// per step and per page of records.
pub async fn run(
    store: &Store,
    storage: Arc<dyn Storage>,
    source: &ImportSource,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<ImportReport, ImportError> {
    let db_path = source.dir.join("data.db");
    if !db_path.is_file() {
        return Err(ImportError::new(format!(
            "{} has no data.db: not a PocketBase data directory",
            source.dir.display()
        )));
    }
    let db = tokio::task::block_in_place(|| PocketBaseDb::open(&db_path))?;
    let mut report = ImportReport::default();

    // Settings first: a wrong encryption key stops the import before anything is written.
    let params = tokio::task::block_in_place(|| db.params())?;
    let mut settings_doc = None;
    for p in &params {
        let id = p.get("id").and_then(Value::as_str).unwrap_or_default();
        let raw = p.get("value").cloned().unwrap_or(Value::Null);
        if id == "settings" {
            let doc = settings::decode(&raw, source.encryption_key.as_deref())?;
            settings_doc = Some(settings::keep_known(
                &doc,
                &crate::settings::defaults(),
                &mut report.skipped,
            ));
        } else {
            report.skipped.push(Skipped::new(
                format!("param {id}"),
                "PocketBase-internal state Basalt does not use",
            ));
        }
    }

    progress("reading collections");
    let rows = tokio::task::block_in_place(|| db.collections())?;
    // A collection the target holds under the same name but another id keeps its id;
    // relations pointing at it follow.
    let schema = store.schema();
    let mut moved = HashMap::new();
    for row in &rows {
        let (Some(id), Some(name)) = (
            row.get("id").and_then(Value::as_str),
            row.get("name").and_then(Value::as_str),
        ) else {
            continue;
        };
        if let Some(existing) = schema.by_name(name)
            && existing.id != id
            && schema.by_id(id).is_none()
        {
            report.warnings.push(format!(
                "collection {name} keeps its id {} here (PocketBase's: {id})",
                existing.id
            ));
            moved.insert(id.to_string(), existing.id.clone());
        }
    }
    let sources = collections::read(&rows, &moved, &mut report.skipped);
    let docs: Vec<_> = sources
        .iter()
        .filter_map(|s| s.collection.clone())
        .collect();
    report.collections_imported = docs.len();
    store.import_collections(docs, false).await.map_err(|e| {
        ImportError::new(format!(
            "importing the collections: {}",
            describe_store_error(&e)
        ))
    })?;
    progress(&format!(
        "{} collections imported",
        report.collections_imported
    ));

    if let Some(doc) = settings_doc {
        let mut saved = store.get_param("settings").await?.unwrap_or(Value::Null);
        crate::settings::merge(&mut saved, doc);
        store.set_param("settings", saved).await?;
        report.settings_imported = true;
        progress("settings imported");
        if source_uses_s3(&params, source.encryption_key.as_deref()) {
            report.warnings.push(
                "PocketBase kept its files in the s3 bucket of its settings: they stay there \
                 and Basalt serves them from it (same keys)"
                    .into(),
            );
        }
    }

    let schema = store.schema();
    for src in &sources {
        if src.system && !collections::SYSTEM_WITH_RECORDS.contains(&src.name.as_str()) {
            let reason = collections::system_skip_reason(&src.name)
                .unwrap_or("a PocketBase system collection Basalt does not have");
            report
                .skipped
                .push(Skipped::new(format!("records of {}", src.name), reason));
            continue;
        }
        if src.is_view {
            continue;
        }
        let target = if src.system {
            schema.by_name(&src.name).cloned()
        } else {
            src.collection
                .as_ref()
                .and_then(|c| schema.by_id(&c.id).cloned())
        };
        let Some(target) = target else {
            continue;
        };
        let r = records::import_collection(
            store,
            &db,
            storage.as_ref(),
            (&source.dir, &src.id, &src.name),
            &target,
            &moved,
            &mut report,
            progress,
        )
        .await?;
        report.collections.push(r);
    }
    records::check_relations(store, &mut report).await?;
    Ok(report)
}

fn source_uses_s3(params: &[serde_json::Map<String, Value>], key: Option<&str>) -> bool {
    params
        .iter()
        .find(|p| p.get("id").and_then(Value::as_str) == Some("settings"))
        .and_then(|p| settings::decode(p.get("value")?, key).ok())
        .is_some_and(|s| s["s3"]["enabled"] == Value::Bool(true))
}
