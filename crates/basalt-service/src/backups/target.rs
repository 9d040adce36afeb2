//! Where backups are kept, as PocketBase keeps them: the data dir's `backups/` folder, or
//! the `backups.s3` bucket when that section is enabled (each backup an object named by
//! its key at the bucket's root). A backup is always made and checked as a local file
//! first; [`Target::keep`] then links it into the folder or streams it to the bucket, and
//! [`Target::fetch`] brings a bucket's backup to a local file for a restore. Bodies move
//! in bounded chunks both ways, whatever a backup's size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use basalt_files::{Download, LocalStorage, ObjectKey, S3Storage, Storage, StorageError};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::{BackupInfo, PartFile, list_dir, sync_dir, valid_key};
use crate::error::{ErrorKind, ServiceError, ServiceResult};

/// The storage backups go to now.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Local(PathBuf),
    S3(Arc<S3Storage>),
}

/// A bucket that cannot be reached: a 503 saying so; the detail goes to the log.
fn outage(what: &str, key: &str, e: StorageError) -> ServiceError {
    tracing::error!(backup = key, error = %e, "{what} on the backups S3 storage failed");
    ServiceError::new(
        ErrorKind::Unavailable,
        "The backups S3 storage cannot be reached. Try again later.",
    )
}

fn key_of(key: &str) -> Option<ObjectKey> {
    valid_key(key).then(|| ObjectKey::new(key).ok()).flatten()
}

