//! Uploads: a multipart file part is spooled while the request body is read (bounded
//! memory, the field's size limit enforced while reading): a part that ends within one
//! batch ([`SPOOL_BATCH`]) stays in memory, a longer one goes to an anonymous temporary
//! file. It is then sniffed, named (`stored_file_name`), checked against the field's MIME
//! types and put into storage before the record's transaction. Its stored name joins the
//! record input where the part's name says (`field`, `field+`, `+field`).

use basalt_files::{ObjectKey, StorageError, sniff};
use basalt_schema::field::FileOptions;
use basalt_schema::file_name::stored_file_name;
use basalt_schema::{Collection, FieldKind, ValidationErrors};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use std::io::{Seek, Write};

use crate::Services;
use crate::error::{ServiceError, ServiceResult};

/// A file part of a request body, spooled and waiting for its record.
#[derive(Debug)]
pub struct Upload {
    /// The part's name: the field, or `field+` / `+field`.
    part: String,
    /// The file name the client sent (only ever an input to `stored_file_name`).
    original_name: String,
    /// The spooled bytes.
    bytes: Spooled,
    size: u64,
    /// The first bytes, for content type detection.
    head: Vec<u8>,
}

/// Where a part's bytes wait for storage.
#[derive(Debug)]
enum Spooled {
    /// A part no longer than one batch.
    Memory(Bytes),
    /// A longer part, in an anonymous temporary file positioned at its start.
    File(std::fs::File),
}

/// Where a part's files go in the field's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// `field`: the field's new value (with any names the body keeps for it).
    Set,
    /// `field+`
    Append,
    /// `+field`
    Prepend,
}

/// The file field a part names, if any.
fn file_field<'a>(c: &'a Collection, part: &str) -> Option<(&'a str, &'a FileOptions, Place)> {
    let (name, place) = if let Some(n) = part.strip_suffix('+') {
        (n, Place::Append)
    } else if let Some(n) = part.strip_prefix('+') {
        (n, Place::Prepend)
    } else {
        (part, Place::Set)
    };
    c.fields.iter().find_map(|f| match &f.kind {
        FieldKind::File(o) if f.name == name => Some((f.name.as_str(), o, place)),
        _ => None,
    })
}

/// The largest body a multipart write to `c` may send: `base` plus, per file field, its
/// size limit times how many files it holds (PocketBase's rule).
pub fn body_limit(c: &Collection, base: u64) -> u64 {
    c.fields
        .iter()
        .filter_map(|f| match &f.kind {
            FieldKind::File(o) => {
                Some(o.max_file_size().saturating_mul(o.max_select.max(1) as u64))
            }
            _ => None,
        })
        .fold(base, u64::saturating_add)
}

fn spool_failed(e: impl std::fmt::Display) -> ServiceError {
    tracing::error!(error = %e, "spooling an upload failed");
    ServiceError::internal()
}

/// How many bytes of a part are gathered before one write to its spool file: each write
/// is a hop to the blocking pool, and a request body arrives in chunks of a few KiB. A
/// part that ends within the first batch never touches a file.
const SPOOL_BATCH: usize = 256 * 1024;

/// A part's bytes on their way into memory or an anonymous temporary file, written in
/// batches.
struct SpoolFile {
    /// Created with the first full batch.
    file: Option<std::fs::File>,
    batch: Vec<u8>,
    size: u64,
    head: Vec<u8>,
    dir: std::path::PathBuf,
}

impl SpoolFile {
    fn new(svc: &Services) -> SpoolFile {
        SpoolFile {
            file: None,
            batch: Vec::new(),
            size: 0,
            head: Vec::new(),
            dir: svc.files.spool_dir.clone(),
        }
    }

    async fn push(&mut self, chunk: &[u8]) -> ServiceResult<()> {
        self.size += chunk.len() as u64;
        if self.head.len() < sniff::SNIFF_LEN {
            let take = (sniff::SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.batch.extend_from_slice(chunk);
        if self.batch.len() >= SPOOL_BATCH {
            self.write_batch().await?;
        }
        Ok(())
    }

    /// Appends the batch to the spool file, creating it first when this is the first.
    async fn write_batch(&mut self) -> ServiceResult<()> {
        let file = self.file.take();
        let dir = self.dir.clone();
        let batch = std::mem::take(&mut self.batch);
        let (file, mut batch) = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(f) => f,
                // Anonymous: the OS removes it when the handle closes, even after a kill -9.
                None => tempfile::tempfile_in(dir)?,
            };
            file.write_all(&batch).map(|()| (file, batch))
        })
        .await
        .map_err(spool_failed)?
        .map_err(spool_failed)?;
        batch.clear();
        self.batch = batch;
        self.file = Some(file);
        Ok(())
    }

    /// Writes what is left and rewinds, ready to be stored.
    async fn finish(mut self, part: &str, original_name: &str) -> ServiceResult<Upload> {
        let bytes = if self.file.is_none() {
            Spooled::Memory(Bytes::from(std::mem::take(&mut self.batch)))
        } else {
            self.write_batch().await?;
            let Some(mut file) = self.file.take() else {
                return Err(spool_failed("the spool file is gone"));
            };
            file.seek(std::io::SeekFrom::Start(0))
                .map_err(spool_failed)?;
            Spooled::File(file)
        };
        Ok(Upload {
            part: part.to_string(),
            original_name: original_name.to_string(),
            bytes,
            size: self.size,
            head: self.head,
        })
    }
}

