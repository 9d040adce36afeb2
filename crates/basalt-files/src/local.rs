//! Storage on the local filesystem under one root directory (the data dir's `storage/`,
//! as PocketBase lays it out). Writes are atomic: a hidden temporary file in the target
//! directory, renamed over the key; a failed or oversized write removes its temporary
//! file. With [`Durability::PowerLoss`] the file is fsynced before the rename and the
//! directory after it. Keys are validated paths, so nothing leaves the root.
//!
//! Each operation's blocking file work runs in one `spawn_blocking` call (open, stat and
//! the first chunk of a read together; a whole put from a spooled file together), since
//! every hop to the blocking pool costs more than the system calls of a small file.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::fs;
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::storage::ObjectStream;
use crate::storage::{CHUNK, read_limited};
use crate::{ByteRange, Download, ObjectKey, ObjectMeta, Storage, StorageError};
use futures_util::StreamExt;

/// Files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    durability: Durability,
    /// Cleared when the file system refuses reads that must not block (tmpfs does), so
    /// downloads stop trying them.
    nowait_reads: Arc<AtomicBool>,
}

/// What a completed [`Storage::put`] on local disk survives; the binary picks the one the
/// database promises (`synchronous=NORMAL` or `FULL`), so a record and its files promise
/// the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The process's crash (`kill -9`): the file is written and renamed into place, and
    /// the kernel's page cache holds it. An OS crash or power loss may lose it, as it may
    /// lose the last commits of a database in `synchronous=NORMAL` (PocketBase does not
    /// fsync uploads either).
    Process,
    /// Also an OS crash or power loss: the file is fsynced before its rename and its
    /// directory after it.
    PowerLoss,
}

impl LocalStorage {
    /// Storage under `root` (created on first write), fsyncing every write
    /// ([`Durability::PowerLoss`]).
    pub fn new(root: impl Into<PathBuf>) -> LocalStorage {
        LocalStorage::with_durability(root, Durability::PowerLoss)
    }

    /// Storage under `root` whose writes survive what `durability` says.
    pub fn with_durability(root: impl Into<PathBuf>, durability: Durability) -> LocalStorage {
        LocalStorage {
            root: root.into(),
            durability,
            nowait_reads: Arc::new(AtomicBool::new(true)),
        }
    }

    /// What a completed write survives.
    pub fn durability(&self) -> Durability {
        self.durability
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
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync directory", e))
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Backend(format!("file task: {e}")))?
}

/// The largest chunk a download reads at once: a file up to this size is read whole in
/// the call that opens it.
const READ_CHUNK: u64 = 256 * 1024;

#[async_trait]
impl Storage for LocalStorage {
    async fn put(
        &self,
        key: &ObjectKey,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_size: u64,
    ) -> Result<ObjectMeta, StorageError> {
        let (tmp, path, dir) = self.temp_path(key);
        let d = dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&d).map_err(|e| StorageError::io("create directory", e))
        })
        .await?;
        let written = write_file(&tmp, body, max_size, self.durability).await;
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let renamed = written.and_then(|()| {
                std::fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", e))
            });
            this.finish_put(key, &tmp, &path, &dir, renamed)
        })
        .await
    }

    async fn put_file(
        &self,
        key: &ObjectKey,
        mut file: std::fs::File,
        max_size: u64,
    ) -> Result<ObjectMeta, StorageError> {
        let (tmp, path, dir) = self.temp_path(key);
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let copied = copy_file(&mut file, &tmp, &dir, max_size, this.durability);
            let renamed = copied.and_then(|()| {
                std::fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", e))
            });
            this.finish_put(key, &tmp, &path, &dir, renamed)
        })
        .await
    }

    async fn put_bytes(&self, key: &ObjectKey, body: Bytes) -> Result<ObjectMeta, StorageError> {
        let (tmp, path, dir) = self.temp_path(key);
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let written = write_bytes(&body, &tmp, &dir, this.durability);
            let renamed = written.and_then(|()| {
                std::fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename", e))
            });
            this.finish_put(key, &tmp, &path, &dir, renamed)
        })
        .await
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Download, StorageError> {
        let path = self.path(key);
        let key = key.clone();
        let nowait = self.nowait_reads.clone();
        blocking(move || open_range(&path, key, range, nowait)).await
    }

    async fn get_head(
        &self,
        key: &ObjectKey,
        len: usize,
    ) -> Result<(ObjectMeta, Vec<u8>), StorageError> {
        let path = self.path(key);
        let key = key.clone();
        blocking(move || {
            let (file, meta) = open_file(&path, key)?;
            let n = meta.size.min(len as u64);
            let mut head = vec![0; n as usize];
            file.read_exact_at(&mut head, 0)
                .map_err(|e| StorageError::io("read", e))?;
            Ok((meta, head))
        })
        .await
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

impl LocalStorage {
    /// A write's hidden temporary file, its final path and their directory.
    fn temp_path(&self, key: &ObjectKey) -> (PathBuf, PathBuf, PathBuf) {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            key.name(),
            basalt_schema::id::random_id(10)
        ));
        (tmp, path, dir)
    }

    /// Ends a put (blocking): on failure removes the temporary file, else makes the
    /// rename durable when promised and answers the stored object's metadata.
    fn finish_put(
        &self,
        key: ObjectKey,
        tmp: &Path,
        path: &Path,
        dir: &Path,
        renamed: Result<(), StorageError>,
    ) -> Result<ObjectMeta, StorageError> {
        if let Err(e) = renamed {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        if self.durability == Durability::PowerLoss {
            sync_dir(dir)?;
        }
        let m = std::fs::metadata(path).map_err(|e| not_found_or(&key, "stat", e))?;
        Ok(meta_of(key, &m))
    }
}

