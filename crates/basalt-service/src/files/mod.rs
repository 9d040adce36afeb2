//! Files of records: where they are stored (the [`Files`] handle the binary hands over),
//! uploads spooled to disk and put into storage before a write, stored files removed only
//! after the write that dropped them committed, and downloads with their checks.

use std::path::PathBuf;
use std::sync::Arc;

pub use basalt_files::Storage;

/// Where record files live, and where uploads wait while a request body is read.
#[derive(Clone, Debug)]
pub struct Files {
    /// The storage every file goes to (local disk under the data dir's `storage/`).
    pub storage: Arc<dyn Storage>,
    /// A directory for anonymous temporary files holding uploads until the body is read;
    /// on the data dir's disk, never a RAM-backed `/tmp`.
    pub spool_dir: PathBuf,
    /// Holds deletions of stored files back while a backup copies them.
    pub deletions: DeletionGate,
}

/// Deletions of stored files pass through here; a backup holds it from before its
/// database snapshot until its last file is copied, so a file some snapshot row names is
/// never deleted before the backup has it. A deletion arriving meanwhile runs once the
/// backup is done, in the background, so the request that caused it is not held up.
#[derive(Clone, Debug, Default)]
pub struct DeletionGate(Arc<tokio::sync::RwLock<()>>);

impl DeletionGate {
    /// Held by a backup: waits for deletions under way, then keeps new ones waiting.
    pub async fn hold(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.0.clone().write_owned().await
    }

    /// Runs `deletion` now, or after the backup holding the gate finished.
    pub(crate) async fn run<F>(&self, deletion: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.0.clone().try_read_owned() {
            Ok(_pass) => deletion.await,
            Err(_) => {
                let gate = self.0.clone();
                tokio::spawn(async move {
                    let _pass = gate.read_owned().await;
                    deletion.await;
                });
            }
        }
    }

    /// Waits until no backup holds the gate and keeps backups waiting until dropped.
    pub(crate) async fn pass(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.0.clone().read_owned().await
    }
}

mod download;
pub mod sweep;
mod upload;

pub use basalt_files::{ByteRange, ByteStream, Download};
pub use download::{FileInput, FileTarget, OpenError, find, open};

use basalt_files::ObjectKey;
use basalt_schema::{Collection, FieldKind};
use serde_json::{Map, Value};

pub(crate) use upload::{Stored, store};
pub use upload::{Upload, body_limit, spool};

/// True when `c` has a file field.
pub fn has_file_fields(c: &Collection) -> bool {
    c.fields
        .iter()
        .any(|f| matches!(f.kind, FieldKind::File(_)))
}

/// Every stored name `record`'s file fields hold.
pub(crate) fn file_names(c: &Collection, record: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for f in &c.fields {
        if !matches!(f.kind, FieldKind::File(_)) {
            continue;
        }
        match record.get(&f.name) {
            Some(Value::String(s)) if !s.is_empty() => out.push(s.clone()),
            Some(Value::Array(a)) => out.extend(
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            _ => {}
        }
    }
    out
}

/// Deletes, after the write that dropped them committed, the files `before` held that
/// `after` no longer holds, with their thumbs. Failures are logged (the orphan sweep
/// collects what is left); the write stands.
pub(crate) async fn delete_dropped(
    svc: &Services,
    c: &Collection,
    record_id: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) {
    let kept = file_names(c, after);
    let mut keys = Vec::new();
    for name in file_names(c, before) {
        if kept.contains(&name) {
            continue;
        }
        keys.extend(ObjectKey::file(&c.id, record_id, &name).map(|k| (k, false)));
        keys.extend(
            ObjectKey::new(format!("{}/{record_id}/thumbs_{name}", c.id)).map(|k| (k, true)),
        );
    }
    if keys.is_empty() {
        return;
    }
    let storage = svc.files.storage.clone();
    svc.files
        .deletions
        .run(async move {
            for (key, prefix) in keys {
                let res = if prefix {
                    storage.delete_prefix(&key).await.map(|_| ())
                } else {
                    storage.delete(&key).await
                };
                if let Err(e) = res {
                    tracing::warn!(%key, error = %e, "deleting a dropped file failed");
                }
            }
        })
        .await;
}

/// Deletes everything stored under `prefix`, after the deletion that orphaned it
/// committed; failures are logged.
pub(crate) async fn delete_prefix(
    svc: &Services,
    prefix: Result<ObjectKey, basalt_files::StorageError>,
) {
    let Ok(prefix) = prefix else {
        return;
    };
    let storage = svc.files.storage.clone();
    svc.files
        .deletions
        .run(async move {
            if let Err(e) = storage.delete_prefix(&prefix).await {
                tracing::warn!(%prefix, error = %e, "deleting the files of a deleted record or collection failed");
            }
        })
        .await;
}

use crate::Services;