/// Spools the file part `part` of a write to collection `collection`; `None` when the
/// part names no file field (PocketBase ignores it). Past the field's size limit it stops
/// reading and answers PocketBase's `validation_file_size_limit` under `message`; a body
/// that breaks off answers `broken`.
pub async fn spool<S, E>(
    svc: &Services,
    collection: &str,
    part: &str,
    original_name: &str,
    mut chunks: S,
    message: &str,
    broken: impl Fn(E) -> ServiceError,
) -> ServiceResult<Option<Upload>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let Some(c) = svc.store.schema().find(collection).cloned() else {
        return Ok(None);
    };
    let Some((field, o, _)) = file_field(&c, part) else {
        return Ok(None);
    };
    let mut spool = SpoolFile::new(svc);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(&broken)?;
        if let Err(e) = o.check_size(original_name, spool.size + chunk.len() as u64) {
            let mut errs = ValidationErrors::new();
            errs.add(field, e);
            return Err(ServiceError::validation(message, &errs));
        }
        spool.push(&chunk).await?;
    }
    spool.finish(part, original_name).await.map(Some)
}

/// Spools a file part whose collection is not known yet (a batch's `requests.N.FIELD`
/// parts arrive before the `@jsonPayload` naming their collections), up to `max_size`
/// bytes (the body limit); the field's own limits are checked when it is stored.
pub async fn spool_unchecked<S, E>(
    svc: &Services,
    part: &str,
    original_name: &str,
    mut chunks: S,
    broken: impl Fn(E) -> ServiceError,
) -> ServiceResult<Upload>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut spool = SpoolFile::new(svc);
    while let Some(chunk) = chunks.next().await {
        spool.push(&chunk.map_err(&broken)?).await?;
    }
    spool.finish(part, original_name).await
}

/// Files put into storage for one write: deleted again unless the write commits.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub names: Vec<String>,
    pub keys: Vec<ObjectKey>,
}

impl Stored {
    /// Removes the files of a write that did not commit.
    pub(crate) async fn discard(self, svc: &Services) {
        for key in self.keys {
            if let Err(e) = svc.files.storage().delete(&key).await {
                tracing::warn!(%key, error = %e, "removing an upload of a failed write failed");
            }
        }
    }
}

fn storage_failed(e: StorageError) -> ServiceError {
    tracing::error!(error = %e, "storing an upload failed");
    ServiceError::internal()
}

/// Checks and stores `uploads` for record `record_id` of `c`, and names them in `body`
/// where their parts say. Nothing is stored when a check fails; on a storage error the
/// files stored so far are removed again.
pub(crate) async fn store(
    svc: &Services,
    c: &Collection,
    record_id: &str,
    body: &mut Map<String, Value>,
    uploads: Vec<Upload>,
    message: &str,
) -> ServiceResult<Stored> {
    let mut errs = ValidationErrors::new();
    let mut planned = Vec::with_capacity(uploads.len());
    for up in uploads {
        let Some((field, o, place)) = file_field(c, &up.part) else {
            continue;
        };
        if let Err(e) = o.check_size(&up.original_name, up.size) {
            errs.add(field, e);
            continue;
        }
        let detected = sniff::detect(&up.head, up.head.len() as u64 == up.size);
        let name = stored_file_name(&up.original_name, detected.ext);
        if let Err(e) = o.check_mime(&name, detected.mime) {
            errs.add(field, e);
            continue;
        }
        planned.push((field.to_string(), place, name, up, o.max_file_size()));
    }
    if !errs.is_empty() {
        return Err(ServiceError::validation(message, &errs));
    }
    let mut stored = Stored::default();
    let mut named = Vec::with_capacity(planned.len());
    for (field, place, name, up, max) in planned {
        let key = match ObjectKey::file(&c.id, record_id, &name) {
            Ok(k) => k,
            Err(_) => {
                stored.discard(svc).await;
                let mut errs = ValidationErrors::new();
                errs.add(
                    "id",
                    basalt_schema::error::FieldError::new(
                        "validation_invalid_value",
                        "Invalid value.",
                    ),
                );
                return Err(ServiceError::validation(message, &errs));
            }
        };
        let put = match up.bytes {
            Spooled::Memory(b) => svc.files.storage().put_bytes(&key, b).await,
            Spooled::File(f) => svc.files.storage().put_file(&key, f, max).await,
        };
        if let Err(e) = put {
            stored.discard(svc).await;
            return Err(storage_failed(e));
        }
        stored.keys.push(key);
        stored.names.push(name.clone());
        named.push((field, place, name));
    }
    for (field, place, name) in named {
        let key = match place {
            Place::Set => field,
            Place::Append => format!("{field}+"),
            Place::Prepend => format!("+{field}"),
        };
        let mut names = match body.remove(&key) {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a,
            Some(Value::String(s)) if s.is_empty() => vec![],
            Some(other) => vec![other],
        };
        names.push(Value::String(name));
        body.insert(key, Value::Array(names));
    }
    Ok(stored)
}