impl Target {
    /// Backup `key` as listed, or `None` when there is none by that name.
    pub async fn find(&self, key: &str) -> ServiceResult<Option<BackupInfo>> {
        let Some(object) = key_of(key) else {
            return Ok(None);
        };
        match self {
            Target::Local(dir) => {
                let p = dir.join(key);
                Ok(std::fs::metadata(&p)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| BackupInfo {
                        key: key.to_string(),
                        size: m.len(),
                        modified: m.modified().unwrap_or(UNIX_EPOCH),
                    }))
            }
            Target::S3(s3) => match s3.head(&object).await {
                Ok(m) => Ok(Some(BackupInfo {
                    key: key.to_string(),
                    size: m.size,
                    modified: m.last_modified,
                })),
                Err(StorageError::NotFound(_)) => Ok(None),
                Err(e) => Err(outage("looking up a backup", key, e)),
            },
        }
    }

    /// Every backup, by key.
    pub async fn list(&self) -> ServiceResult<Vec<BackupInfo>> {
        match self {
            Target::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || list_dir(&dir))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
                    .map_err(|e| {
                        tracing::error!(error = %e, "listing backups failed");
                        ServiceError::bad_request("Failed to load backups filesystem.")
                    })
            }
            Target::S3(s3) => {
                // A backups bucket holds a handful of zips: collected whole.
                let all: Vec<_> = s3
                    .list_all()
                    .try_collect()
                    .await
                    .map_err(|e| outage("listing backups", "", e))?;
                // Keys in folders cannot be named by `/api/backups/{key}`: not backups.
                Ok(all
                    .into_iter()
                    .filter(|m| valid_key(m.key.as_str()))
                    .map(|m| BackupInfo {
                        key: m.key.as_str().to_string(),
                        size: m.size,
                        modified: m.last_modified,
                    })
                    .collect())
            }
        }
    }

    /// Keeps the finished local file `file` as backup `key`; `Ok(false)` when the name
    /// is taken (nothing is overwritten).
    pub async fn keep(&self, key: &str, file: &Path) -> ServiceResult<bool> {
        let object =
            key_of(key).ok_or_else(|| ServiceError::bad_request("Invalid backup name."))?;
        match self {
            Target::Local(dir) => {
                let (file, out) = (file.to_path_buf(), dir.join(key));
                let linked = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    // A link fails when the name was taken meanwhile.
                    std::fs::hard_link(&file, &out)?;
                    sync_dir(out.parent().unwrap_or(Path::new(".")))
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                match linked {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => {
                        tracing::error!(backup = key, error = %e, "keeping a backup failed");
                        Err(ServiceError::internal())
                    }
                }
            }
            Target::S3(s3) => {
                if self.find(key).await?.is_some() {
                    return Ok(false);
                }
                let mut body = tokio::fs::File::open(file).await.map_err(|e| {
                    tracing::error!(backup = key, error = %e, "opening a backup failed");
                    ServiceError::internal()
                })?;
                s3.put(&object, &mut body, u64::MAX)
                    .await
                    .map_err(|e| outage("uploading a backup", key, e))?;
                Ok(true)
            }
        }
    }

    /// Opens backup `key` for reading.
    pub async fn open(&self, key: &str) -> ServiceResult<Download> {
        let object = key_of(key).ok_or_else(ServiceError::not_found)?;
        let got = match self {
            Target::Local(dir) => LocalStorage::new(dir.clone()).get(&object, None).await,
            Target::S3(s3) => s3.get(&object, None).await,
        };
        match got {
            Ok(d) => Ok(d),
            Err(StorageError::NotFound(_)) => Err(ServiceError::not_found()),
            Err(e) if matches!(self, Target::S3(_)) => Err(outage("reading a backup", key, e)),
            Err(_) => Err(ServiceError::not_found()),
        }
    }

    /// Deletes backup `key`; `Ok(false)` when there is none by that name.
    pub async fn remove(&self, key: &str) -> ServiceResult<bool> {
        let Some(object) = key_of(key) else {
            return Ok(false);
        };
        match self {
            Target::Local(dir) => {
                let path = dir.join(key);
                if !path.is_file() {
                    return Ok(false);
                }
                if let Err(e) = tokio::fs::remove_file(&path).await {
                    tracing::warn!(backup = key, error = %e, "deleting a backup failed");
                    return Ok(false);
                }
                let dir = dir.clone();
                let _ = tokio::task::spawn_blocking(move || sync_dir(&dir)).await;
                Ok(true)
            }
            Target::S3(s3) => {
                if self.find(key).await?.is_none() {
                    return Ok(false);
                }
                s3.delete(&object)
                    .await
                    .map_err(|e| outage("deleting a backup", key, e))?;
                Ok(true)
            }
        }
    }

    /// Backup `key` as a local file (downloaded into `spool` from a bucket, removed when
    /// the answer is dropped), or `None` when there is none by that name.
    pub async fn fetch(&self, key: &str, spool: &Path) -> ServiceResult<Option<Fetched>> {
        match self {
            Target::Local(dir) => Ok(self.find(key).await?.map(|_| Fetched::Kept(dir.join(key)))),
            Target::S3(_) => {
                if self.find(key).await?.is_none() {
                    return Ok(None);
                }
                let mut download = self.open(key).await?;
                let failed = |e: std::io::Error| {
                    tracing::error!(backup = key, error = %e, "spooling a backup failed");
                    ServiceError::internal()
                };
                tokio::fs::create_dir_all(spool).await.map_err(failed)?;
                let path = spool.join(format!(".restore-{}.zip", basalt_schema::id::random_id(10)));
                let part = PartFile(path.clone());
                let mut file = tokio::fs::File::create_new(&path).await.map_err(failed)?;
                while let Some(chunk) = download.body.next().await {
                    let chunk = chunk.map_err(|e| outage("downloading a backup", key, e))?;
                    file.write_all(&chunk).await.map_err(failed)?;
                }
                file.sync_all().await.map_err(failed)?;
                Ok(Some(Fetched::Spooled(part)))
            }
        }
    }
}

/// A backup as a local file, for a restore.
pub(crate) enum Fetched {
    /// The backup in the backups folder itself.
    Kept(PathBuf),
    /// A downloaded copy, removed on drop.
    Spooled(PartFile),
}

impl Fetched {
    pub fn path(&self) -> &Path {
        match self {
            Fetched::Kept(p) | Fetched::Spooled(PartFile(p)) => p,
        }
    }
}
