//! Backups as PocketBase has them (`/api/backups`): zips of a consistent database snapshot
//! and the record files, kept in the data dir's `backups/` folder or, when the settings'
//! `backups.s3` section is enabled, in that bucket ([`target`]); listed, created (by a
//! superuser, by the `backups.cron` schedule or by the CLI), uploaded, downloaded with a
//! superuser's file token, deleted and restored (a backup on S3 is downloaded into the
//! data dir first, then restored the same way).
//!
//! A backup holds file deletions back (the [`crate::files::DeletionGate`]) from before its
//! snapshot until its last file is copied, so every file a snapshot row names is in the zip.
//! A restore is staged whole beside the data ([`restore`]) and marked ready with one
//! rename; the process then restarts and completes it before opening the database, so
//! the data is the whole old state or the whole new one, across a kill -9 at any point.
//! One create or restore runs at a time.

pub mod archive;
pub mod restore;
mod schedule;
mod target;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use basalt_auth::TokenKind;
use basalt_files::{S3Storage, StorageError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;

pub use archive::ArchiveError;
pub use schedule::{AutoBackup, auto_backup};
use target::Target;

use crate::error::{ServiceError, ServiceResult};
use crate::{Caller, Services};

/// The backups folder inside the data dir.
pub const BACKUPS_DIR: &str = "backups";
/// Names of backups the schedule makes (and prunes): PocketBase's prefix.
pub const AUTO_PREFIX: &str = "@auto_pb_backup_";

const BUSY: &str = "Try again later - another backup/restore operation has already been started.";

/// What a create or restore is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Idle,
    Busy,
    /// A restore is staged and marked: the process restarts to complete it.
    Restarting,
}

/// The backups of one data dir; cheap to clone.
#[derive(Clone, Debug)]
pub struct Backups {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data_dir: PathBuf,
    /// Why this deployment makes no backups (its database is not a file of the data dir);
    /// every operation answers it as a 400.
    refused: Option<String>,
    /// The `backups.s3` bucket while that section is enabled.
    s3: RwLock<Option<Arc<S3Storage>>>,
    activity: Mutex<Activity>,
    restart: tokio::sync::watch::Sender<bool>,
}

/// A backup as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

impl BackupInfo {
    /// The modification time as PocketBase writes dates.
    pub fn modified_text(&self) -> String {
        basalt_schema::value::format_datetime(chrono::DateTime::<chrono::Utc>::from(self.modified))
    }
}

/// Marks the backups busy until dropped (unless a restore turned them to restarting).
struct Running<'a>(&'a Backups);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut a) = self.0.inner.activity.lock()
            && *a == Activity::Busy
        {
            *a = Activity::Idle;
        }
    }
}

impl Backups {
    /// The backups of `data_dir` (its `backups/` folder is made on first use).
    pub fn new(data_dir: impl Into<PathBuf>) -> Backups {
        Self::with_refusal(data_dir.into(), None)
    }

    /// Backups that are not made here: every operation (listing included, so a client is
    /// told rather than shown an empty list) answers a 400 with `why`.
    pub fn refused(data_dir: impl Into<PathBuf>, why: impl Into<String>) -> Backups {
        Self::with_refusal(data_dir.into(), Some(why.into()))
    }

