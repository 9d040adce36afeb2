//! Downloads: a record's file found and checked (the record exists and holds the name in
//! a file field; a protected file needs a file token whose record passes the view rule,
//! as in PocketBase), its thumb made once on a blocking thread with decode limits and
//! kept in storage, and the content type detected from the stored bytes.

use std::sync::Arc;

use basalt_auth::TokenKind;
use basalt_files::thumbs::{self, ThumbFormat, ThumbLimits};
use basalt_files::{ByteRange, Download, ObjectKey, ObjectMeta, StorageError, sniff};
use basalt_schema::FieldKind;
use basalt_schema::thumb::ThumbSize;
use basalt_store::Access;
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::error::{ServiceError, ServiceResult};
use crate::records::{Action, access_for, collection, load_unrestricted, rule};
use crate::{Caller, RequestMeta, Services, request_info, resolve_token};

/// A file to serve.
#[derive(Debug, Clone)]
pub struct FileInput {
    pub collection: String,
    pub record_id: String,
    pub filename: String,
    /// `?thumb=`: served when the field lists the size and the file is an image.
    pub thumb: Option<String>,
    /// `?token=`: a file token, for protected files.
    pub token: Option<String>,
    /// The caller will serve the whole file (no range, no conditional request): the
    /// original is opened while its type is detected, in one step ([`open`] takes it).
    pub whole: bool,
}

/// A file found and allowed: what is served and how it is described.
#[derive(Debug)]
pub struct FileTarget {
    key: ObjectKey,
    /// The whole object, already open (see [`FileInput::whole`]).
    opened: Option<Download>,
    pub meta: ObjectMeta,
    /// Detected from the stored bytes (never the client's declared type).
    pub content_type: &'static str,
    /// The stored name (of the original, also for a thumb).
    pub name: String,
}

fn missing() -> ServiceError {
    ServiceError::new(
        crate::ErrorKind::NotFound,
        "The requested resource wasn't found.",
    )
}

fn storage_failed(e: StorageError) -> ServiceError {
    match e {
        StorageError::NotFound(_) | StorageError::InvalidKey(_) => missing(),
        e => {
            tracing::error!(error = %e, "reading a stored file failed");
            ServiceError::internal()
        }
    }
}

/// Finds the file and checks the caller may read it.
pub async fn find(
    svc: &Services,
    meta: &dyn RequestMeta,
    input: FileInput,
) -> ServiceResult<FileTarget> {
    let c = collection(svc, &input.collection).map_err(|_| missing())?;
    let record = load_unrestricted(svc, &c, &input.record_id, "Failed to load record.")
        .await?
        .ok_or_else(missing)?;
    let holds = |v: Option<&Value>| match v {
        Some(Value::String(s)) => *s == input.filename,
        Some(Value::Array(a)) => a.iter().any(|n| n.as_str() == Some(&input.filename)),
        _ => false,
    };
    let options = c
        .fields
        .iter()
        .find_map(|f| match &f.kind {
            FieldKind::File(o) if holds(record.get(&f.name)) => Some(o),
            _ => None,
        })
        .ok_or_else(missing)?;
    if options.protected {
        let auth = match input.token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => resolve_token(svc, t, TokenKind::File).await?,
            None => None,
        };
        let caller = Caller(auth);
        let access = access_for(&rule(svc, &c, Action::View), &caller).ok_or_else(missing)?;
        if let Access::Rule(_) = access {
            let req = Arc::new(request_info(&caller, "GET", meta, Map::new()));
            svc.store
                .get_record(&c, &input.record_id, access, req)
                .await
                .map_err(|e| ServiceError::from_store(e, "Failed to load record."))?
                .ok_or_else(missing)?;
        }
    }
    let original =
        ObjectKey::file(&c.id, &input.record_id, &input.filename).map_err(|_| missing())?;
    let thumb_spec = input
        .thumb
        .filter(|t| options.allows_thumb(t))
        .and_then(|t| ThumbSize::parse(&t).map(|s| (t, s)));
    if input.whole
        && let Some((spec, _)) = &thumb_spec
        && let Some(t) = stored_thumb(svc, &c.id, &input.record_id, &input.filename, spec).await?
    {
        return Ok(t);
    }
    let (head, meta, opened) = if input.whole && thumb_spec.is_none() {
        let d = svc
            .files
            .storage()
            .get(&original, None)
            .await
            .map_err(storage_failed)?;
        let (head, d) = peek_head(d, sniff::SNIFF_LEN).await?;
        (head, d.meta.clone(), Some(d))
    } else {
        let (head, meta) = sniff_head(svc, &original).await?;
        (head, meta, None)
    };
    let detected = sniff::detect(&head, head.len() as u64 == meta.size);
    let thumb = thumb_spec.and_then(|(t, s)| ThumbFormat::detect(&head).map(|f| (t, s, f)));
    if let Some((spec, size, format)) = thumb {
        match thumb_of(
            svc,
            &c.id,
            &input.record_id,
            &input.filename,
            &spec,
            size,
            format,
            &original,
            meta.size,
        )
        .await
        {
            Ok(t) => return Ok(t),
            // A thumb that cannot be made: the original, as PocketBase serves it.
            Err(e) => tracing::debug!(error = %e, "thumb not made"),
        }
    }
    Ok(FileTarget {
        key: original,
        opened,
        meta,
        content_type: detected.mime,
        name: input.filename,
    })
}