/// Copies `body` into a new file at `tmp` in bounded chunks (fsynced when promised).
async fn write_file(
    tmp: &Path,
    body: &mut (dyn AsyncRead + Send + Unpin),
    max_size: u64,
    durability: Durability,
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
    if durability == Durability::PowerLoss {
        file.sync_all()
            .await
            .map_err(|e| StorageError::io("sync", e))?;
    }
    Ok(())
}

/// Creates `dir` and a new file at `tmp` in it (blocking).
fn create_temp(tmp: &Path, dir: &Path) -> Result<std::fs::File, StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| StorageError::io("create", e))
}

/// Writes `body` into a new file at `tmp` (blocking), creating `dir` first.
fn write_bytes(
    body: &[u8],
    tmp: &Path,
    dir: &Path,
    durability: Durability,
) -> Result<(), StorageError> {
    let mut out = create_temp(tmp, dir)?;
    out.write_all(body)
        .map_err(|e| StorageError::io("write", e))?;
    if durability == Durability::PowerLoss {
        out.sync_all().map_err(|e| StorageError::io("sync", e))?;
    }
    Ok(())
}

/// Copies the rest of `src` into a new file at `tmp` (blocking), creating `dir` first;
/// `std::io::copy` between two files lets the kernel copy (`copy_file_range`), so the
/// bytes never pass through this process. Past `max_size` bytes: [`StorageError::TooLarge`].
fn copy_file(
    src: &mut std::fs::File,
    tmp: &Path,
    dir: &Path,
    max_size: u64,
    durability: Durability,
) -> Result<(), StorageError> {
    let mut out = create_temp(tmp, dir)?;
    let copied = std::io::copy(&mut src.take(max_size.saturating_add(1)), &mut out)
        .map_err(|e| StorageError::io("copy", e))?;
    if copied > max_size {
        return Err(StorageError::TooLarge { max_size });
    }
    if durability == Durability::PowerLoss {
        out.sync_all().map_err(|e| StorageError::io("sync", e))?;
    }
    Ok(())
}

/// Opens `path` as the regular file of `key` (blocking).
fn open_file(path: &Path, key: ObjectKey) -> Result<(std::fs::File, ObjectMeta), StorageError> {
    let file = std::fs::File::open(path).map_err(|e| not_found_or(&key, "open", e))?;
    let m = file.metadata().map_err(|e| StorageError::io("stat", e))?;
    if !m.is_file() {
        return Err(StorageError::NotFound(key.to_string()));
    }
    Ok((file, meta_of(key, &m)))
}

