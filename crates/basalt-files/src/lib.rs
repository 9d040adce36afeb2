//! Files: where uploaded files live and what is made from them. This crate owns the
//! [`Storage`] trait with its two implementations, [`LocalStorage`] (a directory, the data
//! dir's `storage/` in PocketBase's layout) and [`S3Storage`] (any S3-compatible store,
//! PocketBase's `s3` settings), the safe [`ObjectKey`]s they are addressed by, content
//! type detection ([`sniff`]) and image [`thumbs`].
//!
//! It must never know HTTP, SQL, the store or records: callers hand it keys and byte
//! streams and map its errors to answers. Stored file names and thumb sizes are the
//! schema's (`basalt_schema::file_name`, `basalt_schema::thumb`).

mod error;
mod key;
mod local;
mod s3;
mod s3_http;
pub mod sniff;
mod storage;
pub mod thumbs;

pub use error::StorageError;
pub use key::ObjectKey;
pub use local::{Durability, LocalStorage};
pub use s3::{S3Settings, S3Storage};
pub use storage::{ByteRange, ByteStream, Download, ObjectMeta, ObjectStream, Storage};
