//! The store handle: opens the database, runs system migrations, owns the writer thread,
//! the reader pool and the schema snapshot, and routes each operation to one of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use basalt_schema::Schema;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::counts::CountCache;
use crate::events::{self, ChangeBus};
use crate::health::{Health, StoreHealth, db_err};
use crate::reader::{self, CommitGeneration, Reader, ReaderPool};
use crate::row_view::PointReads;
use crate::writer::{self, Finish, Job, Outcome};
use crate::{StoreConfig, StoreError};

/// Counters for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    pub writer_queue_depth: usize,
    pub writer_queue_capacity: usize,
    pub readers_total: usize,
    pub readers_idle: usize,
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub(crate) struct Sqlite {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    queue_capacity: usize,
    pub(crate) readers: Arc<ReaderPool>,
    /// Bumped by the writer after each commit, before the write is acknowledged: a reader's
    /// held snapshot is reused only while it is unchanged (see [`crate::reader`]).
    generation: Arc<CommitGeneration>,
    reader_permits: Arc<Semaphore>,
    readers_total: usize,
    /// The published snapshot: what readers and request handlers see (committed state).
    pub(crate) schema: ArcSwap<Schema>,
    /// The writer's own view, ahead of `schema` while a group of jobs is uncommitted, so a
    /// job sees the schema changes of the jobs before it in the same transaction.
    writer_schema: Mutex<Arc<Schema>>,
    closed: AtomicBool,
    /// Committed record changes, published in commit order.
    pub(crate) changes: ChangeBus,
    /// A writer that stopped, corruption seen, failed groups (see [`crate::health`]).
    pub(crate) health: Arc<Health>,
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    db_err(e)
}

fn open_conn(
    path: &std::path::Path,
    cfg: &StoreConfig,
    read_only: bool,
) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_err)?;
    let sync = if cfg.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    // Readers get a 16 MB page cache each; the writer touches a few pages per write (the
    // B-tree paths it changes), so 4 MB: a bulk import through it otherwise left 16 MB of
    // its pages resident for good (measured: idle RSS 34.8 MB after the bench's seeding).
    let cache_kib = if read_only { 16000 } else { 4000 };
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = 10000; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{cache_kib};"
    ))
    .map_err(sqlite_err)?;
    if !read_only {
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA journal_size_limit = 67108864;")
            .map_err(sqlite_err)?;
        // SQLite falls back to read-only when opening read-write fails (no permission, or
        // a transient error): a writer so opened could never write.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(sqlite_err)? {
            return Err(StoreError::Internal(format!(
                "{} could only be opened read-only",
                path.display()
            )));
        }
    }
    // Readers run filters and the writer checks rules: both may call `geoDistance`.
    crate::sql::register_sqlite_functions(&conn).map_err(sqlite_err)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

impl Inner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Runs `f` on a reader taken from the pool (the caller holds a permit), reading from
    /// a snapshot that has every acknowledged write, and puts the reader back. Whatever
    /// schema `f` reads with must have been loaded before this call: the snapshot is then
    /// at least as new as the commit that published it.
    fn with_pooled<T>(
        &self,
        f: impl FnOnce(&mut Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let generation = self.generation.current();
        let mut reader = self
            .readers
            .lock()
            .map_err(|_| StoreError::Internal("reader pool poisoned".into()))?
            .pop()
            .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
        let out = self
            .health
            .observe(reader.prepare(generation).and_then(|()| f(&mut reader)));
        if let Ok(mut pool) = self.readers.lock() {
            // A snapshot that a commit made stale is not kept idle: it would hold that
            // commit's checkpoint back (checked under the pool lock, which the writer's
            // `end_all` takes after the generation changed). A failed read may have left
            // the transaction in any state; a closing store's final checkpoint must not
            // wait for it.
            if out.is_err() || self.is_closed() || self.generation.current() != generation {
                let _ = reader.end();
            }
            pool.push(reader);
        }
        out
    }

    /// [`Inner::with_pooled`] with the current schema and the reader's count cache.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection, &Schema, &mut CountCache) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let schema = self.schema.load_full();
        self.with_pooled(|reader| f(&reader.conn, &schema, &mut reader.counts))
    }

    /// [`Inner::with_pooled`] with the reader's point-read statements.
    fn with_point_reader<T>(
        &self,
        f: impl FnOnce(&Connection, &mut PointReads) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_pooled(|reader| f(&reader.conn, &mut reader.points))
    }
}