    fn with_refusal(data_dir: PathBuf, refused: Option<String>) -> Backups {
        Backups {
            inner: Arc::new(Inner {
                data_dir,
                refused,
                s3: RwLock::new(None),
                activity: Mutex::new(Activity::Idle),
                restart: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// `Err` (a 400 saying why) when backups are not made here.
    pub fn check_supported(&self) -> ServiceResult<()> {
        match &self.inner.refused {
            Some(why) => Err(ServiceError::bad_request(why.clone())),
            None => Ok(()),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.inner.data_dir.join(BACKUPS_DIR)
    }

    /// Keeps backups where the settings document `settings` says: the `backups.s3`
    /// bucket when that section is enabled, the backups folder otherwise. Called at
    /// start and by every settings update; backups already kept elsewhere are not
    /// moved, as in PocketBase.
    pub fn use_settings(&self, settings: &serde_json::Value) -> Result<(), StorageError> {
        let s3 = match crate::files::s3_settings(&settings["backups"]["s3"]) {
            Some(cfg) => Some(Arc::new(S3Storage::new(&cfg)?)),
            None => None,
        };
        if let Ok(mut slot) = self.inner.s3.write() {
            *slot = s3;
        }
        Ok(())
    }

    /// True while backups go to the `backups.s3` bucket.
    pub fn on_s3(&self) -> bool {
        matches!(self.target(), Target::S3(_))
    }

    fn target(&self) -> Target {
        match self.inner.s3.read().ok().and_then(|s| s.clone()) {
            Some(s3) => Target::S3(s3),
            None => Target::Local(self.dir()),
        }
    }

    /// Resolves once a restore was staged: the server should drain, close the database
    /// and restart (the restore completes at start, [`restore::complete_pending`]).
    pub async fn restart_requested(&self) {
        let mut rx = self.inner.restart.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    fn begin(&self) -> ServiceResult<Running<'_>> {
        let mut a = self
            .inner
            .activity
            .lock()
            .map_err(|_| ServiceError::internal())?;
        if *a != Activity::Idle {
            return Err(ServiceError::bad_request(BUSY));
        }
        *a = Activity::Busy;
        Ok(Running(self))
    }

    /// Every backup, by key.
    pub async fn list(&self) -> ServiceResult<Vec<BackupInfo>> {
        self.check_supported()?;
        self.target().list().await
    }

    /// Deletes backup `key`; `Ok(false)` when there is none by that name.
    pub async fn remove(&self, key: &str) -> ServiceResult<bool> {
        self.check_supported()?;
        self.target().remove(key).await
    }

    /// Makes backup `name` now (no caller checks: for the CLI, the schedule and
    /// [`create`], which check a name given by hand with [`check_name`] first). `gate`
    /// holds file deletions back while it runs.
    pub async fn create_now(
        &self,
        name: &str,
        gate: Option<&crate::files::DeletionGate>,
    ) -> ServiceResult<BackupInfo> {
        self.check_supported()?;
        if !valid_key(name) {
            return Err(ServiceError::bad_request("Invalid backup name."));
        }
        let taken = || name_exists("name", "The backup file name is invalid or already exists.");
        let target = self.target();
        if target.find(name).await?.is_some() {
            return Err(taken());
        }
        let _running = self.begin()?;
        let dir = self.dir();
        let tmp = dir.join(format!(".create-{}", basalt_schema::id::random_id(10)));
        let held = match gate {
            Some(g) => Some(g.hold().await),
            None => None,
        };
        let (data_dir, tmp2) = (self.inner.data_dir.clone(), tmp.clone());
        let made = tokio::task::spawn_blocking(move || -> std::io::Result<(PathBuf, u64)> {
            std::fs::create_dir_all(&tmp2)?;
            let snap = tmp2.join("data.db");
            basalt_store::snapshot_database(&data_dir, &snap).map_err(std::io::Error::other)?;
            let part = tmp2.join("backup.zip");
            let size = archive::write(&snap, &data_dir.join(archive::STORAGE_DIR), &part)?;
            Ok((part, size))
        })
        .await;
        // Every file the snapshot names is in the zip: deletions may go on.
        drop(held);
        let made = match made {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => {
                tracing::error!(backup = name, error = %e, "creating a backup failed");
                Err(ServiceError::bad_request("Failed to create backup."))
            }
            Err(e) => {
                tracing::error!(backup = name, error = %e, "the backup task failed");
                Err(ServiceError::internal())
            }
        };
        let kept = match &made {
            Ok((part, _)) => target.keep(name, part).await,
            Err(_) => Ok(true),
        };
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        let (_, size) = made?;
        if !kept? {
            return Err(taken());
        }
        Ok(BackupInfo {
            key: name.to_string(),
            size,
            modified: SystemTime::now(),
        })
    }

    /// Unpacks backup `key` beside the data and marks it ready (no caller checks: for the
    /// CLI and [`restore`]). Afterwards the process must restart (or, offline, call
    /// [`restore::complete_pending`]) to complete it.
    pub async fn stage_restore(&self, key: &str) -> ServiceResult<()> {
        self.check_supported()?;
        let missing = || ServiceError::bad_request("Missing or invalid backup file.");
        if !valid_key(key) {
            return Err(missing());
        }
        let running = self.begin()?;
        // From a bucket the backup is downloaded into the backups folder first (a hidden
        // name, removed once staged), then restored as a local one.
        let fetched = self
            .target()
            .fetch(key, &self.dir())
            .await?
            .ok_or_else(missing)?;
        let (data_dir, path) = (self.inner.data_dir.clone(), fetched.path().to_path_buf());
        let staged = tokio::task::spawn_blocking(move || restore::stage(&data_dir, &path))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the restore task failed");
                ServiceError::internal()
            })?;
        drop(fetched);
        match staged {
            Ok(()) => {
                if let Ok(mut a) = self.inner.activity.lock() {
                    *a = Activity::Restarting;
                }
                drop(running);
                tracing::warn!(backup = key, "restore staged: restarting to complete it");
                self.inner.restart.send_replace(true);
                Ok(())
            }
            Err(ArchiveError::Invalid(why)) => Err(ServiceError::bad_request(format!(
                "The backup file is invalid: {why}."
            ))),
            Err(ArchiveError::Io(e)) => {
                tracing::error!(backup = key, error = %e, "staging a restore failed");
                Err(ServiceError::bad_request("Failed to restore the backup."))
            }
        }
    }
}

/// PocketBase's rule for backup names given by hand: `[a-z0-9_-]+\.zip`, 1 to 150
/// characters.
pub fn check_name(name: &str) -> ServiceResult<()> {
    let len = name.chars().count();
    if !(1..=150).contains(&len) {
        return Err(ServiceError::bad_request(
            "An error occurred while validating the submitted data.",
        )
        .with_data(json!({"name": {"code": "validation_length_out_of_range",
            "message": "The length must be between 1 and 150.", "params": {"max": 150, "min": 1}}})));
    }
    let ok = name.strip_suffix(".zip").is_some_and(|base| {
        !base.is_empty()
            && base
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    });
    if !ok {
        return Err(ServiceError::bad_request(
            "An error occurred while validating the submitted data.",
        )
        .with_data(json!({"name": {"code": "validation_match_invalid", "message": "Must be in a valid format."}})));
    }
    Ok(())
}

fn name_exists(field: &str, message: &str) -> ServiceError {
    ServiceError::bad_request("An error occurred while validating the submitted data.")
        .with_data(json!({field: {"code": "validation_backup_name_exists", "message": message}}))
}

/// A key names a file of the backups folder: one path segment, not hidden (temporary
/// files start with `.`), no `\` or control character.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && !key.starts_with('.')
        && !key.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn list_dir(dir: &Path) -> std::io::Result<Vec<BackupInfo>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(key) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let m = entry.metadata()?;
        if !valid_key(&key) || !m.is_file() {
            continue;
        }
        out.push(BackupInfo {
            key,
            size: m.len(),
            modified: m.modified().unwrap_or(UNIX_EPOCH),
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// PocketBase's default backup name: `pb_backup_{app}_{YYYYMMDDhhmmss}.zip`.
pub fn default_name(prefix: &str, app_name: &str) -> String {
    let mut app: String = app_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    app.truncate(50);
    let ts = chrono::Utc::now().format("%Y%m%d%H%M%S");
    format!("{prefix}{app}_{ts}.zip")
}

async fn app_name(svc: &Services) -> String {
    crate::settings::load(svc)
        .await
        .ok()
        .and_then(|s| s["meta"]["appName"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `GET /api/backups`: every backup (superusers only).
pub async fn list(svc: &Services, caller: &Caller) -> ServiceResult<Vec<BackupInfo>> {
    caller.require_superuser()?;
    svc.backups.list().await
}

/// `POST /api/backups`: a new backup named `name` (PocketBase's default name when empty).
pub async fn create(svc: &Services, caller: &Caller, name: Option<String>) -> ServiceResult<()> {
    caller.require_superuser()?;
    svc.backups.check_supported()?;
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => default_name("pb_backup_", &app_name(svc).await),
    };
    check_name(&name)?;
    svc.backups
        .create_now(&name, Some(&svc.files.deletions))
        .await
        .map(|_| ())
}

/// `POST /api/backups/upload`: stores the multipart `file` part `chunks` (sent as
/// `filename`) as a backup, after checking it is a backup archive.
pub async fn upload<S, E>(
    svc: &Services,
    caller: &Caller,
    filename: Option<&str>,
    mut chunks: S,
    broken: impl Fn(E) -> ServiceError,
) -> ServiceResult<()>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    caller.require_superuser()?;
    svc.backups.check_supported()?;
    let invalid = |code: &str, message: String| {
        ServiceError::bad_request("An error occurred while validating the submitted data.")
            .with_data(json!({"file": {"code": code, "message": message}}))
    };
    let Some(filename) = filename else {
        return Err(invalid("validation_required", "Cannot be blank.".into()));
    };
    // The name a browser sends may carry a client path: keep its last segment.
    let key = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_string();
    if !valid_key(&key) {
        return Err(invalid(
            "validation_invalid_file_name",
            "The file name is not a valid backup name.".into(),
        ));
    }
    let taken = || {
        name_exists(
            "file",
            "Backup file with the specified name already exists.",
        )
    };
    let target = svc.backups.target();
    if target.find(&key).await?.is_some() {
        return Err(taken());
    }
    let dir = svc.backups.dir();
    let part = dir.join(format!(".upload-{}", basalt_schema::id::random_id(10)));
    let failed = |e: std::io::Error| {
        tracing::error!(error = %e, "spooling a backup upload failed");
        ServiceError::internal()
    };
    tokio::fs::create_dir_all(&dir).await.map_err(failed)?;
    let mut file = tokio::fs::File::create_new(&part).await.map_err(failed)?;
    let cleanup = PartFile(part.clone());
    let mut size = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(&broken)?;
        size += chunk.len() as u64;
        if size > archive::MAX_UNPACKED {
            return Err(invalid(
                "validation_file_size_limit",
                format!(
                    "The backup file must be at most {} bytes.",
                    archive::MAX_UNPACKED
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.sync_all().await.map_err(failed)?;
    drop(file);
    let p = part.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<(), ArchiveError> {
        let mut head = [0u8; 4];
        let n = std::io::Read::read(&mut std::fs::File::open(&p)?, &mut head)?;
        if n < 4 || head != *b"PK\x03\x04" {
            return Err(ArchiveError::Invalid("mime".into()));
        }
        archive::inspect(&p)?;
        Ok(())
    })
    .await
    .map_err(|e| failed(std::io::Error::other(e)))?;
    match checked {
        Ok(()) => {
            let kept = target.keep(&key, &part).await;
            drop(cleanup);
            if kept? { Ok(()) } else { Err(taken()) }
        }
        Err(ArchiveError::Invalid(why)) if why == "mime" => Err(invalid(
            "validation_invalid_mime_type",
            format!("\"{key}\" mime type must be one of: application/zip."),
        )),
        Err(ArchiveError::Invalid(why)) => Err(invalid("validation_invalid_backup", why)),
        Err(ArchiveError::Io(e)) => Err(failed(e)),
    }
}

/// Removes a spooled upload or download however it ends.
pub(crate) struct PartFile(PathBuf);

impl Drop for PartFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `GET /api/backups/{key}?token=`: the backup, opened for a superuser's file token.
pub async fn download(
    svc: &Services,
    token: Option<&str>,
    key: &str,
) -> ServiceResult<basalt_files::Download> {
    let forbidden = || ServiceError::forbidden("Insufficient permissions to access the resource.");
    let token = token.filter(|t| !t.is_empty()).ok_or_else(forbidden)?;
    let who = crate::resolve_token(svc, token, TokenKind::File)
        .await?
        .ok_or_else(forbidden)?;
    if !who.is_superuser {
        return Err(forbidden());
    }
    svc.backups.check_supported()?;
    svc.backups.target().open(key).await
}

/// `DELETE /api/backups/{key}`.
pub async fn delete(svc: &Services, caller: &Caller, key: &str) -> ServiceResult<()> {
    caller.require_superuser()?;
    if svc.backups.remove(key).await? {
        Ok(())
    } else {
        Err(ServiceError::bad_request(
            "Invalid or already deleted backup file.",
        ))
    }
}

/// `POST /api/backups/{key}/restore`: stages the backup and asks for the restart that
/// completes it.
pub async fn restore(svc: &Services, caller: &Caller, key: &str) -> ServiceResult<()> {
    caller.require_superuser()?;
    svc.backups.stage_restore(key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pocketbase() {
        for ok in ["a.zip", "my_backup-2.zip", "0.zip"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", ".zip", "A.zip", "a.b.zip", "a.ZIP", "a", "../a.zip", "a b.zip",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&format!("{}.zip", "a".repeat(146))).is_ok());
        assert!(check_name(&format!("{}.zip", "a".repeat(147))).is_err());
        let n = default_name("pb_backup_", "My App!");
        assert!(
            n.starts_with("pb_backup_my_app__") && check_name(&n).is_ok(),
            "{n}"
        );
    }

    #[test]
    fn keys_stay_in_the_folder() {
        for bad in ["", "..", ".x", "a/b", "a\\b", "a\0b", "../data.db"] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert!(valid_key("Up Per.zip") && valid_key("@auto_pb_backup_x.zip"));
    }
}