/// The thumb `spec` of a file when it is stored already, opened whole: one storage call
/// for a cached thumb. A thumb is in its source's format, so its own first bytes name its
/// content type. `None` when it is not stored (or not an image): [`find`] goes on.
async fn stored_thumb(
    svc: &Services,
    collection_id: &str,
    record_id: &str,
    filename: &str,
    spec: &str,
) -> ServiceResult<Option<FileTarget>> {
    let Ok(key) = ObjectKey::thumb(collection_id, record_id, filename, spec) else {
        return Ok(None);
    };
    let d = match svc.files.storage().get(&key, None).await {
        Ok(d) => d,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(storage_failed(e)),
    };
    let (head, d) = peek_head(d, sniff::SNIFF_LEN).await?;
    Ok(ThumbFormat::detect(&head).map(|format| FileTarget {
        key,
        meta: d.meta.clone(),
        opened: Some(d),
        content_type: format.content_type(),
        name: filename.to_string(),
    }))
}

/// The first bytes of an object (what [`sniff`] reads) and its metadata.
async fn sniff_head(svc: &Services, key: &ObjectKey) -> ServiceResult<(Vec<u8>, ObjectMeta)> {
    let (meta, head) = svc
        .files
        .storage()
        .get_head(key, sniff::SNIFF_LEN)
        .await
        .map_err(storage_failed)?;
    Ok((head, meta))
}

/// The first `len` bytes of `d` (fewer when it is shorter) for content detection, and
/// `d` with what was read put back in front of the rest.
async fn peek_head(mut d: Download, len: usize) -> ServiceResult<(Vec<u8>, Download)> {
    let mut head = Vec::new();
    let mut read = Vec::new();
    while head.len() < len {
        let Some(chunk) = d.body.next().await else {
            break;
        };
        let chunk = chunk.map_err(storage_failed)?;
        let take = (len - head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..take]);
        read.push(Ok(chunk));
    }
    let rest = std::mem::replace(&mut d.body, Box::pin(futures_util::stream::empty()));
    d.body = Box::pin(futures_util::stream::iter(read).chain(rest));
    Ok((head, d))
}

async fn collect(mut d: Download, max: u64) -> ServiceResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = d.body.next().await {
        out.extend_from_slice(&chunk.map_err(storage_failed)?);
        if out.len() as u64 > max {
            return Err(ServiceError::internal());
        }
    }
    Ok(out)
}

/// The largest file a thumb is made from.
const MAX_THUMB_SOURCE: u64 = 64 << 20;

/// The thumb `spec` of a file: the stored one, or made now (on a blocking thread, with
/// decode limits) and stored for the next request. A thumb is in its source's `format`,
/// which also names its content type.
#[allow(clippy::too_many_arguments)]
async fn thumb_of(
    svc: &Services,
    collection_id: &str,
    record_id: &str,
    filename: &str,
    spec: &str,
    size: ThumbSize,
    format: ThumbFormat,
    original: &ObjectKey,
    original_size: u64,
) -> Result<FileTarget, String> {
    let key =
        ObjectKey::thumb(collection_id, record_id, filename, spec).map_err(|e| e.to_string())?;
    let meta = match svc.files.storage().head(&key).await {
        Ok(m) => m,
        Err(StorageError::NotFound(_)) => {
            // The source is decoded in memory: past this size the original is served
            // rather than holding it (any image within the decode limits is far smaller).
            if original_size > MAX_THUMB_SOURCE {
                return Err(format!(
                    "thumb source of {original_size} bytes is too large"
                ));
            }
            let d = svc
                .files
                .storage()
                .get(original, None)
                .await
                .map_err(|e| e.to_string())?;
            let bytes = collect(d, original_size).await.map_err(|e| e.message)?;
            let thumb = tokio::task::spawn_blocking(move || {
                thumbs::generate(&bytes, size, &ThumbLimits::default())
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            svc.files
                .storage()
                .put_bytes(&key, thumb.bytes.into())
                .await
                .map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    Ok(FileTarget {
        key,
        opened: None,
        content_type: format.content_type(),
        meta,
        name: filename.to_string(),
    })
}

/// Opens the file found by [`find`], whole or `range` of it.
pub async fn open(
    svc: &Services,
    target: FileTarget,
    range: Option<ByteRange>,
) -> Result<Download, OpenError> {
    if range.is_none()
        && let Some(d) = target.opened
    {
        return Ok(d);
    }
    match svc.files.storage().get(&target.key, range).await {
        Ok(d) => Ok(d),
        Err(StorageError::RangeNotSatisfiable { size }) => Err(OpenError::Range { size }),
        Err(e) => Err(OpenError::Failed(storage_failed(e))),
    }
}

/// Why a found file could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The requested range lies outside the file (`size` bytes).
    Range {
        size: u64,
    },
    Failed(ServiceError),
}