impl Sqlite {
    /// Opens (creating when missing) `<data_dir>/data.db`, migrates the system tables and
    /// bootstraps the default collections.
    pub async fn open(config: StoreConfig) -> Result<Sqlite, StoreError> {
        let retention = config.change_log;
        let store = tokio::task::spawn_blocking(move || Self::open_blocking(config))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))??;
        crate::change_log::spawn_pruner(Arc::downgrade(&store.inner), retention);
        Ok(store)
    }

    fn open_blocking(config: StoreConfig) -> Result<Sqlite, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::Internal(format!("creating {}: {e}", config.data_dir.display()))
        })?;
        let path = config.data_dir.join("data.db");
        let writer_conn = open_conn(&path, &config, false)?;
        let schema = crate::system::migrate(&writer_conn)?;
        let readers_total = if config.readers == 0 {
            std::thread::available_parallelism()
                .map_or(4, |n| n.get() * 2)
                .clamp(2, 16)
        } else {
            config.readers
        };
        let readers = (0..readers_total)
            .map(|_| open_conn(&path, &config, true).map(Reader::new))
            .collect::<Result<Vec<_>, _>>()?;
        let readers = Arc::new(Mutex::new(readers));
        let capacity = config.writer_queue.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let generation = Arc::new(CommitGeneration::default());
        let health = Arc::new(Health::new(path.clone()));
        let (bumps, idle, watch) = (generation.clone(), readers.clone(), health.clone());
        let reopen: writer::Reopen = {
            let (path, config) = (path.clone(), config.clone());
            Box::new(move || open_conn(&path, &config, false))
        };
        let handle = std::thread::Builder::new()
            .name("basalt-writer".into())
            .spawn(move || {
                // Jobs and replies are caught one by one; this catches the writer itself.
                // Its connection is gone with it: the store answers every write 503 and
                // reports unhealthy until the process restarts.
                let run = || writer::run(writer_conn, reopen, rx, &bumps, &idle, &watch);
                if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                    let why = writer::panic_message(&*panic);
                    watch.stop_writer(format!("the writer thread panicked: {why}"));
                }
            })
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let store = Sqlite {
            inner: Arc::new(Inner {
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(handle)),
                queue_capacity: capacity,
                readers,
                generation,
                reader_permits: Arc::new(Semaphore::new(readers_total)),
                readers_total,
                writer_schema: Mutex::new(Arc::new(schema.clone())),
                schema: ArcSwap::from_pointee(schema),
                closed: AtomicBool::new(false),
                changes: ChangeBus::new(),
                health,
            }),
        };
        reader::spawn_sweeper(Arc::downgrade(&store.inner))?;
        Ok(store)
    }

    /// The current immutable schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        self.inner.schema.load_full()
    }

    /// Whether the writer runs and the database file looked sound so far, with the
    /// durability counters.
    pub fn health(&self) -> StoreHealth {
        self.inner.health.snapshot()
    }

    /// Resolves with the reason once the writer stopped for good (a panic outside any
    /// job); never while it runs. The binary exits on it so a supervisor restarts it.
    pub async fn writer_stopped(&self) -> String {
        self.inner.health.wait_writer_stopped().await
    }

    /// Why a write could not reach the writer or hear back from it.
    fn unavailable(&self, otherwise: &str) -> StoreError {
        match self.inner.health.writer_stopped() {
            Some(why) => StoreError::Unavailable(format!("the writer stopped: {why}")),
            None => StoreError::Unavailable(otherwise.into()),
        }
    }

    pub fn stats(&self) -> StoreStats {
        let sender = self.inner.writer.lock().ok().and_then(|w| w.clone());
        StoreStats {
            writer_queue_depth: sender.map_or(0, |s| self.inner.queue_capacity - s.capacity()),
            writer_queue_capacity: self.inner.queue_capacity,
            readers_total: self.inner.readers_total,
            readers_idle: self.inner.reader_permits.available_permits(),
        }
    }

    /// Stops accepting writes, lets queued ones commit, checkpoints the WAL and closes.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        reader::end_all(&self.inner.readers);
        if let Ok(mut w) = self.inner.writer.lock() {
            w.take();
        }
        let handle = self
            .inner
            .writer_thread
            .lock()
            .ok()
            .and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        if let Ok(mut r) = self.inner.readers.lock() {
            r.clear();
        }
    }

    /// Runs `f` on a pooled read-only connection off the async runtime.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Schema) -> Result<T, StoreError> + Send + 'static,
    {
        self.read_counted(move |conn, schema, _| f(conn, schema))
            .await
    }

    /// [`Sqlite::read`] with the connection's count cache.
    pub(crate) async fn read_counted<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Schema, &mut CountCache) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_blocking_pool(move |inner| inner.with_reader(f))
            .await
    }

    /// Runs `g` on the blocking pool once a reader connection is free (the permit is held
    /// until `g` returns).
    async fn on_blocking_pool<T, G>(&self, g: G) -> Result<T, StoreError>
    where
        T: Send + 'static,
        G: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .inner
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            g(&inner)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Runs a point read (a primary-key lookup: microseconds on a warm cache) right on the
    /// calling thread when a reader connection is free, and otherwise like [`Sqlite::read`].
    /// A hop to the blocking pool costs two thread wake-ups, more than such a read itself;
    /// anything that may scan (lists, rules, counts) must go through [`Sqlite::read`].
    pub(crate) async fn read_point<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Schema) -> Result<T, StoreError> + Send + 'static,
    {
        let Ok(_permit) = self.inner.reader_permits.clone().try_acquire_owned() else {
            return self.read(f).await;
        };
        self.inner
            .with_reader(move |conn, schema, _| f(conn, schema))
    }

    /// [`Sqlite::read_point`] with the reader's point-read statements: on the calling
    /// thread when a reader is free, else on the blocking pool.
    pub(crate) async fn read_point_cached<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut PointReads) -> Result<T, StoreError> + Send + 'static,
    {
        if let Ok(_permit) = self.inner.reader_permits.try_acquire() {
            return self.inner.with_point_reader(f);
        }
        self.on_blocking_pool(move |inner| inner.with_point_reader(f))
            .await
    }

    /// Runs `f` in the writer's transaction and resolves after the commit. A schema that
    /// `f` returns is published (on the writer thread, in commit order) only once the
    /// transaction committed.
    pub(crate) async fn write_job<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Arc<Schema>) -> Result<(T, Option<Schema>), StoreError>
            + Send
            + 'static,
    {
        let sender = self
            .inner
            .writer
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .ok_or_else(|| self.unavailable("the store is closed"))?;
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let job: Job = Box::new(move |conn| {
            let schema = match inner.writer_schema.lock() {
                Ok(s) => s.clone(),
                Err(_) => inner.schema.load_full(),
            };
            // Whatever an earlier job left behind is not this job's.
            drop(events::take_changes());
            let mut res = inner.health.observe(f(conn, &schema));
            // A failed job's savepoint rolls back: its changes never happened.
            let changes = match &res {
                Ok(_) => events::take_changes(),
                Err(_) => {
                    drop(events::take_changes());
                    Vec::new()
                }
            };
            // Later jobs of this group see this job's schema change right away.
            let staged = match &mut res {
                Ok((_, new_schema)) => new_schema.take().map(Arc::new),
                Err(_) => None,
            };
            if let (Some(s), Ok(mut w)) = (&staged, inner.writer_schema.lock()) {
                *w = s.clone();
            }
            let ok = res.is_ok();
            Finish {
                ok,
                done: Box::new(move |outcome| {
                    let committed = outcome == Outcome::Committed;
                    if committed {
                        if let Some(s) = staged {
                            inner.schema.store(s);
                        }
                        inner.changes.publish(changes);
                    } else if let Ok(mut w) = inner.writer_schema.lock() {
                        // The group rolled back: the writer forgets what it staged.
                        *w = inner.schema.load_full();
                    }
                    let reply = match (res, outcome) {
                        (Ok((value, _)), Outcome::Committed) => Ok(value),
                        (Ok(_), Outcome::RolledBack) => Err(StoreError::Unavailable(
                            "the write's group rolled back: it was not stored".into(),
                        )),
                        (Ok(_), Outcome::Unknown) => Err(StoreError::OutcomeUnknown(
                            "COMMIT returned an error".into(),
                        )),
                        // Its savepoint rolled back: not stored, whatever became of the group.
                        (Err(e), _) => Err(e),
                    };
                    let _ = tx.send(reply);
                }),
            }
        });
        if sender.send(job).await.is_err() {
            return Err(self.unavailable("the store is closed"));
        }
        match rx.await {
            Ok(reply) => reply,
            // Dropped unrun (or its job panicked and rolled back): not stored.
            Err(_) => Err(self.unavailable("the write was not executed")),
        }
    }

    pub async fn get_param(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let key = key.to_string();
        self.read(move |conn, _| crate::system::get_param(conn, &key))
            .await
    }

    pub async fn set_param(&self, key: &str, value: serde_json::Value) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write_job(move |conn, _| {
            crate::system::set_param(conn, &key, &value).map(|()| ((), None))
        })
        .await
    }

    /// Refreshes the planner's statistics where SQLite judges them stale (`PRAGMA
    /// optimize`), as a writer job between the others.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        self.write_job(|conn, _| {
            conn.execute_batch("PRAGMA optimize")
                .map(|()| ((), None))
                .map_err(crate::records::err)
        })
        .await
    }

    pub async fn param_or_insert(
        &self,
        key: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        let key = key.to_string();
        self.write_job(move |conn, _| {
            crate::system::param_or_insert(conn, &key, &value).map(|v| (v, None))
        })
        .await
    }
}
