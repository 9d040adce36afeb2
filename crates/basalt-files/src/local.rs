//! Storage on the local filesystem under one root directory (the data dir's `storage/`,
//! as PocketBase lays it out). Writes are atomic: a hidden temporary file in the target
//! directory, fsynced, renamed over the key, then the directory fsynced; a failed or
//! oversized write removes its temporary file. Keys are validated paths, so nothing
//! leaves the root.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use tokio::fs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::storage::ObjectStream;
use crate::storage::{CHUNK, read_limited};
use crate::{ByteRange, Download, ObjectKey, ObjectMeta, Storage, StorageError};
use futures_util::StreamExt;

/// Files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage { root: root.into() }
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.segments());
        p
    }

    fn key_of(&self, path: &Path) -> Option<ObjectKey> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        ObjectKey::new(parts?.join("/")).ok()
    }
}

fn not_found_or(key: &ObjectKey, context: &str, e: std::io::Error) -> StorageError {
    // A key under what is a file (`a/b.txt/c`) is missing too.
    if matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    ) {
        StorageError::NotFound(key.to_string())
    } else {
        StorageError::io(context, e)
    }
}

fn meta_of(key: ObjectKey, m: &std::fs::Metadata) -> ObjectMeta {
    let last_modified = m.modified().unwrap_or(UNIX_EPOCH);
    let nanos = last_modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    ObjectMeta {
        key,
        size: m.len(),
        last_modified,
        // Objects are never rewritten in place, so size and mtime identify the content.
        etag: format!("\"{:x}-{:x}\"", m.len(), nanos),
    }
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = fs::File::open(dir)
        .await
        .map_err(|e| StorageError::io("open directory", e))?;
    d.sync_all()
        .await
        .map_err(|e| StorageError::io("sync directory", e))
}

#[async_trait]
impl Storage for LocalStorage {
    async fn put(
        &self,
        key: &ObjectKey,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_size: u64,
    ) -> Result<ObjectMeta, StorageError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)
            .await
            .map_err(|e| StorageError::io("create directory", e))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            key.name(),
            basalt_schema::id::random_id(10)
        ));
        let written = write_file(&tmp, body, max_size).await;
        let renamed = match written {
            Ok(()) => fs::rename(&tmp, &path)
                .await
                .map_err(|e| StorageError::io("rename", e)),
            Err(e) => Err(e),
        };
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp).await;
            return Err(e);
        }
        sync_dir(&dir).await?;
        self.head(key).await
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Download, StorageError> {
        let mut file = fs::File::open(self.path(key))
            .await
            .map_err(|e| not_found_or(key, "open", e))?;
        let m = file
            .metadata()
            .await
            .map_err(|e| StorageError::io("stat", e))?;
        if !m.is_file() {
            return Err(StorageError::NotFound(key.to_string()));
        }
        let meta = meta_of(key.clone(), &m);
        let range = match range {
            Some(r) => r.resolve(meta.size)?,
            None => 0..meta.size,
        };
        if range.start > 0 {
            file.seek(SeekFrom::Start(range.start))
                .await
                .map_err(|e| StorageError::io("seek", e))?;
        }
        let reader = file.take(range.end - range.start);
        let body = futures_util::StreamExt::map(ReaderStream::with_capacity(reader, CHUNK), |r| {
            r.map_err(|e| StorageError::io("read", e))
        });
        Ok(Download {
            meta,
            range,
            body: Box::pin(body),
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        let m = fs::metadata(self.path(key))
            .await
            .map_err(|e| not_found_or(key, "stat", e))?;
        if !m.is_file() {
            return Err(StorageError::NotFound(key.to_string()));
        }
        Ok(meta_of(key.clone(), &m))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("delete", e)),
        }
    }

    async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<u64, StorageError> {
        let objects = self.list_prefix(prefix).await?;
        let path = self.path(prefix);
        let removed = match fs::symlink_metadata(&path).await {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path).await,
            Ok(_) => fs::remove_file(&path).await,
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => Ok(objects.len() as u64),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(objects.len() as u64),
            Err(e) => Err(StorageError::io("delete prefix", e)),
        }
    }

    async fn list_prefix(&self, prefix: &ObjectKey) -> Result<Vec<ObjectMeta>, StorageError> {
        let this = self.clone();
        let start = self.path(prefix);
        tokio::task::spawn_blocking(move || this.walk(&start))
            .await
            .map_err(|e| StorageError::Backend(format!("list task: {e}")))?
    }

    fn list_all(&self) -> ObjectStream {
        // A blocking walker feeds a small channel; it stops when the reader goes away.
        let (tx, rx) = tokio::sync::mpsc::channel(LISTED_AHEAD);
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.stream_walk(&tx));
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }
}

/// How many listed objects the local walker may hold ahead of its reader.
const LISTED_AHEAD: usize = 256;

impl LocalStorage {
    /// Sends every regular file under the root whose path is a valid key into `tx`,
    /// depth first (a directory's subtree is sent whole before its next sibling), holding
    /// one open directory per level; an error is sent last. Stops when `tx` is closed.
    fn stream_walk(&self, tx: &tokio::sync::mpsc::Sender<Result<ObjectMeta, StorageError>>) {
        let fail = |e: std::io::Error| {
            let _ = tx.blocking_send(Err(StorageError::io("list", e)));
        };
        let mut open = match std::fs::read_dir(&self.root) {
            Ok(rd) => vec![rd],
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => return fail(e),
        };
        while let Some(dir) = open.last_mut() {
            let entry = match dir.next() {
                None => {
                    open.pop();
                    continue;
                }
                Some(Err(e)) => return fail(e),
                Some(Ok(entry)) => entry,
            };
            let path = entry.path();
            let m = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed since the directory was read (a deletion after commit).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return fail(e),
            };
            if m.is_dir() {
                match std::fs::read_dir(&path) {
                    Ok(rd) => open.push(rd),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return fail(e),
                }
            } else if m.is_file()
                && let Some(key) = self.key_of(&path)
                && tx.blocking_send(Ok(meta_of(key, &m))).is_err()
            {
                return;
            }
        }
    }

    /// Every regular file at or under `start` whose path is a valid key (temporary files
    /// start with `.` and are skipped), sorted by key. Symlinks are not followed.
    fn walk(&self, start: &Path) -> Result<Vec<ObjectMeta>, StorageError> {
        let mut out = Vec::new();
        let mut pending = vec![start.to_path_buf()];
        while let Some(path) = pending.pop() {
            let m = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("list", e)),
            };
            if m.is_dir() {
                let entries = match std::fs::read_dir(&path) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io("list", e)),
                };
                for entry in entries {
                    pending.push(entry.map_err(|e| StorageError::io("list", e))?.path());
                }
            } else if m.is_file()
                && let Some(key) = self.key_of(&path)
            {
                out.push(meta_of(key, &m));
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// Copies `body` into a new file at `tmp` in bounded chunks, then fsyncs it.
async fn write_file(
    tmp: &Path,
    body: &mut (dyn AsyncRead + Send + Unpin),
    max_size: u64,
) -> Result<(), StorageError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .await
        .map_err(|e| StorageError::io("create", e))?;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut total = 0;
    while read_limited(body, &mut buf, &mut total, max_size).await? {
        file.write_all(&buf)
            .await
            .map_err(|e| StorageError::io("write", e))?;
    }
    file.flush()
        .await
        .map_err(|e| StorageError::io("flush", e))?;
    file.sync_all()
        .await
        .map_err(|e| StorageError::io("sync", e))?;
    Ok(())
}
