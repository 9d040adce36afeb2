//! Storage on an S3-compatible object store (AWS S3, MinIO, R2, moto, ...), configured as
//! PocketBase's `s3` settings are. Bodies stream both ways: a body that fits in one part
//! is sent with one PUT; a larger one as a multipart upload whose parts are sent while
//! the next is read, so memory stays at a few parts whatever the size. An upload that
//! fails or passes its size limit is aborted, leaving no object behind.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};
use tokio::io::AsyncRead;

use crate::s3_http::ReqwestConnector;
use crate::storage::{CHUNK, ObjectStream, read_limited};
use crate::{ByteRange, Download, ObjectKey, ObjectMeta, Storage, StorageError};

/// Size of one multipart part: S3's minimum for every part but the last, so an upload
/// holds at most a part being filled and `PARTS_IN_FLIGHT` being sent (up to 48 GiB per
/// object within S3's 10,000 parts).
const PART: usize = 5 << 20;
/// Parts in flight at once during an upload.
const PARTS_IN_FLIGHT: usize = 2;

/// PocketBase's `s3` settings section.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// `https://host[:port]`; empty for AWS itself (from the region).
    pub endpoint: String,
    pub access_key: String,
    pub secret: String,
    /// Address the bucket in the path (`endpoint/bucket/key`) rather than as a
    /// subdomain (`bucket.endpoint/key`).
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// Objects in one S3 bucket.
#[derive(Debug)]
pub struct S3Storage {
    store: AmazonS3,
}

impl S3Storage {
    /// A client for `settings` (no request is made until the first operation).
    pub fn new(settings: &S3Settings) -> Result<S3Storage, StorageError> {
        if settings.bucket.is_empty() {
            return Err(StorageError::Config("the bucket is required".into()));
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(if settings.region.is_empty() {
                "us-east-1"
            } else {
                &settings.region
            })
            .with_access_key_id(&settings.access_key)
            .with_secret_access_key(&settings.secret)
            .with_http_connector(ReqwestConnector)
            .with_client_options(
                ClientOptions::new().with_allow_http(settings.endpoint.starts_with("http://")),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            });
        let endpoint = settings.endpoint.trim_end_matches('/');
        if !endpoint.is_empty() {
            if settings.force_path_style {
                b = b.with_endpoint(endpoint);
            } else {
                b = b
                    .with_endpoint(virtual_host(endpoint, &settings.bucket)?)
                    .with_virtual_hosted_style_request(true);
            }
        }
        let store = b.build().map_err(|e| StorageError::Config(e.to_string()))?;
        Ok(S3Storage { store })
    }
}

/// `scheme://bucket.host` from `scheme://host`.
fn virtual_host(endpoint: &str, bucket: &str) -> Result<String, StorageError> {
    let (scheme, host) = endpoint
        .split_once("://")
        .ok_or_else(|| StorageError::Config(format!("endpoint {endpoint:?} has no scheme")))?;
    Ok(format!("{scheme}://{bucket}.{host}"))
}

fn path(key: &ObjectKey) -> Path {
    Path::from(key.as_str())
}

fn map_err(key: &ObjectKey, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound(key.to_string()),
        other => StorageError::Backend(other.to_string()),
    }
}

fn meta_of(m: object_store::ObjectMeta) -> Result<ObjectMeta, StorageError> {
    let key = ObjectKey::new(m.location.as_ref())?;
    let etag = match m.e_tag {
        Some(t) if t.starts_with('"') || t.starts_with("W/") => t,
        Some(t) => format!("\"{t}\""),
        None => format!("\"{:x}-{:x}\"", m.size, m.last_modified.timestamp_micros()),
    };
    Ok(ObjectMeta {
        key,
        size: m.size,
        last_modified: m.last_modified.into(),
        etag,
    })
}

