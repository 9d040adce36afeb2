//! The storage trait every backend implements, and the types it speaks in. Bodies are
//! streamed both ways: `put` reads from an [`AsyncRead`] in bounded chunks and enforces
//! the size limit while reading; `get` answers a stream of chunks.

use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{ObjectKey, StorageError};

/// How much of a body is read per step (and per write on local disk).
pub(crate) const CHUNK: usize = 64 * 1024;

/// An object's body, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// Stored objects' metadata, one by one ([`Storage::list_all`]).
pub type ObjectStream = Pin<Box<dyn Stream<Item = Result<ObjectMeta, StorageError>> + Send>>;

/// A stored object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: ObjectKey,
    pub size: u64,
    pub last_modified: SystemTime,
    /// A strong validator for the object's content, quoted as in an `ETag` header.
    pub etag: String,
}

/// Which bytes of an object to read, as an HTTP `Range` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start..end` (end exclusive; cut to the object's end).
    Bounded { start: u64, end: u64 },
    /// From `start` to the end.
    From(u64),
    /// The last `n` bytes.
    Last(u64),
}

impl ByteRange {
    /// The bytes this range selects in an object of `size` bytes, or
    /// [`StorageError::RangeNotSatisfiable`] when it selects none.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, StorageError> {
        let range = match self {
            ByteRange::Bounded { start, end } => start..end.min(size),
            ByteRange::From(start) => start..size,
            ByteRange::Last(n) => size.saturating_sub(n)..size,
        };
        if range.start < range.end {
            Ok(range)
        } else {
            Err(StorageError::RangeNotSatisfiable { size })
        }
    }
}

/// An object being read: its metadata, the bytes served and their stream.
pub struct Download {
    pub meta: ObjectMeta,
    /// The byte range `body` carries (`0..size` without a requested range).
    pub range: Range<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Where files live. Implementations: [`crate::LocalStorage`] and [`crate::S3Storage`];
/// both pass the same conformance suite (`tests/conformance.rs`).
///
/// Objects are written once under a fresh name and never modified in place; a `put`
/// either stores the whole body or nothing.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Streams `body` into `key`. Past `max_size` bytes it stops reading, stores nothing
    /// and fails with [`StorageError::TooLarge`]; memory stays bounded whatever the size.
    async fn put(
        &self,
        key: &ObjectKey,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_size: u64,
    ) -> Result<ObjectMeta, StorageError>;

    /// Stores the rest of `file` (a spooled upload) under `key`, as [`Storage::put`] does.
    /// Local storage copies file to file in the kernel; the default reads it as a stream.
    async fn put_file(
        &self,
        key: &ObjectKey,
        file: std::fs::File,
        max_size: u64,
    ) -> Result<ObjectMeta, StorageError> {
        let mut body = tokio::fs::File::from_std(file);
        self.put(key, &mut body, max_size).await
    }

    /// Stores `body`, already in memory, under `key`, as [`Storage::put`] does. Local
    /// storage writes it in one blocking call; the default streams it through `put`.
    async fn put_bytes(&self, key: &ObjectKey, body: Bytes) -> Result<ObjectMeta, StorageError> {
        self.put(key, &mut &body[..], u64::MAX).await
    }

    /// The object's metadata and its first `len` bytes (fewer when it is shorter): what
    /// content type detection reads.
    async fn get_head(
        &self,
        key: &ObjectKey,
        len: usize,
    ) -> Result<(ObjectMeta, Vec<u8>), StorageError> {
        let meta = self.head(key).await?;
        let mut head = Vec::new();
        if meta.size == 0 || len == 0 {
            return Ok((meta, head));
        }
        let mut d = self
            .get(
                key,
                Some(ByteRange::Bounded {
                    start: 0,
                    end: len as u64,
                }),
            )
            .await?;
        while let Some(chunk) = futures_util::StreamExt::next(&mut d.body).await {
            head.extend_from_slice(&chunk?);
        }
        head.truncate(len);
        Ok((meta, head))
    }

    /// Opens `key` for reading, the whole object or `range` of it.
    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Download, StorageError>;

    /// The object's metadata without its body.
    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError>;

    /// Deletes `key`; deleting a missing object succeeds (deletes are retried after
    /// commits and sweeps).
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Deletes every object at or under `prefix` (whole segments); returns how many.
    async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<u64, StorageError>;

    /// Every object at or under `prefix` (whole segments), in key order.
    async fn list_prefix(&self, prefix: &ObjectKey) -> Result<Vec<ObjectMeta>, StorageError>;

    /// Every object stored (the orphan sweep's view of the storage), streamed: memory
    /// stays bounded whatever the number of objects (S3 lists a page at a time, local
    /// disk walks one directory handle per level). Not in key order, but the objects at
    /// or under any one key prefix (whole segments) come one after another, so a
    /// record's files arrive together. An error ends the stream.
    fn list_all(&self) -> ObjectStream;
}

/// Reads the next chunk of `body` into `buf` (cleared first), counting into `total` and
/// failing once the count passes `max_size`. `Ok(false)` at the end of the body.
pub(crate) async fn read_limited(
    body: &mut (dyn AsyncRead + Send + Unpin),
    buf: &mut Vec<u8>,
    total: &mut u64,
    max_size: u64,
) -> Result<bool, StorageError> {
    buf.clear();
    let n = (&mut *body)
        .take(CHUNK as u64)
        .read_to_end(buf)
        .await
        .map_err(StorageError::Upload)?;
    *total += n as u64;
    if *total > max_size {
        return Err(StorageError::TooLarge { max_size });
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_http_ranges() {
        let r = |br: ByteRange, size| br.resolve(size).ok();
        assert_eq!(
            r(ByteRange::Bounded { start: 0, end: 10 }, 100),
            Some(0..10)
        );
        assert_eq!(
            r(
                ByteRange::Bounded {
                    start: 90,
                    end: 200
                },
                100
            ),
            Some(90..100)
        );
        assert_eq!(
            r(
                ByteRange::Bounded {
                    start: 100,
                    end: 200
                },
                100
            ),
            None
        );
        assert_eq!(r(ByteRange::Bounded { start: 5, end: 5 }, 100), None);
        assert_eq!(r(ByteRange::From(99), 100), Some(99..100));
        assert_eq!(r(ByteRange::From(100), 100), None);
        assert_eq!(r(ByteRange::Last(10), 100), Some(90..100));
        assert_eq!(r(ByteRange::Last(1000), 100), Some(0..100));
        assert_eq!(r(ByteRange::Last(0), 100), None);
        assert_eq!(r(ByteRange::From(0), 0), None);
    }
}