/// Opens `key` and reads its first chunk (blocking); the rest is read chunk by chunk as
/// the body is consumed: on the async thread what the page cache holds (a read that
/// cannot block), on the blocking pool what must come from the disk.
fn open_range(
    path: &Path,
    key: ObjectKey,
    range: Option<ByteRange>,
    nowait: Arc<AtomicBool>,
) -> Result<Download, StorageError> {
    let (file, meta) = open_file(path, key)?;
    let range = match range {
        Some(r) => r.resolve(meta.size)?,
        None => 0..meta.size,
    };
    let first = read_chunk(&file, range.start, range.end)?;
    let next = range.start + first.len() as u64;
    let rest = futures_util::stream::try_unfold(
        (Arc::new(file), next, range.end, nowait),
        |(file, pos, end, nowait)| async move {
            if pos >= end {
                return Ok(None);
            }
            let chunk = match read_cached(&file, pos, end, &nowait) {
                Some(chunk) => chunk,
                None => {
                    let f = file.clone();
                    blocking(move || read_chunk(&f, pos, end)).await?
                }
            };
            let next = pos + chunk.len() as u64;
            Ok(Some((chunk, (file, next, end, nowait))))
        },
    );
    let body = futures_util::stream::once(async move { Ok(first) }).chain(rest);
    Ok(Download {
        meta,
        range,
        body: Box::pin(body),
    })
}

/// Reads up to [`READ_CHUNK`] bytes of `file` from `pos` (before `end`) if the page cache
/// holds them, without ever waiting for the disk (`preadv2` with `RWF_NOWAIT`), so it may
/// run on an async thread; a hop to the blocking pool costs more than such a read. `None`
/// when nothing was read that way: not cached, the end of the file (the blocking read
/// reports it), or a file system that refuses such reads (then `nowait` is cleared and
/// they are not tried again). Fewer bytes than asked is a shorter chunk.
fn read_cached(file: &std::fs::File, pos: u64, end: u64, nowait: &AtomicBool) -> Option<Bytes> {
    use rustix::io::{Errno, ReadWriteFlags, preadv2};
    if !nowait.load(Ordering::Relaxed) {
        return None;
    }
    let mut buf = ChunkBuf::take();
    let want = (end - pos).min(READ_CHUNK) as usize;
    match preadv2(
        file,
        &mut [std::io::IoSliceMut::new(&mut buf.0[..want])],
        pos,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(0) => None,
        Ok(n) => Some(buf.into_bytes(n)),
        Err(Errno::AGAIN) => None,
        Err(_) => {
            nowait.store(false, Ordering::Relaxed);
            None
        }
    }
}

/// Reads up to [`READ_CHUNK`] bytes of `file` from `pos` (before `end`); a file that
/// ends early (changed under us) is an error rather than a short body.
fn read_chunk(file: &std::fs::File, pos: u64, end: u64) -> Result<Bytes, StorageError> {
    let n = (end - pos).min(READ_CHUNK) as usize;
    let mut buf = ChunkBuf::take();
    file.read_exact_at(&mut buf.0[..n], pos)
        .map_err(|e| StorageError::io("read", e))?;
    Ok(buf.into_bytes(n))
}

/// How many download buffers are kept for reuse: at most 16 MiB.
const POOLED_CHUNKS: usize = 64;

/// Download buffers given back once their chunk was sent.
static CHUNK_POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// A [`READ_CHUNK`]-sized buffer from [`CHUNK_POOL`] (or a new one), which goes back there
/// when the chunk made of it is dropped: a read into a recycled buffer costs no zeroing
/// and no fresh pages, a large share of a cached download's CPU.
struct ChunkBuf(Vec<u8>);

impl ChunkBuf {
    fn take() -> ChunkBuf {
        let recycled = CHUNK_POOL.lock().ok().and_then(|mut pool| pool.pop());
        ChunkBuf(recycled.unwrap_or_else(|| vec![0; READ_CHUNK as usize]))
    }

    /// Its first `n` bytes as a chunk that owns it.
    fn into_bytes(self, n: usize) -> Bytes {
        Bytes::from_owner(self).slice(..n)
    }
}

impl AsRef<[u8]> for ChunkBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if let Ok(mut pool) = CHUNK_POOL.lock()
            && pool.len() < POOLED_CHUNKS
        {
            pool.push(std::mem::take(&mut self.0));
        }
    }
}