#[async_trait]
impl Storage for S3Storage {
    async fn put_bytes(&self, key: &ObjectKey, body: Bytes) -> Result<ObjectMeta, StorageError> {
        if body.len() > PART {
            return self.put(key, &mut &body[..], u64::MAX).await;
        }
        self.store
            .put(&path(key), PutPayload::from(body))
            .await
            .map_err(|e| map_err(key, e))?;
        self.head(key).await
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: &mut (dyn AsyncRead + Send + Unpin),
        max_size: u64,
    ) -> Result<ObjectMeta, StorageError> {
        let mut buf = Vec::with_capacity(CHUNK);
        let mut total = 0;
        // Up to one part is gathered first: a body that ends within it is one PUT.
        let mut first = Vec::new();
        while first.len() < PART {
            if !read_limited(body, &mut buf, &mut total, max_size).await? {
                self.store
                    .put(&path(key), PutPayload::from(Bytes::from(first)))
                    .await
                    .map_err(|e| map_err(key, e))?;
                return self.head(key).await;
            }
            first.extend_from_slice(&buf);
        }
        let upload = self
            .store
            .put_multipart(&path(key))
            .await
            .map_err(|e| map_err(key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        writer.put(Bytes::from(first));
        let streamed: Result<(), StorageError> = async {
            while read_limited(body, &mut buf, &mut total, max_size).await? {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| map_err(key, e))?;
                writer.write(&buf);
            }
            Ok(())
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await.map_err(|e| map_err(key, e))?;
                self.head(key).await
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key = %key, error = %abort, "aborting a multipart upload failed");
                }
                Err(e)
            }
        }
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Download, StorageError> {
        // A range is resolved against the object's size first, so every backend refuses
        // the same ranges; objects are immutable, so the size cannot change in between.
        let range = match range {
            Some(r) => Some(r.resolve(self.head(key).await?.size)?),
            None => None,
        };
        let opts = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&path(key), opts)
            .await
            .map_err(|e| map_err(key, e))?;
        let served = got.range.clone();
        let meta = meta_of(got.meta.clone())?;
        let owned = key.clone();
        let body = got
            .into_stream()
            .map_err(move |e| map_err(&owned, e))
            .boxed();
        Ok(Download {
            meta,
            range: served,
            body,
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StorageError> {
        let m = self
            .store
            .head(&path(key))
            .await
            .map_err(|e| map_err(key, e))?;
        meta_of(m)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self.store.delete(&path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(key, e)),
        }
    }

    async fn delete_prefix(&self, prefix: &ObjectKey) -> Result<u64, StorageError> {
        let objects = self.list_prefix(prefix).await?;
        let locations = futures_util::stream::iter(
            objects.iter().map(|m| Ok(path(&m.key))).collect::<Vec<_>>(),
        )
        .boxed();
        let mut deleted = 0;
        let mut results = self.store.delete_stream(locations);
        while let Some(r) = results.next().await {
            match r {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(map_err(prefix, e)),
            }
        }
        Ok(deleted)
    }

    async fn list_prefix(&self, prefix: &ObjectKey) -> Result<Vec<ObjectMeta>, StorageError> {
        let mut out = Vec::new();
        // An object named exactly as the prefix is under it too.
        match self.head(prefix).await {
            Ok(m) => out.push(m),
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let mut listing = self.store.list(Some(&path(prefix)));
        while let Some(m) = listing.next().await {
            let m = m.map_err(|e| map_err(prefix, e))?;
            // Keys another writer made that are not valid keys are not ours to report.
            if let Ok(meta) = meta_of(m) {
                out.push(meta);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    fn list_all(&self) -> ObjectStream {
        // S3 lists in key order, a page (1000 keys) per request, fetched as read.
        self.store
            .list(None)
            .filter_map(|m| async move {
                match m {
                    // Keys another writer made that are not valid keys are not ours.
                    Ok(m) => meta_of(m).ok().map(Ok),
                    Err(e) => Some(Err(StorageError::Backend(format!("list: {e}")))),
                }
            })
            .boxed()
    }
}
