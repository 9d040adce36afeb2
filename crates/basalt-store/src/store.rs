//! The store handle callers hold: one engine behind it, SQLite ([`crate::engine`]) or
//! PostgreSQL ([`crate::pg`]), chosen when it is opened. Each operation is one match on
//! the engine and a call into it; nothing above this crate learns which engine runs.

use std::sync::Arc;

use basalt_schema::{Collection, RequestInfo, Schema};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::engine::Sqlite;
use crate::postgres::Postgres;
use crate::{
    Access, ChangeEvent, ChangeLogRetention, DroppedFiles, ListQuery, PgConfig, Record, RecordPage,
    RowView, RowsPage, SnapshotCheck, StoreConfig, StoreError, StoreHealth, StoreStats, WriteOp,
    WriteResult,
};

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// Calls the same method of whichever engine the store holds.
macro_rules! on_engine {
    ($self:ident, $e:ident => $call:expr) => {
        match &$self.engine {
            Engine::Sqlite($e) => $call,
            Engine::Postgres($e) => $call,
        }
    };
}

/// [`on_engine!`] for an async call: PostgreSQL's future (large: it holds a pooled client
/// and its statements) is boxed, so every call's future stays the size of SQLite's. The
/// hot reads' futures are moved on their way to the runtime; unboxed, the PostgreSQL arm
/// cost get by id 1.6k instructions per request (30,701 -> 32,306, mostly memcpy).
macro_rules! on_engine_async {
    ($self:ident, $e:ident => $call:expr) => {
        match &$self.engine {
            Engine::Sqlite($e) => $call.await,
            Engine::Postgres($e) => Box::pin($call).await,
        }
    };
}

