//! Files of records: where they are stored (the [`Files`] handle the binary hands over),
//! uploads spooled to disk and put into storage before a write, stored files removed only
//! after the write that dropped them committed, and downloads with their checks.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use basalt_files::Storage;
use basalt_files::{S3Settings, S3Storage};

/// Where record files live, and where uploads wait while a request body is read. Cheap
/// to clone (the storage choice is shared).
#[derive(Clone)]
pub struct Files {
    /// The data dir's `storage/`: used while the settings' `s3` section is off.
    local: Arc<dyn Storage>,
    /// The storage new files go to and files are read from, as the settings name it.
    active: Arc<RwLock<Active>>,
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

struct Active {
    storage: Arc<dyn Storage>,
    /// The S3 settings `storage` was built from; `None` for local storage.
    s3: Option<S3Settings>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s3 = self.active.read().map(|a| a.s3.is_some()).unwrap_or(false);
        f.debug_struct("Files")
            .field("s3", &s3)
            .field("spool_dir", &self.spool_dir)
            .finish()
    }
}

impl Files {
    /// Files in `local` (the data dir's storage) until the settings name S3
    /// ([`apply_settings`]).
    pub fn new(local: Arc<dyn Storage>, spool_dir: PathBuf) -> Files {
        Files {
            active: Arc::new(RwLock::new(Active {
                storage: local.clone(),
                s3: None,
            })),
            local,
            spool_dir,
            deletions: DeletionGate::default(),
        }
    }

    /// The storage the settings name now. An operation keeps the handle it took, so a
    /// settings change never splits one upload or deletion across two storages.
    pub fn storage(&self) -> Arc<dyn Storage> {
        match self.active.read() {
            Ok(a) => a.storage.clone(),
            Err(poisoned) => poisoned.into_inner().storage.clone(),
        }
    }

    /// Switches to the storage `s3` names (local storage for `None`); a client is built
    /// only when the S3 settings changed.
    fn switch(&self, s3: Option<S3Settings>) -> Result<(), basalt_files::StorageError> {
        let mut active = match self.active.write() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        if active.s3 == s3 {
            return Ok(());
        }
        let storage: Arc<dyn Storage> = match &s3 {
            Some(settings) => Arc::new(S3Storage::new(settings)?),
            None => self.local.clone(),
        };
        *active = Active { storage, s3 };
        Ok(())
    }
}

/// The S3 settings a section of the settings document (`s3`, `backups.s3`) holds, when
/// it is enabled.
pub(crate) fn s3_settings(section: &serde_json::Value) -> Option<S3Settings> {
    if section["enabled"] != serde_json::Value::Bool(true) {
        return None;
    }
    let text = |k: &str| section[k].as_str().unwrap_or_default().to_string();
    Some(S3Settings {
        bucket: text("bucket"),
        region: text("region"),
        endpoint: text("endpoint"),
        access_key: text("accessKey"),
        secret: text("secret"),
        force_path_style: section["forcePathStyle"] == serde_json::Value::Bool(true),
    })
}

/// Points record files and backups at the storage the saved settings name (their `s3`
/// and `backups.s3` sections): called once at start, and by every settings update.
/// Files and backups already stored elsewhere stay where they are, as in PocketBase:
/// nothing is copied or moved.
pub async fn apply_settings(svc: &Services) -> ServiceResult<()> {
    let settings = crate::settings::load(svc).await?;
    use_settings(svc, &settings)?;
    crate::settings::use_backup_settings(svc, &settings)
}

pub(crate) fn use_settings(svc: &Services, settings: &serde_json::Value) -> ServiceResult<()> {
    svc.files.switch(s3_settings(&settings["s3"])).map_err(|e| {
        tracing::error!(error = %e, "the s3 settings cannot be used");
        ServiceError::internal()
    })
}

mod download;
pub mod sweep;
mod upload;

pub use basalt_files::{ByteRange, ByteStream, Download};
pub use download::{FileInput, FileTarget, OpenError, find, open};

use basalt_files::ObjectKey;
use basalt_schema::{Collection, FieldKind};
use basalt_store::{Dropped, DroppedFiles};

pub(crate) use upload::{Stored, store};
pub use upload::{Upload, body_limit, spool, spool_unchecked};

/// True when `c` has a file field.
pub fn has_file_fields(c: &Collection) -> bool {
    c.fields
        .iter()
        .any(|f| matches!(f.kind, FieldKind::File(_)))
}

/// Runs `ops` in one transaction ([`basalt_store::Store::write`]) and, once it committed,
/// deletes the files it left without a record: those of deleted records (cascades
/// included) and names updates dropped. Every record write goes through here, so no
/// path forgets them.
pub(crate) async fn write(
    svc: &Services,
    ops: Vec<basalt_store::WriteOp>,
    req: Arc<basalt_schema::RequestInfo>,
) -> Result<Vec<basalt_store::WriteResult>, basalt_store::StoreError> {
    let (results, dropped) = svc.store.write_dropping_files(ops, req).await?;
    delete_dropped(svc, &dropped).await;
    Ok(results)
}

/// Deletes `dropped` files with their thumbs, after the write that dropped them
/// committed (through the backups' [`DeletionGate`]). Failures are logged (the orphan
/// sweep collects what is left); the write stands.
pub(crate) async fn delete_dropped(svc: &Services, dropped: &[DroppedFiles]) {
    if dropped.is_empty() {
        return;
    }
    let mut keys = Vec::new();
    for d in dropped {
        match &d.what {
            Dropped::Record => keys
                .push(ObjectKey::record_prefix(&d.collection_id, &d.record_id).map(|k| (k, true))),
            Dropped::Collection => {
                keys.push(ObjectKey::collection_prefix(&d.collection_id).map(|k| (k, true)))
            }
            Dropped::Names(names) => {
                for name in names {
                    keys.push(
                        ObjectKey::file(&d.collection_id, &d.record_id, name).map(|k| (k, false)),
                    );
                    keys.push(
                        ObjectKey::new(format!(
                            "{}/{}/thumbs_{name}",
                            d.collection_id, d.record_id
                        ))
                        .map(|k| (k, true)),
                    );
                }
            }
        }
    }
    let keys: Vec<_> = keys.into_iter().flatten().collect();
    if keys.is_empty() {
        return;
    }
    let storage = svc.files.storage();
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

use crate::Services;
use crate::error::{ServiceError, ServiceResult};
