//! Files of records: where they are stored (the [`Files`] handle the binary hands over),
//! uploads spooled to disk and put into storage before a write, stored files removed only
//! after the write that dropped them committed, and downloads with their checks.

use std::path::PathBuf;
use std::sync::Arc;

pub use basalt_files::Storage;

/// Where record files live, and where uploads wait while a request body is read.
#[derive(Clone, Debug)]
pub struct Files {
    /// The storage every file goes to (local disk under the data dir's `storage/`).
    pub storage: Arc<dyn Storage>,
    /// A directory for anonymous temporary files holding uploads until the body is read;
    /// on the data dir's disk, never a RAM-backed `/tmp`.
    pub spool_dir: PathBuf,
}