impl Store {
    /// Opens (creating when missing) `<data_dir>/data.db`, migrates the system tables and
    /// bootstraps the default collections.
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        Ok(Store {
            engine: Engine::Sqlite(Sqlite::open(config).await?),
        })
    }

    /// Opens the PostgreSQL database `config.url` names: creates the system tables and
    /// the default collections in one transaction on a fresh database, recognises them on
    /// one Basalt set up before.
    pub async fn open_postgres(config: PgConfig) -> Result<Store, StoreError> {
        Ok(Store {
            engine: Engine::Postgres(Postgres::open(config).await?),
        })
    }

    /// The current immutable schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        on_engine!(self, e => e.schema())
    }

    /// Whether the writer runs and the database looked sound so far, with the durability
    /// counters.
    pub fn health(&self) -> StoreHealth {
        on_engine!(self, e => e.health())
    }

    /// Whether the database answers now: always on SQLite (a file of this process); on
    /// PostgreSQL a pooled connection runs `SELECT 1` within `within`, else the
    /// [`StoreError::Unavailable`] that says why. For health checks.
    pub async fn ping(&self, within: std::time::Duration) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(e) => Box::pin(e.ping(within)).await,
        }
    }

    /// Resolves with the reason once the writer stopped for good (a panic outside any
    /// job); never while it runs. The binary exits on it so a supervisor restarts it.
    pub async fn writer_stopped(&self) -> String {
        on_engine_async!(self, e => e.writer_stopped())
    }

    pub fn stats(&self) -> StoreStats {
        on_engine!(self, e => e.stats())
    }

    /// Stops accepting writes, lets those under way finish and closes.
    pub async fn close(&self) {
        on_engine_async!(self, e => e.close())
    }

    pub async fn get_param(&self, key: &str) -> Result<Option<Value>, StoreError> {
        on_engine_async!(self, e => e.get_param(key))
    }

    pub async fn set_param(&self, key: &str, value: Value) -> Result<(), StoreError> {
        on_engine_async!(self, e => e.set_param(key, value))
    }

    /// The value stored under `key`, storing `value` first when there is none: of several
    /// processes calling it at once, every one gets the value that was stored first.
    pub async fn param_or_insert(&self, key: &str, value: Value) -> Result<Value, StoreError> {
        on_engine_async!(self, e => e.param_or_insert(key, value))
    }

    /// Executes `ops` in one transaction: all commit or none do.
    pub async fn write(
        &self,
        ops: Vec<WriteOp>,
        req: Arc<RequestInfo>,
    ) -> Result<Vec<WriteResult>, StoreError> {
        Ok(self.write_dropping_files(ops, req).await?.0)
    }

    /// [`Store::write`], also answering the stored files the committed write left without
    /// a record (deleted records, cascades included; names an update dropped), for the
    /// caller to delete now that it committed.
    pub async fn write_dropping_files(
        &self,
        ops: Vec<WriteOp>,
        req: Arc<RequestInfo>,
    ) -> Result<(Vec<WriteResult>, Vec<DroppedFiles>), StoreError> {
        on_engine_async!(self, e => e.write_dropping_files(ops, req))
    }

    pub async fn list_records(&self, q: ListQuery) -> Result<RecordPage, StoreError> {
        on_engine_async!(self, e => e.list_records(q))
    }

    pub async fn get_record(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        access: Access,
        req: Arc<RequestInfo>,
    ) -> Result<Option<Record>, StoreError> {
        on_engine_async!(self, e => e.get_record(collection, id, access, req))
    }

    /// The records with `ids` that `access` lets the requester see, in `ids` order.
    pub async fn get_records(
        &self,
        collection: &Arc<Collection>,
        ids: Vec<String>,
        access: Access,
        req: Arc<RequestInfo>,
    ) -> Result<Vec<Record>, StoreError> {
        on_engine_async!(self, e => e.get_records(collection, ids, access, req))
    }

    /// An auth record by an identity field (email matched case-insensitively), with
    /// hidden fields included.
    pub async fn find_auth_record(
        &self,
        collection: &Arc<Collection>,
        field: &str,
        value: &str,
    ) -> Result<Option<Record>, StoreError> {
        on_engine_async!(self, e => e.find_auth_record(collection, field, value))
    }

    /// A list page, each row handed in order to `each` (with `out`, returned as the page's
    /// rows) while the reader holds it: for a caller that writes rows out as they are
    /// instead of decoding each into a record first (`list_records` decodes them).
    pub async fn list_rows<S, F>(
        &self,
        q: ListQuery,
        out: S,
        each: F,
    ) -> Result<RowsPage<S>, StoreError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &RowView<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        on_engine_async!(self, e => e.list_rows(q, out, each))
    }

    /// The record with `id`, whatever the rules say, handed to `write` as the stored row
    /// (`None`: no such record). `write` runs while the connection is held: keep it to
    /// formatting the row.
    pub async fn view_row<T, F>(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        write: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&RowView<'_>) -> T + Send + 'static,
    {
        on_engine_async!(self, e => e.view_row(collection, id, write))
    }

    pub async fn create_collection(&self, c: Collection) -> Result<Arc<Collection>, StoreError> {
        on_engine_async!(self, e => e.create_collection(c))
    }

    pub async fn update_collection(
        &self,
        id_or_name: &str,
        c: Collection,
    ) -> Result<Arc<Collection>, StoreError> {
        Ok(self
            .update_collection_dropping_files(id_or_name, c)
            .await?
            .0)
    }

    /// [`Store::update_collection`], also answering the stored files of the file fields
    /// it removed, for the caller to delete now that the change committed.
    pub async fn update_collection_dropping_files(
        &self,
        id_or_name: &str,
        c: Collection,
    ) -> Result<(Arc<Collection>, Vec<DroppedFiles>), StoreError> {
        on_engine_async!(self, e => e.update_collection_dropping_files(id_or_name, c))
    }

    /// Deletes a collection; answers the stored files it left without a record (all of
    /// the collection's), for the caller to delete now that the change committed.
    pub async fn delete_collection(
        &self,
        id_or_name: &str,
    ) -> Result<Vec<DroppedFiles>, StoreError> {
        on_engine_async!(self, e => e.delete_collection(id_or_name))
    }

    /// Deletes every record (cascading to relations as single deletes would); answers the
    /// stored files left without a record, the cascades' in other collections included.
    pub async fn truncate_collection(
        &self,
        id_or_name: &str,
    ) -> Result<Vec<DroppedFiles>, StoreError> {
        on_engine_async!(self, e => e.truncate_collection(id_or_name))
    }

    /// Relation values of `collection` that name missing records: (record id, field),
    /// at most `limit`. SQLite only (an import's check; PostgreSQL refuses).
    pub async fn dangling_relations(
        &self,
        collection: &Arc<Collection>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        match &self.engine {
            Engine::Sqlite(e) => e.dangling_relations(collection, limit).await,
            Engine::Postgres(_) => Err(StoreError::Forbidden(
                "importing records is not built on PostgreSQL".into(),
            )),
        }
    }

    /// Creates or updates every given collection (matched by id, then name) in one
    /// transaction; with `delete_missing`, deletes the non-system ones not listed.
    /// Answers the stored files of the file fields and collections it removed, for the
    /// caller to delete now that the change committed.
    pub async fn import_collections(
        &self,
        cols: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Vec<DroppedFiles>, StoreError> {
        on_engine_async!(self, e => e.import_collections(cols, delete_missing))
    }

    /// Prunes the change log once, batch after batch until nothing is past its bounds.
    /// Returns how many entries went.
    pub async fn prune_change_log(&self, r: ChangeLogRetention) -> Result<usize, StoreError> {
        on_engine_async!(self, e => e.prune_change_log(r))
    }

    /// Refreshes the query planner's statistics: `PRAGMA optimize` on SQLite, `ANALYZE`
    /// on PostgreSQL. The daily `__pbDBOptimize__` cron job calls it.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        on_engine_async!(self, e => e.optimize())
    }

    /// A receiver of every committed record change, in commit order. A receiver that
    /// falls more than the bus capacity behind gets `RecvError::Lagged` with the count
    /// it missed.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        on_engine!(self, e => e.subscribe_changes())
    }

    /// Whether each check holds for `record` (a snapshot of a record of `collection`).
    /// Each check has its own verdict: one that fails to compile or run does not affect
    /// the others.
    pub async fn record_matches(
        &self,
        collection: Arc<Collection>,
        record: Arc<Record>,
        checks: Vec<SnapshotCheck>,
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        on_engine_async!(self, e => e.record_matches(collection, record, checks))
    }
}
