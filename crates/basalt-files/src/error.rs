//! What a storage operation can fail with. A caller maps `TooLarge`, `InvalidKey`,
//! `NotFound`, `RangeNotSatisfiable` and `Upload` to the client's fault (4xx) and
//! `Backend`/`Config` to a storage outage (5xx, details logged, never returned).

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key is not a safe relative path (see [`crate::ObjectKey`]).
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    /// No object under the key.
    #[error("object not found: {0}")]
    NotFound(String),
    /// The body went past the size limit; nothing was stored.
    #[error("the file is larger than {max_size} bytes")]
    TooLarge { max_size: u64 },
    /// The byte range lies outside the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// Reading the body being stored failed (the client's side); nothing was stored.
    #[error("reading the file to store failed: {0}")]
    Upload(#[source] std::io::Error),
    /// The storage itself failed: disk, network, the S3 server.
    #[error("storage failed: {0}")]
    Backend(String),
    /// The storage settings cannot work (bad endpoint, missing bucket, ...).
    #[error("invalid storage settings: {0}")]
    Config(String),
}

impl StorageError {
    pub(crate) fn io(context: &str, e: std::io::Error) -> StorageError {
        StorageError::Backend(format!("{context}: {e}"))
    }
}
