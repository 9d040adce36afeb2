//! The store's public API: the types and operations the service and HTTP layers call.
//! (Skeleton: the bodies are filled in by the engine implementation.)

use std::path::PathBuf;
use std::sync::Arc;

use basalt_schema::filter::Expr;
use basalt_schema::{Collection, RequestInfo, ValidationErrors};
use serde_json::{Map, Value};

/// A record's field values keyed by field name, typed per field (numbers as JSON numbers,
/// multi-valued fields as arrays, json fields parsed). No `collectionId`/`expand` keys.
pub type Record = Map<String, Value>;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding `data.db` (created if missing).
    pub data_dir: PathBuf,
    /// Reader connections; 0 = derive from available parallelism.
    pub readers: usize,
    /// Capacity of the writer's bounded queue.
    pub writer_queue: usize,
    /// `PRAGMA synchronous=FULL` instead of `NORMAL`.
    pub synchronous_full: bool,
    /// How long the change log keeps its entries.
    pub change_log: ChangeLogRetention,
}

/// How the PostgreSQL engine opens its database ([`crate::Store::open_postgres`]).
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user@host:port/db[?options=-csearch_path%3Dschema]`: the database,
    /// and the schema the tables live in (the first of the search path). `sslmode`
    /// `disable` or `prefer` (plain TCP); asking for TLS is refused.
    pub url: String,
    /// Pooled connections; 0 = four per available CPU.
    pub max_connections: usize,
    /// How long the change log keeps its entries.
    pub change_log: ChangeLogRetention,
}

impl std::fmt::Debug for PgConfig {
    /// The URL may hold a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("change_log", &self.change_log)
            .finish()
    }
}

impl PgConfig {
    /// Whether `url` is a database URL the PostgreSQL engine can open (it parses, and
    /// asks for no TLS), without connecting. The message never repeats the URL.
    pub fn check_url(url: &str) -> Result<(), String> {
        crate::postgres::parse_url(url).map(|_| ())
    }
}

/// Bounds of the change log (`_changes`), enforced by a pruner running at start and then
/// every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLogRetention {
    /// Entries older than this go; `None`: no age bound.
    pub max_age: Option<std::time::Duration>,
    /// Only this many newest entries stay; `None`: no count bound.
    pub max_rows: Option<u64>,
    /// Time between pruning runs.
    pub interval: std::time::Duration,
}

impl Default for ChangeLogRetention {
    /// A week and 100,000 entries, checked every minute.
    fn default() -> Self {
        Self {
            max_age: Some(std::time::Duration::from_secs(7 * 86_400)),
            max_rows: Some(100_000),
            interval: std::time::Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// Input failed validation (field errors in PocketBase's shape).
    #[error("{0}")]
    Validation(ValidationErrors),
    /// The filter, sort, fields or rule could not be parsed or resolved against the schema.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A client that is not a superuser wrote what only superusers may (PocketBase's 403:
    /// `@collection` or `@request` in a filter); the message is PocketBase's.
    #[error("{0}")]
    SuperusersOnly(String),
    /// A create/update rule did not match the would-be record: the transaction rolled back.
    #[error("the access rule was not satisfied")]
    RuleFailed,
    /// The operation is not allowed on this object (e.g. deleting a system collection,
    /// writing to a view collection, deleting a record still required by a relation).
    #[error("{0}")]
    Forbidden(String),
    /// The write did not happen: the writer queue is full, the store is shutting down or
    /// its writer stopped, or the write's group failed and rolled back.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// COMMIT returned an error: the write may or may not be stored (the database may have
    /// reached the disk before the error). Never an acknowledgement, never "not stored".
    #[error("the outcome of the write is unknown: {0}")]
    OutcomeUnknown(String),
    /// SQLite found the database file damaged (SQLITE_CORRUPT or SQLITE_NOTADB).
    #[error("database corruption: {0}")]
    Corrupt(String),
    /// Operation `index` of a batch failed; nothing of the batch was committed.
    #[error("batch operation {index} failed: {source}")]
    Batch {
        index: usize,
        source: Box<StoreError>,
    },
    /// Anything else: never shown to clients.
    #[error("internal store error: {0}")]
    Internal(String),
}

/// One sort key: a field path (relation traversal allowed), `@random` or `@rowid`.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub path: String,
    pub descending: bool,
}

/// Which rows a caller may see or touch. `Unrestricted` is for superusers and internal
/// callers; `Rule` carries the collection's parsed rule (an empty rule string is
/// `Unrestricted` too). A `null` rule never reaches the store: the API layer rejects it.
#[derive(Debug, Clone)]
pub enum Access {
    Unrestricted,
    Rule(Arc<Expr>),
}

/// Who wrote a filter or sort, which decides what it may read beyond the rows it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// A client (a list's `filter` and `sort`, a realtime subscription's filter). Unless
    /// the client is a superuser, it reads another collection (relation, back-relation)
    /// only through that collection's list rule, never a hidden field, an auth record's
    /// `email` only where it is visible to the client, and never `@collection` or
    /// `@request`: what it can learn through a filter is what it could list.
    Client,
    /// The server: a collection's access rule (written by a superuser) or a query built
    /// by the server itself. It reads everything.
    Server,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub collection: Arc<Collection>,
    pub filter: Option<Expr>,
    pub access: Access,
    pub sort: Vec<SortKey>,
    /// Who wrote `filter` and `sort` (`access` is always the server's).
    pub author: Author,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
    pub skip_total: bool,
    pub request: Arc<RequestInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct RecordPage {
    pub items: Vec<Record>,
    /// `None` when `skip_total` was asked.
    pub total_items: Option<u64>,
}

/// One write of a batch, executed in order inside one transaction.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Create {
        collection: Arc<Collection>,
        input: Record,
        access: Access,
        /// Stored names of files uploaded for this write (already in storage): the only
        /// names a file field may gain; `input` names them like any kept file.
        uploads: Vec<String>,
    },
    Update {
        collection: Arc<Collection>,
        id: String,
        input: Record,
        access: Access,
        /// As for `Create`.
        uploads: Vec<String>,
    },
    /// Update when `input.id` exists, otherwise create.
    Upsert {
        collection: Arc<Collection>,
        input: Record,
        create_access: Access,
        update_access: Access,
    },
    Delete {
        collection: Arc<Collection>,
        id: String,
        access: Access,
    },
    /// A record carried over from another store as it was there (`basalt import`): its
    /// id, autodates, password hash, token key and file names kept
    /// (`basalt_schema::record::prepare_import`); the row with that id replaced if there
    /// is one, so importing again changes nothing. No rule applies. Relations are not
    /// checked, since the source's records may point forward or in cycles: the importer
    /// checks them once every record is in (`Store::dangling_relations`). The auth
    /// invariants (an id in one auth collection, emails unique without case) hold as for
    /// any write. SQLite only.
    Import {
        collection: Arc<Collection>,
        record: Record,
    },
}

/// The outcome of one [`WriteOp`]: the stored record (or `None` for a delete).
pub type WriteResult = Option<Record>;
