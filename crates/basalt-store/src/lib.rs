//! Basalt's storage behind one [`Store`]: the SQLite engine (one writer thread with a
//! bounded queue and group commit, a pool of readers, WAL) or the PostgreSQL engine (a
//! connection pool, a transaction per write; the binary picks it by `database_url`), the system
//! tables and schema migrations, the
//! filter/rule -> SQL compiler (bound parameters only, dialect-aware), record CRUD with
//! access rules enforced in SQL, and the change log (an outbox row written in the same
//! transaction as each change).
//!
//! It must never know about HTTP, the wire format or how a request was authenticated: it
//! receives an already-built [`basalt_schema::RequestInfo`] and parsed rules. Nothing
//! SQLite- or PostgreSQL-specific leaks out of this crate's public API.

mod api;
mod auth_identity;
mod backup;
mod change_log;
mod check;
mod codec;
mod collections;
mod counts;
mod dropped_files;
mod engine;
mod events;
mod health;
pub mod logs;
mod pg_schema;
mod pocketbase;
mod postgres;
mod reader;
mod records;
mod row_view;
mod sql;
mod store;
mod system;
mod writer;

pub use api::*;
pub use backup::snapshot_database;
pub use check::{CheckReport, check_database};
pub use dropped_files::{Dropped, DroppedFiles, file_names};
pub use engine::StoreStats;
pub use events::{ChangeAction, ChangeEvent, SnapshotCheck};
pub use health::StoreHealth;
pub use pocketbase::PocketBaseDb;
pub use row_view::{FieldJson, RowView, RowsPage};
pub use store::Store;
